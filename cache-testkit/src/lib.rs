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
//! server.kill(); // Redis is down: calls fail at once, as connection errors
//! assert!(prices.get("gpt-4").await.unwrap_err().is_connection());
//! server.restart(); // up again, empty
//! // The handle found it down, so it reconnects in the background (within
//! // half a second); until then its calls still fail at once.
//! let mut answer = prices.get("gpt-4").await;
//! while answer.as_ref().is_err_and(|err| err.is_connection()) {
//!     tokio::time::sleep(std::time::Duration::from_millis(20)).await;
//!     answer = prices.get("gpt-4").await;
//! }
//! assert_eq!(answer?, None);
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
