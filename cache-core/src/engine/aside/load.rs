//! The flight's own task: read again if a flight finished meanwhile, claim
//! the distributed leases (or wait for the process that holds one), call the
//! loader once, encode, store, release, and retire the flights before
//! answering them.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::join_all;
use serde::Serialize;

use super::read::{Stored, reread};
use super::{Found, Loader};
use crate::backend::ops::stamp::ReplaceIfSame;
use crate::codec::ValueFormat;
use crate::engine::flight::{self, Failure, FlightGuard, Outcome};
use crate::engine::lease::Lease;
use crate::engine::stale::StaleCopy;
use crate::engine::{Since, Space};
use crate::error::BoxError;
use crate::freshness::StaleReason;
use crate::settings::DistributedFlight;
use crate::stats::bump;
use crate::stored::stamp;

/// A key this flight loads: its position in the loader's list, its flight,
/// whether what Redis holds did not decode (to replace or remove it), the
/// expired value Redis holds (fail-safe: stored again, marked, when the load
/// fails), and its distributed lease once taken (released after the
/// write-back, or in the background when the key is answered otherwise).
pub(super) struct Leader {
    pub(super) index: usize,
    pub(super) flight: FlightGuard,
    pub(super) heal: bool,
    pub(super) stale: Option<StaleCopy>,
    pub(super) lease: Option<Lease>,
}

impl Leader {
    pub(super) fn new(
        index: usize,
        flight: FlightGuard,
        heal: bool,
        stale: Option<StaleCopy>,
    ) -> Self {
        let lease = None;
        Leader {
            index,
            flight,
            heal,
            stale,
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

/// A load given up at the hard timeout.
#[derive(Debug)]
struct LoaderTimedOut(Duration);

impl std::fmt::Display for LoaderTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the loader did not answer within {:?}", self.0)
    }
}

impl std::error::Error for LoaderTimedOut {}

/// A key found served stale by another flight (within the throttle after
/// its failed load): the expired value comes along, for callers without one.
#[derive(Debug)]
struct ServedStale(StaleReason, StaleCopy);

impl std::fmt::Display for ServedStale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reason = self.0.as_str();
        write!(
            f,
            "a recent load failed ({reason}); the expired value is served until the loader is tried again"
        )
    }
}

impl std::error::Error for ServedStale {}

/// Why a load failed, as a stale answer gives it.
pub(super) fn stale_reason(failure: &Failure) -> StaleReason {
    if failure.downcast_ref::<LoaderTimedOut>().is_some() {
        return StaleReason::LoaderTimeout;
    }
    match failure.downcast_ref::<ServedStale>() {
        Some(ServedStale(reason, _)) => *reason,
        None => StaleReason::LoaderError,
    }
}

/// The expired value another flight's failure brought, if any.
pub(super) fn carried_copy(failure: &Failure) -> Option<StaleCopy> {
    let ServedStale(_, copy) = failure.downcast_ref::<ServedStale>()?;
    Some(copy.clone())
}

/// Values the codec refused, by position, for the call that loaded them.
pub(super) type Handoff<V> = Arc<std::sync::Mutex<Vec<(usize, V)>>>;

/// How loaded values reach the callers: encoded in `format`, or (fail-open)
/// a value the codec refuses handed to the call that loaded it, since it
/// cannot be shared as bytes.
pub(super) struct Delivery<V> {
    pub(super) format: ValueFormat,
    /// The tags a value carries of itself.
    pub(super) tags_of: fn(&V) -> Vec<String>,
    pub(super) handoff: Handoff<V>,
}

/// The failure of a key whose value was loaded but cannot be encoded: the
/// call that loaded it takes the value from the handoff; others see why.
#[derive(Debug)]
pub(super) struct Unencodable(crate::error::Error);

impl std::fmt::Display for Unencodable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (the value went to the call that loaded it)", self.0)
    }
}

