//! A real local Redis Cluster for tests: 3 masters with a replica each, six
//! `redis-server --cluster-enabled yes` processes on free loopback ports in a
//! temporary directory, joined with `redis-cli --cluster create`.
//!
//! Each node runs under a small shell watchdog that stops it when the test
//! process goes away, so a cluster shared by a whole test binary (a `static`,
//! never dropped) does not outlive it. Dropping a `TestCluster` stops it at once.
//!
//! - `CACHE_TEST_REDIS_SERVER`: the redis-server binary (default: on `PATH`).
//! - `CACHE_TEST_REDIS_CLI`: the redis-cli binary (default: on `PATH`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cache_core::Cache;

use crate::unique_namespace;

/// How long a cluster may take to form before the harness gives up.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// The node timeout: how long before a silent master is failed over.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(2_000);

/// A running 6-node cluster (3 masters, 3 replicas).
pub struct TestCluster {
    ports: Vec<u16>,
    dir: PathBuf,
    /// The nodes' `requirepass`, if any.
    password: Option<String>,
}

static SHARED: OnceLock<TestCluster> = OnceLock::new();

impl TestCluster {
    /// The cluster shared by every test of this test binary; each test keeps
    /// to its own namespace.
    pub fn shared() -> &'static TestCluster {
        SHARED.get_or_init(TestCluster::start)
    }

    /// A cluster of its own, for tests that kill or reshape nodes.
    pub fn start() -> TestCluster {
        Self::start_with_password(None)
    }

    /// A cluster of its own whose nodes require `password`.
    pub fn start_with_password(password: Option<&str>) -> TestCluster {
        let dir = std::env::temp_dir().join(format!("cache-cluster-{}", unique_namespace("c")));
        if let Err(err) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {err}", dir.display());
        }
        let mut last_error = String::new();
        for _attempt in 0..5 {
            let ports = free_node_ports(6);
            let cluster = TestCluster {
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
        let server = crate::redis_server_binary();
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
        // The watchdog: run the node, stop it when the test process is gone.
        let script = format!(
            "cd '{dir}' || exit 1; '{server}' {args} & node=$!; echo $node > pid; \
             while kill -0 {parent} 2>/dev/null && kill -0 $node 2>/dev/null; do sleep 0.5; done; \
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
                    "cannot run redis-cli ({err}); it comes with redis-server \
                     (scripts/test.sh installs it), or set CACHE_TEST_REDIS_CLI"
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
            if self
                .cli(port, &["PING"])
                .is_some_and(|pong| pong.trim() == "PONG")
            {
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

    /// Freezes the node on `port` with SIGSTOP: it keeps its connections
    /// (and the kernel still accepts new ones) but answers nothing.
    pub fn pause(&self, port: u16) {
        self.signal(port, "STOP");
    }

    /// Thaws a node frozen by [`pause`](Self::pause).
    pub fn resume(&self, port: u16) {
        self.signal(port, "CONT");
    }

    fn signal(&self, port: u16, signal: &str) {
        let Some(pid) = self.pid(port) else {
            panic!("no node runs on port {port}");
        };
        crate::send_signal(pid, signal);
    }

    /// The ports whose node answers PING.
    pub fn live_ports(&self) -> Vec<u16> {
        self.ports
            .iter()
            .copied()
            .filter(|&port| {
                self.cli(port, &["PING"])
                    .is_some_and(|pong| pong.trim() == "PONG")
            })
            .collect()
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

impl Drop for TestCluster {
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
