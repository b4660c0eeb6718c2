//! A keyspace on one handle: the checked settings views are built from, and
//! the parts every typed view of it and its cache-aside share.

use std::sync::Arc;
use std::time::Duration;

use super::Engine;
use super::local::{LocalCopy, LocalSettings};
use super::tags;
use crate::codec::{Codec, CompressSettings};
use crate::error::{Error, Result};
use crate::key::KeyLayout;
use crate::settings::LoadPolicy;
use crate::stats::KeyspaceCounters;
use crate::stored::stamp;
use crate::stored::tag_header;
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

/// One keyspace of a typed view on its engine: cloned by every view and
/// every `#[cached]` call, so a clone is two reference counts.
#[derive(Clone)]
pub(crate) struct Space {
    pub(crate) engine: Arc<Engine>,
    parts: Arc<Parts>,
}

/// A keyspace's parts without its engine, so that the engine can keep them
/// (the `#[cached]` memo) without keeping itself alive.
#[derive(Clone)]
pub(crate) struct Parts {
    pub(crate) layout: KeyLayout,
    pub(crate) ttl: Option<Duration>,
    pub(crate) codec: Codec,
    pub(crate) load: LoadPolicy,
    /// Whether every entry carries the keyspace's tag (`invalidate_all`).
    pub(crate) tagged: bool,
    /// Where cached "absent" answers live (see `LoadPolicy::negative_ttl`).
    pub(crate) absent: KeyLayout,
    /// Where distributed single-flight leases live.
    pub(crate) lock: KeyLayout,
    /// The in-process tier in front of the backend, if configured.
    pub(crate) local: LocalCopy,
    /// This keyspace's counters on this handle.
    pub(crate) counters: Arc<KeyspaceCounters>,
}

impl std::ops::Deref for Space {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.parts
    }
}

impl Space {
    pub(crate) fn new(settings: KeyspaceSettings, local: LocalCopy) -> Self {
        if settings.load.fail_safe.is_some() {
            local.keep_last_copies();
        }
        let layout = settings.layout;
        let parts = Parts {
            counters: settings.engine.keyspace_counters(layout.prefix()),
            absent: layout.companion("absent"),
            lock: layout.companion("load"),
            layout,
            ttl: settings.ttl,
            codec: settings.codec,
            load: settings.load,
            tagged: settings.tagged,
            local,
        };
        Space {
            engine: settings.engine,
            parts: Arc::new(parts),
        }
    }

    /// The keyspace `parts` describe, on `engine` (the one they were made on).
    pub(crate) fn from_parts(engine: Arc<Engine>, parts: Arc<Parts>) -> Self {
        Space { engine, parts }
    }

    /// The parts, for [`from_parts`](Self::from_parts).
    pub(crate) fn parts(&self) -> &Arc<Parts> {
        &self.parts
    }

    /// The parts to change, for a copy with other settings.
    pub(crate) fn parts_mut(&mut self) -> &mut Parts {
        Arc::make_mut(&mut self.parts)
    }

    /// The keyspace `settings` describe, with its local tier, shared by
    /// every view of the keyspace on the handle.
    ///
    /// # Errors
    /// [`Error::Config`] when the keyspace already has a local tier with
    /// other settings on this handle.
    pub(crate) fn build(settings: KeyspaceSettings) -> Result<Self> {
        let local = match settings.local {
            Some(local) => {
                let (tier, agreed) = settings.engine.local_tier(&settings.layout, local);
                agreed?;
                Some(tier)
            }
            None => None,
        };
        Ok(Space::new(settings, LocalCopy::new(local)))
    }

    /// This keyspace with a local tier of `settings` in front of the backend.
    ///
    /// # Errors
    /// As [`build`](Self::build), and for settings out of range.
    pub(crate) fn with_local(&self, settings: LocalSettings) -> Result<Self> {
        settings.check(self.layout.prefix())?;
        let (tier, agreed) = self.engine.local_tier(&self.layout, settings);
        agreed?;
        let mut copy = self.clone();
        copy.parts_mut().local = LocalCopy::new(Some(tier));
        Ok(copy)
    }

    /// # Errors
    /// [`Error::Config`] when the keyspace is not tagged.
    pub(crate) fn check_tagged(&self) -> Result<()> {
        if self.tagged {
            return Ok(());
        }
        Err(Error::config(format!(
            "keyspace `{}` is not tagged: build it with KeyspaceBuilder::tagged() \
             (or #[cache(tagged)]) to use tags on it",
            self.layout.prefix()
        )))
    }

