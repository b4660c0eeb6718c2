//! The embedded in-process backend: a map behind a mutex, with real TTLs.
//!
//! Expired entries are invisible at once and are purged by a sweep that runs
//! once the writes since the last sweep outnumber the entries that sweep kept
//! (at least [`MIN_SWEEP_WRITES`]), or a second has passed. So the map holds at
//! most about twice its live entries, at an amortized O(1) cost per write.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{Bounds, SetMode, Ttl};
use crate::error::{Error, Result};

const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
const MIN_SWEEP_WRITES: usize = 64;

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    expires_at: Option<Instant>,
}

impl Entry {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

#[derive(Debug)]
struct State {
    entries: HashMap<String, Entry>,
    writes_since_sweep: usize,
    kept_by_last_sweep: usize,
    last_sweep: Instant,
}

impl State {
    /// The live entry at `key`, dropping it first if it has expired.
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Entry> {
        if self
            .entries
            .get(key)
            .is_some_and(|entry| !entry.is_live(now))
        {
            self.entries.remove(key);
        }
        self.entries.get_mut(key)
    }

    fn note_write(&mut self, now: Instant) {
        self.writes_since_sweep += 1;
        if self.writes_since_sweep > self.kept_by_last_sweep.max(MIN_SWEEP_WRITES)
            || now.duration_since(self.last_sweep) >= SWEEP_INTERVAL
        {
            self.entries.retain(|_, entry| entry.is_live(now));
            self.writes_since_sweep = 0;
            self.kept_by_last_sweep = self.entries.len();
            self.last_sweep = now;
        }
    }
}

#[derive(Debug)]
pub(crate) struct MemoryBackend {
    state: Mutex<State>,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend {
            state: Mutex::new(State {
                entries: HashMap::new(),
                writes_since_sweep: 0,
                kept_by_last_sweep: 0,
                last_sweep: Instant::now(),
            }),
        }
    }
}

fn deadline(now: Instant, ttl: Duration) -> Instant {
    // A TTL too far out for `Instant` is as good as no expiry.
    now.checked_add(ttl)
        .unwrap_or(now + Duration::from_secs(100 * 365 * 24 * 3600))
}

impl MemoryBackend {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, but a poisoned map is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Entries held, live or expired but not yet swept: what the map costs in memory.
    pub(crate) fn stored_entries(&self) -> usize {
        self.lock().entries.len()
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let now = Instant::now();
        Ok(self.lock().live(key, now).map(|entry| entry.value.clone()))
    }

    pub(crate) fn set(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<bool> {
        let now = Instant::now();
        let mut state = self.lock();
        if mode == SetMode::IfAbsent && state.live(key, now).is_some() {
            return Ok(false);
        }
        let expires_at = ttl.map(|ttl| deadline(now, ttl));
        state
            .entries
            .insert(key.to_owned(), Entry { value, expires_at });
        state.note_write(now);
        Ok(true)
    }

    pub(crate) fn delete(&self, key: &str) -> Result<bool> {
        let now = Instant::now();
        let mut state = self.lock();
        let existed = state.live(key, now).is_some();
        state.entries.remove(key);
        Ok(existed)
    }

    pub(crate) fn exists(&self, key: &str) -> Result<bool> {
        let now = Instant::now();
        Ok(self.lock().live(key, now).is_some())
    }

    pub(crate) fn ttl(&self, key: &str) -> Result<Ttl> {
        let now = Instant::now();
        Ok(match self.lock().live(key, now) {
            None => Ttl::Missing,
            Some(Entry {
                expires_at: None, ..
            }) => Ttl::Persistent,
            // Whole milliseconds, as PTTL reports them.
            Some(Entry {
                expires_at: Some(at),
                ..
            }) => Ttl::Expires(Duration::from_millis(
                u64::try_from(at.duration_since(now).as_millis()).unwrap_or(u64::MAX),
            )),
        })
    }

    pub(crate) fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        let now = Instant::now();
        let mut state = self.lock();
        Ok(match state.live(key, now) {
            Some(entry) => {
                entry.expires_at = Some(deadline(now, ttl));
                true
            }
            None => false,
        })
    }

    pub(crate) fn take(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let now = Instant::now();
        let mut state = self.lock();
        let live = state.live(key, now).is_some();
        Ok(state
            .entries
            .remove(key)
            .filter(|_| live)
            .map(|entry| entry.value))
    }

    pub(crate) fn incr(
        &self,
        key: &str,
        delta: i64,
        bounds: Bounds,
        ttl: Option<Duration>,
    ) -> Result<i64> {
        let now = Instant::now();
        let mut state = self.lock();
        let (current, expires_at) = match state.live(key, now) {
            Some(entry) => {
                let current = std::str::from_utf8(&entry.value)
                    .ok()
                    .and_then(|text| text.parse::<i64>().ok())
                    .ok_or_else(|| Error::NotAnInteger {
                        key: key.to_owned(),
                    })?;
                (current, entry.expires_at)
            }
            None => (0, ttl.map(|ttl| deadline(now, ttl))),
        };
        let next = i128::from(current) + i128::from(delta);
        let next = match i64::try_from(next) {
            Ok(next) if bounds.contains(i128::from(next)) => next,
            _ => {
                return Err(Error::Overflow {
                    key: key.to_owned(),
                    delta,
                });
            }
        };
        let value = next.to_string().into_bytes();
        state
            .entries
            .insert(key.to_owned(), Entry { value, expires_at });
        state.note_write(now);
        Ok(next)
    }
}
