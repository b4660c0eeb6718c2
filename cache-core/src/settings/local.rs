//! A local tier's settings: what a keyspace asks of the in-process copy in
//! front of Redis.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::ttl::check_ttl;

/// The longest local TTL: a local copy is meant to be short-lived.
pub const MAX_LOCAL_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// A local tier's size and lifetime: what
/// [`KeyspaceBuilder::local`](crate::KeyspaceBuilder::local) takes and what
/// [`Cacheable::LOCAL`](crate::Cacheable::LOCAL) holds.
///
/// ```
/// use cache_core::LocalSettings;
/// use std::time::Duration;
///
/// const PRICES: LocalSettings = LocalSettings::new(10_000, Duration::from_secs(5));
/// assert_eq!(PRICES.capacity, 10_000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalSettings {
    /// How many values it holds at most.
    pub capacity: u64,
    /// How long a value stays at most (never longer than its Redis TTL).
    pub ttl: Duration,
}

impl LocalSettings {
    /// Settings of `capacity` values kept for `ttl`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let settings = cache_core::LocalSettings::new(100, Duration::from_secs(1));
    /// assert_eq!(settings.ttl, Duration::from_secs(1));
    /// ```
    pub const fn new(capacity: u64, ttl: Duration) -> Self {
        LocalSettings { capacity, ttl }
    }

    pub(crate) fn check(&self, prefix: &str) -> Result<()> {
        if self.capacity == 0 {
            return Err(Error::config(format!(
                "local tier of `{prefix}` needs a capacity of at least 1"
            )));
        }
        check_ttl(self.ttl, None)?;
        if self.ttl > MAX_LOCAL_TTL {
            return Err(Error::InvalidTtl {
                key: None,
                ttl: self.ttl,
                reason: "a local tier's TTL must not exceed cache_core::MAX_LOCAL_TTL",
            });
        }
        Ok(())
    }
}
