//! The one seam between typed code and storage.
//!
//! Everything above this module works on full key strings and bytes, and is
//! written once for every backend. An enum rather than a trait object keeps the
//! hot path free of boxing.

pub(crate) mod memory;
pub(crate) mod ops;
pub(crate) mod redis;

use std::future::Future;
use std::time::{Duration, Instant};

use ::redis::FromRedisValue;

use self::memory::{Entry, Store};
use crate::error::Result;
use crate::ttl::{Ttl, ttl_millis};

tokio::task_local! {
    /// When the public operation running in this task must have answered.
    static DEADLINE: Instant;
}

/// Runs `operation` so that all its backend calls share one `timeout`: a call
/// gets what earlier calls left, and none is sent once it is spent. Nested
/// uses keep the outer deadline.
pub(crate) async fn within<F: Future>(timeout: Duration, operation: F) -> F::Output {
    if DEADLINE.try_with(|_| ()).is_ok() {
        return operation.await;
    }
    DEADLINE.scope(Instant::now() + timeout, operation).await
}

/// What is left of the running operation's time, at most `timeout`.
pub(crate) fn budget(timeout: Duration) -> Duration {
    DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(Instant::now()))
        .map_or(timeout, |left| left.min(timeout))
}

pub(crate) use self::memory::MemoryBackend;
pub(crate) use self::ops::Atomic;
pub(crate) use self::ops::counter::{Bounds, Incr};
pub use self::redis::RedisConnection;
pub(crate) use self::redis::{ConnectOptions, RedisBackend, Retry};

/// Whether a write replaces an existing value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SetMode {
    Always,
    IfAbsent,
}

/// The storage behind a `Cache` handle.
#[derive(Debug)]
pub(crate) enum Backend {
    Redis(RedisBackend),
    Memory(MemoryBackend),
}

impl Backend {
    /// Runs one public operation: all its Redis calls share one timeout.
    pub(crate) async fn within<F: Future>(&self, operation: F) -> F::Output {
        match self {
            Backend::Redis(redis) => within(redis.timeout(), operation).await,
            Backend::Memory(_) => operation.await,
        }
    }

    /// One command on one key: `name key [args]` on Redis, `in_memory` on
    /// the memory backend. Every single-key command is described here once.
    async fn command<T: FromRedisValue>(
        &self,
        name: &'static str,
        key: &str,
        args: &[u64],
        retry: Retry,
        in_memory: impl FnOnce(&mut Store) -> Result<T>,
    ) -> Result<T> {
        match self {
            Backend::Redis(redis) => {
                let cmd = ::redis::cmd(name).arg(key).arg(args).take();
                redis.send(name, key, cmd, retry).await
            }
            Backend::Memory(memory) => memory.atomically(in_memory),
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let read = |store: &mut Store| Ok(store.bytes(key, "GET")?.cloned());
        self.command("GET", key, &[], Retry::Idempotent, read).await
    }

    /// Reads and removes the value at `key` (GETDEL); never sent twice.
    pub(crate) async fn take(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let take = |store: &mut Store| {
            store.bytes(key, "GETDEL")?;
            Ok(store.remove(key).and_then(Entry::into_bytes))
        };
        self.command("GETDEL", key, &[], Retry::Never, take).await
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<bool> {
        let delete = |store: &mut Store| Ok(store.remove(key).is_some());
        self.command("DEL", key, &[], Retry::Idempotent, delete)
            .await
    }

    pub(crate) async fn exists(&self, key: &str) -> Result<bool> {
        let exists = |store: &mut Store| Ok(store.entry(key).is_some());
        self.command("EXISTS", key, &[], Retry::Idempotent, exists)
            .await
    }

    pub(crate) async fn ttl(&self, key: &str) -> Result<Ttl> {
        let read = |store: &mut Store| Ok(store.ttl(key).millis());
        let millis = self.command("PTTL", key, &[], Retry::Idempotent, read);
        Ok(Ttl::from_millis(millis.await?))
    }

    /// Sets `key` to expire after `ttl`; returns whether it exists.
    pub(crate) async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        let expire = |store: &mut Store| Ok(store.expire(key, ttl));
        let args = [ttl_millis(ttl)];
        self.command("PEXPIRE", key, &args, Retry::Idempotent, expire)
            .await
    }

    pub(crate) async fn set(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<bool> {
        match self {
            Backend::Redis(redis) => redis.set(key, value, ttl, mode).await,
            Backend::Memory(memory) => memory.set(key, value, ttl, mode),
        }
    }

    /// The value and its remaining TTL, in one round trip.
    pub(crate) async fn get_with_ttl(&self, key: &str) -> Result<Option<(Vec<u8>, Ttl)>> {
        match self {
            Backend::Redis(redis) => redis.get_with_ttl(key).await,
            Backend::Memory(memory) => memory.atomically(|store| {
                let bytes = store.bytes(key, "GET")?.cloned();
                Ok(bytes.map(|bytes| (bytes, store.ttl(key))))
            }),
        }
    }

    /// Many values in one round trip (MGET), in the order of `keys`.
    pub(crate) async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Backend::Redis(redis) => {
                let cmd = ::redis::cmd("MGET").arg(keys).take();
                redis.query("MGET", first_key(keys), cmd).await
            }
            Backend::Memory(memory) => memory.atomically(|store| {
                keys.iter()
                    .map(|key| Ok(store.bytes(key, "MGET")?.cloned()))
                    .collect()
            }),
        }
    }

    /// Many writes in one atomic round trip (MULTI/EXEC of SETs).
    pub(crate) async fn set_many(
        &self,
        entries: Vec<(String, Vec<u8>, Option<Duration>)>,
    ) -> Result<()> {
        let Some((first, _, _)) = entries.first() else {
            return Ok(());
        };
        match self {
            Backend::Redis(redis) => {
                let mut pipe = ::redis::pipe();
                pipe.atomic();
                for (key, value, ttl) in &entries {
                    pipe.cmd("SET").arg(key).arg(value);
                    if let Some(ttl) = ttl {
                        pipe.arg("PX").arg(ttl_millis(*ttl));
                    }
                    pipe.ignore();
                }
                let () = redis
                    .pipeline("SET", first, pipe, Retry::Idempotent)
                    .await?;
                Ok(())
            }
            Backend::Memory(memory) => {
                memory.atomically(|store| {
                    for (key, value, ttl) in entries {
                        let expires_at = ttl.map(|ttl| memory::deadline(store.now(), ttl));
                        store.insert(&key, memory::Value::Bytes(value), expires_at);
                    }
                });
                Ok(())
            }
        }
    }

    /// Removes many keys in one command; returns how many existed.
    pub(crate) async fn delete_many(&self, keys: &[String]) -> Result<usize> {
        if keys.is_empty() {
            return Ok(0);
        }
        match self {
            Backend::Redis(redis) => {
                let cmd = ::redis::cmd("DEL").arg(keys).take();
                redis.query("DEL", first_key(keys), cmd).await
            }
            Backend::Memory(memory) => Ok(memory.atomically(|store| {
                keys.iter()
                    .filter(|key| store.remove(key).is_some())
                    .count()
            })),
        }
    }

    /// Runs one multi-step operation atomically.
    pub(crate) async fn run<O: Atomic>(&self, op: &O) -> Result<O::Output> {
        match self {
            Backend::Redis(redis) => redis.run(op).await,
            Backend::Memory(memory) => memory.atomically(|store| op.in_memory(store)),
        }
    }
}

/// The key a batch call names in its errors.
fn first_key(keys: &[String]) -> &str {
    keys.first().map(String::as_str).unwrap_or_default()
}