    /// A batch call needs at least one `item`.
    pub(crate) fn not_empty(&self, len: usize, operation: &str, item: &str) -> Result<()> {
        if len == 0 {
            return Err(Error::config(format!(
                "{operation} on `{}` needs at least one {item}",
                self.layout.prefix()
            )));
        }
        Ok(())
    }

    /// The storage of this keyspace's handle.
    pub(crate) fn backend(&self) -> &crate::backend::Backend {
        self.engine.backend()
    }

    /// Where this keyspace's plain reads go: a replica when the handle reads
    /// from replicas and nothing here must read its own writes (no local
    /// tier, no tags); the primary otherwise.
    pub(crate) fn read_backend(&self) -> &crate::backend::Backend {
        match self.engine.replica_reads() {
            Some(reads) if !self.local.is_on() && !self.tagged => reads,
            _ => self.backend(),
        }
    }

    /// A debug span for one operation, with the keyspace but no key or value.
    pub(crate) fn span(&self, operation: &'static str) -> tracing::Span {
        tracing::debug_span!(
            "cache.op",
            operation,
            namespace = self.engine.namespace().unwrap_or_default(),
            prefix = self.layout.prefix(),
            // Set when the answer is an expired value (fail-safe): the reason.
            cache.stale = tracing::field::Empty,
        )
    }

    /// The span of a load task, with the keyspace but no key or value.
    pub(crate) fn load_span(&self) -> tracing::Span {
        tracing::debug_span!(
            "cache.load",
            namespace = self.engine.namespace().unwrap_or_default(),
            prefix = self.layout.prefix(),
        )
    }

    /// Whether a hit with `left` of its TTL should be reloaded in the background.
    pub(crate) fn wants_refresh(&self, left: crate::ttl::Ttl) -> bool {
        match (self.load.early_refresh, self.ttl, left) {
            (Some(fraction), Some(ttl), crate::ttl::Ttl::Expires(left)) => {
                left < ttl.mul_f64(fraction)
            }
            _ => false,
        }
    }

    /// The fail-safe window of the keyspace, when it has one.
    pub(crate) fn fail_safe(&self) -> Option<Duration> {
        self.load.fail_safe
    }

    /// Whether reads look for the fail-safe header: under fail-safe, and in
    /// a view without it whose codec never writes what could pass for one
    /// (JSON, MessagePack), so that views of one keyspace with and without
    /// fail-safe read each other's values. Bincode bytes could start like a
    /// header, so a bincode view without fail-safe takes them as they are.
    pub(crate) fn reads_headers(&self) -> bool {
        self.fail_safe().is_some() || self.tagged || unambiguous(self.codec)
    }

    /// The names of the tags an entry written with the user tags `extra`
    /// carries: the keyspace's own when it is tagged, then each of `extra` once.
    pub(crate) fn tag_names(&self, extra: &[String]) -> Vec<String> {
        if !self.tagged && extra.is_empty() {
            // The common write: nothing to allocate.
            return Vec::new();
        }
        let mut names = Vec::with_capacity(extra.len() + 1);
        if self.tagged {
            names.push(tags::keyspace_tag(&self.layout));
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
            // Boxed: only tagged writes read tag states, and held in place
            // their future would weigh on every write's.
            false => match Box::pin(self.tag_header(names, kept, since, &payload)).await? {
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
                self.layout.prefix()
            )));
        }
        let stamped = self.engine.stamp_tags(&names, kept).await?;
        let (prefix, count) = (self.layout.prefix(), names.len());
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
        let list =
            tag_header::TagList::new(tags.zip(stamped.iter().map(|tag| tag.state.as_slice())));
        let list = list.ok_or_else(|| {
            Error::config(format!(
                "an entry of `{prefix}` carries {count} tags; one holds at most 65,535"
            ))
        })?;
        let sealed = tag_header::seal(&list, payload);
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

/// Whether bytes of `codec` can never pass for a header: no JSON text starts
/// with 0xFF, and a MessagePack value that does is that one byte (-1).
fn unambiguous(codec: Codec) -> bool {
    match codec {
        Codec::Json => true,
        #[cfg(feature = "msgpack")]
        Codec::MsgPack => true,
        #[allow(unreachable_patterns)] // Only with the bincode feature.
        _ => false,
    }
}
