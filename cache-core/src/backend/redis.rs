//! Standalone Redis through redis-rs' `ConnectionManager`: one multiplexed
//! connection per handle, reconnected after failures, every call bounded by the
//! configured timeout.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Cmd, FromRedisValue, Script};
use tracing::Instrument;

use super::{Bounds, SetMode, Ttl, ttl_millis};
use crate::error::{Error, Result};
use crate::stats::Stats;

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

/// Whether a call may be sent a second time after its connection dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Applying it twice is the same as once (GET, SET with a value, DEL,
    /// PEXPIRE, MGET, ...). Counts it returns (how many keys DEL removed) can
    /// be lower after a retry, when the first try was applied but its answer lost.
    Idempotent,
    /// It counts or consumes (INCR, GETDEL, SET NX, every script): sent once;
    /// after a timeout or a lost connection its outcome is unknown.
    Never,
}

/// A connection that broke under the call: the server restarted or the
/// network dropped it. The manager reconnects on the next call.
fn is_connection_loss(err: &redis::RedisError) -> bool {
    err.is_connection_dropped() || err.is_io_error()
}

pub(crate) struct RedisBackend {
    connection: ConnectionManager,
    timeout: Duration,
    redacted_url: String,
    stats: Arc<Stats>,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("url", &self.redacted_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    pub(crate) fn new(
        connection: ConnectionManager,
        timeout: Duration,
        redacted_url: String,
        stats: Arc<Stats>,
    ) -> Self {
        RedisBackend {
            connection,
            timeout,
            redacted_url,
            stats,
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// Runs `call` within what is left of the operation's timeout and maps
    /// its error to the crate's error. An idempotent call whose connection
    /// dropped (a server restart) is sent once more within the same budget;
    /// no call is sent once the budget is spent.
    async fn bounded<T, F, Fut>(
        &self,
        operation: &'static str,
        key: &str,
        retry: Retry,
        call: F,
    ) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        // Operation only: keys can hold personal data and values never appear.
        let span = tracing::debug_span!("cache.redis", operation);
        let budget = super::budget(self.timeout);
        let deadline = tokio::time::Instant::now() + budget;
        let mut attempts = match retry {
            Retry::Idempotent => 2,
            Retry::Never => 1,
        };
        let error = loop {
            if budget.is_zero() {
                break self.timeout_error(operation, key, Retry::Idempotent);
            }
            attempts -= 1;
            let attempt = tokio::time::timeout_at(deadline, call());
            match attempt.instrument(span.clone()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(err)) if attempts > 0 && is_connection_loss(&err) => continue,
                Ok(Err(err)) if err.is_timeout() => {
                    break self.timeout_error(operation, key, retry);
                }
                Ok(Err(err)) => {
                    let unknown = retry == Retry::Never && is_connection_loss(&err);
                    break Error::from_redis(operation, Some(key), err, unknown);
                }
                Err(_elapsed) => break self.timeout_error(operation, key, retry),
            }
        };
        self.stats.count_error(&error);
        Err(error)
    }

    fn timeout_error(&self, operation: &'static str, key: &str, retry: Retry) -> Error {
        Error::Timeout {
            operation,
            key: Some(key.to_owned()),
            after: self.timeout,
            outcome_unknown: retry == Retry::Never,
        }
    }

    /// Sends one idempotent command (safe to send twice), bounded by the timeout.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        operation: &'static str,
        key: &str,
        cmd: Cmd,
    ) -> Result<T> {
        self.send(operation, key, cmd, Retry::Idempotent).await
    }

    /// Sends one command that counts or consumes (INCR, GETDEL, SET NX):
    /// never twice.
    pub(crate) async fn query_once<T: FromRedisValue>(
        &self,
        operation: &'static str,
        key: &str,
        cmd: Cmd,
    ) -> Result<T> {
        self.send(operation, key, cmd, Retry::Never).await
    }

    async fn send<T: FromRedisValue>(
        &self,
        operation: &'static str,
        key: &str,
        cmd: Cmd,
        retry: Retry,
    ) -> Result<T> {
        self.bounded(operation, key, retry, || {
            let mut connection = self.connection.clone();
            let cmd = cmd.clone();
            async move { cmd.query_async(&mut connection).await }
        })
        .await
    }

    /// Runs `script` on `keys` with `args` (EVALSHA, falling back to EVAL when
    /// the server has lost its script cache), never twice. `key` names the
    /// operation's main key in errors.
    pub(crate) async fn script<T: FromRedisValue>(
        &self,
        operation: &'static str,
        script: &Script,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<T> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        let main_key = keys.first().copied().unwrap_or_default();
        self.bounded(operation, main_key, Retry::Never, || {
            let mut connection = self.connection.clone();
            let invocation = &invocation;
            async move { invocation.invoke_async(&mut connection).await }
        })
        .await
    }

