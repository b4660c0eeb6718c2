//! Writes of one key: `set` and its forms, `delete`, `expire`, `take`,
//! `incr`, and `put` for types that carry their key. Each drops the local
//! copy around itself.

use std::borrow::Borrow;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TypedCache;
use crate::KeyedCacheable;
use crate::backend::SetMode;
use crate::error::Result;
use crate::key::CacheKey;

impl<K, V> TypedCache<K, V>
where
    K: CacheKey + ?Sized,
    V: Serialize + DeserializeOwned,
{
    /// Writes `value` at `key` with the default TTL (or none), replacing any
    /// value and expiry there.
    ///
    /// # Errors
    /// [`Error::Encode`](crate::Error::Encode), [`Error::ValueTooLarge`](crate::Error::ValueTooLarge) (nothing is sent), and backend
    /// or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let names = cache_core::Cache::memory().keyspace("name").typed::<u64, String>()?;
    /// names.set(&1, &"ada".to_owned()).await?;
    /// assert_eq!(names.get(&1).await?.as_deref(), Some("ada"));
    /// # Ok(()) }
    /// ```
    pub async fn set<Q>(&self, key: &Q, value: &V) -> Result<()>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        self.set_tagged(key, value, &[]).await
    }

    /// [`set`](Self::set), with the entry tagged `tags` (besides the tags
    /// the value carries of itself and its keyspace's): after
    /// [`Cache::invalidate_tag`](crate::Cache::invalidate_tag) of one of
    /// them, no read returns it. Tags are strings of any content.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) when the keyspace is not
    /// [tagged](crate::KeyspaceBuilder::tagged), and as [`set`](Self::set).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::memory();
    /// let pages = cache.keyspace("page").tagged().typed::<String, String>()?;
    /// pages.set_tagged("/home", &"<h1>Acme</h1>".to_owned(), &["tenant:acme"]).await?;
    /// pages.set_tagged("/about", &"<p>Globex</p>".to_owned(), &["tenant:globex"]).await?;
    /// cache.invalidate_tag("tenant:acme").await?;
    /// assert_eq!(pages.get("/home").await?, None);
    /// assert!(pages.get("/about").await?.is_some());
    /// # Ok(()) }
    /// ```
    pub async fn set_tagged<Q>(&self, key: &Q, value: &V, tags: &[&str]) -> Result<()>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let tags: Vec<String> = tags.iter().map(|tag| (*tag).to_owned()).collect();
        let value = self.encoded(self.space.layout.key(key), value, &tags)?;
        self.space
            .write_one(value, None, SetMode::Always)
            .await
            .map(drop)
    }

    /// Writes `value` at `key` expiring after `ttl`, whatever the default.
    ///
    /// # Errors
    /// [`Error::InvalidTtl`](crate::Error::InvalidTtl) (before anything is sent), and as [`set`](Self::set).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// let codes = cache_core::Cache::memory().keyspace("otp").typed::<String, u32>()?;
    /// codes.set_with_ttl("alice", &123456, Duration::from_secs(60)).await?;
    /// assert!(codes.set_with_ttl("bob", &1, Duration::ZERO).await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn set_with_ttl<Q>(&self, key: &Q, value: &V, ttl: Duration) -> Result<()>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let value = self.encoded(self.space.layout.key(key), value, &[])?;
        self.space
            .write_one(value, Some(ttl), SetMode::Always)
            .await
            .map(drop)
    }

    /// Writes `value` only if `key` holds nothing (`SET NX`), with the default
    /// TTL. Returns whether it was written.
    ///
    /// # Errors
    /// As [`set`](Self::set).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let owners = cache_core::Cache::memory().keyspace("owner").typed::<u64, String>()?;
    /// assert!(owners.set_if_absent(&1, &"a".to_owned()).await?);
    /// assert!(!owners.set_if_absent(&1, &"b".to_owned()).await?);
    /// assert_eq!(owners.get(&1).await?.as_deref(), Some("a"));
    /// # Ok(()) }
    /// ```
    pub async fn set_if_absent<Q>(&self, key: &Q, value: &V) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let value = self.encoded(self.space.layout.key(key), value, &[])?;
        // Either way the local copy may be stale: `write_one` drops it.
        self.space.write_one(value, None, SetMode::IfAbsent).await
    }

    /// Removes `key` (and a cached "absent" answer for it, with negative
    /// caching on); returns whether a value existed.
    ///
    /// # Errors
    /// Backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let names = cache_core::Cache::memory().keyspace("name").typed::<u64, String>()?;
    /// names.set(&1, &"ada".to_owned()).await?;
    /// assert!(names.delete(&1).await?);
    /// assert!(!names.delete(&1).await?);
    /// # Ok(()) }
    /// ```
    pub async fn delete<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let removed = self.space.remove(&[self.space.layout.key(key)]).await?;
        Ok(removed > 0)
    }

    /// Sets `key` to expire after `ttl`; returns whether the key existed.
    /// Under [fail-safe](crate::LoadPolicy::fail_safe), the value expires
    /// after `ttl` and is kept for the window after that, as a write keeps it.
    ///
    /// # Errors
    /// [`Error::InvalidTtl`](crate::Error::InvalidTtl) (before anything is sent), backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// let names = cache_core::Cache::memory().keyspace("name").typed::<u64, String>()?;
    /// assert!(!names.expire(&1, Duration::from_secs(9)).await?);
    /// # Ok(()) }
    /// ```
    pub async fn expire<Q>(&self, key: &Q, ttl: Duration) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        self.space
            .expire_one(&self.space.layout.key(key), ttl)
            .await
    }

    /// Reads and removes the value at `key` in one step (`GETDEL`): of many
    /// concurrent takers, exactly one gets it.
    ///
    /// # Errors
    /// As [`get`](Self::get). A value that does not decode is removed all the same.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let codes = cache_core::Cache::memory().keyspace("otp").typed::<String, u32>()?;
    /// codes.set("alice", &42).await?;
    /// assert_eq!(codes.take("alice").await?, Some(42));
    /// assert_eq!(codes.take("alice").await?, None);
    /// # Ok(()) }
    /// ```
    pub async fn take<Q>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.space.layout.key(key);
        self.space
            .take_one(&full_key, self.decoder(&full_key))
            .await
    }

    /// Adds `delta` to the integer at `key` atomically (a missing key counts as 0)
    /// and returns the new value. A key without an expiry (a new one) gets the
    /// default TTL, so a counter never lives forever; a key with one keeps it. Values are stored as Redis integers, so
    /// `get` reads back what `incr` returned, under every codec.
    ///
    /// # Errors
    /// [`Error::Overflow`](crate::Error::Overflow) when the result would leave `V`'s range (nothing is
    /// changed), [`Error::NotAnInteger`](crate::Error::NotAnInteger) when the key holds something else,
    /// [`Error::Config`](crate::Error::Config) when `V` is not an integer type or the keyspace has
    /// [fail-safe](crate::LoadPolicy::fail_safe) or is
    /// [tagged](crate::KeyspaceBuilder::tagged), and backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let hits = cache_core::Cache::memory().keyspace("hits").typed::<String, u8>()?;
    /// assert_eq!(hits.incr("home", 200).await?, 200);
    /// assert!(hits.incr("home", 100).await.unwrap_err().to_string().contains("overflow"));
    /// assert_eq!(hits.get("home").await?, Some(200));
    /// # Ok(()) }
    /// ```
    pub async fn incr<Q>(&self, key: &Q, delta: i64) -> Result<V>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.space.layout.key(key);
        let integer = (self.format.integer, std::any::type_name::<V>());
        let value = self.space.add(&full_key, delta, integer).await?;
        let decoded = self.decoder(&full_key)(value.to_string().as_bytes())?;
        Ok(decoded)
    }
}

