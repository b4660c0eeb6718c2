//! The one seam between typed code and storage.
//!
//! Everything above this module works on full key strings and bytes, and is
//! written once for every backend. An enum rather than a trait object keeps the
//! hot path free of boxing.

mod attempts;
#[cfg(feature = "testing")]
pub(crate) mod faults;
#[cfg(feature = "testing")]
mod injected;
pub(crate) mod memory;
pub(crate) mod next;
pub(crate) mod ops;
pub(crate) mod redis;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::futures::TaskLocalFuture;

use ::redis::FromRedisValue;

use self::memory::{Entry, Store};
use crate::error::Result;
use crate::stats::Stats;
use crate::ttl::{Ttl, ttl_millis};

tokio::task_local! {
    /// When the public operation running in this task must have answered
    /// (`None`: an operation without a timeout).
    static DEADLINE: Option<Instant>;
}

/// The deadline of the operation running in this task, if it has one.
fn current_deadline() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok().flatten()
}

/// Runs `operation` so that all its backend calls share one timeout, from
/// `started`: a call gets what earlier calls left, and none is sent once it
/// is spent. Nested uses keep the outer deadline. Not an `async fn`: the
/// operation's future is held once, in the returned one (each `async`
/// layer that might or might not scope it would hold it twice, and the
/// future of a typed write is kilobytes, copied every time it moves).
fn scoped<F: Future>(
    started: Instant,
    timeout: Option<Duration>,
    operation: F,
) -> TaskLocalFuture<Option<Instant>, F> {
    let deadline = current_deadline().or_else(|| timeout.map(|timeout| started + timeout));
    DEADLINE.scope(deadline, operation)
}

/// What is left of the running operation's time, at most `timeout`.
pub(crate) fn budget(timeout: Duration) -> Duration {
    current_deadline().map_or(timeout, |deadline| {
        deadline
            .saturating_duration_since(Instant::now())
            .min(timeout)
    })
}

pub(crate) use self::memory::MemoryBackend;
pub(crate) use self::ops::Atomic;
pub(crate) use self::ops::counter::Incr;
pub(crate) use self::redis::{
    ConnectOptions, CredentialsFuture, Event, Health, Hook, Op, Opened, RedisBackend, Retry,
    Target, Tracker,
};
pub use self::redis::{Credentials, RedisConnection};

/// Converts a Redis reply to what `operation` on `key` returns.
fn reply<T: FromRedisValue>(
    operation: &'static str,
    key: &str,
    value: ::redis::Value,
) -> Result<T> {
    T::from_redis_value(value)
        .map_err(|err| crate::Error::from_redis(operation, Some(key), err.into(), false))
}

/// What kind of call an exchange is, for injected faults to pick from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallKind {
    Read,
    Write,
    Script,
    Batch,
}

/// One plain call: its kind, its name in errors, its main key, and whether
/// it may be sent twice.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Call<'a> {
    // Read only by injected faults, which only the `testing` feature builds.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) kind: CallKind,
    pub(crate) name: &'static str,
    pub(crate) key: &'a str,
    pub(crate) retry: Retry,
}

impl<'a> Call<'a> {
    fn new(kind: CallKind, name: &'static str, key: &'a str, retry: Retry) -> Self {
        Call {
            kind,
            name,
            key,
            retry,
        }
    }

    /// A single-key read, safe to send twice.
    fn read(name: &'static str, key: &'a str) -> Self {
        Call::new(CallKind::Read, name, key, Retry::Idempotent)
    }

    /// A single-key write.
    fn write(name: &'static str, key: &'a str, retry: Retry) -> Self {
        Call::new(CallKind::Write, name, key, retry)
    }

