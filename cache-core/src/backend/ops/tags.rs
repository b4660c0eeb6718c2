//! Tag states (see `engine::tags`): stamping the tags an entry is written
//! under, and moving tags on when they are invalidated. A state is
//! `<epoch>.<count>`: the count comes from the namespace's clock key, which
//! every change moves on, and the epoch names the clock's life (a clock that
//! was lost starts a new one). The clock and every tag of one namespace share
//! a hash slot: KEYS[1] is the clock, the rest are tags.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{Atomic, RedisForm};
use crate::backend::memory::{Store, Value, deadline};
use crate::error::{Error, Result};
use crate::ttl::{Ttl, ttl_millis};

/// How long an invalidated tag's state is kept at least, so that a load
/// that began before the invalidation still finds it when it stores.
pub(crate) const INVALIDATION_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// ARGV: a new epoch (for a missing clock), the TTL the tags must have left
/// (ms; 0: none, they become persistent), the TTL to give them when they
/// have less (ms); the clock is kept as long. Returns the clock's state,
/// then for each tag its state, "1" if made now ("0" if it was there) and
/// its PTTL.
static STAMP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local function epoch_of(state)
  if not state then return nil end
  return string.match(state, '^(%x+)%.%d+$')
end
local clock = redis.call('GET', KEYS[1])
local epoch = epoch_of(clock)
local count = 0
if epoch then count = tonumber(string.match(clock, '%.(%d+)$')) else epoch = ARGV[1] end
local function keep(key, made)
  if ARGV[2] == '0' then
    redis.call('PERSIST', key)
    return
  end
  local left = redis.call('PTTL', key)
  if made or (left >= 0 and left < tonumber(ARGV[2])) then
    redis.call('PEXPIRE', key, ARGV[3])
  end
end
local out = {}
for i = 2, #KEYS do
  local state = redis.call('GET', KEYS[i])
  local made = epoch_of(state) ~= epoch
  if made then
    count = count + 1
    state = epoch .. '.' .. string.format('%d', count)
    redis.call('SET', KEYS[i], state)
  end
  keep(KEYS[i], made)
  out[#out + 1] = state
  out[#out + 1] = made and '1' or '0'
  out[#out + 1] = tostring(redis.call('PTTL', KEYS[i]))
end
local now = epoch .. '.' .. string.format('%d', count)
if now ~= clock then redis.call('SET', KEYS[1], now, 'KEEPTTL') end
keep(KEYS[1], not clock)
table.insert(out, 1, now)
return out
",
    )
});

/// ARGV: a new epoch (for a missing clock), the least TTL an invalidated
/// tag keeps (ms). Moves the clock on once and gives every tag its state;
/// returns it. The clock lives at least as long as any tag.
static BUMP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local clock = redis.call('GET', KEYS[1])
local epoch = clock and string.match(clock, '^(%x+)%.%d+$')
local count = 0
if epoch then count = tonumber(string.match(clock, '%.(%d+)$')) else epoch = ARGV[1] end
local now = epoch .. '.' .. string.format('%d', count + 1)
for i = 1, #KEYS do
  local left = redis.call('PTTL', KEYS[i])
  if left == -1 then
    redis.call('SET', KEYS[i], now)
  else
    redis.call('SET', KEYS[i], now, 'PX', math.max(left, tonumber(ARGV[2])))
  end
end
return now
",
    )
});

/// One tag as a write finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StampedTag {
    pub(crate) state: Vec<u8>,
    /// Made by this write (it was missing, or from a lost clock's epoch).
    pub(crate) made: bool,
    pub(crate) left: Ttl,
}

/// Makes sure every tag in `keys[1..]` has a state (made from the clock at
/// `keys[0]`), living at least `needed` (`None`: without expiry).
pub(crate) struct StampTags<'a> {
    pub(crate) keys: Vec<&'a str>,
    pub(crate) epoch: String,
    pub(crate) needed: Option<Duration>,
}

impl StampTags<'_> {
    /// The TTL given to a tag with less than it needs: twice that, so that
    /// the writes that follow find it long enough and skip this.
    fn given(&self) -> Option<Duration> {
        let needed = self.needed?;
        Some(needed.saturating_mul(2).min(crate::ttl::MAX_TTL))
    }

    /// Makes `key` live at least `needed` (as the script's `keep`).
    fn keep(&self, store: &mut Store, key: &str, made: bool) {
        let now = store.now();
        let short = match (self.needed, store.ttl(key)) {
            (None, _) => true,
            (Some(needed), Ttl::Expires(left)) => left < needed,
            (Some(_), _) => made,
        };
        if short && let Some(entry) = store.entry(key) {
            entry.expires_at = self.given().map(|ttl| deadline(now, ttl));
        }
    }
}

/// The `<epoch>` of a state `<epoch>.<count>`.
pub(crate) fn epoch_of(state: &[u8]) -> Option<&[u8]> {
    let dot = state.iter().position(|&byte| byte == b'.')?;
    let (epoch, count) = (&state[..dot], &state[dot + 1..]);
    let hex = !epoch.is_empty() && epoch.iter().all(u8::is_ascii_hexdigit);
    let digits = !count.is_empty() && count.iter().all(u8::is_ascii_digit);
    (hex && digits).then_some(epoch)
}

/// The `<count>` of a state `<epoch>.<count>`.
pub(crate) fn count_of(state: &[u8]) -> Option<u64> {
    epoch_of(state)?;
    let dot = state.iter().position(|&byte| byte == b'.')?;
    std::str::from_utf8(&state[dot + 1..]).ok()?.parse().ok()
}

