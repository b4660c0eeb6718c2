//! `Cacheable`: what a domain type tells the cache about itself.

use std::time::Duration;

use crate::codec::{Codec, CompressSettings};
use crate::engine::local::LocalSettings;
use crate::key::CacheKey;
use crate::settings::LoadPolicy;

/// A type that knows how it is cached: its key type, key prefix, schema version,
/// default TTL and codec. Usually derived:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// use cache_core::{Cache, Cacheable};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Cacheable, Debug, PartialEq)]
/// #[cache(prefix = "price", ttl = "5m", version = 2)]
/// struct ModelPrice {
///     #[cache(key)]
///     model: String,
///     input_per_1k: f64,
/// }
///
/// let cache = Cache::builder().namespace("gateway").build_memory()?;
/// let prices = cache.typed::<ModelPrice>()?;
/// let price = ModelPrice { model: "gpt-4".into(), input_per_1k: 0.03 };
/// prices.put(&price).await?;
/// assert_eq!(prices.key("gpt-4"), "gateway:price:v2:gpt-4");
/// assert_eq!(prices.get("gpt-4").await?, Some(price));
/// # Ok(()) }
/// ```
///
/// # The derive's attributes
///
/// All go in `#[cache(...)]` on the type, except `key` and `tag`, which go on fields.
/// Every value is checked at compile time, and every mistake is reported at
/// once, at the offending token.
///
/// | attribute | example | meaning | default |
/// | --- | --- | --- | --- |
/// | `prefix` | `prefix = "price"` | key prefix, `A-Z a-z 0-9 . _ -` | the type name in snake_case |
/// | `ttl` | `ttl = 300`, `ttl = "5m"` | default expiry (`ms`, `s`, `m`, `h`, `d`; a bare number is seconds) | never expires |
/// | `version` | `version = 2` | schema version, part of every key | 1 |
/// | `codec` | `codec = "msgpack"` | `json`, `bincode` or `msgpack` (the feature is checked), or `plain` on a newtype whose field is a [`PlainValue`](crate::PlainValue) | `json` |
/// | `compress` | `compress = "lz4"` | compress large values: `lz4` or `zstd` (the feature is checked); see [`KeyspaceBuilder::compress`](crate::KeyspaceBuilder::compress) | off |
/// | `compress_min` | `compress_min = "4KiB"` | compress values from this size (`B`, `KiB`, `MiB`; a bare number is bytes; needs `compress`) | 1 KiB |
/// | `key` (field) | `#[cache(key)] model: String` | the key type, and `put(&value)` stores under it | |
/// | `key_type` | `key_type = "u64"` | the key type when no field is the key | `String` |
/// | `crate` | `crate = "my_facade::cache_core"` | where cache-core is, for facade crates | `::cache_core` |
/// | `negative_ttl` | `negative_ttl = "30s"` | cache a loader's "absent" this long | not cached |
/// | `jitter` | `jitter = 0.1` | shorten each stored TTL by up to this fraction | 0 |
/// | `early_refresh` | `early_refresh = 0.2` | reload in the background in the TTL's last fraction | off |
/// | `on_failure` | `on_failure = "closed"` | `get_or_load` on a Redis error: `"open"` loads, `"closed"` errs | `"open"` |
/// | `distributed` | `distributed(lease = "5s", wait = "2s")` | single flight across processes | in-process only |
/// | `hard_timeout` | `hard_timeout = "2s"` | give the loader up after this long | no limit |
/// | `fail_safe` | `fail_safe = "1h"` | keep values this long past their expiry, to answer when a load fails | off |
/// | `fail_safe_throttle` | `fail_safe_throttle = "30s"` | after a failed load, serve the expired value this long before loading again (needs `fail_safe`) | 30 s |
/// | `soft_timeout` | `soft_timeout = "100ms"` | answer with the expired value when the loader is slower, and let it finish alone (needs `fail_safe` and a longer `hard_timeout`) | off |
/// | `local` | `local(capacity = 10000, ttl = "5s")` | a local in-process tier | none |
/// | `tagged` | `tagged` | a [tagged](crate::KeyspaceBuilder::tagged) keyspace: `invalidate_all`, and tags on writes | off (on with a `tag` field) |
/// | `tag` (field) | `#[cache(tag)] provider: String`, `#[cache(tag = "region")] zone: u32` | each entry is tagged `name:value` (the field's name unless given; see [`tag`](crate::tag)); the field's type is a key type | no tags |
///
/// ```
/// use cache_core::{Cacheable, Codec, FailurePolicy, LocalSettings};
/// use std::time::Duration;
///
/// #[derive(serde::Serialize, serde::Deserialize, Cacheable)]
/// #[cache(prefix = "price", ttl = "5m", version = 2, codec = "json",
///         negative_ttl = "30s", jitter = 0.1, early_refresh = 0.2, on_failure = "open",
///         distributed(lease = "5s", wait = "2s"), hard_timeout = "2s",
///         fail_safe = "1h", fail_safe_throttle = "30s", soft_timeout = "100ms",
///         local(capacity = 10000, ttl = "5s"))]
/// struct ModelPrice { #[cache(key)] model: String, input_per_1k: f64 }
///
/// #[derive(serde::Serialize, serde::Deserialize, Cacheable)]
/// #[cache(key_type = "u64", crate = "cache_core")]
/// struct MessageSeq(i64);
///
/// assert_eq!(ModelPrice::PREFIX, "price");
/// assert_eq!(ModelPrice::TTL, Some(Duration::from_secs(300)));
/// assert_eq!(ModelPrice::VERSION, 2);
/// assert_eq!(ModelPrice::CODEC, Codec::Json);
/// assert_eq!(ModelPrice::LOCAL, Some(LocalSettings::new(10_000, Duration::from_secs(5))));
/// assert_eq!(MessageSeq::PREFIX, "message_seq");
/// ```
///
/// A hand-written impl sets the same items; only `Key` and `PREFIX` are required.
/// [`Cache::typed`](crate::Cache::typed) checks its constants as
/// [`KeyspaceBuilder::typed`](crate::KeyspaceBuilder::typed) checks a
/// builder's settings, with the same errors (the derive makes those checks at
/// compile time):
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// use cache_core::{Cache, Cacheable, Codec};
/// use serde::{Deserialize, Serialize};
/// use std::time::Duration;
///
/// #[derive(Serialize, Deserialize)]
/// struct Members(Vec<u64>);
///
/// impl Cacheable for Members {
///     type Key = u64; // the group id
///     const PREFIX: &'static str = "members";
///     const TTL: Option<Duration> = Some(Duration::from_secs(600));
///     const CODEC: Codec = Codec::Json;
/// }
///
/// let groups = Cache::memory().typed::<Members>()?;
/// groups.set(&7, &Members(vec![1, 2, 3])).await?;
/// assert_eq!(groups.key(&7), "members:v1:7");
///
/// struct Shaky;
/// impl Cacheable for Shaky {
///     type Key = u64;
///     const PREFIX: &'static str = "shaky";
///     const LOAD: cache_core::LoadPolicy = cache_core::LoadPolicy::DEFAULT.jitter(1.5);
/// }
/// # impl Serialize for Shaky { fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> { s.serialize_unit() } }
/// # impl<'de> Deserialize<'de> for Shaky { fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> { <()>::deserialize(d).map(|()| Shaky) } }
/// let err = Cache::memory().typed::<Shaky>().err().map(|err| err.to_string());
/// assert_eq!(err.as_deref(), Some("invalid configuration: jitter of `shaky` must be at least 0 and below 1, got 1.5"));
/// # Ok(()) }
/// ```
pub trait Cacheable {
    /// The type that names an entry (the `#[cache(key)]` field's type when derived).
    type Key: CacheKey;

