//! Cache-aside, written once: `get_or_load` is a batch of one key, and
//! `get_or_load_many` a batch of many. The protocol, in order:
//!
//! 1. **Read** every key once: the local tier, then Redis in one operation.
//! 2. **Classify**: a hit is answered (and reloaded in the background when
//!    early refresh wants it); a cached absence is answered `None`; a miss,
//!    or a value that does not decode, goes on.
//! 3. **Join** the key's flight: one load per key at a time in this process.
//! 4. In the flight's own task (a caller that gives up strands nobody):
//!    **reread** when another flight finished during the read; with
//!    `distributed`, **claim** each key's lease or wait for the process that
//!    holds it; **load** once for every key left; **encode** as `set` would;
//!    **store** (values, cached absences, removal of undecodable values);
//!    **release** the leases; **retire** the flights, then **answer** them.
//!
//! Fail-open: a Redis error makes the flight degraded (no more Redis calls
//! before answering; answer first, then write back, best effort).
//! Fail-closed: the read's error is the answer. A loader error or panic fails
//! its keys for the callers waiting then, and is never cached.
//!
//! Fail-safe: a value past its expiry is a miss that each caller keeps at
//! hand. A failed load answers with it instead of the error (and the flight
//! stores it again, marked, for the throttle, so that nobody loads it before
//! then); past the soft timeout the caller answers with it and the flight
//! goes on alone.

mod entry;
mod load;
mod read;
mod store;

use std::future::Future;
use std::sync::{Arc, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use self::load::{Course, Delivery, Handoff, Leader, Unencodable};
use self::read::{FirstRead, Stored, first_read};
use super::Space;
use super::flight::{Failure, Joined, Waiting};
use crate::codec::ValueFormat;
use crate::engine::stale::StaleCopy;
use crate::error::{BoxError, Error, Result};
use crate::freshness::{Freshness, StaleReason};
use crate::stats::{KeyspaceCounters, bump};

/// A value a loader found: its position, the value, and the tags it is
/// stored under besides its own and its keyspace's.
pub(crate) type Found<V> = (usize, V, Vec<String>);

/// A loader as the protocol takes it: called at most once, in the flight's
/// task, with the positions (in the keys asked for) of the keys to load; it
/// returns the values it found by position.
pub(crate) trait Loader<V>: FnOnce(Vec<usize>) -> Self::Loading + Send + 'static {
    type Loading: Future<Output = std::result::Result<Vec<Found<V>>, BoxError>> + Send + 'static;
}

impl<V, F, Fut> Loader<V> for F
where
    F: FnOnce(Vec<usize>) -> Fut + Send + 'static,
    Fut: Future<Output = std::result::Result<Vec<Found<V>>, BoxError>> + Send + 'static,
{
    type Loading = Fut;
}

/// One key's answer: its value, the bytes it was decoded from (to decode it
/// again for a key listed twice), and whether it is fresh.
pub(crate) struct Got<V> {
    pub(crate) value: Option<V>,
    pub(crate) bytes: Option<Vec<u8>>,
    pub(crate) freshness: Freshness,
}

impl<V> Got<V> {
    fn fresh_value(value: Option<V>, bytes: Option<Vec<u8>>) -> Self {
        let freshness = Freshness::Fresh;
        Got {
            value,
            bytes,
            freshness,
        }
    }
}

/// A key whose answer is a flight's: where to wait, the expired value to
/// answer with if the load fails or is slow (fail-safe), and whether this
/// call leads the flight.
struct Awaited {
    waiting: Waiting,
    stale: Option<StaleCopy>,
    leads: bool,
}

