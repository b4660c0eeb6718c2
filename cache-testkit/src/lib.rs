//! Real Redis for the tests of services that use `cache-core`: a
//! `redis-server`, a 6-node Redis Cluster or a Sentinel deployment, spawned
//! on free loopback ports in a temporary directory and stopped on drop, with
//! helpers to kill, restart, freeze, resume and fail over.
//!
//! Add it as a dev-dependency. Injected faults without a server (and the
//! loader counter) are in `cache_core::testing`, feature `testing`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
//! use cache_testkit::RedisServer;
//!
//! let mut server = RedisServer::start("prices");
//! let cache = server.cache().await; // under a namespace of this test's own
//! let prices = cache.keyspace("price").typed::<str, f64>()?;
//! prices.set("gpt-4", &0.03).await?;
//!
//! server.kill(); // Redis is down
//! assert!(prices.get("gpt-4").await.is_err());
//! server.restart(); // up again, empty
//! assert_eq!(prices.get("gpt-4").await?, None);
//! # Ok(()) }
//! ```
//!
//! # Finding the servers
//!
//! - `CACHE_TEST_REDIS_SERVER`: the `redis-server` binary (default: the one
//!   on `PATH`); Valkey's `valkey-server` works too.
//! - `CACHE_TEST_REDIS_CLI`: the `redis-cli` binary, which forms clusters
//!   (default: the one on `PATH`).
//! - `CACHE_TEST_REDIS_URL`: [`RedisServer::start`] uses this server instead
//!   of spawning one (each test still gets a namespace of its own).
//!
//! When a binary cannot be run, the fixture panics with a message that says
//! how to install it: a test never skips silently.
//!
//! # Panics
//!
//! Fixtures are for tests: every constructor and helper panics, with a message
//! that names what failed, when a server cannot be started or controlled.

mod cluster;
mod process;
mod sentinel;
mod server;

pub use cluster::{NODE_TIMEOUT, RedisCluster};
pub use process::unique_namespace;
pub use sentinel::{MASTER as SENTINEL_MASTER, Passwords, RedisSentinel, port_of};
pub use server::RedisServer;
