//! `TypedSet<K, M>`: a set of typed members per key (group members, online users).
//!
//! Redis drops a set when its last member goes, so "known to be empty" and
//! "not cached" would look the same. Every set this type writes therefore also
//! holds a marker member, the empty byte string, which no encoded member can be
//! (encoding to zero bytes is refused). A set with only the marker is empty;
//! no key at all is missing.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::memory::{Entry, Value, deadline};
use crate::backend::{Backend, ttl_millis};
use crate::codec::{Codec, check_size};
use crate::error::{Error, Result};
use crate::key::{CacheKey, KeySpace};
use crate::keyspace::{Keyspace, check_ttl};
use crate::{Cache, Ttl};

const MARKER: &[u8] = b"";

/// KEYS: the set. ARGV: "1" to replace what is there, the TTL in ms (or
/// empty), then the members. Returns how many members were new.
///
/// The marker goes in first: on a key of another type that fails before
/// anything is written, so a refused write leaves the key (and its TTL) as it
/// was. Members go in slices, since Lua's `unpack` has a stack limit.
static WRITE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if ARGV[1] == '1' then redis.call('DEL', KEYS[1]) end
redis.call('SADD', KEYS[1], '')
local added = 0
for i = 3, #ARGV, 1000 do
  added = added + redis.call('SADD', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if ARGV[2] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return added
",
    )
});

/// A typed set per key. Made by [`KeyspaceBuilder::typed_set`](crate::KeyspaceBuilder::typed_set).
///
/// Members are compared by their encoded bytes, so use member types whose
/// encoding is deterministic (integers, strings, structs; not `HashMap`s).
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
    cache: Cache,
    space: KeySpace,
    ttl: Option<Duration>,
    codec: Codec,
    types: PhantomData<fn(&K) -> M>,
}

impl<K: ?Sized, M> Clone for TypedSet<K, M> {
    fn clone(&self) -> Self {
        TypedSet {
            cache: self.cache.clone(),
            space: self.space.clone(),
            ttl: self.ttl,
            codec: self.codec,
            types: PhantomData,
        }
    }
}

impl<K: ?Sized, M> fmt::Debug for TypedSet<K, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedSet")
            .field("keys", &self.space)
            .field("ttl", &self.ttl)
            .field("codec", &self.codec)
            .finish()
    }
}

