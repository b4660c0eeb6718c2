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
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::block_basics;
use crate::engine::KeyspaceSettings;
use crate::engine::Scope;
use crate::engine::lease::Lease;
use crate::error::{Error, Result};
use crate::key::CacheKey;
use crate::random::random;

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
    scope: Scope<K>,
}

block_basics!(Locks<K> {  }
);

impl<K: CacheKey + ?Sized> Locks<K> {
    pub(crate) fn new(keyspace: KeyspaceSettings) -> Self {
        Locks {
            scope: Scope::new(&keyspace),
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
        let key = self.scope.layout.tagged_key(name);
        let acquired = Lease::acquire(&self.scope.engine, key, lease).await?;
        Ok(acquired.map(|(held, fencing_token)| LockGuard {
            held: Arc::new(held),
            fencing_token,
            watchdog: None,
        }))
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
                    key: self.scope.layout.tagged_key(name),
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

/// A held lock. Dropping it releases the lock (in the background, when a tokio
/// runtime is there; otherwise the lease runs out).
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard {
    held: Arc<Lease>,
    fencing_token: u64,
    watchdog: Option<tokio::task::JoinHandle<()>>,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("key", &self.held.key())
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
        self.held.key()
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
        // The lease itself is released in the background once its last
        // holder (this guard, or the watchdog until it stops) drops it.
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
    }
}
