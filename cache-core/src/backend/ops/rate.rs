//! Rate-limit hits: a fixed window counter, or an exact sliding window log.

use std::collections::VecDeque;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{Atomic, RedisForm, args};
use crate::backend::memory::{Entry, Store, Value, deadline, remaining};
use crate::error::{Error, Result};
use crate::ttl::ttl_millis;

/// KEYS: counter. ARGV: limit, window ms. The count and its expiry are set
/// together, so a counter never lives forever.
/// Returns {allowed, count, ms until reset}.
static FIXED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
local allowed = 0
if count <= tonumber(ARGV[1]) then allowed = 1 end
return {allowed, count, ttl}
",
    )
});

/// KEYS: log (a sorted set of hit times in microseconds, server clock).
/// ARGV: limit, window ms. Returns {allowed, count, ms until a slot frees}.
static SLIDING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2]) * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, t[1] .. '.' .. t[2] .. '-' .. count)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  count = count + 1
  allowed = 1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset = 0
if oldest[2] then reset = math.ceil((tonumber(oldest[2]) + window - now) / 1000) end
return {allowed, count, reset}
",
    )
});

/// One hit on `key`; the output is (allowed, count in the window, time until
/// the window resets or a slot frees).
pub(crate) struct Hit<'a> {
    pub(crate) key: &'a str,
    pub(crate) limit: u64,
    pub(crate) window: Duration,
    pub(crate) sliding: bool,
}

impl Hit<'_> {
    fn fixed_in_memory(&self, store: &mut Store) -> Result<(bool, u64, Duration)> {
        let now = store.now();
        let (count, expires_at) = match store.integer(self.key, "INCR")? {
            Some(count) => {
                let count = u64::try_from(count).unwrap_or_default();
                let at = store.entry(self.key).and_then(|e| e.expires_at);
                (count + 1, at.unwrap_or_else(|| deadline(now, self.window)))
            }
            None => (1, deadline(now, self.window)),
        };
        let value = Value::Bytes(count.to_string().into_bytes());
        store.insert(self.key, value, Some(expires_at));
        Ok((count <= self.limit, count, remaining(now, expires_at)))
    }

    fn sliding_in_memory(&self, store: &mut Store) -> Result<(bool, u64, Duration)> {
        let now = store.now();
        let mut log = match store.entry(self.key) {
            None => VecDeque::new(),
            Some(Entry {
                value: Value::Log(log),
                ..
            }) => std::mem::take(log),
            Some(_) => {
                return Err(Error::WrongType {
                    operation: Self::NAME,
                    key: self.key.to_owned(),
                });
            }
        };
        while log
            .front()
            .is_some_and(|&at| now.duration_since(at) >= self.window)
        {
            log.pop_front();
        }
        let allowed = (log.len() as u64) < self.limit;
        if allowed {
            log.push_back(now);
        }
        let count = log.len() as u64;
        let reset = log
            .front()
            .map(|&oldest| remaining(now, deadline(oldest, self.window)))
            .unwrap_or_default();
        let expires_at = Some(deadline(now, self.window));
        store.insert(self.key, Value::Log(log), expires_at);
        Ok((allowed, count, reset))
    }
}

impl Atomic for Hit<'_> {
    type Output = (bool, u64, Duration);
    type Reply = (u8, u64, i64);
    const NAME: &'static str = "rate limit";

    fn redis(&self) -> RedisForm<'_> {
        let limit = self.limit.to_string();
        let window = ttl_millis(self.window).to_string();
        let script = if self.sliding { &SLIDING } else { &FIXED };
        RedisForm::Script(
            script,
            vec![self.key],
            args([limit.as_bytes(), window.as_bytes()]),
        )
    }

    fn decode(&self, (allowed, count, reset): (u8, u64, i64)) -> Result<Self::Output> {
        let reset = Duration::from_millis(reset.max(0).unsigned_abs());
        Ok((allowed == 1, count, reset))
    }

    fn in_memory(&self, store: &mut Store) -> Result<Self::Output> {
        if self.sliding {
            self.sliding_in_memory(store)
        } else {
            self.fixed_in_memory(store)
        }
    }
}
