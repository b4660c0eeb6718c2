//! The shared `Cache` handle and its builder.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Cacheable;
use crate::backend::{Backend, MemoryBackend, RedisBackend};
use crate::error::{Error, Result, redact_url};
use crate::keyspace::{KeyspaceBuilder, KeyspaceSettings};
use crate::stats::{CacheStats, Stats};
use crate::typed::TypedCache;
use crate::typed::load::Flights;
use crate::typed::local::{LocalSettings, LocalTier};

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
    flights: Flights,
    /// Local tiers by keyspace, shared by every typed view of that keyspace.
    locals: Mutex<HashMap<String, Arc<LocalTier>>>,
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
            Backend::Memory(MemoryBackend::default()),
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
        Cache {
            inner: Arc::new(Inner {
                backend,
                namespace,
                max_value_size,
                stats,
                flights: Flights::default(),
                locals: Mutex::default(),
            }),
        }
    }

    /// The counters of this handle (and its clones) since it was built.
    ///
    /// ```
    /// assert_eq!(cache_core::Cache::memory().stats(), cache_core::CacheStats::default());
    /// ```
    pub fn stats(&self) -> CacheStats {
        self.inner.stats.snapshot()
    }

    pub(crate) fn counters(&self) -> &Stats {
        &self.inner.stats
    }

    pub(crate) fn flights(&self) -> &Flights {
        &self.inner.flights
    }

    /// The local tier of the keyspace `head`, made with `settings` if it is the
    /// first one asked for (later settings for the same keyspace are ignored).
    pub(crate) fn local_tier(&self, head: &str, settings: LocalSettings) -> Arc<LocalTier> {
        let mut locals = self
            .inner
            .locals
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            locals
                .entry(head.to_owned())
                .or_insert_with(|| Arc::new(LocalTier::new(settings))),
        )
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
        keyspace.local = T::LOCAL
            .filter(|(capacity, _)| *capacity > 0)
            .map(|(capacity, ttl)| LocalSettings {
                capacity,
                ttl: ttl.clamp(Duration::from_millis(1), crate::MAX_LOCAL_TTL),
            });
        TypedCache::new(keyspace)
    }

    /// The global namespace every key starts with, if one was set.
    ///
    /// ```
    /// assert_eq!(cache_core::Cache::memory().namespace(), None);
    /// ```
    pub fn namespace(&self) -> Option<&str> {
        self.inner.namespace.as_deref()
    }

    /// The underlying redis-rs connection, for commands this crate does not wrap.
    /// `None` on the memory backend. Keys written through it are not namespaced.
    ///
    /// ```
    /// assert!(cache_core::Cache::memory().redis_connection().is_none());
    /// ```
    pub fn redis_connection(&self) -> Option<ConnectionManager> {
        match &self.inner.backend {
            Backend::Redis(redis) => Some(redis.connection()),
            Backend::Memory(_) => None,
        }
    }

    /// Writes `bytes` at the full key `full_key` as they are, with no codec,
    /// namespace or escaping, on any backend: for migrations, tests and other
    /// writers' formats. Typed views' local tiers do not see this write.
    ///
    /// # Errors
    /// [`Error::InvalidTtl`], [`Error::ValueTooLarge`] (nothing is sent),
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
        self.backend()
            .set(
                full_key,
                bytes.to_vec(),
                ttl,
                crate::backend::SetMode::Always,
            )
            .await?;
        Ok(())
    }

    /// Reads the bytes at the full key `full_key` as they are; see [`raw_set`](Self::raw_set).
    ///
    /// # Errors
    /// [`Error::WrongType`], backend or timeout errors.
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
        match &self.inner.backend {
            Backend::Memory(memory) => Some(memory.stored_entries()),
            Backend::Redis(_) => None,
        }
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    pub(crate) fn max_value_size(&self) -> usize {
        self.inner.max_value_size
    }
}

/// Configures and connects a [`Cache`]. Nothing is checked or connected until
/// [`build`](CacheBuilder::build).
///
/// ```no_run
/// # async fn demo() -> cache_core::Result<()> {
/// use std::time::Duration;
///
/// let cache = cache_core::Cache::builder()
///     .from_env("BURNCLOUD_REDIS_URL")
///     .namespace("gateway")
///     .timeout(Duration::from_millis(250))
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use]
#[derive(Clone)]
pub struct CacheBuilder {
    url: UrlSource,
    namespace: Option<String>,
    timeout: Duration,
    max_value_size: usize,
    lazy: bool,
    tls_root: Option<Vec<u8>>,
}

