//! The local tier: a bounded in-process copy of recently read values in front
//! of the backend (quick_cache, keyed by full key, holding the encoded bytes
//! and, when the read had it, the decoded value).
//!
//! Every write through a handle drops its local copy through one function,
//! [`LocalCopy::written`]. Writes through other handles and processes arrive
//! as invalidations on the handle's [`Channel`]; while it is down the tier is
//! empty and bypassed. A read keeps what it fetched only if no invalidation of
//! its key (or flush) happened while it was out, so an older value never
//! replaces a newer one's invalidation. The check and the insert happen under
//! the lock an invalidation of the key takes, so that nobody ever sees an
//! older value between them.

use std::any::Any;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use super::Engine;
use super::bounded;

pub(crate) use crate::settings::LocalSettings;
use crate::stats::LocalStats;
use crate::stored::tag_header::TagList;

/// Whether local tiers of a handle may serve, shared by all of them: on Redis,
/// only while the invalidation channel is up. Every flush moves the
/// generation on, so that reads begun before it keep nothing.
#[derive(Debug)]
pub(crate) struct Channel {
    live: AtomicBool,
    generation: AtomicU64,
}

impl Channel {
    /// A channel that is `live` from the start (the memory backend, where
    /// every write goes through the handle).
    pub(crate) fn new(live: bool) -> Self {
        Channel {
            live: AtomicBool::new(live),
            generation: AtomicU64::new(0),
        }
    }

    pub(crate) fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Marks the channel up or down; either way, reads under way keep nothing.
    pub(crate) fn set_live(&self, live: bool) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.live.store(live, Ordering::Release);
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// Why a local tier was emptied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flush {
    /// The invalidation channel dropped, missed its heartbeat, or came back.
    ChannelDown,
    /// A cluster's primaries changed.
    Topology,
    /// The server said every key may have changed (FLUSHALL, FLUSHDB).
    Server,
    /// `clear()` of the keyspace.
    Clear,
}

/// The least a local copy is kept short of the TTL Redis reported.
const EXPIRY_MARGIN: Duration = Duration::from_millis(2);

/// How many stripes of invalidation counts a tier keeps: a read compares
/// the count of its key's stripe before and after, and keeps what it read
/// under the stripe's lock.
const STRIPES: usize = 64;

/// A local copy and how long it may live (its Redis TTL caps the tier's),
/// with the value decoded when the read that kept it had it as an `Arc`.
#[derive(Clone)]
struct KeptCopy {
    bytes: Arc<[u8]>,
    /// The tags it was written under: it serves only while they hold.
    tags: Option<Arc<TagList>>,
    value: Option<Arc<dyn Any + Send + Sync>>,
    expires: Instant,
}

/// What a local hit hands out: the decoded value, or bytes to decode (kept
/// by a read that did not decode into an `Arc`, or by a view of another type).
pub(crate) enum Local<V> {
    Decoded(Arc<V>),
    Bytes(Arc<[u8]>),
}

/// The local tier of one keyspace on one handle, shared by its typed views.
pub(crate) struct LocalTier {
    entries: quick_cache::sync::Cache<String, Arc<KeptCopy>>,
    /// Under fail-safe, the last copy of each key, kept through the channel's
    /// outages and topology changes (dropped by writes, invalidations, clear
    /// and server flushes) to answer while Redis cannot be read.
    last: std::sync::OnceLock<quick_cache::sync::Cache<String, Arc<KeptCopy>>>,
    settings: LocalSettings,
    channel: Arc<Channel>,
    stripes: [AtomicU64; STRIPES],
    /// Held by an invalidation while it counts and drops, and by a read
    /// while it checks and keeps: the two never interleave.
    stripe_locks: [Mutex<()>; STRIPES],
    hits: AtomicU64,
    remote_hits: AtomicU64,
    invalidations: AtomicU64,
    flushes: [AtomicU64; 4],
    /// Whether its keyspace's prefix is tracked (on Redis); it serves only then.
    tracked: AtomicBool,
    /// Moved on after every drop of a copy (invalidation, flush): what was
    /// checked against the tier at one count still holds at the same count.
    changes: AtomicU64,
    /// The keyspace's labels for the `metrics` facade.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    counters: Arc<crate::stats::KeyspaceCounters>,
}

