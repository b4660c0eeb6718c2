//! Rate limits per key (API calls per user): a fixed window, or an exact
//! sliding window in which no span of `window` ever passes more than `limit`.

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use crate::Cache;
use crate::backend::memory::{Entry, Value, deadline, remaining};
use crate::backend::{Backend, ttl_millis};
use crate::error::{Error, Result};
use crate::key::{CacheKey, KeySpace};
use crate::keyspace::{Keyspace, check_ttl};

/// KEYS: counter. ARGV: window ms. The count and its expiry are set together,
/// so a counter never lives forever. Returns {count, ms until reset}.
static FIXED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
",
    )
});

/// KEYS: log (a sorted set of hit times in microseconds, server clock).
/// ARGV: limit, window ms. Returns {allowed, count, ms until a slot frees}.
static SLIDING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2]) * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, t[1] .. '.' .. t[2] .. '-' .. count)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  count = count + 1
  allowed = 1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset = 0
if oldest[2] then reset = math.ceil((tonumber(oldest[2]) + window - now) / 1000) end
return {allowed, count, reset}
",
    )
});

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
    cache: Cache,
    space: KeySpace,
    rule: RateLimit,
    types: PhantomData<fn(&K)>,
}

impl<K: ?Sized> Clone for RateLimiter<K> {
    fn clone(&self) -> Self {
        RateLimiter {
            cache: self.cache.clone(),
            space: self.space.clone(),
            rule: self.rule,
            types: PhantomData,
        }
    }
}

impl<K: ?Sized> fmt::Debug for RateLimiter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("keys", &self.space)
            .field("rule", &self.rule)
            .finish()
    }
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0).unsigned_abs())
}

impl<K: CacheKey + ?Sized> RateLimiter<K> {
    pub(crate) fn new(keyspace: Keyspace, rule: RateLimit) -> Result<Self> {
        if rule.limit == 0 {
            return Err(Error::config("rate limit: the limit must be at least 1"));
        }
        check_ttl(rule.window, None)?;
        Ok(RateLimiter {
            cache: keyspace.cache,
            space: keyspace.space,
            rule,
            types: PhantomData,
        })
    }

    /// The full Redis key of `key`'s counter or log.
    ///
    /// ```
    /// # fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// use cache_core::RateLimit;
    /// let calls = cache_core::Cache::memory()
    ///     .keyspace("calls")
    ///     .rate_limiter::<u64>(RateLimit::fixed_window(5, Duration::from_secs(1)))?;
    /// assert_eq!(calls.key(&9), "calls:v1:9");
    /// # Ok(()) }
    /// ```
    pub fn key<Q>(&self, key: &Q) -> String
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        self.space.key(key)
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
        let full_key = self.space.key(key);
        let RateLimit {
            limit,
            window,
            sliding,
        } = self.rule;
        let window_ms = ttl_millis(window).to_string();
        let (allowed, count, reset_after) = match (self.cache.backend(), sliding) {
            (Backend::Redis(redis), false) => {
                let (count, ttl): (u64, i64) = redis
                    .script("rate limit", &FIXED, &[&full_key], &[window_ms.as_bytes()])
                    .await?;
                (count <= limit, count, millis(ttl))
            }
            (Backend::Redis(redis), true) => {
                let limit_arg = limit.to_string();
                let (allowed, count, reset): (u8, u64, i64) = redis
                    .script(
                        "rate limit",
                        &SLIDING,
                        &[&full_key],
                        &[limit_arg.as_bytes(), window_ms.as_bytes()],
                    )
                    .await?;
                (allowed == 1, count, millis(reset))
            }
            (Backend::Memory(memory), false) => memory.atomically(|store| {
                let now = store.now();
                let (count, expires_at) = match store.integer(&full_key, "INCR")? {
                    Some(count) => {
                        let count = u64::try_from(count).unwrap_or_default();
                        let at = store.entry(&full_key).and_then(|e| e.expires_at);
                        (count + 1, at.unwrap_or_else(|| deadline(now, window)))
                    }
                    None => (1, deadline(now, window)),
                };
                let value = Value::Bytes(count.to_string().into_bytes());
                store.insert(&full_key, value, Some(expires_at));
                Ok::<_, Error>((count <= limit, count, remaining(now, expires_at)))
            })?,
            (Backend::Memory(memory), true) => memory.atomically(|store| {
                let now = store.now();
                let mut log = match store.entry(&full_key) {
                    None => VecDeque::new(),
                    Some(Entry {
                        value: Value::Log(log),
                        ..
                    }) => std::mem::take(log),
                    Some(_) => {
                        return Err(Error::WrongType {
                            operation: "rate limit",
                            key: full_key.clone(),
                        });
                    }
                };
                while log
                    .front()
                    .is_some_and(|&at| now.duration_since(at) >= window)
                {
                    log.pop_front();
                }
                let allowed = (log.len() as u64) < limit;
                if allowed {
                    log.push_back(now);
                }
                let count = log.len() as u64;
                let reset = log
                    .front()
                    .map(|&oldest| remaining(now, deadline(oldest, window)))
                    .unwrap_or_default();
                let expires_at = Some(deadline(now, window));
                store.insert(&full_key, Value::Log(log), expires_at);
                Ok((allowed, count, reset))
            })?,
        };
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
        self.cache.backend().delete(&self.space.key(key)).await?;
        Ok(())
    }
}
