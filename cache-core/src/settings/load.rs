//! How `get_or_load` behaves: negative caching, jitter, early refresh,
//! failure policy, distributed single flight, fail-safe and the loader's
//! time limits.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::random::random;
use crate::ttl::check_ttl;

/// What `get_or_load` does when Redis fails or times out.
///
/// ```
/// use cache_core::{FailurePolicy, LoadPolicy};
/// // A revoked-token check must not pass when Redis cannot answer.
/// let blacklist = LoadPolicy::DEFAULT.on_failure(FailurePolicy::Closed);
/// assert_eq!(LoadPolicy::DEFAULT, LoadPolicy::DEFAULT.on_failure(FailurePolicy::Open));
/// # let _ = blacklist;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Count the error and treat it as a miss: the loader runs and its value is
    /// returned; writing it back is best effort. Right for a price cache.
    Open,
    /// Return the error. Right where a stale or missing answer is unsafe.
    Closed,
}

/// Single flight across processes: the loader of one process holds a short
/// lock per key; the others re-read until the value is there, for at most `wait`.
///
/// ```
/// use cache_core::LoadPolicy;
/// use std::time::Duration;
/// // Loads take under a second; wait up to two for another instance's load.
/// let policy = LoadPolicy::DEFAULT.distributed(Duration::from_secs(5), Duration::from_secs(2));
/// # let _ = policy;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DistributedFlight {
    /// How long the loading process holds the lock (longer than a load takes).
    pub lease: Duration,
    /// How long the others wait for its value before loading themselves (a
    /// batch whose one loader call already ran reports the key as
    /// [`Error::Load`](crate::Error::Load) instead; see
    /// [`get_or_load_many`](crate::TypedCache::get_or_load_many)).
    pub wait: Duration,
}

/// How `get_or_load` behaves, per keyspace or per [`Cacheable`](crate::Cacheable) type.
///
/// ```
/// use cache_core::{FailurePolicy, LoadPolicy};
/// use std::time::Duration;
///
/// const PRICES: LoadPolicy = LoadPolicy::DEFAULT
///     .negative_ttl(Duration::from_secs(30)) // cache "no such model" for 30 s
///     .jitter(0.1)                           // spread expiry over the last 10% of the TTL
///     .early_refresh(0.2)                    // refresh in the background in the last 20%
///     .on_failure(FailurePolicy::Open);      // Redis down: serve from the loader
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadPolicy {
    pub(crate) negative_ttl: Option<Duration>,
    pub(crate) jitter: f64,
    pub(crate) early_refresh: Option<f64>,
    pub(crate) failure: FailurePolicy,
    pub(crate) distributed: Option<DistributedFlight>,
    pub(crate) hard_timeout: Option<Duration>,
    pub(crate) fail_safe: Option<Duration>,
    pub(crate) fail_safe_throttle: Duration,
    pub(crate) soft_timeout: Option<Duration>,
}

/// How long a stale value is served after a failed load before the loader
/// is tried again, unless [`LoadPolicy::fail_safe_throttle`] says otherwise.
///
/// ```
/// assert_eq!(cache_core::DEFAULT_FAIL_SAFE_THROTTLE.as_secs(), 30);
/// ```
pub const DEFAULT_FAIL_SAFE_THROTTLE: Duration = Duration::from_secs(30);

impl Default for LoadPolicy {
    fn default() -> Self {
        LoadPolicy::DEFAULT
    }
}

impl LoadPolicy {
    /// No negative caching, no jitter, no early refresh, fail-open, in-process
    /// single flight only, no fail-safe, no time limit on the loader.
    pub const DEFAULT: LoadPolicy = LoadPolicy {
        negative_ttl: None,
        jitter: 0.0,
        early_refresh: None,
        failure: FailurePolicy::Open,
        distributed: None,
        hard_timeout: None,
        fail_safe: None,
        fail_safe_throttle: DEFAULT_FAIL_SAFE_THROTTLE,
        soft_timeout: None,
    };

    /// Caches a loader's "absent" (`None`) for `ttl`, so a hot missing key does
    /// not reach the database on every read.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let policy = cache_core::LoadPolicy::DEFAULT.negative_ttl(Duration::from_secs(30));
    /// # let _ = policy;
    /// ```
    pub const fn negative_ttl(self, ttl: Duration) -> Self {
        LoadPolicy {
            negative_ttl: Some(ttl),
            ..self
        }
    }

