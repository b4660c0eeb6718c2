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

mod load;
mod read;
mod store;

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use self::load::{Course, Leader};
use self::read::{FirstRead, Stored, first_read};
use super::Space;
use super::flight::{Joined, Waiting};
use crate::codec::ValueFormat;
use crate::error::{BoxError, Error, Result};
use crate::stats::bump;

/// A loader as the protocol takes it: called at most once, in the flight's
/// task, with the positions (in the keys asked for) of the keys to load; it
/// returns the values it found by position.
pub(crate) trait Loader<V>: FnOnce(Vec<usize>) -> Self::Loading + Send + 'static {
    type Loading: Future<Output = std::result::Result<Vec<(usize, V)>, BoxError>> + Send + 'static;
}

impl<V, F, Fut> Loader<V> for F
where
    F: FnOnce(Vec<usize>) -> Fut + Send + 'static,
    Fut: Future<Output = std::result::Result<Vec<(usize, V)>, BoxError>> + Send + 'static,
{
    type Loading = Fut;
}

/// One key's answer: its value, and the bytes it was decoded from (to
/// decode it again for a key listed twice).
pub(crate) struct Got<V> {
    pub(crate) value: Option<V>,
    pub(crate) bytes: Option<Vec<u8>>,
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
    format: ValueFormat,
    keys: &[String],
    loader: L,
) -> Result<Vec<Got<V>>>
where
    V: Serialize + DeserializeOwned + Send + 'static,
    L: Loader<V>,
{
    let flights = space.settings.engine.flights();
    let epoch = flights.epoch();
    let (reads, degraded) = first_read(space, keys).await?;
    let mut leaders = Vec::new();
    let answers: Vec<_> = (keys.iter().zip(reads).enumerate())
        .map(|(index, (key, read))| classify(space, format, (index, key), read, &mut leaders))
        .collect();
    if !leaders.is_empty() {
        // A flight that finished while our read was out may have stored
        // some of these keys: read them again before loading.
        let reread = !degraded && flights.retired_since(epoch);
        let course = Course { degraded, reread };
        let fly = load::fly(space.clone(), format, leaders, loader, course);
        tokio::spawn(fly.instrument(space.load_span()));
    }
    let mut got = Vec::with_capacity(answers.len());
    for (key, answer) in keys.iter().zip(answers) {
        let waiting = match answer {
            Ok(ready) => {
                got.push(ready);
                continue;
            }
            Err(waiting) => waiting,
        };
        let bytes = match waiting.outcome().await {
            Ok(bytes) => bytes,
            Err(source) => {
                return Err(Error::Load {
                    key: key.clone(),
                    source,
                });
            }
        };
        let decoded = bytes.as_deref().map(|b| decode(space, format, key, b));
        let value = decoded.transpose()?.flatten();
        got.push(Got { value, bytes });
    }
    Ok(got)
}

/// Steps 2 and 3 for one key (`index`, `key`): its answer now (`Ok`), or the
/// flight to wait for (`Err`); a key this call loads goes to `leaders`.
fn classify<V: DeserializeOwned>(
    space: &Space,
    format: ValueFormat,
    (index, key): (usize, &str),
    read: FirstRead,
    leaders: &mut Vec<Leader>,
) -> std::result::Result<Got<V>, Waiting> {
    let counters = &space.counters;
    let flights = space.settings.engine.flights();
    let heal = match read.held {
        Stored::Value(bytes, ttl) => match format.decode::<V>(&bytes) {
            Ok(value) => {
                bump(&counters.hits);
                if let Some(ticket) = read.ticket {
                    space.local.fetched(key, &bytes, ttl, ticket);
                }
                // Served now; reloaded in the background with the misses.
                if space.wants_refresh(ttl)
                    && let Some(flight) = flights.lead(key)
                {
                    bump(&counters.refreshes);
                    leaders.push(Leader::new(index, flight, false));
                }
                let (value, bytes) = (Some(value), Some(bytes));
                return Ok(Got { value, bytes });
            }
            Err(source) => {
                // Old schema, foreign writer or corruption: heal by reloading.
                bump(&counters.decode_errors);
                tracing::debug!(error = %source, "undecodable value, reloading");
                space.local.written(key);
                true
            }
        },
        Stored::Absent => {
            bump(&counters.negative_hits);
            return Ok(Got {
                value: None,
                bytes: None,
            });
        }
        Stored::Nothing => false,
    };
    bump(&counters.misses);
    match flights.join(key) {
        Joined::Leader(flight, waiting) => {
            leaders.push(Leader::new(index, flight, heal));
            Err(waiting)
        }
        Joined::Waiter(waiting) => {
            bump(&counters.coalesced_waits);
            Err(waiting)
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
