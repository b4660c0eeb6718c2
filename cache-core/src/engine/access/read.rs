//! Plain reads of a keyspace, each end to end: the local tier, the backend
//! (a replica where nothing here must read its own writes), the stored
//! value's headers, one timeout budget, the span and the hit counters.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use crate::engine::Space;
use crate::engine::local::{Local, Ticket};
use crate::engine::reading::Servable;
use crate::error::Result;
use crate::stats::bump;
use crate::ttl::Ttl;

/// What the local tier holds for a batch of keys: each key's copy (counted
/// as a local hit), and the positions of the others, each with the ticket
/// that lets a value fetched for it be kept (with a tier only).
pub(crate) struct LocalFirst {
    pub(crate) found: Vec<Option<Arc<[u8]>>>,
    pub(crate) missing: Vec<(usize, Option<Ticket>)>,
}

impl Space {
    /// The local tier's copies of `full_keys`: the first step of every batch read.
    pub(crate) fn local_first(&self, full_keys: &[String]) -> LocalFirst {
        let mut missing = Vec::new();
        let found = (full_keys.iter().enumerate())
            .map(|(at, key)| {
                let copy = self.local.get(key, &self.engine);
                match copy.is_some() {
                    true => bump(&self.counters.local_hits),
                    // Only a value kept in a local tier needs to know what happened meanwhile.
                    false => missing.push((at, self.local.is_on().then(|| self.local.ticket(key)))),
                }
                copy
            })
            .collect();
        LocalFirst { found, missing }
    }

