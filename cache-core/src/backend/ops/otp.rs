//! One-time codes: issued with a TTL, consumed by the first correct guess,
//! locked after too many wrong ones.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use sha2::{Digest, Sha256};

use super::{Atomic, RedisForm, args};
use crate::backend::Retry;
use crate::backend::memory::{Store, Value, deadline};
use crate::error::Result;
use crate::ttl::ttl_millis;

/// KEYS: code, attempts. ARGV: guess, max attempts.
/// Returns {outcome, attempts left}: 0 missing, 1 accepted, 2 rejected, 3 locked.
/// The guess is compared by digest, so that the time the comparison takes
/// says nothing about how much of the code a guess got right.
static VERIFY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local code = redis.call('GET', KEYS[1])
if not code then return {0, 0} end
local max = tonumber(ARGV[2])
local attempts = tonumber(redis.call('GET', KEYS[2]) or '0')
if attempts >= max then return {3, 0} end
if redis.sha1hex(code) == redis.sha1hex(ARGV[1]) then
  redis.call('DEL', KEYS[1], KEYS[2])
  return {1, 0}
end
attempts = redis.call('INCR', KEYS[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
if attempts >= max then return {3, 0} end
return {2, max - attempts}
",
    )
});

/// Stores `code` at `code_key` for `ttl` and forgets earlier wrong guesses.
pub(crate) struct Issue<'a> {
    pub(crate) code_key: &'a str,
    pub(crate) attempts_key: &'a str,
    pub(crate) code: &'a str,
    pub(crate) ttl: Duration,
}

impl Atomic for Issue<'_> {
    type Output = ();
    type Reply = ();
    const NAME: &'static str = "SET";

    fn redis(&self) -> RedisForm<'_> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(self.code_key)
            .arg(self.code)
            .arg("PX")
            .arg(ttl_millis(self.ttl))
            .ignore()
            .cmd("DEL")
            .arg(self.attempts_key)
            .ignore();
        RedisForm::Pipeline(self.code_key, pipe, Retry::Idempotent)
    }

    fn decode(&self, (): ()) -> Result<()> {
        Ok(())
    }

    fn in_memory(&self, store: &mut Store) -> Result<()> {
        let expires_at = deadline(store.now(), self.ttl);
        let code = Value::Bytes(self.code.as_bytes().to_vec());
        store.insert(self.code_key, code, Some(expires_at));
        store.remove(self.attempts_key);
        Ok(())
    }
}

/// Checks `guess`; the output is (outcome, attempts left) with outcomes
/// 0 missing, 1 accepted, 2 rejected, 3 locked.
pub(crate) struct Verify<'a> {
    pub(crate) code_key: &'a str,
    pub(crate) attempts_key: &'a str,
    pub(crate) guess: &'a str,
    pub(crate) max_attempts: u32,
}

impl Atomic for Verify<'_> {
    type Output = (u8, u32);
    type Reply = (u8, u32);
    const NAME: &'static str = "verify code";

    fn redis(&self) -> RedisForm<'_> {
        let max = self.max_attempts.to_string();
        RedisForm::Script(
            &VERIFY,
            vec![self.code_key, self.attempts_key],
            args([self.guess.as_bytes(), max.as_bytes()]),
        )
    }

    fn decode(&self, reply: (u8, u32)) -> Result<(u8, u32)> {
        Ok(reply)
    }

    fn in_memory(&self, store: &mut Store) -> Result<(u8, u32)> {
        let max = self.max_attempts;
        let Some(code) = store.bytes(self.code_key, "GET")?.cloned() else {
            return Ok((0, 0));
        };
        let attempts = store.integer(self.attempts_key, "GET")?.unwrap_or(0);
        let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
        if attempts >= max {
            return Ok((3, 0));
        }
        // By digest, as on Redis: the time taken tells nothing of the code.
        if Sha256::digest(&code) == Sha256::digest(self.guess.as_bytes()) {
            store.remove(self.code_key);
            store.remove(self.attempts_key);
            return Ok((1, 0));
        }
        let attempts = attempts + 1;
        let expires_at = store
            .entry(self.code_key)
            .and_then(|entry| entry.expires_at);
        let count = Value::Bytes(attempts.to_string().into_bytes());
        store.insert(self.attempts_key, count, expires_at);
        Ok(if attempts >= max {
            (3, 0)
        } else {
            (2, max - attempts)
        })
    }
}
