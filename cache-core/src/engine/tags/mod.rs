//! Tags: invalidating every entry written under a tag, or every entry of a
//! keyspace, with one small write and no scan.
//!
//! Each tag has a state in Redis, `<epoch>.<count>`, under the namespace's
//! tag head (`{ns}:{{ns}#tags}:`, one hash slot for all of them). An entry
//! records the state of each of its tags when it was written (see
//! [`header`]); it is valid while every one of them still has that state.
//! Invalidating a tag gives it a new state, so every entry written before
//! reads as invalidated; a lost state (eviction, a flush, a failover without
//! persistence) does the same, never the reverse.
//!
//! A load that began before an invalidation must not store a fresh-looking
//! entry after it: the namespace's clock counts every change, a load reads
//! it before calling the loader, and a tag whose state was made after that
//! count (other than by this very write) means the value may be older than
//! the invalidation: it is answered, not stored.
//!
//! On Redis, the states are read through a local tier of their own, kept
//! coherent by the handle's client tracking like any other: a warm tagged
//! read costs no round trip for its tags, a cold one one `MGET`.

mod memo;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::Engine;
use super::local::{LocalCopy, LocalSettings};
use crate::backend::Backend;
use crate::backend::ops::tags::{BumpTags, StampTags, StampedTag, count_of, epoch_of};
use crate::error::Result;
use crate::key::{CacheKey, KeyLayout};
use crate::stats::bump;
use crate::stored::tag_header::TagList;
use crate::ttl::Ttl;

/// The local tier of tag states: many tags, each kept until Redis says it
/// changed (the TTL only bounds what an unnoticed change could cost).
const STATE_CACHE: LocalSettings = LocalSettings::new(100_000, Duration::from_secs(300));

/// The name of the clock under the tag head (tag names start `t:` or `k:`).
const CLOCK: &str = "clock";

/// The name of the user tag `tag` under the tag head.
pub(crate) fn user_tag(tag: &str) -> String {
    let mut name = String::from("t:");
    name.push_str(&tag.to_key_string());
    name
}

/// The name of the tag every entry of the keyspace `layout` carries.
pub(crate) fn keyspace_tag(layout: &KeyLayout) -> String {
    format!("k:{}", layout.prefix_and_version())
}

/// Milliseconds since the Unix epoch: only to remember locally how long a
/// tag state is known to live, never compared with another clock.
fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

/// A state as the state cache keeps it: until when the key is known to
/// live (ms since the epoch; 0: unknown, `u64::MAX`: no expiry), then the state.
fn cached_form(state: &[u8], left: Ttl) -> Vec<u8> {
    let until = match left {
        Ttl::Persistent => u64::MAX,
        Ttl::Expires(left) => now_ms().saturating_add(crate::ttl::ttl_millis(left)),
        Ttl::Missing => 0,
    };
    let mut form = until.to_be_bytes().to_vec();
    form.extend_from_slice(state);
    form
}

fn split_cached(form: &[u8]) -> Option<(u64, &[u8])> {
    let (until, state) = form.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*until), state))
}

/// Whether a tag found at a write was unchanged since the load that wrote
/// began, when the clock read `clock`: made by the write itself, or changed
/// at a count the clock had already passed.
pub(crate) fn unchanged_since(tag: &StampedTag, clock: Option<&[u8]>) -> bool {
    if tag.made {
        return true;
    }
    let Some(clock) = clock else { return false };
    let same_life = epoch_of(&tag.state).is_some() && epoch_of(&tag.state) == epoch_of(clock);
    same_life
        && matches!((count_of(&tag.state), count_of(clock)), (Some(tag), Some(clock)) if tag <= clock)
}

impl Engine {
    /// The full key of the tag state `name`.
    fn tag_key(&self, name: &str) -> String {
        format!("{}{name}", self.tag_layout.head())
    }

