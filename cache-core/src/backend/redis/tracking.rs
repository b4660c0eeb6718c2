//! Connections that receive invalidations: RESP3 connections with Redis
//! client-side caching in broadcasting mode (`CLIENT TRACKING ON BCAST`), one
//! to the server or to each primary of a cluster, with one prefix per
//! keyspace that has a local tier. Redis then pushes the name of every key
//! under those prefixes that any client changes, deletes, or that expires or
//! is evicted. Only key names travel, never values; writes to other
//! keyspaces cost nothing.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, ProtocolVersion, PushInfo};
use tokio::sync::mpsc::UnboundedSender;

use super::RedisBackend;
use super::connect::Node;

/// What it takes to open tracking connections like the handle's own.
#[derive(Clone)]
pub(crate) struct Tracker {
    /// The server, or the first cluster node: credentials and TLS settings
    /// for every node.
    node: Arc<ConnectionInfo>,
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

    /// The nodes to track: `None` for the one server, or every primary.
    pub(crate) async fn nodes(&self) -> redis::RedisResult<Vec<Option<Node>>> {
        let mut nodes = self.backend.connection.primaries().await?;
        nodes.sort();
        Ok(nodes)
    }

    /// A RESP3 connection to `node`, named after the handle's `namespace`,
    /// that pushes to `pushes` the invalidations of keys under `prefixes`.
    pub(crate) async fn open(
        &self,
        node: Option<&Node>,
        namespace: &str,
        prefixes: &[String],
        pushes: UnboundedSender<PushInfo>,
    ) -> redis::RedisResult<MultiplexedConnection> {
        let settings = self
            .node
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let mut info = ConnectionInfo::clone(&self.node).set_redis_settings(settings);
        if let Some((host, port)) = node {
            let addr = at(info.addr(), host, *port);
            info = info.set_addr(addr);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout()))
            .set_response_timeout(Some(self.timeout()))
            .set_push_sender(pushes);
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

/// Adds `prefixes` (keyspace heads, none a prefix of another or of one
/// already tracked) to what `connection` is told about.
pub(crate) async fn track(
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
