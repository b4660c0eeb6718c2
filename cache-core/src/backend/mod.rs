//! The one seam between typed code and storage.
//!
//! Everything above this module works on full key strings and bytes, and is
//! written once for every backend. An enum rather than a trait object keeps the
//! hot path free of boxing.

pub(crate) mod memory;
pub(crate) mod redis;

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::Result;

tokio::task_local! {
    /// When the public operation running in this task must have answered.
    static DEADLINE: Instant;
}

/// Runs `operation` so that all its backend calls share one `timeout`: a call
/// gets what earlier calls left, and none is sent once it is spent. Nested
/// uses keep the outer deadline.
pub(crate) async fn within<F: Future>(timeout: Duration, operation: F) -> F::Output {
    if DEADLINE.try_with(|_| ()).is_ok() {
        return operation.await;
    }
    DEADLINE.scope(Instant::now() + timeout, operation).await
}

/// What is left of the running operation's time, at most `timeout`.
pub(crate) fn budget(timeout: Duration) -> Duration {
    DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(Instant::now()))
        .map_or(timeout, |left| left.min(timeout))
}

pub(crate) use self::memory::MemoryBackend;
pub(crate) use self::redis::{RedisBackend, Retry};

/// What a key's time to live is, as `TTL`/`PTTL` report it.
///
/// ```
/// use cache_core::Ttl;
/// use std::time::Duration;
///
/// let ttl = Ttl::Expires(Duration::from_secs(5));
/// assert_eq!(ttl.remaining(), Some(Duration::from_secs(5)));
/// assert_eq!(Ttl::Persistent.remaining(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// The key does not exist.
    Missing,
    /// The key exists and never expires.
    Persistent,
    /// The key expires after this long (millisecond precision).
    Expires(Duration),
}

impl Ttl {
    /// The remaining time, when the key exists and expires.
    ///
    /// ```
    /// assert_eq!(cache_core::Ttl::Missing.remaining(), None);
    /// ```
    pub fn remaining(self) -> Option<Duration> {
        match self {
            Ttl::Expires(left) => Some(left),
            Ttl::Missing | Ttl::Persistent => None,
        }
    }
}

/// Whether a write replaces an existing value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SetMode {
    Always,
    IfAbsent,
}

/// The range a counter must stay in; `None` means the end of the `i64` range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub(crate) min: Option<i64>,
    pub(crate) max: Option<i64>,
}

impl Bounds {
    /// True when the bounds are the whole `i64` range, which Redis enforces itself.
    pub(crate) fn is_full_range(self) -> bool {
        self.min.unwrap_or(i64::MIN) == i64::MIN && self.max.unwrap_or(i64::MAX) == i64::MAX
    }

    /// The range the current value must be in for `current + delta` to stay
    /// within the bounds, as (low, high) with `None` where only the `i64`
    /// range limits it (Redis checks that itself); `None` when no current
    /// value can do.
    pub(crate) fn current_range(self, delta: i64) -> Option<(Option<i64>, Option<i64>)> {
        let min = i128::from(self.min.unwrap_or(i64::MIN)) - i128::from(delta);
        let max = i128::from(self.max.unwrap_or(i64::MAX)) - i128::from(delta);
        let (low, high) = (min.max(i128::from(i64::MIN)), max.min(i128::from(i64::MAX)));
        if low > high {
            return None;
        }
        let low = i64::try_from(low).ok().filter(|&low| low > i64::MIN);
        let high = i64::try_from(high).ok().filter(|&high| high < i64::MAX);
        Some((low, high))
    }

    pub(crate) fn contains(self, value: i128) -> bool {
        let min = self.min.unwrap_or(i64::MIN);
        let max = self.max.unwrap_or(i64::MAX);
        (i128::from(min)..=i128::from(max)).contains(&value)
    }
}

/// The storage behind a `Cache` handle.
#[derive(Debug)]
pub(crate) enum Backend {
    Redis(RedisBackend),
    Memory(MemoryBackend),
}

impl Backend {
    /// Runs one public operation: all its Redis calls share one timeout.
    pub(crate) async fn within<F: Future>(&self, operation: F) -> F::Output {
        match self {
            Backend::Redis(redis) => within(redis.timeout(), operation).await,
            Backend::Memory(_) => operation.await,
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Backend::Redis(redis) => redis.get(key).await,
            Backend::Memory(memory) => memory.get(key),
        }
    }