impl std::fmt::Debug for LocalTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTier")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl LocalTier {
    pub(crate) fn new(
        settings: LocalSettings,
        channel: Arc<Channel>,
        counters: Arc<crate::stats::KeyspaceCounters>,
        tracked: bool,
    ) -> Self {
        LocalTier {
            entries: bounded::cache(settings.capacity),
            last: std::sync::OnceLock::new(),
            settings,
            stripes: std::array::from_fn(|_| AtomicU64::new(0)),
            stripe_locks: std::array::from_fn(|_| Mutex::new(())),
            hits: AtomicU64::new(0),
            remote_hits: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            flushes: std::array::from_fn(|_| AtomicU64::new(0)),
            tracked: AtomicBool::new(tracked),
            changes: AtomicU64::new(0),
            channel,
            counters,
        }
    }

    /// The settings it was made with.
    pub(crate) fn settings(&self) -> LocalSettings {
        self.settings
    }

    /// Marks its keyspace's prefix tracked: it may serve from now on. Reads
    /// under way keep nothing, since writes before now were not reported.
    pub(crate) fn set_tracked(&self) {
        for stripe in &self.stripes {
            stripe.fetch_add(1, Ordering::AcqRel);
        }
        self.tracked.store(true, Ordering::Release);
    }

    /// Whether it may serve: its prefix tracked and the channel up.
    fn serves(&self) -> bool {
        self.channel.is_live() && self.tracked.load(Ordering::Acquire)
    }

    /// The entry at `key` unless it has expired (then it is dropped).
    fn live(&self, key: &str) -> Option<Arc<KeptCopy>> {
        let entry = self.entries.get(key)?;
        if entry.expires <= Instant::now() {
            self.entries.remove(key);
            return None;
        }
        Some(entry)
    }

    /// The entry at `key` if the tier may serve it: live, and its tags
    /// known to hold (one known to have changed is dropped; one whose tags
    /// are not known is left to a backend read).
    fn serving(&self, key: &str, engine: &Engine) -> Option<Arc<KeptCopy>> {
        if !self.serves() {
            return None;
        }
        let entry = self.live(key)?;
        if let Some(tags) = &entry.tags {
            match engine.tags_known_valid(tags) {
                Some(true) => {}
                Some(false) => {
                    self.entries.remove(key);
                    return None;
                }
                None => return None,
            }
        }
        Some(entry)
    }

    fn stripe_at(key: &str) -> usize {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
        usize::try_from(hash % STRIPES as u64)
            .unwrap_or_default()
            .min(STRIPES - 1)
    }

    fn stripe(&self, key: &str) -> &AtomicU64 {
        &self.stripes[Self::stripe_at(key)]
    }

    fn lock_stripe(&self, at: usize) -> MutexGuard<'_, ()> {
        // The lock guards no data, so a poisoned one is as good as any.
        self.stripe_locks[at]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops the copy of `key`: a write through this handle, or an
    /// invalidation from the channel (`remote`). Reads under way keep nothing.
    pub(crate) fn invalidate(&self, key: &str, remote: bool) {
        let at = Self::stripe_at(key);
        {
            let _counting = self.lock_stripe(at);
            self.stripes[at].fetch_add(1, Ordering::AcqRel);
            self.entries.remove(key);
            if let Some(last) = self.last.get() {
                last.remove(key);
            }
            self.changes.fetch_add(1, Ordering::AcqRel);
        }
        if remote {
            self.invalidations.fetch_add(1, Ordering::Relaxed);
            #[cfg(feature = "metrics")]
            self.counters.labels.invalidated();
        }
    }

    /// Drops every copy, counting why.
    pub(crate) fn flush(&self, reason: Flush) {
        for (at, stripe) in self.stripes.iter().enumerate() {
            // A read that checked its ticket before this keeps its value
            // before this count moves: the clear below drops it.
            let _counting = self.lock_stripe(at);
            stripe.fetch_add(1, Ordering::AcqRel);
        }
        self.entries.clear();
        self.changes.fetch_add(1, Ordering::AcqRel);
        // What Redis held before an outage or a topology change is still the
        // best answer while it cannot be read; after a clear it is not.
        if matches!(reason, Flush::Clear | Flush::Server)
            && let Some(last) = self.last.get()
        {
            last.clear();
        }
        let (at, _name) = match reason {
            Flush::ChannelDown => (0, "channel_down"),
            Flush::Topology => (1, "topology"),
            Flush::Server => (2, "server_flush"),
            Flush::Clear => (3, "clear"),
        };
        self.flushes[at].fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.counters.labels.flushed(_name);
    }

    fn stats(&self) -> LocalStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        LocalStats {
            hits: read(&self.hits),
            remote_hits: read(&self.remote_hits),
            invalidations: read(&self.invalidations),
            flushes_channel_down: read(&self.flushes[0]),
            flushes_topology: read(&self.flushes[1]),
            flushes_server: read(&self.flushes[2]),
            flushes_clear: read(&self.flushes[3]),
        }
    }
}

