//! Cache-aside on a typed view: `get_or_load` (a batch of one key) and
//! `get_or_load_many`, both run by the engine's one protocol
//! (`engine::aside`). This module adapts the caller's loader and keys to it.

use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TypedCache;
use crate::error::{BoxError, Result};
use crate::freshness::Loaded;
use crate::key::CacheKey;

impl<K, V> TypedCache<K, V>
where
    K: CacheKey + ?Sized + 'static,
    V: Serialize + DeserializeOwned + Send + 'static,
{
    /// Reads `key`; on a miss runs `loader`, stores what it returns with the
    /// keyspace's TTL and returns it. `None` from the loader means "absent" and
    /// is cached only with a [`negative_ttl`](crate::LoadPolicy::negative_ttl).
    ///
    /// Concurrent misses for one key in this process run the loader once; the
    /// rest wait for it. Different keys never wait on each other. A value that
    /// fails to decode is deleted and reloaded. Redis errors follow the
    /// [`FailurePolicy`](crate::FailurePolicy) (fail-open by default).
    ///
    /// A loaded value that `set` would refuse (over `max_value_size`, or
    /// refused by the codec) is returned and not stored under fail-open,
    /// counted in [`CacheStats::unstored_values`](crate::CacheStats::unstored_values)
    /// and logged at warn. Bytes over the size are shared with the callers
    /// waiting for the load; a value the codec refuses exists only once and
    /// goes to the call that loaded it (a caller of another call that waited
    /// for it gets the error, and in `get_or_load_many` a key listed twice
    /// gets it at its last place).
    ///
    /// # Errors
    /// With fail-closed, backend and timeout errors of the read. Always:
    /// [`Error::Load`](crate::Error::Load) when the load failed (shared by
    /// everyone who waited for it) and no expired value answers instead (see
    /// [fail-safe](crate::LoadPolicy::fail_safe)). With fail-closed, also when
    /// the loaded value cannot be stored: its source is then the
    /// [`Error::ValueTooLarge`](crate::Error::ValueTooLarge) or
    /// [`Error::Encode`](crate::Error::Encode) that `set` would return.
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
        Ok(self.get_or_load_detailed(key, loader).await?.value)
    }

    /// [`get_or_load`](Self::get_or_load) with a loader that can fail. Its
    /// error is returned as [`Error::Load`](crate::Error::Load) to the caller
    /// and every waiter, and nothing is cached; under
    /// [fail-safe](crate::LoadPolicy::fail_safe), the expired value answers
    /// instead when there is one.
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
        let loaded = self.try_get_or_load_detailed(key, loader).await?;
        Ok(loaded.value)
    }

    /// [`get_or_load`](Self::get_or_load), telling whether the answer is
    /// fresh or, under [fail-safe](crate::LoadPolicy::fail_safe), an expired
    /// value and why it was served.
    ///
    /// # Errors
    /// As [`get_or_load`](Self::get_or_load).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// use cache_core::Freshness;
    ///
    /// let prices = cache_core::Cache::memory().keyspace("price").typed::<String, f64>()?;
    /// let loaded = prices.get_or_load_detailed("gpt-4", || async { Some(0.03) }).await?;
    /// assert_eq!((loaded.value, loaded.freshness), (Some(0.03), Freshness::Fresh));
    /// # Ok(()) }
    /// ```
    pub async fn get_or_load_detailed<Q, F, Fut>(&self, key: &Q, loader: F) -> Result<Loaded<V>>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Option<V>> + Send + 'static,
    {
        self.try_get_or_load_detailed(key, move || async move {
            Ok::<_, std::convert::Infallible>(loader().await)
        })
        .await
    }

    /// [`try_get_or_load`](Self::try_get_or_load), telling whether the
    /// answer is fresh: under [fail-safe](crate::LoadPolicy::fail_safe), a
    /// loader error after the expiry answers with the expired value, marked
    /// [`StaleReason::LoaderError`](crate::StaleReason::LoaderError).
    ///
    /// # Errors
    /// As [`get_or_load`](Self::get_or_load).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let prices = cache_core::Cache::memory().keyspace("price").typed::<String, f64>()?;
    /// let loaded = prices.try_get_or_load_detailed("gpt-4", || async { Ok::<_, std::io::Error>(None) });
    /// assert!(!loaded.await?.freshness.is_stale());
    /// # Ok(()) }
    /// ```
    pub async fn try_get_or_load_detailed<Q, F, Fut, E>(
        &self,
        key: &Q,
        loader: F,
    ) -> Result<Loaded<V>>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<Option<V>, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let loader = move || async move {
            let found = loader().await?;
            Ok::<_, E>(found.map(|value| (value, Vec::new())))
        };
        self.space
            .load_one(
                (self.format, self.tags_of),
                self.space.layout.key(key),
                loader,
            )
            .await
    }

    /// [`try_get_or_load`](Self::try_get_or_load) with a loader that
    /// returns, with each value, the tags to store it under (besides the
    /// tags it carries of itself and its keyspace's): for tags only the
    /// source knows, such as the tenant a row belongs to.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) when the keyspace is not
    /// [tagged](crate::KeyspaceBuilder::tagged); otherwise as
    /// [`try_get_or_load`](Self::try_get_or_load).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::memory();
    /// let orders = cache.keyspace("order").tagged().typed::<u64, String>()?;
    /// let load = || async {
    ///     // SELECT tenant, body FROM orders WHERE id = 7
    ///     Ok::<_, std::io::Error>(Some(("pending".to_owned(), vec!["tenant:acme".to_owned()])))
    /// };
    /// assert_eq!(orders.get_or_load_tagged(&7, load).await?.as_deref(), Some("pending"));
    /// cache.invalidate_tag("tenant:acme").await?;
    /// assert_eq!(orders.get(&7).await?, None);
    /// # Ok(()) }
    /// ```
    pub async fn get_or_load_tagged<Q, F, Fut, E>(&self, key: &Q, loader: F) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<Option<(V, Vec<String>)>, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        self.space.check_tagged()?;
        Ok(self
            .space
            .load_one(
                (self.format, self.tags_of),
                self.space.layout.key(key),
                loader,
            )
            .await?
            .value)
    }
}

