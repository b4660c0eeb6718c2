//! Redis Sentinel: the primary is found through the sentinels (redis-rs'
//! `SentinelClient`, which also checks with `ROLE` that the node it names is
//! a primary), moved to as soon as the sentinels announce a new one (see
//! `sentinel_watch`), and found again when it stops answering or refuses a
//! write (`READONLY`: it was demoted). Calls go to the primary through a
//! `ConnectionManager`, as on one server, behind the same [`Breaker`]: while
//! no primary can be reached, calls fail at once as connection errors.

use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, Pipeline, RedisConnectionInfo, RedisError,
    RedisResult, Value,
};

use super::breaker::{Breaker, Probe};
use super::credentials::Hook;
use super::node::Node;
use super::server::ping;
use crate::backend::next::{backstop, is_connection_loss};

/// The sentinels of one master, and the primary (or, for replica reads, the
/// replica) they named last.
pub(crate) struct SentinelLink {
    client: tokio::sync::Mutex<SentinelClient>,
    primary: RwLock<Option<Primary>>,
    /// The name the sentinels monitor the primary under.
    pub(super) master: String,
    /// One client per sentinel, for their announcements and the periodic check.
    pub(super) sentinels: Vec<redis::Client>,
    /// The data nodes' credentials and database.
    data: RedisConnectionInfo,
    timeout: Duration,
    credentials: Option<Hook>,
    breaker: Arc<Breaker>,
}

/// The primary the sentinels named, and the connection to it.
#[derive(Clone)]
pub(crate) struct Primary {
    pub(crate) node: Node,
    manager: ConnectionManager,
}

impl SentinelLink {
    /// The link to `master` through `sentinels` (their URLs, and a client
    /// for each); `data` holds the credentials and database for the data
    /// nodes, and their credentials hook (the sentinels' are in their URLs).
    pub(crate) fn new(
        (urls, sentinels): (&[String], Vec<redis::Client>),
        (master, server): (&str, SentinelServerType),
        (data, credentials): (RedisConnectionInfo, Option<Hook>),
        timeout: Duration,
    ) -> RedisResult<Self> {
        let nodes = SentinelNodeConnectionInfo::default().set_redis_connection_info(data.clone());
        // redis-rs takes a `String` here, or any `AsRef<str>` with TLS on.
        #[allow(clippy::unnecessary_to_owned)]
        let client = SentinelClient::build(urls.to_vec(), master.to_owned(), Some(nodes), server)?;
        Ok(SentinelLink {
            client: tokio::sync::Mutex::new(client),
            primary: RwLock::new(None),
            master: master.to_owned(),
            sentinels,
            data,
            timeout,
            credentials,
            breaker: Arc::default(),
        })
    }

    /// The primary, asking the sentinels when none is known. "No primary
    /// named" is a connection error: a later call may find one.
    pub(crate) async fn primary(&self) -> RedisResult<Primary> {
        if let Some(known) = self.known() {
            return Ok(known);
        }
        let mut client = self.client.lock().await;
        // Another call may have asked while this one waited for the lock.
        if let Some(known) = self.known() {
            return Ok(known);
        }
        let found = client.async_get_client().await.map_err(unnamed)?;
        let node = node_of(found.get_connection_info().addr());
        let primary = self.connect(node, found)?;
        *self.primary.write().unwrap_or_else(PoisonError::into_inner) = Some(primary.clone());
        Ok(primary)
    }

