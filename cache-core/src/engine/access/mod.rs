//! Every read and write of a keyspace, each entry point end to end (its
//! span, its one timeout budget, the local tier, the stored-format headers,
//! the counters): views map their key and value types and call one.

mod read;
mod write;

pub(crate) use self::read::LocalFirst;
pub(crate) use self::write::{Encoded, Sealed};
