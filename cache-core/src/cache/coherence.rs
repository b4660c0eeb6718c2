//! Keeping a handle's local tiers coherent: one task per handle listens on
//! its invalidation connections (see `backend::redis::tracking`) and drops
//! the local copies of keys that any client wrote. When a connection drops,
//! misses a heartbeat, or (on a cluster) the primaries change, every tier is
//! flushed and bypassed until the connections are back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc;

use crate::backend::Tracker;
use crate::typed::local::{Channel, Flush, LocalTier};

/// A handle's local tiers, by keyspace.
pub(crate) type Tiers = Mutex<HashMap<String, Arc<LocalTier>>>;

/// How often each invalidation connection is checked with PING (and a
/// cluster's primaries compared): the bound on staleness when a connection
/// is lost without the socket saying so, plus the handle's timeout.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(500);

/// The longest pause between attempts to bring the connections back.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The handle's invalidation task; it ends once the handle is gone.
pub(crate) async fn run(
    tracker: Tracker,
    tiers: Weak<Tiers>,
    channel: Arc<Channel>,
    prefix: Option<String>,
) {
    let mut backoff = HEARTBEAT / 5;
    loop {
        let ended = listen(&tracker, &tiers, &channel, prefix.as_deref()).await;
        let Ended::Down { reason, was_up } = ended else {
            return;
        };
        channel.set_live(false);
        if was_up {
            // Nothing was kept while it was down: only then is there anything to drop.
            let Some(tiers) = tiers.upgrade() else { return };
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
    /// The channel is down; `was_up` when it had come up first.
    Down { reason: Flush, was_up: bool },
}

/// Opens the connections, serves invalidations until something fails.
async fn listen(
    tracker: &Tracker,
    tiers: &Weak<Tiers>,
    channel: &Channel,
    prefix: Option<&str>,
) -> Ended {
    let down = |was_up| Ended::Down {
        reason: Flush::ChannelDown,
        was_up,
    };
    let timeout = tracker.timeout();
    let Ok(Ok(nodes)) = tokio::time::timeout(timeout, tracker.nodes()).await else {
        return down(false);
    };
    let (pushes, mut received) = mpsc::unbounded_channel();
    let mut connections = Vec::with_capacity(nodes.len());
    for node in &nodes {
        let open = tracker.open(node.as_ref(), prefix, pushes.clone());
        match tokio::time::timeout(timeout, open).await {
            Ok(Ok(connection)) => connections.push(connection),
            _ => return down(false),
        }
    }
    drop(pushes);
    channel.set_live(true);
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            push = received.recv() => {
                let Some(push) = push else { return down(true) };
                let Some(tiers) = tiers.upgrade() else { return Ended::HandleGone };
                if !invalidate(&tiers, push) {
                    return down(true);
                }
            }
            _ = heartbeat.tick() => {
                if tiers.strong_count() == 0 {
                    return Ended::HandleGone;
                }
                let ping_cmd = redis::cmd("PING");
                for connection in &mut connections {
                    let ping = ping_cmd.query_async::<()>(connection);
                    if !matches!(tokio::time::timeout(timeout, ping).await, Ok(Ok(()))) {
                        return down(true);
                    }
                }
                if nodes.len() > 1 || nodes.first().is_some_and(Option::is_some) {
                    match tokio::time::timeout(timeout, tracker.nodes()).await {
                        Ok(Ok(now)) if now == nodes => {}
                        Ok(Ok(_)) => return Ended::Down { reason: Flush::Topology, was_up: true },
                        _ => return down(true),
                    }
                }
            }
        }
    }
}

/// Applies one push to every tier; `false` when the connection reported it
/// is gone.
fn invalidate(tiers: &Tiers, push: PushInfo) -> bool {
    match push.kind {
        PushKind::Invalidate => {}
        PushKind::Disconnection => return false,
        _ => return true,
    }
    let tiers: Vec<Arc<LocalTier>> = tiers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .cloned()
        .collect();
    for data in push.data {
        match data {
            Value::Array(keys) => {
                for key in keys {
                    if let Value::BulkString(bytes) = key
                        && let Ok(key) = std::str::from_utf8(&bytes)
                    {
                        tiers.iter().for_each(|tier| tier.invalidate(key, true));
                    }
                }
            }
            // A null list: the server flushed its keys.
            Value::Nil => tiers.iter().for_each(|tier| tier.flush(Flush::Server)),
            _ => {}
        }
    }
    true
}

fn flush_all(tiers: &Tiers, reason: Flush) {
    let tiers = tiers.lock().unwrap_or_else(PoisonError::into_inner);
    for tier in tiers.values() {
        tier.flush(reason);
    }
}
