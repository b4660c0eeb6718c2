//! Counters per `Cache` handle (and so per namespace), read with `Cache::stats`.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a handle's counters since it was built.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// let cache = cache_core::Cache::memory();
/// let names = cache.keyspace("name").typed::<u64, String>()?;
/// names.get(&1).await?;
/// assert_eq!(cache.stats().misses, 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Reads that found a value (local-tier hits included).
    pub hits: u64,
    /// Reads answered by the local tier without a backend call.
    pub local_hits: u64,
    /// Reads that found nothing (negative entries count as `negative_hits`).
    pub misses: u64,
    /// Loader runs (each in-process single flight counts once).
    pub loads: u64,
    /// Loader runs that returned an error.
    pub load_errors: u64,
    /// Callers that waited for a load already in flight instead of loading
    /// (in this process, or in another one under distributed single flight).
    pub coalesced_waits: u64,
    /// Reads answered by a cached "absent" entry.
    pub negative_hits: u64,
    /// Background refreshes started by early refresh.
    pub refreshes: u64,
    /// Stored values that failed to decode.
    pub decode_errors: u64,
    /// Backend calls that failed (timeouts excluded).
    pub backend_errors: u64,
    /// Backend calls that ran past the timeout.
    pub timeouts: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) hits: AtomicU64,
    pub(crate) local_hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) load_errors: AtomicU64,
    pub(crate) coalesced_waits: AtomicU64,
    pub(crate) negative_hits: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) backend_errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    pub(crate) fn snapshot(&self) -> CacheStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CacheStats {
            hits: read(&self.hits),
            local_hits: read(&self.local_hits),
            misses: read(&self.misses),
            loads: read(&self.loads),
            load_errors: read(&self.load_errors),
            coalesced_waits: read(&self.coalesced_waits),
            negative_hits: read(&self.negative_hits),
            refreshes: read(&self.refreshes),
            decode_errors: read(&self.decode_errors),
            backend_errors: read(&self.backend_errors),
            timeouts: read(&self.timeouts),
        }
    }

    /// Counts a failed call by its kind.
    pub(crate) fn count_error(&self, error: &crate::Error) {
        match error {
            crate::Error::Timeout { .. } | crate::Error::ConnectTimeout { .. } => {
                bump(&self.timeouts)
            }
            crate::Error::Backend { .. } | crate::Error::Connection { .. } => {
                bump(&self.backend_errors)
            }
            _ => {}
        }
    }
}