/// Where a read stood before it went to the backend: what it fetches is
/// kept only if nothing invalidated its key meanwhile.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket {
    generation: u64,
    stripe: u64,
    /// When the read was sent: a remaining TTL the server reports counts
    /// from a moment after this, never before.
    sent: Instant,
}

/// A typed view's way to its keyspace's local tier, if it has one. Reads go
/// through [`get`](Self::get), [`ticket`](Self::ticket) and
/// [`fetched`](Self::fetched); every write, delete, take, expire, batch write
/// and load write-back goes through [`written`](Self::written).
#[derive(Clone, Debug, Default)]
pub(crate) struct LocalCopy(Option<Arc<LocalTier>>);

impl LocalCopy {
    pub(crate) fn new(tier: Option<Arc<LocalTier>>) -> Self {
        LocalCopy(tier)
    }

    pub(crate) fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// The local copy of `key`, if there is one, the tier may serve, and
    /// its tags still hold as far as `engine` knows without a backend call.
    pub(crate) fn get(&self, key: &str, engine: &Engine) -> Option<Arc<[u8]>> {
        let tier = self.0.as_ref()?;
        let entry = tier.serving(key, engine)?;
        tier.hits.fetch_add(1, Ordering::Relaxed);
        Some(Arc::clone(&entry.bytes))
    }

    /// Where the tier stands, while it serves: the same figure later means
    /// no copy was dropped and the channel stayed up meanwhile.
    pub(crate) fn version(&self) -> Option<u64> {
        let tier = self.0.as_ref()?;
        let generation = tier.channel.generation();
        let changes = tier.changes.load(Ordering::Acquire);
        tier.serves().then(|| changes.wrapping_add(generation))
    }

    /// The copy of `key` as of `now`, if the tier may serve: for the state
    /// cache, whose entries carry no tags and whose hits are not counted.
    pub(crate) fn get_as_of(&self, key: &str, now: Instant) -> Option<Arc<[u8]>> {
        let tier = self.0.as_ref()?;
        if !tier.serves() {
            return None;
        }
        let entry = tier.entries.get(key)?;
        (entry.expires > now).then(|| Arc::clone(&entry.bytes))
    }

    /// The local copy of `key` as a `V` if it is kept decoded, else its
    /// bytes; `None` when there is none or the tier may not serve.
    pub(crate) fn get_shared<V: Any + Send + Sync>(
        &self,
        key: &str,
        engine: &Engine,
    ) -> Option<Local<V>> {
        let tier = self.0.as_ref()?;
        let entry = tier.serving(key, engine)?;
        tier.hits.fetch_add(1, Ordering::Relaxed);
        let decoded = entry
            .value
            .clone()
            .and_then(|value| value.downcast::<V>().ok());
        Some(match decoded {
            Some(value) => Local::Decoded(value),
            None => Local::Bytes(Arc::clone(&entry.bytes)),
        })
    }

    /// Taken before a backend read of `key`, for [`fetched`](Self::fetched).
    pub(crate) fn ticket(&self, key: &str) -> Ticket {
        match &self.0 {
            Some(tier) => Ticket {
                generation: tier.channel.generation(),
                stripe: tier.stripe(key).load(Ordering::Acquire),
                sent: Instant::now(),
            },
            None => Ticket {
                generation: 0,
                stripe: 0,
                sent: Instant::now(),
            },
        }
    }

    /// Keeps what a backend read that began at `ticket` found at `key`, for
    /// the tier's TTL or the value's remaining `ttl` if shorter; nothing if
    /// the key was invalidated (or the tier flushed) since the ticket.
    pub(crate) fn fetched(&self, key: &str, bytes: &[u8], ttl: crate::Ttl, ticket: Ticket) {
        let tags = None;
        self.fetched_decoded(key, (bytes, tags), None, ttl, ticket);
    }

