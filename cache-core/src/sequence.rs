//! Sequence numbers that never repeat, even after Redis loses its data.
//!
//! Each key (a user, a conversation) has a current number and a reserved
//! maximum, handed out in blocks of `step`. When a number crosses the reserved
//! maximum, the allocator reserves the next block and tells that one caller,
//! who persists the new maximum (to its database) before using the number.
//!
//! What holds after Redis loses its data (a restart without persistence, a
//! failover that lost recent writes, a flush): the hash is gone and the next
//! number would be 1 again, below numbers already handed out. Call `seed`
//! with the persisted maximum before handing out numbers again (for example
//! when [`Sequences::current`] returns `None` for a key your database knows);
//! numbers then continue above everything that may have been handed out. The
//! library cannot do this by itself: only your database knows the maximum.
//!
//! Sequence hashes are the one kind of key this toolkit writes without an
//! expiry: an expiring hash would restart numbering just like a data loss.
//! There is one hash per key that ever got a number.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::LazyLock;

use redis::Script;

use crate::Cache;
use crate::backend::Backend;
use crate::backend::memory::{Entry, Store, Value};
use crate::error::{Error, Result};
use crate::key::{CacheKey, KeySpace};
use crate::keyspace::Keyspace;

/// The largest number a sequence hands out or reserves: 2^53, below which
/// Lua's doubles (and JSON readers of the numbers) are exact.
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

/// One number handed out by a [`Sequences`] allocator.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// let seqs = cache_core::Cache::memory().keyspace("seq").sequences::<u64>(1000)?;
/// let allocation = seqs.next(&7).await?;
/// if allocation.crossed {
///     // UPDATE users SET seq_max = allocation.reserved_max WHERE id = 7
/// }
/// assert_eq!(allocation.value, 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// The number: greater than every number handed out before for this key.
    pub value: i64,
    /// The reserved maximum after this call.
    pub reserved_max: i64,
    /// True for exactly one call per block: persist `reserved_max` before
    /// using `value`.
    pub crossed: bool,
}

/// Per-key sequence allocators. Made by
/// [`KeyspaceBuilder::sequences`](crate::KeyspaceBuilder::sequences).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// let seqs = cache_core::Cache::memory().keyspace("msg-seq").sequences::<u64>(100)?;
/// let first = seqs.next(&7).await?;
/// assert_eq!((first.value, first.reserved_max, first.crossed), (1, 100, true));
/// // ... persist 100 as user 7's maximum, then use number 1.
/// let second = seqs.next(&7).await?;
/// assert_eq!((second.value, second.crossed), (2, false));
///
/// // After Redis lost its data: continue above the persisted maximum.
/// seqs.seed(&7, 100).await?;
/// # Ok(()) }
/// ```
pub struct Sequences<K: ?Sized> {
    cache: Cache,
    space: KeySpace,
    step: i64,
    types: PhantomData<fn(&K)>,
}

impl<K: ?Sized> Clone for Sequences<K> {
    fn clone(&self) -> Self {
        Sequences {
            cache: self.cache.clone(),
            space: self.space.clone(),
            step: self.step,
            types: PhantomData,
        }
    }
}

impl<K: ?Sized> fmt::Debug for Sequences<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sequences")
            .field("keys", &self.space)
            .field("step", &self.step)
            .finish()
    }
}

fn fields<'a>(store: &'a mut Store, key: &str) -> Result<&'a mut HashMap<String, i64>> {
    if store.entry(key).is_none() {
        store.insert(key, Value::Hash(HashMap::new()), None);
    }
    match store.entry(key) {
        Some(Entry {
            value: Value::Hash(fields),
            ..
        }) => Ok(fields),
        _ => Err(Error::WrongType {
            operation: "HINCRBY",
            key: key.to_owned(),
        }),
    }
}

