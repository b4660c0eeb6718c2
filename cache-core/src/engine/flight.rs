//! Single flight: the loads of one handle in progress, by full key. The
//! first caller to miss a key leads its flight and holds a [`FlightGuard`];
//! later callers wait for that flight's outcome instead of loading again.
//!
//! A flight is retired before anyone can see its outcome: completing a guard
//! (or a batch of guards) first removes every key it covered, then answers
//! the waiters. So a call that starts after an answer was given never joins
//! the flight that gave it, whether it ended with a value, an error, a panic
//! or no result at all (a guard dropped unfinished retires and answers too).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use tokio::time::Instant;

/// Why a load failed, shared by every caller that waited for it.
pub(crate) type Failure = Arc<dyn std::error::Error + Send + Sync>;

/// A finished load: the encoded value (`None` when the loader found nothing),
/// or the failure every waiter shares.
pub(crate) type Outcome = std::result::Result<Option<Vec<u8>>, Failure>;

type Slot = watch::Receiver<Option<Outcome>>;

/// The flights of one handle, by full key.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    /// Each flight's answer, and when it started.
    map: Mutex<HashMap<String, (Slot, Instant)>>,
    /// How many flights have been retired: a caller whose read missed while
    /// one was may have missed what it stored, and reads again first.
    retired: AtomicU64,
}

/// What joining a key's flight gave.
pub(crate) enum Joined {
    /// No flight was running: the caller leads a new one.
    Leader(FlightGuard, Waiting),
    /// Another caller leads it: wait for its outcome.
    Waiter(Waiting),
}

/// A place in a flight's queue of waiters, and when the flight started.
pub(crate) struct Waiting(Slot, Instant);

impl Waiting {
    /// When the flight started (a soft timeout counts from then, so a caller
    /// that joins a load already late is not kept waiting).
    pub(crate) fn started(&self) -> Instant {
        self.1
    }

    /// The flight's outcome, once it is retired and answered.
    pub(crate) async fn outcome(mut self) -> Outcome {
        match self.0.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or(Ok(None)),
            // The guard went away without an outcome: its Drop answered first.
            Err(_) => Err(Arc::from(crate::error::BoxError::from(
                "the load ended without a result",
            ))),
        }
    }
}

/// The leader's hold on a flight: complete it ([`complete_all`]), or drop it
/// to end the flight without a result (after a panic, the waiters are told so).
pub(crate) struct FlightGuard {
    flights: Arc<Flights>,
    key: String,
    sender: watch::Sender<Option<Outcome>>,
    retired: bool,
}

impl Flights {
    /// Joins the flight of `key`, or starts it.
    pub(crate) fn join(self: &Arc<Self>, key: &str) -> Joined {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((receiver, started)) = map.get(key) {
            return Joined::Waiter(Waiting(receiver.clone(), *started));
        }
        let (sender, receiver) = watch::channel(None);
        let started = Instant::now();
        map.insert(key.to_owned(), (receiver.clone(), started));
        let guard = FlightGuard {
            flights: Arc::clone(self),
            key: key.to_owned(),
            sender,
            retired: false,
        };
        Joined::Leader(guard, Waiting(receiver, started))
    }

    /// Starts the flight of `key` unless one is running (an early refresh).
    pub(crate) fn lead(self: &Arc<Self>, key: &str) -> Option<FlightGuard> {
        match self.join(key) {
            Joined::Leader(guard, _) => Some(guard),
            Joined::Waiter(_) => None,
        }
    }

    /// Taken before a read that may lead to a load, for [`retired_since`](Self::retired_since).
    pub(crate) fn epoch(&self) -> u64 {
        self.retired.load(Ordering::Acquire)
    }

    /// Whether a flight was retired (and stored what it loaded) since `epoch`.
    pub(crate) fn retired_since(&self, epoch: u64) -> bool {
        self.epoch() != epoch
    }

    fn remove(&self, key: &str, own: &Slot) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        // Only this flight's entry: a later flight of the key may hold it.
        if map.get(key).is_some_and(|(slot, _)| own.same_channel(slot)) {
            map.remove(key);
        }
        drop(map);
        self.retired.fetch_add(1, Ordering::AcqRel);
    }
}

