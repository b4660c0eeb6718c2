//! The escape hatch: full keys read and written as they are, with no codec,
//! namespace or escaping, on every backend (the memory one included), for
//! migrations, tests and keys that other clients share.

use std::future::Future;
use std::time::Duration;

use super::Cache;
use crate::backend::{Incr, SetMode};
use crate::codec::Bounds;
use crate::error::Result;
use crate::ttl::{Ttl, check_ttl};

impl Cache {
    /// Runs `write` on `full_key` with this handle's local copies of it
    /// dropped before (no read starts from one) and after (none read during
    /// the write stays).
    async fn around<T>(&self, full_key: &str, write: impl Future<Output = T>) -> T {
        self.engine.drop_local_copies(full_key);
        let written = write.await;
        self.engine.drop_local_copies(full_key);
        written
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
            check_ttl(ttl, Some(full_key))?;
        }
        crate::codec::check_size(full_key, bytes.len(), self.engine.max_value_size())?;
        let write = (self.engine.backend()).set(full_key, bytes.to_vec(), ttl, SetMode::Always);
        self.around(full_key, write).await.map(drop)
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
        self.engine.backend().get(full_key).await
    }

    /// Removes the full key `full_key`, whatever it holds; returns whether it
    /// existed. Local copies of it on this handle are dropped.
    ///
    /// # Errors
    /// Backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::memory();
    /// cache.raw_set("legacy:user:7", b"ada", None).await?;
    /// assert!(cache.raw_delete("legacy:user:7").await?);
    /// assert!(!cache.raw_delete("legacy:user:7").await?);
    /// # Ok(()) }
    /// ```
    pub async fn raw_delete(&self, full_key: &str) -> Result<bool> {
        let delete = self.engine.backend().delete(full_key);
        self.around(full_key, delete).await
    }

    /// Adds `delta` to the integer at the full key `full_key` (`INCRBY`: a
    /// missing key counts from 0 and gets no expiry, one with an expiry keeps
    /// it); returns the new value. The stored form is Redis' decimal text, so
    /// [`raw_get`](Self::raw_get) and other clients read it as such.
    ///
    /// # Errors
    /// [`Error::NotAnInteger`](crate::Error::NotAnInteger) when the key holds
    /// something else, [`Error::Overflow`](crate::Error::Overflow) past the
    /// `i64` range (nothing is changed), backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::memory();
    /// assert_eq!(cache.raw_incr("api:calls", 5).await?, 5);
    /// assert_eq!(cache.raw_incr("api:calls", -2).await?, 3);
    /// assert_eq!(cache.raw_get("api:calls").await?.as_deref(), Some(&b"3"[..]));
    /// # Ok(()) }
    /// ```
    pub async fn raw_incr(&self, full_key: &str, delta: i64) -> Result<i64> {
        let incr = Incr {
            key: full_key,
            delta,
            bounds: Bounds {
                min: None,
                max: None,
            },
            ttl: None,
        };
        let backend = self.engine.backend();
        self.around(full_key, backend.run(&incr)).await
    }

    /// Sets the full key `full_key` to expire after `ttl`; returns whether it
    /// existed. Local copies of it on this handle are dropped.
    ///
    /// # Errors
    /// [`Error::InvalidTtl`](crate::Error::InvalidTtl) (nothing is sent),
    /// backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// use std::time::Duration;
    /// let cache = cache_core::Cache::memory();
    /// cache.raw_set("legacy:user:7", b"ada", None).await?;
    /// assert!(cache.raw_expire("legacy:user:7", Duration::from_secs(60)).await?);
    /// assert!(matches!(cache.raw_ttl("legacy:user:7").await?, cache_core::Ttl::Expires(_)));
    /// assert!(!cache.raw_expire("nothing", Duration::from_secs(60)).await?);
    /// # Ok(()) }
    /// ```
    pub async fn raw_expire(&self, full_key: &str, ttl: Duration) -> Result<bool> {
        check_ttl(ttl, Some(full_key))?;
        let expire = self.engine.backend().expire(full_key, ttl);
        self.around(full_key, expire).await
    }

    /// How long the store keeps the full key `full_key` (its `PTTL`), whatever
    /// it holds; see [`raw_set`](Self::raw_set). Under
    /// [fail-safe](crate::LoadPolicy::fail_safe) this is the value's TTL plus
    /// the window, where a view's `ttl` gives the TTL alone.
    ///
    /// # Errors
    /// Backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// use cache_core::Ttl;
    /// let cache = cache_core::Cache::memory();
    /// cache.raw_set("legacy:user:7", b"ada", None).await?;
    /// assert_eq!(cache.raw_ttl("legacy:user:7").await?, Ttl::Persistent);
    /// # Ok(()) }
    /// ```
    pub async fn raw_ttl(&self, full_key: &str) -> Result<Ttl> {
        self.engine.backend().ttl(full_key).await
    }
}
