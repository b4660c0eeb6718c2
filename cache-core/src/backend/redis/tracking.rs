//! Connections that receive invalidations: RESP3 connections with Redis
//! client-side caching in broadcasting mode (`CLIENT TRACKING ON BCAST`), one
//! to the server or to each primary of a cluster, with one prefix per
//! keyspace that has a local tier. Redis then pushes the name of every key
//! under those prefixes that any client changes, deletes, or that expires or
//! is evicted. Only key names travel, never values; writes to other
//! keyspaces cost nothing. Pushes leave this module as plain [`Event`]s.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::RedisBackend;
use super::connect::NodeAccess;
use super::node::Node;

/// What it takes to open tracking connections like the handle's own.
#[derive(Clone)]
pub(crate) struct Tracker {
    /// The server, or the first cluster node: credentials and TLS settings
    /// for every node.
    node: Arc<NodeAccess>,
    backend: RedisBackend,
}

impl RedisBackend {
    pub(crate) fn tracker(&self) -> Tracker {
        Tracker {
            node: Arc::clone(&self.node_info),
            backend: self.clone(),
        }
    }
}

impl Tracker {
    /// The handle's timeout, for each tracking call.
    pub(crate) fn timeout(&self) -> Duration {
        self.backend.timeout
    }

    /// Opens an invalidation connection to the server, or to every primary,
    /// tracking `heads`.
    pub(crate) async fn session(&self, namespace: &str, heads: &[String]) -> Opened {
        let timeout = self.timeout();
        let Ok(Ok(nodes)) = tokio::time::timeout(timeout, self.nodes()).await else {
            return Opened::Unreachable;
        };
        let (pushed, pushes) = mpsc::unbounded_channel();
        let mut connections = Vec::with_capacity(nodes.len());
        for node in &nodes {
            let open = self.open(node.as_ref(), namespace, heads, pushed.clone());
            match tokio::time::timeout(timeout, open).await {
                Ok(Ok(connection)) => connections.push(connection),
                Ok(Err(err)) if refused(&err) => return Opened::Refused,
                _ => return Opened::Unreachable,
            }
        }
        // Only the connections send now: when they are all gone, so are the events.
        drop(pushed);
        Opened::Session(Session {
            tracker: self.clone(),
            nodes,
            connections,
            pushes,
        })
    }

    /// The nodes to track: `None` for the one server, or every primary.
    async fn nodes(&self) -> redis::RedisResult<Vec<Option<Node>>> {
        let mut nodes = self.backend.connection.primaries().await?;
        nodes.sort();
        Ok(nodes)
    }

    /// A RESP3 connection to `node`, named after the handle's `namespace`,
    /// that pushes to `pushes` the invalidations of keys under `prefixes`.
    async fn open(
        &self,
        node: Option<&Node>,
        namespace: &str,
        prefixes: &[String],
        pushes: UnboundedSender<PushInfo>,
    ) -> redis::RedisResult<MultiplexedConnection> {
        let settings = self
            .node
            .info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let mut info = self.node.info.clone().set_redis_settings(settings);
        if let Some((host, port)) = node {
            let addr = at(info.addr(), host, *port);
            info = info.set_addr(addr);
        }
        let mut config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout()))
            .set_response_timeout(Some(self.timeout()))
            .set_push_sender(pushes);
        if let Some(hook) = &self.node.credentials {
            config = config.set_credentials_provider(hook.clone());
        }
        let client = redis::Client::open(info)?;
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        // Named, so that operators (and tests) can tell it in CLIENT LIST.
        let name: String = format!("cache-core-invalidations:{namespace}:")
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '_' })
            .collect();
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(name)
            .query_async::<()>(&mut connection)
            .await?;
        track(&mut connection, prefixes).await?;
        Ok(connection)
    }
}

/// What opening the invalidation connections gave.
pub(crate) enum Opened {
    Session(Session),
    /// The server answered that it does not allow them (RESP3, `CLIENT`
    /// or `CLIENT TRACKING` refused, renamed or denied by an ACL), as some
    /// managed services do.
    Refused,
    /// A node could not be reached in time: try again later.
    Unreachable,
}

/// Whether `err` is the server refusing a command, rather than a node that
/// is down, busy or still loading.
fn refused(err: &redis::RedisError) -> bool {
    let code = err.code().unwrap_or_default();
    let detail = err.detail().unwrap_or_default().to_ascii_lowercase();
    matches!(code, "NOPERM" | "NOPROTO")
        || (code == "ERR" && (detail.contains("unknown") || detail.contains("disabled")))
}

