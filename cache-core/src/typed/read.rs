//! Reads of one key: `get`, `get_shared` (decoded values kept in the local
//! tier), `exists`, `ttl`.

use std::borrow::Borrow;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TypedCache;
use crate::error::Result;
use crate::key::CacheKey;
use crate::ttl::Ttl;

impl<K, V> TypedCache<K, V>
where
    K: CacheKey + ?Sized,
    V: Serialize + DeserializeOwned,
{
    /// Reads the value at `key`; `None` when it is missing or expired.
    ///
    /// # Errors
    /// [`Error::Decode`](crate::Error::Decode) (naming the key) when the stored bytes are not a `V`,
    /// [`Error::WrongType`](crate::Error::WrongType) when the key holds another Redis type, and backend
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
        self.space
            .read_one(&full_key, self.decoder(&full_key))
            .await
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
        let full_key = self.space.layout.key(key);
        self.space
            .read_shared(&full_key, self.decoder(&full_key))
            .await
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
        self.space.holds(&self.space.layout.key(key)).await
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
        self.space.ttl_of(&self.space.layout.key(key)).await
    }
}