    /// The key prefix: non-empty, made of `A-Z a-z 0-9 . _ -`.
    const PREFIX: &'static str;

    /// The schema version, part of every key (at least 1). Bump it when the type
    /// changes so that new code never decodes bytes written by old code.
    const VERSION: u32 = 1;

    /// The TTL given by `set` and `put`; `None` means entries never expire.
    const TTL: Option<Duration> = None;

    /// The value codec.
    const CODEC: Codec = Codec::Json;

    /// Compression of large values; see
    /// [`KeyspaceBuilder::compress`](crate::KeyspaceBuilder::compress).
    const COMPRESS: Option<CompressSettings> = None;

    /// How `get_or_load` behaves for this type; see [`LoadPolicy`].
    const LOAD: LoadPolicy = LoadPolicy::DEFAULT;

    /// A local in-process tier; see
    /// [`KeyspaceBuilder::local`](crate::KeyspaceBuilder::local). Checked as
    /// the builder checks it: a capacity of 0 or a TTL beyond
    /// [`MAX_LOCAL_TTL`](crate::MAX_LOCAL_TTL) is an error.
    const LOCAL: Option<LocalSettings> = None;

    /// Whether the keyspace is tagged (see
    /// [`KeyspaceBuilder::tagged`](crate::KeyspaceBuilder::tagged)): needed
    /// for [`tags`](Self::tags) and for `invalidate_all`.
    const TAGGED: bool = false;

