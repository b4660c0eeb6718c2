//! Leases: a key holding its owner's random token for a limited time, with a
//! fencing token per acquisition. Locks and the distributed single flight of
//! `get_or_load` are both built on these.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Script;

use super::{Atomic, RedisForm, args};
use crate::backend::memory::{Store, Value, deadline};
use crate::error::Result;
use crate::ttl::ttl_millis;

/// KEYS: the lock, its fencing counter. ARGV: owner token, lease (ms),
/// how long the counter outlives the lease (ms).
///
/// The fencing token is the server's clock in microseconds, or one more than
/// the last token when that is not below the clock (two acquisitions in one
/// microsecond). So tokens keep increasing after Redis loses the counter, and
/// the counter itself can expire. The counter is read and checked before
/// anything is written, so a refused acquisition leaves both keys as they were.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local t = redis.call('TIME')
local fence = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = redis.call('GET', KEYS[2])
if last then
  last = tonumber(last)
  if not last then return redis.error_reply('ERR fencing counter is not an integer') end
  if last >= fence then fence = last + 1 end
end
redis.call('SET', KEYS[2], string.format('%.0f', fence), 'PX', ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return fence
",
    )
});

/// How much longer than the lease a fencing counter is kept. Tokens come
/// from the clock, so the counter only has to bridge acquisitions that run
/// ahead of it within a burst; it does not have to live forever.
const FENCE_MARGIN: Duration = Duration::from_secs(10);

/// Takes the lease at `key` for `token` if nobody holds it; the output is the
/// fencing token, `None` when it is held.
pub(crate) struct Acquire<'a> {
    pub(crate) key: &'a str,
    pub(crate) fence_key: &'a str,
    pub(crate) token: &'a str,
    pub(crate) lease: Duration,
}

impl Atomic for Acquire<'_> {
    type Output = Option<u64>;
    type Reply = Option<u64>;
    const NAME: &'static str = "lock acquire";

    fn redis(&self) -> RedisForm<'_> {
        let lease = ttl_millis(self.lease).to_string();
        let fence = ttl_millis(self.lease.saturating_add(FENCE_MARGIN)).to_string();
        let parts = [self.token.as_bytes(), lease.as_bytes(), fence.as_bytes()];
        RedisForm::Script(&ACQUIRE, vec![self.key, self.fence_key], args(parts))
    }

    fn decode(&self, reply: Option<u64>) -> Result<Option<u64>> {
        Ok(reply)
    }

    fn in_memory(&self, store: &mut Store) -> Result<Option<u64>> {
        if store.entry(self.key).is_some() {
            return Ok(None);
        }
        let clock = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| i64::try_from(since.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or_default();
        let fence = match store.integer(self.fence_key, "GET")? {
            Some(last) if last >= clock => last.saturating_add(1),
            _ => clock,
        };
        let now = store.now();
        let fence_ttl = self.lease.saturating_add(FENCE_MARGIN);
        let count = Value::Bytes(fence.to_string().into_bytes());
        store.insert(self.fence_key, count, Some(deadline(now, fence_ttl)));
        let owner = Value::Bytes(self.token.as_bytes().to_vec());
        store.insert(self.key, owner, Some(deadline(now, self.lease)));
        Ok(Some(u64::try_from(fence).unwrap_or_default()))
    }
}

static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

/// What an owner does with its lease: give it back, or renew it.
pub(crate) enum Change {
    Release,
    Extend(Duration),
}

/// Releases or renews the lease at `key` if `token` still owns it; the
/// output says whether it did.
pub(crate) struct Owned<'a> {
    pub(crate) key: &'a str,
    pub(crate) token: &'a str,
    pub(crate) change: Change,
}

impl Atomic for Owned<'_> {
    type Output = bool;
    type Reply = u64;
    const NAME: &'static str = "lock release";

    fn redis(&self) -> RedisForm<'_> {
        match self.change {
            Change::Release => {
                RedisForm::Script(&RELEASE, vec![self.key], args([self.token.as_bytes()]))
            }
            Change::Extend(lease) => {
                let lease = ttl_millis(lease).to_string();
                let parts = [self.token.as_bytes(), lease.as_bytes()];
                RedisForm::Script(&EXTEND, vec![self.key], args(parts))
            }
        }
    }

    fn decode(&self, reply: u64) -> Result<bool> {
        Ok(reply > 0)
    }

    fn in_memory(&self, store: &mut Store) -> Result<bool> {
        let owned = store
            .bytes(self.key, "GET")?
            .is_some_and(|held| *held == self.token.as_bytes());
        if !owned {
            return Ok(false);
        }
        Ok(match self.change {
            Change::Release => store.remove(self.key).is_some(),
            Change::Extend(lease) => store.expire(self.key, lease),
        })
    }
}