impl std::error::Error for Unencodable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// The flight's task, from the reread to the answers.
pub(super) async fn fly<V, L>(
    space: Space,
    delivery: Delivery<V>,
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
    let policy = space.load.distributed.filter(|_| !course.degraded);
    let (Some(policy), false) = (policy, leaders.is_empty()) else {
        return load_and_store(space, &delivery, leaders, loader, course.degraded).await;
    };
    let (mine, elsewhere, degraded) = claim(space, leaders, policy).await;
    if mine.is_empty() {
        // Nothing of ours to load: wait, then load what was not stored in time.
        let (late, failed) = await_others(space, elsewhere, policy.wait).await;
        return load_and_store(space, &delivery, late, loader, degraded || failed).await;
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
        load_and_store(space, &delivery, mine, loader, degraded),
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
            Stored::Value(fresh) => Some(Ok(Some(fresh.payload))),
            Stored::Absent => Some(Ok(None)),
            // Within the throttle after another flight's failed load.
            Stored::Stale(copy) => (copy.serve_now).map(|reason| {
                let failure: Failure = Arc::new(ServedStale(reason, copy));
                Err(failure)
            }),
            Stored::Nothing => None,
        };
        match outcome {
            Some(outcome) => {
                bump(&space.counters.coalesced_waits);
                answered.push((leader.flight, outcome));
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
        let key = space.lock.tagged_key_of_full(leader.key(), &space.layout);
        Lease::acquire(&space.engine, key, policy.lease)
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
    delivery: &Delivery<V>,
    mut mine: Vec<Leader>,
    loader: L,
    degraded: bool,
) {
    if mine.is_empty() {
        return;
    }
    bump(&space.counters.loads);
    let since = load_start(space, degraded).await;
    let asked: Vec<usize> = mine.iter().map(|leader| leader.index).collect();
    #[cfg(feature = "metrics")]
    let started = std::time::Instant::now();
    let loaded = bounded_load(space, loader(asked)).await;
    #[cfg(feature = "metrics")]
    space.counters.labels.load_took(started.elapsed());
    let (outcomes, tags): (Vec<Outcome>, Vec<Vec<String>>) = match loaded {
        Ok(found) => encode(space, delivery, &mine, found),
        Err(error) => {
            bump(&space.counters.load_errors);
            let failure: Failure = Arc::from(error);
            if !degraded {
                throttle(space, &mut mine, stale_reason(&failure)).await;
            }
            let failed = mine.iter().map(|_| (Err(Arc::clone(&failure)), Vec::new()));
            failed.unzip()
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
    super::store::store(space, &keys, (&outcomes, &tags), since).await;
    join_all(leases.iter().map(Lease::release)).await;
    // Stored first, so that a caller's next read finds what it was given.
    if let Some(answers) = answers {
        flight::complete_all(answers);
    }
}

/// From when the values a load finds are known current: for a tagged
/// keyspace, the tag clock read before the loader runs (none when Redis
/// failed: a tag that changed cannot then be told from one that did not, and
/// only tags made by the write-back itself pass).
async fn load_start(space: &Space, degraded: bool) -> Since {
    if !space.tagged || degraded {
        return Since::Load(None);
    }
    let clock = space.backend().within(space.engine.tag_clock());
    Since::Load(clock.await.ok().flatten())
}

/// Runs a loader's future to its end: a panic is a failed load like an error
/// (so every key of the call is retired before any is answered, as for any
/// outcome), and so is a loader past the policy's hard timeout.
async fn bounded_load<T, F>(space: &Space, loading: F) -> Result<T, BoxError>
where
    F: std::future::Future<Output = Result<T, BoxError>>,
{
    let caught = std::panic::AssertUnwindSafe(loading).catch_unwind();
    let Some(limit) = space.load.hard_timeout else {
        return caught
            .await
            .unwrap_or_else(|_| Err("the loader panicked".into()));
    };
    match tokio::time::timeout(limit, caught).await {
        Ok(done) => done.unwrap_or_else(|_| Err("the loader panicked".into())),
        Err(_elapsed) => {
            bump(&space.counters.loader_timeouts);
            Err(Box::new(LoaderTimedOut(limit)))
        }
    }
}

/// Under fail-safe, after a failed load: stores each key's expired value
/// again, marked with `reason`, to be served for the throttle before anyone
/// loads it again (keeping Redis' expiry, so never past the window), unless
/// a newer value was stored meanwhile.
async fn throttle(space: &Space, mine: &mut [Leader], reason: StaleReason) {
    let throttle = space.load.fail_safe_throttle;
    let writes = mine.iter_mut().filter_map(|leader| {
        let copy = leader.stale.take()?;
        let key = leader.key();
        Some(async move {
            let bytes = stamp::seal(copy.payload(), Some(throttle), Some(reason));
            let read = copy.found();
            let op = ReplaceIfSame { key, read, bytes };
            let keys = [key];
            space.local.around(&keys, space.backend().run(&op)).await
        })
    });
    for written in join_all(writes).await {
        if let Err(error) = written {
            tracing::debug!(%error, "keeping the expired value after a failed load failed");
        }
    }
}

/// Each leader's outcome: its value encoded (checked as `set` checks), or
/// absent; values for positions nobody asked for are ignored. Under
/// fail-open, a value that cannot be stored is still the answer (see
/// [`unstorable`]).
fn encode<V: Serialize>(
    space: &Space,
    delivery: &Delivery<V>,
    mine: &[Leader],
    found: Vec<Found<V>>,
) -> (Vec<Outcome>, Vec<Vec<String>>) {
    // By position; positions this flight did not ask for are dropped.
    let size = mine
        .iter()
        .map(|leader| leader.index + 1)
        .max()
        .unwrap_or(0);
    let mut by_index: Vec<Option<(V, Vec<String>)>> = (0..size).map(|_| None).collect();
    for (index, value, tags) in found {
        if let Some(slot) = by_index.get_mut(index) {
            *slot = Some((value, tags));
        }
    }
    let mut outcomes = Vec::with_capacity(mine.len());
    let mut all_tags = Vec::with_capacity(mine.len());
    for leader in mine {
        let Some((value, mut tags)) = by_index.get_mut(leader.index).and_then(Option::take) else {
            outcomes.push(Ok(None));
            all_tags.push(Vec::new());
            continue;
        };
        tags.extend((delivery.tags_of)(&value));
        let encoded = match (tags.is_empty() || space.tagged, &delivery.format) {
            (true, format) => format.encode_for(leader.key(), &value, &space.counters),
            (false, _) => Err(crate::error::Error::config(format!(
                "a value loaded for `{}` has tags, but its keyspace is not tagged",
                leader.key()
            ))),
        };
        let outcome = match encoded {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) => unstorable(space, delivery, (leader.index, value), error),
        };
        outcomes.push(outcome);
        all_tags.push(tags);
    }
    (outcomes, all_tags)
}

/// The outcome of a loaded value `set` would refuse. Fail-closed: the error.
/// Fail-open: the value all the same, counted, logged and not stored;
/// bytes over `max_value_size` are shared as any value (the write-back
/// skips them), a value the codec refuses goes through the handoff.
fn unstorable<V: Serialize>(
    space: &Space,
    delivery: &Delivery<V>,
    (index, value): (usize, V),
    error: crate::error::Error,
) -> Outcome {
    if space.load.failure == crate::FailurePolicy::Closed {
        return Err(Arc::new(error));
    }
    bump(&space.counters.unstored_values);
    // The error names the key: only its kind goes to the log.
    let reason = match error {
        crate::error::Error::ValueTooLarge { .. } => "over max_value_size",
        _ => "refused by the codec",
    };
    tracing::warn!(
        prefix = space.layout.prefix(),
        reason,
        "a loaded value is returned but not stored"
    );
    if let Ok(bytes) = delivery.format.encode(&value) {
        return Ok(Some(bytes));
    }
    let mut handoff = delivery
        .handoff
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    handoff.push((index, value));
    Err(Arc::new(Unencodable(error)))
}
