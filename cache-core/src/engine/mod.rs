//! The engine below the views: the state every view of one handle shares
//! (the backend, the loads in flight, the local tiers and the task that keeps
//! them coherent, the counters). `Cache` is its public face; typed views,
//! building blocks and leases hold the engine, never the face.

pub(crate) mod access;
pub(crate) mod aside;
mod bounded;
mod coherence;
pub(crate) mod flight;
pub(crate) mod lease;
pub(crate) mod local;
pub(crate) mod reading;
mod scope;
mod space;
pub(crate) mod stale;
pub(crate) mod tags;

pub(crate) use self::scope::Scope;
pub(crate) use self::space::{KeyspaceSettings, Parts, Since, Space};

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use self::flight::Flights;
use self::local::{Channel, LocalCopy, LocalSettings, LocalTier};
use crate::backend::Backend;
use crate::codec::ValueFormat;
use crate::error::{Error, Result};
use crate::key::KeyLayout;
use crate::stats::{CacheStats, KeyspaceCounters, Stats};

/// Numbers every engine of the process, never twice.
static ENGINES: AtomicU64 = AtomicU64::new(0);

/// A `#[cached]` function's keyspace, kept by the engine for its calls.
type Memo = (Arc<Parts>, ValueFormat);

/// The shared state of one handle and all its clones and views.
pub(crate) struct Engine {
    /// Tells this engine from every other of the process (for memos kept
    /// outside it, which must never apply to another).
    id: u64,
    backend: Backend,
    /// Where plain reads may go (`read_from_replicas`).
    replica_reads: Option<Backend>,
    namespace: Option<String>,
    max_value_size: usize,
    stats: Arc<Stats>,
    flights: Arc<Flights>,
    /// Local tiers by keyspace head, shared by every typed view of that keyspace.
    locals: Arc<coherence::Tiers>,
    /// Whether they may serve: on Redis, while invalidations arrive.
    channel: Arc<Channel>,
    /// Counters by keyspace prefix, shared by the views of that keyspace.
    keyspaces: Mutex<HashMap<String, Arc<KeyspaceCounters>>>,
    /// Tells the invalidation task that a keyspace got a local tier.
    added: Arc<tokio::sync::Notify>,
    /// Set once the invalidation task runs (with the first local tier).
    listening: AtomicBool,
    /// Where the namespace's tag states live.
    tag_layout: KeyLayout,
    /// The local tier of tag states (Redis only), made on first use.
    state_cache: OnceLock<LocalCopy>,
    /// The keyspaces of `#[cached]` functions, by the function's settings
    /// (a `static`'s address) and value type, made once per handle.
    prepared: RwLock<HashMap<(usize, TypeId), Memo>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The handle's own Debug shows its settings; this is for views.
        let namespace = self.namespace.as_deref().unwrap_or_default();
        write!(f, "Engine({namespace:?})")
    }
}

impl Engine {
    pub(crate) fn new(
        backend: Backend,
        namespace: Option<String>,
        max_value_size: usize,
        stats: Arc<Stats>,
    ) -> Self {
        // The memory backend sees every write: its tiers need no channel.
        let live = backend.tracker().is_none();
        let tag_layout = KeyLayout::tag_states(namespace.as_deref());
        Engine {
            id: ENGINES.fetch_add(1, Ordering::Relaxed),
            tag_layout,
            state_cache: OnceLock::new(),
            replica_reads: backend.replica_reads(),
            backend,
            namespace,
            max_value_size,
            stats,
            flights: Arc::default(),
            locals: Arc::default(),
            keyspaces: Mutex::default(),
            added: Arc::default(),
            channel: Arc::new(Channel::new(live)),
            listening: AtomicBool::new(false),
            prepared: RwLock::default(),
        }
    }

    /// The keyspace kept under `site` for values of `format`'s type, made
    /// by `build` the first time.
    ///
    /// # Errors
    /// `build`'s.
    pub(crate) fn prepared_space(
        self: &Arc<Self>,
        site: (usize, TypeId),
        build: impl FnOnce() -> Result<(Space, ValueFormat)>,
    ) -> Result<(Space, ValueFormat)> {
        let known = self.prepared.read().unwrap_or_else(PoisonError::into_inner);
        if let Some((parts, format)) = known.get(&site) {
            return Ok((
                Space::from_parts(Arc::clone(self), Arc::clone(parts)),
                *format,
            ));
        }
        drop(known);
        let (space, format) = build()?;
        let mut known = self
            .prepared
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        known.insert(site, (Arc::clone(space.parts()), format));
        Ok((space, format))
    }

