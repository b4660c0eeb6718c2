//! The controller of injected faults: what the next calls of a memory-backed
//! handle run into.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::CallKind;

/// What a failing call runs into.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The server cannot be reached (connection refused), as when Redis is
    /// down: [`Error::is_connection`](crate::Error::is_connection) is true.
    /// Nothing was sent, so the call is not sent again and its outcome is
    /// known (nothing was applied).
    Connection,
    /// The connection broke under the call (the server restarted, the
    /// network dropped it): an idempotent call is sent once more, as on
    /// Redis; a call that is never sent twice fails with
    /// [`Error::is_outcome_unknown`](crate::Error::is_outcome_unknown), since
    /// the server may have applied it.
    Dropped,
    /// The server takes the call and never answers: the call waits out what
    /// is left of the operation's timeout and ends with
    /// [`Error::Timeout`](crate::Error::Timeout).
    Timeout,
    /// The server answers with this error reply, code first, e.g.
    /// `"OOM command not allowed when used memory > 'maxmemory'"`:
    /// [`Error::Backend`](crate::Error::Backend) carrying it.
    Server(String),
    /// The key holds another type: [`Error::WrongType`](crate::Error::WrongType).
    WrongType,
}

/// Which calls a rule applies to. A public operation makes one or more
/// backend calls; each is one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Calls {
    /// Every call.
    All,
    /// Single-key reads: `GET`, `EXISTS`, `PTTL`, and `GET` with `PTTL`.
    Reads,
    /// Single-key writes: `SET`, `DEL`, `GETDEL`, `PEXPIRE`.
    Writes,
    /// The atomic multi-step operations (Lua scripts on Redis): the building
    /// blocks, leases, tags, typed sets, increments.
    Scripts,
    /// Calls on many keys: `MGET`, a transaction of `SET`s, a `DEL` of many
    /// keys, reads with TTLs of many keys, and the `SCAN` of a clear.
    Batches,
    /// Calls of one operation, by the name errors report (`"GET"`, `"SET"`,
    /// `"MGET"`, `"INCRBY"`, ...).
    Named(&'static str),
}

impl Calls {
    fn matches(self, kind: CallKind, name: &str) -> bool {
        match self {
            Calls::All => true,
            Calls::Reads => kind == CallKind::Read,
            Calls::Writes => kind == CallKind::Write,
            Calls::Scripts => kind == CallKind::Script,
            Calls::Batches => kind == CallKind::Batch,
            Calls::Named(wanted) => wanted.eq_ignore_ascii_case(name),
        }
    }
}

/// Switches for injecting faults into a handle on the memory backend
/// (feature `testing`): pass it to
/// [`CacheBuilder::faults`](crate::CacheBuilder::faults), keep a clone, and
/// flip it while the test runs. Rules apply to each backend call (a retried
/// call is two); the handle then behaves as it would against a server that
/// fails that way: the same errors, the same fail-open or fail-closed
/// answers, the same counters, and one timeout for each public operation.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// use std::time::Duration;
/// use cache_core::testing::{Calls, Fault, Faults};
///
/// let faults = Faults::new();
/// let cache = cache_core::Cache::builder()
///     .timeout(Duration::from_millis(50))
///     .faults(faults.clone())
///     .build_memory()?;
/// let names = cache.keyspace("name").typed::<u64, String>()?;
///
/// faults.down(); // Redis is down
/// assert!(names.get(&1).await.unwrap_err().is_connection());
/// faults.up();
///
/// faults.on(Calls::Reads).delay(Duration::from_secs(2)); // every read is slow
/// assert!(names.get(&1).await.unwrap_err().is_timeout());
/// faults.heal();
///
/// faults.fail_next(1, Fault::Server("OOM command not allowed".into()));
/// assert!(names.set(&1, &"Ada".into()).await.is_err());
/// assert!(names.set(&1, &"Ada".into()).await.is_ok());
/// assert_eq!(cache.stats().backend_errors, 2);
/// assert_eq!(cache.stats().timeouts, 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Faults {
    plan: Arc<Mutex<Plan>>,
}

#[derive(Debug, Default)]
struct Plan {
    down: bool,
    /// Faults for the next calls that match, with how many are left.
    next: Vec<(Calls, usize, Fault)>,
    /// Faults for every call that matches.
    always: Vec<(Calls, Fault)>,
    delays: Vec<(Calls, Duration)>,
    calls: u64,
    injected: u64,
}

