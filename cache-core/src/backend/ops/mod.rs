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
