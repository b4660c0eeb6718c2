//! Counters per `Cache` handle (and so per namespace), read with `Cache::stats`.

use std::sync::Arc;
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
    /// Loader runs that failed: an error, a panic, or the hard timeout.
    pub load_errors: u64,
    /// Loader runs given up at the load policy's hard timeout (also counted
    /// in `load_errors`).
    pub loader_timeouts: u64,
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
    pub(crate) loader_timeouts: AtomicU64,
    pub(crate) coalesced_waits: AtomicU64,
    pub(crate) negative_hits: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) backend_errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
}

/// Something that counts events.
pub(crate) trait Tally {
    fn add_one(&self);
}

impl Tally for AtomicU64 {
    fn add_one(&self) {
        self.fetch_add(1, Ordering::Relaxed);
    }
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &impl Tally) {
    counter.add_one();
}

/// One counter of a keyspace: it adds to the keyspace's figure (the handle's
/// is their sum) and, with the feature `metrics`, to the `metrics` facade.
pub(crate) struct Counter {
    keyspace: Arc<Stats>,
    field: fn(&Stats) -> &AtomicU64,
    #[cfg(feature = "metrics")]
    metric: metrics::Counter,
}

impl Tally for Counter {
    fn add_one(&self) {
        (self.field)(&self.keyspace).add_one();
        #[cfg(feature = "metrics")]
        self.metric.increment(1);
    }
}

/// The counters of one keyspace (its prefix) on one handle, shared by its
/// views. Backend errors and timeouts are counted per handle only.
pub(crate) struct KeyspaceCounters {
    keyspace: Arc<Stats>,
    pub(crate) hits: Counter,
    pub(crate) local_hits: Counter,
    pub(crate) misses: Counter,
    pub(crate) loads: Counter,
    pub(crate) load_errors: Counter,
    pub(crate) loader_timeouts: Counter,
    pub(crate) coalesced_waits: Counter,
    pub(crate) negative_hits: Counter,
    pub(crate) refreshes: Counter,
    pub(crate) decode_errors: Counter,
    /// Namespace and keyspace labels, for the facade's other figures.
    #[cfg(feature = "metrics")]
    pub(crate) labels: crate::telemetry::Labels,
}

impl std::fmt::Debug for KeyspaceCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyspaceCounters")
            .field("stats", &self.keyspace.snapshot())
            .finish()
    }
}

impl KeyspaceCounters {
    pub(crate) fn new(namespace: Option<&str>, prefix: &str) -> Self {
        let keyspace = Arc::new(Stats::default());
        #[cfg(feature = "metrics")]
        let labels = crate::telemetry::Labels::new(namespace, prefix);
        #[cfg(not(feature = "metrics"))]
        let _ = (namespace, prefix);
        let counter = |field: fn(&Stats) -> &AtomicU64, _name: &'static str| Counter {
            keyspace: Arc::clone(&keyspace),
            field,
            #[cfg(feature = "metrics")]
            metric: labels.counter(_name),
        };
        KeyspaceCounters {
            hits: counter(|stats| &stats.hits, "cache_hits_total"),
            local_hits: counter(|stats| &stats.local_hits, "cache_local_hits_total"),
            misses: counter(|stats| &stats.misses, "cache_misses_total"),
            loads: counter(|stats| &stats.loads, "cache_loads_total"),
            load_errors: counter(|stats| &stats.load_errors, "cache_load_errors_total"),
            loader_timeouts: counter(
                |stats| &stats.loader_timeouts,
                "cache_loader_timeouts_total",
            ),
            coalesced_waits: counter(
                |stats| &stats.coalesced_waits,
                "cache_coalesced_waits_total",
            ),
            negative_hits: counter(|stats| &stats.negative_hits, "cache_negative_hits_total"),
            refreshes: counter(|stats| &stats.refreshes, "cache_refreshes_total"),
            decode_errors: counter(|stats| &stats.decode_errors, "cache_decode_errors_total"),
            #[cfg(feature = "metrics")]
            labels,
            keyspace,
        }
    }

    /// The keyspace's figures.
    pub(crate) fn snapshot(&self) -> CacheStats {
        self.keyspace.snapshot()
    }
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
            loader_timeouts: read(&self.loader_timeouts),
            coalesced_waits: read(&self.coalesced_waits),
            negative_hits: read(&self.negative_hits),
            refreshes: read(&self.refreshes),
            decode_errors: read(&self.decode_errors),
            backend_errors: read(&self.backend_errors),
            timeouts: read(&self.timeouts),
        }
    }

    /// Adds `other`'s figures to `self`'s.
    pub(crate) fn add(mut total: CacheStats, other: CacheStats) -> CacheStats {
        total.hits += other.hits;
        total.local_hits += other.local_hits;
        total.misses += other.misses;
        total.loads += other.loads;
        total.load_errors += other.load_errors;
        total.loader_timeouts += other.loader_timeouts;
        total.coalesced_waits += other.coalesced_waits;
        total.negative_hits += other.negative_hits;
        total.refreshes += other.refreshes;
        total.decode_errors += other.decode_errors;
        total.backend_errors += other.backend_errors;
        total.timeouts += other.timeouts;
        total
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
