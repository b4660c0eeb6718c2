//! One spawned `redis-server` on a free loopback port, in a temporary
//! directory, killed on drop; or an external server named by
//! `CACHE_TEST_REDIS_URL`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cache_core::Cache;

use crate::process::{
    free_port, redis_server_binary, send_signal, unique_namespace, wait_until_ours,
};

/// A Redis server for one test: spawned and owned, or external.
pub struct RedisServer {
    url: String,
    namespace: String,
    server: Option<SpawnedServer>,
}

struct SpawnedServer {
    child: Child,
    port: u16,
    dir: PathBuf,
    extra_args: Vec<String>,
}

impl RedisServer {
    /// Starts a server for the test named `test` (or uses `CACHE_TEST_REDIS_URL`).
    pub fn start(test: &str) -> Self {
        Self::start_with(test, &[])
    }

    /// Like [`start`](Self::start), passing extra `redis-server` arguments
    /// (e.g. `--appendonly yes`). Always spawns, since the arguments matter.
    pub fn start_with(test: &str, extra_args: &[&str]) -> Self {
        let namespace = unique_namespace(test);
        if let (true, Ok(url)) = (extra_args.is_empty(), std::env::var("CACHE_TEST_REDIS_URL")) {
            return RedisServer {
                url,
                namespace,
                server: None,
            };
        }
        let dir = std::env::temp_dir().join(format!("cache-test-{namespace}"));
        if let Err(err) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {err}", dir.display());
        }
        let extra_args: Vec<String> = extra_args.iter().map(|s| (*s).to_owned()).collect();
        let mut last_error = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            match SpawnedServer::spawn(port, &dir, extra_args.clone()) {
                Ok(server) => {
                    return RedisServer {
                        url: format!("redis://127.0.0.1:{port}"),
                        namespace,
                        server: Some(server),
                    };
                }
                // Another process may have taken the port between probe and bind.
                Err(err) => last_error = err,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    /// Starts a spawned server that also listens on a Unix socket, and returns
    /// it with its `redis+unix://` URL.
    pub fn start_with_unix_socket(test: &str) -> (Self, String) {
        let socket = std::env::temp_dir().join(format!("{}.sock", unique_namespace(test)));
        let socket_arg = socket.display().to_string();
        let redis = Self::start_with(test, &["--unixsocket", &socket_arg]);
        (redis, format!("redis+unix://{socket_arg}"))
    }

    /// Starts a spawned server that also serves TLS, with a fresh private CA
    /// made by the `openssl` command. Returns it with its `rediss://` URL (host
    /// `localhost`, which the certificate names) and the CA in PEM.
    pub fn start_with_tls(test: &str) -> (Self, String, Vec<u8>) {
        let dir = std::env::temp_dir().join(format!("cache-tls-{}", unique_namespace(test)));
        if let Err(err) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {err}", dir.display());
        }
        let Certificates { ca_crt, crt, key } = Certificates::make(&dir);
        let tls_port = free_port().to_string();
        let redis = Self::start_with(
            test,
            &[
                "--tls-port",
                &tls_port,
                "--tls-cert-file",
                &crt,
                "--tls-key-file",
                &key,
                "--tls-ca-cert-file",
                &ca_crt,
                "--tls-auth-clients",
                "no",
            ],
        );
        let ca = match std::fs::read(&ca_crt) {
            Ok(ca) => ca,
            Err(err) => panic!("cannot read {ca_crt}: {err}"),
        };
        (redis, format!("rediss://localhost:{tls_port}"), ca)
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The namespace this test's keys live under.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A cache on this server under the test's namespace.
    pub async fn cache(&self) -> Cache {
        self.cache_with_timeout(Duration::from_secs(2)).await
    }

    /// A cache with a given operation timeout.
    pub async fn cache_with_timeout(&self, timeout: Duration) -> Cache {
        match Cache::builder()
            .url(&self.url)
            .namespace(&self.namespace)
            .timeout(timeout)
            .build()
            .await
        {
            Ok(cache) => cache,
            Err(err) => panic!("cannot connect to the test server {}: {err}", self.url),
        }
    }

    /// A raw redis-rs connection, for checking from outside what the library wrote.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        let client = match redis::Client::open(self.url.as_str()) {
            Ok(client) => client,
            Err(err) => panic!("bad test URL {}: {err}", self.url),
        };
        match client.get_multiplexed_async_connection().await {
            Ok(conn) => conn,
            Err(err) => panic!("cannot open a raw connection to {}: {err}", self.url),
        }
    }

    /// The spawned server's process id (for fault tests).
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(|server| server.child.id())
    }

    /// Kills the spawned server with SIGKILL and waits for it to exit.
    pub fn kill(&mut self) {
        let Some(server) = self.server.as_mut() else {
            panic!("kill needs a spawned server (CACHE_TEST_REDIS_URL names an external one)");
        };
        let _ = server.child.kill();
        let _ = server.child.wait();
    }

    /// Freezes the spawned server with SIGSTOP: it keeps its connections but
    /// answers nothing, like a stalled host.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Thaws a server frozen by [`freeze`](Self::freeze).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, signal: &str) {
        let Some(pid) = self.pid() else {
            panic!(
                "freeze and resume need a spawned server (CACHE_TEST_REDIS_URL names an external one)"
            );
        };
        send_signal(pid, signal);
    }

    /// Starts the spawned server again on the same port and directory. A
    /// handle that found it down while it was killed reconnects in the
    /// background, within half a second; until then its calls fail at once.
    pub fn restart(&mut self) {
        let Some(server) = self.server.as_mut() else {
            panic!("restart needs a spawned server (CACHE_TEST_REDIS_URL names an external one)");
        };
        let _ = server.child.kill();
        let _ = server.child.wait();
        let port = server.port;
        let dir = server.dir.clone();
        let extra_args = server.extra_args.clone();
        match SpawnedServer::spawn(port, &dir, extra_args) {
            Ok(fresh) => *server = fresh,
            Err(err) => panic!("could not restart redis-server on port {port}: {err}"),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.as_mut() {
            // A paused server must be thawed to die promptly on some systems.
            let _ = Command::new("sh")
                .args(["-c", &format!("kill -CONT {}", server.child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = server.child.kill();
            let _ = server.child.wait();
            let _ = std::fs::remove_dir_all(&server.dir);
        }
    }
}

impl SpawnedServer {
    fn spawn(port: u16, dir: &Path, extra_args: Vec<String>) -> Result<Self, String> {
        let binary = redis_server_binary();
        let mut command = Command::new(&binary);
        command
            .arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .args([
                "--protected-mode",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ])
            .args(&extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = match command.spawn() {
            Ok(child) => child,
            Err(err) => panic!(
                "cannot run `{}`: {err}. Install Redis (`apt-get install redis-server`, \
                 `brew install redis`), or set \
                 CACHE_TEST_REDIS_SERVER to a redis-server binary, or CACHE_TEST_REDIS_URL \
                 to a server to use.",
                binary.display()
            ),
        };
        let mut server = SpawnedServer {
            child,
            port,
            dir: dir.to_owned(),
            extra_args,
        };
        wait_until_ours(
            &mut server.child,
            port,
            &format!("redis://127.0.0.1:{port}"),
        )?;
        Ok(server)
    }
}

/// A private CA and a server certificate it signed for `localhost` and
/// 127.0.0.1, as PEM files.
struct Certificates {
    ca_crt: String,
    crt: String,
    key: String,
}

impl Certificates {
    /// Makes them in `dir` with the `openssl` command.
    fn make(dir: &std::path::Path) -> Self {
        let path = |name: &str| dir.join(name).display().to_string();
        let subject_alt = path("san.cnf");
        if let Err(err) =
            std::fs::write(&subject_alt, "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        {
            panic!("cannot write {subject_alt}: {err}");
        }
        let (ca_key, ca_crt) = (path("ca.key"), path("ca.crt"));
        let (key, csr, crt) = (path("server.key"), path("server.csr"), path("server.crt"));
        openssl(
            "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=cache-test-ca",
            &[("-keyout", &ca_key), ("-out", &ca_crt)],
        );
        openssl(
            "req -newkey rsa:2048 -nodes -subj /CN=localhost",
            &[("-keyout", &key), ("-out", &csr)],
        );
        openssl(
            "x509 -req -CAcreateserial -days 2",
            &[
                ("-in", &csr),
                ("-CA", &ca_crt),
                ("-CAkey", &ca_key),
                ("-extfile", &subject_alt),
                ("-out", &crt),
            ],
        );
        Certificates { ca_crt, crt, key }
    }
}

/// Runs `openssl` with the words of `args`, then each flag and its path;
/// panics, saying how to install it, when it fails.
fn openssl(args: &str, paths: &[(&str, &String)]) {
    let mut command = Command::new("openssl");
    command.args(args.split_whitespace());
    for (flag, path) in paths {
        command.arg(flag).arg(path.as_str());
    }
    match command.stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(status) if status.success() => {}
        other => panic!(
            "`openssl {args}` failed: {other:?}. Install OpenSSL's command-line tool \
             (`apt-get install openssl`, `brew install openssl`)."
        ),
    }
}