    /// Shortens each stored TTL by a random part of up to `fraction` (0 to 1),
    /// so entries written together do not all expire together.
    ///
    /// ```
    /// let policy = cache_core::LoadPolicy::DEFAULT.jitter(0.1);
    /// # let _ = policy;
    /// ```
    pub const fn jitter(self, fraction: f64) -> Self {
        LoadPolicy {
            jitter: fraction,
            ..self
        }
    }

    /// When a hit finds less than `fraction` (0 to 1) of the TTL left, serve it
    /// and reload it in the background, one refresh per key at a time.
    ///
    /// ```
    /// let policy = cache_core::LoadPolicy::DEFAULT.early_refresh(0.2);
    /// # let _ = policy;
    /// ```
    pub const fn early_refresh(self, fraction: f64) -> Self {
        LoadPolicy {
            early_refresh: Some(fraction),
            ..self
        }
    }

    /// What to do when Redis fails; see [`FailurePolicy`].
    ///
    /// ```
    /// use cache_core::{FailurePolicy, LoadPolicy};
    /// let policy = LoadPolicy::DEFAULT.on_failure(FailurePolicy::Closed);
    /// # let _ = policy;
    /// ```
    pub const fn on_failure(self, policy: FailurePolicy) -> Self {
        LoadPolicy {
            failure: policy,
            ..self
        }
    }

    /// Single flight across processes; see [`DistributedFlight`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// let policy = cache_core::LoadPolicy::DEFAULT.distributed(Duration::from_secs(5), Duration::from_secs(2));
    /// # let _ = policy;
    /// ```
    pub const fn distributed(self, lease: Duration, wait: Duration) -> Self {
        LoadPolicy {
            distributed: Some(DistributedFlight { lease, wait }),
            ..self
        }
    }

    /// Gives the loader up after `limit`: the load fails with
    /// [`Error::Load`](crate::Error::Load) ("the loader did not answer within
    /// ..."), for the caller and every caller waiting for it, nothing is
    /// cached, and the next call loads anew. With [`fail_safe`](Self::fail_safe)
    /// and an expired value at hand, that value is the answer instead. No caller waits longer than
    /// `limit` for a loader (waiting for another process's load, under
    /// [`distributed`](Self::distributed), is bounded by its `wait`).
    /// Counted in [`CacheStats::loader_timeouts`](crate::CacheStats::loader_timeouts).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// use cache_core::LoadPolicy;
    /// use std::time::Duration;
    ///
    /// let cache = cache_core::Cache::memory();
    /// let policy = LoadPolicy::DEFAULT.hard_timeout(Duration::from_millis(50));
    /// let prices = cache.keyspace("price").load_policy(policy).typed::<String, f64>()?;
    /// let slow = prices.get_or_load("gpt-4", || async {
    ///     tokio::time::sleep(Duration::from_secs(10)).await; // a stuck query
    ///     Some(0.03)
    /// });
    /// assert!(slow.await.unwrap_err().to_string().contains("did not answer"));
    /// assert_eq!(cache.stats().loader_timeouts, 1);
    /// # Ok(()) }
    /// ```
    pub const fn hard_timeout(self, limit: Duration) -> Self {
        LoadPolicy {
            hard_timeout: Some(limit),
            ..self
        }
    }

    /// Keeps each value up to `window` past its expiry, to answer with when a
    /// load after the expiry fails (the loader's `Err` or `None`-less error,
    /// a panic, the [hard timeout](Self::hard_timeout)) or Redis cannot be
    /// read (from the local tier's last copy). After a failed load the expired
    /// value is served for [`fail_safe_throttle`](Self::fail_safe_throttle)
    /// (30 s by default) before the loader is tried again, on every process.
    /// With no expired value, the caller gets the error as without fail-safe.
    ///
    /// Stale answers are counted by reason in [`CacheStats`](crate::CacheStats);
    /// [`get_or_load_detailed`](crate::TypedCache::get_or_load_detailed)
    /// tells one caller whether its answer was fresh. Values of the keyspace
    /// are stored with a 12-byte header (see [`guide::cache_aside`](crate::guide::cache_aside)); `get`, `ttl` and
    /// `exists` see only values that have not expired, and `incr` refuses
    /// the keyspace.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// use cache_core::{Freshness, LoadPolicy, StaleReason};
    /// use std::time::Duration;
    ///
    /// let cache = cache_core::Cache::memory();
    /// let policy = LoadPolicy::DEFAULT.fail_safe(Duration::from_secs(3600));
    /// let prices = cache
    ///     .keyspace("price")
    ///     .ttl(Duration::from_millis(20))
    ///     .load_policy(policy)
    ///     .typed::<String, f64>()?;
    /// prices.set("gpt-4", &0.03).await?;
    /// tokio::time::sleep(Duration::from_millis(30)).await; // expired
    /// let down = prices
    ///     .try_get_or_load_detailed("gpt-4", || async { Err::<Option<f64>, _>("database down") })
    ///     .await?;
    /// assert_eq!(down.value, Some(0.03));
    /// assert_eq!(down.freshness, Freshness::Stale(StaleReason::LoaderError));
    /// assert_eq!(cache.stats().stale_loader_errors, 1);
    /// # Ok(()) }
    /// ```
    pub const fn fail_safe(self, window: Duration) -> Self {
        LoadPolicy {
            fail_safe: Some(window),
            ..self
        }
    }

