//! Starts a local Sentinel deployment for scripts (scripts/test.sh runs the
//! examples and the gateway on it): a primary, two replicas and three
//! sentinels. Prints the master's name and the sentinels' URLs
//! (comma-separated) on one line, and keeps them up until its standard input
//! closes.

use std::io::Read;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let deployment = cache_tests::RedisSentinel::start("test-sentinel").await;
    println!(
        "{} {}",
        cache_tests::SENTINEL_MASTER,
        deployment.urls().join(",")
    );
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    drop(deployment);
}
