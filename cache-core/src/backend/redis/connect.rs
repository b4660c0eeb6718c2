//! Reaching Redis: URL checks, TLS, the connection (one server, or a cluster)
//! and its first PING. Which transport a handle uses is decided here and
//! nowhere else.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::sentinel::SentinelServerType;
use redis::{Cmd, FromRedisValue, Pipeline, RedisConnectionInfo, RedisFuture, Value};
use tokio::sync::OnceCell;

use super::credentials::Hook;
use super::node::Node;
use super::sentinel::SentinelLink;
use super::sentinel_watch;
use super::server::Server;
use super::{RedisBackend, Retry, redirect};
use crate::backend::next::{Attempt, NextStep, after_error, backstop};
use crate::error::{Error, Result};
use crate::redact;
use crate::stats::Stats;

/// Where a handle's data lives.
pub(crate) enum Target {
    /// One server, by URL.
    Standalone(String),
    /// A Redis Cluster, through any of these node URLs.
    Cluster(Vec<String>),
    /// A primary found through Redis Sentinel.
    Sentinel {
        /// The name the sentinels monitor it under.
        master: String,
        /// The sentinels' URLs (with the sentinels' credentials).
        sentinels: Vec<String>,
        /// The data nodes' username and password.
        credentials: (Option<String>, Option<String>),
    },
}

/// What a handle needs to reach its server.
pub(crate) struct ConnectOptions {
    pub(crate) target: Target,
    pub(crate) timeout: Duration,
    pub(crate) lazy: bool,
    /// Whether concurrent single-key calls share round trips (`coalesce`).
    pub(crate) coalesce: bool,
    /// Asked for credentials on every (re)connect, when set.
    pub(crate) credentials: Option<Hook>,
    /// Whether plain reads may go to replicas (cluster and Sentinel).
    pub(crate) replica_reads: bool,
    /// A private CA for `rediss://`; read only with the `tls` feature.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) tls_root: Option<Vec<u8>>,
}

/// How to reach a node as the handle does: its address, credentials,
/// database and TLS settings, and the credentials hook.
pub(crate) struct NodeAccess {
    pub(crate) info: redis::ConnectionInfo,
    pub(crate) credentials: Option<Hook>,
}

/// The transports a handle can use.
#[derive(Clone)]
pub(crate) enum Connection {
    /// One server, reconnected after failures by redis-rs' manager.
    Standalone(Server),
    /// A cluster: redis-rs' cluster connection, which refreshes its slot map
    /// by itself; MOVED and ASK are followed in `redirect`.
    Cluster(ClusterConnection),
    /// A cluster not reached yet (`lazy_connect`): connected on first use.
    LazyCluster(Arc<Cluster>),
    /// The primary the sentinels name, followed through failovers.
    Sentinel(Arc<SentinelLink>),
}

/// A cluster connection, made on first use (and again after a failed try).
pub(crate) struct Cluster {
    client: ClusterClient,
    connection: OnceCell<ClusterConnection>,
}

impl Cluster {
    pub(crate) async fn connection(&self) -> redis::RedisResult<ClusterConnection> {
        let connect = || self.client.get_async_connection();
        self.connection.get_or_try_init(connect).await.cloned()
    }
}

