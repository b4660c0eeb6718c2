//! Leases: a key held by one owner's random token for a limited time, with a
//! fencing token per acquisition. The lock block and the distributed single
//! flight of `get_or_load` are both built on this.

use std::time::Duration;

use crate::backend::ops::lease::{Acquire, Change, Owned};
use crate::cache::Cache;
use crate::error::Result;
use crate::random::random;
use crate::ttl::check_ttl;

/// A lease this process holds.
#[derive(Debug)]
pub(crate) struct Lease {
    cache: Cache,
    key: String,
    token: String,
}

impl Lease {
    /// Takes the lease at the full key `key` for `lease` if nobody holds it;
    /// returns it with its fencing token, or `None` when it is held.
    pub(crate) async fn acquire(
        cache: &Cache,
        key: String,
        lease: Duration,
    ) -> Result<Option<(Lease, u64)>> {
        check_ttl(lease, Some(&key))?;
        // Beside the lease, so that both share a Cluster hash tag.
        let fence_key = format!("{key}:fence");
        let token = format!("{:016x}{:016x}", random(), random());
        let acquire = Acquire {
            key: &key,
            fence_key: &fence_key,
            token: &token,
            lease,
        };
        let fencing_token = cache.backend().run(&acquire).await?;
        Ok(fencing_token.map(|fencing_token| {
            let held = Lease {
                cache: cache.clone(),
                key,
                token,
            };
            (held, fencing_token)
        }))
    }

    /// The lease's full key.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Gives the lease back if this owner still holds it; returns whether it did.
    pub(crate) async fn release(&self) -> Result<bool> {
        self.change(Change::Release).await
    }

    /// Renews the lease to `lease` from now if this owner still holds it.
    pub(crate) async fn extend(&self, lease: Duration) -> Result<bool> {
        check_ttl(lease, Some(&self.key))?;
        self.change(Change::Extend(lease)).await
    }

    async fn change(&self, change: Change) -> Result<bool> {
        let owned = Owned {
            key: &self.key,
            token: &self.token,
            change,
        };
        self.cache.backend().run(&owned).await
    }
}
