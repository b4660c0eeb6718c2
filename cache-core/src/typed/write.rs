//! Writes of one key: `set` and its forms, `delete`, `expire`, `take`,
//! `incr`, and `put` for types that carry their key. Each drops the local
//! copy around itself.

use std::borrow::Borrow;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::TypedCache;
use crate::KeyedCacheable;
use crate::backend::ops::stamp::Expire;
use crate::backend::{Incr, SetMode};
use crate::error::{Error, Result};
use crate::key::CacheKey;
use crate::ttl::check_ttl;

impl<K, V> TypedCache<K, V>
where
    K: CacheKey + ?Sized,
    V: Serialize + DeserializeOwned,
{
    /// Writes `value` at `key` with the default TTL (or none), replacing any
    /// value and expiry there.
    ///
    /// # Errors
    /// [`Error::Encode`], [`Error::ValueTooLarge`] (nothing is sent), and backend
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
    /// [`Error::Config`] when the keyspace is not
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
        let full_key = self.space.layout.key(key);
        let tags: Vec<String> = tags.iter().map(|tag| (*tag).to_owned()).collect();
        let write = async {
            let (bytes, ttl) = self.stored_form(&full_key, value, None, &tags).await?;
            self.write(&full_key, bytes, ttl, "set").await
        };
        self.space.backend().within(write).await
    }

    /// Writes `value` at `key` expiring after `ttl`, whatever the default.
    ///
    /// # Errors
    /// [`Error::InvalidTtl`] (before anything is sent), and as [`set`](Self::set).
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
        let full_key = self.space.layout.key(key);
        check_ttl(ttl, Some(&full_key))?;
        let write = async {
            let (bytes, kept) = self.stored_form(&full_key, value, Some(ttl), &[]).await?;
            self.write(&full_key, bytes, kept, "set").await
        };
        self.space.backend().within(write).await
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
        let full_key = self.space.layout.key(key);
        let backend = self.space.backend();
        let write = async {
            let (bytes, ttl) = self.stored_form(&full_key, value, None, &[]).await?;
            // Either way the local copy may be stale: drop it.
            let write = backend.set(&full_key, bytes, ttl, SetMode::IfAbsent);
            self.space.local.around(&[&full_key], write).await
        };
        backend.within(write).await
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
        let full_key = self.space.layout.key(key);
        let backend = self.space.backend();
        let delete = backend.within(async {
            if self.space.load.negative_ttl.is_some() {
                // An invalidation must also drop a cached "absent" answer.
                backend.delete(&self.space.absent.key(key)).await?;
            }
            backend.delete(&full_key).await
        });
        self.space.local.around(&[&full_key], delete).await
    }

    /// Sets `key` to expire after `ttl`; returns whether the key existed.
    /// Under [fail-safe](crate::LoadPolicy::fail_safe), the value expires
    /// after `ttl` and is kept for the window after that, as a write keeps it.
    ///
    /// # Errors
    /// [`Error::InvalidTtl`] (before anything is sent), backend or timeout errors.
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
        let full_key = self.space.layout.key(key);
        check_ttl(ttl, Some(&full_key))?;
        let backend = self.space.backend();
        let Some(window) = self.space.fail_safe() else {
            let expire = backend.expire(&full_key, ttl);
            return self.space.local.around(&[&full_key], expire).await;
        };
        // The value's own expiry moves with Redis', in one step.
        let tail = crate::stored::stamp::restamp(ttl);
        let op = Expire {
            key: &full_key,
            tail,
            ttl,
            window,
        };
        self.space
            .local
            .around(&[&full_key], backend.run(&op))
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
        let take = async {
            let take = self.space.backend().take(&full_key);
            let keys = [full_key.as_str()];
            let bytes = self.space.local.around(&keys, take).await?;
            self.fresh(bytes).await
        };
        let take = self.space.backend().within(take);
        let bytes = take.instrument(self.space.span("take")).await?;
        self.decode_read(&full_key, bytes)
    }

    /// Adds `delta` to the integer at `key` atomically (a missing key counts as 0)
    /// and returns the new value. A key without an expiry (a new one) gets the
    /// default TTL, so a counter never lives forever; a key with one keeps it. Values are stored as Redis integers, so
    /// `get` reads back what `incr` returned, under every codec.
    ///
    /// # Errors
    /// [`Error::Overflow`] when the result would leave `V`'s range (nothing is
    /// changed), [`Error::NotAnInteger`] when the key holds something else,
    /// [`Error::Config`] when `V` is not an integer type or the keyspace has
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
        if self.space.fail_safe().is_some() || self.space.tagged {
            return Err(Error::config(format!(
                "incr on `{full_key}`: a keyspace with fail_safe or tags stores values with a \
                 header, not as Redis integers"
            )));
        }
        let Some(bounds) = self.format.integer else {
            return Err(Error::config(format!(
                "incr on `{full_key}`: the value type {} is not an integer",
                std::any::type_name::<V>()
            )));
        };
        if let Some(ttl) = self.space.ttl {
            check_ttl(ttl, Some(&full_key))?;
        }
        let incr = Incr {
            key: &full_key,
            delta,
            bounds,
            ttl: self.space.ttl,
        };
        let value = self
            .space
            .local
            .around(&[&full_key], self.space.backend().run(&incr))
            .await?;
        let bytes = value.to_string().into_bytes();
        self.decode(&full_key, Some(bytes))?
            .ok_or(Error::NotAnInteger { key: full_key })
    }

    /// One write, with the local copy dropped around it.
    async fn write(
        &self,
        full_key: &str,
        bytes: Vec<u8>,
        ttl: Option<Duration>,
        operation: &'static str,
    ) -> Result<()> {
        let write = self
            .space
            .backend()
            .set(full_key, bytes, ttl, SetMode::Always);
        let keys = [full_key];
        let write = self.space.local.around(&keys, write);
        write.instrument(self.space.span(operation)).await?;
        Ok(())
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
