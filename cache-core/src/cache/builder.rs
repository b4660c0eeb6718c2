//! `CacheBuilder`: the settings of a handle, checked and connected by `build`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{Cache, DEFAULT_MAX_VALUE_SIZE, DEFAULT_TIMEOUT, DEFAULT_URL};
use std::future::Future;

use crate::backend::{Backend, ConnectOptions, Credentials, CredentialsFuture, Hook, Target};
use crate::error::{BoxError, Error, Result};
use crate::redact;
use crate::stats::Stats;

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
    coalesce: bool,
    tls_root: Option<Vec<u8>>,
    /// The data nodes' username and password, behind Sentinel.
    credentials: (Option<String>, Option<String>),
    /// Asked for credentials on every (re)connect.
    hook: Option<Hook>,
    replica_reads: bool,
    /// Faults injected into a memory-backed handle's calls.
    #[cfg(feature = "testing")]
    faults: Option<crate::testing::Faults>,
}

#[derive(Clone)]
enum UrlSource {
    Given(String),
    Env(String),
    Cluster(Vec<String>),
    Sentinel {
        master: String,
        sentinels: Vec<String>,
    },
}

impl Default for CacheBuilder {
    fn default() -> Self {
        CacheBuilder {
            url: UrlSource::Given(DEFAULT_URL.to_owned()),
            namespace: None,
            timeout: DEFAULT_TIMEOUT,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            lazy: false,
            coalesce: true,
            tls_root: None,
            credentials: (None, None),
            hook: None,
            replica_reads: false,
            #[cfg(feature = "testing")]
            faults: None,
        }
    }
}

