//! Sequences: per-key numbers handed out in reserved blocks, kept in a hash
//! with the current number (`cur`) and the reserved maximum (`max`).

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::Script;

use super::{Atomic, RedisForm, args};
use crate::backend::Retry;
use crate::backend::memory::{Store, Value};
use crate::error::{Error, Result};

/// The largest number a sequence hands out or reserves: 2^53, below which
/// Lua's doubles (and JSON readers of the numbers) are exact.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// use cache_core::MAX_SEQUENCE;
/// let seqs = cache_core::Cache::memory().keyspace("seq").sequences::<u64>(10)?;
/// seqs.seed(&1, MAX_SEQUENCE - 10).await?;
/// for _ in 0..10 { seqs.next(&1).await?; }
/// assert!(seqs.next(&1).await.is_err()); // past the limit: refused, nothing changed
/// # Ok(()) }
/// ```
pub const MAX_SEQUENCE: i64 = 1 << 53;

/// KEYS: one hash per key (a key may repeat). ARGV: step, [`MAX_SEQUENCE`].
/// For each key in turn: the next number, the reserved maximum, and 1 when
/// this call reserved a new block.
///
/// Everything is read and checked before anything is written, so a refused
/// call (a hash field that is not a number, a key of another type, a number
/// past the limit) changes no key.
static NEXT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local step, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local state, order, out = {}, {}, {}
for i, key in ipairs(KEYS) do
  local s = state[key]
  if not s then
    local f = redis.call('HMGET', key, 'cur', 'max')
    s = {cur = tonumber(f[1] or '0'), max = tonumber(f[2] or '0')}
    if not s.cur or not s.max then
      return redis.error_reply('ERR hash value is not an integer')
    end
    state[key] = s
    order[#order + 1] = key
  end
  if s.cur >= limit then
    return redis.error_reply('OVERFLOW sequence would pass 2^53')
  end
  local cur, crossed = s.cur + 1, 0
  if cur > s.max then
    s.max = s.max + step * math.ceil((cur - s.max) / step)
    crossed = 1
  end
  if s.max > limit then
    return redis.error_reply('OVERFLOW sequence would pass 2^53')
  end
  s.cur = cur
  out[i] = {cur, s.max, crossed}
end
for _, key in ipairs(order) do
  local s = state[key]
  redis.call('HSET', key, 'cur', string.format('%.0f', s.cur), 'max', string.format('%.0f', s.max))
end
return out
",
    )
});

/// KEYS: the hash. ARGV: persisted maximum. Never moves numbers backwards.
static SEED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = tonumber(redis.call('HGET', KEYS[1], 'cur') or '0')
if not cur then return redis.error_reply('ERR hash value is not an integer') end
local seed = tonumber(ARGV[1])
if cur < seed then
  redis.call('HSET', KEYS[1], 'cur', ARGV[1], 'max', ARGV[1])
  return 1
end
return 0
",
    )
});

/// One allocation: the number, the reserved maximum after it, and whether
/// this call reserved a new block.
pub(crate) type Numbered = (i64, i64, bool);

/// The next number for each key in turn (a key may repeat), all or none.
pub(crate) struct Allocate<'a> {
    pub(crate) keys: &'a [String],
    pub(crate) step: i64,
}

fn past_the_limit(key: &str) -> Error {
    Error::Overflow {
        key: key.to_owned(),
        delta: 1,
    }
}

fn wrong_type(operation: &'static str, key: &str) -> Error {
    Error::WrongType {
        operation,
        key: key.to_owned(),
    }
}

