//! TTL rules shared by every part of the crate: the accepted range, how a
//! TTL is reported, and its millisecond form.

use std::time::Duration;

use crate::error::{Error, Result};

/// The longest TTL accepted: Redis keeps expiry times as milliseconds in an
/// `i64` counted from the Unix epoch, so half that range leaves room for "now".
/// About 146 million years.
pub const MAX_TTL: Duration = Duration::from_millis(i64::MAX as u64 / 2);

/// Checks that a TTL is at least one millisecond and within [`MAX_TTL`].
pub(crate) fn check_ttl(ttl: Duration, key: Option<&str>) -> Result<()> {
    let reason = if ttl.is_zero() {
        "a TTL must be greater than zero"
    } else if ttl < Duration::from_millis(1) {
        "a TTL must be at least one millisecond"
    } else if ttl > MAX_TTL {
        "a TTL must not exceed cache_core::MAX_TTL"
    } else {
        return Ok(());
    };
    Err(Error::InvalidTtl {
        key: key.map(str::to_owned),
        ttl,
        reason,
    })
}

/// What a key's time to live is, as `TTL`/`PTTL` report it.
///
/// ```
/// use cache_core::Ttl;
/// use std::time::Duration;
///
/// let ttl = Ttl::Expires(Duration::from_secs(5));
/// assert_eq!(ttl.remaining(), Some(Duration::from_secs(5)));
/// assert_eq!(Ttl::Persistent.remaining(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// The key does not exist.
    Missing,
    /// The key exists and never expires.
    Persistent,
    /// The key expires after this long (millisecond precision).
    Expires(Duration),
}

impl Ttl {
    /// From PTTL's answer: -2 missing, -1 no expiry, otherwise milliseconds left.
    pub(crate) fn from_millis(millis: i64) -> Ttl {
        match millis {
            -2 => Ttl::Missing,
            -1 => Ttl::Persistent,
            left => Ttl::Expires(Duration::from_millis(left.max(0).unsigned_abs())),
        }
    }

    /// PTTL's answer for this TTL.
    pub(crate) fn millis(self) -> i64 {
        match self {
            Ttl::Missing => -2,
            Ttl::Persistent => -1,
            Ttl::Expires(left) => i64::try_from(left.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// The remaining time, when the key exists and expires.
    ///
    /// ```
    /// assert_eq!(cache_core::Ttl::Missing.remaining(), None);
    /// ```
    pub fn remaining(self) -> Option<Duration> {
        match self {
            Ttl::Expires(left) => Some(left),
            Ttl::Missing | Ttl::Persistent => None,
        }
    }
}

/// A TTL in whole milliseconds, as both backends store it.
pub(crate) fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}
