//! The embedded in-process backend: a map behind a mutex, with real TTLs.
//!
//! Expired entries are invisible at once and are purged by a sweep that runs
//! once the writes since the last sweep outnumber the entries that sweep kept
//! (at least [`MIN_SWEEP_WRITES`]), or a second has passed. So the map holds at
//! most about twice its live entries, at an amortized O(1) cost per write.
//!
//! Multi-step operations run inside [`MemoryBackend::atomically`], under the
//! one lock, which is what a Lua script is on Redis.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::Call;
use crate::error::{Error, Result};
use crate::ttl::Ttl;

const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
const MIN_SWEEP_WRITES: usize = 64;

/// What a key holds; reading it as another kind is a wrong-type error, as on Redis.
#[derive(Debug)]
pub(crate) enum Value {
    Bytes(Vec<u8>),
    Set(HashSet<Vec<u8>>),
    Hash(HashMap<String, i64>),
    /// Timestamps, oldest first (a sliding window's log; a sorted set on Redis).
    Log(VecDeque<Instant>),
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) value: Value,
    pub(crate) expires_at: Option<Instant>,
}

impl Entry {
    /// The bytes it holds, if it holds bytes.
    pub(crate) fn into_bytes(self) -> Option<Vec<u8>> {
        match self.value {
            Value::Bytes(bytes) => Some(bytes),
            _ => None,
        }
    }

    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

/// A set's members and its expiry, both writable.
pub(crate) type SetEntry<'a> = (&'a mut HashSet<Vec<u8>>, &'a mut Option<Instant>);

/// The map as seen by one atomic operation, with the time fixed at its start.
#[derive(Debug)]
pub(crate) struct Store {
    entries: HashMap<String, Entry>,
    writes_since_sweep: usize,
    kept_by_last_sweep: usize,
    last_sweep: Instant,
    now: Instant,
}

/// `now + ttl`; a TTL too far out for `Instant` is as good as no expiry.
pub(crate) fn deadline(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl)
        .unwrap_or(now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Time left until `at`, in whole milliseconds as PTTL reports it.
pub(crate) fn remaining(now: Instant, at: Instant) -> Duration {
    Duration::from_millis(u64::try_from(at.duration_since(now).as_millis()).unwrap_or(u64::MAX))
}

fn wrong_type(operation: &'static str, key: &str) -> Error {
    Error::WrongType {
        operation,
        key: key.to_owned(),
    }
}

impl Store {
    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    /// The live entry at `key`, dropping it first if it has expired.
    pub(crate) fn entry(&mut self, key: &str) -> Option<&mut Entry> {
        let now = self.now;
        if self
            .entries
            .get(key)
            .is_some_and(|entry| !entry.is_live(now))
        {
            self.entries.remove(key);
        }
        self.entries.get_mut(key)
    }

    pub(crate) fn insert(&mut self, key: &str, value: Value, expires_at: Option<Instant>) {
        self.entries
            .insert(key.to_owned(), Entry { value, expires_at });
        self.note_write();
    }

    /// Removes every live key that starts with one of `heads`; returns how many.
    pub(crate) fn remove_under(&mut self, heads: &[String]) -> u64 {
        let now = self.now;
        let mut live_removed = 0;
        self.entries.retain(|key, entry| {
            let doomed = heads.iter().any(|head| key.starts_with(head.as_str()));
            if doomed && entry.is_live(now) {
                live_removed += 1;
            }
            !doomed
        });
        live_removed
    }

    /// Removes `key`; returns the entry if it was live.
    pub(crate) fn remove(&mut self, key: &str) -> Option<Entry> {
        let now = self.now;
        self.entries.remove(key).filter(|entry| entry.is_live(now))
    }

    /// The bytes at `key`, or a wrong-type error if it holds something else.
    pub(crate) fn bytes(
        &mut self,
        key: &str,
        operation: &'static str,
    ) -> Result<Option<&mut Vec<u8>>> {
        self.of_kind(key, operation, |value| match value {
            Value::Bytes(bytes) => Some(bytes),
            _ => None,
        })
    }

    /// The hash at `key`, or a wrong-type error if it holds something else.
    pub(crate) fn hash(
        &mut self,
        key: &str,
        operation: &'static str,
    ) -> Result<Option<&mut HashMap<String, i64>>> {
        self.of_kind(key, operation, |value| match value {
            Value::Hash(fields) => Some(fields),
            _ => None,
        })
    }

    /// What `kind` finds in the value at `key`: `None` when missing, a
    /// wrong-type error when the value is of another kind.
    fn of_kind<'a, T>(
        &'a mut self,
        key: &str,
        operation: &'static str,
        kind: impl FnOnce(&'a mut Value) -> Option<T>,
    ) -> Result<Option<T>> {
        match self.entry(key) {
            None => Ok(None),
            Some(entry) => kind(&mut entry.value)
                .map(Some)
                .ok_or_else(|| wrong_type(operation, key)),
        }
    }

    /// The decimal integer at `key` (as INCR stores it): `None` when missing,
    /// an error naming the key when it holds anything else.
    pub(crate) fn integer(&mut self, key: &str, operation: &'static str) -> Result<Option<i64>> {
        let Some(bytes) = self.bytes(key, operation)? else {
            return Ok(None);
        };
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| text.parse::<i64>().ok())
            .map(Some)
            .ok_or_else(|| Error::NotAnInteger {
                key: key.to_owned(),
            })
    }

    /// The set at `key`, or a wrong-type error if it holds something else.
    pub(crate) fn set(
        &mut self,
        key: &str,
        operation: &'static str,
    ) -> Result<Option<SetEntry<'_>>> {
        match self.entry(key) {
            None => Ok(None),
            Some(Entry {
                value: Value::Set(set),
                expires_at,
            }) => Ok(Some((set, expires_at))),
            Some(_) => Err(wrong_type(operation, key)),
        }
    }