    /// Runs `with` on the full key of `name`, built in a buffer of the
    /// thread's: a hot read checks its tags without allocating.
    fn with_tag_key<T>(&self, name: &str, with: impl FnOnce(&str) -> T) -> T {
        thread_local! {
            static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        KEY.with(|key| match key.try_borrow_mut() {
            Ok(mut key) => {
                key.clear();
                key.push_str(self.tag_layout.head());
                key.push_str(name);
                with(&key)
            }
            // Only if `with` itself asked for a key: build one.
            Err(_) => with(&self.tag_key(name)),
        })
    }

    /// The state cache, on Redis; made (and tracked) on first use.
    fn state_cache(&self) -> Option<&LocalCopy> {
        if let Some(cache) = self.state_cache.get() {
            return Some(cache);
        }
        if !matches!(self.backend, Backend::Redis(_)) {
            return None;
        }
        Some(self.state_cache.get_or_init(|| {
            let (tier, _) = self.local_tier(&self.tag_layout, STATE_CACHE);
            LocalCopy::new(Some(tier))
        }))
    }

    /// The current state of `name` if known without a backend call: the
    /// state cache on Redis, the store itself on memory. `Some(None)`: missing.
    fn known_state(&self, name: &str) -> Option<Option<Vec<u8>>> {
        let key = self.tag_key(name);
        match &self.backend {
            Backend::Memory(memory) => {
                Some(memory.atomically(|store| {
                    store.bytes(&key, "tags").ok().flatten().map(|b| b.clone())
                }))
            }
            Backend::Redis(_) => {
                let cached = self.state_cache()?.get(&key, self)?;
                split_cached(&cached).map(|(_, state)| Some(state.to_vec()))
            }
        }
    }

    /// Whether the tag `name` has the state `state` now, if that is known
    /// without a backend call (`Some(false)` also when it has none).
    fn state_is(&self, name: &str, state: &[u8], now: Instant) -> Option<bool> {
        self.with_tag_key(name, |key| match &self.backend {
            Backend::Memory(memory) => Some(memory.atomically(|store| {
                let now = store.bytes(key, "tags").ok().flatten();
                now.is_some_and(|now| now.as_slice() == state)
            })),
            Backend::Redis(_) => {
                let cached = self.state_cache()?.get_as_of(key, now)?;
                split_cached(&cached).map(|(_, held)| held == state)
            }
        })
    }

    /// Whether every tag of `list` still has the state it records, from
    /// what is known without a backend call; `None` when something is not
    /// (and no tag is known to have changed). A list this thread found valid
    /// while nothing in the state cache changed since is valid still.
    pub(crate) fn tags_known_valid(&self, list: &TagList) -> Option<bool> {
        // Read before the states: a change after it moves it on.
        let version = self.state_cache().and_then(LocalCopy::version);
        let now = Instant::now();
        if let Some(version) = version
            && memo::holds(self.id, version, list, now)
        {
            return Some(true);
        }
        let mut verdict = Some(true);
        for (name, state) in list.iter() {
            match self.state_is(name, state, now) {
                Some(true) => {}
                Some(false) => return Some(false),
                None => verdict = None,
            }
        }
        if let (Some(true), Some(version)) = (verdict, version) {
            memo::keep(self.id, version, list, now);
        }
        verdict
    }

    /// Whether each of `lists` is still valid: states not known locally are
    /// read in one `MGET` (one hash slot) and kept in the state cache.
    ///
    /// # Errors
    /// Backend and timeout errors of that read.
    pub(crate) async fn tags_valid(&self, lists: &[&TagList]) -> Result<Vec<bool>> {
        let known: Vec<Option<bool>> = lists.iter().map(|l| self.tags_known_valid(l)).collect();
        if known.iter().all(Option::is_some) {
            return Ok(known.into_iter().map(|valid| valid == Some(true)).collect());
        }
        let (mut unknown, now): (Vec<&str>, _) = (Vec::new(), Instant::now());
        for (list, _) in lists
            .iter()
            .zip(&known)
            .filter(|(_, known)| known.is_none())
        {
            for (name, state) in list.iter() {
                if self.state_is(name, state, now).is_none() && !unknown.contains(&name) {
                    unknown.push(name);
                }
            }
        }
        let read = self.read_states(&unknown).await?;
        let state_of = |name: &str| match read.iter().find(|(read, _)| *read == name) {
            Some((_, state)) => state.clone(),
            None => self.known_state(name).flatten(),
        };
        let check = |list: &TagList| {
            (list.iter()).all(|(name, state)| state_of(name).as_deref() == Some(state))
        };
        Ok((lists.iter().zip(known))
            .map(|(list, known)| known.unwrap_or_else(|| check(list)))
            .collect())
    }

    /// Reads the states of `names` in one `MGET`, keeping them in the state cache.
    async fn read_states<'n>(&self, names: &[&'n str]) -> Result<Vec<(&'n str, Option<Vec<u8>>)>> {
        let keys: Vec<String> = names.iter().map(|name| self.tag_key(name)).collect();
        let cache = self.state_cache();
        let tickets: Vec<_> = cache
            .map(|cache| keys.iter().map(|key| cache.ticket(key)).collect())
            .unwrap_or_default();
        let states = self.backend.get_many(&keys).await?;
        let mut read = Vec::with_capacity(names.len());
        for (at, state) in states.into_iter().enumerate() {
            if let (Some(cache), Some(state), Some(ticket), Some(key)) =
                (cache, &state, tickets.get(at), keys.get(at))
            {
                let form = cached_form(state, Ttl::Missing);
                cache.fetched(key, &form, Ttl::Persistent, *ticket);
            }
            read.push((names.get(at).copied().unwrap_or_default(), state));
        }
        Ok(read)
    }

    /// The state of every tag in `names` for an entry Redis keeps for
    /// `kept` (`None`: without expiry), each made when missing and kept at
    /// least that long. Known states that live long enough cost no call.
    ///
    /// # Errors
    /// Backend and timeout errors.
    pub(crate) async fn stamp_tags(
        &self,
        names: &[String],
        kept: Option<Duration>,
    ) -> Result<Vec<StampedTag>> {
        if let Some(known) = self.stamps_known(names, kept) {
            return Ok(known);
        }
        let keys: Vec<String> = names.iter().map(|name| self.tag_key(name)).collect();
        let clock = self.tag_key(CLOCK);
        let cache = self.state_cache();
        let tickets: Vec<_> = cache
            .map(|cache| keys.iter().map(|key| cache.ticket(key)).collect())
            .unwrap_or_default();
        let mut declared = vec![clock.as_str()];
        declared.extend(keys.iter().map(String::as_str));
        let epoch = format!("{:016x}", crate::random::random());
        let op = StampTags {
            keys: declared,
            epoch,
            needed: kept,
        };
        let stamped = self.backend.run(&op).await?;
        if let Some(cache) = cache {
            for ((key, tag), ticket) in keys.iter().zip(&stamped).zip(tickets) {
                let form = cached_form(&tag.state, tag.left);
                cache.fetched(key, &form, Ttl::Persistent, ticket);
            }
        }
        Ok(stamped)
    }

    /// The states of `names` from the state cache, if every one is there
    /// and known to live `kept` longer.
    fn stamps_known(&self, names: &[String], kept: Option<Duration>) -> Option<Vec<StampedTag>> {
        let cache = self.state_cache()?;
        let until = match kept {
            Some(kept) => now_ms().saturating_add(crate::ttl::ttl_millis(kept)),
            None => u64::MAX,
        };
        let mut known = Vec::with_capacity(names.len());
        for name in names {
            let cached = cache.get(&self.tag_key(name), self)?;
            let (alive_until, state) = split_cached(&cached)?;
            if alive_until < until {
                return None;
            }
            let state = state.to_vec();
            known.push(StampedTag {
                state,
                made: false,
                left: Ttl::Persistent,
            });
        }
        Some(known)
    }

    /// The namespace's tag clock, read before a load (`None`: there is none).
    ///
    /// # Errors
    /// Backend and timeout errors.
    pub(crate) async fn tag_clock(&self) -> Result<Option<Vec<u8>>> {
        if let Some(known) = self.known_state(CLOCK) {
            return Ok(known);
        }
        let key = self.tag_key(CLOCK);
        let cache = self.state_cache();
        let ticket = cache.map(|cache| cache.ticket(&key));
        let state = self.backend.get(&key).await?;
        if let (Some(cache), Some(state), Some(ticket)) = (cache, &state, ticket) {
            let form = cached_form(state, Ttl::Missing);
            cache.fetched(&key, &form, Ttl::Persistent, ticket);
        }
        Ok(state)
    }

    /// Gives every tag in `names` a new state: every entry written under one
    /// of them before reads as invalidated from now on (on other handles,
    /// once their tracking reports it).
    ///
    /// # Errors
    /// Backend and timeout errors; the tags may then have changed or not.
    pub(crate) async fn invalidate_tags(&self, names: &[String]) -> Result<()> {
        let keys: Vec<String> = names.iter().map(|name| self.tag_key(name)).collect();
        let clock = self.tag_key(CLOCK);
        let mut declared = vec![clock.as_str()];
        declared.extend(keys.iter().map(String::as_str));
        let epoch = format!("{:016x}", crate::random::random());
        let op = BumpTags {
            keys: declared.clone(),
            epoch,
        };
        let cache = self.state_cache();
        let bumped = match cache {
            Some(cache) => cache.around(&declared, self.backend.run(&op)).await,
            None => self.backend.run(&op).await,
        };
        bumped?;
        bump(&self.stats.tag_invalidations);
        #[cfg(feature = "metrics")]
        metrics::counter!(
            "cache_tag_invalidations_total",
            "namespace" => self.namespace.clone().unwrap_or_default()
        )
        .increment(u64::try_from(names.len()).unwrap_or(u64::MAX));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(state: &[u8], made: bool) -> StampedTag {
        let state = state.to_vec();
        let left = Ttl::Persistent;
        StampedTag { state, made, left }
    }

    #[test]
    fn a_tag_changed_after_the_clock_was_read_is_a_race() {
        let clock = Some(&b"0a.7"[..]);
        assert!(unchanged_since(&tag(b"0a.7", false), clock));
        assert!(unchanged_since(&tag(b"0a.2", false), clock));
        assert!(!unchanged_since(&tag(b"0a.8", false), clock));
        // Another life of the clock, or none read: nothing can be told.
        assert!(!unchanged_since(&tag(b"0b.1", false), clock));
        assert!(!unchanged_since(&tag(b"0a.1", false), None));
        // Made by this very write: nothing changed it meanwhile.
        assert!(unchanged_since(&tag(b"0a.9", true), clock));
    }

    #[test]
    fn tag_names_never_meet_the_clock_or_each_other() {
        assert_eq!(user_tag("tenant:7"), "t:tenant%3A7");
        assert_ne!(user_tag("clock"), CLOCK);
        let layout = KeyLayout::new(Some("gw"), "price", 2);
        assert_eq!(keyspace_tag(&layout), "k:price:v2");
    }
}
