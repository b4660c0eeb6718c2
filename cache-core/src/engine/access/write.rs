//! Writes of a keyspace, each end to end: the TTL (the call's, or the
//! keyspace's checked and jittered), the stored-format headers, one timeout
//! budget, the local copies dropped around the write, and the span.

use std::time::Duration;

use tracing::Instrument;

use crate::backend::ops::stamp::Expire;
use crate::backend::{Incr, SetMode};
use crate::codec::Bounds;
use crate::engine::Space;
use crate::error::{Error, Result};
use crate::stored::stamp;
use crate::ttl::check_ttl;

/// A value as its view encoded it, with the tags it is written under.
pub(crate) struct Encoded {
    pub(crate) full_key: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) tags: Vec<String>,
}

/// Values sealed for the backend: full key, stored bytes, how long Redis keeps them.
pub(crate) type Sealed = Vec<(String, Vec<u8>, Option<Duration>)>;

impl Space {
    /// Writes one value as `mode` says, to expire after `ttl` (`None`: the
    /// keyspace's TTL, jittered). Returns whether it was written.
    ///
    /// # Errors
    /// [`Error::InvalidTtl`], tag errors, backend and timeout errors.
    pub(crate) async fn write_one(
        &self,
        value: Encoded,
        ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<bool> {
        let Encoded {
            full_key,
            bytes,
            tags,
        } = value;
        let ttl = self.ttl_for(&full_key, ttl)?;
        let backend = self.backend();
        let write = backend.within(async {
            let (stored, kept) = self.seal(bytes, ttl, &tags).await?;
            let set = backend.set(&full_key, stored, kept, mode);
            self.local.around(&[&full_key], set).await
        });
        let operation = match mode {
            SetMode::Always => "set",
            SetMode::IfAbsent => "set_if_absent",
        };
        write.instrument(self.span(operation)).await
    }

    /// Writes many values with the keyspace's TTL in one round trip per
    /// slot, all-or-nothing within a slot.
    ///
    /// # Errors
    /// As [`write_one`](Self::write_one).
    pub(crate) async fn write_many(&self, values: Vec<Encoded>) -> Result<()> {
        let backend = self.backend();
        let write = backend.within(async {
            let mut sealed = Vec::with_capacity(values.len());
            for Encoded {
                full_key,
                bytes,
                tags,
            } in values
            {
                let ttl = self.ttl_for(&full_key, None)?;
                let (stored, kept) = self.seal(bytes, ttl, &tags).await?;
                sealed.push((full_key, stored, kept));
            }
            let keys: Vec<String> = sealed.iter().map(|(key, _, _)| key.clone()).collect();
            self.put_sealed(sealed, &keys).await
        });
        write.instrument(self.span("set_many")).await
    }

    /// Stores `sealed` (one write alone as a SET, several in one round trip
    /// per slot) with the local copies of `written` dropped around it: the
    /// step every write of stored bytes ends with.
    ///
    /// # Errors
    /// Backend and timeout errors.
    pub(crate) async fn put_sealed(&self, sealed: Sealed, written: &[String]) -> Result<()> {
        let written: Vec<&str> = match self.local.is_on() {
            true => written.iter().map(String::as_str).collect(),
            false => Vec::new(),
        };
        let backend = self.backend();
        match <[_; 1]>::try_from(sealed) {
            Ok([(key, bytes, ttl)]) => {
                let write = backend.set(&key, bytes, ttl, SetMode::Always);
                self.local.around(&written, write).await.map(drop)
            }
            Err(sealed) => self.local.around(&written, backend.set_many(sealed)).await,
        }
    }

    /// Removes `full_keys` (and their cached absences, with negative
    /// caching on); returns how many values existed.
    ///
    /// # Errors
    /// Backend and timeout errors.
    pub(crate) async fn remove(&self, full_keys: &[String]) -> Result<usize> {
        let backend = self.backend();
        let delete = backend.within(async {
            if self.load.negative_ttl.is_some() {
                // An invalidation must also drop a cached "absent" answer.
                let absent: Vec<String> = (full_keys.iter())
                    .map(|key| self.absent.key_of_full(key, &self.layout))
                    .collect();
                match absent.as_slice() {
                    [one] => drop(backend.delete(one).await?),
                    _ => drop(backend.delete_many(&absent).await?),
                }
            }
            match full_keys {
                [one] => Ok(usize::from(backend.delete(one).await?)),
                _ => backend.delete_many(full_keys).await,
            }
        });
        let written: Vec<&str> = full_keys.iter().map(String::as_str).collect();
        self.local.around(&written, delete).await
    }

    /// Sets `full_key` to expire after `ttl`; under fail-safe the value's own
    /// expiry moves with Redis', in one step. Returns whether it existed.
    ///
    /// # Errors
    /// [`Error::InvalidTtl`], backend and timeout errors.
    pub(crate) async fn expire_one(&self, full_key: &str, ttl: Duration) -> Result<bool> {
        check_ttl(ttl, Some(full_key))?;
        let backend = self.backend();
        let Some(window) = self.fail_safe() else {
            return (self.local)
                .around(&[full_key], backend.expire(full_key, ttl))
                .await;
        };
        let tail = stamp::restamp(ttl);
        let op = Expire {
            key: full_key,
            tail,
            ttl,
            window,
        };
        self.local.around(&[full_key], backend.run(&op)).await
    }

    /// Reads and removes `full_key` in one step (`GETDEL`), answered as
    /// `decode` makes it and counted as a hit or a miss.
    ///
    /// # Errors
    /// `decode`'s, backend and timeout errors.
    pub(crate) async fn take_one<T>(
        &self,
        full_key: &str,
        decode: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<Option<T>> {
        let take = async {
            let take = self.backend().take(full_key);
            let bytes = self.local.around(&[full_key], take).await?;
            let read = bytes.map(|stored| (stored, crate::ttl::Ttl::Persistent));
            Ok::<_, Error>(self.servable(read).await?.map(|fresh| fresh.payload))
        };
        let take = self.backend().within(take);
        let bytes = take.instrument(self.span("take")).await?;
        self.counted(bytes, decode)
    }

    /// Adds `delta` to the integer at `full_key` within `bounds` (`None`: the
    /// value type, named `type_name`, is not an integer); a key without an
    /// expiry gets the keyspace's TTL. Returns the new value.
    ///
    /// # Errors
    /// [`Error::Config`] for a keyspace whose values carry headers or a
    /// value type that is not an integer; [`Error::Overflow`],
    /// [`Error::NotAnInteger`], backend and timeout errors.
    pub(crate) async fn add(
        &self,
        full_key: &str,
        delta: i64,
        (bounds, type_name): (Option<Bounds>, &str),
    ) -> Result<i64> {
        if self.fail_safe().is_some() || self.tagged {
            return Err(Error::config(format!(
                "incr on `{full_key}`: a keyspace with fail_safe or tags stores values with a \
                 header, not as Redis integers"
            )));
        }
        let Some(bounds) = bounds else {
            return Err(Error::config(format!(
                "incr on `{full_key}`: the value type {type_name} is not an integer"
            )));
        };
        if let Some(ttl) = self.ttl {
            check_ttl(ttl, Some(full_key))?;
        }
        let incr = Incr {
            key: full_key,
            delta,
            bounds,
            ttl: self.ttl,
        };
        (self.local)
            .around(&[full_key], self.backend().run(&incr))
            .await
    }

    /// Removes every key of this keyspace and its cached absences, with
    /// the local copies; returns how many keys it removed.
    ///
    /// # Errors
    /// Backend and timeout errors.
    pub(crate) async fn clear_all(&self) -> Result<u64> {
        // Reads under way when it starts keep nothing (see `LocalCopy::fetched`).
        self.local.clear();
        let heads = [self.layout.head().to_owned(), self.absent.head().to_owned()];
        self.backend().clear(&heads).await
    }

    /// Invalidates every entry of this tagged keyspace at once, by changing
    /// the keyspace's tag.
    ///
    /// # Errors
    /// [`Error::Config`] when the keyspace is not tagged; backend and timeout errors.
    pub(crate) async fn invalidate_all(&self) -> Result<()> {
        self.check_tagged()?;
        let names = [crate::engine::tags::keyspace_tag(&self.layout)];
        let invalidate = self.backend().within(self.engine.invalidate_tags(&names));
        invalidate.instrument(self.span("invalidate_all")).await
    }

    /// The TTL a write of `full_key` gets: `ttl`, checked, or the
    /// keyspace's, checked and jittered.
    fn ttl_for(&self, full_key: &str, ttl: Option<Duration>) -> Result<Option<Duration>> {
        if let Some(ttl) = ttl {
            check_ttl(ttl, Some(full_key))?;
            return Ok(Some(ttl));
        }
        let Some(ttl) = self.ttl else {
            return Ok(None);
        };
        check_ttl(ttl, Some(full_key))?;
        Ok(Some(self.load.jittered(ttl)))
    }
}
