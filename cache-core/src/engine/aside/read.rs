//! The reads of cache-aside: the first read of every key (local tier, then
//! Redis in one operation), and the rereads that look for what another flight
//! or process stored meanwhile. Both answer in one type, [`Stored`].

use std::sync::Arc;

use crate::engine::Space;
use crate::engine::access::LocalFirst;
use crate::engine::local::Ticket;
use crate::engine::reading::{Reading, Servable};
use crate::engine::stale::StaleCopy;
use crate::error::Result;
use crate::settings::FailurePolicy;
use crate::ttl::Ttl;

/// What the store holds for a key.
pub(crate) enum Stored {
    /// A value that may be served, with its remaining TTL (`Persistent`
    /// when not read).
    Value(Servable),
    /// Under fail-safe, a value past its expiry.
    Stale(StaleCopy),
    /// A cached absence (the key's "absent" marker).
    Absent,
    /// Nothing.
    Nothing,
}

/// The first read of one key: what is held, and for a value fetched from
/// Redis the local tier's ticket, to keep it only if no write came meanwhile.
pub(super) struct FirstRead {
    pub(super) held: Stored,
    pub(super) ticket: Option<Ticket>,
}

/// Reads `keys`: local copies first, then the rest from Redis within one
/// timeout. Returns what each holds, and whether Redis failed (fail-open:
/// every key not found locally is then `Nothing`).
///
/// # Errors
/// With fail-closed, the backend or timeout error of the read.
pub(super) async fn first_read(space: &Space, keys: &[String]) -> Result<(Vec<FirstRead>, bool)> {
    let LocalFirst { found, missing } = space.local_first(keys);
    // Early refresh is driven by the backend's TTL, seen on backend reads.
    let held = |copy: Option<Arc<[u8]>>| {
        copy.map_or(Stored::Nothing, |b| {
            let (payload, ttl, tags) = (b.to_vec(), Ttl::Persistent, None);
            Stored::Value(Servable { payload, ttl, tags })
        })
    };
    let mut reads: Vec<FirstRead> = (found.into_iter())
        .map(|copy| FirstRead {
            held: held(copy),
            ticket: None,
        })
        .collect();
    let mut remote = Vec::with_capacity(missing.len());
    for (at, ticket) in missing {
        if let Some(read) = reads.get_mut(at) {
            read.ticket = ticket;
        }
        remote.push(at);
    }
    if remote.is_empty() {
        return Ok((reads, false));
    }
    let wanted: Vec<&str> = remote
        .iter()
        .filter_map(|&at| keys.get(at).map(String::as_str))
        .collect();
    let backend = space.backend();
    match backend.within(fetch(space, &wanted)).await {
        Ok(found) => {
            for (at, held) in remote.into_iter().zip(found) {
                if let Some(read) = reads.get_mut(at) {
                    read.held = held;
                }
            }
            Ok((reads, false))
        }
        Err(error) if space.load.failure == FailurePolicy::Closed => Err(error),
        // Fail-open: the error is counted; every key is a miss, or under
        // fail-safe answered by the local tier's last copy.
        Err(_) => {
            if let Some(window) = space.fail_safe() {
                for at in remote {
                    let (Some(read), Some(key)) = (reads.get_mut(at), keys.get(at)) else {
                        continue;
                    };
                    if let Some(bytes) = space.local.last_copy(key, window) {
                        read.held = Stored::Stale(StaleCopy::local(bytes.to_vec()));
                    }
                }
            }
            Ok((reads, true))
        }
    }
}

/// What Redis holds for `keys`. One key: a GET (with PTTL when its TTL
/// matters), which concurrent callers of the handle can share, and the
/// "absent" marker only when there is no value. Several: one MGET per slot
/// of values and markers, or with the TTL a pipeline of GET and PTTL.
async fn fetch(space: &Space, keys: &[&str]) -> Result<Vec<Stored>> {
    let backend = space.backend();
    // The TTL caps a local copy's life, and drives early refresh.
    let with_ttl = space.load.early_refresh.is_some() || space.local.is_on();
    if let [key] = keys {
        let found = match with_ttl {
            true => backend.get_with_ttl(key).await?,
            false => backend
                .get(key)
                .await?
                .map(|bytes| (bytes, Ttl::Persistent)),
        };
        let marker = || space.absent.key_of_full(key, &space.layout);
        let marked = match found {
            None if space.load.negative_ttl.is_some() => backend.exists(&marker()).await?,
            _ => false,
        };
        return held(space, vec![found], &[marked]).await;
    }
    if !with_ttl {
        return reread(space, keys).await;
    }
    let markers = markers(space, keys);
    let (values, markers) =
        futures_util::future::try_join(backend.get_many_with_ttl(keys), backend.get_many(&markers))
            .await?;
    let marked: Vec<bool> = (0..values.len())
        .map(|at| markers.get(at).is_some_and(Option::is_some))
        .collect();
    held(space, values, &marked).await
}

/// What Redis holds now for `keys` (values and "absent" markers, one MGET
/// per slot): what another flight or process stored meanwhile.
pub(crate) async fn reread(space: &Space, keys: &[&str]) -> Result<Vec<Stored>> {
    let markers = markers(space, keys);
    let mut read: Vec<&str> = Vec::with_capacity(keys.len() + markers.len());
    read.extend(keys);
    read.extend(markers.iter().map(String::as_str));
    let mut values = space.backend().get_many(&read).await?;
    let markers = values.split_off(keys.len().min(values.len()));
    let marked: Vec<bool> = (0..values.len())
        .map(|at| markers.get(at).is_some_and(Option::is_some))
        .collect();
    let found = values
        .into_iter()
        .map(|found| found.map(|bytes| (bytes, Ttl::Persistent)));
    held(space, found.collect(), &marked).await
}

/// The "absent" markers of `keys`; none without negative caching.
fn markers(space: &Space, keys: &[&str]) -> Vec<String> {
    if space.load.negative_ttl.is_none() {
        return Vec::new();
    }
    keys.iter()
        .map(|key| space.absent.key_of_full(key, &space.layout))
        .collect()
}

/// Values read from Redis as cache-aside sees them, with whether each key
/// has an "absent" marker: fresh (their tags checked), or past their expiry
/// or invalidated by a tag (kept only under fail-safe, for a failed load).
async fn held(
    space: &Space,
    found: Vec<Option<(Vec<u8>, Ttl)>>,
    marked: &[bool],
) -> Result<Vec<Stored>> {
    let mut readings: Vec<Option<Reading>> = found
        .into_iter()
        .map(|found| found.map(|(stored, ttl)| space.reading(stored, ttl)))
        .collect();
    space.check_tags(&mut readings).await?;
    let fail_safe = space.fail_safe().is_some();
    let held = readings.into_iter().enumerate().map(|(at, reading)| {
        let Some(reading) = reading else {
            return match marked.get(at) {
                Some(true) => Stored::Absent,
                _ => Stored::Nothing,
            };
        };
        match reading.into_aside() {
            Ok(Some(fresh)) => Stored::Value(fresh),
            Err(Some(copy)) if fail_safe => Stored::Stale(copy),
            // Written by a fail-safe view: expired for a view without it.
            Ok(None) | Err(_) => Stored::Nothing,
        }
    });
    Ok(held.collect())
}
