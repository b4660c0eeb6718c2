//! Writes on values stored with a fail-safe header (see `stored::stamp`):
//! moving a value's expiry, and serving an expired value again after a
//! failed load without overwriting a newer one.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{Atomic, RedisForm, args};
use crate::backend::memory::{Store, deadline};
use crate::error::Result;
use crate::stored::stamp::{HEADER, MAGIC};
use crate::ttl::ttl_millis;

/// KEYS: the value. ARGV: the header's magic, its new tail (state and
/// expiry), the TTL with the window (ms), the TTL alone (ms, for a value
/// without a header). Returns whether the key existed.
static EXPIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if string.len(v) >= 12 and string.sub(v, 1, 3) == ARGV[1] then
  redis.call('SETRANGE', KEYS[1], 3, ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return 1
",
    )
});

/// Moves the logical expiry of the value at `key` to `ttl` from now, and
/// Redis' to the window after that (or to `ttl`, for a value written
/// without a header).
pub(crate) struct Expire<'a> {
    pub(crate) key: &'a str,
    /// The header's bytes from offset 3: state (fresh) and the new expiry.
    pub(crate) tail: [u8; 9],
    pub(crate) ttl: Duration,
    pub(crate) window: Duration,
}

impl Expire<'_> {
    fn kept(&self) -> Duration {
        self.ttl
            .saturating_add(self.window)
            .min(crate::ttl::MAX_TTL)
    }
}

impl Atomic for Expire<'_> {
    type Output = bool;
    type Reply = i64;
    const NAME: &'static str = "expire";

    fn redis(&self) -> RedisForm<'_> {
        let kept = ttl_millis(self.kept()).to_string();
        let ttl = ttl_millis(self.ttl).to_string();
        let parts = [&MAGIC[..], &self.tail[..], kept.as_bytes(), ttl.as_bytes()];
        RedisForm::Script(&EXPIRE, vec![self.key], args(parts))
    }

    fn decode(&self, existed: i64) -> Result<bool> {
        Ok(existed == 1)
    }

    fn in_memory(&self, store: &mut Store) -> Result<bool> {
        let now = store.now();
        let (kept, tail) = (self.kept(), self.tail);
        let Some(bytes) = store.bytes(self.key, "GET")? else {
            return Ok(false);
        };
        let sealed = bytes.len() >= HEADER && bytes[..3] == MAGIC;
        let ttl = match sealed {
            true => {
                bytes[3..HEADER].copy_from_slice(&tail);
                kept
            }
            false => self.ttl,
        };
        if let Some(entry) = store.entry(self.key) {
            entry.expires_at = Some(deadline(now, ttl));
        }
        Ok(true)
    }
}

/// KEYS: the value. ARGV: the bytes read, the bytes to write. Writes them,
/// keeping the key's expiry, only if the value is still the one read.
static REPLACE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local left = redis.call('PTTL', KEYS[1])
if left > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', left)
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
",
    )
});

/// Replaces the value at `key` with `bytes`, keeping its expiry, if it still
/// holds `read`: a value another caller or process stored meanwhile stays.
pub(crate) struct ReplaceIfSame<'a> {
    pub(crate) key: &'a str,
    pub(crate) read: &'a [u8],
    pub(crate) bytes: Vec<u8>,
}

impl Atomic for ReplaceIfSame<'_> {
    type Output = bool;
    type Reply = i64;
    const NAME: &'static str = "fail-safe throttle";

    fn redis(&self) -> RedisForm<'_> {
        RedisForm::Script(&REPLACE, vec![self.key], args([self.read, &self.bytes]))
    }

    fn decode(&self, replaced: i64) -> Result<bool> {
        Ok(replaced == 1)
    }

    fn in_memory(&self, store: &mut Store) -> Result<bool> {
        let Some(bytes) = store.bytes(self.key, "GET")? else {
            return Ok(false);
        };
        if bytes.as_slice() != self.read {
            return Ok(false);
        }
        bytes.clone_from(&self.bytes);
        Ok(true)
    }
}