    /// The backend that reads from replicas, with `read_from_replicas`.
    pub(crate) fn replica_reads(&self) -> Option<&Backend> {
        self.replica_reads.as_ref()
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    pub(crate) fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    pub(crate) fn max_value_size(&self) -> usize {
        self.max_value_size
    }

    pub(crate) fn flights(&self) -> &Arc<Flights> {
        &self.flights
    }

    /// The handle's counters: backend errors and timeouts are the handle's,
    /// the rest the sum of its keyspaces'.
    pub(crate) fn stats(&self) -> CacheStats {
        let keyspaces = self
            .keyspaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        keyspaces
            .values()
            .map(|counters| counters.snapshot())
            .fold(self.stats.snapshot(), Stats::add)
    }

    /// The counters of the keyspace `prefix`, made on first use.
    pub(crate) fn keyspace_counters(&self, prefix: &str) -> Arc<KeyspaceCounters> {
        let mut keyspaces = self
            .keyspaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let counters = keyspaces.entry(prefix.to_owned()).or_insert_with(|| {
            let namespace = self.namespace.as_deref();
            Arc::new(KeyspaceCounters::new(namespace, prefix))
        });
        Arc::clone(counters)
    }

    /// The counters of the keyspace `prefix`, if a view of it was made.
    pub(crate) fn keyspace_stats(&self, prefix: &str) -> Option<CacheStats> {
        let keyspaces = self
            .keyspaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        keyspaces.get(prefix).map(|counters| counters.snapshot())
    }

    /// The local tier of `layout`'s keyspace on this handle, made with
    /// `settings` when it is the first. Views of one keyspace share one tier;
    /// when `settings` differ from its, the tier comes with the error that
    /// says so.
    pub(crate) fn local_tier(
        &self,
        layout: &KeyLayout,
        settings: LocalSettings,
    ) -> (Arc<LocalTier>, Result<()>) {
        let mut locals = self.locals.lock().unwrap_or_else(PoisonError::into_inner);
        let mut added = false;
        let tier = locals.entry(layout.head().to_owned()).or_insert_with(|| {
            added = true;
            let counters = self.keyspace_counters(layout.prefix());
            // On Redis it serves once its prefix is tracked; the memory
            // backend's tiers need no tracking.
            let tracked = self.backend.tracker().is_none();
            let channel = Arc::clone(&self.channel);
            Arc::new(LocalTier::new(settings, channel, counters, tracked))
        });
        let existing = tier.settings();
        let agreed = if existing == settings {
            Ok(())
        } else {
            Err(Error::config(format!(
                "keyspace `{}` already has a local tier on this handle with capacity {} and \
                 TTL {:?}; asked for capacity {} and TTL {:?}. Views of one keyspace share one \
                 local tier: give them the same settings",
                layout.prefix(),
                existing.capacity,
                existing.ttl,
                settings.capacity,
                settings.ttl,
            )))
        };
        let tier = Arc::clone(tier);
        drop(locals);
        if added {
            self.added.notify_one();
        }
        self.listen();
        (tier, agreed)
    }

    /// Starts the invalidation task of a Redis handle, once, when there is a
    /// Tokio runtime to run it on (until then its local tiers are bypassed).
    fn listen(&self) {
        let Some(tracker) = self.backend.tracker() else {
            return;
        };
        if self.listening.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.listening.swap(true, Ordering::AcqRel) {
            return;
        }
        runtime.spawn(coherence::run(coherence::Listener {
            tracker,
            tiers: Arc::downgrade(&self.locals),
            channel: Arc::clone(&self.channel),
            namespace: self.namespace.clone().unwrap_or_default(),
            added: Arc::clone(&self.added),
            state_head: self.tag_layout.head().to_owned(),
        }));
    }

    /// Drops `full_key` from this handle's local tiers (a write through the
    /// handle that no typed view saw).
    pub(crate) fn drop_local_copies(&self, full_key: &str) {
        let locals = self.locals.lock().unwrap_or_else(PoisonError::into_inner);
        for tier in locals.values() {
            tier.invalidate(full_key, false);
        }
    }
}
