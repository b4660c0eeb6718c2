//! Cache-aside that holds under load and failure: `get_or_load` with single
//! flight (in-process, optionally across processes), negative caching, TTL
//! jitter, early refresh and a failure policy.

use std::borrow::Borrow;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::Ttl;
use crate::backend::SetMode;
use crate::cache::Cache;
use crate::codec::ValueFormat;
use crate::engine::flight::{FlightGuard, Joined, Outcome};
use crate::error::{BoxError, Error, Result};
use crate::key::CacheKey;
use crate::lease::Lease;
use crate::stats::{KeyspaceCounters, bump};
use crate::typed::TypedCache;
use crate::typed::local::LocalCopy;
use crate::typed::policy::{FailurePolicy, LoadPolicy};

/// What a read before loading found.
enum Found {
    Value(Vec<u8>, Ttl),
    Absent,
    Missing,
}

/// A loader as the internals take it: called once, in a task of its own,
/// with its error already boxed.
trait Load<V>: FnOnce() -> Self::Loading + Send + 'static {
    type Loading: Future<Output = std::result::Result<Option<V>, BoxError>> + Send + 'static;
}

impl<V, F, Fut> Load<V> for F
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = std::result::Result<Option<V>, BoxError>> + Send + 'static,
{
    type Loading = Fut;
}

/// How the read before a load went.
#[derive(Clone, Copy, Debug, Default)]
struct JobState {
    degraded: bool,
    heal: bool,
    /// A flight finished while the read before this load was out: read
    /// once more before loading, since it may have stored the value.
    reread: bool,
}

/// Everything a load task needs, free of the key type.
struct LoadJob {
    cache: Cache,
    counters: Arc<KeyspaceCounters>,
    full_key: String,
    absent_key: Option<String>,
    lock_key: Option<String>,
    ttl: Option<Duration>,
    policy: LoadPolicy,
    format: ValueFormat,
    local: LocalCopy,
    /// A Redis call of this operation failed (the read before the load, or
    /// one during it): make no further Redis call before answering, and
    /// store afterwards, best effort. Otherwise store first, so a caller's
    /// next read finds what it was just given.
    degraded: bool,
    /// What the read found did not decode: the load replaces it, or removes
    /// it when the loader finds nothing.
    heal: bool,
}

impl LoadJob {
    fn counters(&self) -> &KeyspaceCounters {
        &self.counters
    }

    /// The value another flight stored while this one's first read was
    /// out, if there is one now (and not the undecodable one to heal).
    async fn stored_meanwhile(&self) -> Option<Vec<u8>> {
        if self.heal {
            return None;
        }
        let backend = self.cache.backend();
        let found = backend.within(backend.get(&self.full_key)).await;
        let bytes = found.ok().flatten()?;
        bump(&self.counters().coalesced_waits);
        Some(bytes)
    }

    /// Stores what was loaded; best effort, since the caller has its value.
    async fn store(&self, loaded: &Option<Vec<u8>>) {
        let backend = self.cache.backend();
        if loaded.is_none() && self.heal {
            // A new value would have replaced the undecodable one; absence must remove it.
            if let Err(error) = backend.delete(&self.full_key).await {
                tracing::debug!(%error, "removing an undecodable value failed");
            }
        }
        let result = match (loaded, &self.absent_key, self.policy.negative_ttl) {
            (Some(bytes), _, _) => {
                let ttl = self.ttl.map(|ttl| self.policy.jittered(ttl));
                let store = backend.set(&self.full_key, bytes.clone(), ttl, SetMode::Always);
                self.local.around(&[&self.full_key], store).await
            }
            (None, Some(absent_key), Some(ttl)) => {
                let ttl = self.policy.jittered(ttl);
                backend
                    .set(absent_key, b"1".to_vec(), Some(ttl), SetMode::Always)
                    .await
            }
            (None, _, _) => return,
        };
        if let Err(error) = result {
            tracing::debug!(%error, "write-back after load failed");
        }
    }

    /// Reads what another process may have stored meanwhile: `Some` with
    /// what it found, `None` when nothing is there yet.
    async fn reread(&self) -> Result<Option<Option<Vec<u8>>>> {
        let backend = self.cache.backend();
        if let Some(bytes) = backend.get(&self.full_key).await? {
            return Ok(Some(Some(bytes)));
        }
        if let Some(absent_key) = &self.absent_key
            && backend.exists(absent_key).await?
        {
            return Ok(Some(None));
        }
        Ok(None)
    }

