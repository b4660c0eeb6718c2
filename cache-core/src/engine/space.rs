//! A keyspace on one handle: the checked settings views are built from, and
//! the parts every typed view of it and its cache-aside share.

use std::sync::Arc;
use std::time::Duration;

use super::Engine;
use super::local::{LocalCopy, LocalSettings};
use super::policy::LoadPolicy;
use super::stamp;
use super::tags::{self, header};
use crate::codec::{Codec, CompressSettings};
use crate::error::{Error, Result};
use crate::key::KeyLayout;
use crate::stats::KeyspaceCounters;
use crate::ttl::MAX_TTL;

/// A checked keyspace: what a typed view or building block is built from.
#[derive(Debug, Clone)]
pub(crate) struct KeyspaceSettings {
    pub(crate) engine: Arc<Engine>,
    pub(crate) layout: KeyLayout,
    pub(crate) ttl: Option<Duration>,
    pub(crate) codec: Codec,
    pub(crate) load: LoadPolicy,
    pub(crate) local: Option<LocalSettings>,
    /// Whether every entry carries the keyspace's tag (`invalidate_all`).
    pub(crate) tagged: bool,
    /// Compression of large values.
    pub(crate) compress: Option<CompressSettings>,
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
            tagged: false,
            compress: None,
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

    /// Where this keyspace's plain reads go: a replica when the handle reads
    /// from replicas and nothing here must read its own writes (no local
    /// tier, no tags); the primary otherwise.
    pub(crate) fn read_backend(&self) -> &crate::backend::Backend {
        match self.settings.engine.replica_reads() {
            Some(reads) if !self.local.is_on() && !self.settings.tagged => reads,
            _ => self.backend(),
        }
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
        self.fail_safe().is_some()
            || self.settings.tagged
            || stamp::unambiguous(self.settings.codec)
    }

    /// The names of the tags an entry written with the user tags `extra`
    /// carries: the keyspace's own when it is tagged, then each of `extra` once.
    pub(crate) fn tag_names(&self, extra: &[String]) -> Vec<String> {
        let mut names = Vec::with_capacity(extra.len() + 1);
        if self.settings.tagged {
            names.push(tags::keyspace_tag(&self.settings.layout));
        }
        for tag in extra {
            let name = tags::user_tag(tag);
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// What is stored for `payload` written to expire after `ttl` under the
    /// user tags `extra`, and how long Redis keeps it: under fail-safe with
    /// its header and kept for the window longer; with tags, with the tag
    /// header listing their states.
    ///
    /// # Errors
    /// [`Error::Config`] for tags on a keyspace whose reads would not see
    /// them; backend and timeout errors of stamping the tags.
    pub(crate) async fn seal(
        &self,
        payload: Vec<u8>,
        ttl: Option<Duration>,
        extra: &[String],
    ) -> Result<(Vec<u8>, Option<Duration>)> {
        let sealed = self.seal_since(payload, ttl, extra, Since::Now).await?;
        // Only a load can find its tags changed since it began.
        sealed.ok_or_else(|| Error::config("a write found its tags changed".to_owned()))
    }

    /// [`seal`](Self::seal) for a loaded value: `None` when one of its tags
    /// changed after `since` (the load began before an invalidation, so the
    /// value may be older than it, and must not be stored as fresh).
    ///
    /// # Errors
    /// As `seal`.
    pub(crate) async fn seal_since(
        &self,
        payload: Vec<u8>,
        ttl: Option<Duration>,
        extra: &[String],
        since: Since,
    ) -> Result<Option<(Vec<u8>, Option<Duration>)>> {
        let kept = match self.fail_safe() {
            Some(window) => ttl.map(|ttl| ttl.saturating_add(window).min(MAX_TTL)),
            None => ttl,
        };
        let names = self.tag_names(extra);
        let payload = match names.is_empty() {
            true => payload,
            false => match self.tag_header(names, kept, since, &payload).await? {
                Some(tagged) => tagged,
                None => return Ok(None),
            },
        };
        Ok(Some(match self.fail_safe() {
            None => (payload, ttl),
            Some(_) => (stamp::seal(&payload, ttl, None), kept),
        }))
    }

    /// `payload` under the tag header of `names`, stamped to live `kept`;
    /// `None` when a tag changed after `since`.
    async fn tag_header(
        &self,
        names: Vec<String>,
        kept: Option<Duration>,
        since: Since,
        payload: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        if !self.reads_headers() {
            return Err(Error::config(format!(
                "tags on keyspace `{}` need a codec other than bincode, or a tagged keyspace \
                 (KeyspaceBuilder::tagged): its reads would take the tag header for the value",
                self.settings.layout.prefix()
            )));
        }
        let stamped = self.settings.engine.stamp_tags(&names, kept).await?;
        let (prefix, count) = (self.settings.layout.prefix(), names.len());
        if stamped.len() != count {
            return Err(Error::config(format!(
                "stamping {count} tags of an entry of `{prefix}` answered {} states",
                stamped.len()
            )));
        }
        if let Since::Load(clock) = &since
            && !stamped
                .iter()
                .all(|tag| tags::unchanged_since(tag, clock.as_deref()))
        {
            return Ok(None);
        }
        let tags = names.iter().map(String::as_str);
        let list = header::TagList::new(tags.zip(stamped.iter().map(|tag| tag.state.as_slice())));
        let list = list.ok_or_else(|| {
            Error::config(format!(
                "an entry of `{prefix}` carries {count} tags; one holds at most 65,535"
            ))
        })?;
        let sealed = header::seal(&list, payload);
        Ok(Some(sealed))
    }
}

/// From when a written value is known current: now (a plain write), or
/// from the start of the load that found it, when the tag clock read this.
#[derive(Clone, Debug)]
pub(crate) enum Since {
    Now,
    Load(Option<Vec<u8>>),
}

/// A keyspace's parts without its engine (so an engine can keep them
/// without keeping itself alive): views made again and again, a
/// `#[cached]` function's on every call, are cloned from these.
#[derive(Clone)]
pub(crate) struct Prepared {
    layout: KeyLayout,
    ttl: Option<Duration>,
    codec: Codec,
    load: LoadPolicy,
    local_settings: Option<LocalSettings>,
    tagged: bool,
    compress: Option<CompressSettings>,
    absent: KeyLayout,
    lock: KeyLayout,
    local: LocalCopy,
    counters: Arc<KeyspaceCounters>,
}

impl Space {
    /// This keyspace's parts, for [`from_prepared`](Self::from_prepared).
    pub(crate) fn prepared(&self) -> Prepared {
        let settings = &self.settings;
        Prepared {
            layout: settings.layout.clone(),
            ttl: settings.ttl,
            codec: settings.codec,
            load: settings.load,
            local_settings: settings.local,
            tagged: settings.tagged,
            compress: settings.compress,
            absent: self.absent.clone(),
            lock: self.lock.clone(),
            local: self.local.clone(),
            counters: Arc::clone(&self.counters),
        }
    }

    /// The keyspace `prepared` describes, on `engine` (the one it was made on).
    pub(crate) fn from_prepared(engine: Arc<Engine>, prepared: &Prepared) -> Space {
        let prepared = prepared.clone();
        Space {
            settings: KeyspaceSettings {
                engine,
                layout: prepared.layout,
                ttl: prepared.ttl,
                codec: prepared.codec,
                load: prepared.load,
                local: prepared.local_settings,
                tagged: prepared.tagged,
                compress: prepared.compress,
            },
            absent: prepared.absent,
            lock: prepared.lock,
            local: prepared.local,
            counters: prepared.counters,
        }
    }
}