impl FlightGuard {
    /// The full key this flight loads.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    fn retire(&mut self) {
        if !self.retired {
            self.retired = true;
            self.flights.remove(&self.key, &self.sender.subscribe());
        }
    }
}

/// Retires every flight of a batch, then answers each: a caller given one
/// key's answer never finds another key of the batch still in flight.
pub(crate) fn complete_all(done: impl IntoIterator<Item = (FlightGuard, Outcome)>) {
    let mut done: Vec<(FlightGuard, Outcome)> = done.into_iter().collect();
    for (guard, _) in &mut done {
        guard.retire();
    }
    for (guard, outcome) in done {
        guard.sender.send_replace(Some(outcome));
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if self.retired {
            return;
        }
        self.retire();
        let why = if std::thread::panicking() {
            "the load panicked"
        } else {
            "the load ended without a result"
        };
        let failure: Failure = Arc::from(crate::error::BoxError::from(why));
        self.sender.send_replace(Some(Err(failure)));
    }
}

impl std::fmt::Debug for FlightGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightGuard").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(flights: &Arc<Flights>, key: &str) -> (FlightGuard, Waiting) {
        match flights.join(key) {
            Joined::Leader(guard, waiting) => (guard, waiting),
            Joined::Waiter(_) => panic!("{key}: a flight was running"),
        }
    }

    /// Asserts that the flight of `k` ended with `why`, and is gone.
    async fn ended_with(flights: &Arc<Flights>, waiting: Waiting, why: &str) {
        let failure = waiting.outcome().await.err().map(|e| e.to_string());
        assert_eq!(failure.as_deref(), Some(why));
        assert!(matches!(flights.join("k"), Joined::Leader(..)));
    }

    fn value(outcome: &Outcome) -> Option<Vec<u8>> {
        outcome.as_ref().ok().cloned().flatten()
    }

    #[tokio::test]
    async fn a_waiter_gets_the_leaders_outcome() {
        let flights = Arc::new(Flights::default());
        let (guard, mine) = lead(&flights, "k");
        let Joined::Waiter(theirs) = flights.join("k") else {
            panic!("second join waits");
        };
        complete_all([(guard, Ok(Some(b"v".to_vec())))]);
        assert_eq!(value(&mine.outcome().await), Some(b"v".to_vec()));
        assert_eq!(value(&theirs.outcome().await), Some(b"v".to_vec()));
    }

    #[tokio::test]
    async fn every_key_of_a_batch_is_retired_before_any_is_answered() {
        let flights = Arc::new(Flights::default());
        let mut guards = Vec::new();
        let mut waits = Vec::new();
        for key in ["a", "b", "c"] {
            let (guard, waiting) = lead(&flights, key);
            guards.push(guard);
            waits.push(waiting);
        }
        let epoch = flights.epoch();
        let failure: Failure = Arc::from(crate::error::BoxError::from("down"));
        complete_all(guards.into_iter().map(|g| (g, Err(Arc::clone(&failure)))));
        assert!(flights.retired_since(epoch));
        for waiting in waits {
            assert!(waiting.outcome().await.is_err());
        }
        for key in ["a", "b", "c"] {
            assert!(matches!(flights.join(key), Joined::Leader(..)), "{key}");
        }
    }

    #[tokio::test]
    async fn a_dropped_guard_retires_and_answers_without_a_result() {
        let flights = Arc::new(Flights::default());
        let (guard, waiting) = lead(&flights, "k");
        drop(guard);
        ended_with(&flights, waiting, "the load ended without a result").await;
    }

    #[tokio::test]
    async fn a_panic_while_leading_tells_the_waiters() {
        let flights = Arc::new(Flights::default());
        let (guard, waiting) = lead(&flights, "k");
        let task = tokio::spawn(async move {
            let _guard = guard;
            panic!("the load blew up");
        });
        assert!(task.await.is_err());
        ended_with(&flights, waiting, "the load panicked").await;
    }

    #[tokio::test]
    async fn a_retired_guard_leaves_a_later_flight_of_its_key_alone() {
        let flights = Arc::new(Flights::default());
        let (mut first, _) = lead(&flights, "k");
        first.retire();
        let (_second, _) = lead(&flights, "k");
        drop(first);
        assert!(matches!(flights.join("k"), Joined::Waiter(_)));
    }
}