impl RedisBackend {
    /// Connects (or, lazily, prepares to) and checks the server with PING.
    pub(crate) async fn connect(options: ConnectOptions, stats: Arc<Stats>) -> Result<Self> {
        let timeout = options.timeout;
        let (connection, first, redacted) = match &options.target {
            Target::Standalone(url) => {
                let redacted = redact::url(url);
                let connection = standalone(url, &options, &redacted)?;
                (connection, url.as_str(), redacted)
            }
            Target::Cluster(nodes) => {
                let redacted = redact::nodes(nodes);
                let connection = cluster(nodes, &options, &redacted, false)?;
                let first = nodes.first().map(String::as_str).unwrap_or_default();
                (connection, first, redacted)
            }
            Target::Sentinel {
                master, sentinels, ..
            } => {
                let redacted = format!("sentinel `{master}` at {}", redact::nodes(sentinels));
                let first = sentinels.first().map(String::as_str).unwrap_or_default();
                let connection = sentinel(&options, &redacted, SentinelServerType::Master)?;
                (connection, first, redacted)
            }
        };
        let mut node_info = client(first, &options, &redacted)?
            .get_connection_info()
            .clone();
        if let Target::Sentinel { credentials, .. } = &options.target {
            // Tracking connections go to the primary, with its credentials.
            node_info = node_info.set_redis_settings(data_node(credentials));
        }
        let node_info = Arc::new(NodeAccess {
            info: node_info,
            credentials: options.credentials.clone(),
        });
        let mut connection = RedisConnection(connection);
        if !options.lazy {
            let deadline = tokio::time::Instant::now() + timeout;
            let failed = |source| connect_error(source, &redacted, timeout, deadline);
            let timed_out = || Error::ConnectTimeout {
                url: redacted.clone(),
                after: timeout,
            };
            // Connected now, a cluster needs no first-use check per call.
            if let Connection::LazyCluster(cluster) = &connection.0 {
                match tokio::time::timeout_at(deadline, cluster.connection()).await {
                    Ok(Ok(ready)) => connection = RedisConnection(Connection::Cluster(ready)),
                    Ok(Err(source)) => return Err(failed(source)),
                    Err(_elapsed) => return Err(timed_out()),
                }
            }
            let ping = redis::cmd("PING");
            match tokio::time::timeout_at(deadline, ping.query_async::<String>(&mut connection))
                .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(source)) => return Err(failed(source)),
                Err(_elapsed) => return Err(timed_out()),
            }
        }
        let replica = replica_connection(&options, &redacted)?;
        let mut backend = RedisBackend::new(
            connection,
            node_info,
            timeout,
            redacted,
            stats,
            options.coalesce,
        );
        backend.replica = replica;
        Ok(backend)
    }
}

/// Why connecting failed, decided as every call's failures are: a server
/// that did not answer within `timeout` is a timeout, however reported.
fn connect_error(
    source: redis::RedisError,
    redacted: &str,
    timeout: Duration,
    deadline: tokio::time::Instant,
) -> Error {
    let attempt = Attempt {
        retry: Retry::Idempotent,
        may_resend: false,
        deadline_passed: tokio::time::Instant::now() >= deadline,
    };
    match after_error(&source, attempt) {
        NextStep::Timeout { .. } => Error::ConnectTimeout {
            url: redacted.to_owned(),
            after: timeout,
        },
        NextStep::Resend | NextStep::Pause | NextStep::Fail { .. } => Error::Connection {
            url: redacted.to_owned(),
            source,
        },
    }
}

/// A standalone server's connection manager; it connects in the background.
fn standalone(url: &str, options: &ConnectOptions, redacted: &str) -> Result<Connection> {
    let client = client(url, options, redacted)?;
    let mut config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(backstop(options.timeout)))
        // One timer per call: ours.
        .set_response_timeout(None)
        // One connect attempt per reconnect: a refusal opens the breaker
        // (see `server`), which retries in the background.
        .set_number_of_retries(0);
    if let Some(hook) = &options.credentials {
        config = config.set_credentials_provider(hook.clone());
    }
    let manager = ConnectionManager::new_lazy_with_config(client, config).map_err(|source| {
        Error::Connection {
            url: redacted.to_owned(),
            source,
        }
    })?;
    Ok(Connection::Standalone(Server::new(
        manager,
        options.timeout,
    )))
}

/// The data nodes' settings: their credentials, database 0.
fn data_node((username, password): &(Option<String>, Option<String>)) -> RedisConnectionInfo {
    let mut info = RedisConnectionInfo::default();
    if let Some(username) = username {
        info = info.set_username(username);
    }
    if let Some(password) = password {
        info = info.set_password(password);
    }
    info
}

/// The connection plain reads take with `read_from_replicas`: a cluster
/// client that reads from replicas, or the replicas behind Sentinel; `None`
/// on one server (it has no replicas to read from).
fn replica_connection(options: &ConnectOptions, redacted: &str) -> Result<Option<RedisConnection>> {
    let connection = match &options.target {
        _ if !options.replica_reads => return Ok(None),
        Target::Standalone(_) => return Ok(None),
        Target::Cluster(nodes) => cluster(nodes, options, redacted, true)?,
        Target::Sentinel { .. } => sentinel(options, redacted, SentinelServerType::Replica)?,
    };
    Ok(Some(RedisConnection(connection)))
}

