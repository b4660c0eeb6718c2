//! What every fixture needs from the system: the server binaries, free
//! ports, signals, and names no other test uses.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a spawned server may take to answer its first INFO.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A namespace no other test (in this or another process) uses.
pub fn unique_namespace(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "t-{test}-{}-{nanos}-{}",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    )
}

/// Sends `signal` (`STOP`, `CONT`, ...) to the process `pid`, with the
/// shell's own `kill`, so no extra package is needed.
pub(crate) fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("sh")
        .args(["-c", &format!("kill -{signal} {pid}")])
        .status();
    match status {
        Ok(status) if status.success() => {}
        other => panic!("kill -{signal} {pid} failed: {other:?}"),
    }
}

/// The redis-server binary: `CACHE_TEST_REDIS_SERVER`, or the one on `PATH`.
pub(crate) fn redis_server_binary() -> PathBuf {
    std::env::var_os("CACHE_TEST_REDIS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-server"))
}

/// A port on the loopback interface that nothing listens on now.
pub(crate) fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()) {
        Ok(addr) => addr.port(),
        Err(err) => panic!("cannot find a free port: {err}"),
    }
}

/// Waits until the server `child` answers on `url` (its `port`), and checks
/// that the one answering is `child`: another test's server may have taken
/// the port between the probe and the bind, and would then be shared, and
/// killed under us when that test ends. On error `child` is stopped.
pub(crate) fn wait_until_ours(child: &mut Child, port: u16, url: &str) -> Result<(), String> {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the server on port {port} exited: {status}"));
        }
        let info = redis::Client::open(url)
            .and_then(|client| client.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut conn| redis::cmd("INFO").arg("server").query::<String>(&mut conn));
        if let Ok(info) = info {
            let pid = info
                .lines()
                .find_map(|line| line.strip_prefix("process_id:"));
            if pid.map(str::trim) == Some(child.id().to_string().as_str()) {
                return Ok(());
            }
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("port {port} is another server's"));
        }
        if started.elapsed() > STARTUP_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the server on port {port} did not answer INFO"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