    /// Reads `full_key` and answers it as `decode` makes it; a hit, a local
    /// hit or a miss is counted. A value fetched from the backend is kept in
    /// the local tier (with its TTL, so that the copy never outlives it).
    ///
    /// # Errors
    /// `decode`'s, backend and timeout errors.
    pub(crate) async fn read_one<T>(
        &self,
        full_key: &str,
        decode: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<Option<T>> {
        if !self.local.is_on() {
            // The tags' states, when they must be read, get what the GET left.
            let (backend, started) = (self.read_backend(), Instant::now());
            let span = self.span("get");
            let bytes = backend.get(full_key).instrument(span.clone()).await?;
            let read = self.servable(bytes.map(|stored| (stored, Ttl::Persistent)));
            let fresh = backend.within_since(started, read).instrument(span).await?;
            return self.counted(fresh.map(|fresh| fresh.payload), decode);
        }
        if let Some(bytes) = self.local.get(full_key, &self.engine) {
            bump(&self.counters.local_hits);
            return self.counted(Some(bytes), decode);
        }
        let ticket = self.local.ticket(full_key);
        let Some(fresh) = self.read_servable(full_key, "get").await? else {
            return self.counted(None::<Vec<u8>>, decode);
        };
        let kept = (fresh.payload.as_slice(), fresh.tags.map(Arc::new));
        (self.local).fetched_decoded(full_key, kept, None, fresh.ttl, ticket);
        self.counted(Some(fresh.payload), decode)
    }

    /// [`read_one`](Self::read_one), answered as an `Arc<V>`; with a local
    /// tier, the value decoded is kept there as it is, so that a hit costs
    /// no decode.
    ///
    /// # Errors
    /// As `read_one`.
    pub(crate) async fn read_shared<V: Any + Send + Sync>(
        &self,
        full_key: &str,
        decode: impl FnOnce(&[u8]) -> Result<V>,
    ) -> Result<Option<Arc<V>>> {
        let decode_shared = |bytes: &[u8]| decode(bytes).map(Arc::new);
        match self.local.get_shared::<V>(full_key, &self.engine) {
            None if !self.local.is_on() => return self.read_one(full_key, decode_shared).await,
            None => {}
            Some(Local::Decoded(value)) => {
                bump(&self.counters.local_hits);
                bump(&self.counters.hits);
                return Ok(Some(value));
            }
            Some(Local::Bytes(bytes)) => {
                bump(&self.counters.local_hits);
                return self.counted(Some(bytes), decode_shared);
            }
        }
        let ticket = self.local.ticket(full_key);
        let Some(Servable { payload, ttl, tags }) = self.read_servable(full_key, "get").await?
        else {
            return self.counted(None::<Vec<u8>>, decode_shared);
        };
        let value = self.counted(Some(&payload), decode_shared)?;
        if let Some(value) = &value {
            let kept: Arc<dyn Any + Send + Sync> = value.clone();
            let bytes = (payload.as_slice(), tags.map(Arc::new));
            (self.local).fetched_decoded(full_key, bytes, Some(kept), ttl, ticket);
        }
        Ok(value)
    }

    /// Reads many keys: local copies first, one MGET for the rest (and one
    /// for the states of their tags not known locally), in one budget.
    ///
    /// # Errors
    /// Backend and timeout errors.
    pub(crate) async fn read_many(&self, full_keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let backend = self.read_backend();
        let span = self.span("get_many");
        if !self.local.is_on() {
            let read = backend.within(async {
                let found = backend.get_many(full_keys).await?;
                let found = found
                    .into_iter()
                    .map(|read| read.map(|b| (b, Ttl::Persistent)));
                self.servable_many(found.collect()).await
            });
            let found = read.instrument(span).await?;
            return Ok(self.tally(found.into_iter().map(|f| f.map(|f| f.payload))));
        }
        let LocalFirst { found, missing } = self.local_first(full_keys);
        let mut found: Vec<Option<Vec<u8>>> =
            found.into_iter().map(|b| b.map(|b| b.to_vec())).collect();
        if !missing.is_empty() {
            let wanted: Vec<&str> = (missing.iter())
                .filter_map(|(at, _)| full_keys.get(*at).map(String::as_str))
                .collect();
            let read = backend.within(async {
                let found = backend.get_many_with_ttl(&wanted).await?;
                self.servable_many(found).await
            });
            let fetched = read.instrument(span).await?;
            for (((at, ticket), key), read) in missing.into_iter().zip(&wanted).zip(fetched) {
                let (Some(servable), Some(slot)) = (read, found.get_mut(at)) else {
                    continue;
                };
                if let Some(ticket) = ticket {
                    let kept = (servable.payload.as_slice(), servable.tags.map(Arc::new));
                    (self.local).fetched_decoded(key, kept, None, servable.ttl, ticket);
                }
                *slot = Some(servable.payload);
            }
        }
        Ok(self.tally(found))
    }

    /// The time `full_key` has left: under fail-safe, before the value's own
    /// expiry; in a tagged keyspace, `Missing` once a tag was invalidated.
    ///
    /// # Errors
    /// Backend and timeout errors.
    pub(crate) async fn ttl_of(&self, full_key: &str) -> Result<Ttl> {
        if self.fail_safe().is_none() && !self.tagged {
            return self.read_backend().ttl(full_key).await;
        }
        let fresh = self.read_servable(full_key, "ttl").await?;
        Ok(fresh.map_or(Ttl::Missing, |fresh| fresh.ttl))
    }

    /// Whether `full_key` holds a live value (see [`ttl_of`](Self::ttl_of)).
    ///
    /// # Errors
    /// Backend and timeout errors.
    pub(crate) async fn holds(&self, full_key: &str) -> Result<bool> {
        if self.fail_safe().is_none() && !self.tagged {
            return self.read_backend().exists(full_key).await;
        }
        Ok(self.ttl_of(full_key).await? != Ttl::Missing)
    }

    /// The value at `full_key` with its TTL, if it may be served.
    async fn read_servable(
        &self,
        full_key: &str,
        operation: &'static str,
    ) -> Result<Option<Servable>> {
        let read = async {
            let read = self.read_backend().get_with_ttl(full_key).await?;
            self.servable(read).await
        };
        let read = self.backend().within(read);
        read.instrument(self.span(operation)).await
    }

    /// `bytes` decoded, counted as a hit or a miss.
    pub(crate) fn counted<B: AsRef<[u8]>, T>(
        &self,
        bytes: Option<B>,
        decode: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<Option<T>> {
        let Some(bytes) = bytes else {
            bump(&self.counters.misses);
            return Ok(None);
        };
        bump(&self.counters.hits);
        decode(bytes.as_ref()).map(Some)
    }

    /// Counts the hits and misses of a batch read.
    fn tally(&self, found: impl IntoIterator<Item = Option<Vec<u8>>>) -> Vec<Option<Vec<u8>>> {
        let found: Vec<_> = found.into_iter().collect();
        for read in &found {
            bump(match read {
                Some(_) => &self.counters.hits,
                None => &self.counters.misses,
            });
        }
        found
    }
}
