//! One-time codes (login codes, e-mail confirmations): stored with a TTL,
//! consumed by the first correct guess, and locked after too many wrong ones.

use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use crate::Cache;
use crate::backend::memory::{Value, deadline};
use crate::backend::{Backend, Retry, ttl_millis};
use crate::codec::check_size;
use crate::error::{Error, Result};
use crate::key::{CacheKey, KeySpace};
use crate::keyspace::{Keyspace, check_ttl};

/// KEYS: code, attempts. ARGV: guess, max attempts.
/// Returns {outcome, attempts left}: 0 missing, 1 accepted, 2 rejected, 3 locked.
static VERIFY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local code = redis.call('GET', KEYS[1])
if not code then return {0, 0} end
local max = tonumber(ARGV[2])
local attempts = tonumber(redis.call('GET', KEYS[2]) or '0')
if attempts >= max then return {3, 0} end
if code == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return {1, 0}
end
attempts = redis.call('INCR', KEYS[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
if attempts >= max then return {3, 0} end
return {2, max - attempts}
",
    )
});

/// What [`OneTimeCodes::verify`] found.
///
/// ```
/// use cache_core::Verification;
/// let outcome = Verification::Rejected { attempts_left: 2 };
/// let message = match outcome {
///     Verification::Accepted => "welcome",
///     Verification::Rejected { .. } => "wrong code",
///     Verification::Locked => "too many attempts",
///     Verification::Missing => "code expired",
/// };
/// assert_eq!(message, "wrong code");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The guess was right; the code is consumed and will not work again.
    Accepted,
    /// The guess was wrong; this many guesses are left.
    Rejected {
        /// Wrong guesses still allowed before the code locks.
        attempts_left: u32,
    },
    /// Too many wrong guesses: the code no longer accepts anything until it expires.
    Locked,
    /// No code is pending (never issued, expired, or already used).
    Missing,
}

/// One-time codes per key. Made by
/// [`KeyspaceBuilder::one_time_codes`](crate::KeyspaceBuilder::one_time_codes).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// use cache_core::Verification;
/// use std::time::Duration;
///
/// let codes = cache_core::Cache::memory().keyspace("login-code").one_time_codes::<str>(3)?;
/// codes.issue("alice@example.com", "482913", Duration::from_secs(300)).await?;
/// assert_eq!(codes.verify("alice@example.com", "000000").await?, Verification::Rejected { attempts_left: 2 });
/// assert_eq!(codes.verify("alice@example.com", "482913").await?, Verification::Accepted);
/// assert_eq!(codes.verify("alice@example.com", "482913").await?, Verification::Missing); // works once
/// # Ok(()) }
/// ```
pub struct OneTimeCodes<K: ?Sized> {
    cache: Cache,
    space: KeySpace,
    max_attempts: u32,
    types: PhantomData<fn(&K)>,
}

impl<K: ?Sized> Clone for OneTimeCodes<K> {
    fn clone(&self) -> Self {
        OneTimeCodes {
            cache: self.cache.clone(),
            space: self.space.clone(),
            max_attempts: self.max_attempts,
            types: PhantomData,
        }
    }
}

impl<K: ?Sized> fmt::Debug for OneTimeCodes<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneTimeCodes")
            .field("keys", &self.space)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

impl<K: CacheKey + ?Sized> OneTimeCodes<K> {
    pub(crate) fn new(keyspace: Keyspace, max_attempts: u32) -> Result<Self> {
        if max_attempts == 0 {
            return Err(Error::config(
                "one_time_codes: max_attempts must be at least 1",
            ));
        }
        Ok(OneTimeCodes {
            cache: keyspace.cache,
            space: keyspace.space,
            max_attempts,
            types: PhantomData,
        })
    }

    fn keys<Q: CacheKey + ?Sized>(&self, key: &Q) -> (String, String) {
        let code_key = self.space.tagged_key(key);
        let attempts_key = format!("{code_key}:attempts");
        (code_key, attempts_key)
    }

