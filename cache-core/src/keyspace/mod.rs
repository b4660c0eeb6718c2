//! Keyspaces: a prefix, schema version, default TTL and codec under the
//! cache's namespace. Every typed view and building block is made from one.

mod spec;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::blocks::flag::Flags;
use crate::blocks::lock::Locks;
use crate::blocks::otp::OneTimeCodes;
use crate::blocks::ratelimit::{RateLimit, RateLimiter};
use crate::blocks::sequence::Sequences;
use crate::blocks::set::TypedSet;
use crate::codec::{Codec, Compression};
use crate::engine::{Engine, KeyspaceSettings};
use crate::error::Result;
use crate::key::CacheKey;
use crate::settings::LoadPolicy;
use crate::settings::LocalSettings;
use crate::typed::TypedCache;

pub use self::spec::KeyspaceSpec;

/// Configures a [`TypedCache`]; made by [`Cache::keyspace`](crate::Cache::keyspace).
///
/// ```
/// # fn main() -> cache_core::Result<()> {
/// use cache_core::{Cache, Codec};
/// use std::time::Duration;
///
/// let cache = Cache::builder().namespace("chat").build_memory()?;
/// let members = cache
///     .keyspace("members")
///     .ttl(Duration::from_secs(300))
///     .version(2)
///     .codec(Codec::Json)
///     .typed::<u64, Vec<u64>>()?;
/// assert_eq!(members.key(&42), "chat:members:v2:42");
/// # Ok(()) }
/// ```
#[must_use]
#[derive(Debug, Clone)]
pub struct KeyspaceBuilder {
    engine: Arc<Engine>,
    spec: KeyspaceSpec,
}

impl KeyspaceBuilder {
    pub(crate) fn new(engine: Arc<Engine>, prefix: String) -> Self {
        let spec = KeyspaceSpec::new(Cow::Owned(prefix));
        KeyspaceBuilder { engine, spec }
    }

    /// A builder holding `spec` (a `Cacheable` type's, a `#[cached]`
    /// function's), checked by [`check`](Self::check) like any other.
    pub(crate) fn from_spec(engine: Arc<Engine>, spec: KeyspaceSpec) -> Self {
        KeyspaceBuilder { engine, spec }
    }

    /// The TTL that `set` gives every entry. Without one, entries never expire.
    ///
    /// ```
    /// # let cache = cache_core::Cache::memory();
    /// let builder = cache.keyspace("price").ttl(std::time::Duration::from_secs(300));
    /// ```
    pub fn ttl(self, ttl: Duration) -> Self {
        self.set(|spec| spec.ttl = Some(ttl))
    }

    /// The schema version in the key (default 1). Bump it when the value type
    /// changes, so new code never reads bytes written by old code.
    ///
    /// ```
    /// # let cache = cache_core::Cache::memory();
    /// let builder = cache.keyspace("price").version(3);
    /// ```
    pub fn version(self, version: u32) -> Self {
        self.set(|spec| spec.version = version)
    }

    /// The value codec (default JSON).
    ///
    /// ```
    /// # let cache = cache_core::Cache::memory();
    /// let builder = cache.keyspace("price").codec(cache_core::Codec::Json);
    /// ```
    pub fn codec(self, codec: Codec) -> Self {
        self.set(|spec| spec.codec = codec)
    }

    /// Compresses values whose encoding takes at least
    /// [`compress_min`](Self::compress_min) bytes (default
    /// [`DEFAULT_COMPRESS_MIN`](crate::DEFAULT_COMPRESS_MIN), 1 KiB) with `algorithm`, when that makes
    /// them smaller. Every write compresses (single and batch writes, loads,
    /// [typed sets](Self::typed_set)' members); every read of the keyspace
    /// reads both compressed and plain values, so compression can be turned
    /// on or off on a live keyspace. A [local tier](Self::local) keeps values
    /// inflated: its hits cost no decompression. `max_value_size` applies to
    /// the bytes stored (compressed) and, because a reader never inflates a
    /// value past it, to the value before compression too. The stored format
    /// is in [`guide::handle`](crate::guide::handle) ("Compression").
    ///
    /// ```
    /// # #[cfg(feature = "lz4")]
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// use cache_core::Compression;
    ///
    /// let cache = cache_core::Cache::memory();
    /// let pages = cache.keyspace("page").compress(Compression::Lz4).typed::<str, String>()?;
    /// let page = "<p>hello</p>".repeat(1_000);
    /// pages.set("home", &page).await?;
    /// assert_eq!(pages.get("home").await?, Some(page));
    /// # Ok(()) }
    /// # #[cfg(not(feature = "lz4"))] fn main() {}
    /// ```
    pub fn compress(self, algorithm: Compression) -> Self {
        self.set(|spec| spec.compress = Some(algorithm))
    }

