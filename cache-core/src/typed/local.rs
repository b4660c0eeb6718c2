//! The local tier: a bounded in-process copy of recently read values in front
//! of the backend (moka, keyed by full key, holding encoded bytes).
//!
//! Writes through the same `Cache` handle update or drop the local copy at
//! once. Writes from other processes are seen when the local copy expires, so
//! the local TTL is the bound on staleness: keep it short.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::ttl::check_ttl;

/// The longest local TTL: a local copy is meant to be short-lived.
pub const MAX_LOCAL_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Size and lifetime of a keyspace's local tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LocalSettings {
    pub(crate) capacity: u64,
    pub(crate) ttl: Duration,
}

impl LocalSettings {
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

#[derive(Debug)]
pub(crate) struct LocalTier {
    entries: moka::sync::Cache<String, Arc<[u8]>>,
}

impl LocalTier {
    pub(crate) fn new(settings: LocalSettings) -> Self {
        LocalTier {
            entries: moka::sync::Cache::builder()
                .max_capacity(settings.capacity)
                .time_to_live(settings.ttl)
                .build(),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        self.entries.get(key)
    }

    pub(crate) fn put(&self, key: &str, bytes: &[u8]) {
        self.entries.insert(key.to_owned(), Arc::from(bytes));
    }

    pub(crate) fn forget(&self, key: &str) {
        self.entries.invalidate(key);
    }

    /// Entries held (after pending evictions are applied), for tests and stats.
    pub(crate) fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}
