//! Group commit. Single-key GET, SET (with a value and an optional TTL) and
//! DEL calls of a handle go out at once while fewer than [`IN_FLIGHT`] of its
//! round trips are in flight, and otherwise wait in a queue; when a round
//! trip returns, everything queued goes out as one pipeline. A lone caller
//! sends at once: no timer, no added latency. On a cluster a batch is split
//! into one pipeline per hash slot.
//!
//! What a caller sees does not change: each command's answer (or error, such
//! as WRONGTYPE) reaches its own caller only, each caller waits no longer
//! than its own timeout, a caller that gave up before its batch left sends
//! nothing, and concurrent reads of one key in a batch share one GET.
//!
//! One timer per batch: a batch's round trip ends by the earliest deadline
//! of its callers, and a queued call goes out when the first round trip in
//! flight ends, each by a deadline no later than a new caller's (it began
//! earlier, with no longer a budget). So a queued caller
//! needs no timer of its own, unless its deadline is earlier than one
//! already in the queue (an operation with part of its budget spent); it then
//! keeps its own. A batch's callers may be told "timeout" up to one round
//! trip before their own deadline, never after it (to the timer's
//! millisecond).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::{Cmd, Pipeline, Value};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{RedisBackend, Retry, slot_groups};
use crate::backend::next::{Attempt, NextStep, after_error, is_not_executed};
use crate::error::{Error, Result};
use crate::ttl::ttl_millis;

/// A call that may share a round trip with others.
pub(crate) enum Op {
    Get,
    /// SET with a value, replacing what is there, with a TTL or none.
    Set {
        value: Vec<u8>,
        ttl: Option<Duration>,
    },
    Del,
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Get => "GET",
            Op::Set { .. } => "SET",
            Op::Del => "DEL",
        }
    }

    fn command(&self, key: &str) -> Cmd {
        let name = self.name();
        // Sized up front: built arg by arg, the buffers grow four times.
        let (args, bytes) = match self {
            Op::Set { value, .. } => (5, name.len() + key.len() + value.len() + 2 + 20),
            Op::Get | Op::Del => (2, name.len() + key.len()),
        };
        let mut cmd = Cmd::with_capacity(args, bytes);
        cmd.arg(name).arg(key);
        if let Op::Set { value, ttl } = self {
            cmd.arg(value.as_slice());
            if let Some(ttl) = ttl {
                cmd.arg("PX").arg(ttl_millis(*ttl));
            }
        }
        cmd
    }
}

/// A call waiting for the next batch.
struct Queued {
    key: String,
    op: Op,
    answer: oneshot::Sender<Result<Value>>,
    /// When its caller's budget runs out.
    deadline: Instant,
}

/// The queue of one handle's calls.
#[derive(Default)]
pub(crate) struct Coalescer {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Round trips of this queue in flight; calls queue while there are
    /// [`IN_FLIGHT`].
    sending: usize,
    queue: Vec<Queued>,
    /// The latest deadline of the round trips in flight and of the calls
    /// queued: a call whose deadline is not earlier needs no timer.
    latest: Option<Instant>,
}

/// How many round trips of one handle's queue may be in flight at once;
/// calls queue beyond that. With one, the server and the client take turns
/// (the server idles while answered callers run): a typed SET+GET at 64
/// tasks ran at 0.79x raw redis-rs. Eight keep the server busy and batches
/// still large: 0.88x; 16 and unbounded fell back to 0.79-0.86x.
const IN_FLIGHT: usize = 8;

impl Coalescer {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state whole, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer").finish_non_exhaustive()
    }
}

/// The direct sender's turn: when it ends (answered, failed or cancelled),
/// what queued meanwhile goes out.
struct Turn<'a>(&'a RedisBackend);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.hand_on();
    }
}

impl RedisBackend {
    /// Sends `op` on `key`, alone or in the next batch.
    pub(crate) async fn coalesced(&self, key: &str, op: Op) -> Result<Value> {
        let Some(coalescer) = &self.coalescer else {
            return self.alone(key, &op).await;
        };
        let name = op.name();
        let budget = crate::backend::budget(self.timeout);
        let deadline = Instant::now() + budget;
        let queued = {
            let mut state = coalescer.lock();
            let own_timer = state.latest.is_some_and(|latest| deadline < latest);
            state.latest = state.latest.max(Some(deadline));
            if state.sending >= IN_FLIGHT {
                let (answer, answered) = oneshot::channel();
                let key = key.to_owned();
                state.queue.push(Queued {
                    key,
                    op,
                    answer,
                    deadline,
                });
                Err((answered, own_timer.then_some(budget)))
            } else {
                state.sending += 1;
                Ok(op)
            }
        };
        let op = match queued {
            Ok(op) => op,
            Err((answered, timer)) => return self.await_batch(name, key, answered, timer).await,
        };
        let turn = Turn(self);
        let sent = self.alone(key, &op).await;
        drop(turn);
        sent
    }

