//! The Redis backend: every call bounded by the operation's timeout, retried
//! only where that is safe, with errors that name the key. The transport (one
//! server or a cluster) is chosen in `connect` and hidden behind one
//! `Connection`; what to do after a failed attempt is decided in `next`.

mod breaker;
mod coalesce;
mod connect;
mod credentials;
mod node;
mod redirect;
mod sentinel;
mod sentinel_watch;
mod server;
mod tracking;

pub(crate) use self::coalesce::Op;
pub(crate) use self::connect::NodeAccess;
pub use self::connect::RedisConnection;
pub(crate) use self::connect::{ConnectOptions, Target};
pub use self::credentials::Credentials;
pub(crate) use self::credentials::{CredentialsFuture, Hook};
pub(crate) use self::tracking::{Event, Health, Opened, Tracker};

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::{Cmd, FromRedisValue, Script};
use tracing::Instrument;

use super::attempts::{CallSite, attempts};
pub(crate) use super::next::Retry;
use super::ops::{Atomic, RedisForm};
use crate::error::{Error, Result};
use crate::stats::Stats;

/// The positions of `keys` grouped by what can go in one command: all
/// together on one server; on a cluster, one group per hash slot, in the
/// order first seen (positions keep the callers' order).
pub(crate) fn slot_groups<'k>(
    cluster: bool,
    keys: impl Iterator<Item = &'k str>,
) -> Vec<Vec<usize>> {
    if !cluster {
        return vec![(0..keys.count()).collect()];
    }
    let mut groups: Vec<(redis::cluster_routing::Slot, Vec<usize>)> = Vec::new();
    for (position, key) in keys.enumerate() {
        let slot = redis::cluster_routing::Slot::for_key(key);
        match groups.iter_mut().find(|(known, _)| *known == slot) {
            Some((_, positions)) => positions.push(position),
            None => groups.push((slot, vec![position])),
        }
    }
    groups.into_iter().map(|(_, positions)| positions).collect()
}

/// How many keys one SCAN step asks for while clearing.
const CLEAR_BATCH: u64 = 1_000;

