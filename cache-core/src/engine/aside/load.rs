//! The flight's own task: read again if a flight finished meanwhile, claim
//! the distributed leases (or wait for the process that holds one), call the
//! loader once, encode, store, release, and retire the flights before
//! answering them.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::join_all;
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
/// whether what Redis holds did not decode (to replace or remove it), and
/// its distributed lease once taken (released after the write-back, or in
/// the background when the key is answered otherwise).
pub(super) struct Leader {
    pub(super) index: usize,
    pub(super) flight: FlightGuard,
    pub(super) heal: bool,
    pub(super) lease: Option<Lease>,
}

impl Leader {
    pub(super) fn new(index: usize, flight: FlightGuard, heal: bool) -> Self {
        let lease = None;
        Leader {
            index,
            flight,
            heal,
            lease,
        }
    }

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
    let space = &space;
    let leaders = match course.reread {
        // Not the keys to heal: what is there is what did not decode.
        true => match space
            .backend()
            .within(answer_stored(space, leaders, true))
            .await
        {
            Ok(left) | Err(left) => left,
        },
        false => leaders,
    };
    let policy = space.settings.load.distributed.filter(|_| !course.degraded);
    let (Some(policy), false) = (policy, leaders.is_empty()) else {
        return load_and_store(space, format, leaders, loader, course.degraded).await;
    };
    let (mine, elsewhere, degraded) = claim(space, leaders, policy).await;
    if mine.is_empty() {
        // Nothing of ours to load: wait, then load what was not stored in time.
        let (late, failed) = await_others(space, elsewhere, policy.wait).await;
        return load_and_store(space, format, late, loader, degraded || failed).await;
    }
    let theirs = async {
        let (late, _) = await_others(space, elsewhere, policy.wait).await;
        // The loader runs once, already for our own keys: a key another
        // process still holds is not loaded a second time.
        let failure: Failure = Arc::from(BoxError::from(format!(
            "another process holds the load lease and stored no value within {:?}",
            policy.wait
        )));
        flight::complete_all(
            late.into_iter()
                .map(|l| (l.flight, Err(Arc::clone(&failure)))),
        );
    };
    futures_util::future::join(
        load_and_store(space, format, mine, loader, degraded),
        theirs,
    )
    .await;
}

/// Reads `pending` again and answers each key now stored (a value or a
/// cached absence; with `skip_heal`, not a key whose value did not decode);
/// returns the rest, or all of them when Redis failed (`Err`).
async fn answer_stored(
    space: &Space,
    pending: Vec<Leader>,
    skip_heal: bool,
) -> Result<Vec<Leader>, Vec<Leader>> {
    let keys: Vec<&str> = pending.iter().map(Leader::key).collect();
    let stored = match reread(space, &keys).await {
        Ok(stored) if stored.len() == pending.len() => stored,
        _ => return Err(pending),
    };
    let mut left = Vec::with_capacity(pending.len());
    let mut answered = Vec::new();
    for (leader, stored) in pending.into_iter().zip(stored) {
        let outcome = match stored {
            _ if skip_heal && leader.heal => None,
            Stored::Value(bytes, _) => Some(Some(bytes)),
            Stored::Absent => Some(None),
            Stored::Nothing => None,
        };
        match outcome {
            Some(outcome) => {
                bump(&space.counters.coalesced_waits);
                answered.push((leader.flight, Ok(outcome)));
            }
            None => left.push(leader),
        }
    }
    flight::complete_all(answered);
    Ok(left)
}

/// Takes each leader's lease, then answers the keys another process stored
/// since our miss. Returns the keys this process loads (it holds their lease),
/// those another process holds, and whether Redis failed (then every key is
/// this process's to load).
async fn claim(
    space: &Space,
    mut leaders: Vec<Leader>,
    policy: DistributedFlight,
) -> (Vec<Leader>, Vec<Leader>, bool) {
    let acquire = leaders.iter().map(|leader| {
        let key = space
            .lock
            .tagged_key_of_full(leader.key(), &space.settings.layout);
        Lease::acquire(&space.settings.engine, key, policy.lease)
    });
    let acquired = join_all(acquire).await;
    let mut failed = false;
    for (leader, acquired) in leaders.iter_mut().zip(acquired) {
        match acquired {
            Ok(held) => leader.lease = held.map(|(lease, _)| lease),
            Err(_) => failed = true,
        }
    }
    // Without Redis the leases are moot: load every key.
    if failed {
        return (leaders, Vec::new(), true);
    }
    match answer_stored(space, leaders, false).await {
        Ok(left) => {
            let (mine, elsewhere) = left.into_iter().partition(|l| l.lease.is_some());
            (mine, elsewhere, false)
        }
        Err(left) => (left, Vec::new(), true),
    }
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
        pending = match answer_stored(space, pending, false).await {
            Ok(left) => left,
            Err(left) => return (left, true),
        };
    }
    (pending, false)
}

/// Calls the loader for `mine`, writes back what it found, releases their
/// leases, then retires every key's flight and answers it. Degraded (Redis
/// failed), it answers first and writes back afterwards.
async fn load_and_store<V: Serialize, L: Loader<V>>(
    space: &Space,
    format: ValueFormat,
    mut mine: Vec<Leader>,
    loader: L,
    degraded: bool,
) {
    if mine.is_empty() {
        return;
    }
    bump(&space.counters.loads);
    let asked: Vec<usize> = mine.iter().map(|leader| leader.index).collect();
    #[cfg(feature = "metrics")]
    let started = std::time::Instant::now();
    let loaded = bounded_load(space, loader(asked)).await;
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
    let leases: Vec<Lease> = mine.iter_mut().filter_map(|l| l.lease.take()).collect();
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
    join_all(leases.iter().map(Lease::release)).await;
    // Stored first, so that a caller's next read finds what it was given.
    if let Some(answers) = answers {
        flight::complete_all(answers);
    }
}

/// Runs a loader's future to its end: a panic is a failed load like an error
/// (so every key of the call is retired before any is answered, as for any
/// outcome), and so is a loader past the policy's hard timeout.
async fn bounded_load<T, F>(space: &Space, loading: F) -> Result<T, BoxError>
where
    F: std::future::Future<Output = Result<T, BoxError>>,
{
    let caught = std::panic::AssertUnwindSafe(loading).catch_unwind();
    let Some(limit) = space.settings.load.hard_timeout else {
        return caught
            .await
            .unwrap_or_else(|_| Err("the loader panicked".into()));
    };
    match tokio::time::timeout(limit, caught).await {
        Ok(done) => done.unwrap_or_else(|_| Err("the loader panicked".into())),
        Err(_elapsed) => {
            bump(&space.counters.loader_timeouts);
            Err(format!("the loader did not answer within {limit:?}").into())
        }
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
    let max = space.settings.engine.max_value_size();
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
