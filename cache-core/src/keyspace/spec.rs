//! One keyspace's description, whichever way it was written, and the one
//! function that checks it.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use crate::codec::{Codec, CompressSettings, Compression, DEFAULT_COMPRESS_MIN, check_plain};
use crate::engine::{Engine, KeyspaceSettings};
use crate::error::{Error, Result};
use crate::key::is_valid_prefix;
use crate::settings::{LoadPolicy, LocalSettings};
use crate::ttl::check_ttl;

/// Everything that describes a keyspace, as one value: what a
/// [`KeyspaceBuilder`](crate::KeyspaceBuilder) fills, what a
/// [`Cacheable`](crate::Cacheable) type's constants give
/// ([`of`](Self::of)) and what a `#[cached]` function's attribute writes.
/// Every view is made from one through the same checks, so a description
/// gets the same errors whichever way it was written.
///
/// ```
/// use cache_core::{Cacheable, KeyspaceSpec};
///
/// #[derive(serde::Serialize, serde::Deserialize, Cacheable)]
/// #[cache(prefix = "price", ttl = "5m", version = 2)]
/// struct Price { #[cache(key)] model: String }
///
/// let spec = KeyspaceSpec::of::<Price>();
/// assert_eq!((spec.prefix.as_ref(), spec.version), ("price", 2));
/// assert_eq!(spec.ttl, Some(std::time::Duration::from_secs(300)));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct KeyspaceSpec {
    /// The key prefix: `A-Z a-z 0-9 . _ -`, not empty.
    pub prefix: Cow<'static, str>,
    /// The schema version in every key, at least 1.
    pub version: u32,
    /// The TTL `set` gives; `None`: entries never expire.
    pub ttl: Option<Duration>,
    /// The value codec.
    pub codec: Codec,
    /// How cache-aside loads.
    pub load: LoadPolicy,
    /// The local tier in front of Redis, if any.
    pub local: Option<LocalSettings>,
    /// Whether every entry carries the keyspace's tag.
    pub tagged: bool,
    /// The compression of large values, if any.
    pub compress: Option<Compression>,
    /// The smallest encoding compressed; `None`: [`DEFAULT_COMPRESS_MIN`].
    /// Only with `compress`.
    pub compress_min: Option<usize>,
}

impl KeyspaceSpec {
    /// The defaults under `prefix`: version 1, no TTL, JSON, the default
    /// load policy, no local tier, no tags, no compression.
    ///
    /// ```
    /// let spec = cache_core::KeyspaceSpec::new("price".into());
    /// assert_eq!(spec.version, 1);
    /// ```
    pub const fn new(prefix: Cow<'static, str>) -> Self {
        KeyspaceSpec {
            prefix,
            version: 1,
            ttl: None,
            codec: Codec::Json,
            load: LoadPolicy::DEFAULT,
            local: None,
            tagged: false,
            compress: None,
            compress_min: None,
        }
    }

    /// What the constants of `T` say, derived or written by hand.
    pub fn of<T: crate::Cacheable + ?Sized>() -> Self {
        let (compress, compress_min) = match T::COMPRESS {
            Some(settings) => (Some(settings.algorithm), Some(settings.min_size)),
            None => (None, None),
        };
        KeyspaceSpec {
            prefix: Cow::Borrowed(T::PREFIX),
            version: T::VERSION,
            ttl: T::TTL,
            codec: T::CODEC,
            load: T::LOAD,
            local: T::LOCAL,
            tagged: T::TAGGED,
            compress,
            compress_min,
        }
    }

    /// The one check every keyspace goes through, into the settings its
    /// views are built from on `engine`.
    pub(crate) fn check(self, engine: Arc<Engine>) -> Result<KeyspaceSettings> {
        let prefix = self.prefix.as_ref();
        if !is_valid_prefix(prefix) {
            return Err(Error::config(format!(
                "prefix `{}` must be non-empty and made of A-Z a-z 0-9 . _ -",
                prefix.escape_debug()
            )));
        }
        if self.version == 0 {
            return Err(Error::config(format!(
                "version of prefix `{prefix}` must be at least 1"
            )));
        }
        if let Some(ttl) = self.ttl {
            check_ttl(ttl, None)?;
        }
        self.load.check(prefix)?;
        if let Some(local) = &self.local {
            local.check(prefix)?;
        }
        let headers = [
            (self.load.fail_safe.is_some(), "fail_safe"),
            (self.tagged, "tags"),
            (self.compress.is_some(), "compress"),
        ];
        check_plain(prefix, self.codec, headers)?;
        if self.compress_min.is_some() && self.compress.is_none() {
            return Err(Error::config(format!(
                "compress_min on `{prefix}` needs compress(...) to choose an algorithm"
            )));
        }
        let mut keyspace = KeyspaceSettings::new(
            engine,
            prefix,
            self.version,
            self.ttl,
            self.codec,
            self.load,
        );
        keyspace.local = self.local;
        keyspace.tagged = self.tagged;
        keyspace.compress = self.compress.map(|algorithm| {
            let min = self.compress_min.unwrap_or(DEFAULT_COMPRESS_MIN);
            CompressSettings::new(algorithm, min)
        });
        Ok(keyspace)
    }
}
