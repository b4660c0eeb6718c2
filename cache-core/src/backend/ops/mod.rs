//! Multi-step operations, each described once for every backend: how it runs
//! on Redis (one script, one MULTI or one command), the keys it declares, how
//! its reply decodes, and its in-memory twin, which runs under the memory
//! backend's one lock as a script runs alone on Redis.
//!
//! The building blocks build these and hand them to [`Backend::run`]; they
//! never see a backend's insides.
//!
//! [`Backend::run`]: super::Backend::run

pub(crate) mod counter;
pub(crate) mod flag;
pub(crate) mod lease;
pub(crate) mod otp;
pub(crate) mod rate;
pub(crate) mod sequence;
pub(crate) mod set;
pub(crate) mod stamp;
pub(crate) mod tags;

use redis::{Cmd, FromRedisValue, Pipeline, Script};

use super::Retry;
use super::memory::Store;
use crate::error::{Error, Result};

/// How an operation is sent to Redis, with the keys it declares (the first
/// names it in errors).
pub(crate) enum RedisForm<'a> {
    /// A Lua script (EVALSHA, EVAL after a script-cache loss), its keys and
    /// arguments; never sent twice.
    Script(&'static Script, Vec<&'a str>, Vec<Vec<u8>>),
    /// A pipeline on one key's slot, atomic when built with `.atomic()`.
    Pipeline(&'a str, Pipeline, Retry),
    /// One command on one key.
    Command(&'a str, Cmd, Retry),
}

/// One operation that must happen atomically.
pub(crate) trait Atomic {
    /// What the caller gets.
    type Output;
    /// What Redis answers, before decoding.
    type Reply: FromRedisValue;
    /// The name in errors and spans.
    const NAME: &'static str;

    /// How it runs on Redis.
    fn redis(&self) -> RedisForm<'_>;

    /// Turns Redis' answer into the output.
    fn decode(&self, reply: Self::Reply) -> Result<Self::Output>;

    /// Gives a Redis error its meaning (an overflow, say); as is by default.
    fn refine(&self, error: Error) -> Error {
        error
    }

    /// The same operation on the memory backend's store.
    fn in_memory(&self, store: &mut Store) -> Result<Self::Output>;
}

/// The arguments of a script, as Redis gets them.
pub(crate) fn args<const N: usize>(parts: [&[u8]; N]) -> Vec<Vec<u8>> {
    parts.iter().map(|part| part.to_vec()).collect()
}

#[cfg(test)]
mod tests {
    /// Every script of the library, as source.
    const SOURCES: [(&str, &str); 8] = [
        ("counter", include_str!("counter.rs")),
        ("lease", include_str!("lease.rs")),
        ("otp", include_str!("otp.rs")),
        ("rate", include_str!("rate.rs")),
        ("sequence", include_str!("sequence.rs")),
        ("set", include_str!("set.rs")),
        ("stamp", include_str!("stamp.rs")),
        ("tags", include_str!("tags.rs")),
    ];

    /// Whether a script's `key` variable only ever holds a key argument: it
    /// iterates `KEYS`, or its Lua helper `keep(key, ..)` is only called
    /// with `KEYS[...]` (the Rust twin's `self.keep(..)` lines aside).
    fn bound_from_keys(source: &str) -> bool {
        if source.contains("in ipairs(KEYS)") {
            return true;
        }
        let lua_calls = source
            .lines()
            .map(str::trim)
            .filter(|line| line.starts_with("keep("));
        let mut calls = lua_calls.peekable();
        calls.peek().is_some() && calls.all(|line| line.starts_with("keep(KEYS["))
    }

    /// Some proxies (and Redis Cluster) refuse scripts that touch keys not
    /// passed as keys: every key a script touches is `KEYS[...]`, or a
    /// variable bound from `KEYS` only (`for _, key in ipairs(KEYS)`, or a
    /// local function only ever called with `KEYS[...]`).
    #[test]
    fn every_script_touches_only_keys_passed_as_keys() {
        let mut calls = 0;
        for (name, source) in SOURCES {
            for call in source.split("redis.call('").skip(1) {
                let (command, rest) = call.split_once('\'').unwrap_or_default();
                if command == "TIME" {
                    continue;
                }
                let key = rest.trim_start_matches(',').trim_start();
                let key = key.split([',', ')']).next().unwrap_or_default().trim();
                let bound_from_keys = key == "key" && bound_from_keys(source);
                assert!(
                    key.starts_with("KEYS[") || bound_from_keys,
                    "{name}: {command} on `{key}`, not a key argument"
                );
                calls += 1;
            }
        }
        assert!(calls > 40, "only {calls} calls found: the scan is broken");
    }
}
