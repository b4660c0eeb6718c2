//! A local Sentinel deployment for one test: a primary, two replicas and
//! three sentinels, each on a free port in a temporary directory, killed on
//! drop. Sentinels mark a silent primary down after 1 s and fail over at
//! once, so a test sees a promotion within a few seconds.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cache_core::{Cache, CacheBuilder};

use crate::RedisServer;
use crate::process::{free_port, redis_server_binary, unique_namespace, wait_until_ours};

/// The name the sentinels monitor the primary under.
pub const MASTER: &str = "cache-test-primary";

/// Passwords of a deployment with authentication: the data nodes' user
/// `app` has `data`; the sentinels require `sentinel`. The data nodes'
/// `default` user may only PING and INFO (the harness's readiness check).
#[derive(Clone, Copy)]
pub struct Passwords {
    /// The data nodes' user `app`'s password.
    pub data: &'static str,
    /// The sentinels' password.
    pub sentinel: &'static str,
}

/// One Sentinel deployment.
pub struct RedisSentinel {
    /// The data nodes; the first is the primary the deployment started with.
    pub nodes: Vec<RedisServer>,
    sentinels: Vec<Child>,
    ports: Vec<u16>,
    dir: PathBuf,
    namespace: String,
    passwords: Option<Passwords>,
}

impl RedisSentinel {
    /// Starts the deployment and waits until every sentinel sees the
    /// primary, both replicas and the other sentinels.
    pub async fn start(test: &str) -> Self {
        Self::start_with_passwords(test, None).await
    }

