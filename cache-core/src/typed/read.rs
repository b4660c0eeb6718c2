//! Reads of one key: `get`, `get_shared` (decoded values kept in the local
//! tier), `exists`, `ttl`.

use std::borrow::Borrow;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::TypedCache;
use crate::engine::local::Local;
use crate::engine::reading::Fresh;
use crate::error::{Error, Result};
use crate::key::CacheKey;
use crate::stats::bump;
use crate::ttl::Ttl;

impl<K, V> TypedCache<K, V>
where
    K: CacheKey + ?Sized,
    V: Serialize + DeserializeOwned,
{
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
        let full_key = self.space.layout.key(key);
        let engine = &self.space.engine;
        if !self.space.local.is_on() {
            // The tags' states, when they must be read, get what the GET left.
            let (backend, started) = (self.space.read_backend(), std::time::Instant::now());
            let span = self.space.span("get");
            let bytes = backend.get(&full_key).instrument(span.clone()).await?;
            let fresh = backend.within_since(started, self.fresh(bytes));
            let bytes = fresh.instrument(span).await?;
            return self.decode_read(&full_key, bytes);
        }
        if let Some(bytes) = self.space.local.get(&full_key, engine) {
            return self.decode_local(&full_key, &bytes);
        }
        // With the TTL, so that the local copy never outlives the value.
        let ticket = self.space.local.ticket(&full_key);
        let read = self.read_fresh(&full_key);
        let Some(fresh) = read.instrument(self.space.span("get")).await? else {
            return self.decode_read(&full_key, None);
        };
        let tags = fresh.tags.map(Arc::new);
        let kept = (fresh.payload.as_slice(), tags);
        self.space
            .local
            .fetched_decoded(&full_key, kept, None, fresh.ttl, ticket);
        self.decode_read(&full_key, Some(fresh.payload))
    }

    /// The value at `full_key` with its TTL, if it may be served.
    async fn read_fresh(&self, full_key: &str) -> Result<Option<Fresh>> {
        let read = async {
            let read = self.space.read_backend().get_with_ttl(full_key).await?;
            self.space.fresh(read).await
        };
        self.space.backend().within(read).await
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
        if !self.space.local.is_on() {
            return Ok(self.get(key).await?.map(Arc::new));
        }
        let full_key = self.space.layout.key(key);
        match self
            .space
            .local
            .get_shared::<V>(&full_key, &self.space.engine)
        {
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
        let ticket = self.space.local.ticket(&full_key);
        let read = self.read_fresh(&full_key);
        let Some(fresh) = read.instrument(self.space.span("get")).await? else {
            return Ok(self.decode_read(&full_key, None)?.map(Arc::new));
        };
        let Fresh {
            payload: bytes,
            ttl,
            tags,
        } = fresh;
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
        self.space.local.fetched_decoded(
            &full_key,
            (&bytes, tags.map(Arc::new)),
            Some(kept),
            ttl,
            ticket,
        );
        Ok(Some(value))
    }

    /// Whether `key` holds a live value (under
    /// [fail-safe](crate::LoadPolicy::fail_safe), one before its expiry; in
    /// a [tagged](crate::KeyspaceBuilder::tagged) keyspace, one none of
    /// whose tags was invalidated since it was written).
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
        if self.space.fail_safe().is_none() && !self.space.tagged {
            let full_key = self.space.layout.key(key);
            return self.space.read_backend().exists(&full_key).await;
        }
        Ok(self.ttl(key).await? != Ttl::Missing)
    }

    /// The remaining time to live of `key`. Under
    /// [fail-safe](crate::LoadPolicy::fail_safe), the time left before the
    /// value's expiry (Redis keeps it for the window longer); `Missing` after it.
    /// In a [tagged](crate::KeyspaceBuilder::tagged) keyspace, `Missing` for
    /// an entry one of whose tags was invalidated since it was written.
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
        if self.space.fail_safe().is_none() && !self.space.tagged {
            let full_key = self.space.layout.key(key);
            return self.space.read_backend().ttl(&full_key).await;
        }
        let full_key = self.space.layout.key(key);
        let read = self.read_fresh(&full_key);
        let fresh = read.instrument(self.space.span("ttl")).await?;
        Ok(fresh.map_or(Ttl::Missing, |fresh| fresh.ttl))
    }
}
