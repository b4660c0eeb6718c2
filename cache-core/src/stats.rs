//! Counters per `Cache` handle (and so per namespace), read with `Cache::stats`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The keyspace counters, listed once: each field of [`CacheStats`], its
/// doc, and its metric (name, and a `reason` label or none).
macro_rules! keyspace_counters {
    ($($(#[doc = $doc:literal])* $field:ident => $metric:literal $(, $reason:literal)?;)*) => {
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
            $($(#[doc = $doc])* pub $field: u64,)*
            /// Backend calls that failed (timeouts excluded).
            pub backend_errors: u64,
            /// Backend calls that ran past the timeout.
            pub timeouts: u64,
            /// Calls that invalidated tags (`invalidate_tag`, `invalidate_all`).
            pub tag_invalidations: u64,
        }

        impl CacheStats {
            /// What changed from `earlier` (a snapshot of the same handle)
            /// to this one: each counter's difference.
            ///
            /// ```
            /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
            /// let cache = cache_core::Cache::memory();
            /// let names = cache.keyspace("name").typed::<u64, String>()?;
            /// names.get(&1).await?;
            /// let before = cache.stats();
            /// names.set(&1, &"Ada".to_owned()).await?;
            /// names.get(&1).await?;
            /// let change = cache.stats().since(&before);
            /// assert_eq!((change.hits, change.misses), (1, 0));
            /// # Ok(()) }
            /// ```
            #[must_use]
            pub fn since(&self, earlier: &CacheStats) -> CacheStats {
                CacheStats {
                    $($field: self.$field.saturating_sub(earlier.$field),)*
                    backend_errors: self.backend_errors.saturating_sub(earlier.backend_errors),
                    timeouts: self.timeouts.saturating_sub(earlier.timeouts),
                    tag_invalidations: self
                        .tag_invalidations
                        .saturating_sub(earlier.tag_invalidations),
                }
            }
        }

        /// The live counters behind a [`CacheStats`].
        #[derive(Debug, Default)]
        pub(crate) struct Stats {
            $(pub(crate) $field: AtomicU64,)*
            pub(crate) backend_errors: AtomicU64,
            pub(crate) timeouts: AtomicU64,
            pub(crate) tag_invalidations: AtomicU64,
        }

        impl Stats {
            pub(crate) fn snapshot(&self) -> CacheStats {
                let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
                CacheStats {
                    $($field: read(&self.$field),)*
                    backend_errors: read(&self.backend_errors),
                    timeouts: read(&self.timeouts),
                    tag_invalidations: read(&self.tag_invalidations),
                }
            }

            /// Adds `other`'s figures to `total`'s.
            pub(crate) fn add(mut total: CacheStats, other: CacheStats) -> CacheStats {
                $(total.$field += other.$field;)*
                total.backend_errors += other.backend_errors;
                total.timeouts += other.timeouts;
                total.tag_invalidations += other.tag_invalidations;
                total
            }
        }

        /// The counters of one keyspace on one handle.
        pub(crate) struct KeyspaceCounters {
            keyspace: Arc<Stats>,
            $(pub(crate) $field: Counter,)*
            /// The keyspace's labels for the `metrics` facade.
            #[cfg(feature = "metrics")]
            pub(crate) labels: crate::telemetry::Labels,
        }

        impl KeyspaceCounters {
            pub(crate) fn new(namespace: Option<&str>, prefix: &str) -> Self {
                let keyspace = Arc::new(Stats::default());
                #[cfg(feature = "metrics")]
                let labels = crate::telemetry::Labels::new(namespace, prefix);
                #[cfg(not(feature = "metrics"))]
                let _ = (namespace, prefix);
                KeyspaceCounters {
                    $($field: Counter {
                        keyspace: Arc::clone(&keyspace),
                        field: |stats| &stats.$field,
                        #[cfg(feature = "metrics")]
                        metric: labels.counter($metric, None $(.or(Some($reason)))?),
                    },)*
                    #[cfg(feature = "metrics")]
                    labels,
                    keyspace,
                }
            }
        }
    };
}

keyspace_counters! {
    /// Reads that found a value (local-tier hits included).
    hits => "cache_hits_total";
    /// Reads answered by the local tier without a backend call.
    local_hits => "cache_local_hits_total";
    /// Reads that found nothing (negative entries count as `negative_hits`).
    misses => "cache_misses_total";
    /// Loader runs (each in-process single flight counts once).
    loads => "cache_loads_total";
    /// Loader runs that failed: an error, a panic, or the hard timeout.
    load_errors => "cache_load_errors_total";
    /// Loader runs given up at the load policy's hard timeout (also counted
    /// in `load_errors`).
    loader_timeouts => "cache_loader_timeouts_total";
    /// Callers that waited for a load already in flight instead of loading
    /// (in this process, or in another one under distributed single flight).
    coalesced_waits => "cache_coalesced_waits_total";
    /// Reads answered by a cached "absent" entry.
    negative_hits => "cache_negative_hits_total";
    /// Background refreshes started by early refresh.
    refreshes => "cache_refreshes_total";
    /// Stored values that failed to decode.
    decode_errors => "cache_decode_errors_total";
    /// Answers with an expired value because the load failed (fail-safe).
    stale_loader_errors => "cache_stale_answers_total", "loader_error";
    /// Answers with an expired value because the loader passed the soft or
    /// hard timeout (fail-safe).
    stale_loader_timeouts => "cache_stale_answers_total", "loader_timeout";
    /// Answers with the local tier's last copy because Redis could not be read
    /// (fail-safe).
    stale_redis_down => "cache_stale_answers_total", "redis_down";
    /// Loads that went on after their callers had an answer (soft timeout).
    background_loads => "cache_background_loads_total";
    /// Loaded values returned to the caller but not stored: over
    /// `max_value_size`, refused by the codec (fail-open), or loaded across
    /// an invalidation of one of their tags.
    unstored_values => "cache_unstored_values_total";
    /// Reads that found an entry written under a tag that was invalidated
    /// since (a miss; under fail-safe, an expired value for a failed load).
    tag_invalidated_reads => "cache_tag_invalidated_reads_total";
    /// Bytes of the values written to keyspaces with compression, as their
    /// codec wrote them.
    compress_input_bytes => "cache_compress_input_bytes_total";
    /// The same values as stored: compressed, or as they were when smaller
    /// than the keyspace's threshold or when compressing did not shrink them.
    compress_output_bytes => "cache_compress_output_bytes_total";
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

impl Counter {
    /// Adds `amount` (a byte count).
    pub(crate) fn add(&self, amount: usize) {
        let amount = u64::try_from(amount).unwrap_or(u64::MAX);
        (self.field)(&self.keyspace).fetch_add(amount, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.metric.increment(amount);
    }
}

impl std::fmt::Debug for KeyspaceCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyspaceCounters")
            .field("stats", &self.keyspace.snapshot())
            .finish()
    }
}

impl KeyspaceCounters {
    /// The keyspace's figures.
    pub(crate) fn snapshot(&self) -> CacheStats {
        self.keyspace.snapshot()
    }
}

impl Stats {
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

/// The counters of one keyspace's local tier on one handle
/// ([`TypedCache::local_stats`](crate::TypedCache::local_stats)).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// # use std::time::Duration;
/// let cache = cache_core::Cache::memory();
/// let names = cache.keyspace("name").local(10, Duration::from_secs(5)).typed::<u64, String>()?;
/// names.set(&1, &"ada".to_owned()).await?;
/// names.get(&1).await?;
/// names.clear().await?;
/// let stats = names.local_stats().unwrap();
/// assert_eq!((stats.remote_hits, stats.flushes_clear), (1, 1));
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalStats {
    /// Reads answered by the local tier.
    pub hits: u64,
    /// Reads the tier could not answer that found a value in the backend.
    pub remote_hits: u64,
    /// Keys invalidated by writes of other handles or processes.
    pub invalidations: u64,
    /// Flushes because the invalidation channel dropped, missed its
    /// heartbeat or came back.
    pub flushes_channel_down: u64,
    /// Flushes because a cluster's primaries changed.
    pub flushes_topology: u64,
    /// Flushes because the server flushed its keys (FLUSHALL, FLUSHDB).
    pub flushes_server: u64,
    /// Flushes by `clear()`.
    pub flushes_clear: u64,
}
