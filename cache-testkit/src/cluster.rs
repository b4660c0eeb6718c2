//! A real local Redis Cluster for tests: 3 masters with a replica each, six
//! `redis-server --cluster-enabled yes` processes on free loopback ports in a
//! temporary directory, joined with `redis-cli --cluster create`.
//!
//! Each node runs under a small shell watchdog that stops it when the test
//! process goes away, so a cluster shared by a whole test binary (a `static`,
//! never dropped) does not outlive it. Dropping a `RedisCluster` stops it at once.
//!
//! - `CACHE_TEST_REDIS_SERVER`: the redis-server binary (default: on `PATH`).
//! - `CACHE_TEST_REDIS_CLI`: the redis-cli binary (default: on `PATH`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cache_core::Cache;

use crate::process::{redis_server_binary, send_signal, unique_namespace};

/// How long a cluster may take to form before the harness gives up.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a manual failover may take before it is asked for again (the
/// replica gives one up after five seconds).
const MANUAL_FAILOVER_WAIT: Duration = Duration::from_secs(6);

/// The node timeout: how long before a silent master is failed over.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(2_000);

/// A running 6-node cluster (3 masters, 3 replicas), stopped on drop.
///
/// ```
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> cache_core::Result<()> {
/// use std::time::Duration;
/// use cache_testkit::RedisCluster;
///
/// let cluster = RedisCluster::start();
/// let cache = cluster.cache("orders", Duration::from_secs(2)).await;
/// let orders = cache.keyspace("order").typed::<u64, String>()?;
/// orders.set(&7, &"paid".to_owned()).await?;
/// let key = orders.key(&7);
///
/// // A planned failover: the replica takes over, no write is lost.
/// let first = cluster.master_of(&key);
/// let second = cluster.fail_over(first);
/// assert_eq!(cluster.master_of(&key), second);
/// assert_eq!(orders.get(&7).await?.as_deref(), Some("paid"));
///
/// // A crash: the new master dies, the cluster promotes its replica (the
/// // first master) after the node timeout, and the dead node comes back.
/// cluster.kill(second);
/// assert_eq!(cluster.wait_for_promotion(second), first);
/// cluster.restart(second);
/// cluster.wait_until_healthy(Duration::from_secs(30)).map_err(cache_core::Error::config)?;
/// assert_eq!(cluster.master_of(&key), first);
/// assert_eq!(orders.get(&7).await?.as_deref(), Some("paid"));
/// # Ok(()) }
/// ```
pub struct RedisCluster {
    ports: Vec<u16>,
    dir: PathBuf,
    /// The nodes' `requirepass`, if any.
    password: Option<String>,
}

static SHARED: OnceLock<RedisCluster> = OnceLock::new();

impl RedisCluster {
    /// The cluster shared by every test of this test binary; each test keeps
    /// to its own namespace.
    pub fn shared() -> &'static RedisCluster {
        SHARED.get_or_init(RedisCluster::start)
    }

    /// A cluster of its own, for tests that kill or reshape nodes.
    pub fn start() -> RedisCluster {
        Self::start_with_password(None)
    }

    /// A cluster of its own whose nodes require `password`.
    pub fn start_with_password(password: Option<&str>) -> RedisCluster {
        let dir = std::env::temp_dir().join(format!("cache-cluster-{}", unique_namespace("c")));
        if let Err(err) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {err}", dir.display());
        }
        let mut last_error = String::new();
        for _attempt in 0..5 {
            let ports = free_node_ports(6);
            let cluster = RedisCluster {
                ports: ports.clone(),
                dir: dir.clone(),
                password: password.map(str::to_owned),
            };
            for &port in &ports {
                cluster.spawn_node(port);
            }
            match cluster.form() {
                Ok(()) => return cluster,
                Err(err) => last_error = err,
            }
            // Dropping stops the nodes; try other ports.
        }
        panic!("could not start a Redis Cluster: {last_error}");
    }

    fn spawn_node(&self, port: u16) {
        let node_dir = self.dir.join(port.to_string());
        if let Err(err) = std::fs::create_dir_all(&node_dir) {
            panic!("cannot create {}: {err}", node_dir.display());
        }
        let server = redis_server_binary();
        let auth = match &self.password {
            Some(password) => format!("'--requirepass' '{password}' '--masterauth' '{password}' "),
            None => String::new(),
        };
        let args = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            &NODE_TIMEOUT.as_millis().to_string(),
            "--repl-diskless-sync",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--loglevel",
            "warning",
        ]
        .map(|arg| format!("'{arg}'"))
        .join(" ");
        let args = format!("{auth}{args}");
        // The watchdog: run the node, stop it when the test process is gone,
        // and then clean up. A node killed by a test keeps its directory
        // (its nodes.conf), so that `restart` brings it back into the cluster.
        let script = format!(
            "cd '{dir}' || exit 1; '{server}' {args} & node=$!; echo $node > pid; \
             while kill -0 {parent} 2>/dev/null && kill -0 $node 2>/dev/null; do sleep 0.5; done; \
             kill -0 {parent} 2>/dev/null && exit 0; \
             kill -9 $node 2>/dev/null; cd / && rm -rf '{dir}'; rmdir '{cluster}' 2>/dev/null",
            dir = node_dir.display(),
            cluster = self.dir.display(),
            server = server.display(),
            parent = std::process::id(),
        );
        let spawned = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Err(err) = spawned {
            panic!("cannot start redis-server for the cluster: {err}");
        }
    }

    fn form(&self) -> Result<(), String> {
        for &port in &self.ports {
            self.wait_for_ping(port)?;
        }
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let output = Command::new(redis_cli())
            .args(self.auth_args())
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .map_err(|err| {
                format!(
                    "cannot run redis-cli ({err}); it comes with Redis \
                     (`apt-get install redis-server`, `brew install redis`), \
                     or set CACHE_TEST_REDIS_CLI to a redis-cli binary"
                )
            })?;
        if !output.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&output.stdout)
            ));
        }
        self.wait_until_healthy(FORM_TIMEOUT)
    }

    /// Waits until every live node says `cluster_state:ok`, every master has
    /// a replica in sync, and all agree on the slots.
    pub fn wait_until_healthy(&self, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let healthy = self.live_ports().iter().all(|&port| {
                self.cli(port, &["CLUSTER", "INFO"])
                    .is_some_and(|info| info.contains("cluster_state:ok"))
            }) && self.replicas_in_sync();
            if healthy {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(format!("cluster not healthy after {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn replicas_in_sync(&self) -> bool {
        let replicas: Vec<u16> = self
            .live_ports()
            .into_iter()
            .filter(|&port| {
                self.cli(port, &["ROLE"])
                    .is_some_and(|role| role.starts_with("slave"))
            })
            .collect();
        replicas.len() >= 3
            && replicas.iter().all(|&port| {
                self.cli(port, &["INFO", "replication"])
                    .is_some_and(|info| info.contains("master_link_status:up"))
            })
    }

    /// The nodes' URLs (with the password), as `Cache::builder().cluster_nodes(..)` takes them.
    pub fn urls(&self) -> Vec<String> {
        let auth = self
            .password
            .as_ref()
            .map(|password| format!(":{password}@"))
            .unwrap_or_default();
        self.ports
            .iter()
            .map(|port| format!("redis://{auth}127.0.0.1:{port}"))
            .collect()
    }

    fn wait_for_ping(&self, port: u16) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < FORM_TIMEOUT {
            if self.answers_ping(port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("node on port {port} did not answer PING"))
    }

    /// Every node's port.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// The ports of the nodes that are masters now.
    pub fn master_ports(&self) -> Vec<u16> {
        self.live_ports()
            .into_iter()
            .filter(|&port| {
                self.cli(port, &["ROLE"])
                    .is_some_and(|role| role.starts_with("master"))
            })
            .collect()
    }

    /// The hash slot of `key`, as the cluster computes it.
    pub fn slot_of(&self, key: &str) -> u16 {
        let Some(slot) = self
            .live_ports()
            .first()
            .and_then(|&port| self.cli(port, &["CLUSTER", "KEYSLOT", key]))
        else {
            panic!("no live node answers CLUSTER KEYSLOT");
        };
        slot.trim()
            .parse()
            .unwrap_or_else(|_| panic!("bad slot {slot}"))
    }

    /// The port of the master that serves `key`'s slot now.
    pub fn master_of(&self, key: &str) -> u16 {
        let slot = self.slot_of(key);
        for port in self.master_ports() {
            let Some(nodes) = self.cli(port, &["CLUSTER", "NODES"]) else {
                continue;
            };
            for line in nodes
                .lines()
                .filter(|line| line.contains("myself") && line.contains("master"))
            {
                let owns = line.split_whitespace().skip(8).any(|range| {
                    let mut bounds = range.split('-').filter_map(|b| b.parse::<u16>().ok());
                    match (bounds.next(), bounds.next()) {
                        (Some(low), Some(high)) => (low..=high).contains(&slot),
                        (Some(only), None) => only == slot,
                        _ => false,
                    }
                });
                if owns {
                    return port;
                }
            }
        }
        panic!("no master owns slot {slot}");
    }

    /// A cache on this cluster under a namespace of its own.
    pub async fn cache(&self, test: &str, timeout: Duration) -> Cache {
        match Cache::builder()
            .cluster_nodes(self.urls())
            .namespace(unique_namespace(test))
            .timeout(timeout)
            .build()
            .await
        {
            Ok(cache) => cache,
            Err(err) => panic!("cannot connect to the test cluster: {err}"),
        }
    }

    /// The process id of the node on `port`.
    pub fn pid(&self, port: u16) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.join(port.to_string()).join("pid")).ok()?;
        text.trim().parse().ok()
    }

    /// Kills the node on `port` with SIGKILL.
    pub fn kill(&self, port: u16) {
        if let Some(pid) = self.pid(port) {
            let _ = Command::new("sh")
                .args(["-c", &format!("kill -9 {pid}")])
                .status();
        }
    }

    /// Starts the node on `port` again after [`kill`](Self::kill), with the
    /// cluster configuration it had: it rejoins (as a replica if its slots
    /// were failed over meanwhile). Waits until it answers PING.
    pub fn restart(&self, port: u16) {
        self.kill(port);
        let started = Instant::now();
        while self.answers_ping(port) && started.elapsed() < FORM_TIMEOUT {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.spawn_node(port);
        if let Err(err) = self.wait_for_ping(port) {
            panic!("could not restart the node on port {port}: {err}");
        }
    }

    /// Fails the master on `port` over to its replica with `CLUSTER
    /// FAILOVER` (a planned switch: no write is lost), waits until the
    /// cluster is healthy again and returns the new master's port.
    pub fn fail_over(&self, port: u16) -> u16 {
        let Some(replica) = self.replica_of(port) else {
            panic!("the master on port {port} has no live replica");
        };
        // A manual failover the master does not confirm within five seconds
        // (a busy machine) is dropped by the replica: ask again until it holds.
        let started = Instant::now();
        while !self.is_serving_master(replica) {
            if started.elapsed() > FORM_TIMEOUT {
                panic!("the replica on port {replica} was not promoted within {FORM_TIMEOUT:?}");
            }
            let linked = self
                .cli(replica, &["INFO", "replication"])
                .is_some_and(|info| info.contains("master_link_status:up"));
            if linked {
                let _ = self.cli(replica, &["CLUSTER", "FAILOVER"]);
            }
            let asked = Instant::now();
            while !self.is_serving_master(replica) && asked.elapsed() < MANUAL_FAILOVER_WAIT {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if let Err(err) = self.wait_until_healthy(FORM_TIMEOUT) {
            panic!("after failing over to port {replica}: {err}");
        }
        replica
    }

    /// Waits until the replica of the master on `port` (killed or frozen by
    /// the test) has taken over, after [`NODE_TIMEOUT`], and returns its port.
    pub fn wait_for_promotion(&self, port: u16) -> u16 {
        let Some(replica) = self.replica_of(port) else {
            panic!("the master on port {port} has no live replica");
        };
        self.wait_until_master(replica);
        replica
    }

    /// The port of a live node that replicates the master on `port`.
    pub fn replica_of(&self, port: u16) -> Option<u16> {
        let master = format!("master_port:{port}\r");
        self.live_ports().into_iter().find(|&candidate| {
            self.cli(candidate, &["INFO", "replication"])
                .is_some_and(|info| info.contains("role:slave") && info.contains(&master))
        })
    }

    fn wait_until_master(&self, port: u16) {
        let started = Instant::now();
        while !self.is_serving_master(port) {
            if started.elapsed() > FORM_TIMEOUT {
                panic!("the node on port {port} did not become a master within {FORM_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the node on `port` is a master of a cluster that serves.
    fn is_serving_master(&self, port: u16) -> bool {
        let master = self
            .cli(port, &["ROLE"])
            .is_some_and(|role| role.starts_with("master"));
        master
            && self
                .cli(port, &["CLUSTER", "INFO"])
                .is_some_and(|info| info.contains("cluster_state:ok"))
    }

    /// Freezes the node on `port` with SIGSTOP: it keeps its connections
    /// (and the kernel still accepts new ones) but answers nothing.
    pub fn freeze(&self, port: u16) {
        self.signal(port, "STOP");
    }

    /// Thaws a node frozen by [`freeze`](Self::freeze).
    pub fn resume(&self, port: u16) {
        self.signal(port, "CONT");
    }

    fn signal(&self, port: u16, signal: &str) {
        let Some(pid) = self.pid(port) else {
            panic!("no node runs on port {port}");
        };
        send_signal(pid, signal);
    }

    /// The ports whose node answers PING.
    pub fn live_ports(&self) -> Vec<u16> {
        self.ports
            .iter()
            .copied()
            .filter(|&port| self.answers_ping(port))
            .collect()
    }

    fn answers_ping(&self, port: u16) -> bool {
        self.cli(port, &["PING"])
            .is_some_and(|pong| pong.trim() == "PONG")
    }

    /// Runs `redis-cli -p port args...` and returns its output.
    pub fn cli(&self, port: u16, args: &[&str]) -> Option<String> {
        cli(&self.auth_args(), port, args)
    }

    /// redis-cli's arguments for the password, if there is one.
    fn auth_args(&self) -> Vec<String> {
        match &self.password {
            Some(password) => vec!["--no-auth-warning".into(), "-a".into(), password.clone()],
            None => Vec::new(),
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for &port in &self.ports {
            self.kill(port);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn redis_cli() -> PathBuf {
    std::env::var_os("CACHE_TEST_REDIS_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-cli"))
}

fn cli(auth: &[String], port: u16, args: &[&str]) -> Option<String> {
    let output = Command::new(redis_cli())
        .args(auth)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `count` ports below 55535 whose cluster bus port (port + 10000) is free too.
fn free_node_ports(count: usize) -> Vec<u16> {
    // Clusters started in one process continue where the last one stopped.
    static NEXT: std::sync::Mutex<u16> = std::sync::Mutex::new(0);
    let mut next = NEXT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if *next == 0 {
        *next = 20_000 + (std::process::id() % 20_000) as u16;
    }
    let mut ports = Vec::new();
    let mut candidate = *next;
    while ports.len() < count {
        candidate = if candidate >= 45_000 {
            20_000
        } else {
            candidate + 7
        };
        let free = |port: u16| TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free(candidate) && free(candidate + 10_000) && !ports.contains(&candidate) {
            ports.push(candidate);
        }
    }
    *next = candidate;
    ports
}