/// Runs the protocol for the distinct full `keys`, with `loader` for those
/// that must be loaded. Answers in the order of `keys`.
///
/// # Errors
/// With fail-closed, backend and timeout errors of the read. Always:
/// [`Error::Load`] naming the first key whose load failed, and
/// [`Error::Decode`] for a loaded value that no longer decodes.
pub(crate) async fn run<V, L>(
    space: &Space,
    (format, tags_of): (ValueFormat, fn(&V) -> Vec<String>),
    keys: &[String],
    loader: L,
) -> Result<Vec<Got<V>>>
where
    V: Serialize + DeserializeOwned + Send + 'static,
    L: Loader<V>,
{
    let flights = space.engine.flights();
    let epoch = flights.epoch();
    let (reads, degraded) = first_read(space, keys).await?;
    let mut leaders = Vec::new();
    let answers: Vec<_> = (keys.iter().zip(reads).enumerate())
        .map(|(index, (key, read))| classify(space, format, (index, key), read, &mut leaders))
        .collect();
    // Only a call that loads can be handed a value: hits allocate nothing.
    let mut handoff: Option<Handoff<V>> = None;
    if !leaders.is_empty() {
        // A flight that finished while our read was out may have stored
        // some of these keys: read them again before loading.
        let reread = !degraded && flights.retired_since(epoch);
        let course = Course { degraded, reread };
        let handed: Handoff<V> = Arc::default();
        handoff = Some(Arc::clone(&handed));
        let delivery = Delivery {
            format,
            tags_of,
            handoff: handed,
        };
        let fly = load::fly(space.clone(), delivery, leaders, loader, course);
        tokio::spawn(fly.instrument(space.load_span()));
    }
    let mut got = Vec::with_capacity(answers.len());
    for (index, (key, answer)) in keys.iter().zip(answers).enumerate() {
        match answer {
            Ok(ready) => got.push(ready),
            Err(pending) => {
                let settled = settle(space, format, key, pending).await;
                got.push(settled.or_else(|error| handed_over(handoff.as_ref(), index, error))?);
            }
        }
    }
    Ok(got)
}

/// Waits for a pending key's flight: its value, or under fail-safe the
/// expired value when the load failed or passed the soft timeout (counted
/// from the flight's start: a caller that joins a late load does not wait).
async fn settle<V: DeserializeOwned>(
    space: &Space,
    format: ValueFormat,
    key: &str,
    pending: Awaited,
) -> Result<Got<V>> {
    let Awaited {
        waiting,
        stale,
        leads,
    } = pending;
    // An expired value that no longer decodes is no fallback.
    let stale = stale.and_then(|copy| {
        let value = format.decode::<V>(copy.payload()).ok()?;
        Some((value, copy))
    });
    let soft = (space.load.soft_timeout).map(|limit| waiting.started() + limit);
    let (outcome, stale) = match (soft, stale) {
        (Some(deadline), Some(stale)) => {
            match tokio::time::timeout_at(deadline, waiting.outcome()).await {
                Ok(outcome) => (outcome, Some(stale)),
                Err(_soft_timeout) => {
                    if leads {
                        bump(&space.counters.background_loads);
                    }
                    return Ok(answer_stale(space, stale, StaleReason::LoaderTimeout));
                }
            }
        }
        (_, stale) => (waiting.outcome().await, stale),
    };
    match outcome {
        Ok(bytes) => {
            let decoded = bytes.as_deref().map(|b| decode(space, format, key, b));
            Ok(Got::fresh_value(decoded.transpose()?.flatten(), bytes))
        }
        Err(failure) => {
            let reason = load::stale_reason(&failure);
            let stale = stale.or_else(|| carried(format, &failure));
            match stale {
                Some(stale) => Ok(answer_stale(space, stale, reason)),
                None => Err(Error::Load {
                    key: key.to_owned(),
                    source: failure,
                }),
            }
        }
    }
}

/// For a key whose value this call loaded but the codec refused (fail-open),
/// the value itself; any other error as it is.
fn handed_over<V>(handoff: Option<&Handoff<V>>, index: usize, error: Error) -> Result<Got<V>> {
    let (Some(handoff), Error::Load { source, .. }) = (handoff, &error) else {
        return Err(error);
    };
    if source.downcast_ref::<Unencodable>().is_none() {
        return Err(error);
    }
    let mut handed = handoff.lock().unwrap_or_else(PoisonError::into_inner);
    match handed.iter().position(|(at, _)| *at == index) {
        Some(at) => Ok(Got::fresh_value(Some(handed.swap_remove(at).1), None)),
        None => Err(error),
    }
}

/// The expired value a failure brought from another flight's reread.
fn carried<V: DeserializeOwned>(format: ValueFormat, failure: &Failure) -> Option<(V, StaleCopy)> {
    let copy = load::carried_copy(failure)?;
    Some((format.decode::<V>(copy.payload()).ok()?, copy))
}

