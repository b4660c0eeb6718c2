//! `TypedSet<K, M>`: a set of typed members per key (group members, online users).
//!
//! Redis drops a set when its last member goes, so "known to be empty" and
//! "not cached" would look the same. Every set this type writes therefore also
//! holds a marker member, the empty byte string, which no encoded member can be
//! (encoding to zero bytes is refused). A set with only the marker is empty;
//! no key at all is missing.

use std::borrow::Borrow;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{block_basics, block_key, on_one_key};
use crate::backend::ops::set::{Answer, MARKER, Query, SetQuery, Write};
use crate::codec::{Codec, CompressSettings, stored_form};
use crate::engine::KeyspaceSettings;
use crate::engine::Scope;
use crate::error::{Error, Result};
use crate::key::CacheKey;
use crate::stats::KeyspaceCounters;
use crate::stored::compress;
use crate::ttl::{Ttl, check_ttl};

/// A typed set per key. Made by [`KeyspaceBuilder::typed_set`](crate::KeyspaceBuilder::typed_set).
///
/// Members are compared by their encoded bytes, so use member types whose
/// encoding is deterministic (integers, strings, structs; not `HashMap`s).
/// With [compression](crate::KeyspaceBuilder::compress), members from its
/// threshold up are stored compressed, and compared compressed: a member
/// added before compression was turned on or off (or before the compressor
/// changed its output, in an upgrade) is still listed by `members`, but
/// `contains` and `remove` may not find it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// use std::time::Duration;
///
/// let cache = cache_core::Cache::memory();
/// let members = cache
///     .keyspace("group-members")
///     .ttl(Duration::from_secs(600))
///     .typed_set::<u64, u64>()?;
///
/// assert_eq!(members.members(&7).await?, None); // not cached
/// members.replace(&7, &[]).await?;              // cached: the group is empty
/// assert_eq!(members.members(&7).await?, Some(vec![]));
/// members.add(&7, &[1, 2, 3]).await?;
/// assert!(members.contains(&7, &2).await?);
/// assert_eq!(members.len(&7).await?, Some(3));
/// # Ok(()) }
/// ```
pub struct TypedSet<K: ?Sized, M> {
    scope: Scope<K>,
    ttl: Option<Duration>,
    codec: Codec,
    compress: Option<CompressSettings>,
    counters: Arc<KeyspaceCounters>,
    members: PhantomData<fn() -> M>,
}

