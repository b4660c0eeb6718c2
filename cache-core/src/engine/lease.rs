//! Leases: a key held by one owner's random token for a limited time, with a
//! fencing token per acquisition. The lock block and the distributed single
//! flight of `get_or_load` are both built on this. A lease dropped without
//! being released is released in the background, so that a load that ended
//! early (a panic, a cancelled task) does not leave others waiting for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::backend::ops::lease::{Acquire, Change, Owned};
use crate::engine::Engine;
use crate::error::Result;
use crate::random::random;
use crate::ttl::check_ttl;

/// A lease this process holds.
#[derive(Debug)]
pub(crate) struct Lease {
    engine: Arc<Engine>,
    key: String,
    token: String,
    /// Set once `release` was called: nothing is left to do on drop.
    released: AtomicBool,
}

impl Lease {
    /// Takes the lease at the full key `key` for `lease` if nobody holds it;
    /// returns it with its fencing token, or `None` when it is held.
    pub(crate) async fn acquire(
        engine: &Arc<Engine>,
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
        let fencing_token = engine.backend().run(&acquire).await?;
        Ok(fencing_token.map(|fencing_token| {
            let held = Lease {
                engine: Arc::clone(engine),
                key,
                token,
                released: AtomicBool::new(false),
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
        self.released.store(true, Ordering::Release);
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
        self.engine.backend().run(&owned).await
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.released.load(Ordering::Acquire) {
            return;
        }
        // Outside a runtime (one shutting down) the lease runs out instead.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!("a lease was dropped outside a runtime; it runs out");
            return;
        };
        let orphan = Lease {
            engine: Arc::clone(&self.engine),
            key: std::mem::take(&mut self.key),
            token: std::mem::take(&mut self.token),
            released: AtomicBool::new(true),
        };
        runtime.spawn(async move {
            if let Err(error) = orphan.change(Change::Release).await {
                tracing::debug!(%error, "releasing a dropped lease failed; it runs out");
            }
        });
    }
}