/// The link to a primary (or its replicas) through its sentinels; nothing
/// is connected yet.
fn sentinel(
    options: &ConnectOptions,
    redacted: &str,
    server: SentinelServerType,
) -> Result<Connection> {
    let Target::Sentinel {
        master,
        sentinels,
        credentials,
    } = &options.target
    else {
        return Err(Error::config("not a Sentinel target"));
    };
    let data = (data_node(credentials), options.credentials.clone());
    let clients = (sentinels.iter())
        .map(|url| client(url, options, redacted))
        .collect::<Result<Vec<_>>>()?;
    let watched = matches!(server, SentinelServerType::Master);
    let link = SentinelLink::new(
        (sentinels, clients),
        (master, server),
        data,
        options.timeout,
    )
    .map_err(|err| {
        Error::config(format!(
            "invalid Sentinel settings {redacted}: {}",
            describe(&err)
        ))
    })?;
    let link = Arc::new(link);
    if watched {
        sentinel_watch::spawn(&link);
    }
    Ok(Connection::Sentinel(link))
}

/// A cluster client for `nodes`, with TLS settings when they are `rediss://`;
/// with `replicas`, read-only commands go to a random replica of their slot
/// (one `CLUSTER SLOTS` lists: a replica that has replicated nothing yet is
/// not listed, and its primary answers instead).
fn cluster(
    nodes: &[String],
    options: &ConnectOptions,
    redacted: &str,
    replicas: bool,
) -> Result<Connection> {
    let invalid = |err: redis::RedisError| {
        Error::config(format!(
            "invalid Redis Cluster nodes `{redacted}`: {}",
            describe(&err)
        ))
    };
    let tls = nodes.iter().any(|node| node.starts_with("rediss://"));
    // No retries inside redis-rs: redirections are followed in `redirect`,
    // and a command the cluster did not run goes again from `bounded`,
    // within the caller's timeout and only where that is safe.
    let mut builder = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
        .connection_timeout(backstop(options.timeout))
        .response_timeout(backstop(options.timeout))
        .retries(0);
    if let Some(hook) = &options.credentials {
        builder = builder.set_credentials_provider(hook.clone());
    }
    if replicas {
        let strategy = redis::cluster_read_routing::RandomReplicaStrategy;
        builder = builder.read_routing_strategy(strategy);
    }
    if tls {
        builder = cluster_tls(builder, options, redacted)?;
    }
    let client = builder.build().map_err(invalid)?;
    Ok(Connection::LazyCluster(Arc::new(Cluster {
        client,
        connection: OnceCell::new(),
    })))
}

#[cfg(feature = "tls")]
fn cluster_tls(
    builder: ClusterClientBuilder,
    options: &ConnectOptions,
    _redacted: &str,
) -> Result<ClusterClientBuilder> {
    // rustls needs a crypto provider; an application may have set its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = builder.tls(redis::cluster::TlsMode::Secure);
    Ok(match &options.tls_root {
        Some(pem) => builder.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        }),
        None => builder,
    })
}

#[cfg(not(feature = "tls"))]
fn cluster_tls(
    _builder: ClusterClientBuilder,
    _options: &ConnectOptions,
    redacted: &str,
) -> Result<ClusterClientBuilder> {
    Err(Error::config(format!(
        "`{redacted}` asks for TLS: enable the `tls` feature of cache-core"
    )))
}

