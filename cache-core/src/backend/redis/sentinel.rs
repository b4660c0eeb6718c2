//! Redis Sentinel: the primary is found through the sentinels (redis-rs'
//! `SentinelClient`, which also checks with `ROLE` that the node it names is
//! a primary), and found again when it stops answering or refuses a write
//! (`READONLY`: it was demoted). Calls go to the primary through a
//! `ConnectionManager`, as on one server.

use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, ConnectionAddr, Pipeline, RedisConnectionInfo, RedisResult, Value};

use super::connect::Node;
use super::credentials::Hook;
use super::next::{backstop, is_connection_loss};

/// The sentinels of one master, and the primary (or, for replica reads, the
/// replica) they named last.
pub(crate) struct SentinelLink {
    client: tokio::sync::Mutex<SentinelClient>,
    primary: RwLock<Option<Primary>>,
    timeout: Duration,
    credentials: Option<Hook>,
}

/// The primary the sentinels named, and the connection to it.
#[derive(Clone)]
pub(crate) struct Primary {
    pub(crate) node: Node,
    manager: ConnectionManager,
}

impl SentinelLink {
    /// The link to `master` through `sentinels`; `data` holds the credentials
    /// and database for the data nodes, and their credentials hook (the
    /// sentinels' credentials are in their URLs).
    pub(crate) fn new(
        sentinels: &[String],
        (master, server): (&str, SentinelServerType),
        (data, credentials): (RedisConnectionInfo, Option<Hook>),
        timeout: Duration,
    ) -> RedisResult<Self> {
        let nodes = SentinelNodeConnectionInfo::default().set_redis_connection_info(data);
        // redis-rs takes a `String` here, or any `AsRef<str>` with TLS on.
        #[allow(clippy::unnecessary_to_owned)]
        let client =
            SentinelClient::build(sentinels.to_vec(), master.to_owned(), Some(nodes), server)?;
        Ok(SentinelLink {
            client: tokio::sync::Mutex::new(client),
            primary: RwLock::new(None),
            timeout,
            credentials,
        })
    }

    /// The primary, asking the sentinels when none is known.
    pub(crate) async fn primary(&self) -> RedisResult<Primary> {
        if let Some(known) = self.known() {
            return Ok(known);
        }
        let mut client = self.client.lock().await;
        // Another call may have asked while this one waited for the lock.
        if let Some(known) = self.known() {
            return Ok(known);
        }
        let found = client.async_get_client().await?;
        let node = node_of(found.get_connection_info().addr());
        let mut config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(backstop(self.timeout)))
            .set_response_timeout(None)
            .set_number_of_retries(0);
        if let Some(hook) = &self.credentials {
            config = config.set_credentials_provider(hook.clone());
        }
        let manager = ConnectionManager::new_lazy_with_config(found, config)?;
        let primary = Primary { node, manager };
        *self.primary.write().unwrap_or_else(PoisonError::into_inner) = Some(primary.clone());
        Ok(primary)
    }

    /// The primary the sentinels name now (for the tracking connections'
    /// heartbeat): when it is not the one in use, the next call moves to it.
    pub(crate) async fn current(&self) -> RedisResult<Node> {
        let node = {
            let mut client = self.client.lock().await;
            let found = client.async_get_client().await?;
            node_of(found.get_connection_info().addr())
        };
        if self.known().is_some_and(|known| known.node != node) {
            self.forget(None);
        }
        Ok(node)
    }

    fn known(&self) -> Option<Primary> {
        let primary = self.primary.read().unwrap_or_else(PoisonError::into_inner);
        primary.clone()
    }

    /// Forgets the primary in use (or only `node`, if that is still it), so
    /// that the next call asks the sentinels again.
    fn forget(&self, node: Option<&Node>) {
        let mut primary = self.primary.write().unwrap_or_else(PoisonError::into_inner);
        if node.is_none() || primary.as_ref().map(|known| &known.node) == node {
            *primary = None;
        }
    }

    /// After a failed call to `node`: a lost connection or a `READONLY`
    /// answer means it may no longer be the primary.
    fn after(&self, node: &Node, err: &redis::RedisError) {
        let demoted = err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
        if demoted || is_connection_loss(err) {
            self.forget(Some(node));
        }
    }

    pub(crate) async fn command(&self, cmd: &Cmd) -> RedisResult<Value> {
        let Primary { node, mut manager } = self.primary().await?;
        let answer = manager.req_packed_command(cmd).await;
        if let Err(err) = &answer {
            self.after(&node, err);
        }
        answer
    }

    pub(crate) async fn commands(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let Primary { node, mut manager } = self.primary().await?;
        let answer = manager.req_packed_commands(pipeline, offset, count).await;
        if let Err(err) = &answer {
            self.after(&node, err);
        }
        answer
    }
}

/// A node's host and port (TLS or not).
fn node_of(addr: &ConnectionAddr) -> Node {
    match addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            (host.clone(), *port)
        }
        // Sentinels name nodes by host and port only.
        _ => (String::new(), 0),
    }
}
