//! Reaching a Redis server: URL checks, TLS, the connection and its first
//! PING. Which transport a handle uses is decided here and nowhere else.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::RedisBackend;
use crate::error::{Error, Result, redact_url};
use crate::stats::Stats;

/// What a handle needs to reach its server.
pub(crate) struct ConnectOptions {
    pub(crate) url: String,
    pub(crate) timeout: Duration,
    pub(crate) lazy: bool,
    /// A private CA for `rediss://`; read only with the `tls` feature.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) tls_root: Option<Vec<u8>>,
}

/// The transports a handle can use.
#[derive(Clone)]
pub(crate) enum Connection {
    /// One server, reconnected after failures by redis-rs' manager.
    Standalone(ConnectionManager),
}

impl RedisBackend {
    /// Connects (or, lazily, prepares to) and checks the server with PING.
    pub(crate) async fn connect(options: ConnectOptions, stats: Arc<Stats>) -> Result<Self> {
        let redacted = redact_url(&options.url);
        let client = client(&options, &redacted)?;
        let timeout = options.timeout;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            // One timer per call: ours.
            .set_response_timeout(None)
            .set_number_of_retries(2);
        let manager = if options.lazy {
            ConnectionManager::new_lazy_with_config(client, config).map_err(|source| {
                Error::Connection {
                    url: redacted.clone(),
                    source,
                }
            })?
        } else {
            let connect = async {
                let mut manager = ConnectionManager::new_with_config(client, config).await?;
                redis::cmd("PING")
                    .query_async::<String>(&mut manager)
                    .await?;
                Ok::<_, redis::RedisError>(manager)
            };
            let connect_timeout = |url| Error::ConnectTimeout {
                url,
                after: timeout,
            };
            match tokio::time::timeout(timeout, connect).await {
                Ok(Ok(manager)) => manager,
                Ok(Err(err)) if err.is_timeout() => return Err(connect_timeout(redacted)),
                Ok(Err(source)) => {
                    return Err(Error::Connection {
                        url: redacted,
                        source,
                    });
                }
                Err(_elapsed) => return Err(connect_timeout(redacted)),
            }
        };
        let connection = RedisConnection(Connection::Standalone(manager));
        Ok(RedisBackend::new(connection, timeout, redacted, stats))
    }
}

/// The redis-rs client for the URL, with TLS settings for `rediss://`.
fn client(options: &ConnectOptions, redacted: &str) -> Result<redis::Client> {
    let invalid = |err: redis::RedisError| {
        Error::config(format!(
            "invalid Redis URL `{redacted}`: {}",
            describe(&err)
        ))
    };
    if !options.url.starts_with("rediss://") {
        return redis::Client::open(options.url.as_str()).map_err(invalid);
    }
    #[cfg(feature = "tls")]
    {
        // rustls needs a crypto provider; an application may have set its own.
        let _ = rustls::crypto::ring::default_provider().install_default();
        match &options.tls_root {
            Some(pem) => {
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                };
                redis::Client::build_with_tls(options.url.as_str(), certificates).map_err(invalid)
            }
            None => redis::Client::open(options.url.as_str()).map_err(invalid),
        }
    }
    #[cfg(not(feature = "tls"))]
    Err(Error::config(format!(
        "`{redacted}` asks for TLS: enable the `tls` feature of cache-core"
    )))
}

/// A parse error's description without echoing the URL (and its password) back.
fn describe(err: &redis::RedisError) -> String {
    match err.detail() {
        Some(detail) if !detail.contains("://") => format!("{:?}: {detail}", err.kind()),
        _ => format!("{:?}", err.kind()),
    }
}

/// The connection of a Redis-backed [`Cache`](crate::Cache), for commands this
/// crate does not wrap: use it with redis-rs' `query_async` as any async
/// connection. Clones share the handle's one multiplexed connection, which
/// reconnects by itself. Whatever transport the handle uses (a standalone
/// server today), this type stays the same.
///
/// ```no_run
/// # async fn demo(cache: cache_core::Cache) -> cache_core::redis::RedisResult<()> {
/// use cache_core::redis;
/// if let Some(mut connection) = cache.redis_connection() {
///     let size: u64 = redis::cmd("DBSIZE").query_async(&mut connection).await?;
///     # let _ = size;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisConnection(pub(crate) Connection);

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transport = match self.0 {
            Connection::Standalone(_) => "standalone",
        };
        f.debug_struct("RedisConnection")
            .field("transport", &transport)
            .finish()
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.0 {
            Connection::Standalone(manager) => manager.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            Connection::Standalone(manager) => manager.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Connection::Standalone(manager) => manager.get_db(),
        }
    }
}