#[derive(Clone)]
pub(crate) struct RedisBackend {
    connection: RedisConnection,
    /// The server, or the first cluster node, and the credentials hook (for
    /// tracking connections).
    node_info: Arc<NodeAccess>,
    timeout: Duration,
    redacted_url: String,
    stats: Arc<Stats>,
    /// The queue of calls that share round trips; `None` when turned off.
    coalescer: Option<Arc<coalesce::Coalescer>>,
    /// Where plain reads may go (`read_from_replicas`).
    replica: Option<RedisConnection>,
    #[cfg(feature = "metrics")]
    call_times: Arc<crate::telemetry::CallTimes>,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("url", &self.redacted_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    pub(crate) fn new(
        connection: RedisConnection,
        node_info: Arc<NodeAccess>,
        timeout: Duration,
        redacted_url: String,
        stats: Arc<Stats>,
        coalesce: bool,
    ) -> Self {
        RedisBackend {
            connection,
            node_info,
            timeout,
            redacted_url,
            stats,
            coalescer: coalesce.then(Arc::default),
            replica: None,
            #[cfg(feature = "metrics")]
            call_times: Arc::default(),
        }
    }

    /// This backend reading from replicas; `None` without replica reads.
    pub(crate) fn replica_reads(&self) -> Option<RedisBackend> {
        let connection = self.replica.clone()?;
        Some(RedisBackend {
            connection,
            coalescer: None,
            replica: None,
            ..self.clone()
        })
    }

    /// Whether the transport is a cluster, where keys of different hash
    /// slots cannot share one command.
    pub(crate) fn is_cluster(&self) -> bool {
        self.connection.is_cluster()
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn connection(&self) -> RedisConnection {
        self.connection.clone()
    }

    /// Runs `call` within what is left of the operation's timeout and maps
    /// its error to the crate's error (see [`attempts`]), with its span,
    /// its latency and its error counted.
    async fn bounded<T, F, Fut>(
        &self,
        operation: &'static str,
        key: &str,
        retry: Retry,
        call: F,
    ) -> Result<T>
    where
        F: Fn(RedisConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        // Operation only: keys can hold personal data and values never appear.
        let span = self.call_span(operation);
        #[cfg(feature = "metrics")]
        let started = std::time::Instant::now();
        let site = CallSite {
            operation,
            key,
            retry,
            timeout: self.timeout,
        };
        let attempt = || call(self.connection.clone()).instrument(span.clone());
        let result = attempts(site, attempt).await;
        if let Err(error) = &result {
            self.stats.count_error(error);
        }
        #[cfg(feature = "metrics")]
        (self.call_times).record(operation, started.elapsed(), result.as_ref().err());
        result
    }

    /// The span of one Redis call, with OpenTelemetry's database client
    /// attributes: the system, the command, the server (not known per call on
    /// a cluster) and the database index. Never keys or values.
    fn call_span(&self, operation: &'static str) -> tracing::Span {
        let (address, port) = match self.node_info.info.addr() {
            _ if self.is_cluster() => (None, None),
            redis::ConnectionAddr::Tcp(host, port)
            | redis::ConnectionAddr::TcpTls { host, port, .. } => {
                (Some(host.as_str()), Some(*port))
            }
            redis::ConnectionAddr::Unix(path) => (path.to_str(), None),
            _ => (None, None),
        };
        tracing::debug_span!(
            "cache.redis",
            otel.name = operation,
            otel.kind = "client",
            db.system.name = "redis",
            db.operation.name = operation,
            server.address = address,
            server.port = port,
            db.namespace = self.node_info.info.redis_settings().db(),
        )
    }

    /// The timeout error of a call `coalesce` gave up on.
    fn timeout_error(&self, operation: &'static str, key: &str, outcome_unknown: bool) -> Error {
        let retry = Retry::Idempotent;
        let site = CallSite {
            operation,
            key,
            retry,
            timeout: self.timeout,
        };
        site.timed_out(outcome_unknown)
    }

    pub(crate) async fn send<T: FromRedisValue>(
        &self,
        operation: &'static str,
        key: &str,
        cmd: Cmd,
        retry: Retry,
    ) -> Result<T> {
        let cmd = &cmd;
        let send = |mut connection: RedisConnection| async move {
            let value = connection.command(cmd).await?;
            Ok(redis::from_redis_value(value.extract_error()?)?)
        };
        self.bounded(operation, key, retry, send).await
    }

    /// Runs `script` on `keys` with `args` (EVALSHA, falling back to EVAL when
    /// the server has lost its script cache), never twice. `key` names the
    /// operation's main key in errors.
    pub(crate) async fn script<T: FromRedisValue>(
        &self,
        operation: &'static str,
        script: &Script,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<T> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        let main_key = keys.first().copied().unwrap_or_default();
        let invocation = &invocation;
        let run = |mut connection| async move { invocation.invoke_async(&mut connection).await };
        self.bounded(operation, main_key, Retry::Never, run).await
    }

    /// Runs `pipe` (atomic when built with `.atomic()`) in one round trip.
    pub(crate) async fn pipeline<T: FromRedisValue>(
        &self,
        operation: &'static str,
        key: &str,
        pipe: redis::Pipeline,
        retry: Retry,
    ) -> Result<T> {
        let pipe = &pipe;
        let send = |mut connection| async move { pipe.query_async(&mut connection).await };
        self.bounded(operation, key, retry, send).await
    }

    /// Removes every key that starts with one of `heads`: SCAN with the head
    /// as a pattern (heads are escaped, so they hold no glob characters) and
    /// UNLINK in batches, on every primary of a cluster. Each round trip is
    /// bounded by the timeout; the whole clear takes as long as the keys do.
    pub(crate) async fn clear(&self, heads: &[String]) -> Result<u64> {
        let head = heads.first().map(String::as_str).unwrap_or_default();
        let primaries = |connection: RedisConnection| async move { connection.primaries().await };
        let nodes = self
            .bounded("CLUSTER SLOTS", head, Retry::Idempotent, primaries)
            .await?;
        let mut removed = 0;
        for node in &nodes {
            for head in heads {
                let mut cursor = 0_u64;
                loop {
                    let mut scan = redis::cmd("SCAN");
                    scan.arg(cursor).arg("MATCH").arg(format!("{head}*"));
                    scan.arg("COUNT").arg(CLEAR_BATCH);
                    let scan = &scan;
                    let on_node = |connection: RedisConnection| async move {
                        connection.on_node(node.as_ref(), scan).await
                    };
                    let (next, keys): (u64, Vec<String>) = self
                        .bounded("SCAN", head, Retry::Idempotent, on_node)
                        .await?;
                    if !keys.is_empty() {
                        let unlink = redis::cmd("UNLINK").arg(&keys).take();
                        let count: u64 =
                            self.send("UNLINK", head, unlink, Retry::Idempotent).await?;
                        removed += count;
                    }
                    cursor = next;
                    if cursor == 0 {
                        break;
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Runs one multi-step operation in its Redis form.
    pub(crate) async fn run<O: Atomic>(&self, op: &O) -> Result<O::Output> {
        let reply: Result<O::Reply> = match op.redis() {
            RedisForm::Script(script, keys, args) => {
                let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                self.script(O::NAME, script, &keys, &args).await
            }
            RedisForm::Pipeline(key, pipe, retry) => self.pipeline(O::NAME, key, pipe, retry).await,
            RedisForm::Command(key, cmd, retry) => self.send(O::NAME, key, cmd, retry).await,
        };
        op.decode(reply.map_err(|error| op.refine(error))?)
    }
}