#[derive(Clone)]
enum UrlSource {
    Given(String),
    Env(String),
}

impl Default for CacheBuilder {
    fn default() -> Self {
        CacheBuilder {
            url: UrlSource::Given(DEFAULT_URL.to_owned()),
            namespace: None,
            timeout: DEFAULT_TIMEOUT,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            lazy: false,
            tls_root: None,
        }
    }
}

impl fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = match &self.url {
            UrlSource::Given(url) => redact_url(url),
            UrlSource::Env(var) => format!("${var}"),
        };
        f.debug_struct("CacheBuilder")
            .field("url", &url)
            .field("namespace", &self.namespace)
            .field("timeout", &self.timeout)
            .field("max_value_size", &self.max_value_size)
            .field("lazy", &self.lazy)
            .field("tls_root", &self.tls_root.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl CacheBuilder {
    /// Trusts this CA (PEM) for `rediss://` instead of the system's roots, for
    /// servers with a private certificate authority. Needs the `tls` feature.
    ///
    /// ```no_run
    /// # async fn demo() -> cache_core::Result<()> {
    /// let ca = std::fs::read("/etc/redis/ca.crt").map_err(|e| cache_core::Error::config(e.to_string()))?;
    /// let cache = cache_core::Cache::builder()
    ///     .url("rediss://:secret@redis.internal:6380")
    ///     .tls_root_certificate(ca)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root = Some(pem.into());
        self
    }

    /// Connects on first use instead of in [`build`](Self::build), so a service
    /// can start while Redis is down; until it is up, calls fail (each within
    /// the timeout) and fail-open loads still serve from the loader. Default off.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// // Nothing listens on port 1, yet building succeeds.
    /// let cache = cache_core::Cache::builder()
    ///     .url("redis://127.0.0.1:1")
    ///     .timeout(std::time::Duration::from_millis(200))
    ///     .lazy_connect(true)
    ///     .build()
    ///     .await?;
    /// assert!(cache.keyspace("x").typed::<u8, u8>()?.get(&1).await.is_err());
    /// # Ok(()) }
    /// ```
    pub fn lazy_connect(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// The server: `redis://[user[:password]@]host[:port][/db]`,
    /// `rediss://...` (TLS, with the `tls` feature; without it, [`Error::Config`])
    /// or `redis+unix:///path?db=N`. Defaults to [`DEFAULT_URL`].
    ///
    /// ```
    /// let builder = cache_core::Cache::builder().url("redis://:secret@10.0.0.5:6380/2");
    /// assert!(!format!("{builder:?}").contains("secret"));
    /// ```
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = UrlSource::Given(url.into());
        self
    }

    /// Reads the URL from the environment variable `var` when building; when it is
    /// unset, uses [`DEFAULT_URL`].
    ///
    /// ```
    /// let builder = cache_core::Cache::builder().from_env("BURNCLOUD_REDIS_URL");
    /// ```
    pub fn from_env(mut self, var: impl Into<String>) -> Self {
        self.url = UrlSource::Env(var.into());
        self
    }

    /// A namespace put in front of every key, e.g. the service's name.
    ///
    /// ```
    /// let builder = cache_core::Cache::builder().namespace("gateway");
    /// ```
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// The bound on connecting and on every operation (default 1 s). An operation
    /// that takes longer returns [`Error::Timeout`].
    ///
    /// ```
    /// let builder = cache_core::Cache::builder().timeout(std::time::Duration::from_millis(200));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest encoded value a write accepts (default 16 MiB); larger values
    /// give [`Error::ValueTooLarge`] and are not sent.
    ///
    /// ```
    /// let builder = cache_core::Cache::builder().max_value_size(1 << 20);
    /// ```
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    /// The redis-rs client for `url`, with TLS settings for `rediss://`.
    fn client(&self, url: &str, redacted: &str) -> Result<redis::Client> {
        let invalid = |err: redis::RedisError| {
            Error::config(format!(
                "invalid Redis URL `{redacted}`: {}",
                describe(&err)
            ))
        };
        if !url.starts_with("rediss://") {
            return redis::Client::open(url).map_err(invalid);
        }
        #[cfg(feature = "tls")]
        {
            // rustls needs a crypto provider; an application may have set its own.
            let _ = rustls::crypto::ring::default_provider().install_default();
            match &self.tls_root {
                Some(pem) => {
                    let certificates = redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem.clone()),
                    };
                    redis::Client::build_with_tls(url, certificates).map_err(invalid)
                }
                None => redis::Client::open(url).map_err(invalid),
            }
        }
        #[cfg(not(feature = "tls"))]
        Err(Error::config(format!(
            "`{redacted}` asks for TLS: enable the `tls` feature of cache-core"
        )))
    }

    fn check(&self) -> Result<()> {
        if self.namespace.as_deref() == Some("") {
            return Err(Error::config("namespace must not be empty"));
        }
        if self.timeout.is_zero() {
            return Err(Error::config("timeout must be greater than zero"));
        }
        if self.max_value_size == 0 {
            return Err(Error::config("max_value_size must be greater than zero"));
        }
        Ok(())
    }

    /// Builds a cache on the embedded memory backend with this configuration
    /// (the URL and timeout are not used).
    ///
    /// # Errors
    /// [`Error::Config`] for an empty namespace or a zero limit.
    ///
    /// ```
    /// # fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::builder().namespace("test").build_memory()?;
    /// assert_eq!(cache.namespace(), Some("test"));
    /// # Ok(()) }
    /// ```
    pub fn build_memory(self) -> Result<Cache> {
        self.check()?;
        Ok(Cache::from_parts(
            Backend::Memory(MemoryBackend::default()),
            self.namespace,
            self.max_value_size,
            Arc::default(),
        ))
    }

    /// Connects to Redis and checks the connection with `PING`.
    ///
    /// # Errors
    /// [`Error::Config`] for a URL that does not parse (shown with its password
    /// redacted) or an empty namespace; [`Error::Connection`] when the server
    /// refuses or fails the handshake; [`Error::Timeout`] when it does not answer
    /// within the timeout.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let err = cache_core::Cache::builder()
    ///     .url("redis://:hunter2@bad host")
    ///     .build()
    ///     .await
    ///     .unwrap_err();
    /// assert!(err.is_config());
    /// assert!(!err.to_string().contains("hunter2"));
    /// # }
    /// ```
    pub async fn build(self) -> Result<Cache> {
        self.check()?;
        let url = match &self.url {
            UrlSource::Given(url) => url.clone(),
            UrlSource::Env(var) => match std::env::var(var) {
                Ok(url) => url,
                Err(std::env::VarError::NotPresent) => DEFAULT_URL.to_owned(),
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(Error::config(format!(
                        "environment variable {var} is not valid UTF-8"
                    )));
                }
            },
        };
        let redacted = redact_url(&url);
        let client = self.client(&url, &redacted)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(None)
            .set_number_of_retries(2);
        let stats = Arc::<Stats>::default();
        if self.lazy {
            let manager =
                ConnectionManager::new_lazy_with_config(client, config).map_err(|source| {
                    Error::Connection {
                        url: redacted.clone(),
                        source,
                    }
                })?;
            let backend = RedisBackend::new(manager, self.timeout, redacted, Arc::clone(&stats));
            return Ok(Cache::from_parts(
                Backend::Redis(backend),
                self.namespace,
                self.max_value_size,
                stats,
            ));
        }
        let connect = async {
            let mut manager = ConnectionManager::new_with_config(client, config).await?;
            redis::cmd("PING")
                .query_async::<String>(&mut manager)
                .await?;
            Ok::<_, redis::RedisError>(manager)
        };
        let manager = match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(manager)) => manager,
            Ok(Err(err)) if err.is_timeout() => {
                return Err(connect_timeout(redacted, self.timeout));
            }
            Ok(Err(source)) => {
                return Err(Error::Connection {
                    url: redacted,
                    source,
                });
            }
            Err(_elapsed) => return Err(connect_timeout(redacted, self.timeout)),
        };
        let backend = RedisBackend::new(manager, self.timeout, redacted, Arc::clone(&stats));
        Ok(Cache::from_parts(
            Backend::Redis(backend),
            self.namespace,
            self.max_value_size,
            stats,
        ))
    }
}

fn connect_timeout(url: String, after: Duration) -> Error {
    Error::ConnectTimeout { url, after }
}

/// A parse error's description without echoing the URL (and its password) back.
fn describe(err: &redis::RedisError) -> String {
    match err.detail() {
        Some(detail) if !detail.contains("://") => format!("{:?}: {detail}", err.kind()),
        _ => format!("{:?}", err.kind()),
    }
}
