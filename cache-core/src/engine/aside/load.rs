//! The flight's own task: read again if a flight finished meanwhile, claim
//! the distributed leases (or wait for the process that holds one), call the
//! loader once, encode, store, release, and retire the flights before
//! answering them.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use serde::Serialize;

use super::Loader;
use super::read::{Stored, reread};
use crate::codec::ValueFormat;
use crate::engine::Space;
use crate::engine::flight::{self, Failure, FlightGuard, Outcome};
use crate::engine::policy::DistributedFlight;
use crate::error::BoxError;
use crate::lease::Lease;
use crate::stats::bump;

/// A key this flight loads: its position in the loader's list, its flight,
/// and whether what Redis holds did not decode (to replace or remove it).
pub(super) struct Leader {
    pub(super) index: usize,
    pub(super) flight: FlightGuard,
    pub(super) heal: bool,
}

impl Leader {
    fn key(&self) -> &str {
        self.flight.key()
    }
}

/// How a flight goes: Redis failed on the way (`degraded`: answer before the
/// write-back, which is then best effort, and make no more Redis calls
/// before answering), and whether to read again first.
#[derive(Clone, Copy)]
pub(super) struct Course {
    pub(super) degraded: bool,
    pub(super) reread: bool,
}

/// The outcome of a reread for a leader: `None` while nothing is stored.
fn found(stored: Stored) -> Option<Option<Vec<u8>>> {
    match stored {
        Stored::Value(bytes, _) => Some(Some(bytes)),
        Stored::Absent => Some(None),
        Stored::Nothing => None,
    }
}

/// The flight's task, from the reread to the answers.
pub(super) async fn fly<V, L>(
    space: Space,
    format: ValueFormat,
    leaders: Vec<Leader>,
    loader: L,
    course: Course,
) where
    V: Serialize,
    L: Loader<V>,
{
    let leaders = match course.reread {
        true => not_stored_meanwhile(&space, leaders).await,
        false => leaders,
    };
    if leaders.is_empty() {
        return;
    }
    let Some(policy) = space.load.distributed.filter(|_| !course.degraded) else {
        return load_and_store(&space, format, leaders, loader, course.degraded, Vec::new()).await;
    };
    let (claims, leases, degraded) = claim(&space, &leaders, policy).await;
    let mut mine = Vec::new();
    let mut elsewhere = Vec::new();
    for (leader, claim) in leaders.into_iter().zip(claims) {
        match claim {
            Claim::Load => mine.push(leader),
            Claim::Elsewhere => elsewhere.push(leader),
            Claim::Found(outcome) => leader.flight.complete(Ok(outcome)),
        }
    }
    if mine.is_empty() {
        // Nothing of ours to load: wait, then load what was not stored in time.
        let (late, failed) = await_others(&space, elsewhere, policy.wait).await;
        if !late.is_empty() {
            load_and_store(&space, format, late, loader, degraded || failed, leases).await;
        }
        return;
    }
    let theirs = async {
        let (late, _) = await_others(&space, elsewhere, policy.wait).await;
        // The loader runs once, already for our own keys: a key another
        // process still holds is not loaded a second time.
        let failure: Failure = Arc::from(BoxError::from(format!(
            "another process holds the load lease and stored no value within {:?}",
            policy.wait
        )));
        let late = late
            .into_iter()
            .map(|l| (l.flight, Err(Arc::clone(&failure))));
        flight::complete_all(late);
    };
    let ours = load_and_store(&space, format, mine, loader, degraded, leases);
    futures_util::future::join(ours, theirs).await;
}

/// Answers the leaders whose key another flight stored while the first read
/// was out; returns the others (all of them if the read fails).
async fn not_stored_meanwhile(space: &Space, leaders: Vec<Leader>) -> Vec<Leader> {
    let keys: Vec<&str> = leaders.iter().map(Leader::key).collect();
    let backend = space.engine.backend();
    let stored = match backend.within(reread(space, &keys)).await {
        Ok(stored) if stored.len() == leaders.len() => stored,
        _ => return leaders,
    };
    let mut missing = Vec::new();
    let mut answered = Vec::new();
    for (leader, stored) in leaders.into_iter().zip(stored) {
        match found(stored).filter(|_| !leader.heal) {
            Some(outcome) => {
                bump(&space.counters.coalesced_waits);
                answered.push((leader.flight, Ok(outcome)));
            }
            None => missing.push(leader),
        }
    }
    flight::complete_all(answered);
    missing
}

/// Who loads a key of a distributed flight.
enum Claim {
    /// This process: it holds the lease, or Redis failed.
    Load,
    /// Another process holds the lease: wait for its value.
    Elsewhere,
    /// Stored meanwhile: a value, or `None` for a cached absence.
    Found(Option<Vec<u8>>),
}

