//! A keyspace on one handle: the checked settings views are built from, and
//! the parts every typed view of it and its cache-aside share.

use std::sync::Arc;
use std::time::Duration;

use super::Engine;
use super::local::{LocalCopy, LocalSettings};
use super::policy::LoadPolicy;
use super::stamp::{self, Held};
use crate::codec::Codec;
use crate::key::KeyLayout;
use crate::stats::KeyspaceCounters;
use crate::ttl::{MAX_TTL, Ttl};

/// A checked keyspace: what a typed view or building block is built from.
#[derive(Debug, Clone)]
pub(crate) struct KeyspaceSettings {
    pub(crate) engine: Arc<Engine>,
    pub(crate) layout: KeyLayout,
    pub(crate) ttl: Option<Duration>,
    pub(crate) codec: Codec,
    pub(crate) load: LoadPolicy,
    pub(crate) local: Option<LocalSettings>,
}

impl KeyspaceSettings {
    /// Used directly only for `Cacheable` types, whose derive checked the settings.
    pub(crate) fn new(
        engine: Arc<Engine>,
        prefix: &str,
        version: u32,
        ttl: Option<Duration>,
        codec: Codec,
        load: LoadPolicy,
    ) -> Self {
        let layout = KeyLayout::new(engine.namespace(), prefix, version);
        KeyspaceSettings {
            engine,
            layout,
            ttl,
            codec,
            load,
            local: None,
        }
    }
}

/// One keyspace of a typed view: its keys, TTL, load policy, the keys of its
/// cached absences and load leases, its local tier and its counters.
#[derive(Clone)]
pub(crate) struct Space {
    /// The engine, the layout of values, the TTL and the load policy.
    pub(crate) settings: KeyspaceSettings,
    /// Where cached "absent" answers live (see `LoadPolicy::negative_ttl`).
    pub(crate) absent: KeyLayout,
    /// Where distributed single-flight leases live.
    pub(crate) lock: KeyLayout,
    /// The in-process tier in front of the backend, if configured.
    pub(crate) local: LocalCopy,
    /// This keyspace's counters on this handle.
    pub(crate) counters: Arc<KeyspaceCounters>,
}

impl Space {
    pub(crate) fn new(settings: KeyspaceSettings, local: LocalCopy) -> Self {
        if settings.load.fail_safe.is_some() {
            local.keep_last_copies();
        }
        Space {
            counters: settings.engine.keyspace_counters(settings.layout.prefix()),
            absent: settings.layout.companion("absent"),
            lock: settings.layout.companion("load"),
            settings,
            local,
        }
    }

    /// The storage of this keyspace's handle.
    pub(crate) fn backend(&self) -> &crate::backend::Backend {
        self.settings.engine.backend()
    }

    /// A debug span for one operation, with the keyspace but no key or value.
    pub(crate) fn span(&self, operation: &'static str) -> tracing::Span {
        tracing::debug_span!(
            "cache.op",
            operation,
            namespace = self.settings.engine.namespace().unwrap_or_default(),
            prefix = self.settings.layout.prefix(),
            // Set when the answer is an expired value (fail-safe): the reason.
            cache.stale = tracing::field::Empty,
        )
    }

    /// The span of a load task, with the keyspace but no key or value.
    pub(crate) fn load_span(&self) -> tracing::Span {
        tracing::debug_span!(
            "cache.load",
            namespace = self.settings.engine.namespace().unwrap_or_default(),
            prefix = self.settings.layout.prefix(),
        )
    }

    /// Whether a hit with `left` of its TTL should be reloaded in the background.
    pub(crate) fn wants_refresh(&self, left: crate::ttl::Ttl) -> bool {
        match (self.settings.load.early_refresh, self.settings.ttl, left) {
            (Some(fraction), Some(ttl), crate::ttl::Ttl::Expires(left)) => {
                left < ttl.mul_f64(fraction)
            }
            _ => false,
        }
    }

    /// The fail-safe window of the keyspace, when it has one.
    pub(crate) fn fail_safe(&self) -> Option<Duration> {
        self.settings.load.fail_safe
    }

    /// Whether reads look for the fail-safe header: under fail-safe, and in
    /// a view without it whose codec never writes what could pass for one
    /// (JSON, MessagePack), so that views of one keyspace with and without
    /// fail-safe read each other's values. Bincode bytes could start like a
    /// header, so a bincode view without fail-safe takes them as they are.
    pub(crate) fn reads_headers(&self) -> bool {
        self.fail_safe().is_some() || stamp::unambiguous(self.settings.codec)
    }

    /// What is stored for `payload` written to expire after `ttl`, and how
    /// long Redis keeps it: as it is, or under fail-safe with a header and
    /// kept for the window longer.
    pub(crate) fn seal(
        &self,
        payload: Vec<u8>,
        ttl: Option<Duration>,
    ) -> (Vec<u8>, Option<Duration>) {
        match self.fail_safe() {
            None => (payload, ttl),
            Some(window) => (
                stamp::seal(&payload, ttl, None),
                ttl.map(|ttl| ttl.saturating_add(window).min(MAX_TTL)),
            ),
        }
    }

    /// A stored value as a plain read sees it: its payload and the time it
    /// has left (the least of `ttl`, Redis', and its own), or `None` once it
    /// has expired (under fail-safe, kept only to answer a failed load).
    pub(crate) fn fresh(&self, stored: Vec<u8>, ttl: Ttl) -> Option<(Vec<u8>, Ttl)> {
        if !self.reads_headers() {
            return Some((stored, ttl));
        }
        match stamp::hold(stored, ttl) {
            Held::Fresh(payload, left) => Some((payload, left)),
            Held::Stale(_) => None,
        }
    }
}
