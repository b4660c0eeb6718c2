//! Many keys in one round trip (one per hash slot on a cluster):
//! `get_many`, `set_many`, `delete_many`, and `clear` of the whole keyspace.

use std::borrow::Borrow;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TypedCache;
use crate::error::Result;
use crate::key::CacheKey;

impl<K, V> TypedCache<K, V>
where
    K: CacheKey + ?Sized,
    V: Serialize + DeserializeOwned,
{
    /// Reads many keys in one round trip (`MGET`); the results are in the order
    /// of `keys`, `None` where nothing is stored. On a cluster: one MGET per
    /// hash slot, concurrently.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for an empty slice, [`Error::Decode`](crate::Error::Decode) naming the first
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
        let found = self.space.read_many(&full_keys).await?;
        let decoded = full_keys.iter().zip(found);
        decoded
            .map(|(full_key, bytes)| {
                bytes
                    .map(|bytes| self.decoder(full_key)(&bytes))
                    .transpose()
            })
            .collect()
    }

    /// Writes many entries in one atomic round trip, each with the default TTL.
    /// On a cluster: one MULTI per hash slot, concurrently; all-or-nothing
    /// within a slot, not across slots.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for an empty slice; encode, size and TTL errors before
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
        self.space.not_empty(entries.len(), "set_many", "entry")?;
        let encoded = (entries.iter())
            .map(|(key, value)| self.encoded(self.space.layout.key(*key), value, &[]))
            .collect::<Result<Vec<_>>>()?;
        self.space.write_many(encoded).await
    }

    /// Removes many keys in one command (and their cached "absent" answers,
    /// with negative caching on); returns how many values existed. On a
    /// cluster: one DEL per hash slot.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for an empty slice, backend or timeout errors.
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
        self.space
            .remove(&self.full_keys(keys, "delete_many")?)
            .await
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
        self.space.clear_all().await
    }

    /// Invalidates every entry of this keyspace (namespace, prefix and
    /// version) at once, on every handle and process, with one small write:
    /// the keyspace's tag, which every entry of a
    /// [tagged](crate::KeyspaceBuilder::tagged) keyspace carries, changes,
    /// so that reads treat every entry written before as missing (as
    /// [`Cache::invalidate_tag`](crate::Cache::invalidate_tag) does for a
    /// tag). For "the data changed"; [`clear`](Self::clear) is for
    /// reclaiming the memory.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) when the keyspace is not
    /// tagged; backend and timeout errors (then it may be invalidated or not).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::memory();
    /// let plans = cache.keyspace("plan").tagged().typed::<u64, String>()?;
    /// plans.set(&1, &"free".to_owned()).await?;
    /// plans.invalidate_all().await?;
    /// assert_eq!(plans.get(&1).await?, None);
    /// let untagged = cache.keyspace("user").typed::<u64, String>()?;
    /// assert!(untagged.invalidate_all().await.unwrap_err().is_config());
    /// # Ok(()) }
    /// ```
    pub async fn invalidate_all(&self) -> Result<()> {
        self.space.invalidate_all().await
    }
}
