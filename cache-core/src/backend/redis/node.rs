//! A node by address: what a cluster's slot map and the sentinels name.

/// A node's host and port.
pub(crate) type Node = (String, u16);