/// What an invalidation connection tells.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// These keys changed: drop their local copies.
    Invalidate(Vec<String>),
    /// The server dropped every key (FLUSHALL, FLUSHDB): drop everything.
    FlushAll,
    /// The connection is gone.
    Down,
    /// Nothing to act on.
    Other,
}

/// What a heartbeat found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Health {
    Up,
    /// A connection did not answer in time.
    Down,
    /// The cluster's primaries changed.
    Topology,
}

/// The open invalidation connections of a handle.
pub(crate) struct Session {
    tracker: Tracker,
    nodes: Vec<Option<Node>>,
    connections: Vec<MultiplexedConnection>,
    pushes: UnboundedReceiver<PushInfo>,
}

impl Session {
    /// The next thing a connection tells.
    pub(crate) async fn event(&mut self) -> Event {
        match self.pushes.recv().await {
            Some(push) => event_of(push),
            None => Event::Down,
        }
    }

    /// Adds `heads` to what every connection tracks; `false` on failure.
    pub(crate) async fn track(&mut self, heads: &[String]) -> bool {
        let timeout = self.tracker.timeout();
        for connection in &mut self.connections {
            let add = track(connection, heads);
            if !matches!(tokio::time::timeout(timeout, add).await, Ok(Ok(()))) {
                return false;
            }
        }
        true
    }

    /// PINGs every connection and, on a cluster, compares the primaries
    /// with those the session was opened on.
    pub(crate) async fn check(&mut self) -> Health {
        let timeout = self.tracker.timeout();
        let ping_cmd = redis::cmd("PING");
        for connection in &mut self.connections {
            let ping = ping_cmd.query_async::<()>(connection);
            if !matches!(tokio::time::timeout(timeout, ping).await, Ok(Ok(()))) {
                return Health::Down;
            }
        }
        let cluster = self.nodes.len() > 1 || self.nodes.first().is_some_and(Option::is_some);
        if !cluster {
            return Health::Up;
        }
        match tokio::time::timeout(timeout, self.tracker.nodes()).await {
            Ok(Ok(now)) if now == self.nodes => Health::Up,
            Ok(Ok(_)) => Health::Topology,
            _ => Health::Down,
        }
    }
}

/// A push as an [`Event`].
fn event_of(push: PushInfo) -> Event {
    match push.kind {
        PushKind::Invalidate => {}
        PushKind::Disconnection => return Event::Down,
        _ => return Event::Other,
    }
    let mut keys = Vec::new();
    for data in push.data {
        match data {
            Value::Array(items) => {
                let names = items.into_iter().filter_map(|item| match item {
                    Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
                    _ => None,
                });
                keys.extend(names);
            }
            // A null list: the server flushed its keys.
            Value::Nil => return Event::FlushAll,
            _ => {}
        }
    }
    Event::Invalidate(keys)
}

/// Adds `prefixes` (keyspace heads, none a prefix of another or of one
/// already tracked) to what `connection` is told about.
async fn track(
    connection: &mut MultiplexedConnection,
    prefixes: &[String],
) -> redis::RedisResult<()> {
    let mut tracking = redis::cmd("CLIENT");
    tracking.arg("TRACKING").arg("ON").arg("BCAST");
    for prefix in prefixes {
        tracking.arg("PREFIX").arg(prefix);
    }
    tracking.query_async::<()>(connection).await
}

/// `addr` moved to `host:port`, keeping its TLS settings.
fn at(addr: &ConnectionAddr, host: &str, port: u16) -> ConnectionAddr {
    match addr {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host.to_owned(), port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(kind: PushKind, data: Vec<Value>) -> PushInfo {
        PushInfo { kind, data }
    }

    #[test]
    fn pushes_become_plain_events() {
        let keys = Value::Array(vec![
            Value::BulkString(b"ns:price:v1:a".to_vec()),
            Value::BulkString(b"ns:price:v1:b".to_vec()),
        ]);
        let names = vec!["ns:price:v1:a".to_owned(), "ns:price:v1:b".to_owned()];
        let invalidate = push(PushKind::Invalidate, vec![keys]);
        assert_eq!(event_of(invalidate), Event::Invalidate(names));
        let flushed = push(PushKind::Invalidate, vec![Value::Nil]);
        assert_eq!(event_of(flushed), Event::FlushAll);
        let gone = push(PushKind::Disconnection, Vec::new());
        assert_eq!(event_of(gone), Event::Down);
        let message = push(PushKind::Message, Vec::new());
        assert_eq!(event_of(message), Event::Other);
    }
}