    /// Runs `pipe` (atomic when built with `.atomic()`) in one round trip.
    pub(crate) async fn pipeline<T: FromRedisValue>(
        &self,
        operation: &'static str,
        key: &str,
        pipe: redis::Pipeline,
        retry: Retry,
    ) -> Result<T> {
        self.bounded(operation, key, retry, || {
            let mut connection = self.connection.clone();
            let pipe = &pipe;
            async move { pipe.query_async(&mut connection).await }
        })
        .await
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.query("GET", key, redis::cmd("GET").arg(key).take())
            .await
    }

    pub(crate) async fn get_with_ttl(&self, key: &str) -> Result<Option<(Vec<u8>, Ttl)>> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
        let (bytes, millis): (Option<Vec<u8>>, i64) =
            self.pipeline("GET", key, pipe, Retry::Idempotent).await?;
        Ok(bytes.map(|bytes| (bytes, ttl_from_millis(millis))))
    }

    pub(crate) async fn set(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<bool> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        if let Some(ttl) = ttl {
            let millis = ttl_millis(ttl);
            if millis.is_multiple_of(1000) {
                cmd.arg("EX").arg(millis / 1000);
            } else {
                cmd.arg("PX").arg(millis);
            }
        }
        if mode == SetMode::IfAbsent {
            cmd.arg("NX");
        }
        // SET answers OK, or nil when NX found the key present. SET NX is not
        // sent twice: a second try would find the first one's value.
        let retry = match mode {
            SetMode::Always => Retry::Idempotent,
            SetMode::IfAbsent => Retry::Never,
        };
        let reply: redis::Value = self.send("SET", key, cmd, retry).await?;
        Ok(reply != redis::Value::Nil)
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<bool> {
        let removed: u64 = self
            .query("DEL", key, redis::cmd("DEL").arg(key).take())
            .await?;
        Ok(removed > 0)
    }

    pub(crate) async fn exists(&self, key: &str) -> Result<bool> {
        let found: u64 = self
            .query("EXISTS", key, redis::cmd("EXISTS").arg(key).take())
            .await?;
        Ok(found > 0)
    }

    pub(crate) async fn ttl(&self, key: &str) -> Result<Ttl> {
        let millis: i64 = self
            .query("PTTL", key, redis::cmd("PTTL").arg(key).take())
            .await?;
        Ok(ttl_from_millis(millis))
    }

    pub(crate) async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        let cmd = redis::cmd("PEXPIRE").arg(key).arg(ttl_millis(ttl)).take();
        let applied: u64 = self.query("PEXPIRE", key, cmd).await?;
        Ok(applied > 0)
    }

    pub(crate) async fn take(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.query_once("GETDEL", key, redis::cmd("GETDEL").arg(key).take())
            .await
    }

    pub(crate) async fn incr(
        &self,
        key: &str,
        delta: i64,
        bounds: Bounds,
        ttl: Option<Duration>,
    ) -> Result<i64> {
        if bounds.is_full_range() && ttl.is_none() {
            // INCRBY alone refuses to overflow and changes nothing then.
            let cmd = redis::cmd("INCRBY").arg(key).arg(delta).take();
            let result = self.query_once("INCRBY", key, cmd).await;
            return result.map_err(|err| overflow_or(err, key, delta));
        }
        let Some((low, high)) = bounds.current_range(delta) else {
            return Err(Error::Overflow {
                key: key.to_owned(),
                delta,
            });
        };
        let limit = |bound: Option<i64>| bound.map(|b| b.to_string()).unwrap_or_default();
        let ttl = ttl.map(|t| ttl_millis(t).to_string()).unwrap_or_default();
        let args = [delta.to_string(), limit(low), limit(high), ttl];
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let result: Result<String> = self.script("INCRBY", &INCR_SCRIPT, &[key], &args).await;
        let text = result.map_err(|err| overflow_or(err, key, delta))?;
        text.parse().map_err(|_| Error::NotAnInteger {
            key: key.to_owned(),
        })
    }
}

/// PTTL's answer: -2 missing, -1 no expiry, otherwise milliseconds left.
fn ttl_from_millis(millis: i64) -> Ttl {
    match millis {
        -2 => Ttl::Missing,
        -1 => Ttl::Persistent,
        left => Ttl::Expires(Duration::from_millis(left.max(0).unsigned_abs())),
    }
}

/// Redis reports counter overflow as a plain error; give it its own variant.
fn overflow_or(err: Error, key: &str, delta: i64) -> Error {
    if let Error::Backend { source, .. } = &err {
        let text = source.to_string();
        if text.contains("OVERFLOW") || text.contains("would overflow") {
            return Error::Overflow {
                key: key.to_owned(),
                delta,
            };
        }
    }
    err
}
