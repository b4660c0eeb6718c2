//! Flags with an absolute expiry time, such as a JWT blacklist: a revoked
//! token is remembered exactly as long as it would have been valid.

use std::borrow::Borrow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{block_basics, block_key, on_one_key};
use crate::backend::ops::flag::RaiseUntil;
use crate::engine::KeyspaceSettings;
use crate::engine::Scope;
use crate::error::{Error, Result};
use crate::key::CacheKey;
use crate::ttl::check_ttl;

/// A set of flags per key, each raised until a point in time. Made by
/// [`KeyspaceBuilder::flags`](crate::KeyspaceBuilder::flags).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// use std::time::{Duration, SystemTime};
///
/// let revoked = cache_core::Cache::memory().keyspace("jwt-revoked").flags::<str>()?;
/// let token_expires = SystemTime::now() + Duration::from_secs(900); // the `exp` claim
/// assert!(revoked.raise_until("jti-123", token_expires).await?);
/// assert!(revoked.is_raised("jti-123").await?);
/// assert!(!revoked.is_raised("jti-456").await?);
/// # Ok(()) }
/// ```
pub struct Flags<K: ?Sized> {
    scope: Scope<K>,
}

block_basics!(Flags<K> {  });
block_key!(Flags<K>
    r#"```
# fn main() -> cache_core::Result<()> {
let revoked = cache_core::Cache::memory().keyspace("jwt").flags::<str>()?;
assert_eq!(revoked.key("a"), "jwt:v1:a");
# Ok(()) }
```"#
);

fn unix_millis(time: SystemTime) -> Option<u64> {
    time.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| u64::try_from(d.as_millis()).ok())
}

impl<K: CacheKey + ?Sized> Flags<K> {
    pub(crate) fn new(keyspace: KeyspaceSettings) -> Self {
        Flags {
            scope: Scope::new(&keyspace),
        }
    }

    /// Raises the flag at `key` until `until` (millisecond precision, `PXAT`).
    /// A time that has already passed is a no-op that returns `false`: the
    /// thing it would mark (an expired token, say) needs no flag.
    ///
    /// # Errors
    /// [`Error::InvalidTtl`] for a time beyond [`MAX_TTL`](crate::MAX_TTL) from
    /// now, backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::{Duration, SystemTime};
    /// let revoked = cache_core::Cache::memory().keyspace("jwt").flags::<str>()?;
    /// let past = SystemTime::now() - Duration::from_secs(1);
    /// assert!(!revoked.raise_until("old", past).await?);
    /// assert!(!revoked.is_raised("old").await?);
    /// # Ok(()) }
    /// ```
    pub async fn raise_until<Q>(&self, key: &Q, until: SystemTime) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.scope.key(key);
        let Ok(left) = until.duration_since(SystemTime::now()) else {
            return Ok(false);
        };
        if left < Duration::from_millis(1) {
            return Ok(false);
        }
        check_ttl(left, Some(&full_key))?;
        let at_unix_ms = unix_millis(until).ok_or_else(|| Error::InvalidTtl {
            key: Some(full_key.clone()),
            ttl: left,
            reason: "the expiry time is out of range",
        })?;
        let raise = RaiseUntil {
            key: &full_key,
            at_unix_ms,
            left,
        };
        self.scope.engine.backend().run(&raise).await?;
        Ok(true)
    }

    /// Raises the flag at `key` for `ttl` from now.
    ///
    /// # Errors
    /// [`Error::InvalidTtl`] for zero or a TTL beyond [`MAX_TTL`](crate::MAX_TTL),
    /// backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// let banned = cache_core::Cache::memory().keyspace("banned").flags::<u64>()?;
    /// banned.raise_for(&42, Duration::from_secs(3600)).await?;
    /// assert!(banned.is_raised(&42).await?);
    /// # Ok(()) }
    /// ```
    pub async fn raise_for<Q>(&self, key: &Q, ttl: Duration) -> Result<()>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.scope.key(key);
        check_ttl(ttl, Some(&full_key))?;
        self.scope
            .engine
            .backend()
            .set(
                &full_key,
                b"1".to_vec(),
                Some(ttl),
                crate::backend::SetMode::Always,
            )
            .await?;
        Ok(())
    }

    on_one_key! {
        /// Whether the flag at `key` is raised now: one round trip.
        ///
        /// # Errors
        /// Backend or timeout errors. A check that must fail closed (a revoked-token
        /// check) should treat an error as "raised".
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
        /// let revoked = cache_core::Cache::memory().keyspace("jwt").flags::<str>()?;
        /// assert!(!revoked.is_raised("jti").await?);
        /// # Ok(()) }
        /// ```
        pub async fn is_raised -> bool = exists
    }

    on_one_key! {
        /// Lowers the flag at `key`; returns whether it was raised.
        ///
        /// # Errors
        /// Backend or timeout errors.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
        /// let revoked = cache_core::Cache::memory().keyspace("jwt").flags::<str>()?;
        /// assert!(!revoked.lower("jti").await?);
        /// # Ok(()) }
        /// ```
        pub async fn lower -> bool = delete
    }
}

impl<K: CacheKey + ?Sized> Flags<K> {
    /// Removes every key of this keyspace (SCAN and UNLINK in batches, on
    /// every primary of a cluster; never KEYS or FLUSHDB); returns how many
    /// there were. Other keyspaces stay.
    ///
    /// # Errors
    /// Backend or timeout errors; what was removed before stays removed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// let revoked = cache_core::Cache::memory().keyspace("jwt").flags::<str>()?;
    /// revoked.raise_for("t1", Duration::from_secs(60)).await?;
    /// assert_eq!(revoked.clear().await?, 1);
    /// assert!(!revoked.is_raised("t1").await?);
    /// # Ok(()) }
    /// ```
    pub async fn clear(&self) -> Result<u64> {
        self.scope.clear().await
    }
}