    /// The size from which [`compress`](Self::compress) compresses a value
    /// (its codec's bytes; default [`DEFAULT_COMPRESS_MIN`](crate::DEFAULT_COMPRESS_MIN), 1 KiB).
    ///
    /// ```
    /// # #[cfg(feature = "zstd")] {
    /// # let cache = cache_core::Cache::memory();
    /// let builder = cache
    ///     .keyspace("page")
    ///     .compress(cache_core::Compression::Zstd)
    ///     .compress_min(4096);
    /// # }
    /// ```
    pub fn compress_min(self, bytes: usize) -> Self {
        self.set(|spec| spec.compress_min = Some(bytes))
    }

    /// How `get_or_load` behaves (negative caching, jitter, early refresh,
    /// failure policy, distributed single flight); see [`LoadPolicy`].
    ///
    /// ```
    /// # let cache = cache_core::Cache::memory();
    /// use cache_core::LoadPolicy;
    /// let builder = cache.keyspace("price").load_policy(LoadPolicy::DEFAULT.jitter(0.1));
    /// ```
    pub fn load_policy(self, policy: LoadPolicy) -> Self {
        self.set(|spec| spec.load = policy)
    }

    /// Keeps up to `capacity` recently read values in this process for `ttl`
    /// (or their remaining Redis TTL, if shorter), in front of the backend:
    /// repeated reads need no round trip. On Redis, the handle listens for
    /// invalidations (`CLIENT TRACKING ... BCAST`), so a write by any client
    /// drops the local copies within milliseconds; while that connection is
    /// down the tier is flushed and bypassed. Writes through this handle drop
    /// the local copy at once. See [`guide::local_tier`](crate::guide::local_tier).
    ///
    /// ```
    /// # let cache = cache_core::Cache::memory();
    /// let builder = cache.keyspace("price").local(10_000, std::time::Duration::from_secs(5));
    /// ```
    pub fn local(self, capacity: u64, ttl: Duration) -> Self {
        self.set(|spec| spec.local = Some(LocalSettings { capacity, ttl }))
    }

    /// Tags every entry of the keyspace: entries can then carry tags
    /// ([`set_tagged`](crate::TypedCache::set_tagged),
    /// [`get_or_load_tagged`](crate::TypedCache::get_or_load_tagged), a
    /// derived type's `#[cache(tag)]` fields), and
    /// [`invalidate_all`](crate::TypedCache::invalidate_all) drops them all
    /// at once. Each entry then carries a header listing its tags, and a
    /// read checks them: through the handle's state cache (kept coherent by
    /// Redis' client tracking) a warm read costs no extra round trip, a cold
    /// one one `MGET`. `incr` is not available on a tagged keyspace.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::memory();
    /// let reports = cache.keyspace("report").tagged().typed::<u64, String>()?;
    /// reports.set(&1, &"q1".to_owned()).await?;
    /// reports.invalidate_all().await?;
    /// assert_eq!(reports.get(&1).await?, None);
    /// # Ok(()) }
    /// ```
    pub fn tagged(mut self) -> Self {
        self.spec.tagged = true;
        self
    }

    /// Checks the settings and returns the typed cache.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for a prefix that is empty or holds characters other than
    /// `A-Z a-z 0-9 . _ -`, a version of zero, or `compress_min` without
    /// `compress`; [`Error::InvalidTtl`](crate::Error::InvalidTtl) for a TTL
    /// of zero or beyond [`MAX_TTL`](crate::MAX_TTL).
    ///
    /// ```
    /// # let cache = cache_core::Cache::memory();
    /// let err = cache.keyspace("a:b").typed::<String, String>().unwrap_err();
    /// assert!(err.to_string().contains("`a:b`"));
    /// ```
    pub fn typed<K, V>(self) -> Result<TypedCache<K, V>>
    where
        K: CacheKey + ?Sized,
        V: Serialize + DeserializeOwned,
    {
        TypedCache::new(self.check()?)
    }