impl Atomic for Allocate<'_> {
    type Output = Vec<Numbered>;
    type Reply = Vec<(i64, i64, u8)>;
    const NAME: &'static str = "sequence next";

    fn redis(&self) -> RedisForm<'_> {
        let step = self.step.to_string();
        let limit = MAX_SEQUENCE.to_string();
        RedisForm::Script(
            &NEXT,
            self.keys.iter().map(String::as_str).collect(),
            args([step.as_bytes(), limit.as_bytes()]),
        )
    }

    fn decode(&self, rows: Vec<(i64, i64, u8)>) -> Result<Vec<Numbered>> {
        Ok(rows
            .into_iter()
            .map(|(value, max, crossed)| (value, max, crossed == 1))
            .collect())
    }

    fn refine(&self, error: Error) -> Error {
        match error.to_string().contains("OVERFLOW") {
            true => past_the_limit(self.keys.first().map(String::as_str).unwrap_or_default()),
            false => error,
        }
    }

    /// Reads and checks every key, then writes, as the script does.
    fn in_memory(&self, store: &mut Store) -> Result<Vec<Numbered>> {
        let mut state: HashMap<&str, (i64, i64)> = HashMap::new();
        let mut numbers = Vec::with_capacity(self.keys.len());
        for key in self.keys {
            let (cur, max) = match state.get(key.as_str()) {
                Some(&known) => known,
                None => match store.hash(key, "HMGET")? {
                    None => (0, 0),
                    Some(fields) => (
                        fields.get("cur").copied().unwrap_or(0),
                        fields.get("max").copied().unwrap_or(0),
                    ),
                },
            };
            if cur >= MAX_SEQUENCE {
                return Err(past_the_limit(key));
            }
            let value = cur + 1;
            let mut reserved_max = max;
            let crossed = value > reserved_max;
            if crossed {
                // Whole blocks until the value fits (value > reserved_max, so at least one).
                let gap = value - reserved_max;
                reserved_max += self.step * ((gap + self.step - 1) / self.step);
            }
            if reserved_max > MAX_SEQUENCE {
                return Err(past_the_limit(key));
            }
            state.insert(key, (value, reserved_max));
            numbers.push((value, reserved_max, crossed));
        }
        for (key, (cur, max)) in state {
            let fields = HashMap::from([("cur".to_owned(), cur), ("max".to_owned(), max)]);
            let expires_at = store.entry(key).and_then(|entry| entry.expires_at);
            store.insert(key, Value::Hash(fields), expires_at);
        }
        Ok(numbers)
    }
}

/// Moves `key`'s sequence up to `persisted_max` if it is below; never down.
/// The output says whether it changed anything.
pub(crate) struct Seed<'a> {
    pub(crate) key: &'a str,
    pub(crate) persisted_max: i64,
}

impl Atomic for Seed<'_> {
    type Output = bool;
    type Reply = u8;
    const NAME: &'static str = "sequence seed";

    fn redis(&self) -> RedisForm<'_> {
        let seed = self.persisted_max.to_string();
        RedisForm::Script(&SEED, vec![self.key], args([seed.as_bytes()]))
    }

    fn decode(&self, changed: u8) -> Result<bool> {
        Ok(changed == 1)
    }

    fn in_memory(&self, store: &mut Store) -> Result<bool> {
        let fields = match store.hash(self.key, "HSET")? {
            Some(fields) => fields,
            None => {
                store.insert(self.key, Value::Hash(HashMap::new()), None);
                store
                    .hash(self.key, "HSET")?
                    .ok_or_else(|| wrong_type("HSET", self.key))?
            }
        };
        if fields.get("cur").copied().unwrap_or(0) >= self.persisted_max {
            return Ok(false);
        }
        fields.insert("cur".to_owned(), self.persisted_max);
        fields.insert("max".to_owned(), self.persisted_max);
        Ok(true)
    }
}

/// The last number handed out for `key`, if any.
pub(crate) struct Current<'a> {
    pub(crate) key: &'a str,
}

impl Atomic for Current<'_> {
    type Output = Option<i64>;
    type Reply = Option<i64>;
    const NAME: &'static str = "HGET";

    fn redis(&self) -> RedisForm<'_> {
        let cmd = redis::cmd("HGET").arg(self.key).arg("cur").take();
        RedisForm::Command(self.key, cmd, Retry::Idempotent)
    }

    fn decode(&self, current: Option<i64>) -> Result<Option<i64>> {
        Ok(current)
    }

    fn in_memory(&self, store: &mut Store) -> Result<Option<i64>> {
        Ok(store
            .hash(self.key, Self::NAME)?
            .and_then(|fields| fields.get("cur").copied()))
    }
}