fn state(epoch: &[u8], count: u64) -> Vec<u8> {
    let mut state = epoch.to_vec();
    state.push(b'.');
    state.extend_from_slice(count.to_string().as_bytes());
    state
}

/// The clock at `key` in `store`: its epoch and count (a new epoch when missing).
fn clock_in(store: &mut Store, key: &str, epoch: &str) -> Result<(Vec<u8>, u64, Option<Vec<u8>>)> {
    let found = store.bytes(key, "tags")?.map(|bytes| bytes.clone());
    let parsed = found.as_deref().and_then(|found| {
        let count = count_of(found)?;
        Some((epoch_of(found)?.to_vec(), count))
    });
    let (epoch, count) = parsed.unwrap_or_else(|| (epoch.as_bytes().to_vec(), 0));
    Ok((epoch, count, found))
}

impl Atomic for StampTags<'_> {
    type Output = Vec<StampedTag>;
    type Reply = Vec<Vec<u8>>;
    const NAME: &'static str = "tag stamp";

    fn redis(&self) -> RedisForm<'_> {
        let needed = self.needed.map_or(0, ttl_millis).to_string();
        let given = self.given().map_or(0, ttl_millis).to_string();
        let args = vec![
            self.epoch.as_bytes().to_vec(),
            needed.into_bytes(),
            given.into_bytes(),
        ];
        RedisForm::Script(&STAMP, self.keys.clone(), args)
    }

    /// A reply of another shape gives fewer tags than asked for, which the
    /// caller takes as a failed stamp.
    fn decode(&self, reply: Vec<Vec<u8>>) -> Result<Vec<StampedTag>> {
        // First the clock, which the caller read before its load.
        let mut reply = reply.into_iter().skip(1);
        let mut tags = Vec::with_capacity(self.keys.len().saturating_sub(1));
        while let (Some(state), Some(made), Some(left)) = (reply.next(), reply.next(), reply.next())
        {
            let left = std::str::from_utf8(&left)
                .ok()
                .and_then(|l| l.parse::<i64>().ok());
            let left = match left {
                Some(-1) => Ttl::Persistent,
                Some(ms) if ms >= 0 => Ttl::Expires(Duration::from_millis(ms.unsigned_abs())),
                _ => Ttl::Missing,
            };
            let made = made == b"1";
            tags.push(StampedTag { state, made, left });
        }
        Ok(tags)
    }

    fn in_memory(&self, store: &mut Store) -> Result<Vec<StampedTag>> {
        let Some((clock_key, tag_keys)) = self.keys.split_first() else {
            return Err(Error::config(
                "a tag stamp needs the clock's key".to_owned(),
            ));
        };
        let (epoch, mut count, found) = clock_in(store, clock_key, &self.epoch)?;
        let mut tags = Vec::with_capacity(tag_keys.len());
        for key in tag_keys {
            let held = store.bytes(key, "tags")?.map(|bytes| bytes.clone());
            let made = held.as_deref().and_then(epoch_of) != Some(epoch.as_slice());
            if made {
                count += 1;
                store.insert(key, Value::Bytes(state(&epoch, count)), None);
            }
            self.keep(store, key, made);
            let state = store
                .bytes(key, "tags")?
                .map(|b| b.clone())
                .unwrap_or_default();
            let left = store.ttl(key);
            tags.push(StampedTag { state, made, left });
        }
        let clock = state(&epoch, count);
        if found.as_deref() != Some(clock.as_slice()) {
            let expires_at = store.entry(clock_key).and_then(|entry| entry.expires_at);
            store.insert(clock_key, Value::Bytes(clock), expires_at);
        }
        self.keep(store, clock_key, found.is_none());
        Ok(tags)
    }
}

/// Moves the tags in `keys[1..]` on: one new state from the clock at
/// `keys[0]`, given to all of them.
pub(crate) struct BumpTags<'a> {
    pub(crate) keys: Vec<&'a str>,
    pub(crate) epoch: String,
}

impl Atomic for BumpTags<'_> {
    type Output = Vec<u8>;
    type Reply = Vec<u8>;
    const NAME: &'static str = "tag invalidation";

    fn redis(&self) -> RedisForm<'_> {
        let memory = ttl_millis(INVALIDATION_MEMORY).to_string();
        let args = vec![self.epoch.as_bytes().to_vec(), memory.into_bytes()];
        RedisForm::Script(&BUMP, self.keys.clone(), args)
    }

    fn decode(&self, state: Vec<u8>) -> Result<Vec<u8>> {
        Ok(state)
    }

    fn in_memory(&self, store: &mut Store) -> Result<Vec<u8>> {
        let Some(clock_key) = self.keys.first() else {
            return Err(Error::config(
                "a tag invalidation needs the clock's key".to_owned(),
            ));
        };
        let (epoch, count, _) = clock_in(store, clock_key, &self.epoch)?;
        let now = state(&epoch, count + 1);
        let at = store.now();
        for key in self.keys.iter().copied() {
            let expires_at = match store.ttl(key) {
                Ttl::Persistent => None,
                Ttl::Expires(left) => Some(deadline(at, left.max(INVALIDATION_MEMORY))),
                Ttl::Missing => Some(deadline(at, INVALIDATION_MEMORY)),
            };
            store.insert(key, Value::Bytes(now.clone()), expires_at);
        }
        Ok(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_only_in_their_one_shape() {
        assert_eq!(epoch_of(b"00ff.12"), Some(&b"00ff"[..]));
        assert_eq!(count_of(b"00ff.12"), Some(12));
        for bad in [&b"00ff"[..], b".1", b"ab.", b"xy.1", b"ab.1x", b""] {
            assert_eq!(epoch_of(bad), None, "{bad:?}");
        }
    }
}
