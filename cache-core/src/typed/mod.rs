//! `TypedCache<K, V>`: typed keys and values over any backend, with
//! cache-aside (`load`, `policy`) and an optional local tier (`local`).

pub(crate) mod load;
mod load_many;
pub(crate) mod local;
pub(crate) mod policy;

use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{Incr, SetMode};
use crate::cache::Cache;
use crate::codec::ValueFormat;
use crate::error::{Error, Result};
use crate::key::{CacheKey, KeyLayout};
use crate::keyspace::KeyspaceSettings;
use crate::stats::KeyspaceCounters;
use crate::stats::bump;
use crate::ttl::check_ttl;
use crate::typed::local::{Local, LocalCopy, LocalSettings, LocalStats};
use crate::typed::policy::LoadPolicy;
use crate::{KeyedCacheable, Ttl};
use tracing::Instrument;

/// Typed access to the entries of one keyspace: keys of type `K`, values of type `V`.
///
/// Cheap to clone; every clone shares the [`Cache`] handle's connection. Methods
/// take any `&Q` that `K` borrows as, so a `TypedCache<String, _>` accepts `&str`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// use cache_core::{Cache, Ttl};
/// use serde::{Deserialize, Serialize};
/// use std::time::Duration;
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// struct Price { input_per_1k: f64 }
///
/// let cache = Cache::builder().namespace("gateway").build_memory()?;
/// let prices = cache.keyspace("price").ttl(Duration::from_secs(300)).typed::<String, Price>()?;
///
/// prices.set("gpt-4", &Price { input_per_1k: 0.03 }).await?;
/// assert_eq!(prices.get("gpt-4").await?, Some(Price { input_per_1k: 0.03 }));
/// assert!(matches!(prices.ttl("gpt-4").await?, Ttl::Expires(_)));
/// assert_eq!(prices.get("unknown").await?, None);
/// assert_eq!(prices.key("gpt-4"), "gateway:price:v1:gpt-4");
/// # Ok(()) }
/// ```
pub struct TypedCache<K: ?Sized, V> {
    pub(crate) cache: Cache,
    pub(crate) layout: KeyLayout,
    pub(crate) ttl: Option<Duration>,
    pub(crate) format: ValueFormat,
    pub(crate) load: LoadPolicy,
    /// Where cached "absent" answers live (see `LoadPolicy::negative_ttl`).
    pub(crate) absent: KeyLayout,
    /// Where distributed single-flight locks live.
    pub(crate) lock: KeyLayout,
    /// The in-process tier in front of the backend, if configured.
    pub(crate) local: LocalCopy,
    /// This keyspace's counters on this handle.
    pub(crate) counters: Arc<KeyspaceCounters>,
    types: PhantomData<fn(&K) -> V>,
}

impl<K: ?Sized, V> Clone for TypedCache<K, V> {
    fn clone(&self) -> Self {
        TypedCache {
            cache: self.cache.clone(),
            layout: self.layout.clone(),
            ttl: self.ttl,
            format: self.format,
            load: self.load,
            absent: self.absent.clone(),
            lock: self.lock.clone(),
            local: self.local.clone(),
            counters: Arc::clone(&self.counters),
            types: PhantomData,
        }
    }
}

impl<K: ?Sized, V> fmt::Debug for TypedCache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedCache")
            .field("keys", &self.layout)
            .field("ttl", &self.ttl)
            .field("codec", &self.format.codec)
            .field("integer_values", &self.format.integer.is_some())
            .finish()
    }
}

