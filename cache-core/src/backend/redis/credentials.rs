//! Credentials asked for on every (re)connect: the hook a handle is built
//! with, handed to redis-rs as its credentials provider, so that rotating
//! passwords and tokens (IAM, Entra ID) reach each new connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::stream::{self, Stream, StreamExt};
use redis::{BasicAuth, ErrorKind, RedisError, RedisResult, StreamingCredentialsProvider};

use crate::error::BoxError;

/// The credentials a connection authenticates with.
#[derive(Clone)]
pub struct Credentials {
    /// The ACL user; `None` for the `default` user.
    pub username: Option<String>,
    /// The password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// What a credentials hook returns.
pub(crate) type CredentialsFuture =
    Pin<Box<dyn Future<Output = Result<Credentials, BoxError>> + Send>>;

/// A handle's credentials hook.
#[derive(Clone)]
pub(crate) struct Hook(pub(crate) Arc<dyn Fn() -> CredentialsFuture + Send + Sync>);

impl StreamingCredentialsProvider for Hook {
    /// Each connection subscribes once, when it connects: it gets what the
    /// hook answers then. The stream never ends, so a live connection is
    /// never re-authenticated behind the caller's back.
    fn subscribe(&self) -> Pin<Box<dyn Stream<Item = RedisResult<BasicAuth>> + Send + 'static>> {
        let hook = Arc::clone(&self.0);
        let now = stream::once(async move {
            match hook().await {
                Ok(Credentials { username, password }) => {
                    let username = username.unwrap_or_else(|| "default".to_owned());
                    Ok(BasicAuth::new(username, password))
                }
                Err(error) => Err(RedisError::from((
                    ErrorKind::AuthenticationFailed,
                    "the credentials hook failed",
                    error.to_string(),
                ))),
            }
        });
        Box::pin(now.chain(stream::pending()))
    }
}