    /// A call on many keys (named by the first), safe to send twice.
    fn batch(name: &'static str, key: &'a str) -> Self {
        Call::new(CallKind::Batch, name, key, Retry::Idempotent)
    }
}

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
    /// Connects to Redis (or, lazily, prepares to) as `options` say.
    pub(crate) async fn connect(options: ConnectOptions, stats: Arc<Stats>) -> Result<Self> {
        Ok(Backend::Redis(RedisBackend::connect(options, stats).await?))
    }

    /// The embedded in-process store.
    pub(crate) fn memory() -> Self {
        Backend::Memory(MemoryBackend::default())
    }

    /// The embedded store, with `faults` injected into its calls, each
    /// operation bounded by `timeout` and its errors counted in `stats`.
    #[cfg(feature = "testing")]
    pub(crate) fn memory_with_faults(
        faults: self::faults::Faults,
        timeout: Duration,
        stats: Arc<Stats>,
    ) -> Self {
        let injector = injected::Injector::new(faults, timeout, stats);
        Backend::Memory(MemoryBackend::with_faults(injector))
    }

    /// The operation timeout; `None` on a memory backend without faults,
    /// whose calls never wait.
    fn timeout(&self) -> Option<Duration> {
        match self {
            Backend::Redis(redis) => Some(redis.timeout()),
            Backend::Memory(memory) => memory.timeout(),
        }
    }

    /// This backend reading from replicas; `None` without replica reads (and
    /// on one server or the memory backend).
    pub(crate) fn replica_reads(&self) -> Option<Backend> {
        match self {
            Backend::Redis(redis) => redis.replica_reads().map(Backend::Redis),
            Backend::Memory(_) => None,
        }
    }

    /// The handle's Redis connection; `None` on the memory backend.
    pub(crate) fn redis_connection(&self) -> Option<RedisConnection> {
        match self {
            Backend::Redis(redis) => Some(redis.connection()),
            Backend::Memory(_) => None,
        }
    }

    /// What opens the handle's invalidation connections; `None` on the
    /// memory backend, where every write goes through the handle.
    pub(crate) fn tracker(&self) -> Option<Tracker> {
        match self {
            Backend::Redis(redis) => Some(redis.tracker()),
            Backend::Memory(_) => None,
        }
    }

    /// Entries the memory backend holds (live or not yet purged); `None` on Redis.
    pub(crate) fn memory_entries(&self) -> Option<usize> {
        match self {
            Backend::Memory(memory) => Some(memory.stored_entries()),
            Backend::Redis(_) => None,
        }
    }

    /// Runs one public operation: all its Redis calls share one timeout.
    pub(crate) fn within<F: Future>(&self, operation: F) -> TaskLocalFuture<Option<Instant>, F> {
        scoped(Instant::now(), self.timeout(), operation)
    }

    /// The rest of one public operation that began at `started` with a
    /// first call made outside [`within`](Self::within): what it calls now
    /// gets what is left of the timeout.
    pub(crate) fn within_since<F: Future>(
        &self,
        started: Instant,
        operation: F,
    ) -> TaskLocalFuture<Option<Instant>, F> {
        scoped(started, self.timeout(), operation)
    }

    /// Removes every key that starts with one of `heads` (keyspace heads such
    /// as `ns:price:v1:`); returns how many there were. Never KEYS or FLUSHDB.
    pub(crate) async fn clear(&self, heads: &[String]) -> Result<u64> {
        match self {
            Backend::Redis(redis) => redis.clear(heads).await,
            Backend::Memory(memory) => {
                let head = heads.first().map(String::as_str).unwrap_or_default();
                memory.admit(Call::batch("SCAN", head)).await?;
                Ok(memory.atomically(|store| store.remove_under(heads)))
            }
        }
    }

    /// Runs one multi-step operation atomically.
    pub(crate) async fn run<O: Atomic>(&self, op: &O) -> Result<O::Output> {
        match self {
            Backend::Redis(redis) => redis.run(op).await,
            Backend::Memory(memory) => {
                // The Redis form names the key and the retry rule; built only
                // when faults may end the call.
                if memory.injects() {
                    let (key, retry) = match op.redis() {
                        ops::RedisForm::Script(_, keys, _) => {
                            (keys.first().copied().unwrap_or_default(), Retry::Never)
                        }
                        ops::RedisForm::Pipeline(key, _, retry)
                        | ops::RedisForm::Command(key, _, retry) => (key, retry),
                    };
                    let call = Call::new(CallKind::Script, O::NAME, key, retry);
                    let admitted = memory.admit(call).await;
                    admitted.map_err(|error| op.refine(error))?;
                }
                memory.atomically(|store| op.in_memory(store))
            }
        }
    }

    /// One exchange with storage: `wire` on Redis (built only there),
    /// `in_memory` on the memory backend. Every plain command is described
    /// here once, both ways side by side.
    /// `payload` (values to write) goes to whichever side runs, by value, so
    /// the memory backend stores it without a copy.
    async fn exchange<P, T: FromRedisValue>(
        &self,
        call: Call<'_>,
        payload: P,
        wire: impl FnOnce(P) -> Wire,
        in_memory: impl FnOnce(&mut Store, P) -> Result<T>,
    ) -> Result<T> {
        let Call {
            name, key, retry, ..
        } = call;
        match self {
            Backend::Redis(redis) => match wire(payload) {
                Wire::Command(cmd) => redis.send(name, key, cmd, retry).await,
                Wire::Pipeline(pipe) => redis.pipeline(name, key, pipe, retry).await,
            },
            Backend::Memory(memory) => {
                memory.admit(call).await?;
                memory.atomically(|store| in_memory(store, payload))
            }
        }
    }

    /// `name key [args]` on Redis.
    async fn command<T: FromRedisValue>(
        &self,
        call: Call<'_>,
        args: &[u64],
        in_memory: impl FnOnce(&mut Store) -> Result<T>,
    ) -> Result<T> {
        let wire = |()| Wire::Command(::redis::cmd(call.name).arg(call.key).arg(args).take());
        let in_memory = |store: &mut Store, ()| in_memory(store);
        self.exchange(call, (), wire, in_memory).await
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        if let Backend::Redis(redis) = self {
            let value = redis.coalesced(key, Op::Get).await?;
            return reply("GET", key, value);
        }
        let read = |store: &mut Store| Ok(store.bytes(key, "GET")?.cloned());
        self.command(Call::read("GET", key), &[], read).await
    }

    /// Reads and removes the value at `key` (GETDEL); never sent twice.
    pub(crate) async fn take(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let take = |store: &mut Store| {
            store.bytes(key, "GETDEL")?;
            Ok(store.remove(key).and_then(Entry::into_bytes))
        };
        self.command(Call::write("GETDEL", key, Retry::Never), &[], take)
            .await
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<bool> {
        if let Backend::Redis(redis) = self {
            let removed: u64 = reply("DEL", key, redis.coalesced(key, Op::Del).await?)?;
            return Ok(removed > 0);
        }
        let delete = |store: &mut Store| Ok(store.remove(key).is_some());
        self.command(Call::write("DEL", key, Retry::Idempotent), &[], delete)
            .await
    }

    pub(crate) async fn exists(&self, key: &str) -> Result<bool> {
        let exists = |store: &mut Store| Ok(store.entry(key).is_some());
        self.command(Call::read("EXISTS", key), &[], exists).await
    }

    pub(crate) async fn ttl(&self, key: &str) -> Result<Ttl> {
        let read = |store: &mut Store| Ok(store.ttl(key).millis());
        let millis = self.command(Call::read("PTTL", key), &[], read);
        Ok(Ttl::from_millis(millis.await?))
    }

    /// Sets `key` to expire after `ttl`; returns whether it exists.
    pub(crate) async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        let expire = |store: &mut Store| Ok(store.expire(key, ttl));
        let args = [ttl_millis(ttl)];
        self.command(
            Call::write("PEXPIRE", key, Retry::Idempotent),
            &args,
            expire,
        )
        .await
    }

    /// Writes `value` (only where `key` holds nothing, with `IfAbsent`);
    /// returns whether it was written. SET NX is never sent twice: a second
    /// try would find the first one's value.
    pub(crate) async fn set(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<bool> {
        if let (Backend::Redis(redis), SetMode::Always) = (self, mode) {
            let written = redis.coalesced(key, Op::Set { value, ttl }).await?;
            let _ok: () = reply("SET", key, written)?;
            return Ok(true);
        }
        let wire = |value: Vec<u8>| {
            let mut cmd = ::redis::cmd("SET");
            cmd.arg(key).arg(value);
            if let Some(ttl) = ttl {
                cmd.arg("PX").arg(ttl_millis(ttl));
            }
            if mode == SetMode::IfAbsent {
                cmd.arg("NX");
            }
            Wire::Command(cmd)
        };
        let write = |store: &mut Store, value| {
            if mode == SetMode::IfAbsent && store.entry(key).is_some() {
                return Ok(None);
            }
            let expires_at = ttl.map(|ttl| memory::deadline(store.now(), ttl));
            store.insert(key, memory::Value::Bytes(value), expires_at);
            Ok(Some(()))
        };
        let retry = match mode {
            SetMode::Always => Retry::Idempotent,
            SetMode::IfAbsent => Retry::Never,
        };
        // SET answers OK, or nil when NX found the key present.
        let written: Option<()> = self
            .exchange(Call::write("SET", key, retry), value, wire, write)
            .await?;
        Ok(written.is_some())
    }

    /// The value and its remaining TTL, in one round trip.
    pub(crate) async fn get_with_ttl(&self, key: &str) -> Result<Option<(Vec<u8>, Ttl)>> {
        let wire = |()| {
            let mut pipe = ::redis::pipe();
            pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
            Wire::Pipeline(pipe)
        };
        let read = |store: &mut Store, ()| {
            let bytes = store.bytes(key, "GET")?.cloned();
            Ok((bytes, store.ttl(key).millis()))
        };
        let (bytes, millis): (Option<Vec<u8>>, i64) = self
            .exchange(Call::read("GET", key), (), wire, read)
            .await?;
        Ok(bytes.map(|bytes| (bytes, Ttl::from_millis(millis))))
    }

    /// Many values in one round trip (MGET; on a cluster one per hash slot,
    /// concurrently), in the order of `keys`.
    pub(crate) async fn get_many<S: AsRef<str> + Sync>(
        &self,
        keys: &[S],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let groups = self.slot_groups(keys.iter().map(S::as_ref));
        // One node per command: redis-rs reconnects and refreshes its slot
        // map after a lost node only for those (not for a fanned-out MGET).
        let reads = groups.iter().map(|positions| async move {
            let group: Vec<&str> = (positions.iter())
                .filter_map(|&at| keys.get(at).map(S::as_ref))
                .collect();
            let wire = |()| Wire::Command(::redis::cmd("MGET").arg(&group).take());
            let read = |store: &mut Store, ()| {
                let each = group
                    .iter()
                    .map(|key| Ok(store.bytes(key, "MGET")?.cloned()));
                each.collect::<Result<Vec<_>>>()
            };
            let first = group.first().copied().unwrap_or_default();
            let found = self
                .exchange(Call::batch("MGET", first), (), wire, read)
                .await?;
            Ok::<_, crate::error::Error>((positions, found))
        });
        let mut found = vec![None; keys.len()];
        for (positions, values) in futures_util::future::try_join_all(reads).await? {
            for (&at, value) in positions.iter().zip(values) {
                if let Some(slot) = found.get_mut(at) {
                    *slot = value;
                }
            }
        }
        Ok(found)
    }

    /// The positions of `keys` grouped by what can go in one command: all
    /// together, except on a cluster, where each group is one hash slot (in
    /// the order first seen; positions keep the callers' order).
    pub(crate) fn slot_groups<'k>(&self, keys: impl Iterator<Item = &'k str>) -> Vec<Vec<usize>> {
        let cluster = matches!(self, Backend::Redis(redis) if redis.is_cluster());
        self::redis::slot_groups(cluster, keys)
    }

    /// Many values with their remaining TTL: one pipeline of GET and PTTL
    /// per group of [`slot_groups`](Self::slot_groups), concurrently; in the
    /// order of `keys`.
    pub(crate) async fn get_many_with_ttl<S: AsRef<str> + Sync>(
        &self,
        keys: &[S],
    ) -> Result<Vec<Option<(Vec<u8>, Ttl)>>> {
        let groups = self.slot_groups(keys.iter().map(S::as_ref));
        let reads = groups.iter().map(|positions| async move {
            let group: Vec<&str> = (positions.iter())
                .filter_map(|&at| keys.get(at).map(S::as_ref))
                .collect();
            let wire = |()| {
                let mut pipe = ::redis::pipe();
                for key in &group {
                    pipe.cmd("GET").arg(*key).cmd("PTTL").arg(*key);
                }
                Wire::Pipeline(pipe)
            };
            let read = |store: &mut Store, ()| {
                let mut pairs = Vec::with_capacity(group.len());
                for key in &group {
                    let bytes = store.bytes(key, "GET")?.cloned();
                    pairs.push((bytes, store.ttl(key).millis()));
                }
                Ok(pairs)
            };
            let first = group.first().copied().unwrap_or_default();
            let pairs: Vec<(Option<Vec<u8>>, i64)> = self
                .exchange(Call::batch("GET", first), (), wire, read)
                .await?;
            Ok::<_, crate::error::Error>((positions, pairs))
        });
        let mut found = vec![None; keys.len()];
        for (positions, pairs) in futures_util::future::try_join_all(reads).await? {
            for (&at, (bytes, millis)) in positions.iter().zip(pairs) {
                if let (Some(slot), Some(bytes)) = (found.get_mut(at), bytes) {
                    *slot = Some((bytes, Ttl::from_millis(millis)));
                }
            }
        }
        Ok(found)
    }

    /// Many writes in one round trip per group of [`slot_groups`](Self::slot_groups),
    /// each an atomic MULTI/EXEC of SETs; the groups go concurrently.
    pub(crate) async fn set_many(
        &self,
        entries: Vec<(String, Vec<u8>, Option<Duration>)>,
    ) -> Result<()> {
        let groups = self.slot_groups(entries.iter().map(|(key, _, _)| key.as_str()));
        let mut entries: Vec<Option<_>> = entries.into_iter().map(Some).collect();
        let writes = groups.iter().map(|positions| {
            let group = positions
                .iter()
                .filter_map(|&at| entries.get_mut(at).and_then(Option::take))
                .collect();
            self.set_group(group)
        });
        let writes: Vec<_> = writes.collect();
        futures_util::future::try_join_all(writes).await?;
        Ok(())
    }

    /// One atomic MULTI/EXEC of SETs.
    async fn set_group(&self, entries: Vec<(String, Vec<u8>, Option<Duration>)>) -> Result<()> {
        let Some(first) = entries.first().map(|(key, _, _)| key.clone()) else {
            return Ok(());
        };
        let wire = |entries: Vec<(String, Vec<u8>, Option<Duration>)>| {
            let mut pipe = ::redis::pipe();
            pipe.atomic();
            for (key, value, ttl) in entries {
                pipe.cmd("SET").arg(key).arg(value);
                if let Some(ttl) = ttl {
                    pipe.arg("PX").arg(ttl_millis(ttl));
                }
                pipe.ignore();
            }
            Wire::Pipeline(pipe)
        };
        let write = |store: &mut Store, entries: Vec<(String, Vec<u8>, Option<Duration>)>| {
            for (key, value, ttl) in entries {
                let expires_at = ttl.map(|ttl| memory::deadline(store.now(), ttl));
                store.insert(&key, memory::Value::Bytes(value), expires_at);
            }
            Ok(())
        };
        self.exchange(Call::batch("SET", &first), entries, wire, write)
            .await
    }

    /// Removes many keys in one command (on a cluster one per hash slot,
    /// concurrently); returns how many existed.
    pub(crate) async fn delete_many(&self, keys: &[String]) -> Result<usize> {
        if keys.is_empty() {
            return Ok(0);
        }
        let groups = self.slot_groups(keys.iter().map(String::as_str));
        let deletes = groups.iter().map(|positions| async move {
            let group: Vec<&String> = positions.iter().filter_map(|&at| keys.get(at)).collect();
            let wire = |()| Wire::Command(::redis::cmd("DEL").arg(&group).take());
            let delete = |store: &mut Store, ()| {
                Ok(group
                    .iter()
                    .filter(|key| store.remove(key).is_some())
                    .count())
            };
            let first = group.first().map(|key| key.as_str()).unwrap_or_default();
            self.exchange(Call::batch("DEL", first), (), wire, delete)
                .await
        });
        let counts = futures_util::future::try_join_all(deletes).await?;
        Ok(counts.into_iter().sum())
    }
}

/// What goes over the wire for one exchange.
enum Wire {
    Command(::redis::Cmd),
    Pipeline(::redis::Pipeline),
}
