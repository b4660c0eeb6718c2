//! The shared `Cache` handle.

mod builder;
mod raw;

pub use self::builder::CacheBuilder;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::Cacheable;
use crate::backend::{Backend, RedisConnection};
use crate::engine::Engine;
use crate::engine::tags::user_tag;
use crate::error::{Error, Result};
use crate::keyspace::{KeyspaceBuilder, KeyspaceSpec};
use crate::stats::{CacheStats, Stats};
use crate::typed::TypedCache;

/// The URL `from_env` falls back to when its variable is unset.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// The default bound on every operation, connecting included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// The default largest encoded value a write accepts (16 MiB).
pub const DEFAULT_MAX_VALUE_SIZE: usize = 16 * 1024 * 1024;

/// A handle to one cache: a Redis server or the embedded memory backend.
///
/// Cheap to clone (one `Arc`), `Send + Sync`, and meant to be created once and
/// shared by the whole process: all clones use the same multiplexed connection.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// use cache_core::Cache;
/// use std::time::Duration;
///
/// let cache = Cache::memory();
/// let greetings = cache
///     .keyspace("greeting")
///     .ttl(Duration::from_secs(60))
///     .typed::<String, String>()?;
/// greetings.set("en", &"hello".to_owned()).await?;
/// assert_eq!(greetings.get("en").await?.as_deref(), Some("hello"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cache {
    engine: Arc<Engine>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("backend", self.engine.backend())
            .field("namespace", &self.engine.namespace())
            .field("max_value_size", &self.engine.max_value_size())
            .finish()
    }
}

impl Cache {
    /// Starts configuring a cache.
    ///
    /// ```no_run
    /// # async fn demo() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::builder()
    ///     .url("redis://127.0.0.1:6379/0")
    ///     .namespace("gateway")
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    /// A cache held in this process, with real TTLs and the same observable
    /// behaviour as Redis. For tests, examples and single-process services.
    ///
    /// ```
    /// let cache = cache_core::Cache::memory();
    /// assert!(cache.redis_connection().is_none());
    /// ```
    pub fn memory() -> Self {
        Cache::from_parts(
            Backend::memory(),
            None,
            DEFAULT_MAX_VALUE_SIZE,
            Arc::default(),
        )
    }

    fn from_parts(
        backend: Backend,
        namespace: Option<String>,
        max_value_size: usize,
        stats: Arc<Stats>,
    ) -> Self {
        let engine = Engine::new(backend, namespace, max_value_size, stats);
        Cache {
            engine: Arc::new(engine),
        }
    }

    /// The engine behind this handle.
    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The counters of this handle (and its clones) since it was built.
    ///
    /// ```
    /// assert_eq!(cache_core::Cache::memory().stats(), cache_core::CacheStats::default());
    /// ```
    pub fn stats(&self) -> CacheStats {
        self.engine.stats()
    }

    /// The counters of the keyspace `prefix` (every version, every typed
    /// view) on this handle; `None` before a view of it was made. Backend
    /// errors and timeouts are counted per handle only, in [`stats`](Self::stats).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::memory();
    /// let prices = cache.keyspace("price").typed::<String, f64>()?;
    /// let names = cache.keyspace("name").typed::<u64, String>()?;
    /// prices.get("gpt-4").await?;
    /// names.set(&1, &"ada".to_owned()).await?;
    /// names.get(&1).await?;
    /// assert_eq!(cache.keyspace_stats("price").unwrap().misses, 1);
    /// assert_eq!(cache.keyspace_stats("name").unwrap().hits, 1);
    /// assert_eq!(cache.stats().hits + cache.stats().misses, 2);
    /// assert!(cache.keyspace_stats("other").is_none());
    /// # Ok(()) }
    /// ```
    pub fn keyspace_stats(&self, prefix: &str) -> Option<CacheStats> {
        self.engine.keyspace_stats(prefix)
    }

    /// Starts a typed view of the keys under `prefix`:
    /// `{namespace}:{prefix}:v{version}:{key}`.
    ///
    /// ```
    /// # fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::memory();
    /// let counts = cache.keyspace("count").typed::<u64, i64>()?;
    /// assert_eq!(counts.key(&7), "count:v1:7");
    /// # Ok(()) }
    /// ```
    pub fn keyspace(&self, prefix: impl Into<String>) -> KeyspaceBuilder {
        KeyspaceBuilder::new(Arc::clone(&self.engine), prefix.into())
    }

