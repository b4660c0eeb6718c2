//! Distributed locks with owner tokens and fencing tokens.
//!
//! A lock is a key holding its owner's random token, with a lease (TTL). Only
//! the owner can release or extend it (compare-and-delete in one script).
//!
//! Each acquisition also gets a fencing token: the Redis server's clock in
//! microseconds since the Unix epoch, or one more than the lock's previous
//! token when the clock has not moved past it. A counter beside the lock
//! (same Cluster hash tag) remembers the last token for the lease plus ten
//! seconds, then expires. So tokens strictly increase per lock name, also
//! after Redis loses its data (a restart without persistence, a flush, a
//! failover), as long as the server's clock does not go back by more than the
//! time the loss took. On a cluster or after a failover that means the nodes'
//! clocks must agree (NTP) to within that time.
//!
//! As with any Redis lock without consensus, a holder that stalls past its lease
//! (a GC pause, a slow disk) can still be running when the next holder starts.
//! Correctness across a lease expiry needs the protected resource to check the
//! fencing token: refuse writes carrying a token lower than one it has seen.

use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::Script;

use crate::backend::memory::{Value, deadline};
use crate::backend::{Backend, ttl_millis};
use crate::error::{Error, Result};
use crate::key::{CacheKey, KeySpace};
use crate::keyspace::{Keyspace, check_ttl};
use crate::{Cache, random};

/// KEYS: the lock, its fencing counter. ARGV: owner token, lease (ms),
/// how long the counter outlives the lease (ms).
///
/// The fencing token is the server's clock in microseconds, or one more than
/// the last token when that is not below the clock (two acquisitions in one
/// microsecond). So tokens keep increasing after Redis loses the counter, and
/// the counter itself can expire. The counter is read and checked before
/// anything is written, so a refused acquisition leaves both keys as they were.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local t = redis.call('TIME')
local fence = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = redis.call('GET', KEYS[2])
if last then
  last = tonumber(last)
  if not last then return redis.error_reply('ERR fencing counter is not an integer') end
  if last >= fence then fence = last + 1 end
end
redis.call('SET', KEYS[2], string.format('%.0f', fence), 'PX', ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return fence
",
    )
});

/// How much longer than the lease a fencing counter is kept. Tokens come
/// from the clock, so the counter only has to bridge acquisitions that run
/// ahead of it within a burst; it does not have to live forever.
const FENCE_MARGIN: Duration = Duration::from_secs(10);

static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

const FIRST_RETRY: Duration = Duration::from_millis(5);
const MAX_RETRY: Duration = Duration::from_millis(100);

/// Named locks under one keyspace. Made by
/// [`KeyspaceBuilder::locks`](crate::KeyspaceBuilder::locks).
///
/// Only the owner can release or extend a lock. Each acquisition gets a
/// fencing token: the Redis server's clock in microseconds, or one more than
/// the lock's previous token when the clock has not moved past it. A counter
/// beside the lock remembers the last token for the lease plus ten seconds,
/// then expires, so nothing is left behind per lock name. Tokens strictly
/// increase per lock, also after Redis loses its data (restart without
/// persistence, flush, failover), as long as the server's clock does not go
/// back by more than the time the loss took; after a failover that means the
/// nodes' clocks agree (NTP). A holder that stalls past its lease can still
/// run when the next holder starts: have the protected resource refuse
/// tokens lower than one it has seen.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// use std::time::Duration;
///
/// let cache = cache_core::Cache::memory();
/// let locks = cache.keyspace("lock").locks::<str>()?;
///
/// let guard = locks.acquire("billing-run", Duration::from_secs(30), Duration::from_secs(1)).await?;
/// assert!(locks.try_acquire("billing-run", Duration::from_secs(30)).await?.is_none());
/// let token = guard.fencing_token(); // pass this to the resource you protect
/// assert!(guard.release().await?);
/// assert!(locks.try_acquire("billing-run", Duration::from_secs(30)).await?.unwrap().fencing_token() > token);
/// # Ok(()) }
/// ```
pub struct Locks<K: ?Sized> {
    cache: Cache,
    space: KeySpace,
    types: PhantomData<fn(&K)>,
}

impl<K: ?Sized> Clone for Locks<K> {
    fn clone(&self) -> Self {
        Locks {
            cache: self.cache.clone(),
            space: self.space.clone(),
            types: PhantomData,
        }
    }
}

impl<K: ?Sized> fmt::Debug for Locks<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Locks").field("keys", &self.space).finish()
    }
}

impl<K: CacheKey + ?Sized> Locks<K> {
    pub(crate) fn new(keyspace: Keyspace) -> Self {
        Locks {
            cache: keyspace.cache,
            space: keyspace.space,
            types: PhantomData,
        }
    }