impl fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = match &self.url {
            UrlSource::Given(url) => redact::url(url),
            UrlSource::Env(var) => format!("${var}"),
            UrlSource::Cluster(nodes) => redact::nodes(nodes),
            UrlSource::Sentinel { master, sentinels } => {
                format!("sentinel {master} at {}", redact::nodes(sentinels))
            }
        };
        f.debug_struct("CacheBuilder")
            .field("url", &url)
            .field("namespace", &self.namespace)
            .field("timeout", &self.timeout)
            .field("max_value_size", &self.max_value_size)
            .field("lazy", &self.lazy)
            .field("coalesce", &self.coalesce)
            .field("tls_root", &self.tls_root.as_ref().map(|_| "custom"))
            .field("credentials_hook", &self.hook.is_some())
            .field("read_from_replicas", &self.replica_reads)
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
    pub fn tls_root_certificate(self, pem: impl Into<Vec<u8>>) -> Self {
        CacheBuilder {
            tls_root: Some(pem.into()),
            ..self
        }
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
    pub fn lazy_connect(self, lazy: bool) -> Self {
        CacheBuilder { lazy, ..self }
    }

    /// Whether single-key `get`, `set` and `delete` calls that arrive while
    /// eight of the handle's round trips are in flight are sent together, as
    /// one pipeline, when the first returns (group commit). A lone call is sent at once,
    /// so this adds no latency when there is nothing to batch; under
    /// concurrency it saves the client most of its per-command work. Each
    /// call still gets its own answer, error and timeout. Default on; see
    /// [`guide::performance`](crate::guide::performance) for what it gains.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::builder()
    ///     .url("redis://127.0.0.1:1")
    ///     .lazy_connect(true)
    ///     .coalesce(false)
    ///     .build()
    ///     .await?;
    /// # drop(cache); Ok(()) }
    /// ```
    pub fn coalesce(self, coalesce: bool) -> Self {
        CacheBuilder { coalesce, ..self }
    }

    /// Injects `faults` into every call of the handle that
    /// [`build_memory`](Self::build_memory) makes (feature `testing`): it
    /// then fails as a Redis handle with this [`timeout`](Self::timeout)
    /// would against a failing server (see [`Faults`](crate::testing::Faults)).
    /// [`build`](Self::build) refuses it with [`Error::Config`]: faults are for
    /// tests without a server.
    ///
    /// ```
    /// # fn main() -> cache_core::Result<()> {
    /// let faults = cache_core::testing::Faults::new();
    /// let cache = cache_core::Cache::builder().faults(faults.clone()).build_memory()?;
    /// # drop(cache); Ok(()) }
    /// ```
    #[cfg(feature = "testing")]
    pub fn faults(self, faults: crate::testing::Faults) -> Self {
        CacheBuilder {
            faults: Some(faults),
            ..self
        }
    }

    /// The server: `redis://[user[:password]@]host[:port][/db]`,
    /// `rediss://...` (TLS, with the `tls` feature; without it, [`Error::Config`])
    /// or `redis+unix:///path?db=N`. Defaults to [`DEFAULT_URL`].
    ///
    /// ```
    /// let builder = cache_core::Cache::builder().url("redis://:secret@10.0.0.5:6380/2");
    /// assert!(!format!("{builder:?}").contains("secret"));
    /// ```
    pub fn url(self, url: impl Into<String>) -> Self {
        CacheBuilder {
            url: UrlSource::Given(url.into()),
            ..self
        }
    }

    /// A Redis Cluster, reached through any of `nodes` (`redis://` or
    /// `rediss://` URLs, with passwords as for [`url`](Self::url)); the rest of
    /// the cluster is discovered from them. Every feature works the same on a
    /// cluster; see [`guide::cluster`](crate::guide::cluster) for what is
    /// atomic where. Errors name the nodes with their passwords redacted.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::builder()
    ///     .cluster_nodes(["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"])
    ///     .namespace("gateway")
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn cluster_nodes<I, S>(self, nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let nodes = nodes.into_iter().map(Into::into).collect();
        CacheBuilder {
            url: UrlSource::Cluster(nodes),
            ..self
        }
    }

    /// A primary with replicas behind Redis Sentinel: the handle asks
    /// `sentinels` (`redis://` URLs, with the sentinels' own passwords) for
    /// the primary of `master`, and follows their announcement of a new one
    /// (their `+switch-master` event, and a check every second): it writes
    /// to the new primary within a second of the announcement. While there
    /// is no primary to reach, calls fail as connection errors. The data
    /// nodes' credentials are set with
    /// [`data_node_credentials`](Self::data_node_credentials). A local tier
    /// is flushed when the primary changes, as on a cluster's topology change.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::builder()
    ///     .sentinel("mymaster", ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"])
    ///     .data_node_credentials(None, "s3cret")
    ///     .namespace("gateway")
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn sentinel<I, S>(self, master: impl Into<String>, sentinels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let sentinels = sentinels.into_iter().map(Into::into).collect();
        CacheBuilder {
            url: UrlSource::Sentinel {
                master: master.into(),
                sentinels,
            },
            ..self
        }
    }

    /// The username (ACL) and password of the data nodes behind
    /// [`sentinel`](Self::sentinel); the sentinels' own are in their URLs.
    ///
    /// ```
    /// let builder = cache_core::Cache::builder()
    ///     .sentinel("mymaster", ["redis://:sentinel-pw@10.0.0.1:26379"])
    ///     .data_node_credentials(Some("cache"), "data-pw");
    /// assert!(!format!("{builder:?}").contains("pw"));
    /// ```
    pub fn data_node_credentials(self, username: Option<&str>, password: &str) -> Self {
        CacheBuilder {
            credentials: (username.map(str::to_owned), Some(password.to_owned())),
            ..self
        }
    }

    /// Lets plain reads go to replicas (default off), on a cluster and behind
    /// Sentinel: `get`, `get_shared`, `get_many`, `exists` and `ttl` of a
    /// keyspace without a local tier and without tags. Such a read may not
    /// see a write made just before it, even through this handle (replication
    /// is asynchronous: usually well under a millisecond behind, unbounded
    /// while a replica is cut off). Everything else reads the primary: writes,
    /// `get_or_load` and its batch form (which read their own writes), local
    /// tiers, tagged keyspaces, counters, locks, rate limits, sequences,
    /// flags, one-time codes and typed sets. One server has no replicas: the
    /// setting changes nothing there. On a cluster, replicas are those
    /// `CLUSTER SLOTS` lists when the handle maps the slots (Redis leaves out
    /// a replica that has not replicated anything yet).
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::builder()
    ///     .sentinel("mymaster", ["redis://10.0.0.1:26379"])
    ///     .read_from_replicas(true)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn read_from_replicas(self, replicas: bool) -> Self {
        CacheBuilder {
            replica_reads: replicas,
            ..self
        }
    }

    /// Asks `hook` for the credentials of every connection the handle opens
    /// and of every reconnect (its own connections, the local tier's
    /// invalidation connections, every cluster node, the primary behind
    /// Sentinel), instead of the password in the URL: for passwords that
    /// rotate and tokens that expire (IAM, Entra ID). A connection keeps the
    /// credentials it was opened with; after a rotation, connections opened
    /// from then on use the new ones. When the hook fails, that connection
    /// fails (and is tried again on the next call).
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// use cache_core::Credentials;
    ///
    /// let cache = cache_core::Cache::builder()
    ///     .url("redis://redis.internal:6379")
    ///     .credentials(|| async {
    ///         // e.g. a token from the cloud's identity service
    ///         let token = std::env::var("REDIS_TOKEN")?;
    ///         Ok(Credentials { username: Some("cache".into()), password: token })
    ///     })
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn credentials<F, Fut>(self, hook: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Credentials, BoxError>> + Send + 'static,
    {
        let hook = move || -> CredentialsFuture { Box::pin(hook()) };
        CacheBuilder {
            hook: Some(Hook(Arc::new(hook))),
            ..self
        }
    }

    /// Reads the URL from the environment variable `var` when building; when it is
    /// unset, uses [`DEFAULT_URL`]. A variable that is set but empty (or only
    /// blanks) is taken for a deployment mistake, not for "the default":
    /// [`build`](Self::build) fails with [`Error::Config`] naming the variable,
    /// as it does for a value that is not UTF-8.
    ///
    /// ```
    /// let builder = cache_core::Cache::builder().from_env("BURNCLOUD_REDIS_URL");
    /// ```
    pub fn from_env(self, var: impl Into<String>) -> Self {
        CacheBuilder {
            url: UrlSource::Env(var.into()),
            ..self
        }
    }

    /// A namespace put in front of every key, e.g. the service's name.
    ///
    /// ```
    /// let builder = cache_core::Cache::builder().namespace("gateway");
    /// ```
    pub fn namespace(self, namespace: impl Into<String>) -> Self {
        CacheBuilder {
            namespace: Some(namespace.into()),
            ..self
        }
    }

    /// The bound on connecting and on every operation (default 1 s). An operation
    /// that takes longer returns [`Error::Timeout`].
    ///
    /// ```
    /// let builder = cache_core::Cache::builder().timeout(std::time::Duration::from_millis(200));
    /// ```
    pub fn timeout(self, timeout: Duration) -> Self {
        CacheBuilder { timeout, ..self }
    }

    /// The largest encoded value a write accepts (default 16 MiB); larger values
    /// give [`Error::ValueTooLarge`] and are not sent.
    ///
    /// ```
    /// let builder = cache_core::Cache::builder().max_value_size(1 << 20);
    /// ```
    pub fn max_value_size(self, bytes: usize) -> Self {
        CacheBuilder {
            max_value_size: bytes,
            ..self
        }
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
    /// (the URL is not used; the timeout only bounds operations when faults
    /// are injected).
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
        let stats = Arc::<Stats>::default();
        #[cfg(feature = "testing")]
        let backend = match self.faults {
            Some(faults) => Backend::memory_with_faults(faults, self.timeout, Arc::clone(&stats)),
            None => Backend::memory(),
        };
        #[cfg(not(feature = "testing"))]
        let backend = Backend::memory();
        Ok(Cache::from_parts(
            backend,
            self.namespace,
            self.max_value_size,
            stats,
        ))
    }

    /// Connects to Redis and checks the connection with `PING`.
    ///
    /// # Errors
    /// [`Error::Config`] for a URL that does not parse (shown with its password
    /// redacted) or an empty namespace; [`Error::Connection`] when the server
    /// (or every cluster node) refuses or fails the handshake;
    /// [`Error::ConnectTimeout`] (`is_timeout()` is true) when it does not
    /// answer within the timeout, however the silence shows.
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
        #[cfg(feature = "testing")]
        if self.faults.is_some() {
            return Err(Error::config(
                "faults are injected only into the memory backend: build it with build_memory",
            ));
        }
        let target = match &self.url {
            UrlSource::Given(url) => Target::Standalone(url.clone()),
            UrlSource::Env(var) => Target::Standalone(url_from_env(var)?),
            UrlSource::Cluster(nodes) if nodes.is_empty() => {
                return Err(Error::config("cluster_nodes needs at least one node URL"));
            }
            UrlSource::Cluster(nodes) => Target::Cluster(nodes.clone()),
            UrlSource::Sentinel { sentinels, .. } if sentinels.is_empty() => {
                return Err(Error::config("sentinel needs at least one sentinel URL"));
            }
            UrlSource::Sentinel { master, sentinels } => Target::Sentinel {
                master: master.clone(),
                sentinels: sentinels.clone(),
                credentials: self.credentials.clone(),
            },
        };
        let stats = Arc::<Stats>::default();
        let options = ConnectOptions {
            target,
            timeout: self.timeout,
            lazy: self.lazy,
            coalesce: self.coalesce,
            credentials: self.hook,
            replica_reads: self.replica_reads,
            tls_root: self.tls_root,
        };
        let backend = Backend::connect(options, Arc::clone(&stats)).await?;
        Ok(Cache::from_parts(
            backend,
            self.namespace,
            self.max_value_size,
            stats,
        ))
    }
}

/// The URL in the environment variable `var`: [`DEFAULT_URL`] when it is
/// unset; an error naming it when it is empty or not UTF-8.
fn url_from_env(var: &str) -> Result<String> {
    match std::env::var(var) {
        Ok(url) if url.trim().is_empty() => Err(Error::config(format!(
            "environment variable {var} is set but empty: set it to a Redis URL \
             (redis://host:6379) or unset it to use {DEFAULT_URL}"
        ))),
        Ok(url) => Ok(url),
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT_URL.to_owned()),
        Err(std::env::VarError::NotUnicode(_)) => Err(Error::config(format!(
            "environment variable {var} is not valid UTF-8"
        ))),
    }
}