    /// Loads, or finds what another process loaded. Returns the outcome, the
    /// distributed lock to release once the value is stored, and whether the
    /// outcome is new and needs storing. A failed Redis call on the way marks
    /// the job degraded and skips the rest of the distributed protocol.
    async fn load<V, Fut, E>(&mut self, load: Fut) -> (Outcome, Option<Lease>, bool)
    where
        V: Serialize,
        Fut: Future<Output = std::result::Result<Option<V>, E>>,
        E: Into<BoxError>,
    {
        let mut guard = None;
        if let (false, Some(flight), Some(lock_key)) =
            (self.degraded, self.policy.distributed, &self.lock_key)
        {
            match Lease::acquire(&self.cache, lock_key.clone(), flight.lease).await {
                // Another process may have loaded between our miss and the lock.
                Ok(Some((held, _))) => match self.reread().await {
                    Ok(Some(found)) => {
                        bump(&self.counters().coalesced_waits);
                        return (Ok(found), Some(held), false);
                    }
                    Ok(None) => guard = Some(held),
                    Err(_) => {
                        self.degraded = true;
                        guard = Some(held);
                    }
                },
                Ok(None) => {
                    let deadline = Instant::now() + flight.wait;
                    while Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        match self.reread().await {
                            Ok(Some(found)) => {
                                bump(&self.counters().coalesced_waits);
                                return (Ok(found), None, false);
                            }
                            Ok(None) => {}
                            Err(_) => {
                                self.degraded = true;
                                break;
                            }
                        }
                    }
                }
                // The lock is an optimisation; without it, load as usual.
                Err(_) => self.degraded = true,
            }
        }
        bump(&self.counters().loads);
        #[cfg(feature = "metrics")]
        let started = std::time::Instant::now();
        let loaded = load.await;
        #[cfg(feature = "metrics")]
        self.counters.labels.load_took(started.elapsed());
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(error) => {
                bump(&self.counters().load_errors);
                return (Err(Arc::from(error.into())), guard, false);
            }
        };
        // The same checks as `set`: a value that cannot be stored is an error.
        let max = self.cache.max_value_size();
        let encoded = loaded.map(|value| self.format.encode_for(&self.full_key, &value, max));
        let outcome = encoded
            .transpose()
            .map_err(|error| Arc::new(error) as Arc<dyn std::error::Error + Send + Sync>);
        (outcome, guard, true)
    }
}