impl<K, M> TypedSet<K, M>
where
    K: CacheKey + ?Sized,
    M: Serialize + DeserializeOwned,
{
    pub(crate) fn new(keyspace: Keyspace) -> Self {
        TypedSet {
            cache: keyspace.cache,
            space: keyspace.space,
            ttl: keyspace.ttl,
            codec: keyspace.codec,
            types: PhantomData,
        }
    }

    /// The full Redis key of the set at `key`.
    ///
    /// ```
    /// # fn main() -> cache_core::Result<()> {
    /// let online = cache_core::Cache::memory().keyspace("online").typed_set::<str, u64>()?;
    /// assert_eq!(online.key("eu"), "online:v1:eu");
    /// # Ok(()) }
    /// ```
    pub fn key<Q>(&self, key: &Q) -> String
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        self.space.key(key)
    }

    fn encode_members(
        &self,
        full_key: &str,
        members: &[M],
        operation: &str,
    ) -> Result<Vec<Vec<u8>>> {
        if members.is_empty() {
            return Err(Error::config(format!(
                "{operation} on `{full_key}` needs at least one member"
            )));
        }
        self.encode_all(full_key, members)
    }

    fn encode_all(&self, full_key: &str, members: &[M]) -> Result<Vec<Vec<u8>>> {
        let max = self.cache.max_value_size();
        members
            .iter()
            .map(|member| {
                let bytes = self.codec.encode(member).map_err(|source| Error::Encode {
                    key: full_key.to_owned(),
                    source,
                })?;
                if bytes.is_empty() {
                    return Err(Error::Encode {
                        key: full_key.to_owned(),
                        source: "a set member must not encode to zero bytes".into(),
                    });
                }
                check_size(full_key, bytes.len(), max)?;
                Ok(bytes)
            })
            .collect()
    }

    fn decode_all(&self, full_key: &str, raw: Vec<Vec<u8>>) -> Result<Vec<M>> {
        raw.into_iter()
            .filter(|bytes| bytes.as_slice() != MARKER)
            .map(|bytes| {
                self.codec.decode(&bytes).map_err(|source| Error::Decode {
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
        let full_key = self.space.key(key);
        let encoded = self.encode_members(&full_key, members, "add")?;
        let ttl = self.checked_ttl(&full_key)?;
        self.write(&full_key, encoded, ttl, false).await
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
        let full_key = self.space.key(key);
        let encoded = self.encode_all(&full_key, members)?;
        let ttl = self.checked_ttl(&full_key)?;
        self.write(&full_key, encoded, ttl, true).await?;
        Ok(())
    }

    async fn write(
        &self,
        full_key: &str,
        encoded: Vec<Vec<u8>>,
        ttl: Option<Duration>,
        replace: bool,
    ) -> Result<usize> {
        match self.cache.backend() {
            Backend::Redis(redis) => {
                let replace: &[u8] = if replace { b"1" } else { b"" };
                let ttl = ttl
                    .map(|ttl| ttl_millis(ttl).to_string())
                    .unwrap_or_default();
                let mut args = vec![replace, ttl.as_bytes()];
                args.extend(encoded.iter().map(Vec::as_slice));
                redis.script("SADD", &WRITE, &[full_key], &args).await
            }
            Backend::Memory(memory) => memory.atomically(|store| {
                if replace {
                    store.remove(full_key);
                }
                let expires_at = ttl.map(|ttl| deadline(store.now(), ttl));
                if store.set(full_key, "SADD")?.is_none() {
                    let fresh = HashSet::from([MARKER.to_vec()]);
                    store.insert(full_key, Value::Set(fresh), None);
                }
                let entry = store
                    .set(full_key, "SADD")?
                    .ok_or_else(|| Error::WrongType {
                        operation: "SADD",
                        key: full_key.to_owned(),
                    })?;
                if expires_at.is_some() {
                    entry.expires_at = expires_at;
                }
                let Value::Set(set) = &mut entry.value else {
                    return Ok(0);
                };
                Ok(encoded
                    .into_iter()
                    .filter(|m| set.insert(m.clone()))
                    .count())
            }),
        }
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
        let full_key = self.space.key(key);
        let encoded = self.encode_members(&full_key, members, "remove")?;
        match self.cache.backend() {
            Backend::Redis(redis) => {
                let cmd = redis::cmd("SREM").arg(&full_key).arg(&encoded).take();
                redis.query_once("SREM", &full_key, cmd).await
            }
            Backend::Memory(memory) => memory.atomically(|store| {
                Ok(match store.set(&full_key, "SREM")? {
                    Some(Entry {
                        value: Value::Set(set),
                        ..
                    }) => encoded.iter().filter(|m| set.remove(*m)).count(),
                    _ => 0,
                })
            }),
        }
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
        let full_key = self.space.key(key);
        let raw: Vec<Vec<u8>> = match self.cache.backend() {
            Backend::Redis(redis) => {
                let cmd = redis::cmd("SMEMBERS").arg(&full_key).take();
                redis.query("SMEMBERS", &full_key, cmd).await?
            }
            Backend::Memory(memory) => memory.atomically(|store| {
                Ok::<_, Error>(match store.set(&full_key, "SMEMBERS")? {
                    Some(Entry {
                        value: Value::Set(set),
                        ..
                    }) => set.iter().cloned().collect(),
                    _ => Vec::new(),
                })
            })?,
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
        let full_key = self.space.key(key);
        let encoded = self.codec.encode(member).map_err(|source| Error::Encode {
            key: full_key.clone(),
            source,
        })?;
        match self.cache.backend() {
            Backend::Redis(redis) => {
                let cmd = redis::cmd("SISMEMBER").arg(&full_key).arg(&encoded).take();
                let found: bool = redis.query("SISMEMBER", &full_key, cmd).await?;
                Ok(found && !encoded.is_empty())
            }
            Backend::Memory(memory) => memory.atomically(|store| {
                Ok(match store.set(&full_key, "SISMEMBER")? {
                    Some(Entry {
                        value: Value::Set(set),
                        ..
                    }) => !encoded.is_empty() && set.contains(&encoded),
                    _ => false,
                })
            }),
        }
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
        let full_key = self.space.key(key);
        let count: usize = match self.cache.backend() {
            Backend::Redis(redis) => {
                let cmd = redis::cmd("SCARD").arg(&full_key).take();
                redis.query("SCARD", &full_key, cmd).await?
            }
            Backend::Memory(memory) => memory.atomically(|store| {
                Ok::<_, Error>(match store.set(&full_key, "SCARD")? {
                    Some(Entry {
                        value: Value::Set(set),
                        ..
                    }) => set.len(),
                    _ => 0,
                })
            })?,
        };
        // The marker is not a member.
        Ok(count.checked_sub(1))
    }

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
    pub async fn delete<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        self.cache.backend().delete(&self.space.key(key)).await
    }

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
    pub async fn ttl<Q>(&self, key: &Q) -> Result<Ttl>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        self.cache.backend().ttl(&self.space.key(key)).await
    }
}