/// An answer with an expired value, counted and marked on the span.
fn answer_stale<V>(space: &Space, (value, copy): (V, StaleCopy), reason: StaleReason) -> Got<V> {
    count_stale(&space.counters, reason);
    Got {
        value: Some(value),
        bytes: Some(copy.payload().to_vec()),
        freshness: Freshness::Stale(reason),
    }
}

/// Counts one stale answer by its reason (the view marks its span).
fn count_stale(counters: &KeyspaceCounters, reason: StaleReason) {
    bump(match reason {
        StaleReason::LoaderError => &counters.stale_loader_errors,
        StaleReason::LoaderTimeout => &counters.stale_loader_timeouts,
        StaleReason::RedisDown => &counters.stale_redis_down,
    });
    tracing::debug!(reason = reason.as_str(), "answered with an expired value");
}

/// Marks `span` with the reason of the first stale answer in `got`, if any.
pub(crate) fn mark_stale<V>(span: &tracing::Span, got: &[Got<V>]) {
    let stale = got.iter().find_map(|got| match got.freshness {
        Freshness::Stale(reason) => Some(reason),
        Freshness::Fresh => None,
    });
    if let Some(reason) = stale {
        span.record("cache.stale", reason.as_str());
    }
}

/// Steps 2 and 3 for one key (`index`, `key`): its answer now (`Ok`), or the
/// flight to wait for (`Err`); a key this call loads goes to `leaders`.
fn classify<V: DeserializeOwned>(
    space: &Space,
    format: ValueFormat,
    (index, key): (usize, &str),
    read: FirstRead,
    leaders: &mut Vec<Leader>,
) -> std::result::Result<Got<V>, Awaited> {
    let counters = &space.counters;
    let flights = space.engine.flights();
    let (heal, stale) = match read.held {
        Stored::Value(fresh) => match format.decode::<V>(&fresh.payload) {
            Ok(value) => {
                bump(&counters.hits);
                let (bytes, ttl) = (fresh.payload, fresh.ttl);
                if let Some(ticket) = read.ticket {
                    let kept = (bytes.as_slice(), fresh.tags.map(Arc::new));
                    space.local.fetched_decoded(key, kept, None, ttl, ticket);
                }
                // Served now; reloaded in the background with the misses.
                if space.wants_refresh(ttl)
                    && let Some(flight) = flights.lead(key)
                {
                    bump(&counters.refreshes);
                    leaders.push(Leader::new(index, flight, false, None));
                }
                return Ok(Got::fresh_value(Some(value), Some(bytes)));
            }
            Err(source) => {
                // Old schema, foreign writer or corruption: heal by reloading.
                bump(&counters.decode_errors);
                tracing::debug!(error = %source, "undecodable value, reloading");
                space.local.written(key);
                (true, None)
            }
        },
        Stored::Stale(copy) => match copy.serve_now {
            // Within the throttle after a failed load, or Redis down.
            Some(reason) => match format.decode::<V>(copy.payload()) {
                Ok(value) => return Ok(answer_stale(space, (value, copy), reason)),
                Err(_) => {
                    bump(&counters.decode_errors);
                    (true, None)
                }
            },
            None => (false, Some(copy)),
        },
        Stored::Absent => {
            bump(&counters.negative_hits);
            return Ok(Got::fresh_value(None, None));
        }
        Stored::Nothing => (false, None),
    };
    bump(&counters.misses);
    match flights.join(key) {
        Joined::Leader(flight, waiting) => {
            let found = stale.clone().filter(|copy| copy.in_redis);
            leaders.push(Leader::new(index, flight, heal, found));
            let leads = true;
            Err(Awaited {
                waiting,
                stale,
                leads,
            })
        }
        Joined::Waiter(waiting) => {
            bump(&counters.coalesced_waits);
            let leads = false;
            Err(Awaited {
                waiting,
                stale,
                leads,
            })
        }
    }
}

/// Decodes a loaded value; a failure names the key and is counted.
pub(crate) fn decode<V: DeserializeOwned>(
    space: &Space,
    format: ValueFormat,
    full_key: &str,
    bytes: &[u8],
) -> Result<Option<V>> {
    format.decode(bytes).map(Some).map_err(|source| {
        bump(&space.counters.decode_errors);
        Error::Decode {
            key: full_key.to_owned(),
            source,
        }
    })
}
