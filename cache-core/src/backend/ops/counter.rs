//! Counters: an increment that refuses to leave the value type's range and
//! gives a new key its TTL.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{FromRedisValue, Script};

use super::{Atomic, RedisForm};
use crate::backend::Retry;
use crate::backend::memory::{Store, Value, deadline};
pub(crate) use crate::codec::Bounds;
use crate::error::{Error, Result};
use crate::ttl::ttl_millis;

/// Bounded, TTL-aware increment in one atomic step, for every bound and
/// every server from Redis 6.2 (no `PEXPIRE ... NX`, which needs 7.0).
///
/// The current value is checked against the range it may hold for the result
/// to stay in bounds (ARGV[2] and ARGV[3], computed by the caller, empty for
/// "no limit") before anything is written, so a refused increment changes
/// nothing and nothing has to be undone. The comparison is on decimal strings,
/// exact over the whole `i64` range, where Lua's doubles are not. INCRBY
/// itself refuses to leave the `i64` range, also before writing.
static INCR_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local function cmp(a, b)
  local na, nb = a:sub(1, 1) == '-', b:sub(1, 1) == '-'
  if na ~= nb then return na and -1 or 1 end
  local r = 0
  if #a ~= #b then r = #a < #b and -1 or 1 elseif a ~= b then r = a < b and -1 or 1 end
  return na and -r or r
end
local cur = redis.call('GET', KEYS[1]) or '0'
if cur ~= '0' and not string.match(cur, '^%-?[1-9]%d*$') then
  return redis.error_reply('ERR value is not an integer or out of range')
end
if (ARGV[2] ~= '' and cmp(cur, ARGV[2]) < 0) or (ARGV[3] ~= '' and cmp(cur, ARGV[3]) > 0) then
  return redis.error_reply('OVERFLOW counter would leave the range of its type')
end
redis.call('INCRBY', KEYS[1], ARGV[1])
if ARGV[4] ~= '' and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return redis.call('GET', KEYS[1])
",
    )
});

/// Adds `delta` to the integer at `key`, refusing to leave `bounds`; a key
/// without an expiry (a new one) gets `ttl`, a key with one keeps it. The
/// output is the new value.
pub(crate) struct Incr<'a> {
    pub(crate) key: &'a str,
    pub(crate) delta: i64,
    pub(crate) bounds: Bounds,
    pub(crate) ttl: Option<Duration>,
}

impl Incr<'_> {
    fn overflow(&self) -> Error {
        Error::Overflow {
            key: self.key.to_owned(),
            delta: self.delta,
        }
    }
}

impl Atomic for Incr<'_> {
    type Output = i64;
    type Reply = redis::Value;
    const NAME: &'static str = "INCRBY";

    fn redis(&self) -> RedisForm<'_> {
        if self.bounds.is_full_range() && self.ttl.is_none() {
            // INCRBY alone refuses to overflow and changes nothing then.
            let cmd = redis::cmd("INCRBY").arg(self.key).arg(self.delta).take();
            return RedisForm::Command(self.key, cmd, Retry::Never);
        }
        // An empty range refuses every current value: the script reports it.
        let (low, high) = self
            .bounds
            .current_range(self.delta)
            .unwrap_or((Some(1), Some(0)));
        let limit = |bound: Option<i64>| bound.map(|b| b.to_string()).unwrap_or_default();
        let ttl = self
            .ttl
            .map(|t| ttl_millis(t).to_string())
            .unwrap_or_default();
        let args = [self.delta.to_string(), limit(low), limit(high), ttl];
        RedisForm::Script(
            &INCR_SCRIPT,
            vec![self.key],
            args.map(String::into_bytes).to_vec(),
        )
    }

    fn decode(&self, reply: redis::Value) -> Result<i64> {
        let value = match reply {
            redis::Value::Int(value) => Some(value),
            other => String::from_redis_value(other)
                .ok()
                .and_then(|text| text.parse().ok()),
        };
        value.ok_or_else(|| Error::NotAnInteger {
            key: self.key.to_owned(),
        })
    }

    /// Redis reports an overflow as a plain error; give it its own variant.
    fn refine(&self, error: Error) -> Error {
        if let Error::Backend { source, .. } = &error {
            let text = source.to_string();
            if text.contains("OVERFLOW") || text.contains("would overflow") {
                return self.overflow();
            }
        }
        error
    }

    fn in_memory(&self, store: &mut Store) -> Result<i64> {
        let now = store.now();
        let fresh_expiry = self.ttl.map(|ttl| deadline(now, ttl));
        let (current, expires_at) = match store.integer(self.key, "INCRBY")? {
            Some(current) => {
                let expires_at = store.entry(self.key).and_then(|entry| entry.expires_at);
                (current, expires_at.or(fresh_expiry))
            }
            None => (0, fresh_expiry),
        };
        let next = i128::from(current) + i128::from(self.delta);
        let next = match i64::try_from(next) {
            Ok(next) if self.bounds.contains(i128::from(next)) => next,
            _ => return Err(self.overflow()),
        };
        let value = Value::Bytes(next.to_string().into_bytes());
        store.insert(self.key, value, expires_at);
        Ok(next)
    }
}