    /// [`start`](Self::start), with authentication on the data nodes and
    /// the sentinels when `passwords` are given.
    pub async fn start_with_passwords(test: &str, passwords: Option<Passwords>) -> Self {
        let namespace = unique_namespace(test);
        // Extra arguments: always spawned, never an external server.
        let mut common = vec!["--appendonly".to_owned(), "no".to_owned()];
        if let Some(Passwords { data, .. }) = passwords {
            let acl = format!(
                "--user default on nopass -@all +ping +info --user app on >{data} ~* &* +@all \
                 --masteruser app --masterauth {data}"
            );
            common.extend(acl.split_whitespace().map(str::to_owned));
        }
        let args: Vec<&str> = common.iter().map(String::as_str).collect();
        let primary = RedisServer::start_with(test, &args);
        let primary_port = port_of(primary.url());
        let mut replica_of = common.clone();
        replica_of
            .extend(["--replicaof", "127.0.0.1", &primary_port.to_string()].map(str::to_owned));
        let replica_args: Vec<&str> = replica_of.iter().map(String::as_str).collect();
        let mut nodes = vec![primary];
        for _ in 0..2 {
            nodes.push(RedisServer::start_with(test, &replica_args));
        }
        let dir = std::env::temp_dir().join(format!("cache-sentinel-{namespace}"));
        if let Err(err) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {err}", dir.display());
        }
        let mut deployment = RedisSentinel {
            nodes,
            sentinels: Vec::new(),
            ports: Vec::new(),
            dir,
            namespace,
            passwords,
        };
        for index in 0..3 {
            deployment.spawn_sentinel(index, primary_port);
        }
        deployment.wait_until_settled().await;
        deployment
    }

    /// Starts sentinel `index`, on another free port if the first one was
    /// taken before the sentinel could bind it.
    fn spawn_sentinel(&mut self, index: usize, primary_port: u16) {
        let mut last_error = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let mut child = self.spawn_sentinel_on(index, port, primary_port);
            match wait_until_ours(&mut child, port, &self.url_of(port)) {
                Ok(()) => {
                    self.sentinels.push(child);
                    self.ports.push(port);
                    return;
                }
                Err(err) => last_error = err,
            }
        }
        panic!("could not start sentinel {index}: {last_error}");
    }

    fn spawn_sentinel_on(&self, index: usize, port: u16, primary_port: u16) -> Child {
        let config = self.dir.join(format!("sentinel-{index}.conf"));
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\nloglevel warning\n\
             sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n\
             sentinel down-after-milliseconds {MASTER} 1000\n\
             sentinel failover-timeout {MASTER} 4000\n\
             sentinel parallel-syncs {MASTER} 2\n{auth}",
            dir = self.dir.display(),
            auth = match self.passwords {
                Some(Passwords { data, sentinel }) => format!(
                    "requirepass {sentinel}\nsentinel sentinel-pass {sentinel}\n\
                     sentinel auth-user {MASTER} app\nsentinel auth-pass {MASTER} {data}\n"
                ),
                None => String::new(),
            }
        );
        if let Err(err) = std::fs::write(&config, text) {
            panic!("cannot write {}: {err}", config.display());
        }
        let child = Command::new(redis_server_binary())
            .arg(&config)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(child) => child,
            Err(err) => panic!("cannot start a sentinel (redis-server --sentinel): {err}"),
        }
    }

    /// The URL of the sentinel on `port` (with its password, if it has one).
    fn url_of(&self, port: u16) -> String {
        match self.passwords {
            Some(Passwords { sentinel, .. }) => format!("redis://:{sentinel}@127.0.0.1:{port}"),
            None => format!("redis://127.0.0.1:{port}"),
        }
    }

    /// The sentinels' URLs (with their password, if they have one).
    pub fn urls(&self) -> Vec<String> {
        self.ports.iter().map(|port| self.url_of(*port)).collect()
    }

    /// A builder for a handle on this deployment, under the test's namespace.
    pub fn builder(&self) -> CacheBuilder {
        Cache::builder()
            .sentinel(MASTER, self.urls())
            .namespace(self.namespace.clone())
    }

    /// The port of the primary the sentinels name now (the first that answers).
    pub async fn primary_port(&self) -> Option<u16> {
        for port in &self.ports {
            if let Some(named) = self.named_by(*port).await {
                return Some(named);
            }
        }
        None
    }

    /// The port of the primary the sentinel on `port` names.
    async fn named_by(&self, port: u16) -> Option<u16> {
        let ask = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(MASTER)
            .clone();
        let reply: redis::RedisResult<Option<(String, String)>> = self.ask(port, &ask).await;
        reply.ok().flatten()?.1.parse().ok()
    }

    /// The node (index in `nodes`) the sentinels name as primary.
    pub async fn primary_index(&self) -> Option<usize> {
        let port = self.primary_port().await?;
        (self.nodes.iter()).position(|node| port_of(node.url()) == port)
    }

    /// Waits (up to 30 s) until the sentinels name a primary other than `old`.
    pub async fn wait_for_promotion(&self, old: u16) -> u16 {
        let started = Instant::now();
        loop {
            if let Some(port) = self.primary_port().await
                && port != old
            {
                return port;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no replica was promoted within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A planned failover (`SENTINEL FAILOVER`): a replica is promoted while
    /// the primary still runs; it is demoted (and resynced from the new
    /// primary, losing what was written to it meanwhile) seconds later.
    pub async fn fail_over(&self) {
        let mut last = None;
        for _ in 0..50 {
            let asked: redis::RedisResult<()> = self
                .ask(
                    self.ports[0],
                    redis::cmd("SENTINEL").arg("FAILOVER").arg(MASTER),
                )
                .await;
            match asked {
                Ok(()) => return,
                // Refused while a sentinel still settles: ask again.
                Err(err) => last = Some(err),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("SENTINEL FAILOVER was refused: {last:?}");
    }

    /// Waits (up to 30 s) until any sentinel names a primary other than
    /// `old`: the moment of the announcement, as a client can see it.
    pub async fn wait_for_switch(&self, old: u16) -> u16 {
        let started = Instant::now();
        loop {
            for port in &self.ports {
                if let Some(named) = self.named_by(*port).await
                    && named != old
                {
                    return named;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no sentinel announced a new primary within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits (up to 60 s) until the node at `index` is a replica in sync
    /// with the primary on port `primary`.
    pub async fn wait_until_replica_of(&self, index: usize, primary: u16) {
        let started = Instant::now();
        loop {
            let mut raw = self.nodes[index].raw().await;
            let info: redis::RedisResult<String> = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut raw)
                .await;
            let info = info.unwrap_or_default();
            if info.contains("role:slave")
                && info.contains(&format!("master_port:{primary}"))
                && info.contains("master_link_status:up")
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "node {index} did not become a replica of {primary} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn ask<T: redis::FromRedisValue>(
        &self,
        port: u16,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        let client = redis::Client::open(self.url_of(port))?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        cmd.query_async(&mut connection).await
    }

    async fn wait_until_settled(&self) {
        let started = Instant::now();
        loop {
            let Err(lagging) = self.settled().await else {
                return;
            };
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the Sentinel deployment did not settle within 30 s: {lagging}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether every sentinel knows both replicas and both other sentinels;
    /// if not, what the first one that does not sees.
    async fn settled(&self) -> Result<(), String> {
        for port in &self.ports {
            let replicas: redis::RedisResult<Vec<redis::Value>> = self
                .ask(*port, redis::cmd("SENTINEL").arg("replicas").arg(MASTER))
                .await;
            let others: redis::RedisResult<Vec<redis::Value>> = self
                .ask(*port, redis::cmd("SENTINEL").arg("sentinels").arg(MASTER))
                .await;
            match (replicas, others) {
                (Ok(replicas), Ok(others)) if replicas.len() == 2 && others.len() == 2 => {}
                (replicas, others) => {
                    let count = |seen: redis::RedisResult<Vec<redis::Value>>| match seen {
                        Ok(seen) => seen.len().to_string(),
                        Err(err) => format!("error ({err})"),
                    };
                    return Err(format!(
                        "the sentinel on port {port} sees {} replicas and {} other sentinels",
                        count(replicas),
                        count(others)
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        for child in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The port of a `redis://127.0.0.1:PORT` URL.
pub fn port_of(url: &str) -> u16 {
    let port = url.rsplit(':').next().unwrap_or_default();
    match port.trim_end_matches('/').parse() {
        Ok(port) => port,
        Err(_) => panic!("no port in {url}"),
    }
}
