//! One-time codes (login codes, e-mail confirmations): stored with a TTL,
//! consumed by the first correct guess, and locked after too many wrong ones.

use std::borrow::Borrow;
use std::time::Duration;

use super::block_basics;
use crate::backend::ops::otp::{Issue, Verify};
use crate::codec::check_size;
use crate::engine::KeyspaceSettings;
use crate::engine::Scope;
use crate::error::{Error, Result};
use crate::key::CacheKey;
use crate::ttl::check_ttl;

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
    scope: Scope<K>,
    max_attempts: u32,
}

block_basics!(OneTimeCodes<K> { max_attempts }
);

impl<K: CacheKey + ?Sized> OneTimeCodes<K> {
    pub(crate) fn new(keyspace: KeyspaceSettings, max_attempts: u32) -> Result<Self> {
        if max_attempts == 0 {
            return Err(Error::config(
                "one_time_codes: max_attempts must be at least 1",
            ));
        }
        Ok(OneTimeCodes {
            scope: Scope::new(&keyspace),
            max_attempts,
        })
    }

    fn keys<Q: CacheKey + ?Sized>(&self, key: &Q) -> (String, String) {
        let code_key = self.scope.layout.tagged_key(key);
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
        check_size(&code_key, code.len(), self.scope.engine.max_value_size())?;
        let issue = Issue {
            code_key: &code_key,
            attempts_key: &attempts_key,
            code,
            ttl,
        };
        self.scope.engine.backend().run(&issue).await?;
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
        let verify = Verify {
            code_key: &code_key,
            attempts_key: &attempts_key,
            guess,
            max_attempts: self.max_attempts,
        };
        let (outcome, left) = self.scope.engine.backend().run(&verify).await?;
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

impl<K: CacheKey + ?Sized> OneTimeCodes<K> {
    /// Removes every key of this keyspace (SCAN and UNLINK in batches, on
    /// every primary of a cluster; never KEYS or FLUSHDB); returns how many
    /// there were. Other keyspaces stay.
    ///
    /// # Errors
    /// Backend or timeout errors; what was removed before stays removed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// # use std::time::Duration;
    /// let codes = cache_core::Cache::memory().keyspace("otp").one_time_codes::<str>(3)?;
    /// codes.issue("ada", "123456", Duration::from_secs(60)).await?;
    /// assert_eq!(codes.clear().await?, 1);
    /// # Ok(()) }
    /// ```
    pub async fn clear(&self) -> Result<u64> {
        self.scope.clear().await
    }
}