impl<K, V> TypedCache<K, V>
where
    K: CacheKey + Clone + Eq + Hash + Send + Sync + 'static,
    V: Serialize + DeserializeOwned + Send + 'static,
{
    /// Reads many keys in one round trip; calls `loader` once with the keys
    /// that are missing (and that no concurrent load, of this or a
    /// `get_or_load` call, is already loading: those are awaited), stores what
    /// it returns in one round trip with the keyspace's TTL and jitter, and
    /// returns every value in the order of `keys`.
    ///
    /// - A key listed twice is read and loaded once, and answered at both places.
    /// - `loader` gets each missing key once, and returns what it found as
    ///   `(key, value)` pairs (a `HashMap` will do); keys it does not return are
    ///   absent (cached as such with a
    ///   [`negative_ttl`](crate::LoadPolicy::negative_ttl)); pairs for keys it
    ///   was not asked for are ignored.
    /// - The local tier is consulted first and filled; values that no longer
    ///   decode are reloaded and replaced (removed when the loader finds
    ///   nothing); every key counts as a hit, miss, negative hit or coalesced
    ///   wait, and each loader call as one load.
    /// - Redis errors follow the [`FailurePolicy`](crate::FailurePolicy): fail-open (the default)
    ///   treats every key as missing, answers from the loader and writes back
    ///   afterwards, best effort; fail-closed returns the error.
    /// - With [`early_refresh`](crate::LoadPolicy::early_refresh), keys found
    ///   with little of their TTL left are served, and reloaded in the
    ///   background in the same single loader call as the missing keys (the
    ///   read is then one pipeline of GET and PTTL per slot).
    /// - Under [fail-safe](crate::LoadPolicy::fail_safe), each key whose load
    ///   fails or passes the soft timeout is answered with its expired value,
    ///   if it has one (the others get the error).
    /// - No loader call when every key is found fresh, and no call at all for
    ///   an empty `keys`. On a cluster the read and the write-back are one
    ///   command per hash slot.
    /// - Single flight is per process, and with the `distributed` policy
    ///   across processes too: each missing key's lease is taken as
    ///   `get_or_load` takes it; keys another process is loading are awaited
    ///   (up to the policy's `wait`) instead of loaded, while this call's own
    ///   keys are loaded at once. A key still not stored after `wait` is
    ///   loaded by this call if it had nothing else to load; otherwise (the
    ///   one loader call has run) the call fails with [`Error::Load`](crate::Error::Load) naming
    ///   it, and the rest is stored all the same.
    ///
    /// # Errors
    /// With fail-closed, backend and timeout errors of the read. Always:
    /// [`Error::Load`](crate::Error::Load) naming the first key whose load failed (the loader's
    /// error, shared with every caller waiting for those keys and never
    /// cached) and has no expired value to answer with (fail-safe), whose
    /// loaded value cannot be stored (fail-closed only; see
    /// [`get_or_load`](Self::get_or_load)), or that another process kept
    /// loading past the distributed policy's `wait`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// use std::collections::HashMap;
    /// let prices = cache_core::Cache::memory().keyspace("price").typed::<String, f64>()?;
    /// prices.set("gpt-4", &0.03).await?;
    /// let models = ["gpt-4".to_owned(), "gpt-4o".to_owned(), "nope".to_owned()];
    /// let got = prices
    ///     .get_or_load_many(&models, |missing| async move {
    ///         assert_eq!(missing, ["gpt-4o".to_owned(), "nope".to_owned()]);
    ///         // SELECT model, price FROM prices WHERE model = ANY($1)
    ///         HashMap::from([("gpt-4o".to_owned(), 0.005)])
    ///     })
    ///     .await?;
    /// assert_eq!(got, [Some(0.03), Some(0.005), None]);
    /// # Ok(()) }
    /// ```
    pub async fn get_or_load_many<F, Fut, I>(&self, keys: &[K], loader: F) -> Result<Vec<Option<V>>>
    where
        F: FnOnce(Vec<K>) -> Fut + Send + 'static,
        Fut: Future<Output = I> + Send + 'static,
        I: IntoIterator<Item = (K, V)> + Send + 'static,
    {
        let loader =
            move |keys| async move { Ok::<_, std::convert::Infallible>(loader(keys).await) };
        self.try_get_or_load_many(keys, loader).await
    }

    /// [`get_or_load_many`](Self::get_or_load_many) with a loader that can
    /// fail: its error is returned as [`Error::Load`](crate::Error::Load) to this caller and to
    /// every caller waiting for one of its keys, and nothing is cached.
    ///
    /// # Errors
    /// As [`get_or_load_many`](Self::get_or_load_many).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let prices = cache_core::Cache::memory().keyspace("price").typed::<String, f64>()?;
    /// let err = prices
    ///     .try_get_or_load_many(&["gpt-4".to_owned()], |_| async {
    ///         Err::<Vec<(String, f64)>, _>("database down")
    ///     })
    ///     .await
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("database down"));
    /// # Ok(()) }
    /// ```
    pub async fn try_get_or_load_many<F, Fut, I, E>(
        &self,
        keys: &[K],
        loader: F,
    ) -> Result<Vec<Option<V>>>
    where
        F: FnOnce(Vec<K>) -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<I, E>> + Send + 'static,
        I: IntoIterator<Item = (K, V)> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let full_key = |key: &K| self.space.layout.key(key);
        let types = (self.format, self.tags_of);
        self.space.load_many(types, (keys, full_key), loader).await
    }
}