    /// [`fetched`](Self::fetched) of bytes written under `tags`, keeping
    /// `value` (the bytes decoded) too.
    pub(crate) fn fetched_decoded(
        &self,
        key: &str,
        (bytes, tags): (&[u8], Option<Arc<TagList>>),
        value: Option<Arc<dyn Any + Send + Sync>>,
        ttl: crate::Ttl,
        ticket: Ticket,
    ) {
        let Some(tier) = &self.0 else { return };
        tier.remote_hits.fetch_add(1, Ordering::Relaxed);
        let ttl = match ttl {
            // Counted from when the read was sent, less a margin for the
            // server's millisecond rounding and its cached clock (a busy
            // server answers PTTL from a time taken a little earlier): the
            // copy goes no later than the value.
            crate::Ttl::Expires(left) => left
                .saturating_sub(EXPIRY_MARGIN.max(left / 50))
                .min(tier.settings.ttl),
            crate::Ttl::Persistent => tier.settings.ttl,
            crate::Ttl::Missing => return,
        };
        if ttl.is_zero() {
            return;
        }
        let entry = Arc::new(KeptCopy {
            bytes: Arc::from(bytes),
            tags,
            value,
            expires: ticket.sent + ttl,
        });
        let at = LocalTier::stripe_at(key);
        let _checking = tier.lock_stripe(at);
        let unchanged = tier.serves()
            && tier.channel.generation() == ticket.generation
            && tier.stripes[at].load(Ordering::Acquire) == ticket.stripe;
        if unchanged {
            if let Some(last) = tier.last.get() {
                last.insert(key.to_owned(), Arc::clone(&entry));
            }
            tier.entries.insert(key.to_owned(), entry);
        }
    }

    /// From now on, keeps the last copy of each key for
    /// [`last_copy`](Self::last_copy) (a fail-safe view of the keyspace).
    pub(crate) fn keep_last_copies(&self) {
        if let Some(tier) = &self.0 {
            tier.last
                .get_or_init(|| bounded::cache(tier.settings.capacity));
        }
    }

    /// The last copy of `key`, if it expired less than `window` ago: what a
    /// fail-safe read answers with while Redis cannot be read.
    pub(crate) fn last_copy(&self, key: &str, window: Duration) -> Option<Arc<[u8]>> {
        let entry = self.0.as_ref()?.last.get()?.get(key)?;
        let usable = entry.expires.checked_add(window)? > Instant::now();
        usable.then(|| Arc::clone(&entry.bytes))
    }

    /// Before and after a write at `key` through this handle: drops the local
    /// copy (the next read fetches what the backend holds).
    pub(crate) fn written(&self, key: &str) {
        if let Some(tier) = &self.0 {
            tier.invalidate(key, false);
        }
    }

    /// Runs `write` at `keys` with their local copies dropped before and
    /// after: a read racing the write keeps nothing, and a failed write
    /// leaves nothing stale behind.
    ///
    /// The copies are dropped before when it is called (every caller awaits
    /// it at once), and after when it is done. Not an `async fn`, which
    /// would hold `write` twice (a write's future is kilobytes, and copied
    /// each time it moves).
    pub(crate) fn around<'a, T>(
        &'a self,
        keys: &'a [&'a str],
        write: impl Future<Output = T> + 'a,
    ) -> impl Future<Output = T> + 'a {
        for key in keys {
            self.written(key);
        }
        write.map(move |done| {
            for key in keys {
                self.written(key);
            }
            done
        })
    }

    /// Drops every local copy (after a clear of the whole keyspace).
    pub(crate) fn clear(&self) {
        if let Some(tier) = &self.0 {
            tier.flush(Flush::Clear);
        }
    }

    /// How many values it holds; `None` without a tier.
    pub(crate) fn len(&self) -> Option<u64> {
        self.0
            .as_ref()
            .map(|tier| u64::try_from(tier.entries.len()).unwrap_or(u64::MAX))
    }

    /// Whether the tier may serve now; `None` without a tier.
    pub(crate) fn is_live(&self) -> Option<bool> {
        self.0.as_ref().map(|tier| tier.serves())
    }

    /// Its counters; `None` without a tier.
    pub(crate) fn stats(&self) -> Option<LocalStats> {
        self.0.as_ref().map(|tier| tier.stats())
    }
}
