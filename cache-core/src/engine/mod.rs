//! The engine below the views: the state every view of one handle shares.

pub(crate) mod flight;