/// What one call runs into: a delay first, then a fault or the real call.
#[derive(Debug)]
pub(crate) struct Injected {
    pub(crate) delay: Duration,
    pub(crate) fault: Option<Fault>,
}

/// The rules for one kind of calls, from [`Faults::on`].
#[derive(Debug)]
#[must_use = "a rule does nothing until fail, fail_next or delay is called"]
pub struct Rule<'a> {
    faults: &'a Faults,
    calls: Calls,
}

impl Rule<'_> {
    /// Every call of this kind fails with `fault`, until [`Faults::heal`].
    pub fn fail(self, fault: Fault) {
        self.faults
            .edit(|plan| plan.always.push((self.calls, fault)));
    }

    /// The next `count` calls of this kind fail with `fault`.
    pub fn fail_next(self, count: usize, fault: Fault) {
        self.faults
            .edit(|plan| plan.next.push((self.calls, count, fault)));
    }

    /// Every call of this kind takes `delay` longer, until [`Faults::heal`]
    /// (delays of several rules add up). A call whose delay runs past what
    /// is left of the operation's timeout ends as a timeout.
    pub fn delay(self, delay: Duration) {
        self.faults
            .edit(|plan| plan.delays.push((self.calls, delay)));
    }
}

impl Faults {
    /// A controller with nothing injected yet.
    pub fn new() -> Self {
        Faults::default()
    }

    /// The rules for `calls`: `faults.on(Calls::Reads).delay(..)`.
    pub fn on(&self, calls: Calls) -> Rule<'_> {
        Rule {
            faults: self,
            calls,
        }
    }

    /// Redis goes down: every call fails at once with [`Fault::Connection`]
    /// until [`up`](Self::up) or [`heal`](Self::heal). A Redis handle whose
    /// server stopped answers the same way, with the same counters: once a
    /// connection to it is refused, its calls fail at once while it
    /// reconnects in the background (the guide's `handle` page). A server
    /// that does not answer at all (frozen, or a network that drops packets)
    /// is `on(Calls::All).fail(Fault::Timeout)` instead.
    pub fn down(&self) {
        self.edit(|plan| plan.down = true);
    }

    /// Redis is back up (other rules stay).
    pub fn up(&self) {
        self.edit(|plan| plan.down = false);
    }

    /// The next `count` calls, whatever they are, fail with `fault`.
    pub fn fail_next(&self, count: usize, fault: Fault) {
        self.on(Calls::All).fail_next(count, fault);
    }

    /// Removes every rule and brings Redis up; the call counts stay.
    pub fn heal(&self) {
        self.edit(|plan| {
            plan.down = false;
            plan.next.clear();
            plan.always.clear();
            plan.delays.clear();
        });
    }

    /// Backend calls made through the handle so far (a retried call counts twice).
    pub fn calls(&self) -> u64 {
        self.edit(|plan| plan.calls)
    }

    /// Of those, how many ran into a fault (delays alone not counted).
    pub fn injected(&self) -> u64 {
        self.edit(|plan| plan.injected)
    }

    fn edit<R>(&self, change: impl FnOnce(&mut Plan) -> R) -> R {
        // A panic in a test thread must not turn every later call into one.
        let mut plan = self.plan.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut plan)
    }

    /// What the call `name` of `kind` runs into now.
    pub(crate) fn attempt(&self, kind: CallKind, name: &str) -> Injected {
        self.edit(|plan| {
            plan.calls += 1;
            let delay = plan
                .delays
                .iter()
                .filter(|(calls, _)| calls.matches(kind, name))
                .map(|(_, delay)| *delay)
                .sum();
            let fault = plan.pick(kind, name);
            plan.injected += u64::from(fault.is_some());
            Injected { delay, fault }
        })
    }
}

impl Plan {
    fn pick(&mut self, kind: CallKind, name: &str) -> Option<Fault> {
        if self.down {
            return Some(Fault::Connection);
        }
        let counted = self
            .next
            .iter_mut()
            .find(|(calls, left, _)| *left > 0 && calls.matches(kind, name));
        if let Some((_, left, fault)) = counted {
            *left -= 1;
            return Some(fault.clone());
        }
        self.next.retain(|(_, left, _)| *left > 0);
        let always = self
            .always
            .iter()
            .find(|(calls, _)| calls.matches(kind, name));
        always.map(|(_, fault)| fault.clone())
    }
}