block_basics!(TypedSet<K, M> { ttl, codec, compress, counters, members });
block_key!(
    TypedSet < K,
    M > r#"```
# fn main() -> cache_core::Result<()> {
let online = cache_core::Cache::memory().keyspace("online").typed_set::<str, u64>()?;
assert_eq!(online.key("eu"), "online:v1:eu");
# Ok(()) }
```"#
);

/// The count in an answer; a list answers with its length.
fn count(answer: Answer) -> usize {
    match answer {
        Answer::Count(count) => count,
        Answer::Members(members) => members.len(),
    }
}

impl<K, M> TypedSet<K, M>
where
    K: CacheKey + ?Sized,
    M: Serialize + DeserializeOwned,
{
    /// # Errors
    /// [`Error::Config`] when the codec is `Plain` and `M` is not a string,
    /// a byte string or an integer.
    pub(crate) fn new(keyspace: KeyspaceSettings) -> Result<Self> {
        let max = keyspace.engine.max_value_size();
        let format = crate::codec::ValueFormat::for_type::<M>(keyspace.codec, None, max);
        format.check::<M>(keyspace.layout.prefix())?;
        Ok(TypedSet {
            scope: Scope::new(&keyspace),
            ttl: keyspace.ttl,
            codec: keyspace.codec,
            compress: keyspace.compress,
            counters: keyspace.engine.keyspace_counters(keyspace.layout.prefix()),
            members: PhantomData,
        })
    }

    /// The full key and the encoded members of an `add` or `remove`.
    fn encode_members<Q>(
        &self,
        key: &Q,
        members: &[M],
        operation: &str,
    ) -> Result<(String, Vec<Vec<u8>>)>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.scope.key(key);
        if members.is_empty() {
            return Err(Error::config(format!(
                "{operation} on `{full_key}` needs at least one member"
            )));
        }
        let encoded = self.encode_all(&full_key, members)?;
        Ok((full_key, encoded))
    }

    fn encode_all(&self, full_key: &str, members: &[M]) -> Result<Vec<Vec<u8>>> {
        let max = self.scope.engine.max_value_size();
        members
            .iter()
            .map(|member| {
                let bytes = self.codec_bytes(full_key, member)?;
                if bytes.is_empty() {
                    return Err(Error::Encode {
                        key: full_key.to_owned(),
                        source: "a set member must not encode to zero bytes".into(),
                    });
                }
                if self.codec == Codec::Plain {
                    crate::codec::check_size(full_key, bytes.len(), max)?;
                    return Ok(bytes);
                }
                stored_form(full_key, bytes, (self.compress, max), &self.counters)
            })
            .collect()
    }

    fn codec_bytes(&self, full_key: &str, member: &M) -> Result<Vec<u8>> {
        self.codec.encode(member).map_err(|source| Error::Encode {
            key: full_key.to_owned(),
            source,
        })
    }

    fn decode_all(&self, full_key: &str, raw: Vec<Vec<u8>>) -> Result<Vec<M>> {
        raw.into_iter()
            .filter(|bytes| bytes.as_slice() != MARKER)
            .map(|stored| {
                let limit = self.scope.engine.max_value_size();
                let decoded = match self.codec {
                    Codec::Plain => self.codec.decode(&stored),
                    _ => {
                        compress::unpack(&stored, limit).and_then(|bytes| self.codec.decode(&bytes))
                    }
                };
                decoded.map_err(|source| Error::Decode {
                    key: full_key.to_owned(),
                    source,
                })
            })
            .collect()
    }

    fn checked_ttl(&self, full_key: &str) -> Result<Option<Duration>> {
        if let Some(ttl) = self.ttl {
            check_ttl(ttl, Some(full_key))?;
        }
        Ok(self.ttl)
    }

    /// Adds members in one command (creating the set if needed) and restarts its
    /// TTL. Returns how many were new.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty slice, encode errors, [`Error::WrongType`]
    /// when the key holds another type, backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let online = cache_core::Cache::memory().keyspace("online").typed_set::<str, u64>()?;
    /// assert_eq!(online.add("eu", &[1, 2]).await?, 2);
    /// assert_eq!(online.add("eu", &[2, 3]).await?, 1);
    /// # Ok(()) }
    /// ```
    pub async fn add<Q>(&self, key: &Q, members: &[M]) -> Result<usize>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let (full_key, encoded) = self.encode_members(key, members, "add")?;
        let ttl = self.checked_ttl(&full_key)?;
        self.write(&full_key, &encoded, ttl, false).await
    }

    /// Replaces the whole set atomically (an empty slice caches "no members"),
    /// with the default TTL. The cache-aside fill for a member list.
    ///
    /// # Errors
    /// As [`add`](Self::add), except that an empty slice is allowed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let members = cache_core::Cache::memory().keyspace("m").typed_set::<u64, u64>()?;
    /// members.add(&1, &[1, 2]).await?;
    /// members.replace(&1, &[3]).await?;
    /// assert_eq!(members.members(&1).await?, Some(vec![3]));
    /// # Ok(()) }
    /// ```
    pub async fn replace<Q>(&self, key: &Q, members: &[M]) -> Result<()>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.scope.key(key);
        let encoded = self.encode_all(&full_key, members)?;
        let ttl = self.checked_ttl(&full_key)?;
        self.write(&full_key, &encoded, ttl, true).await?;
        Ok(())
    }

    async fn write(
        &self,
        full_key: &str,
        members: &[Vec<u8>],
        ttl: Option<Duration>,
        replace: bool,
    ) -> Result<usize> {
        let write = Write {
            key: full_key,
            members,
            ttl,
            replace,
        };
        self.scope.engine.backend().run(&write).await
    }

    /// Runs `query` on the set at `full_key`.
    async fn query(&self, full_key: &str, query: Query<'_>) -> Result<Answer> {
        let query = SetQuery {
            key: full_key,
            query,
        };
        self.scope.engine.backend().run(&query).await
    }

    /// Removes members in one command; returns how many were there. The set
    /// stays cached, possibly empty.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty slice, encode errors, [`Error::WrongType`],
    /// backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let online = cache_core::Cache::memory().keyspace("online").typed_set::<str, u64>()?;
    /// online.add("eu", &[1]).await?;
    /// assert_eq!(online.remove("eu", &[1, 9]).await?, 1);
    /// assert_eq!(online.members("eu").await?, Some(vec![]));
    /// # Ok(()) }
    /// ```
    pub async fn remove<Q>(&self, key: &Q, members: &[M]) -> Result<usize>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let (full_key, encoded) = self.encode_members(key, members, "remove")?;
        Ok(count(self.query(&full_key, Query::Remove(&encoded)).await?))
    }

    /// All members, `Some(vec![])` for a cached empty set, `None` when nothing
    /// is cached at `key`.
    ///
    /// # Errors
    /// [`Error::Decode`] naming the key, [`Error::WrongType`], backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let online = cache_core::Cache::memory().keyspace("online").typed_set::<str, u64>()?;
    /// assert_eq!(online.members("eu").await?, None);
    /// # Ok(()) }
    /// ```
    pub async fn members<Q>(&self, key: &Q) -> Result<Option<Vec<M>>>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.scope.key(key);
        let raw = match self.query(&full_key, Query::Members).await? {
            Answer::Members(raw) => raw,
            Answer::Count(_) => Vec::new(),
        };
        if raw.is_empty() {
            return Ok(None);
        }
        self.decode_all(&full_key, raw).map(Some)
    }

    /// Whether `member` is in the set at `key`.
    ///
    /// # Errors
    /// Encode errors, [`Error::WrongType`], backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let online = cache_core::Cache::memory().keyspace("online").typed_set::<str, u64>()?;
    /// online.add("eu", &[1]).await?;
    /// assert!(online.contains("eu", &1).await?);
    /// assert!(!online.contains("eu", &2).await?);
    /// # Ok(()) }
    /// ```
    pub async fn contains<Q>(&self, key: &Q, member: &M) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.scope.key(key);
        let encoded = self.codec_bytes(&full_key, member)?;
        // The marker is not a member, and nothing encodes to it.
        if encoded.is_empty() {
            return Ok(false);
        }
        let stored = compress::pack(encoded, self.compress);
        Ok(count(self.query(&full_key, Query::Contains(&stored)).await?) > 0)
    }

    /// How many members the set has; `None` when nothing is cached at `key`.
    ///
    /// # Errors
    /// [`Error::WrongType`], backend or timeout errors.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let online = cache_core::Cache::memory().keyspace("online").typed_set::<str, u64>()?;
    /// assert_eq!(online.len("eu").await?, None);
    /// online.add("eu", &[1, 2]).await?;
    /// assert_eq!(online.len("eu").await?, Some(2));
    /// # Ok(()) }
    /// ```
    pub async fn len<Q>(&self, key: &Q) -> Result<Option<usize>>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        let full_key = self.scope.key(key);
        let count = count(self.query(&full_key, Query::Len).await?);
        // The marker is not a member.
        Ok(count.checked_sub(1))
    }

    on_one_key! {
        /// Removes the whole set; returns whether it existed.
        ///
        /// # Errors
        /// Backend or timeout errors.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
        /// let online = cache_core::Cache::memory().keyspace("online").typed_set::<str, u64>()?;
        /// online.add("eu", &[1]).await?;
        /// assert!(online.delete("eu").await?);
        /// assert_eq!(online.members("eu").await?, None);
        /// # Ok(()) }
        /// ```
        pub async fn delete -> bool = delete
    }

    on_one_key! {
        /// The remaining time to live of the set at `key`.
        ///
        /// # Errors
        /// Backend or timeout errors.
        ///
        /// ```
        /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
        /// let online = cache_core::Cache::memory().keyspace("online").typed_set::<str, u64>()?;
        /// assert_eq!(online.ttl("eu").await?, cache_core::Ttl::Missing);
        /// # Ok(()) }
        /// ```
        pub async fn ttl -> Ttl = ttl
    }
}

impl<K: CacheKey + ?Sized, M> TypedSet<K, M> {
    /// Removes every key of this keyspace (SCAN and UNLINK in batches, on
    /// every primary of a cluster; never KEYS or FLUSHDB); returns how many
    /// there were. Other keyspaces stay.
    ///
    /// # Errors
    /// Backend or timeout errors; what was removed before stays removed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let online = cache_core::Cache::memory().keyspace("online").typed_set::<str, u64>()?;
    /// online.add("eu", &[1]).await?;
    /// assert_eq!(online.clear().await?, 1);
    /// assert_eq!(online.members("eu").await?, None);
    /// # Ok(()) }
    /// ```
    pub async fn clear(&self) -> Result<u64> {
        self.scope.clear().await
    }
}