/// The memory twin of [`NEXT`]: reads and checks every key, then writes.
fn next_in_memory(store: &mut Store, keys: &[String], step: i64) -> Result<Vec<Allocation>> {
    let mut state: HashMap<&str, (i64, i64)> = HashMap::new();
    let mut allocations = Vec::with_capacity(keys.len());
    for key in keys {
        let (cur, max) = match state.get(key.as_str()) {
            Some(&known) => known,
            None => match store.entry(key) {
                None => (0, 0),
                Some(Entry {
                    value: Value::Hash(fields),
                    ..
                }) => (
                    fields.get("cur").copied().unwrap_or(0),
                    fields.get("max").copied().unwrap_or(0),
                ),
                Some(_) => {
                    return Err(Error::WrongType {
                        operation: "HMGET",
                        key: key.clone(),
                    });
                }
            },
        };
        let value = cur + 1;
        let mut reserved_max = max;
        let crossed = value > reserved_max;
        if crossed {
            // Whole blocks until the value fits (value > reserved_max, so at least one).
            let gap = value - reserved_max;
            reserved_max += step * ((gap + step - 1) / step);
        }
        if reserved_max > MAX_SEQUENCE {
            return Err(past_the_limit(key));
        }
        state.insert(key, (value, reserved_max));
        allocations.push(Allocation {
            value,
            reserved_max,
            crossed,
        });
    }
    for (key, (cur, max)) in state {
        let fields = HashMap::from([("cur".to_owned(), cur), ("max".to_owned(), max)]);
        let expires_at = store.entry(key).and_then(|entry| entry.expires_at);
        store.insert(key, Value::Hash(fields), expires_at);
    }
    Ok(allocations)
}

fn past_the_limit(key: &str) -> Error {
    Error::Overflow {
        key: key.to_owned(),
        delta: 1,
    }
}

impl<K: CacheKey + ?Sized> Sequences<K> {
    pub(crate) fn new(keyspace: Keyspace, step: u32) -> Result<Self> {
        if step == 0 {
            return Err(Error::config("sequences: the step must be at least 1"));
        }
        Ok(Sequences {
            cache: keyspace.cache,
            space: keyspace.space,
            step: i64::from(step),
            types: PhantomData,
        })
    }

