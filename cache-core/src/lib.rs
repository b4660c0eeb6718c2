//! A typed, serde-based cache toolkit over Redis, with an embedded memory
//! backend that behaves the same, so that examples and unit tests run without
//! a server.
//!
//! - [`Cache`]: one cheap-to-clone handle per process (one multiplexed,
//!   self-reconnecting connection), or [`Cache::memory`].
//! - [`TypedCache<K, V>`]: typed keys and values under
//!   `{namespace}:{prefix}:v{version}:{key}`, with a default TTL per keyspace.
//! - [`Codec`]: JSON by default, bincode 2 and MessagePack behind the
//!   `bincode` and `msgpack` features.
//! - [`Error`]: one error type; every error about an entry names its key, and
//!   URLs are shown with their password redacted.
//!
//! # Cargo features
//!
//! | feature | enables | default |
//! | --- | --- | --- |
//! | `derive` | `#[derive(Cacheable)]` (re-exported from `cache-derive`) | yes |
//! | `bincode` | [`Codec::Bincode`] (bincode 2 through serde) | no |
//! | `msgpack` | [`Codec::MsgPack`] (`rmp-serde`) | no |
//! | `tls` | `rediss://` URLs and cluster nodes (rustls, ring) | no |
//! | `metrics` | counters and histograms through the `metrics` facade (the README lists them) | no |
//!
//! # Map of the crate
//!
//! | module | holds |
//! | --- | --- |
//! | `cache` | the [`Cache`] handle and its [`CacheBuilder`] |
//! | `keyspace` | [`KeyspaceBuilder`]: prefix, version, TTL, codec, policies |
//! | `key`, `ttl` | the key layout and escaping; the TTL rules |
//! | `typed` | [`TypedCache`]; `load`: `get_or_load`; `policy`: [`LoadPolicy`]; `local`: the local tier |
//! | `blocks` | [`Flags`], [`Locks`], [`OneTimeCodes`], [`RateLimiter`], [`Sequences`], [`TypedSet`] |
//! | `lease` | leases with fencing tokens, under both locks and distributed loads |
//! | `codec` | serde codecs, the integer form, the lossless check |
//! | `backend` | the one seam to storage: `memory`, `redis` (transport in `redis::connect`), and `ops`: each multi-step operation once, as a script and its in-memory twin |
//! | `cacheable` | the [`Cacheable`] trait behind `#[derive(Cacheable)]` |
//! | `error`, `stats` | [`Error`]; the counters of [`CacheStats`], per handle and per keyspace |
//! | `telemetry` | (feature `metrics`) the figures sent to the `metrics` facade |
//!
//! Only `backend` knows which storage is in use; everything above it is
//! written once.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
//! use cache_core::Cache;
//! use std::time::Duration;
//!
//! let cache = Cache::builder().namespace("gateway").build_memory()?;
//! let calls = cache.keyspace("calls").ttl(Duration::from_secs(60)).typed::<String, i64>()?;
//! assert_eq!(calls.incr("user-1", 1).await?, 1);
//! assert_eq!(calls.incr("user-1", 1).await?, 2);
//! assert_eq!(calls.key("user-1"), "gateway:calls:v1:user-1");
//! # Ok(()) }
//! ```

mod backend;
mod blocks;
mod cache;
mod cacheable;
mod codec;
mod engine;
mod error;
mod key;
mod keyspace;
mod lease;
mod random;
mod stats;
#[cfg(feature = "metrics")]
mod telemetry;
mod ttl;
mod typed;

pub use crate::backend::RedisConnection;
pub use crate::blocks::flag::Flags;
pub use crate::blocks::lock::{LockGuard, Locks};
pub use crate::blocks::otp::{OneTimeCodes, Verification};
pub use crate::blocks::ratelimit::{Decision, RateLimit, RateLimiter};
pub use crate::blocks::sequence::{Allocation, MAX_SEQUENCE, Sequences};
pub use crate::blocks::set::TypedSet;
pub use crate::cache::{Cache, CacheBuilder, DEFAULT_MAX_VALUE_SIZE, DEFAULT_TIMEOUT, DEFAULT_URL};
pub use crate::cacheable::{Cacheable, KeyedCacheable};
pub use crate::codec::Codec;
pub use crate::engine::local::{LocalSettings, LocalStats, MAX_LOCAL_TTL};
pub use crate::engine::policy::{DistributedFlight, FailurePolicy, LoadPolicy};
pub use crate::error::{BoxError, Error, Result, redact_nodes, redact_url};
pub use crate::key::{CacheKey, MAX_KEY_PART_LEN, escape_into, is_valid_prefix};
pub use crate::keyspace::KeyspaceBuilder;
pub use crate::stats::CacheStats;
pub use crate::ttl::{MAX_TTL, Ttl};
pub use crate::typed::TypedCache;

/// `#[derive(Cacheable)]`: see [`Cacheable`] for the attributes.
#[cfg(feature = "derive")]
pub use cache_derive::Cacheable;

/// The redis-rs crate this toolkit is built on, for use with [`Cache::redis_connection`].
pub use redis;

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