    /// Takes the lock `name` if it is free, for `lease`; `None` when another
    /// owner holds it.
    ///
    /// # Errors
    /// [`Error::InvalidTtl`] for a zero lease, backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// let locks = cache_core::Cache::memory().keyspace("lock").locks::<str>()?;
    /// let first = locks.try_acquire("job", Duration::from_secs(5)).await?;
    /// assert!(first.is_some());
    /// assert!(locks.try_acquire("job", Duration::from_secs(5)).await?.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn try_acquire<Q>(&self, name: &Q, lease: Duration) -> Result<Option<LockGuard>>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        try_acquire_at(&self.cache, self.space.tagged_key(name), lease).await
    }

    /// Takes the lock `name` for `lease`, waiting up to `wait` for it to be free
    /// (retrying with exponential backoff and jitter).
    ///
    /// # Errors
    /// [`Error::LockBusy`] when it was still held after `wait`, and as
    /// [`try_acquire`](Self::try_acquire).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// let locks = cache_core::Cache::memory().keyspace("lock").locks::<str>()?;
    /// let _held = locks.acquire("job", Duration::from_secs(5), Duration::ZERO).await?;
    /// let err = locks.acquire("job", Duration::from_secs(5), Duration::from_millis(50)).await.unwrap_err();
    /// assert!(matches!(err, cache_core::Error::LockBusy { .. }));
    /// # Ok(()) }
    /// ```
    pub async fn acquire<Q>(&self, name: &Q, lease: Duration, wait: Duration) -> Result<LockGuard>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let started = Instant::now();
        let mut backoff = FIRST_RETRY;
        loop {
            if let Some(guard) = self.try_acquire(name, lease).await? {
                return Ok(guard);
            }
            let waited = started.elapsed();
            if waited >= wait {
                return Err(Error::LockBusy {
                    key: self.space.tagged_key(name),
                    waited,
                });
            }
            // Sleep between half and all of the backoff, never past the deadline.
            let jitter = 0.5 + (random() % 1000) as f64 / 2000.0;
            let pause = backoff.mul_f64(jitter).min(wait - waited);
            tokio::time::sleep(pause).await;
            backoff = (backoff * 2).min(MAX_RETRY);
        }
    }
}

/// Takes the lock at the full key `key` (a tagged key) if it is free.
pub(crate) async fn try_acquire_at(
    cache: &Cache,
    key: String,
    lease: Duration,
) -> Result<Option<LockGuard>> {
    check_ttl(lease, Some(&key))?;
    let fence_key = format!("{key}:fence");
    let token = format!("{:016x}{:016x}", random(), random());
    let fence_ttl = lease.saturating_add(FENCE_MARGIN);
    let fencing_token = match cache.backend() {
        Backend::Redis(redis) => {
            let lease_ms = ttl_millis(lease).to_string();
            let fence_ms = ttl_millis(fence_ttl).to_string();
            redis
                .script::<Option<u64>>(
                    "lock acquire",
                    &ACQUIRE,
                    &[&key, &fence_key],
                    &[token.as_bytes(), lease_ms.as_bytes(), fence_ms.as_bytes()],
                )
                .await?
        }
        Backend::Memory(memory) => memory.atomically(|store| {
            if store.entry(&key).is_some() {
                return Ok::<_, Error>(None);
            }
            let clock = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|since| i64::try_from(since.as_micros()).unwrap_or(i64::MAX))
                .unwrap_or_default();
            let fence = match store.integer(&fence_key, "GET")? {
                Some(last) if last >= clock => last.saturating_add(1),
                _ => clock,
            };
            let now = store.now();
            store.insert(
                &fence_key,
                Value::Bytes(fence.to_string().into_bytes()),
                Some(deadline(now, fence_ttl)),
            );
            store.insert(
                &key,
                Value::Bytes(token.clone().into_bytes()),
                Some(deadline(now, lease)),
            );
            Ok(Some(u64::try_from(fence).unwrap_or_default()))
        })?,
    };
    Ok(fencing_token.map(|fencing_token| LockGuard {
        held: Arc::new(Held {
            cache: cache.clone(),
            key,
            token,
        }),
        fencing_token,
        released: false,
        watchdog: None,
    }))
}

/// What a guard and its watchdog share.
struct Held {
    cache: Cache,
    key: String,
    token: String,
}

impl Held {
    async fn release(&self) -> Result<bool> {
        match self.cache.backend() {
            Backend::Redis(redis) => {
                let removed: u64 = redis
                    .script(
                        "lock release",
                        &RELEASE,
                        &[&self.key],
                        &[self.token.as_bytes()],
                    )
                    .await?;
                Ok(removed > 0)
            }
            Backend::Memory(memory) => memory.atomically(|store| {
                if store
                    .bytes(&self.key, "GET")?
                    .is_some_and(|v| *v == self.token.as_bytes())
                {
                    store.remove(&self.key);
                    return Ok(true);
                }
                Ok(false)
            }),
        }
    }