/// Takes each leader's lease, then reads the keys once more: another process
/// may have stored them since our miss. Returns each leader's claim, the
/// leases held (to release after the write-back), and whether Redis failed
/// (then every key is this process's to load).
async fn claim(
    space: &Space,
    leaders: &[Leader],
    policy: DistributedFlight,
) -> (Vec<Claim>, Vec<Lease>, bool) {
    let acquire = leaders.iter().map(|leader| {
        let key = space.lock.tagged_key_of_full(leader.key(), &space.layout);
        Lease::acquire(&space.engine, key, policy.lease)
    });
    let mut failed = false;
    let mut held = Vec::with_capacity(leaders.len());
    let mut claims = Vec::with_capacity(leaders.len());
    for acquired in futures_util::future::join_all(acquire).await {
        let (claim, lease) = match acquired {
            Ok(Some((lease, _))) => (Claim::Load, Some(lease)),
            Ok(None) => (Claim::Elsewhere, None),
            Err(_) => {
                failed = true;
                (Claim::Load, None)
            }
        };
        claims.push(claim);
        held.push(lease);
    }
    let keys: Vec<&str> = leaders.iter().map(Leader::key).collect();
    let stored = match failed {
        true => None,
        false => reread(space, &keys).await.ok(),
    };
    let Some(stored) = stored else {
        // Without Redis the leases are moot: load every key.
        let claims = claims.into_iter().map(|_| Claim::Load).collect();
        return (claims, held.into_iter().flatten().collect(), true);
    };
    let mut leases = Vec::new();
    let mut moot = Vec::new();
    for ((claim, lease), stored) in claims.iter_mut().zip(held).zip(stored) {
        match found(stored) {
            Some(outcome) => {
                bump(&space.counters.coalesced_waits);
                *claim = Claim::Found(outcome);
                moot.extend(lease);
            }
            None => leases.extend(lease),
        }
    }
    futures_util::future::join_all(moot.iter().map(Lease::release)).await;
    (claims, leases, false)
}

/// Polls Redis for the keys other processes are loading, answering each as
/// it is stored, for up to `wait`. Returns the keys still missing, and
/// whether Redis failed (those not yet found are then returned at once).
async fn await_others(
    space: &Space,
    mut pending: Vec<Leader>,
    wait: Duration,
) -> (Vec<Leader>, bool) {
    let deadline = tokio::time::Instant::now() + wait;
    while !pending.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let keys: Vec<&str> = pending.iter().map(Leader::key).collect();
        let Ok(stored) = reread(space, &keys).await else {
            return (pending, true);
        };
        let mut still = Vec::with_capacity(pending.len());
        for (leader, stored) in pending.into_iter().zip(stored) {
            match found(stored) {
                Some(outcome) => {
                    bump(&space.counters.coalesced_waits);
                    leader.flight.complete(Ok(outcome));
                }
                None => still.push(leader),
            }
        }
        pending = still;
    }
    (pending, false)
}

/// Calls the loader for `mine`, writes back what it found, releases
/// `leases`, then retires every key's flight and answers it. Degraded
/// (Redis failed), it answers first and writes back afterwards.
async fn load_and_store<V: Serialize, L: Loader<V>>(
    space: &Space,
    format: ValueFormat,
    mine: Vec<Leader>,
    loader: L,
    degraded: bool,
    leases: Vec<Lease>,
) {
    bump(&space.counters.loads);
    let asked: Vec<usize> = mine.iter().map(|leader| leader.index).collect();
    #[cfg(feature = "metrics")]
    let started = std::time::Instant::now();
    // A panic is a failed load like an error: every key of the call is
    // retired before any is answered, as for any other outcome.
    let loading = std::panic::AssertUnwindSafe(loader(asked)).catch_unwind();
    let loaded = loading
        .await
        .unwrap_or_else(|_| Err("the loader panicked".into()));
    #[cfg(feature = "metrics")]
    space.counters.labels.load_took(started.elapsed());
    let outcomes: Vec<Outcome> = match loaded {
        Ok(found) => encode(space, format, &mine, found),
        Err(error) => {
            bump(&space.counters.load_errors);
            let failure: Failure = Arc::from(error);
            mine.iter().map(|_| Err(Arc::clone(&failure))).collect()
        }
    };
    let (keys, flights): (Vec<(String, bool)>, Vec<FlightGuard>) = mine
        .into_iter()
        .map(|leader| ((leader.key().to_owned(), leader.heal), leader.flight))
        .unzip();
    let answers = flights.into_iter().zip(outcomes.iter().cloned());
    let answers = match degraded {
        true => {
            flight::complete_all(answers);
            None
        }
        false => Some(answers),
    };
    super::store::store(space, &keys, &outcomes).await;
    futures_util::future::join_all(leases.iter().map(Lease::release)).await;
    // Stored first, so that a caller's next read finds what it was given.
    if let Some(answers) = answers {
        flight::complete_all(answers);
    }
}

/// Each leader's outcome: its value encoded (checked as `set` checks), or
/// absent; values for positions nobody asked for are ignored.
fn encode<V: Serialize>(
    space: &Space,
    format: ValueFormat,
    mine: &[Leader],
    found: Vec<(usize, V)>,
) -> Vec<Outcome> {
    let max = space.engine.max_value_size();
    // By position; positions this flight did not ask for are dropped.
    let size = mine
        .iter()
        .map(|leader| leader.index + 1)
        .max()
        .unwrap_or(0);
    let mut by_index: Vec<Option<V>> = (0..size).map(|_| None).collect();
    for (index, value) in found {
        if let Some(slot) = by_index.get_mut(index) {
            *slot = Some(value);
        }
    }
    mine.iter()
        .map(
            |leader| match by_index.get_mut(leader.index).and_then(Option::take) {
                Some(value) => format
                    .encode_for(leader.key(), &value, max)
                    .map(Some)
                    .map_err(|error| Arc::new(error) as Failure),
                None => Ok(None),
            },
        )
        .collect()
}
