//! Keeping a handle's local tiers coherent: one task per handle listens on
//! its invalidation connections (see `backend::redis::tracking`), which track
//! the keyspaces with a local tier, and drops the local copies of keys that
//! any client wrote. A keyspace's tier serves once its prefix is tracked. When a connection drops,
//! misses a heartbeat, or (on a cluster) the primaries change, every tier is
//! flushed and bypassed until the connections are back. A server that
//! refuses tracking (some managed services) leaves the tiers serving
//! without invalidations: each copy then lives at most the tier's TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::local::{Channel, Flush, LocalTier};
use crate::backend::{Event, Health, Opened, Tracker};

/// A handle's local tiers, by keyspace.
pub(crate) type Tiers = Mutex<HashMap<String, Arc<LocalTier>>>;

/// How often each invalidation connection is checked with PING (and a
/// cluster's primaries compared): the bound on staleness when a connection
/// is lost without the socket saying so, plus the handle's timeout.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(500);

/// The longest pause between attempts to bring the connections back.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What the invalidation task of a handle works with.
pub(crate) struct Listener {
    pub(crate) tracker: Tracker,
    pub(crate) tiers: Weak<Tiers>,
    pub(crate) channel: Arc<Channel>,
    /// Names the connections (`cache-core-invalidations:<namespace>:`).
    pub(crate) namespace: String,
    /// Told when a keyspace gets a local tier: its prefix is then tracked too.
    pub(crate) added: Arc<Notify>,
    /// The head of the tag states' tier, which never serves untracked: a
    /// tag's invalidation by another process must be seen at once.
    pub(crate) state_head: String,
}

/// The handle's invalidation task; it ends once the handle is gone.
pub(crate) async fn run(listener: Listener) {
    let mut backoff = HEARTBEAT / 5;
    loop {
        let (reason, was_up) = match listen(&listener).await {
            Ended::Down { reason, was_up } => (reason, was_up),
            Ended::Refused => return untracked_mode(&listener).await,
            Ended::HandleGone => return,
        };
        listener.channel.set_live(false);
        if was_up {
            // Nothing was kept while it was down: only then is there anything to drop.
            let Some(tiers) = listener.tiers.upgrade() else {
                return;
            };
            flush_all(&tiers, reason);
            backoff = HEARTBEAT / 5;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

enum Ended {
    /// Every handle clone is dropped.
    HandleGone,
    /// The server does not allow tracking.
    Refused,
    /// The channel is down; `was_up` when it had come up first.
    Down { reason: Flush, was_up: bool },
}

/// The keyspace heads of the handle's tiers not in `tracked`, with their tiers.
fn untracked(tiers: &Tiers, tracked: &[String]) -> Vec<(String, Arc<LocalTier>)> {
    let tiers = tiers.lock().unwrap_or_else(PoisonError::into_inner);
    let mut new: Vec<(String, Arc<LocalTier>)> = tiers
        .iter()
        .filter(|(head, _)| !tracked.contains(head))
        .map(|(head, tier)| (head.clone(), Arc::clone(tier)))
        .collect();
    new.sort_by(|a, b| a.0.cmp(&b.0));
    new
}

/// Opens the connections, serves invalidations until something fails.
async fn listen(listener: &Listener) -> Ended {
    let Listener {
        tracker,
        tiers,
        channel,
        namespace,
        added,
        ..
    } = listener;
    let down = |was_up| Ended::Down {
        reason: Flush::ChannelDown,
        was_up,
    };
    let Some(handle) = tiers.upgrade() else {
        return Ended::HandleGone;
    };
    let mut tracked: Vec<String> = Vec::new();
    let mut serving = untracked(&handle, &tracked);
    drop(handle);
    let heads: Vec<String> = serving.iter().map(|(head, _)| head.clone()).collect();
    let mut session = match tracker.session(namespace, &heads).await {
        Opened::Session(session) => session,
        Opened::Refused => return Ended::Refused,
        Opened::Unreachable => return down(false),
    };
    tracked.extend(heads);
    serving.iter().for_each(|(_, tier)| tier.set_tracked());
    channel.set_live(true);
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = session.event() => {
                let Some(tiers) = tiers.upgrade() else { return Ended::HandleGone };
                match event {
                    Event::Invalidate(keys) => invalidate(&tiers, &keys),
                    Event::FlushAll => flush_all(&tiers, Flush::Server),
                    Event::Down => return down(true),
                    Event::Other => {}
                }
            }
            () = added.notified() => {
                let Some(handle) = tiers.upgrade() else { return Ended::HandleGone };
                serving = untracked(&handle, &tracked);
                drop(handle);
                let heads: Vec<String> = serving.iter().map(|(head, _)| head.clone()).collect();
                if heads.is_empty() {
                    continue;
                }
                if !session.track(&heads).await {
                    return down(true);
                }
                tracked.extend(heads);
                serving.iter().for_each(|(_, tier)| tier.set_tracked());
            }
            _ = heartbeat.tick() => {
                if tiers.strong_count() == 0 {
                    return Ended::HandleGone;
                }
                match session.check().await {
                    Health::Up => {}
                    Health::Down => return down(true),
                    Health::Topology => return Ended::Down { reason: Flush::Topology, was_up: true },
                }
            }
        }
    }
}

/// Tracking refused: every tier but the tag states' serves without
/// invalidations (a copy lives at most its tier's TTL, and writes through
/// this handle still drop it), until the handle is gone.
async fn untracked_mode(listener: &Listener) {
    tracing::warn!(
        namespace = listener.namespace,
        "the server refuses client tracking: local tiers serve without invalidations, \
         each copy for at most its tier's TTL"
    );
    #[cfg(feature = "metrics")]
    metrics::counter!("cache_tracking_refused_total", "namespace" => listener.namespace.clone())
        .increment(1);
    let mut serving: Vec<String> = Vec::new();
    listener.channel.set_live(true);
    loop {
        let Some(handle) = listener.tiers.upgrade() else {
            return;
        };
        for (head, tier) in untracked(&handle, &serving) {
            if head != listener.state_head {
                tier.set_tracked();
            }
            serving.push(head);
        }
        drop(handle);
        // Woken for a new tier; now and then, to see whether the handle is gone.
        let _ = tokio::time::timeout(MAX_BACKOFF, listener.added.notified()).await;
    }
}

/// Drops the local copies of `keys` from every tier.
fn invalidate(tiers: &Tiers, keys: &[String]) {
    let tiers: Vec<Arc<LocalTier>> = tiers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .cloned()
        .collect();
    for key in keys {
        tiers.iter().for_each(|tier| tier.invalidate(key, true));
    }
}

fn flush_all(tiers: &Tiers, reason: Flush) {
    let tiers = tiers.lock().unwrap_or_else(PoisonError::into_inner);
    for tier in tiers.values() {
        tier.flush(reason);
    }
}