    /// The tags this value is stored under (the derive's `#[cache(tag)]`
    /// fields, as [`tag`](crate::tag) makes them); none by default.
    ///
    /// ```
    /// use cache_core::Cacheable;
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Cacheable)]
    /// #[cache(prefix = "price")]
    /// struct Price { #[cache(key)] model: String, #[cache(tag)] provider: String }
    ///
    /// let price = Price { model: "gpt-4".into(), provider: "openai".into() };
    /// assert_eq!(price.tags(), ["provider:openai"]);
    /// assert!(Price::TAGGED);
    /// ```
    fn tags(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The tag `name:value` that a `#[cache(tag = "name")]` field holding
/// `value` gives its entries, with `value` escaped as keys are: what to pass
/// to [`Cache::invalidate_tag`](crate::Cache::invalidate_tag).
///
/// ```
/// assert_eq!(cache_core::tag("provider", "openai"), "provider:openai");
/// assert_eq!(cache_core::tag("tenant", &42u64), "tenant:42");
/// assert_eq!(cache_core::tag("team", "a b"), "team:a%20b");
/// ```
pub fn tag<T: CacheKey + ?Sized>(name: &str, value: &T) -> String {
    let mut tag = String::with_capacity(name.len() + 16);
    tag.push_str(name);
    tag.push(':');
    value.write_key(&mut tag);
    tag
}

/// A [`Cacheable`] type that carries its own key, so that
/// [`TypedCache::put`](crate::TypedCache::put) can store a value under it.
/// Derived when a field is marked `#[cache(key)]`.
///
/// ```
/// use cache_core::{Cacheable, KeyedCacheable};
///
/// #[derive(serde::Serialize, serde::Deserialize, Cacheable)]
/// struct Session { #[cache(key)] id: String, user: u64 }
///
/// let session = Session { id: "abc".into(), user: 1 };
/// assert_eq!(session.cache_key(), "abc");
/// ```
pub trait KeyedCacheable: Cacheable {
    /// The key this value is stored under.
    fn cache_key(&self) -> &Self::Key;
}

/// The `msgpack` codec for the derive: a compile error naming the feature when
/// it is off, so `codec = "msgpack"` fails at the attribute and not at run time.
#[cfg(feature = "msgpack")]
#[doc(hidden)]
#[macro_export]
macro_rules! __cacheable_codec_msgpack {
    () => {
        $crate::Codec::MsgPack
    };
}

#[cfg(not(feature = "msgpack"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __cacheable_codec_msgpack {
    () => {
        ::core::compile_error!("codec \"msgpack\" needs the `msgpack` feature of cache-core")
    };
}

/// The `bincode` codec for the derive, as for `msgpack`.
#[cfg(feature = "bincode")]
#[doc(hidden)]
#[macro_export]
macro_rules! __cacheable_codec_bincode {
    () => {
        $crate::Codec::Bincode
    };
}

#[cfg(not(feature = "bincode"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __cacheable_codec_bincode {
    () => {
        ::core::compile_error!("codec \"bincode\" needs the `bincode` feature of cache-core")
    };
}

/// The `lz4` compression for the derive: a compile error naming the feature
/// when it is off, as for the codecs.
#[cfg(feature = "lz4")]
#[doc(hidden)]
#[macro_export]
macro_rules! __cacheable_compress_lz4 {
    () => {
        $crate::Compression::Lz4
    };
}

#[cfg(not(feature = "lz4"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __cacheable_compress_lz4 {
    () => {
        ::core::compile_error!("compress = \"lz4\" needs the `lz4` feature of cache-core")
    };
}

/// The `zstd` compression for the derive, as for `lz4`.
#[cfg(feature = "zstd")]
#[doc(hidden)]
#[macro_export]
macro_rules! __cacheable_compress_zstd {
    () => {
        $crate::Compression::Zstd
    };
}

#[cfg(not(feature = "zstd"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __cacheable_compress_zstd {
    () => {
        ::core::compile_error!("compress = \"zstd\" needs the `zstd` feature of cache-core")
    };
}