    async fn extend(&self, lease: Duration) -> Result<bool> {
        check_ttl(lease, Some(&self.key))?;
        match self.cache.backend() {
            Backend::Redis(redis) => {
                let lease_ms = ttl_millis(lease).to_string();
                let applied: u64 = redis
                    .script(
                        "lock extend",
                        &EXTEND,
                        &[&self.key],
                        &[self.token.as_bytes(), lease_ms.as_bytes()],
                    )
                    .await?;
                Ok(applied > 0)
            }
            Backend::Memory(memory) => memory.atomically(|store| {
                if store
                    .bytes(&self.key, "GET")?
                    .is_some_and(|v| *v == self.token.as_bytes())
                {
                    return Ok(store.expire(&self.key, lease));
                }
                Ok(false)
            }),
        }
    }
}

/// A held lock. Dropping it releases the lock (in the background, when a tokio
/// runtime is there; otherwise the lease runs out).
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard {
    held: Arc<Held>,
    fencing_token: u64,
    released: bool,
    watchdog: Option<tokio::task::JoinHandle<()>>,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("key", &self.held.key)
            .field("fencing_token", &self.fencing_token)
            .field("watchdog", &self.watchdog.is_some())
            .finish()
    }
}

impl LockGuard {
    /// The fencing token of this acquisition: strictly greater than that of
    /// every earlier acquisition of the same lock, also after Redis lost its
    /// data. It is the server's clock in microseconds (or one more than the
    /// previous token); see [`Locks`] for what that assumes.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// let locks = cache_core::Cache::memory().keyspace("lock").locks::<str>()?;
    /// let first = locks.acquire("job", Duration::from_secs(5), Duration::ZERO).await?;
    /// let token = first.fencing_token();
    /// first.release().await?;
    /// let second = locks.acquire("job", Duration::from_secs(5), Duration::ZERO).await?;
    /// assert!(second.fencing_token() > token);
    /// # Ok(()) }
    /// ```
    pub fn fencing_token(&self) -> u64 {
        self.fencing_token
    }

    /// The lock's full Redis key.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// let locks = cache_core::Cache::memory().keyspace("lock").locks::<str>()?;
    /// let guard = locks.acquire("job", Duration::from_secs(5), Duration::ZERO).await?;
    /// assert_eq!(guard.key(), "lock:v1:{job}");
    /// # Ok(()) }
    /// ```
    pub fn key(&self) -> &str {
        &self.held.key
    }

    /// Releases the lock if this guard still owns it; returns whether it did.
    /// `false` means the lease ran out and the lock expired or went to another owner.
    ///
    /// # Errors
    /// Backend or timeout errors (the lease then still runs out).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// let locks = cache_core::Cache::memory().keyspace("lock").locks::<str>()?;
    /// let guard = locks.acquire("job", Duration::from_secs(5), Duration::ZERO).await?;
    /// assert!(guard.release().await?);
    /// # Ok(()) }
    /// ```
    pub async fn release(mut self) -> Result<bool> {
        self.released = true;
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
        self.held.release().await
    }

    /// Renews the lease to `lease` from now if this guard still owns the lock;
    /// returns whether it did.
    ///
    /// # Errors
    /// [`Error::InvalidTtl`] for a zero lease, backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// let locks = cache_core::Cache::memory().keyspace("lock").locks::<str>()?;
    /// let guard = locks.acquire("job", Duration::from_secs(5), Duration::ZERO).await?;
    /// assert!(guard.extend(Duration::from_secs(60)).await?);
    /// # Ok(()) }
    /// ```
    pub async fn extend(&self, lease: Duration) -> Result<bool> {
        self.held.extend(lease).await
    }

    /// Starts a background task that renews the lease to `lease` every third of
    /// it while this guard lives; it stops when the guard is released or dropped,
    /// or when the lock turns out to be lost. Needs a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// let locks = cache_core::Cache::memory().keyspace("lock").locks::<str>()?;
    /// let mut guard = locks.acquire("job", Duration::from_millis(300), Duration::ZERO).await?;
    /// guard.keep_alive(Duration::from_millis(300));
    /// tokio::time::sleep(Duration::from_millis(700)).await; // longer than the lease
    /// assert!(locks.try_acquire("job", Duration::from_secs(1)).await?.is_none());
    /// # Ok(()) }
    /// ```
    pub fn keep_alive(&mut self, lease: Duration) {
        if let Some(previous) = self.watchdog.take() {
            previous.abort();
        }
        let held = Arc::clone(&self.held);
        let period = (lease / 3).max(Duration::from_millis(1));
        self.watchdog = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                // A transient error is retried on the next tick; a lost lock ends it.
                if let Ok(false) = held.extend(lease).await {
                    break;
                }
            }
        }));
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
        if self.released {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let held = Arc::clone(&self.held);
            runtime.spawn(async move {
                let _ = held.release().await;
            });
        }
    }
}
