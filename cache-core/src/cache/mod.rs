//! The shared `Cache` handle.

mod builder;
mod coherence;

pub use self::builder::CacheBuilder;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Cacheable;
use crate::backend::{Backend, RedisConnection};
use crate::engine::flight::Flights;
use crate::error::{Error, Result};
use crate::key::KeyLayout;
use crate::keyspace::{KeyspaceBuilder, KeyspaceSettings};
use crate::stats::{CacheStats, KeyspaceCounters, Stats};
use crate::typed::TypedCache;
use crate::typed::local::{Channel, LocalCopy, LocalSettings, LocalTier};

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
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    namespace: Option<String>,
    max_value_size: usize,
    stats: Arc<Stats>,
    flights: Arc<Flights>,
    /// Local tiers by keyspace, shared by every typed view of that keyspace.
    locals: Arc<coherence::Tiers>,
    /// Whether they may serve: on Redis, while invalidations arrive.
    channel: Arc<Channel>,
    /// Counters by keyspace prefix, shared by the views of that keyspace.
    keyspaces: Mutex<HashMap<String, Arc<KeyspaceCounters>>>,
    /// Tells the invalidation task that a keyspace got a local tier.
    added: Arc<tokio::sync::Notify>,
    /// Set once the invalidation task runs (with the first local tier).
    listening: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.inner.backend)
            .field("namespace", &self.inner.namespace)
            .field("max_value_size", &self.inner.max_value_size)
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
        // The memory backend sees every write: its tiers need no channel.
        let live = backend.tracker().is_none();
        Cache {
            inner: Arc::new(Inner {
                backend,
                namespace,
                max_value_size,
                stats,
                flights: Arc::default(),
                locals: Arc::default(),
                keyspaces: Mutex::default(),
                added: Arc::default(),
                channel: Arc::new(Channel::new(live)),
                listening: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// The counters of this handle (and its clones) since it was built.
    ///
    /// ```
    /// assert_eq!(cache_core::Cache::memory().stats(), cache_core::CacheStats::default());
    /// ```
    pub fn stats(&self) -> CacheStats {
        // Backend errors and timeouts are the handle's; the rest, its keyspaces'.
        let keyspaces = self
            .inner
            .keyspaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        keyspaces
            .values()
            .map(|counters| counters.snapshot())
            .fold(self.inner.stats.snapshot(), Stats::add)
    }

    /// The counters of the keyspace `prefix` on this handle.
    pub(crate) fn keyspace_counters(&self, prefix: &str) -> Arc<KeyspaceCounters> {
        let mut keyspaces = self
            .inner
            .keyspaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let counters = keyspaces.entry(prefix.to_owned()).or_insert_with(|| {
            let namespace = self.inner.namespace.as_deref();
            Arc::new(KeyspaceCounters::new(namespace, prefix))
        });
        Arc::clone(counters)
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
        let keyspaces = self
            .inner
            .keyspaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        keyspaces.get(prefix).map(|counters| counters.snapshot())
    }

    pub(crate) fn flights(&self) -> &Arc<Flights> {
        &self.inner.flights
    }

    /// The local tier of the keyspace `head`, made with `settings` if it is the
    /// first one asked for (later settings for the same keyspace are ignored).
    /// The local tier of `layout`'s keyspace on this handle, made with
    /// `settings` when it is the first. Views of one keyspace share one tier;
    /// when `settings` differ from its, the tier comes with the error that
    /// says so.
    pub(crate) fn local_tier(
        &self,
        layout: &KeyLayout,
        settings: LocalSettings,
    ) -> (Arc<LocalTier>, Result<()>) {
        let mut locals = self
            .inner
            .locals
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let channel = &self.inner.channel;
        let mut added = false;
        let tier = locals.entry(layout.head().to_owned()).or_insert_with(|| {
            added = true;
            let counters = self.keyspace_counters(layout.prefix());
            // On Redis it serves once its prefix is tracked; the memory
            // backend's tiers need no tracking.
            let tracked = self.inner.backend.tracker().is_none();
            Arc::new(LocalTier::new(
                settings,
                Arc::clone(channel),
                counters,
                tracked,
            ))
        });
        let existing = tier.settings();
        let agreed = if existing == settings {
            Ok(())
        } else {
            Err(Error::config(format!(
                "keyspace `{}` already has a local tier on this handle with capacity {} and \
                 TTL {:?}; asked for capacity {} and TTL {:?}. Views of one keyspace share one \
                 local tier: give them the same settings",
                layout.prefix(),
                existing.capacity,
                existing.ttl,
                settings.capacity,
                settings.ttl,
            )))
        };
        let tier = Arc::clone(tier);
        drop(locals);
        if added {
            self.inner.added.notify_one();
        }
        self.listen();
        (tier, agreed)
    }

    /// Starts the invalidation task of a Redis handle, once, when there is a
    /// Tokio runtime to run it on (until then its local tiers are bypassed).
    fn listen(&self) {
        use std::sync::atomic::Ordering;
        let Some(tracker) = self.inner.backend.tracker() else {
            return;
        };
        if self.inner.listening.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.listening.swap(true, Ordering::AcqRel) {
            return;
        }
        runtime.spawn(coherence::run(coherence::Listener {
            tracker,
            tiers: Arc::downgrade(&self.inner.locals),
            channel: Arc::clone(&self.inner.channel),
            namespace: self.inner.namespace.clone().unwrap_or_default(),
            added: Arc::clone(&self.inner.added),
        }));
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
        KeyspaceBuilder::new(self.clone(), prefix.into())
    }

    /// The typed cache of a [`Cacheable`] type, with its prefix, version, TTL and
    /// codec. Per-call overrides ([`TypedCache::set_with_ttl`],
    /// [`TypedCache::with_ttl`]) still apply.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// use cache_core::Cacheable;
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Cacheable, Debug, PartialEq)]
    /// #[cache(prefix = "seq", key_type = "u64")]
    /// struct MessageSeq(i64);
    ///
    /// let seqs = cache_core::Cache::memory().typed::<MessageSeq>();
    /// assert_eq!(seqs.incr(&42, 1).await?, MessageSeq(1));
    /// assert_eq!(seqs.get(&42).await?, Some(MessageSeq(1)));
    /// # Ok(()) }
    /// ```
    pub fn typed<T>(&self) -> TypedCache<T::Key, T>
    where
        T: Cacheable + Serialize + DeserializeOwned,
    {
        let mut keyspace = KeyspaceSettings::new(
            self.clone(),
            T::PREFIX,
            T::VERSION,
            T::TTL,
            T::CODEC,
            T::LOAD,
        );
        // The derive checked these; a hand-written impl is made safe instead.
        let settings = T::LOCAL
            .filter(|local| local.capacity > 0)
            .map(|local| LocalSettings {
                capacity: local.capacity,
                ttl: local
                    .ttl
                    .clamp(Duration::from_millis(1), crate::MAX_LOCAL_TTL),
            });
        let local = settings.map(|settings| {
            let (tier, agreed) = self.local_tier(&keyspace.layout, settings);
            if let Err(error) = agreed {
                // This constructor cannot fail; the first settings stay.
                tracing::warn!(prefix = T::PREFIX, %error, "conflicting local tier settings");
            }
            tier
        });
        keyspace.local = None;
        TypedCache::with_local_copy(keyspace, LocalCopy::new(local))
    }

    /// The global namespace every key starts with, if one was set.
    ///
    /// ```
    /// assert_eq!(cache_core::Cache::memory().namespace(), None);
    /// ```
    pub fn namespace(&self) -> Option<&str> {
        self.inner.namespace.as_deref()
    }

    /// The handle's Redis connection, for commands this crate does not wrap
    /// (see [`RedisConnection`]). `None` on the memory backend. Keys written
    /// through it are not namespaced.
    ///
    /// ```
    /// assert!(cache_core::Cache::memory().redis_connection().is_none());
    /// ```
    pub fn redis_connection(&self) -> Option<RedisConnection> {
        self.inner.backend.redis_connection()
    }

    /// Writes `bytes` at the full key `full_key` as they are, with no codec,
    /// namespace or escaping, on any backend: for migrations, tests and other
    /// writers' formats. Local copies of `full_key` on this handle are dropped.
    ///
    /// # Errors
    /// [`Error::InvalidTtl`](crate::Error::InvalidTtl), [`Error::ValueTooLarge`](crate::Error::ValueTooLarge) (nothing is sent),
    /// backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::memory();
    /// cache.raw_set("legacy:user:7", b"{\"name\":\"ada\"}", None).await?;
    /// assert_eq!(cache.raw_get("legacy:user:7").await?.as_deref(), Some(&b"{\"name\":\"ada\"}"[..]));
    /// # Ok(()) }
    /// ```
    pub async fn raw_set(&self, full_key: &str, bytes: &[u8], ttl: Option<Duration>) -> Result<()> {
        if let Some(ttl) = ttl {
            crate::ttl::check_ttl(ttl, Some(full_key))?;
        }
        crate::codec::check_size(full_key, bytes.len(), self.max_value_size())?;
        self.drop_local_copies(full_key);
        let write = self.backend().set(
            full_key,
            bytes.to_vec(),
            ttl,
            crate::backend::SetMode::Always,
        );
        let written = write.await;
        self.drop_local_copies(full_key);
        written.map(drop)
    }

    /// Drops `full_key` from this handle's local tiers (a write through the
    /// handle that no typed view saw).
    fn drop_local_copies(&self, full_key: &str) {
        let locals = self
            .inner
            .locals
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for tier in locals.values() {
            tier.invalidate(full_key, false);
        }
    }

    /// Reads the bytes at the full key `full_key` as they are; see [`raw_set`](Self::raw_set).
    ///
    /// # Errors
    /// [`Error::WrongType`](crate::Error::WrongType), backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// assert_eq!(cache_core::Cache::memory().raw_get("nothing").await?, None);
    /// # Ok(()) }
    /// ```
    pub async fn raw_get(&self, full_key: &str) -> Result<Option<Vec<u8>>> {
        self.backend().get(full_key).await
    }

    /// On the memory backend, how many entries it holds, counting expired ones
    /// that have not been purged yet. `None` on Redis.
    ///
    /// ```
    /// assert_eq!(cache_core::Cache::memory().memory_entries(), Some(0));
    /// ```
    pub fn memory_entries(&self) -> Option<usize> {
        self.inner.backend.memory_entries()
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    pub(crate) fn max_value_size(&self) -> usize {
        self.inner.max_value_size
    }
}