    /// The full Redis key (a hash) of `key`'s sequence.
    ///
    /// ```
    /// # fn main() -> cache_core::Result<()> {
    /// let seqs = cache_core::Cache::memory().keyspace("seq").sequences::<u64>(10)?;
    /// assert_eq!(seqs.key(&7), "seq:v1:7");
    /// # Ok(()) }
    /// ```
    pub fn key<Q>(&self, key: &Q) -> String
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        self.space.key(key)
    }

    /// The next number for `key`.
    ///
    /// # Errors
    /// [`Error::WrongType`] when the key holds something else,
    /// [`Error::Overflow`] when the number or its block would pass
    /// [`MAX_SEQUENCE`] (nothing is changed), backend or timeout errors (then
    /// no number was handed out, or, after a connection error or timeout,
    /// possibly one that nobody received: numbers may skip, never repeat).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let seqs = cache_core::Cache::memory().keyspace("seq").sequences::<str>(2)?;
    /// let crossings: Vec<bool> = [
    ///     seqs.next("a").await?, seqs.next("a").await?, seqs.next("a").await?,
    /// ].iter().map(|a| a.crossed).collect();
    /// assert_eq!(crossings, [true, false, true]);
    /// # Ok(()) }
    /// ```
    pub async fn next<Q>(&self, key: &Q) -> Result<Allocation>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.space.key(key);
        let mut all = self.allocate(std::slice::from_ref(&full_key)).await?;
        all.pop()
            .ok_or_else(|| Error::config("sequence script returned nothing"))
    }

    /// The next number for each key in one round trip (one atomic script),
    /// paired with its key. A key listed twice gets two numbers.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty list, and as [`next`](Self::next); a
    /// refused call changes no key.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let seqs = cache_core::Cache::memory().keyspace("seq").sequences::<u64>(10)?;
    /// seqs.next(&2).await?;
    /// let got = seqs.next_many(&[1, 2]).await?;
    /// assert_eq!(got[0].0, 1);
    /// assert_eq!(got[0].1.value, 1);
    /// assert_eq!((got[1].0, got[1].1.value), (2, 2));
    /// assert!(seqs.next_many(&[]).await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn next_many(&self, keys: &[K]) -> Result<Vec<(K, Allocation)>>
    where
        K: Clone + Sized,
    {
        if keys.is_empty() {
            return Err(Error::config(
                "next_many needs at least one key; got an empty list",
            ));
        }
        let full_keys: Vec<String> = keys.iter().map(|key| self.space.key(key)).collect();
        let allocations = self.allocate(&full_keys).await?;
        Ok(keys.iter().cloned().zip(allocations).collect())
    }

    async fn allocate(&self, full_keys: &[String]) -> Result<Vec<Allocation>> {
        match self.cache.backend() {
            Backend::Redis(redis) => {
                let keys: Vec<&str> = full_keys.iter().map(String::as_str).collect();
                let step = self.step.to_string();
                let limit = MAX_SEQUENCE.to_string();
                let rows: Vec<(i64, i64, u8)> = redis
                    .script(
                        "sequence next",
                        &NEXT,
                        &keys,
                        &[step.as_bytes(), limit.as_bytes()],
                    )
                    .await
                    .map_err(|error| match error.to_string().contains("OVERFLOW") {
                        true => past_the_limit(keys.first().copied().unwrap_or_default()),
                        false => error,
                    })?;
                Ok(rows
                    .into_iter()
                    .map(|(value, reserved_max, crossed)| Allocation {
                        value,
                        reserved_max,
                        crossed: crossed == 1,
                    })
                    .collect())
            }
            Backend::Memory(memory) => {
                memory.atomically(|store| next_in_memory(store, full_keys, self.step))
            }
        }
    }

    /// The last number handed out for `key`, if any.
    ///
    /// # Errors
    /// [`Error::WrongType`], backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let seqs = cache_core::Cache::memory().keyspace("seq").sequences::<u64>(10)?;
    /// assert_eq!(seqs.current(&1).await?, None);
    /// seqs.next(&1).await?;
    /// assert_eq!(seqs.current(&1).await?, Some(1));
    /// # Ok(()) }
    /// ```
    pub async fn current<Q>(&self, key: &Q) -> Result<Option<i64>>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.space.key(key);
        match self.cache.backend() {
            Backend::Redis(redis) => {
                let cmd = redis::cmd("HGET").arg(&full_key).arg("cur").take();
                redis.query("HGET", &full_key, cmd).await
            }
            Backend::Memory(memory) => memory.atomically(|store| match store.entry(&full_key) {
                None => Ok(None),
                Some(Entry {
                    value: Value::Hash(fields),
                    ..
                }) => Ok(fields.get("cur").copied()),
                Some(_) => Err(Error::WrongType {
                    operation: "HGET",
                    key: full_key.clone(),
                }),
            }),
        }
    }

    /// Re-seeds `key` after a data loss: numbers continue above
    /// `persisted_max`, and the next call reports a crossing. Never moves a
    /// sequence backwards; returns whether it changed anything.
    ///
    /// # Errors
    /// [`Error::Config`] when `persisted_max` leaves no room for one block
    /// below [`MAX_SEQUENCE`]; [`Error::WrongType`], backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let seqs = cache_core::Cache::memory().keyspace("seq").sequences::<u64>(10)?;
    /// assert!(seqs.seed(&1, 500).await?);
    /// let next = seqs.next(&1).await?;
    /// assert_eq!((next.value, next.reserved_max, next.crossed), (501, 510, true));
    /// assert!(!seqs.seed(&1, 100).await?); // never backwards
    /// # Ok(()) }
    /// ```
    pub async fn seed<Q>(&self, key: &Q, persisted_max: i64) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.space.key(key);
        if persisted_max > MAX_SEQUENCE - self.step {
            return Err(Error::config(format!(
                "seed of `{full_key}`: {persisted_max} leaves no room for a block of {} below \
                 the limit of sequences, 2^53",
                self.step
            )));
        }
        match self.cache.backend() {
            Backend::Redis(redis) => {
                let seed = persisted_max.to_string();
                let changed: u8 = redis
                    .script("sequence seed", &SEED, &[&full_key], &[seed.as_bytes()])
                    .await?;
                Ok(changed == 1)
            }
            Backend::Memory(memory) => memory.atomically(|store| {
                let fields = fields(store, &full_key)?;
                if fields.get("cur").copied().unwrap_or(0) >= persisted_max {
                    return Ok(false);
                }
                fields.insert("cur".to_owned(), persisted_max);
                fields.insert("max".to_owned(), persisted_max);
                Ok(true)
            }),
        }
    }
}