    /// Stores `code` for `key`, valid for `ttl`, replacing any pending code and
    /// resetting the count of wrong guesses.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty code, [`Error::InvalidTtl`],
    /// [`Error::ValueTooLarge`] for a code over the handle's `max_value_size`,
    /// backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// let codes = cache_core::Cache::memory().keyspace("code").one_time_codes::<u64>(5)?;
    /// codes.issue(&7, "1234", Duration::from_secs(60)).await?;
    /// assert!(codes.issue(&7, "", Duration::from_secs(60)).await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn issue<Q>(&self, key: &Q, code: &str, ttl: Duration) -> Result<()>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let (code_key, attempts_key) = self.keys(key);
        if code.is_empty() {
            return Err(Error::config(format!(
                "the code for `{code_key}` must not be empty"
            )));
        }
        check_ttl(ttl, Some(&code_key))?;
        check_size(&code_key, code.len(), self.cache.max_value_size())?;
        match self.cache.backend() {
            Backend::Redis(redis) => {
                let mut pipe = redis::pipe();
                pipe.atomic()
                    .cmd("SET")
                    .arg(&code_key)
                    .arg(code)
                    .arg("PX")
                    .arg(ttl_millis(ttl))
                    .ignore()
                    .cmd("DEL")
                    .arg(&attempts_key)
                    .ignore();
                let () = redis
                    .pipeline("SET", &code_key, pipe, Retry::Idempotent)
                    .await?;
            }
            Backend::Memory(memory) => memory.atomically(|store| {
                let expires_at = deadline(store.now(), ttl);
                store.insert(
                    &code_key,
                    Value::Bytes(code.as_bytes().to_vec()),
                    Some(expires_at),
                );
                store.remove(&attempts_key);
            }),
        }
        Ok(())
    }

    /// Checks `guess` against the pending code for `key` in one atomic step.
    ///
    /// # Errors
    /// Backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// use cache_core::Verification;
    /// let codes = cache_core::Cache::memory().keyspace("code").one_time_codes::<u64>(1)?;
    /// codes.issue(&7, "1234", Duration::from_secs(60)).await?;
    /// assert_eq!(codes.verify(&7, "9999").await?, Verification::Locked);
    /// assert_eq!(codes.verify(&7, "1234").await?, Verification::Locked);
    /// # Ok(()) }
    /// ```
    pub async fn verify<Q>(&self, key: &Q, guess: &str) -> Result<Verification>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let (code_key, attempts_key) = self.keys(key);
        let max = self.max_attempts;
        let (outcome, left): (u8, u32) = match self.cache.backend() {
            Backend::Redis(redis) => {
                let max = max.to_string();
                redis
                    .script(
                        "verify code",
                        &VERIFY,
                        &[&code_key, &attempts_key],
                        &[guess.as_bytes(), max.as_bytes()],
                    )
                    .await?
            }
            Backend::Memory(memory) => memory.atomically(|store| {
                let Some(code) = store.bytes(&code_key, "GET")?.cloned() else {
                    return Ok::<_, Error>((0, 0));
                };
                let attempts = store.integer(&attempts_key, "GET")?.unwrap_or(0);
                let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
                if attempts >= max {
                    return Ok((3, 0));
                }
                if code == guess.as_bytes() {
                    store.remove(&code_key);
                    store.remove(&attempts_key);
                    return Ok((1, 0));
                }
                let attempts = attempts + 1;
                let expires_at = store.entry(&code_key).and_then(|entry| entry.expires_at);
                let count = Value::Bytes(attempts.to_string().into_bytes());
                store.insert(&attempts_key, count, expires_at);
                Ok(if attempts >= max {
                    (3, 0)
                } else {
                    (2, max - attempts)
                })
            })?,
        };
        Ok(match outcome {
            1 => Verification::Accepted,
            2 => Verification::Rejected {
                attempts_left: left,
            },
            3 => Verification::Locked,
            _ => Verification::Missing,
        })
    }
}