    /// After a failed load under [`fail_safe`](Self::fail_safe), how long the
    /// expired value is served before the loader is tried again (never past
    /// the fail-safe window).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let policy = cache_core::LoadPolicy::DEFAULT
    ///     .fail_safe(Duration::from_secs(3600))
    ///     .fail_safe_throttle(Duration::from_secs(5));
    /// # let _ = policy;
    /// ```
    pub const fn fail_safe_throttle(self, throttle: Duration) -> Self {
        LoadPolicy {
            fail_safe_throttle: throttle,
            ..self
        }
    }

    /// When an expired value is at hand (under [`fail_safe`](Self::fail_safe))
    /// and the loader has not answered within `limit` of the load's start,
    /// answer with that value at once (a caller that joins a load already
    /// older than `limit` does not wait at all); the load goes on in the
    /// background (still one per key, and bounded by the
    /// [hard timeout](Self::hard_timeout), which a soft timeout needs and
    /// must be below) and stores what it finds, so a later read is fresh.
    /// Counted as a stale answer for a loader timeout and as a background
    /// load. Without an expired value, callers wait for the loader as usual.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let policy = cache_core::LoadPolicy::DEFAULT
    ///     .fail_safe(Duration::from_secs(3600))
    ///     .soft_timeout(Duration::from_millis(100))
    ///     .hard_timeout(Duration::from_secs(2));
    /// # let _ = policy;
    /// ```
    pub const fn soft_timeout(self, limit: Duration) -> Self {
        LoadPolicy {
            soft_timeout: Some(limit),
            ..self
        }
    }

    /// Checks the ranges; `prefix` names the keyspace in errors.
    pub(crate) fn check(&self, prefix: &str) -> Result<()> {
        if let Some(ttl) = self.negative_ttl {
            check_ttl(ttl, None)?;
        }
        if !(0.0..1.0).contains(&self.jitter) {
            return Err(Error::config(format!(
                "jitter of `{prefix}` must be at least 0 and below 1, got {}",
                self.jitter
            )));
        }
        if let Some(fraction) = self.early_refresh
            && !(fraction > 0.0 && fraction < 1.0)
        {
            return Err(Error::config(format!(
                "early_refresh of `{prefix}` must be between 0 and 1, got {fraction}"
            )));
        }
        if let Some(flight) = self.distributed {
            check_ttl(flight.lease, None)?;
        }
        let limits = [
            ("hard_timeout", self.hard_timeout),
            ("soft_timeout", self.soft_timeout),
            ("fail_safe", self.fail_safe),
            ("fail_safe_throttle", Some(self.fail_safe_throttle)),
        ];
        for (name, limit) in limits {
            if limit.is_some_and(|limit| limit.is_zero()) {
                return Err(Error::config(format!(
                    "{name} of `{prefix}` must be greater than zero"
                )));
            }
        }
        if let Some(window) = self.fail_safe {
            check_ttl(window, None)?;
        } else if self.soft_timeout.is_some() {
            return Err(Error::config(format!(
                "soft_timeout of `{prefix}` needs fail_safe: it answers with an expired value"
            )));
        }
        match (self.soft_timeout, self.hard_timeout) {
            (Some(_), None) => {
                return Err(Error::config(format!(
                    "soft_timeout of `{prefix}` needs a hard_timeout: it bounds the load left running"
                )));
            }
            (Some(soft), Some(hard)) if soft >= hard => {
                return Err(Error::config(format!(
                    "soft_timeout of `{prefix}` ({soft:?}) must be below its hard_timeout ({hard:?})"
                )));
            }
            _ => {}
        }
        Ok(())
    }

    /// `ttl` shortened by the jitter.
    pub(crate) fn jittered(&self, ttl: Duration) -> Duration {
        if self.jitter <= 0.0 {
            return ttl;
        }
        let unit = (random() % 1_000_000) as f64 / 1_000_000.0;
        ttl.mul_f64(1.0 - self.jitter * unit)
            .max(Duration::from_millis(1))
    }
}