/// The redis-rs client for the URL, with TLS settings for `rediss://`.
#[cfg_attr(not(feature = "tls"), allow(unused_variables))]
fn client(url: &str, options: &ConnectOptions, redacted: &str) -> Result<redis::Client> {
    let invalid = |err: redis::RedisError| {
        Error::config(format!(
            "invalid Redis URL `{redacted}`: {}",
            describe(&err)
        ))
    };
    if !url.starts_with("rediss://") {
        return redis::Client::open(url).map_err(invalid);
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
                redis::Client::build_with_tls(url, certificates).map_err(invalid)
            }
            None => redis::Client::open(url).map_err(invalid),
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
/// reconnects by itself (while a server that refused a connection is down,
/// its commands fail at once, as the handle's own do). Whatever transport the
/// handle uses (one server, a cluster or Sentinel), this type stays the same.
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

impl RedisConnection {
    /// Sends one command; on one server without boxing its future (the
    /// trait's `req_packed_command` must box it: one allocation a call).
    pub(crate) async fn command(&mut self, cmd: &Cmd) -> redis::RedisResult<Value> {
        match &mut self.0 {
            Connection::Standalone(server) => server.command(cmd).await,
            _ => self.req_packed_command(cmd).await,
        }
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.0, Connection::Cluster(_) | Connection::LazyCluster(_))
    }

    /// The cluster connection, connecting a lazy one; `None` on one server.
    async fn cluster(&self) -> Option<redis::RedisResult<ClusterConnection>> {
        match &self.0 {
            Connection::Standalone(_) | Connection::Sentinel(_) => None,
            Connection::Cluster(connection) => Some(Ok(connection.clone())),
            Connection::LazyCluster(cluster) => Some(cluster.connection().await),
        }
    }

    /// The nodes a keyspace walk must visit: `None`, the one server, or every
    /// primary of a cluster (from CLUSTER SLOTS).
    pub(crate) async fn primaries(&self) -> redis::RedisResult<Vec<Option<Node>>> {
        if let Connection::Sentinel(link) = &self.0 {
            // Boxed: the sentinel lookup's future is deep, and would make
            // every caller's (`clear()`'s) too deep for the compiler.
            let current: RedisFuture<'_, Node> = Box::pin(link.current());
            return Ok(vec![Some(current.await?)]);
        }
        let Some(connection) = self.cluster().await else {
            return Ok(vec![None]);
        };
        let mut connection = connection?;
        let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut connection)
            .await?;
        let mut nodes: Vec<Option<Node>> = Vec::new();
        for range in ranges {
            // [start, end, [host, port, id, ...], replicas...]
            let parts: Vec<redis::Value> = redis::FromRedisValue::from_redis_value(range)?;
            let Some(primary) = parts.into_iter().nth(2) else {
                continue;
            };
            let (host, port): (String, u16) = match primary {
                redis::Value::Array(items) => {
                    let mut items = items.into_iter();
                    let host = items.next().map(String::from_redis_value).transpose()?;
                    let port = items.next().map(u16::from_redis_value).transpose()?;
                    match (host, port) {
                        (Some(host), Some(port)) => (host, port),
                        _ => continue,
                    }
                }
                _ => continue,
            };
            if !nodes.contains(&Some((host.clone(), port))) {
                nodes.push(Some((host, port)));
            }
        }
        Ok(nodes)
    }

    /// Sends `cmd` to `node` (a cluster node by address), or as usual.
    pub(crate) async fn on_node<T: FromRedisValue>(
        mut self,
        node: Option<&Node>,
        cmd: &Cmd,
    ) -> redis::RedisResult<T> {
        match (self.cluster().await, node) {
            (Some(connection), Some((host, port))) => {
                let mut connection = connection?;
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                });
                let value = connection.route_command(cmd.clone(), routing).await?;
                Ok(T::from_redis_value(value)?)
            }
            _ => cmd.query_async(&mut self).await,
        }
    }
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transport = match self.0 {
            Connection::Standalone(_) => "standalone",
            Connection::Cluster(_) | Connection::LazyCluster(_) => "cluster",
            Connection::Sentinel(_) => "sentinel",
        };
        f.debug_struct("RedisConnection")
            .field("transport", &transport)
            .finish()
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.0 {
            Connection::Standalone(server) => server.req_packed_command(cmd),
            Connection::Cluster(connection) => Box::pin(redirect::command(connection, cmd)),
            Connection::LazyCluster(cluster) => Box::pin(async move {
                let mut connection = cluster.connection().await?;
                redirect::command(&mut connection, cmd).await
            }),
            Connection::Sentinel(link) => Box::pin(link.command(cmd)),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            Connection::Standalone(server) => server.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(connection) => {
                Box::pin(redirect::commands(connection, pipeline, offset, count))
            }
            Connection::LazyCluster(cluster) => Box::pin(async move {
                let mut connection = cluster.connection().await?;
                redirect::commands(&mut connection, pipeline, offset, count).await
            }),
            Connection::Sentinel(link) => Box::pin(link.commands(pipeline, offset, count)),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Connection::Standalone(server) => server.get_db(),
            // A cluster has only database 0; the primary behind sentinels is used at 0.
            Connection::Cluster(_) | Connection::LazyCluster(_) | Connection::Sentinel(_) => 0,
        }
    }
}