    /// The typed cache of a [`Cacheable`] type, with its prefix, version, TTL,
    /// codec, load policy, local tier, compression and tags. Per-call
    /// overrides ([`TypedCache::set_with_ttl`], [`TypedCache::with_ttl`])
    /// still apply.
    ///
    /// # Errors
    /// The type's settings are checked as [`KeyspaceBuilder::typed`] checks
    /// a builder's, with the same errors: a derived type's attributes were
    /// checked at compile time, but a hand-written impl's constants are
    /// checked here ([`Error::Config`] for a bad prefix, version, load policy
    /// or local tier, [`Error::InvalidTtl`] for a bad TTL), and so is a local
    /// tier whose settings differ from another keyspace's of the same prefix
    /// on this handle ([`Error::Config`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// use cache_core::Cacheable;
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Cacheable, Debug, PartialEq)]
    /// #[cache(prefix = "seq", key_type = "u64")]
    /// struct MessageSeq(i64);
    ///
    /// let seqs = cache_core::Cache::memory().typed::<MessageSeq>()?;
    /// assert_eq!(seqs.incr(&42, 1).await?, MessageSeq(1));
    /// assert_eq!(seqs.get(&42).await?, Some(MessageSeq(1)));
    /// # Ok(()) }
    /// ```
    pub fn typed<T>(&self) -> Result<TypedCache<T::Key, T>>
    where
        T: Cacheable + Serialize + DeserializeOwned,
    {
        let builder = KeyspaceBuilder::from_spec(Arc::clone(&self.engine), KeyspaceSpec::of::<T>());
        let mut typed = builder.typed::<T::Key, T>()?;
        typed.tags_of = T::tags;
        Ok(typed)
    }

    /// Invalidates every entry written under `tag`, in every keyspace of
    /// this namespace, on every handle and process: one small write, no
    /// scan. After it returns no read of this handle returns such an entry;
    /// other handles' local tiers stop serving them within the coherence
    /// bound of the local tier. `get_or_load` reloads them (under fail-safe,
    /// a failed load may answer with one as stale). Entries stay in Redis
    /// until they expire or are written again.
    ///
    /// # Errors
    /// Backend and timeout errors; the tag may then be invalidated or not.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::memory();
    /// let pages = cache.keyspace("page").tagged().typed::<String, String>()?;
    /// pages.set_tagged("/", &"home".to_owned(), &["tenant:acme"]).await?;
    /// cache.invalidate_tag("tenant:acme").await?;
    /// assert_eq!(pages.get("/").await?, None);
    /// assert_eq!(cache.stats().tag_invalidations, 1);
    /// # Ok(()) }
    /// ```
    pub async fn invalidate_tag(&self, tag: &str) -> Result<()> {
        self.invalidate_tags(&[tag]).await
    }

    /// [`invalidate_tag`](Self::invalidate_tag) of several tags in one write.
    ///
    /// # Errors
    /// As `invalidate_tag`; [`Error::Config`] for an empty slice.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::memory();
    /// cache.invalidate_tags(&["tenant:acme", "tenant:globex"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn invalidate_tags(&self, tags: &[&str]) -> Result<()> {
        if tags.is_empty() {
            return Err(Error::config("invalidate_tags needs at least one tag"));
        }
        let names: Vec<String> = tags.iter().map(|tag| user_tag(tag)).collect();
        let span = tracing::debug_span!(
            "cache.op",
            operation = "invalidate_tag",
            namespace = self.engine.namespace().unwrap_or_default(),
        );
        let backend = self.engine.backend();
        let invalidate = backend.within(self.engine.invalidate_tags(&names));
        invalidate.instrument(span).await
    }

    /// The global namespace every key starts with, if one was set.
    ///
    /// ```
    /// assert_eq!(cache_core::Cache::memory().namespace(), None);
    /// ```
    pub fn namespace(&self) -> Option<&str> {
        self.engine.namespace()
    }

    /// The handle's Redis connection, for commands this crate does not wrap
    /// (see [`RedisConnection`]). `None` on the memory backend. Keys written
    /// through it are not namespaced.
    ///
    /// ```
    /// assert!(cache_core::Cache::memory().redis_connection().is_none());
    /// ```
    pub fn redis_connection(&self) -> Option<RedisConnection> {
        self.engine.backend().redis_connection()
    }

    /// On the memory backend, how many entries it holds, counting expired ones
    /// that have not been purged yet. `None` on Redis. Hidden: a test hook
    /// (the memory backend's purge of expired entries), not an API.
    ///
    /// ```
    /// assert_eq!(cache_core::Cache::memory().memory_entries(), Some(0));
    /// ```
    #[doc(hidden)]
    pub fn memory_entries(&self) -> Option<usize> {
        self.engine.backend().memory_entries()
    }
}
