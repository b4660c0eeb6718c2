//! How a fail-safe keyspace stores a value: a 12-byte header, then the
//! codec's bytes. The header is `0xFF 'f' 's'`, a state byte (0: fresh;
//! 1 or 2: an expired value served again after a failed load, for a loader
//! error or a timeout), and the logical expiry as milliseconds since the Unix
//! epoch, big-endian (0: none). Redis keeps the key up to the fail-safe
//! window past that expiry. Keyspaces without fail-safe store the codec's
//! bytes alone; bytes without the header (written before fail-safe was on)
//! read as fresh until Redis expires them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::freshness::StaleReason;
use crate::ttl::Ttl;

/// The header's length.
pub(crate) const HEADER: usize = 12;
/// What a header starts with: a byte no JSON text begins with.
pub(crate) const MAGIC: [u8; 3] = [0xFF, b'f', b's'];

/// What a stored value's header says now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stamp {
    /// Before its logical expiry: the time left (`Persistent`: none).
    Live(Ttl),
    /// Past its logical expiry: to be loaded again.
    Expired,
    /// Served again after a failed load, until the throttle runs out.
    Throttled(StaleReason),
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

/// `payload` under a header that expires after `ttl` (never without one),
/// in state `throttled` (fresh when `None`).
pub(crate) fn seal(
    payload: &[u8],
    ttl: Option<Duration>,
    throttled: Option<StaleReason>,
) -> Vec<u8> {
    let expiry = ttl.map_or(0, |ttl| {
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        now_ms().saturating_add(ttl)
    });
    let state = match throttled {
        None => 0,
        Some(StaleReason::LoaderTimeout) => 2,
        Some(_) => 1,
    };
    let mut sealed = Vec::with_capacity(HEADER + payload.len());
    sealed.extend_from_slice(&MAGIC);
    sealed.push(state);
    sealed.extend_from_slice(&expiry.to_be_bytes());
    sealed.extend_from_slice(payload);
    sealed
}

/// The header of `stored` (fresh with no expiry of its own when it has none)
/// and where the payload starts.
pub(crate) fn open(stored: &[u8]) -> (Stamp, usize) {
    let Some((head, _)) = stored.split_first_chunk::<HEADER>() else {
        return (Stamp::Live(Ttl::Persistent), 0);
    };
    if head[..3] != MAGIC {
        return (Stamp::Live(Ttl::Persistent), 0);
    }
    let mut expiry = [0; 8];
    expiry.copy_from_slice(&head[4..]);
    let expiry = u64::from_be_bytes(expiry);
    let now = now_ms();
    let stamp = match (head[3], expiry) {
        (_, 0) => Stamp::Live(Ttl::Persistent),
        (_, at) if at <= now => Stamp::Expired,
        (0, at) => Stamp::Live(Ttl::Expires(Duration::from_millis(at - now))),
        (2, _) => Stamp::Throttled(StaleReason::LoaderTimeout),
        _ => Stamp::Throttled(StaleReason::LoaderError),
    };
    (stamp, HEADER)
}

/// The time a fresh value has left: the lesser of its own (`own`) and
/// Redis' (`kept`; `Persistent` when not read).
pub(crate) fn lesser(own: Ttl, kept: Ttl) -> Ttl {
    match (own, kept) {
        (Ttl::Expires(own), Ttl::Expires(kept)) => Ttl::Expires(own.min(kept)),
        (Ttl::Expires(own), _) => Ttl::Expires(own),
        (_, kept) => kept,
    }
}

/// The new header for a stored value whose expiry `expire` moves to `ttl`
/// from now (state fresh): the bytes from offset 3 on.
pub(crate) fn restamp(ttl: Duration) -> [u8; 9] {
    let sealed = seal(&[], Some(ttl), None);
    let mut tail = [0; 9];
    tail.copy_from_slice(&sealed[3..HEADER]);
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_to_its_payload_and_state() {
        let sealed = seal(b"42", Some(Duration::from_secs(60)), None);
        assert_eq!(sealed.len(), HEADER + 2);
        let (stamp, at) = open(&sealed);
        assert_eq!(&sealed[at..], b"42");
        assert!(matches!(stamp, Stamp::Live(Ttl::Expires(left)) if left > Duration::from_secs(59)));
        let throttled = seal(
            b"1",
            Some(Duration::from_secs(5)),
            Some(StaleReason::LoaderTimeout),
        );
        assert_eq!(
            open(&throttled).0,
            Stamp::Throttled(StaleReason::LoaderTimeout)
        );
        assert_eq!(
            open(&seal(b"1", None, None)).0,
            Stamp::Live(Ttl::Persistent)
        );
    }

    #[test]
    fn bytes_without_a_header_read_as_they_are() {
        assert_eq!(open(b"\"plain\""), (Stamp::Live(Ttl::Persistent), 0));
        assert_eq!(open(b"\xFFfs"), (Stamp::Live(Ttl::Persistent), 0));
    }

    #[test]
    fn a_past_expiry_is_expired_whatever_the_state() {
        let mut sealed = seal(b"1", Some(Duration::from_secs(5)), None);
        sealed[4..HEADER].copy_from_slice(&1_u64.to_be_bytes());
        assert_eq!(open(&sealed).0, Stamp::Expired);
    }
}
