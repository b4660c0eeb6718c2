//! The project's test harness: the servers, clusters and Sentinel
//! deployments of `cache-testkit` (the crate users get), plus what only these
//! tests need: one backend under test ([`Env`]) and the macros that run a
//! suite on every backend.

use std::time::{Duration, Instant};

mod env;
mod tags;

pub use cache_testkit::{
    NODE_TIMEOUT, Passwords, RedisCluster, RedisSentinel, RedisServer, SENTINEL_MASTER, port_of,
    unique_namespace,
};
pub use env::Env;
pub use tags::tag_state_key;

/// Waits (up to 5 s) until a local tier serves (`is_live` is its view's
/// `local_is_live`): on Redis, once the handle's invalidation connection is up.
pub async fn local_tier_live(is_live: impl Fn() -> Option<bool>) {
    let started = Instant::now();
    while is_live() != Some(true) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the local tier never came up"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