impl<K, V> TypedCache<K, V>
where
    K: CacheKey + ?Sized + 'static,
    V: Serialize + DeserializeOwned + Send + 'static,
{
    /// Reads `key`; on a miss runs `loader`, stores what it returns with the
    /// keyspace's TTL and returns it. `None` from the loader means "absent" and
    /// is cached only with a [`negative_ttl`](LoadPolicy::negative_ttl).
    ///
    /// Concurrent misses for one key in this process run the loader once; the
    /// rest wait for it. Different keys never wait on each other. A value that
    /// fails to decode is deleted and reloaded. Redis errors follow the
    /// [`FailurePolicy`] (fail-open by default).
    ///
    /// # Errors
    /// With fail-closed, backend and timeout errors of the read. Always:
    /// [`Error::Load`] when the load failed (shared by everyone who waited for
    /// it), or when the loaded value cannot be stored: its source is then the
    /// [`Error::ValueTooLarge`] or [`Error::Encode`] that `set` would return.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// use std::time::Duration;
    ///
    /// let prices = cache_core::Cache::memory()
    ///     .keyspace("price")
    ///     .ttl(Duration::from_secs(300))
    ///     .typed::<String, f64>()?;
    /// let price = prices.get_or_load("gpt-4", || async { Some(0.03) }).await?;
    /// assert_eq!(price, Some(0.03));
    /// // Now cached: this loader does not run.
    /// let again = prices.get_or_load("gpt-4", || async { unreachable!() }).await?;
    /// assert_eq!(again, Some(0.03));
    /// # Ok(()) }
    /// ```
    pub async fn get_or_load<Q, F, Fut>(&self, key: &Q, loader: F) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Option<V>> + Send + 'static,
    {
        self.try_get_or_load(key, move || async move {
            Ok::<_, std::convert::Infallible>(loader().await)
        })
        .await
    }

    /// [`get_or_load`](Self::get_or_load) with a loader that can fail. Its
    /// error is returned as [`Error::Load`] to the caller and every waiter, and
    /// nothing is cached.
    ///
    /// # Errors
    /// As [`get_or_load`](Self::get_or_load).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let prices = cache_core::Cache::memory().keyspace("price").typed::<String, f64>()?;
    /// let err = prices
    ///     .try_get_or_load("gpt-4", || async { Err::<Option<f64>, _>("database down") })
    ///     .await
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("database down"));
    /// # Ok(()) }
    /// ```
    pub async fn try_get_or_load<Q, F, Fut, E>(&self, key: &Q, loader: F) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<Option<V>, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let span = self.span("get_or_load");
        let loader = move || async move { loader().await.map_err(Into::into) };
        self.get_or_load_inner(key, loader).instrument(span).await
    }

    async fn get_or_load_inner<Q, L: Load<V>>(&self, key: &Q, loader: L) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.layout.key(key);
        let counters = self.counters();
        let (mut read_failed, mut heal) = (false, false);
        let backend = self.cache.backend();
        let epoch = self.cache.flights().epoch();
        match backend.within(self.read_for_load(&full_key)).await {
            Ok(Found::Value(bytes, ttl)) => match self.format.decode::<V>(&bytes) {
                Ok(value) => {
                    bump(&counters.hits);
                    if self.wants_refresh(ttl) {
                        self.refresh(key, &full_key, loader);
                    }
                    return Ok(Some(value));
                }
                Err(source) => {
                    // Old schema, foreign writer or corruption: heal by reloading.
                    bump(&counters.decode_errors);
                    tracing::debug!(error = %source, "undecodable value, reloading");
                    self.local.written(&full_key);
                    heal = true;
                }
            },
            Ok(Found::Absent) => {
                bump(&counters.negative_hits);
                return Ok(None);
            }
            Ok(Found::Missing) => bump(&counters.misses),
            Err(error) if self.load.failure == FailurePolicy::Closed => return Err(error),
            // Fail-open: the error is counted; load as on a miss.
            Err(_) => read_failed = true,
        }
        let outcome = match self.cache.flights().join(&full_key) {
            Joined::Leader(guard, waiting) => {
                let state = JobState {
                    degraded: read_failed,
                    heal,
                    reread: !read_failed && self.cache.flights().retired_since(epoch),
                };
                self.spawn_load(key, loader, guard, state);
                waiting.outcome().await
            }
            Joined::Waiter(waiting) => {
                bump(&counters.coalesced_waits);
                waiting.outcome().await
            }
        };
        match outcome {
            Ok(Some(bytes)) => {
                self.format
                    .decode(&bytes)
                    .map(Some)
                    .map_err(|source| Error::Decode {
                        key: full_key,
                        source,
                    })
            }
            Ok(None) => Ok(None),
            Err(source) => Err(Error::Load {
                key: full_key,
                source,
            }),
        }
    }

    async fn read_for_load(&self, full_key: &str) -> Result<Found> {
        if let Some(bytes) = self.local.get(full_key) {
            bump(&self.counters().local_hits);
            // Early refresh is driven by the backend's TTL, seen on backend reads.
            return Ok(Found::Value(bytes.to_vec(), Ttl::Persistent));
        }
        let backend = self.cache.backend();
        let ticket = self.local.ticket(full_key);
        // The TTL caps a local copy's life, and drives early refresh.
        let found = if self.load.early_refresh.is_some() || self.local.is_on() {
            backend.get_with_ttl(full_key).await?
        } else {
            backend
                .get(full_key)
                .await?
                .map(|bytes| (bytes, Ttl::Persistent))
        };
        if let Some((bytes, ttl)) = found {
            self.local.fetched(full_key, &bytes, ttl, ticket);
            return Ok(Found::Value(bytes, ttl));
        }
        if self.load.negative_ttl.is_some() {
            let absent_key = self.absent.key_of_full(full_key, &self.layout);
            if backend.exists(&absent_key).await? {
                return Ok(Found::Absent);
            }
        }
        Ok(Found::Missing)
    }

    pub(crate) fn wants_refresh(&self, left: Ttl) -> bool {
        match (self.load.early_refresh, self.ttl, left) {
            (Some(fraction), Some(ttl), Ttl::Expires(left)) => left < ttl.mul_f64(fraction),
            _ => false,
        }
    }

    /// Starts a background reload unless one is already running for the key.
    fn refresh<Q, L: Load<V>>(&self, key: &Q, full_key: &str, loader: L)
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        if let Some(guard) = self.cache.flights().lead(full_key) {
            bump(&self.counters().refreshes);
            self.spawn_load(key, loader, guard, JobState::default());
        }
    }

    fn spawn_load<Q, L: Load<V>>(&self, key: &Q, loader: L, guard: FlightGuard, state: JobState)
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = guard.key().to_owned();
        let mut job = LoadJob {
            cache: self.cache.clone(),
            counters: Arc::clone(&self.counters),
            absent_key: self
                .load
                .negative_ttl
                .map(|_| self.absent.key_of_full(&full_key, &self.layout)),
            lock_key: self.load.distributed.map(|_| self.lock.tagged_key(key)),
            full_key,
            ttl: self.ttl,
            policy: self.load,
            format: self.format,
            local: self.local.clone(),
            degraded: state.degraded,
            heal: state.heal,
        };
        let span = self.load_span();
        // A task of its own: a caller that gives up does not strand the waiters.
        tokio::spawn(
            async move {
                let stored = if state.reread {
                    job.stored_meanwhile().await
                } else {
                    None
                };
                let (outcome, lease, fresh) = match stored {
                    Some(found) => (Ok(Some(found)), None, false),
                    None => job.load(loader()).await,
                };
                // Degraded: answer now, and write back afterwards, best effort.
                let guard = if job.degraded {
                    guard.complete(outcome.clone());
                    None
                } else {
                    Some(guard)
                };
                if let (Ok(loaded), true) = (&outcome, fresh) {
                    job.store(loaded).await;
                }
                if let Some(lease) = lease {
                    let _ = lease.release().await;
                }
                // Stored first, so that a caller's next read finds what it was given.
                if let Some(guard) = guard {
                    guard.complete(outcome);
                }
            }
            .instrument(span),
        );
    }
}
