//! The copy of an expired (or invalidated) value that a cache-aside read
//! keeps, to answer with when the load that should replace it fails.

use crate::freshness::StaleReason;

/// An expired value kept under fail-safe, to answer with when its load fails.
#[derive(Clone, Debug)]
pub(crate) struct StaleCopy {
    /// The bytes as found, header included (or a local copy's payload).
    found: Vec<u8>,
    /// Where the payload starts in `found`.
    at: usize,
    /// Whether `found` is what Redis holds (not a local copy).
    pub(crate) in_redis: bool,
    /// Served at once, without a load, for this reason: within the throttle
    /// after a failed load, or with Redis down.
    pub(crate) serve_now: Option<StaleReason>,
}

impl StaleCopy {
    /// A local tier's last copy of a value, served because Redis is down.
    pub(crate) fn local(payload: Vec<u8>) -> Self {
        let serve_now = Some(StaleReason::RedisDown);
        StaleCopy {
            found: payload,
            at: 0,
            in_redis: false,
            serve_now,
        }
    }

    /// The value Redis holds as `found`, its codec's bytes from `at`.
    pub(crate) fn in_redis(found: Vec<u8>, at: usize, serve_now: Option<StaleReason>) -> Self {
        StaleCopy {
            found,
            at,
            in_redis: true,
            serve_now,
        }
    }

    /// The codec's bytes.
    pub(crate) fn payload(&self) -> &[u8] {
        self.found.get(self.at..).unwrap_or_default()
    }

    /// The bytes as Redis holds them.
    pub(crate) fn found(&self) -> &[u8] {
        &self.found
    }
}