impl<K, V> TypedCache<K, V>
where
    K: CacheKey,
    V: KeyedCacheable<Key = K> + Serialize + DeserializeOwned,
{
    /// Writes `value` under its own key (its `#[cache(key)]` field) with the
    /// default TTL.
    ///
    /// # Errors
    /// As [`set`](Self::set).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// use cache_core::Cacheable;
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Cacheable)]
    /// #[cache(prefix = "user", ttl = 60)]
    /// struct User { #[cache(key)] id: u64, name: String }
    ///
    /// let users = cache_core::Cache::memory().typed::<User>()?;
    /// users.put(&User { id: 7, name: "ada".into() }).await?;
    /// assert!(users.exists(&7).await?);
    /// # Ok(()) }
    /// ```
    pub async fn put(&self, value: &V) -> Result<()> {
        self.set(value.cache_key(), value).await
    }

    /// Writes `value` under its own key, expiring after `ttl`.
    ///
    /// # Errors
    /// As [`set_with_ttl`](Self::set_with_ttl).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// use cache_core::Cacheable;
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Cacheable)]
    /// struct Token { #[cache(key)] jti: String }
    ///
    /// let tokens = cache_core::Cache::memory().typed::<Token>()?;
    /// tokens.put_with_ttl(&Token { jti: "t1".into() }, Duration::from_secs(30)).await?;
    /// assert!(tokens.ttl("t1").await?.remaining().is_some());
    /// # Ok(()) }
    /// ```
    pub async fn put_with_ttl(&self, value: &V, ttl: Duration) -> Result<()> {
        self.set_with_ttl(value.cache_key(), value, ttl).await
    }
}