    pub(crate) fn ttl(&mut self, key: &str) -> Ttl {
        let now = self.now;
        match self.entry(key) {
            None => Ttl::Missing,
            Some(Entry {
                expires_at: None, ..
            }) => Ttl::Persistent,
            Some(Entry {
                expires_at: Some(at),
                ..
            }) => Ttl::Expires(remaining(now, *at)),
        }
    }

    /// Sets `key` to expire after `ttl`; returns whether it exists.
    pub(crate) fn expire(&mut self, key: &str, ttl: Duration) -> bool {
        let at = deadline(self.now, ttl);
        match self.entry(key) {
            Some(entry) => {
                entry.expires_at = Some(at);
                true
            }
            None => false,
        }
    }

    fn note_write(&mut self) {
        self.writes_since_sweep += 1;
        if self.writes_since_sweep > self.kept_by_last_sweep.max(MIN_SWEEP_WRITES)
            || self.now.duration_since(self.last_sweep) >= SWEEP_INTERVAL
        {
            let now = self.now;
            self.entries.retain(|_, entry| entry.is_live(now));
            self.writes_since_sweep = 0;
            self.kept_by_last_sweep = self.entries.len();
            self.last_sweep = now;
        }
    }
}

#[derive(Debug)]
pub(crate) struct MemoryBackend {
    store: Mutex<Store>,
    /// Faults injected into every call, for tests of what uses the handle.
    #[cfg(feature = "testing")]
    injector: Option<super::injected::Injector>,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        let now = Instant::now();
        MemoryBackend {
            store: Mutex::new(Store {
                entries: HashMap::new(),
                writes_since_sweep: 0,
                kept_by_last_sweep: 0,
                last_sweep: now,
                now,
            }),
            #[cfg(feature = "testing")]
            injector: None,
        }
    }
}

impl MemoryBackend {
    /// A store whose calls run into what `injector`'s faults say.
    #[cfg(feature = "testing")]
    pub(crate) fn with_faults(injector: super::injected::Injector) -> Self {
        MemoryBackend {
            injector: Some(injector),
            ..MemoryBackend::default()
        }
    }

    /// The timeout of a handle with injected faults, which bounds each
    /// operation as on Redis; `None` otherwise (calls cannot wait).
    pub(crate) fn timeout(&self) -> Option<Duration> {
        #[cfg(feature = "testing")]
        if let Some(injector) = &self.injector {
            return Some(injector.timeout());
        }
        None
    }

    /// Whether faults are injected into this store's calls.
    pub(crate) fn injects(&self) -> bool {
        #[cfg(feature = "testing")]
        return self.injector.is_some();
        #[cfg(not(feature = "testing"))]
        false
    }

    /// Lets `call` through, unless an injected fault ends it.
    pub(crate) async fn admit(&self, call: Call<'_>) -> Result<()> {
        #[cfg(feature = "testing")]
        if let Some(injector) = &self.injector {
            return injector.admit(call).await;
        }
        let _ = call;
        Ok(())
    }

    /// Runs `operation` alone on the store, with the time fixed at its start.
    pub(crate) fn atomically<R>(&self, operation: impl FnOnce(&mut Store) -> R) -> R {
        // Nothing panics while holding the lock, but a poisoned map is still consistent.
        let mut store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        store.now = Instant::now();
        operation(&mut store)
    }

    /// Entries held, live or expired but not yet swept: what the map costs in memory.
    pub(crate) fn stored_entries(&self) -> usize {
        self.atomically(|store| store.entries.len())
    }
}