    fn connect(&self, node: Node, client: redis::Client) -> RedisResult<Primary> {
        let mut config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(backstop(self.timeout)))
            .set_response_timeout(None)
            .set_number_of_retries(0);
        if let Some(hook) = &self.credentials {
            config = config.set_credentials_provider(hook.clone());
        }
        let manager = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Primary { node, manager })
    }

    /// The sentinels announced `node` as the new primary: calls go there from
    /// now on, without asking again (a sentinel that has not heard of the
    /// switch yet could name the old primary, which still takes writes until
    /// it is demoted, and loses them then).
    pub(super) fn switch_to(&self, node: Node) {
        if self.known().is_some_and(|known| known.node == node) {
            return;
        }
        let addr = ConnectionAddr::Tcp(node.0.clone(), node.1);
        let moved = addr.into_connection_info().and_then(|info| {
            let info = info.set_redis_settings(self.data.clone());
            self.connect(node.clone(), redis::Client::open(info)?)
        });
        let mut primary = self.primary.write().unwrap_or_else(PoisonError::into_inner);
        // Unusable as given: ask the sentinels on the next call instead.
        *primary = moved.ok();
        drop(primary);
        tracing::info!(
            port = node.1,
            "following the primary the sentinels announced"
        );
        self.breaker.close();
    }

    /// The primary in use (for the tracking connections' heartbeat: when the
    /// link moved, the tracking connections move too).
    pub(crate) async fn current(&self) -> RedisResult<Node> {
        Ok(self.primary().await?.node)
    }

    /// The node calls go to now, if one is known.
    pub(super) fn in_use(&self) -> Option<Node> {
        self.known().map(|known| known.node)
    }

    fn known(&self) -> Option<Primary> {
        let primary = self.primary.read().unwrap_or_else(PoisonError::into_inner);
        primary.clone()
    }

    /// Forgets the primary in use (or only `node`, if that is still it), so
    /// that the next call asks the sentinels again.
    pub(super) fn forget(&self, node: Option<&Node>) {
        let mut primary = self.primary.write().unwrap_or_else(PoisonError::into_inner);
        if node.is_none() || primary.as_ref().map(|known| &known.node) == node {
            *primary = None;
        }
    }

    /// After a failed call to `node` (`None`: no primary was found): a lost
    /// connection or a `READONLY` answer means it may no longer be the
    /// primary; a refusal means calls fail at once until one answers.
    fn after(self: &Arc<Self>, node: Option<&Node>, err: &RedisError) {
        let demoted = err.kind() == ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
        if let Some(node) = node
            && (demoted || is_connection_loss(err))
        {
            self.forget(Some(node));
        }
        self.breaker.after(err, || probe(Arc::downgrade(self)));
    }

    /// The primary a call goes to: a refusal at once while none answers.
    async fn reach(self: &Arc<Self>) -> RedisResult<Primary> {
        if self.breaker.is_down() {
            return Err(Breaker::refusal());
        }
        let found = self.primary().await;
        if let Err(err) = &found {
            self.after(None, err);
        }
        found
    }

    pub(crate) async fn command(self: &Arc<Self>, cmd: &Cmd) -> RedisResult<Value> {
        let Primary { node, mut manager } = self.reach().await?;
        let answer = manager.send_packed_command(cmd).await;
        if let Err(err) = &answer {
            self.after(Some(&node), err);
        }
        answer
    }

    pub(crate) async fn commands(
        self: &Arc<Self>,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let Primary { node, mut manager } = self.reach().await?;
        let answer = manager.send_packed_commands(pipeline, offset, count).await;
        if let Err(err) = &answer {
            self.after(Some(&node), err);
        }
        answer
    }
}

/// A reconnect attempt while no primary answers: ask the sentinels, then PING.
fn probe(link: Weak<SentinelLink>) -> Probe {
    Box::new(move || {
        let link = link.clone();
        Box::pin(async move {
            let Some(link) = link.upgrade() else {
                return false;
            };
            let Ok(mut primary) = link.primary().await else {
                return false;
            };
            let answered = ping(&mut primary.manager, link.timeout).await;
            if !answered {
                link.forget(Some(&primary.node));
            }
            answered
        })
    })
}

/// redis-rs' "the sentinels name no usable node" as what it is to a caller:
/// the server cannot be reached now (a connection error), and may be soon.
fn unnamed(err: RedisError) -> RedisError {
    match err.kind() {
        ErrorKind::MasterNameNotFoundBySentinel | ErrorKind::NoValidReplicasFoundBySentinel => {
            std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!("the sentinels name no reachable node now: {err}"),
            )
            .into()
        }
        _ => err,
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
