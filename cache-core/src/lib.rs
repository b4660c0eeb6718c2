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
//! - [`Compression`]: lz4 or zstd for large values, behind the `lz4` and
//!   `zstd` features.
//! - [`Error`]: one error type; every error about an entry names its key, and
//!   URLs are shown with their password redacted.
//!
//! The [`guide`] is the manual: every promise in detail, with examples.
//!
//! # Cargo features
//!
//! What a feature adds (a codec, a compression method, a module) is in these
//! docs only when the feature is on; the table names each either way.
//!
//! | feature | enables | default |
//! | --- | --- | --- |
//! | `derive` | `#[derive(Cacheable)]` (re-exported from `cache-derive`) | yes |
//! | `bincode` | `Codec::Bincode` (bincode 2 through serde) | no |
//! | `msgpack` | `Codec::MsgPack` (`rmp-serde`) | no |
//! | `lz4` | `Compression::Lz4` (lz4_flex, pure Rust) | no |
//! | `zstd` | `Compression::Zstd` (zstd, builds the C library) | no |
//! | `tls` | `rediss://` URLs and cluster nodes (rustls, ring) | no |
//! | `metrics` | counters and histograms through the `metrics` facade (the guide's `observability` page lists them) | no |
//! | `testing` | the `testing` module: faults injected into a memory-backed handle, a loader counter | no |
//!
//! # Map of the crate
//!
//! From the faces users hold down to storage; each module imports only
//! modules below it (`scripts/import_circles.py` checks that no two import
//! each other, here or one level inside).
//!
//! - `cache`: [`Cache`], the public face of a handle, and [`CacheBuilder`];
//!   `cached`: what `#[cached]` expands to.
//! - `keyspace`: [`KeyspaceBuilder`], which makes every view, and
//!   [`KeyspaceSpec`] (`spec`), the one description of a keyspace and its
//!   one check.
//! - `typed`: [`TypedCache`], split into `read`, `write`, `batch`, `load`:
//!   each method maps its key and value types and calls one engine entry point.
//! - `blocks`: [`Flags`], [`Locks`], [`OneTimeCodes`], [`RateLimiter`], [`Sequences`], [`TypedSet`].
//! - `engine`: the state a handle's views share and the keyspace engine:
//!   `space` (a keyspace on its engine), `access` (every read and write, each
//!   entry point end to end), `aside` (the one cache-aside protocol and its
//!   entry points), `flight` (single flight), `lease` (leases with fencing
//!   tokens, under locks and distributed loads), `local` and `coherence` (the
//!   local tier), `tags`, `reading` and `stale` (a stored value as a read
//!   finds it), `scope` (a building block's keys).
//! - `backend`: the one seam to storage: `memory`, `redis` (`connect`;
//!   `server` and `breaker`: one server, and failing fast while it is down;
//!   `sentinel` and `sentinel_watch`: the primary the sentinels announce;
//!   `coalesce`, `redirect`, `tracking`), `attempts` and `next` (one call's
//!   attempts and what to do after an error, on either backend), `faults`
//!   and `injected` (faults injected into the memory backend), and `ops`:
//!   each multi-step operation once, as a script and its in-memory twin.
//! - `settings` ([`LoadPolicy`], [`LocalSettings`]) and `freshness`
//!   ([`Freshness`], [`Loaded`]): public configuration and result types.
//! - `stored`: the byte formats of a stored value (fail-safe header, tag
//!   header, compression frame), a leaf both engine and backend read.
//! - `codec`, `key`, `ttl`, `cacheable`, `error`, `stats`, `telemetry`,
//!   [`redact`]: values, keys, TTLs, the derive's trait, errors, counters.
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
mod cached;
mod codec;
mod engine;
mod error;
mod freshness;
pub mod guide;
mod key;
mod keyspace;
mod random;
pub mod redact;
mod settings;
mod stats;
mod stored;
#[cfg(feature = "metrics")]
mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
mod ttl;
mod typed;

pub use crate::backend::{Credentials, RedisConnection};
pub use crate::blocks::flag::Flags;
pub use crate::blocks::lock::{LockGuard, Locks};
pub use crate::blocks::otp::{OneTimeCodes, Verification};
pub use crate::blocks::ratelimit::{Decision, RateLimit, RateLimiter};
pub use crate::blocks::sequence::{Allocation, MAX_SEQUENCE, Sequences};
pub use crate::blocks::set::TypedSet;
pub use crate::cache::{Cache, CacheBuilder, DEFAULT_MAX_VALUE_SIZE, DEFAULT_TIMEOUT, DEFAULT_URL};
pub use crate::cacheable::{Cacheable, KeyedCacheable, tag};
pub use crate::codec::{Codec, CompressSettings, Compression, DEFAULT_COMPRESS_MIN, PlainValue};
pub use crate::error::{BoxError, Error, Result};
pub use crate::freshness::{Freshness, Loaded, StaleReason};
/// Whether a prefix is made of `A-Z a-z 0-9 . _ -` only. Public so that
/// cache-derive's tests can check that its own check agrees.
#[doc(hidden)]
pub use crate::key::is_valid_prefix;
pub use crate::key::{CacheKey, MAX_KEY_PART_LEN, escape_into};
pub use crate::keyspace::{KeyspaceBuilder, KeyspaceSpec};
pub use crate::settings::{
    DEFAULT_FAIL_SAFE_THROTTLE, DistributedFlight, FailurePolicy, LoadPolicy, LocalSettings,
    MAX_LOCAL_TTL,
};
pub use crate::stats::{CacheStats, LocalStats};
pub use crate::ttl::{MAX_TTL, Ttl};
pub use crate::typed::TypedCache;

/// `#[derive(Cacheable)]`: see [`Cacheable`] for the attributes.
#[cfg(feature = "derive")]
pub use cache_derive::Cacheable;

/// `#[cached]` on an `async fn` or method: see [`guide::cached`].
#[cfg(feature = "derive")]
pub use cache_derive::cached;

/// What `#[cached]` expands to; not a public interface.
#[doc(hidden)]
pub mod __private {
    pub use crate::cached::*;
}

/// The redis-rs crate this toolkit is built on, for use with [`Cache::redis_connection`].
pub use redis;

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
