//! Rate limits per key (API calls per user): a fixed window, or an exact
//! sliding window in which no span of `window` ever passes more than `limit`.

use std::borrow::Borrow;
use std::time::Duration;

use super::{block_basics, block_key};
use crate::backend::ops::rate::Hit;
use crate::engine::KeyspaceSettings;
use crate::engine::Scope;
use crate::error::{Error, Result};
use crate::key::CacheKey;
use crate::ttl::check_ttl;

/// The rule a [`RateLimiter`] enforces.
///
/// ```
/// use cache_core::RateLimit;
/// use std::time::Duration;
///
/// let per_minute = RateLimit::fixed_window(100, Duration::from_secs(60));
/// let strict = RateLimit::sliding_window(100, Duration::from_secs(60));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    limit: u64,
    window: Duration,
    sliding: bool,
}

impl RateLimit {
    /// At most `limit` hits per window; the window starts with the first hit and
    /// the count resets when it ends. Cheap (one counter), but a burst at the end
    /// of one window and the start of the next can pass up to twice the limit.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let rule = cache_core::RateLimit::fixed_window(100, Duration::from_secs(60));
    /// # let _ = rule;
    /// ```
    pub fn fixed_window(limit: u64, window: Duration) -> Self {
        RateLimit {
            limit,
            window,
            sliding: false,
        }
    }

    /// At most `limit` hits in any span of `window`, exactly: each allowed hit
    /// is logged (so memory per key grows with `limit`).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let rule = cache_core::RateLimit::sliding_window(100, Duration::from_secs(60));
    /// # let _ = rule;
    /// ```
    pub fn sliding_window(limit: u64, window: Duration) -> Self {
        RateLimit {
            limit,
            window,
            sliding: true,
        }
    }
}

/// The answer to one hit.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// # use std::time::Duration;
/// use cache_core::RateLimit;
/// let limiter = cache_core::Cache::memory()
///     .keyspace("api")
///     .rate_limiter::<u64>(RateLimit::fixed_window(10, Duration::from_secs(60)))?;
/// let decision = limiter.hit(&42).await?;
/// // e.g. X-RateLimit-Remaining and Retry-After headers
/// assert_eq!((decision.allowed, decision.remaining), (true, 9));
/// assert!(decision.reset_after <= Duration::from_secs(60));
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the hit may go ahead.
    pub allowed: bool,
    /// Hits counted in the current window, this one included (a fixed window
    /// also counts refused hits; a sliding window logs only allowed ones).
    pub count: u64,
    /// Hits still allowed in the current window.
    pub remaining: u64,
    /// When the window resets (fixed) or the oldest logged hit leaves it (sliding).
    pub reset_after: Duration,
}

/// A rate limit per key. Made by
/// [`KeyspaceBuilder::rate_limiter`](crate::KeyspaceBuilder::rate_limiter).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// use cache_core::RateLimit;
/// use std::time::Duration;
///
/// let calls = cache_core::Cache::memory()
///     .keyspace("api-calls")
///     .rate_limiter::<u64>(RateLimit::fixed_window(2, Duration::from_secs(60)))?;
/// assert!(calls.hit(&42).await?.allowed);
/// assert!(calls.hit(&42).await?.allowed);
/// let third = calls.hit(&42).await?;
/// assert!(!third.allowed);
/// assert_eq!(third.remaining, 0);
/// # Ok(()) }
/// ```
pub struct RateLimiter<K: ?Sized> {
    scope: Scope<K>,
    rule: RateLimit,
}

block_basics!(RateLimiter<K> { rule });
block_key!(RateLimiter<K>
    r#"```
# fn main() -> cache_core::Result<()> {
# use std::time::Duration;
use cache_core::RateLimit;
let calls = cache_core::Cache::memory()
    .keyspace("calls")
    .rate_limiter::<u64>(RateLimit::fixed_window(5, Duration::from_secs(1)))?;
assert_eq!(calls.key(&9), "calls:v1:9");
# Ok(()) }
```"#
);

impl<K: CacheKey + ?Sized> RateLimiter<K> {
    pub(crate) fn new(keyspace: KeyspaceSettings, rule: RateLimit) -> Result<Self> {
        if rule.limit == 0 {
            return Err(Error::config("rate limit: the limit must be at least 1"));
        }
        check_ttl(rule.window, None)?;
        Ok(RateLimiter {
            scope: Scope::new(&keyspace),
            rule,
        })
    }

    /// Counts one hit for `key` and says whether it is allowed, in one atomic step.
    ///
    /// # Errors
    /// [`Error::WrongType`] when the key holds something else, backend or
    /// timeout errors. A limiter that must fail closed should refuse on error.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// use cache_core::RateLimit;
    /// let logins = cache_core::Cache::memory()
    ///     .keyspace("logins")
    ///     .rate_limiter::<str>(RateLimit::sliding_window(1, Duration::from_secs(10)))?;
    /// assert!(logins.hit("alice").await?.allowed);
    /// let refused = logins.hit("alice").await?;
    /// assert!(!refused.allowed);
    /// assert!(refused.reset_after <= Duration::from_secs(10));
    /// # Ok(()) }
    /// ```
    pub async fn hit<Q>(&self, key: &Q) -> Result<Decision>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.scope.key(key);
        let RateLimit {
            limit,
            window,
            sliding,
        } = self.rule;
        let hit = Hit {
            key: &full_key,
            limit,
            window,
            sliding,
        };
        let (allowed, count, reset_after) = self.scope.engine.backend().run(&hit).await?;
        Ok(Decision {
            allowed,
            count,
            remaining: limit.saturating_sub(count),
            reset_after,
        })
    }

    /// Forgets `key`'s hits, as if its window had just ended.
    ///
    /// # Errors
    /// Backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// use cache_core::RateLimit;
    /// let calls = cache_core::Cache::memory()
    ///     .keyspace("calls")
    ///     .rate_limiter::<u64>(RateLimit::fixed_window(1, Duration::from_secs(60)))?;
    /// calls.hit(&1).await?;
    /// calls.reset(&1).await?;
    /// assert!(calls.hit(&1).await?.allowed);
    /// # Ok(()) }
    /// ```
    pub async fn reset<Q>(&self, key: &Q) -> Result<()>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        self.scope.delete(key).await?;
        Ok(())
    }
}

impl<K: CacheKey + ?Sized> RateLimiter<K> {
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
    /// use cache_core::RateLimit;
    /// let calls = cache_core::Cache::memory()
    ///     .keyspace("calls")
    ///     .rate_limiter::<u64>(RateLimit::fixed_window(1, Duration::from_secs(60)))?;
    /// calls.hit(&1).await?;
    /// assert_eq!(calls.clear().await?, 1);
    /// assert!(calls.hit(&1).await?.allowed);
    /// # Ok(()) }
    /// ```
    pub async fn clear(&self) -> Result<u64> {
        self.scope.clear().await
    }
}
