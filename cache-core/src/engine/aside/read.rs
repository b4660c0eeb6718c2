//! The reads of cache-aside: the first read of every key (local tier, then
//! Redis in one operation), and the rereads that look for what another flight
//! or process stored meanwhile. Both answer in one type, [`Stored`].

use super::super::local::Ticket;
use super::super::policy::FailurePolicy;
use super::super::stamp::{self, Held, StaleCopy};
use crate::engine::Space;
use crate::error::Result;
use crate::stats::bump;
use crate::ttl::Ttl;

/// What the store holds for a key.
pub(crate) enum Stored {
    /// A value's bytes, with its remaining TTL (`Persistent` when not read).
    Value(Vec<u8>, Ttl),
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
    let mut reads = Vec::with_capacity(keys.len());
    let mut remote = Vec::new();
    for (at, key) in keys.iter().enumerate() {
        // Early refresh is driven by the backend's TTL, seen on backend reads.
        let local = space.local.get(key);
        let held = local.map_or(Stored::Nothing, |b| {
            Stored::Value(b.to_vec(), Ttl::Persistent)
        });
        let remote_read = matches!(held, Stored::Nothing);
        if remote_read {
            remote.push(at);
        } else {
            bump(&space.counters.local_hits);
        }
        // Only a value kept in a local tier needs to know what happened meanwhile.
        let ticket = (remote_read && space.local.is_on()).then(|| space.local.ticket(key));
        reads.push(FirstRead { held, ticket });
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
        Err(error) if space.settings.load.failure == FailurePolicy::Closed => Err(error),
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
    let with_ttl = space.settings.load.early_refresh.is_some() || space.local.is_on();
    if let [key] = keys {
        let found = match with_ttl {
            true => backend.get_with_ttl(key).await?,
            false => backend
                .get(key)
                .await?
                .map(|bytes| (bytes, Ttl::Persistent)),
        };
        let marker = || space.absent.key_of_full(key, &space.settings.layout);
        let held = match found {
            Some((bytes, ttl)) => value(space, bytes, ttl),
            None if space.settings.load.negative_ttl.is_none() => Stored::Nothing,
            None if backend.exists(&marker()).await? => Stored::Absent,
            None => Stored::Nothing,
        };
        return Ok(vec![held]);
    }
    if !with_ttl {
        return reread(space, keys).await;
    }
    let owned: Vec<String> = keys.iter().map(|key| (*key).to_owned()).collect();
    let markers = markers(space, keys);
    let (values, markers) = futures_util::future::try_join(
        backend.get_many_with_ttl(&owned),
        backend.get_many(&markers),
    )
    .await?;
    let marked = |at: usize| markers.get(at).is_some_and(Option::is_some);
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(at, value)| held(space, value, marked(at)))
        .collect())
}

/// What Redis holds now for `keys` (values and "absent" markers, one MGET
/// per slot): what another flight or process stored meanwhile.
pub(crate) async fn reread(space: &Space, keys: &[&str]) -> Result<Vec<Stored>> {
    let mut read: Vec<String> = keys.iter().map(|key| (*key).to_owned()).collect();
    read.extend(markers(space, keys));
    let mut values = space.backend().get_many(&read).await?;
    let markers = values.split_off(keys.len().min(values.len()));
    let marked = |at: usize| markers.get(at).is_some_and(Option::is_some);
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(at, found)| {
            held(
                space,
                found.map(|bytes| (bytes, Ttl::Persistent)),
                marked(at),
            )
        })
        .collect())
}

/// The "absent" markers of `keys`; none without negative caching.
fn markers(space: &Space, keys: &[&str]) -> Vec<String> {
    if space.settings.load.negative_ttl.is_none() {
        return Vec::new();
    }
    keys.iter()
        .map(|key| space.absent.key_of_full(key, &space.settings.layout))
        .collect()
}

/// A value read from Redis as cache-aside sees it: fresh, or past its
/// expiry (kept only under fail-safe).
fn value(space: &Space, stored: Vec<u8>, ttl: Ttl) -> Stored {
    if !space.reads_headers() {
        return Stored::Value(stored, ttl);
    }
    match stamp::hold(stored, ttl) {
        Held::Fresh(payload, left) => Stored::Value(payload, left),
        Held::Stale(copy) if space.fail_safe().is_some() => Stored::Stale(copy),
        // Written by a fail-safe view; expired for a view without it.
        Held::Stale(_) => Stored::Nothing,
    }
}

fn held(space: &Space, found: Option<(Vec<u8>, Ttl)>, marked: bool) -> Stored {
    match (found, marked) {
        (Some((bytes, ttl)), _) => value(space, bytes, ttl),
        (None, true) => Stored::Absent,
        (None, false) => Stored::Nothing,
    }
}
