//! `TypedCache<K, V>`: typed keys and values over any backend. This module
//! holds the view and its settings; its operations are split by concern:
//! `read` (get, exists, ttl), `write` (set, delete, take, incr, put),
//! `batch` (the `_many` forms and clear) and `load` (cache-aside, run by the
//! engine's one protocol).

mod batch;
mod load;
mod read;
mod write;

use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::ValueFormat;
use crate::engine::access::Encoded;
use crate::engine::{KeyspaceSettings, Space};
use crate::error::{Error, Result};
use crate::key::CacheKey;
use crate::settings::LoadPolicy;
use crate::settings::LocalSettings;
use crate::stats::LocalStats;
use crate::stats::{KeyspaceCounters, bump};
use crate::ttl::check_ttl;

/// Typed access to the entries of one keyspace: keys of type `K`, values of type `V`.
///
/// Cheap to clone; every clone shares the [`Cache`](crate::Cache) handle's connection. Methods
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
    /// The keyspace's TTL, policy, companions, local tier and counters.
    pub(crate) space: Space,
    pub(crate) format: ValueFormat,
    /// The tags a value carries of itself (a derived type's tag fields).
    pub(crate) tags_of: fn(&V) -> Vec<String>,
    types: PhantomData<fn(&K) -> V>,
}

impl<K: ?Sized, V> Clone for TypedCache<K, V> {
    fn clone(&self) -> Self {
        TypedCache {
            space: self.space.clone(),
            format: self.format,
            tags_of: self.tags_of,
            types: PhantomData,
        }
    }
}

impl<K: ?Sized, V> fmt::Debug for TypedCache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedCache")
            .field("keys", &self.space.layout)
            .field("ttl", &self.space.ttl)
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
    /// [`Error::Config`](crate::Error::Config) when the keyspace already has a local tier with
    /// other settings on this handle, or its codec is `Plain` and `V` is not
    /// a string, a byte string or an integer.
    pub(crate) fn new(keyspace: KeyspaceSettings) -> Result<Self> {
        let max = keyspace.engine.max_value_size();
        let format = ValueFormat::for_type::<V>(keyspace.codec, keyspace.compress, max)
            .check::<V>(keyspace.layout.prefix())?;
        Ok(TypedCache::from_space(Space::build(keyspace)?, format))
    }

    /// This view with values carrying the tags `tags_of` gives them.
    pub(crate) fn with_tags_of(self, tags_of: fn(&V) -> Vec<String>) -> Self {
        TypedCache { tags_of, ..self }
    }

    /// A view of `space`, whose values are read and written as `format`.
    pub(crate) fn from_space(space: Space, format: ValueFormat) -> Self {
        TypedCache {
            format,
            space,
            tags_of: |_| Vec::new(),
            types: PhantomData,
        }
    }

    /// A copy of this cache with a local tier in front of the backend; see
    /// [`KeyspaceBuilder::local`](crate::KeyspaceBuilder::local). Every typed
    /// view of the same keyspace on this handle shares one local tier.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for a capacity of zero, or when this keyspace already
    /// has a local tier with other settings on this handle;
    /// [`Error::InvalidTtl`](crate::Error::InvalidTtl) for a zero TTL or one beyond
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
        let space = self.space.with_local(LocalSettings { capacity, ttl })?;
        Ok(TypedCache::from_space(space, self.format).with_tags_of(self.tags_of))
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
        self.space.local.len()
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
        self.space.local.is_live()
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
        self.space.local.stats()
    }

    /// A copy of this cache with another [`LoadPolicy`] for `get_or_load`.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for a jitter or early-refresh fraction out of range
    /// or fail-safe on a `Plain` keyspace,
    /// [`Error::InvalidTtl`](crate::Error::InvalidTtl) for a zero negative TTL or lease.
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
        let prefix = self.space.layout.prefix();
        policy.check(prefix)?;
        let headers = [(policy.fail_safe.is_some(), "fail_safe")];
        crate::codec::check_plain(prefix, self.format.codec, headers)?;
        let mut copy = self.clone();
        copy.space.parts_mut().load = policy;
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
        self.space.layout.key(key)
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
        self.space.ttl
    }

    /// A copy of this cache whose `set` uses `ttl` instead (a per-use override).
    ///
    /// # Errors
    /// [`Error::InvalidTtl`](crate::Error::InvalidTtl) for zero or a TTL beyond [`MAX_TTL`](crate::MAX_TTL).
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
        copy.space.parts_mut().ttl = Some(ttl);
        Ok(copy)
    }

    /// This keyspace's counters on this handle.
    pub(crate) fn counters(&self) -> &KeyspaceCounters {
        &self.space.counters
    }

    /// `value` encoded for `full_key`, under the call's tags `extra` and its own.
    ///
    /// # Errors
    /// Encode and size errors; [`Error::Config`](crate::Error::Config) for tags on a keyspace that
    /// is not tagged.
    fn encoded(&self, full_key: String, value: &V, extra: &[String]) -> Result<Encoded> {
        let bytes = self.encode(&full_key, value)?;
        let tags = self.tags(value, extra)?;
        Ok(Encoded {
            full_key,
            bytes,
            tags,
        })
    }

    /// The user tags of `value` written with the call's `extra` tags.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for tags on a keyspace that is not tagged.
    pub(crate) fn tags(&self, value: &V, extra: &[String]) -> Result<Vec<String>> {
        let mut tags = (self.tags_of)(value);
        tags.extend_from_slice(extra);
        if !tags.is_empty() {
            self.space.check_tagged()?;
        }
        Ok(tags)
    }

    fn encode(&self, full_key: &str, value: &V) -> Result<Vec<u8>> {
        self.format.encode_for(full_key, value, self.counters())
    }

    /// Decodes the bytes read at `full_key`; a failure is counted and names the key.
    fn decoder<'a>(&'a self, full_key: &'a str) -> impl FnOnce(&[u8]) -> Result<V> + 'a {
        move |bytes| {
            self.format.decode(bytes).map_err(|source| {
                bump(&self.counters().decode_errors);
                Error::Decode {
                    key: full_key.to_owned(),
                    source,
                }
            })
        }
    }

    fn full_keys<Q>(&self, keys: &[&Q], operation: &str) -> Result<Vec<String>>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        self.space.not_empty(keys.len(), operation, "key")?;
        Ok(keys.iter().map(|key| self.space.layout.key(*key)).collect())
    }
}