    /// Checks the settings and returns a typed set per key; see [`TypedSet`].
    ///
    /// # Errors
    /// As [`typed`](Self::typed).
    ///
    /// ```
    /// # fn main() -> cache_core::Result<()> {
    /// let online = cache_core::Cache::memory().keyspace("online").typed_set::<str, u64>()?;
    /// # Ok(()) }
    /// ```
    pub fn typed_set<K, M>(self) -> Result<TypedSet<K, M>>
    where
        K: CacheKey + ?Sized,
        M: Serialize + DeserializeOwned,
    {
        TypedSet::new(self.check()?)
    }

    /// Checks the settings and returns named locks; see [`Locks`]. The TTL and
    /// codec settings do not apply: each acquisition names its lease.
    ///
    /// # Errors
    /// As [`typed`](Self::typed).
    ///
    /// ```
    /// # fn main() -> cache_core::Result<()> {
    /// let locks = cache_core::Cache::memory().keyspace("lock").locks::<str>()?;
    /// # Ok(()) }
    /// ```
    pub fn locks<K: CacheKey + ?Sized>(self) -> Result<Locks<K>> {
        Ok(Locks::new(self.check()?))
    }

    /// Checks the settings and returns flags with an expiry time (a JWT
    /// blacklist); see [`Flags`].
    ///
    /// # Errors
    /// As [`typed`](Self::typed).
    ///
    /// ```
    /// # fn main() -> cache_core::Result<()> {
    /// let revoked = cache_core::Cache::memory().keyspace("jwt-revoked").flags::<str>()?;
    /// # Ok(()) }
    /// ```
    pub fn flags<K: CacheKey + ?Sized>(self) -> Result<Flags<K>> {
        Ok(Flags::new(self.check()?))
    }

    /// Checks the settings and returns one-time codes that lock after
    /// `max_attempts` wrong guesses; see [`OneTimeCodes`].
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for `max_attempts` of zero, and as [`typed`](Self::typed).
    ///
    /// ```
    /// # fn main() -> cache_core::Result<()> {
    /// let codes = cache_core::Cache::memory().keyspace("otp").one_time_codes::<str>(5)?;
    /// # Ok(()) }
    /// ```
    pub fn one_time_codes<K: CacheKey + ?Sized>(
        self,
        max_attempts: u32,
    ) -> Result<OneTimeCodes<K>> {
        OneTimeCodes::new(self.check()?, max_attempts)
    }

    /// Checks the settings and returns a rate limiter per key; see [`RateLimiter`].
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for a limit of zero, [`Error::InvalidTtl`](crate::Error::InvalidTtl) for a zero
    /// window, and as [`typed`](Self::typed).
    ///
    /// ```
    /// # fn main() -> cache_core::Result<()> {
    /// use cache_core::RateLimit;
    /// use std::time::Duration;
    /// let limiter = cache_core::Cache::memory()
    ///     .keyspace("api")
    ///     .rate_limiter::<u64>(RateLimit::sliding_window(100, Duration::from_secs(60)))?;
    /// assert!(cache_core::Cache::memory()
    ///     .keyspace("api")
    ///     .rate_limiter::<u64>(RateLimit::fixed_window(0, Duration::from_secs(60)))
    ///     .is_err());
    /// # Ok(()) }
    /// ```
    pub fn rate_limiter<K: CacheKey + ?Sized>(self, rule: RateLimit) -> Result<RateLimiter<K>> {
        RateLimiter::new(self.check()?, rule)
    }

    /// Checks the settings and returns sequence allocators that reserve numbers
    /// in blocks of `step`; see [`Sequences`].
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for a step of zero, and as [`typed`](Self::typed).
    ///
    /// ```
    /// # fn main() -> cache_core::Result<()> {
    /// let seqs = cache_core::Cache::memory().keyspace("msg-seq").sequences::<u64>(1000)?;
    /// # Ok(()) }
    /// ```
    pub fn sequences<K: CacheKey + ?Sized>(self, step: u32) -> Result<Sequences<K>> {
        Sequences::new(self.check()?, step)
    }

    /// Validates the settings into the parts every typed view is built from.
    pub(crate) fn check(self) -> Result<KeyspaceSettings> {
        self.spec.check(self.engine)
    }

    fn set(mut self, change: impl FnOnce(&mut KeyspaceSpec)) -> Self {
        change(&mut self.spec);
        self
    }
}
