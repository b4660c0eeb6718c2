//! Helpers for the tests of services that use this crate (feature
//! `testing`): faults injected into a handle on the memory backend, and a
//! loader wrapper that counts runs. For a real server or cluster in tests,
//! see the `cache-testkit` crate; for counters before and after, see
//! [`CacheStats::since`](crate::CacheStats::since).
//!
//! A fail-open endpoint, tested without Redis:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
//! use std::time::Duration;
//! use cache_core::testing::{Faults, LoadCounter};
//!
//! let faults = Faults::new();
//! let cache = cache_core::Cache::builder()
//!     .timeout(Duration::from_millis(100))
//!     .faults(faults.clone())
//!     .build_memory()?;
//! let prices = cache.keyspace("price").typed::<str, f64>()?;
//! let loads = LoadCounter::new();
//!
//! faults.down();
//! // Fail-open (the default): with Redis down, the loader answers.
//! let price = prices.get_or_load("gpt-4", loads.wrap(|| async { Some(0.03) })).await?;
//! assert_eq!(price, Some(0.03));
//! assert_eq!(loads.calls(), 1);
//! assert!(cache.stats().backend_errors >= 1);
//! # Ok(()) }
//! ```

mod loads;

pub use self::loads::{CountedFuture, LoadCounter};
pub use crate::backend::faults::{Calls, Fault, Faults, Rule};
