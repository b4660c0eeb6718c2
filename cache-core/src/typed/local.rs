//! The local tier: a bounded in-process copy of recently read values in front
//! of the backend (moka, keyed by full key, holding encoded bytes).
//!
//! Every write through the same `Cache` handle reaches the local copy through
//! one function, [`LocalCopy::written`], which updates or drops it at once. Writes from other processes are seen when the local copy expires, so
//! the local TTL is the bound on staleness: keep it short.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::ttl::check_ttl;

/// The longest local TTL: a local copy is meant to be short-lived.
pub const MAX_LOCAL_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Size and lifetime of a keyspace's local tier.
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
    /// How long a value stays (the bound on staleness for writes by others).
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

/// The local tier of one keyspace on one handle, shared by its typed views.
#[derive(Debug)]
pub(crate) struct LocalTier {
    entries: moka::sync::Cache<String, Arc<[u8]>>,
    settings: LocalSettings,
}

impl LocalTier {
    pub(crate) fn new(settings: LocalSettings) -> Self {
        LocalTier {
            entries: moka::sync::Cache::builder()
                .max_capacity(settings.capacity)
                .time_to_live(settings.ttl)
                .build(),
            settings,
        }
    }

    /// The settings it was made with.
    pub(crate) fn settings(&self) -> LocalSettings {
        self.settings
    }
}

/// A typed view's way to its keyspace's local tier, if it has one. Reads go
/// through [`get`](Self::get) and [`fetched`](Self::fetched); every write,
/// delete, take, expire, batch write and load write-back goes through
/// [`written`](Self::written).
#[derive(Clone, Debug, Default)]
pub(crate) struct LocalCopy(Option<Arc<LocalTier>>);

impl LocalCopy {
    pub(crate) fn new(tier: Option<Arc<LocalTier>>) -> Self {
        LocalCopy(tier)
    }

    pub(crate) fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// The local copy of `key`, if there is one.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        self.0.as_ref().and_then(|tier| tier.entries.get(key))
    }

    /// Keeps what a backend read found at `key`.
    pub(crate) fn fetched(&self, key: &str, bytes: &[u8]) {
        if let Some(tier) = &self.0 {
            tier.entries.insert(key.to_owned(), Arc::from(bytes));
        }
    }

    /// After a write at `key` through this handle: `Some(bytes)` when the
    /// backend now holds exactly those bytes, `None` when the value changed,
    /// went away or is unknown (the local copy is dropped). Called before the
    /// write with `None`, so that a failed write leaves nothing stale behind.
    pub(crate) fn written(&self, key: &str, now: Option<&[u8]>) {
        let Some(tier) = &self.0 else { return };
        match now {
            Some(bytes) => tier.entries.insert(key.to_owned(), Arc::from(bytes)),
            None => tier.entries.invalidate(key),
        }
    }

    /// Drops every local copy (after a clear of the whole keyspace).
    pub(crate) fn clear(&self) {
        if let Some(tier) = &self.0 {
            tier.entries.invalidate_all();
        }
    }

    /// How many values it holds; `None` without a tier.
    pub(crate) fn len(&self) -> Option<u64> {
        self.0.as_ref().map(|tier| {
            tier.entries.run_pending_tasks();
            tier.entries.entry_count()
        })
    }
}