impl<K, V> TypedCache<K, V>
where
    K: CacheKey + ?Sized,
    V: Serialize + DeserializeOwned,
{
    /// # Errors
    /// [`Error::Config`] when the keyspace already has a local tier with
    /// other settings on this handle.
    pub(crate) fn new(keyspace: KeyspaceSettings) -> Result<Self> {
        let local = match keyspace.local {
            Some(settings) => {
                let (tier, agreed) = keyspace.cache.local_tier(&keyspace.layout, settings);
                agreed?;
                Some(tier)
            }
            None => None,
        };
        Ok(TypedCache::with_local_copy(keyspace, LocalCopy::new(local)))
    }

    pub(crate) fn with_local_copy(keyspace: KeyspaceSettings, local: LocalCopy) -> Self {
        TypedCache {
            local,
            counters: keyspace.cache.keyspace_counters(keyspace.layout.prefix()),
            format: ValueFormat::for_type::<V>(keyspace.codec),
            absent: keyspace.layout.companion("absent"),
            lock: keyspace.layout.companion("load"),
            cache: keyspace.cache,
            layout: keyspace.layout,
            ttl: keyspace.ttl,
            load: keyspace.load,
            types: PhantomData,
        }
    }

    /// A copy of this cache with a local tier in front of the backend; see
    /// [`KeyspaceBuilder::local`](crate::KeyspaceBuilder::local). Every typed
    /// view of the same keyspace on this handle shares one local tier.
    ///
    /// # Errors
    /// [`Error::Config`] for a capacity of zero, or when this keyspace already
    /// has a local tier with other settings on this handle;
    /// [`Error::InvalidTtl`] for a zero TTL or one beyond
    /// [`MAX_LOCAL_TTL`](crate::MAX_LOCAL_TTL).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// let cache = cache_core::Cache::memory();
    /// let prices = cache.keyspace("price").typed::<String, f64>()?.with_local(1_000, Duration::from_secs(5))?;
    /// prices.set("gpt-4", &0.03).await?;
    /// assert_eq!(prices.get("gpt-4").await?, Some(0.03)); // from the backend, kept
    /// assert_eq!(prices.get("gpt-4").await?, Some(0.03)); // no backend call
    /// assert_eq!(cache.stats().local_hits, 1);
    /// # Ok(()) }
    /// ```
    pub fn with_local(&self, capacity: u64, ttl: Duration) -> Result<Self> {
        let settings = LocalSettings { capacity, ttl };
        settings.check(self.layout.prefix())?;
        let mut copy = self.clone();
        let (tier, agreed) = self.cache.local_tier(&self.layout, settings);
        agreed?;
        copy.local = LocalCopy::new(Some(tier));
        Ok(copy)
    }

    /// How many values the local tier holds; `None` without one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// let cache = cache_core::Cache::memory();
    /// let names = cache.keyspace("name").local(100, Duration::from_secs(5)).typed::<u64, String>()?;
    /// names.set(&1, &"ada".to_owned()).await?;
    /// assert_eq!(names.local_entries(), Some(0)); // a write drops the local copy
    /// names.get(&1).await?;
    /// assert_eq!(names.local_entries(), Some(1));
    /// # Ok(()) }
    /// ```
    pub fn local_entries(&self) -> Option<u64> {
        self.local.len()
    }

    /// Whether the local tier serves reads now; `None` without one. On Redis
    /// it serves only while the handle's invalidation connection is up: not
    /// until it has connected (a few milliseconds after the first view with a
    /// local tier is made, inside a Tokio runtime), and not while it is down.
    /// Meanwhile reads go to Redis. Always `true` on the memory backend.
    ///
    /// ```
    /// # fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// let cache = cache_core::Cache::memory();
    /// let names = cache.keyspace("name").local(100, Duration::from_secs(5)).typed::<u64, String>()?;
    /// assert_eq!(names.local_is_live(), Some(true));
    /// # Ok(()) }
    /// ```
    pub fn local_is_live(&self) -> Option<bool> {
        self.local.is_live()
    }

    /// The counters of this keyspace's local tier on this handle (shared by
    /// its views); `None` without one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// let cache = cache_core::Cache::memory();
    /// let names = cache.keyspace("name").local(100, Duration::from_secs(5)).typed::<u64, String>()?;
    /// names.set(&1, &"ada".to_owned()).await?;
    /// names.get(&1).await?; // from the backend, kept
    /// names.get(&1).await?; // from the local tier
    /// let stats = names.local_stats().unwrap();
    /// assert_eq!((stats.remote_hits, stats.hits), (1, 1));
    /// # Ok(()) }
    /// ```
    pub fn local_stats(&self) -> Option<LocalStats> {
        self.local.stats()
    }

    /// A copy of this cache with another [`LoadPolicy`] for `get_or_load`.
    ///
    /// # Errors
    /// [`Error::Config`] for a jitter or early-refresh fraction out of range,
    /// [`Error::InvalidTtl`] for a zero negative TTL or lease.
    ///
    /// ```
    /// # fn main() -> cache_core::Result<()> {
    /// use cache_core::{FailurePolicy, LoadPolicy};
    /// let cache = cache_core::Cache::memory();
    /// let strict = cache
    ///     .keyspace("jwt")
    ///     .typed::<String, bool>()?
    ///     .with_load_policy(LoadPolicy::DEFAULT.on_failure(FailurePolicy::Closed))?;
    /// # Ok(()) }
    /// ```
    pub fn with_load_policy(&self, policy: LoadPolicy) -> Result<Self> {
        policy.check(self.layout.prefix())?;
        let mut copy = self.clone();
        copy.load = policy;
        Ok(copy)
    }

    /// The full Redis key for `key`, as it appears in `redis-cli`.
    ///
    /// ```
    /// # fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::memory();
    /// let users = cache.keyspace("user").typed::<(u32, String), String>()?;
    /// assert_eq!(users.key(&(1, "a b".to_owned())), "user:v1:1,a%20b");
    /// # Ok(()) }
    /// ```
    pub fn key<Q>(&self, key: &Q) -> String
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        self.layout.key(key)
    }

    /// The TTL that [`set`](Self::set) applies, if any.
    ///
    /// ```
    /// # fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::memory();
    /// assert_eq!(cache.keyspace("x").typed::<u8, u8>()?.default_ttl(), None);
    /// # Ok(()) }
    /// ```
    pub fn default_ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// A copy of this cache whose `set` uses `ttl` instead (a per-use override).
    ///
    /// # Errors
    /// [`Error::InvalidTtl`] for zero or a TTL beyond [`MAX_TTL`](crate::MAX_TTL).
    ///
    /// ```
    /// # fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// let cache = cache_core::Cache::memory();
    /// let short = cache.keyspace("x").typed::<u8, u8>()?.with_ttl(Duration::from_secs(5))?;
    /// assert_eq!(short.default_ttl(), Some(Duration::from_secs(5)));
    /// # Ok(()) }
    /// ```
    pub fn with_ttl(&self, ttl: Duration) -> Result<Self> {
        check_ttl(ttl, None)?;
        let mut copy = self.clone();
        copy.ttl = Some(ttl);
        Ok(copy)
    }

    /// A debug span for one operation, with the keyspace but no key or value.
    pub(crate) fn span(&self, operation: &'static str) -> tracing::Span {
        tracing::debug_span!(
            "cache.op",
            operation,
            namespace = self.cache.namespace().unwrap_or_default(),
            prefix = self.layout.prefix(),
        )
    }

    /// This keyspace's counters on this handle.
    pub(crate) fn counters(&self) -> &KeyspaceCounters {
        &self.counters
    }

    /// The span of a load task, with the keyspace but no key or value.
    pub(crate) fn load_span(&self) -> tracing::Span {
        tracing::debug_span!(
            "cache.load",
            namespace = self.cache.namespace().unwrap_or_default(),
            prefix = self.layout.prefix(),
        )
    }

    /// The bytes and TTL of a write with the default TTL (jittered), checked.
    fn encode_with_default_ttl(
        &self,
        full_key: &str,
        value: &V,
    ) -> Result<(Vec<u8>, Option<Duration>)> {
        if let Some(ttl) = self.ttl {
            check_ttl(ttl, Some(full_key))?;
        }
        let bytes = self.encode(full_key, value)?;
        Ok((bytes, self.ttl.map(|ttl| self.load.jittered(ttl))))
    }

    fn encode(&self, full_key: &str, value: &V) -> Result<Vec<u8>> {
        self.format
            .encode_for(full_key, value, self.cache.max_value_size())
    }

    fn decode(&self, full_key: &str, bytes: Option<Vec<u8>>) -> Result<Option<V>> {
        let Some(bytes) = bytes else { return Ok(None) };
        self.format.decode(&bytes).map(Some).map_err(|source| {
            bump(&self.counters().decode_errors);
            Error::Decode {
                key: full_key.to_owned(),
                source,
            }
        })
    }

    /// Decodes a read and counts it as a hit or a miss.
    fn decode_read(&self, full_key: &str, bytes: Option<Vec<u8>>) -> Result<Option<V>> {
        let counters = self.counters();
        bump(if bytes.is_some() {
            &counters.hits
        } else {
            &counters.misses
        });
        self.decode(full_key, bytes)
    }

    /// Decodes a local hit and counts it.
    fn decode_local(&self, full_key: &str, bytes: &[u8]) -> Result<Option<V>> {
        let counters = self.counters();
        bump(&counters.local_hits);
        bump(&counters.hits);
        self.format.decode(bytes).map(Some).map_err(|source| {
            bump(&counters.decode_errors);
            Error::Decode {
                key: full_key.to_owned(),
                source,
            }
        })
    }

    /// Reads the value at `key`; `None` when it is missing or expired.
    ///
    /// # Errors
    /// [`Error::Decode`] (naming the key) when the stored bytes are not a `V`,
    /// [`Error::WrongType`] when the key holds another Redis type, and backend
    /// or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let names = cache_core::Cache::memory().keyspace("name").typed::<u64, String>()?;
    /// assert_eq!(names.get(&1).await?, None);
    /// # Ok(()) }
    /// ```
    pub async fn get<Q>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.layout.key(key);
        if !self.local.is_on() {
            let read = self.cache.backend().get(&full_key);
            let bytes = read.instrument(self.span("get")).await?;
            return self.decode_read(&full_key, bytes);
        }
        if let Some(bytes) = self.local.get(&full_key) {
            return self.decode_local(&full_key, &bytes);
        }
        // With the TTL, so that the local copy never outlives the value.
        let ticket = self.local.ticket(&full_key);
        let read = self.cache.backend().get_with_ttl(&full_key);
        let Some((bytes, ttl)) = read.instrument(self.span("get")).await? else {
            return self.decode_read(&full_key, None);
        };
        self.local.fetched(&full_key, &bytes, ttl, ticket);
        self.decode_read(&full_key, Some(bytes))
    }

    /// [`get`](Self::get), answered as an `Arc<V>`. With a local tier, the
    /// value a read decoded is kept there as it is: a hit then costs a
    /// lookup and an `Arc` clone, no decode. The cheapest read of a hot key.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// let cache = cache_core::Cache::memory();
    /// let prices = cache.keyspace("price").local(1_000, Duration::from_secs(5)).typed::<String, f64>()?;
    /// prices.set("gpt-4", &0.03).await?;
    /// let first = prices.get_shared("gpt-4").await?.unwrap(); // decoded, kept
    /// let again = prices.get_shared("gpt-4").await?.unwrap(); // the same value, not decoded again
    /// assert!(std::sync::Arc::ptr_eq(&first, &again));
    /// # Ok(()) }
    /// ```
    pub async fn get_shared<Q>(&self, key: &Q) -> Result<Option<Arc<V>>>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
        V: Send + Sync + 'static,
    {
        let full_key = self.layout.key(key);
        if !self.local.is_on() {
            let read = self.cache.backend().get(&full_key);
            let bytes = read.instrument(self.span("get")).await?;
            return Ok(self.decode_read(&full_key, bytes)?.map(Arc::new));
        }
        match self.local.get_shared::<V>(&full_key) {
            Some(Local::Decoded(value)) => {
                let counters = self.counters();
                bump(&counters.local_hits);
                bump(&counters.hits);
                return Ok(Some(value));
            }
            Some(Local::Bytes(bytes)) => {
                return Ok(self.decode_local(&full_key, &bytes)?.map(Arc::new));
            }
            None => {}
        }
        let ticket = self.local.ticket(&full_key);
        let read = self.cache.backend().get_with_ttl(&full_key);
        let Some((bytes, ttl)) = read.instrument(self.span("get")).await? else {
            return Ok(self.decode_read(&full_key, None)?.map(Arc::new));
        };
        let counters = self.counters();
        bump(&counters.hits);
        let value = match self.format.decode::<V>(&bytes) {
            Ok(value) => Arc::new(value),
            Err(source) => {
                bump(&counters.decode_errors);
                let key = full_key;
                return Err(Error::Decode { key, source });
            }
        };
        let kept: Arc<dyn std::any::Any + Send + Sync> = value.clone();
        self.local
            .fetched_decoded(&full_key, &bytes, Some(kept), ttl, ticket);
        Ok(Some(value))
    }

    /// Writes `value` at `key` with the default TTL (or none), replacing any
    /// value and expiry there.
    ///
    /// # Errors
    /// [`Error::Encode`], [`Error::ValueTooLarge`] (nothing is sent), and backend
    /// or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let names = cache_core::Cache::memory().keyspace("name").typed::<u64, String>()?;
    /// names.set(&1, &"ada".to_owned()).await?;
    /// assert_eq!(names.get(&1).await?.as_deref(), Some("ada"));
    /// # Ok(()) }
    /// ```
    pub async fn set<Q>(&self, key: &Q, value: &V) -> Result<()>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.layout.key(key);
        let (bytes, ttl) = self.encode_with_default_ttl(&full_key, value)?;
        self.write(&full_key, bytes, ttl, "set").await
    }

    /// Writes `value` at `key` expiring after `ttl`, whatever the default.
    ///
    /// # Errors
    /// [`Error::InvalidTtl`] (before anything is sent), and as [`set`](Self::set).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// let codes = cache_core::Cache::memory().keyspace("otp").typed::<String, u32>()?;
    /// codes.set_with_ttl("alice", &123456, Duration::from_secs(60)).await?;
    /// assert!(codes.set_with_ttl("bob", &1, Duration::ZERO).await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn set_with_ttl<Q>(&self, key: &Q, value: &V, ttl: Duration) -> Result<()>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.layout.key(key);
        check_ttl(ttl, Some(&full_key))?;
        let bytes = self.encode(&full_key, value)?;
        self.write(&full_key, bytes, Some(ttl), "set").await
    }

    /// Writes `value` only if `key` holds nothing (`SET NX`), with the default
    /// TTL. Returns whether it was written.
    ///
    /// # Errors
    /// As [`set`](Self::set).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let owners = cache_core::Cache::memory().keyspace("owner").typed::<u64, String>()?;
    /// assert!(owners.set_if_absent(&1, &"a".to_owned()).await?);
    /// assert!(!owners.set_if_absent(&1, &"b".to_owned()).await?);
    /// assert_eq!(owners.get(&1).await?.as_deref(), Some("a"));
    /// # Ok(()) }
    /// ```
    pub async fn set_if_absent<Q>(&self, key: &Q, value: &V) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.layout.key(key);
        let (bytes, ttl) = self.encode_with_default_ttl(&full_key, value)?;
        // Either way the local copy may be stale: drop it.
        let write = self
            .cache
            .backend()
            .set(&full_key, bytes, ttl, SetMode::IfAbsent);
        self.local.around(&[&full_key], write).await
    }

    /// Removes `key` (and a cached "absent" answer for it, with negative
    /// caching on); returns whether a value existed.
    ///
    /// # Errors
    /// Backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let names = cache_core::Cache::memory().keyspace("name").typed::<u64, String>()?;
    /// names.set(&1, &"ada".to_owned()).await?;
    /// assert!(names.delete(&1).await?);
    /// assert!(!names.delete(&1).await?);
    /// # Ok(()) }
    /// ```
    pub async fn delete<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.layout.key(key);
        let backend = self.cache.backend();
        let delete = backend.within(async {
            if self.load.negative_ttl.is_some() {
                // An invalidation must also drop a cached "absent" answer.
                backend.delete(&self.absent.key(key)).await?;
            }
            backend.delete(&full_key).await
        });
        self.local.around(&[&full_key], delete).await
    }

    /// Whether `key` holds a live value.
    ///
    /// # Errors
    /// Backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let names = cache_core::Cache::memory().keyspace("name").typed::<u64, String>()?;
    /// assert!(!names.exists(&1).await?);
    /// # Ok(()) }
    /// ```
    pub async fn exists<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        self.cache.backend().exists(&self.layout.key(key)).await
    }

    /// The remaining time to live of `key`.
    ///
    /// # Errors
    /// Backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// use cache_core::Ttl;
    /// let names = cache_core::Cache::memory().keyspace("name").typed::<u64, String>()?;
    /// assert_eq!(names.ttl(&1).await?, Ttl::Missing);
    /// names.set(&1, &"ada".to_owned()).await?;
    /// assert_eq!(names.ttl(&1).await?, Ttl::Persistent);
    /// # Ok(()) }
    /// ```
    pub async fn ttl<Q>(&self, key: &Q) -> Result<Ttl>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        self.cache.backend().ttl(&self.layout.key(key)).await
    }

    /// Sets `key` to expire after `ttl`; returns whether the key existed.
    ///
    /// # Errors
    /// [`Error::InvalidTtl`] (before anything is sent), backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// let names = cache_core::Cache::memory().keyspace("name").typed::<u64, String>()?;
    /// assert!(!names.expire(&1, Duration::from_secs(9)).await?);
    /// # Ok(()) }
    /// ```
    pub async fn expire<Q>(&self, key: &Q, ttl: Duration) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.layout.key(key);
        check_ttl(ttl, Some(&full_key))?;
        let expire = self.cache.backend().expire(&full_key, ttl);
        self.local.around(&[&full_key], expire).await
    }

    /// Reads and removes the value at `key` in one step (`GETDEL`): of many
    /// concurrent takers, exactly one gets it.
    ///
    /// # Errors
    /// As [`get`](Self::get). A value that does not decode is removed all the same.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let codes = cache_core::Cache::memory().keyspace("otp").typed::<String, u32>()?;
    /// codes.set("alice", &42).await?;
    /// assert_eq!(codes.take("alice").await?, Some(42));
    /// assert_eq!(codes.take("alice").await?, None);
    /// # Ok(()) }
    /// ```
    pub async fn take<Q>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.layout.key(key);
        let take = self.cache.backend().take(&full_key);
        let keys = [full_key.as_str()];
        let take = self.local.around(&keys, take);
        let bytes = take.instrument(self.span("take")).await?;
        self.decode_read(&full_key, bytes)
    }

    /// Reads many keys in one round trip (`MGET`); the results are in the order
    /// of `keys`, `None` where nothing is stored. On a cluster: one MGET per
    /// hash slot, concurrently.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty slice, [`Error::Decode`] naming the first
    /// key that does not decode, backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let names = cache_core::Cache::memory().keyspace("name").typed::<u64, String>()?;
    /// names.set(&1, &"ada".to_owned()).await?;
    /// let got = names.get_many(&[&1, &2]).await?;
    /// assert_eq!(got, [Some("ada".to_owned()), None]);
    /// # Ok(()) }
    /// ```
    pub async fn get_many<Q>(&self, keys: &[&Q]) -> Result<Vec<Option<V>>>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_keys = self.full_keys(keys, "get_many")?;
        let found = self.get_many_bytes(&full_keys).await?;
        full_keys
            .iter()
            .zip(found)
            .map(|(full_key, bytes)| self.decode_read(full_key, bytes))
            .collect()
    }

    /// Writes many entries in one atomic round trip, each with the default TTL.
    /// On a cluster: one MULTI per hash slot, concurrently; all-or-nothing
    /// within a slot, not across slots.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty slice; encode, size and TTL errors before
    /// anything is sent; backend or timeout errors (then nothing was written).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let names = cache_core::Cache::memory().keyspace("name").typed::<u64, String>()?;
    /// names.set_many(&[(&1, &"ada".to_owned()), (&2, &"bob".to_owned())]).await?;
    /// assert_eq!(names.get(&2).await?.as_deref(), Some("bob"));
    /// # Ok(()) }
    /// ```
    pub async fn set_many<Q>(&self, entries: &[(&Q, &V)]) -> Result<()>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        self.not_empty(entries.len(), "set_many", "entry")?;
        let mut encoded = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let full_key = self.layout.key(*key);
            let (bytes, ttl) = self.encode_with_default_ttl(&full_key, value)?;
            encoded.push((full_key, bytes, ttl));
        }
        let written: Vec<String> = match self.local.is_on() {
            true => encoded.iter().map(|(key, _, _)| key.clone()).collect(),
            false => Vec::new(),
        };
        let written: Vec<&str> = written.iter().map(String::as_str).collect();
        let write = self.cache.backend().set_many(encoded);
        let write = self.local.around(&written, write);
        write.instrument(self.span("set_many")).await
    }

    /// Removes many keys in one command (and their cached "absent" answers,
    /// with negative caching on); returns how many values existed. On a
    /// cluster: one DEL per hash slot.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty slice, backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let names = cache_core::Cache::memory().keyspace("name").typed::<u64, String>()?;
    /// names.set(&1, &"ada".to_owned()).await?;
    /// assert_eq!(names.delete_many(&[&1, &2]).await?, 1);
    /// # Ok(()) }
    /// ```
    pub async fn delete_many<Q>(&self, keys: &[&Q]) -> Result<usize>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_keys = self.full_keys(keys, "delete_many")?;
        let backend = self.cache.backend();
        let delete = backend.within(async {
            if self.load.negative_ttl.is_some() {
                let absent: Vec<String> = keys.iter().map(|key| self.absent.key(*key)).collect();
                backend.delete_many(&absent).await?;
            }
            backend.delete_many(&full_keys).await
        });
        let written: Vec<&str> = full_keys.iter().map(String::as_str).collect();
        self.local.around(&written, delete).await
    }

    /// Removes every entry of this keyspace (namespace, prefix and version),
    /// with its cached "absent" answers and local copies; returns how many
    /// keys it removed (entries and "absent" answers). Keys of other prefixes, versions and namespaces
    /// stay. On Redis this is SCAN with an escaped pattern and UNLINK in
    /// batches (on every primary of a cluster), never KEYS or FLUSHDB, so
    /// Redis keeps serving meanwhile; each round trip is bounded by the
    /// timeout, the whole clear takes as long as the keys do.
    ///
    /// # Errors
    /// Backend or timeout errors; what was removed before stays removed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::memory();
    /// let prices = cache.keyspace("price").typed::<String, f64>()?;
    /// let others = cache.keyspace("prices").typed::<String, f64>()?;
    /// prices.set("gpt-4", &0.03).await?;
    /// others.set("gpt-4", &0.5).await?;
    /// assert_eq!(prices.clear().await?, 1);
    /// assert_eq!(prices.get("gpt-4").await?, None);
    /// assert_eq!(others.get("gpt-4").await?, Some(0.5));
    /// # Ok(()) }
    /// ```
    pub async fn clear(&self) -> Result<u64> {
        // Reads under way when it starts keep nothing (see `LocalCopy::fetched`).
        self.local.clear();
        let heads = [self.layout.head().to_owned(), self.absent.head().to_owned()];
        self.cache.backend().clear(&heads).await
    }

    /// One write, with the local copy dropped around it.
    async fn write(
        &self,
        full_key: &str,
        bytes: Vec<u8>,
        ttl: Option<Duration>,
        operation: &'static str,
    ) -> Result<()> {
        let write = self
            .cache
            .backend()
            .set(full_key, bytes, ttl, SetMode::Always);
        let keys = [full_key];
        let write = self.local.around(&keys, write);
        write.instrument(self.span(operation)).await?;
        Ok(())
    }

    /// Many reads: local copies first, one MGET for the rest.
    async fn get_many_bytes(&self, full_keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        if !self.local.is_on() {
            let read = self.cache.backend().get_many(full_keys);
            return read.instrument(self.span("get_many")).await;
        }
        let local = &self.local;
        let mut found: Vec<Option<Vec<u8>>> = full_keys
            .iter()
            .map(|key| local.get(key).map(|bytes| bytes.to_vec()))
            .collect();
        for _ in found.iter().filter(|bytes| bytes.is_some()) {
            bump(&self.counters().local_hits);
        }
        let missing: Vec<String> = full_keys
            .iter()
            .zip(&found)
            .filter(|(_, bytes)| bytes.is_none())
            .map(|(key, _)| key.clone())
            .collect();
        if missing.is_empty() {
            return Ok(found);
        }
        let tickets: Vec<_> = missing.iter().map(|key| local.ticket(key)).collect();
        let read = self.cache.backend().get_many_with_ttl(&missing);
        let fetched = read.instrument(self.span("get_many")).await?;
        let mut fetched = fetched.into_iter().zip(missing.iter().zip(tickets));
        for slot in found.iter_mut().filter(|slot| slot.is_none()) {
            let Some((read, (key, ticket))) = fetched.next() else {
                break;
            };
            if let Some((bytes, ttl)) = read {
                local.fetched(key, &bytes, ttl, ticket);
                *slot = Some(bytes);
            }
        }
        Ok(found)
    }

    /// A batch call needs at least one `item`.
    fn not_empty(&self, len: usize, operation: &str, item: &str) -> Result<()> {
        if len == 0 {
            return Err(Error::config(format!(
                "{operation} on `{}` needs at least one {item}",
                self.layout.prefix()
            )));
        }
        Ok(())
    }

    fn full_keys<Q>(&self, keys: &[&Q], operation: &str) -> Result<Vec<String>>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        self.not_empty(keys.len(), operation, "key")?;
        Ok(keys.iter().map(|key| self.layout.key(*key)).collect())
    }

    /// Adds `delta` to the integer at `key` atomically (a missing key counts as 0)
    /// and returns the new value. A key without an expiry (a new one) gets the
    /// default TTL, so a counter never lives forever; a key with one keeps it. Values are stored as Redis integers, so
    /// `get` reads back what `incr` returned, under every codec.
    ///
    /// # Errors
    /// [`Error::Overflow`] when the result would leave `V`'s range (nothing is
    /// changed), [`Error::NotAnInteger`] when the key holds something else,
    /// [`Error::Config`] when `V` is not an integer type, and backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let hits = cache_core::Cache::memory().keyspace("hits").typed::<String, u8>()?;
    /// assert_eq!(hits.incr("home", 200).await?, 200);
    /// assert!(hits.incr("home", 100).await.unwrap_err().to_string().contains("overflow"));
    /// assert_eq!(hits.get("home").await?, Some(200));
    /// # Ok(()) }
    /// ```
    pub async fn incr<Q>(&self, key: &Q, delta: i64) -> Result<V>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.layout.key(key);
        let Some(bounds) = self.format.integer else {
            return Err(Error::config(format!(
                "incr on `{full_key}`: the value type {} is not an integer",
                std::any::type_name::<V>()
            )));
        };
        if let Some(ttl) = self.ttl {
            check_ttl(ttl, Some(&full_key))?;
        }
        let incr = Incr {
            key: &full_key,
            delta,
            bounds,
            ttl: self.ttl,
        };
        let value = self
            .local
            .around(&[&full_key], self.cache.backend().run(&incr))
            .await?;
        let bytes = value.to_string().into_bytes();
        self.decode(&full_key, Some(bytes))?
            .ok_or(Error::NotAnInteger { key: full_key })
    }
}