    pub(crate) async fn set(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<bool> {
        match self {
            Backend::Redis(redis) => redis.set(key, value, ttl, mode).await,
            Backend::Memory(memory) => memory.set(key, value, ttl, mode),
        }
    }

    /// The value and its remaining TTL, in one round trip.
    pub(crate) async fn get_with_ttl(&self, key: &str) -> Result<Option<(Vec<u8>, Ttl)>> {
        match self {
            Backend::Redis(redis) => redis.get_with_ttl(key).await,
            Backend::Memory(memory) => memory.atomically(|store| {
                let bytes = store.bytes(key, "GET")?.cloned();
                Ok(bytes.map(|bytes| (bytes, store.ttl(key))))
            }),
        }
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<bool> {
        match self {
            Backend::Redis(redis) => redis.delete(key).await,
            Backend::Memory(memory) => memory.delete(key),
        }
    }

    pub(crate) async fn exists(&self, key: &str) -> Result<bool> {
        match self {
            Backend::Redis(redis) => redis.exists(key).await,
            Backend::Memory(memory) => memory.exists(key),
        }
    }

    pub(crate) async fn ttl(&self, key: &str) -> Result<Ttl> {
        match self {
            Backend::Redis(redis) => redis.ttl(key).await,
            Backend::Memory(memory) => memory.ttl(key),
        }
    }

    pub(crate) async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        match self {
            Backend::Redis(redis) => redis.expire(key, ttl).await,
            Backend::Memory(memory) => memory.expire(key, ttl),
        }
    }

    /// Many values in one round trip (MGET), in the order of `keys`.
    pub(crate) async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Backend::Redis(redis) => {
                let cmd = ::redis::cmd("MGET").arg(keys).take();
                redis.query("MGET", first_key(keys), cmd).await
            }
            Backend::Memory(memory) => memory.atomically(|store| {
                keys.iter()
                    .map(|key| Ok(store.bytes(key, "MGET")?.cloned()))
                    .collect()
            }),
        }
    }

    /// Many writes in one atomic round trip (MULTI/EXEC of SETs).
    pub(crate) async fn set_many(
        &self,
        entries: Vec<(String, Vec<u8>, Option<Duration>)>,
    ) -> Result<()> {
        let Some((first, _, _)) = entries.first() else {
            return Ok(());
        };
        match self {
            Backend::Redis(redis) => {
                let mut pipe = ::redis::pipe();
                pipe.atomic();
                for (key, value, ttl) in &entries {
                    pipe.cmd("SET").arg(key).arg(value);
                    if let Some(ttl) = ttl {
                        pipe.arg("PX").arg(ttl_millis(*ttl));
                    }
                    pipe.ignore();
                }
                let () = redis
                    .pipeline("SET", first, pipe, Retry::Idempotent)
                    .await?;
                Ok(())
            }
            Backend::Memory(memory) => {
                memory.atomically(|store| {
                    for (key, value, ttl) in entries {
                        let expires_at = ttl.map(|ttl| memory::deadline(store.now(), ttl));
                        store.insert(&key, memory::Value::Bytes(value), expires_at);
                    }
                });
                Ok(())
            }
        }
    }

    /// Removes many keys in one command; returns how many existed.
    pub(crate) async fn delete_many(&self, keys: &[String]) -> Result<usize> {
        if keys.is_empty() {
            return Ok(0);
        }
        match self {
            Backend::Redis(redis) => {
                let cmd = ::redis::cmd("DEL").arg(keys).take();
                redis.query("DEL", first_key(keys), cmd).await
            }
            Backend::Memory(memory) => Ok(memory.atomically(|store| {
                keys.iter()
                    .filter(|key| store.remove(key).is_some())
                    .count()
            })),
        }
    }

    pub(crate) async fn take(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Backend::Redis(redis) => redis.take(key).await,
            Backend::Memory(memory) => memory.take(key),
        }
    }

    /// Adds `delta` atomically, refusing to leave `bounds`; a key without an
    /// expiry (a new one) gets `ttl`, a key with one keeps it. Returns the new value.
    pub(crate) async fn incr(
        &self,
        key: &str,
        delta: i64,
        bounds: Bounds,
        ttl: Option<Duration>,
    ) -> Result<i64> {
        match self {
            Backend::Redis(redis) => redis.incr(key, delta, bounds, ttl).await,
            Backend::Memory(memory) => memory.incr(key, delta, bounds, ttl),
        }
    }
}

/// The key a batch call names in its errors.
fn first_key(keys: &[String]) -> &str {
    keys.first().map(String::as_str).unwrap_or_default()
}

/// A TTL in whole milliseconds, as both backends store it.
pub(crate) fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}