    async fn alone(&self, key: &str, op: &Op) -> Result<Value> {
        self.send(op.name(), key, op.command(key), Retry::Idempotent)
            .await
    }

    /// Waits for a queued call's answer: by its batch's deadline, or by its
    /// own `timer` when it has a shorter budget than calls queued before it.
    async fn await_batch(
        &self,
        name: &'static str,
        key: &str,
        answered: oneshot::Receiver<Result<Value>>,
        timer: Option<Duration>,
    ) -> Result<Value> {
        #[cfg(feature = "metrics")]
        let started = std::time::Instant::now();
        let outcome = match timer {
            Some(budget) => tokio::time::timeout(budget, answered).await,
            None => Ok(answered.await),
        };
        let error = match outcome {
            Ok(Ok(answer)) => return answer,
            Ok(Err(_dropped)) => {
                let lost = std::io::Error::other("the batch carrying this call ended unanswered");
                Error::from_redis(name, Some(key), lost.into(), false)
            }
            Err(_elapsed) => self.timeout_error(name, key, false),
        };
        self.stats.count_error(&error);
        #[cfg(feature = "metrics")]
        (self.call_times).record(name, started.elapsed(), Some(&error));
        Err(error)
    }

    /// Sends what queued during a round trip that just ended, or marks the
    /// queue idle. Outside a runtime (one shutting down) the queued calls are
    /// dropped: each caller gets an error.
    fn hand_on(&self) {
        let Some(batch) = self.next_batch() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(self.clone().drain(batch))),
            Err(_) => {
                drop(batch);
                while let Some(batch) = self.next_batch() {
                    drop(batch);
                }
            }
        }
    }

    /// What queued meanwhile; `None` once there is nothing, the round trip's
    /// turn then being over.
    fn next_batch(&self) -> Option<Vec<Queued>> {
        let mut state = self.coalescer.as_ref()?.lock();
        if state.queue.is_empty() {
            state.sending -= 1;
            if state.sending == 0 {
                state.latest = None;
            }
            return None;
        }
        // Kept as the latest of everything in flight: a call queued later
        // goes out when the first of them ends.
        let batch_latest = state.queue.iter().map(|queued| queued.deadline).max();
        state.latest = state.latest.max(batch_latest);
        Some(std::mem::take(&mut state.queue))
    }

    /// Sends batches until the queue is empty.
    async fn drain(self, mut batch: Vec<Queued>) {
        loop {
            self.send_batch(batch).await;
            // The callers just answered may call again at once: let them
            // join the next batch rather than the one after it.
            tokio::task::yield_now().await;
            match self.next_batch() {
                Some(next) => batch = next,
                None => return,
            }
        }
    }

    async fn send_batch(&self, mut batch: Vec<Queued>) {
        // A caller that gave up before its batch left sends nothing.
        batch.retain(|queued| !queued.answer.is_closed());
        let groups = slot_groups(self.is_cluster(), batch.iter().map(|q| q.key.as_str()));
        let mut batch: Vec<Option<Queued>> = batch.into_iter().map(Some).collect();
        let groups: Vec<Vec<Queued>> = groups
            .into_iter()
            .map(|positions| {
                let taken = positions.into_iter();
                taken.filter_map(|at| batch.get_mut(at)?.take()).collect()
            })
            .collect();
        let sends = groups.into_iter().map(|group| self.send_group(group));
        futures_util::future::join_all(sends).await;
    }

    /// One pipeline for `group` (one slot on a cluster); each call gets the
    /// answer to its own command.
    async fn send_group(&self, group: Vec<Queued>) {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        // Reads of one key share a GET until a write to that key comes.
        let mut reads: HashMap<&str, usize> = HashMap::new();
        let mut at = Vec::with_capacity(group.len());
        // How many calls each command answers: the last one takes the reply.
        let mut readers: Vec<usize> = Vec::with_capacity(group.len());
        for queued in &group {
            let key = queued.key.as_str();
            if let (Op::Get, Some(&read)) = (&queued.op, reads.get(key)) {
                at.push(read);
                if let Some(count) = readers.get_mut(read) {
                    *count += 1;
                }
                continue;
            }
            let index = readers.len();
            readers.push(1);
            pipe.add_command(queued.op.command(key));
            match queued.op {
                Op::Get => reads.insert(key, index),
                Op::Set { .. } | Op::Del => reads.remove(key),
            };
            at.push(index);
        }
        #[cfg(feature = "metrics")]
        let started = std::time::Instant::now();
        let deadline = group.iter().map(|queued| queued.deadline).min();
        let deadline = deadline.unwrap_or_else(|| Instant::now() + self.timeout);
        let mut answers = self
            .round_trip(&pipe, deadline)
            .await
            .map(|values| values.into_iter().map(Some).collect::<Vec<_>>());
        for (queued, index) in group.into_iter().zip(at) {
            let Queued {
                key,
                op,
                answer,
                deadline,
            } = queued;
            let name = op.name();
            // Sent alone, the call is counted (and timed) there.
            let Some(result) = self.settle(&mut answers, &mut readers, index, name, &key) else {
                let alone = match tokio::time::timeout_at(deadline, self.alone(&key, &op)).await {
                    Ok(result) => result,
                    Err(_elapsed) => {
                        let error = self.timeout_error(name, &key, false);
                        self.stats.count_error(&error);
                        Err(error)
                    }
                };
                drop(answer.send(alone));
                continue;
            };
            // A caller that stopped waiting counted its own timeout.
            let waiting = !answer.is_closed();
            if waiting && let Err(error) = &result {
                self.stats.count_error(error);
            }
            #[cfg(feature = "metrics")]
            if waiting {
                (self.call_times).record(name, started.elapsed(), result.as_ref().err());
            }
            drop(answer.send(result));
        }
    }

    /// One call's answer from its batch's replies (the reply at `index`,
    /// which `readers` calls share: the last takes it, the others a copy);
    /// `None` when the call must go again alone (the node did not run it).
    fn settle(
        &self,
        answers: &mut std::result::Result<Vec<Option<Value>>, SendFailure>,
        readers: &mut [usize],
        index: usize,
        name: &'static str,
        key: &str,
    ) -> Option<Result<Value>> {
        let values = match answers {
            Ok(values) => values,
            Err(SendFailure::NotExecuted) => return None,
            Err(SendFailure::Redis(err)) => {
                return Some(Err(Error::from_redis(name, Some(key), err.clone(), false)));
            }
            Err(SendFailure::Timeout) => return Some(Err(self.timeout_error(name, key, false))),
        };
        let reply = match (values.get_mut(index), readers.get_mut(index)) {
            (Some(reply), Some(left)) => {
                *left -= 1;
                if *left == 0 {
                    reply.take()
                } else {
                    reply.clone()
                }
            }
            _ => None,
        };
        match reply.map(Value::extract_error) {
            // Not run (a slot moving, a failover): alone it follows redirections.
            Some(Err(err)) if is_not_executed(&err) => None,
            Some(Ok(value)) => Some(Ok(value)),
            Some(Err(err)) => Some(Err(Error::from_redis(name, Some(key), err, false))),
            None => Some(Err(Error::from_redis(
                name,
                Some(key),
                short_answer(),
                false,
            ))),
        }
    }

    /// Sends `pipe` by `deadline`, once more if its connection dropped
    /// (every command in a batch may be applied twice).
    async fn round_trip(
        &self,
        pipe: &Pipeline,
        deadline: Instant,
    ) -> std::result::Result<Vec<Value>, SendFailure> {
        let span = self.call_span("PIPELINE");
        // Every command in a batch may be applied twice: one resend.
        let mut may_resend = true;
        loop {
            let mut connection = self.connection.clone();
            let sent = pipe.query_async::<Vec<Value>>(&mut connection);
            let sent = tracing::Instrument::instrument(sent, span.clone());
            let err = match tokio::time::timeout_at(deadline, sent).await {
                Ok(Ok(values)) => return Ok(values),
                Ok(Err(err)) => err,
                Err(_elapsed) => return Err(SendFailure::Timeout),
            };
            let seen = Attempt {
                retry: Retry::Idempotent,
                may_resend,
                deadline_passed: tokio::time::Instant::now() >= deadline,
            };
            match after_error(&err, seen) {
                NextStep::Resend => may_resend = false,
                // Each call goes again alone, where redirections are followed.
                NextStep::Pause => return Err(SendFailure::NotExecuted),
                NextStep::Timeout { .. } => return Err(SendFailure::Timeout),
                NextStep::Fail { .. } => return Err(SendFailure::Redis(err)),
            }
        }
    }
}

/// Why a batch's round trip gave no answers.
enum SendFailure {
    /// The node did not run it (a cluster redirection or failover): each
    /// call goes again alone.
    NotExecuted,
    Redis(redis::RedisError),
    Timeout,
}

/// An answer missing from a batch's reply: never expected from a server.
fn short_answer() -> redis::RedisError {
    std::io::Error::other("the server's answer to a batch had fewer replies than commands").into()
}