impl<K, V> TypedCache<K, V>
where
    K: CacheKey,
    V: KeyedCacheable<Key = K> + Serialize + DeserializeOwned,
{
    /// Writes `value` under its own key (its `#[cache(key)]` field) with the
    /// default TTL.
    ///
    /// # Errors
    /// As [`set`](Self::set).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// use cache_core::Cacheable;
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Cacheable)]
    /// #[cache(prefix = "user", ttl = 60)]
    /// struct User { #[cache(key)] id: u64, name: String }
    ///
    /// let users = cache_core::Cache::memory().typed::<User>();
    /// users.put(&User { id: 7, name: "ada".into() }).await?;
    /// assert!(users.exists(&7).await?);
    /// # Ok(()) }
    /// ```
    pub async fn put(&self, value: &V) -> Result<()> {
        self.set(value.cache_key(), value).await
    }

    /// Writes `value` under its own key, expiring after `ttl`.
    ///
    /// # Errors
    /// As [`set_with_ttl`](Self::set_with_ttl).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// use cache_core::Cacheable;
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Cacheable)]
    /// struct Token { #[cache(key)] jti: String }
    ///
    /// let tokens = cache_core::Cache::memory().typed::<Token>();
    /// tokens.put_with_ttl(&Token { jti: "t1".into() }, Duration::from_secs(30)).await?;
    /// assert!(tokens.ttl("t1").await?.remaining().is_some());
    /// # Ok(()) }
    /// ```
    pub async fn put_with_ttl(&self, value: &V, ttl: Duration) -> Result<()> {
        self.set_with_ttl(value.cache_key(), value, ttl).await
    }
}
