//! How a keyspace behaves beyond its keys, TTL and codec: how cache-aside
//! loads ([`LoadPolicy`]) and the local tier in front of Redis
//! ([`LocalSettings`]). Public configuration, read by the engine below.

mod load;
mod local;

pub use self::load::{DEFAULT_FAIL_SAFE_THROTTLE, DistributedFlight, FailurePolicy, LoadPolicy};
pub use self::local::{LocalSettings, MAX_LOCAL_TTL};
