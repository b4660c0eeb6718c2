//! The manual: what each part of the toolkit promises, in detail, with
//! examples that run as tests. The workspace README is the front page; these
//! pages are the reference behind it.
//!
//! - [`handle`]: the handle and its builder, keys, codecs, errors, timeouts
//!   and retries, expiry of every key, supported servers.
//! - [`cache_aside`]: `get_or_load` and `get_or_load_many`: single flight,
//!   distributed leases, negative caching, jitter, early refresh, failure
//!   policy, healing.
//! - [`cached`]: `#[cached]` on async functions and methods: options,
//!   return types, keys, the generated helpers, batches.
//! - [`local_tier`]: the in-process tier and how Redis keeps it coherent.
//! - [`tags`]: tagging entries, `invalidate_tag` and `invalidate_all`, what
//!   they promise under races and lost state, what they cost.
//! - [`blocks`]: rate limits, sequences, locks with fencing tokens, flags,
//!   one-time codes, typed sets.
//! - [`cluster`]: what changes (and what does not) on a Redis Cluster.
//! - [`sentinel`]: a primary behind Redis Sentinel, and its failovers.
//! - [`observability`]: counters, tracing spans and metrics.
//! - [`testing`]: testing a service that uses the toolkit (injected faults,
//!   real servers), where the toolkit runs and how this repository is tested.
//! - [`performance`]: the bench, its cases and what it measured.
//!
//! For the tests of a service that uses the toolkit: the `testing` module
//! (feature `testing`: injected faults, a loader counter), and the
//! `cache-testkit` crate (real servers and clusters).

#[doc = include_str!("../docs/handle.md")]
pub mod handle {}

#[doc = include_str!("../docs/cache_aside.md")]
pub mod cache_aside {}

#[doc = include_str!("../docs/cached.md")]
pub mod cached {}

#[doc = include_str!("../docs/local_tier.md")]
pub mod local_tier {}

#[doc = include_str!("../docs/tags.md")]
pub mod tags {}

#[doc = include_str!("../docs/blocks.md")]
pub mod blocks {}

#[doc = include_str!("../docs/cluster.md")]
pub mod cluster {}

#[doc = include_str!("../docs/sentinel.md")]
pub mod sentinel {}

#[doc = include_str!("../docs/observability.md")]
pub mod observability {}

#[doc = include_str!("../docs/testing.md")]
pub mod testing {}

#[doc = include_str!("../docs/performance.md")]
pub mod performance {}
