//! What a cache-aside answer says about itself: fresh, or stale and why.

/// Why an answer came from an expired value (see
/// [`LoadPolicy::fail_safe`](crate::LoadPolicy::fail_safe)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StaleReason {
    /// The loader returned an error or panicked (here or, within the
    /// throttle, in another process).
    LoaderError,
    /// The loader did not answer within the soft or hard timeout.
    LoaderTimeout,
    /// Redis could not be read; the local tier's last copy answered.
    RedisDown,
}

impl StaleReason {
    /// The reason as a metric label: `loader_error`, `loader_timeout`, `redis_down`.
    ///
    /// ```
    /// assert_eq!(cache_core::StaleReason::RedisDown.as_str(), "redis_down");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            StaleReason::LoaderError => "loader_error",
            StaleReason::LoaderTimeout => "loader_timeout",
            StaleReason::RedisDown => "redis_down",
        }
    }
}

/// Whether an answer is current.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Freshness {
    /// From the cache before its expiry, or from the loader just now (a
    /// `None` answer is fresh too: nothing was found).
    Fresh,
    /// An expired value, served for the reason given.
    Stale(StaleReason),
}

impl Freshness {
    /// Whether the answer is stale.
    ///
    /// ```
    /// use cache_core::{Freshness, StaleReason};
    /// assert!(Freshness::Stale(StaleReason::LoaderError).is_stale());
    /// assert!(!Freshness::Fresh.is_stale());
    /// ```
    pub const fn is_stale(self) -> bool {
        matches!(self, Freshness::Stale(_))
    }
}

/// A cache-aside answer with its [`Freshness`], from
/// [`get_or_load_detailed`](crate::TypedCache::get_or_load_detailed).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// use cache_core::{Freshness, Loaded};
///
/// let names = cache_core::Cache::memory().keyspace("name").typed::<u64, String>()?;
/// let loaded: Loaded<String> = names.get_or_load_detailed(&1, || async { None }).await?;
/// assert_eq!(loaded, Loaded { value: None, freshness: Freshness::Fresh });
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded<V> {
    /// The value, or `None` when neither the cache nor the loader has one.
    pub value: Option<V>,
    /// Whether it is current, and if not why it was served.
    pub freshness: Freshness,
}
