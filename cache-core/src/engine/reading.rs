//! A stored value as a read finds it, through its headers: the fail-safe
//! header (is it past its logical expiry?) and the tag header (does every tag
//! still have the state it was written under?). Every read of a value, plain
//! or cache-aside, one key or many, goes through here; a value it serves
//! comes out inflated when it was compressed, so that a local tier keeps it
//! ready to decode.

use super::Space;
use super::stale::StaleCopy;
use crate::error::Result;
use crate::freshness::StaleReason;
use crate::stats::bump;
use crate::stored::compress;
use crate::stored::stamp::{self, Stamp};
use crate::stored::tag_header::{self as header, Header, TagList};
use crate::ttl::Ttl;

/// A value that may be served: the codec's bytes, the time it has left,
/// and the tags it was written under (a local copy keeps them to check).
#[derive(Debug)]
pub(crate) struct Servable {
    pub(crate) payload: Vec<u8>,
    pub(crate) ttl: Ttl,
    pub(crate) tags: Option<TagList>,
}

/// Where a stored value stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Live,
    /// Past its logical expiry (fail-safe); served again for this reason
    /// within the throttle after a failed load.
    Expired(Option<StaleReason>),
    /// A tag it was written under has changed (or its state is lost).
    Invalidated,
    /// A tag header that cannot be read: never served.
    Broken,
}

/// A stored value, its headers read but its tags not checked yet.
#[derive(Debug)]
pub(crate) struct Reading {
    stored: Vec<u8>,
    /// Where the codec's bytes start.
    at: usize,
    left: Ttl,
    standing: Standing,
    tags: Option<TagList>,
    /// `max_value_size`: the most a compressed value may inflate to.
    limit: usize,
}

impl Reading {
    /// The value to serve, if it is fresh.
    pub(crate) fn into_servable(self) -> Option<Servable> {
        if self.standing != Standing::Live {
            return None;
        }
        let mut payload = self.stored;
        payload.drain(..self.at);
        Some(Servable {
            payload: compress::inflate(payload, self.limit),
            ttl: self.left,
            tags: self.tags,
        })
    }

    /// What a cache-aside read makes of it: fresh, or (`Err`) the copy to
    /// answer with if a load fails, for a value expired or invalidated.
    pub(crate) fn into_aside(self) -> std::result::Result<Option<Servable>, Option<StaleCopy>> {
        match self.standing {
            Standing::Live => Ok(self.into_servable()),
            Standing::Expired(serve_now) => {
                Err(Some(StaleCopy::in_redis(self.stored, self.at, serve_now)))
            }
            Standing::Invalidated => Err(Some(StaleCopy::in_redis(self.stored, self.at, None))),
            Standing::Broken => Err(None),
        }
    }
}

impl Space {
    /// Reads the headers of `stored` (Redis keeps it `ttl` longer).
    pub(crate) fn reading(&self, stored: Vec<u8>, ttl: Ttl) -> Reading {
        let limit = self.engine.max_value_size();
        let plain = |stored| Reading {
            stored,
            at: 0,
            left: ttl,
            standing: Standing::Live,
            tags: None,
            limit,
        };
        if !self.reads_headers() {
            return plain(stored);
        }
        let (stamp, at) = stamp::open(&stored);
        let (standing, left) = match stamp {
            Stamp::Live(own) => (Standing::Live, stamp::lesser(own, ttl)),
            Stamp::Expired => (Standing::Expired(None), ttl),
            Stamp::Throttled(reason) => (Standing::Expired(Some(reason)), ttl),
        };
        let (tags, at, standing) = match header::open(stored.get(at..).unwrap_or_default()) {
            Header::Plain => (None, at, standing),
            Header::Tagged(list, len) => (Some(list), at + len, standing),
            Header::Broken => (None, at, Standing::Broken),
        };
        Reading {
            stored,
            at,
            left,
            standing,
            tags,
            limit,
        }
    }

    /// Checks the tags of the fresh `readings` (one backend read for the
    /// states not known locally); those whose tags changed are counted.
    ///
    /// # Errors
    /// Backend and timeout errors of that read.
    pub(crate) async fn check_tags(&self, readings: &mut [Option<Reading>]) -> Result<()> {
        let tagged =
            |reading: &Reading| reading.standing == Standing::Live && reading.tags.is_some();
        let lists: Vec<&TagList> = (readings.iter().flatten())
            .filter(|reading| tagged(reading))
            .filter_map(|reading| reading.tags.as_ref())
            .collect();
        if lists.is_empty() {
            return Ok(());
        }
        let valid = self.engine.tags_valid(&lists).await?;
        let mut valid = valid.into_iter();
        for reading in readings.iter_mut().flatten() {
            if tagged(reading) && valid.next() == Some(false) {
                reading.standing = Standing::Invalidated;
                bump(&self.counters.tag_invalidated_reads);
            }
        }
        Ok(())
    }

    /// The values of `reads` that may be served: fresh and, when tagged,
    /// with every tag still as it was written.
    ///
    /// # Errors
    /// Backend and timeout errors of reading tag states.
    pub(crate) async fn servable_many(
        &self,
        reads: Vec<Option<(Vec<u8>, Ttl)>>,
    ) -> Result<Vec<Option<Servable>>> {
        let mut readings: Vec<Option<Reading>> = reads
            .into_iter()
            .map(|read| read.map(|(stored, ttl)| self.reading(stored, ttl)))
            .collect();
        self.check_tags(&mut readings).await?;
        Ok(readings
            .into_iter()
            .map(|reading| reading.and_then(Reading::into_servable))
            .collect())
    }

    /// [`servable_many`](Self::servable_many) of one read.
    ///
    /// # Errors
    /// As `servable_many`.
    pub(crate) async fn servable(&self, read: Option<(Vec<u8>, Ttl)>) -> Result<Option<Servable>> {
        let Some((stored, ttl)) = read else {
            return Ok(None);
        };
        let mut reading = self.reading(stored, ttl);
        // A hot read: every tag's state known locally, no list to gather.
        let known = match (&reading.tags, reading.standing) {
            (Some(tags), Standing::Live) => self.engine.tags_known_valid(tags),
            _ => Some(true),
        };
        match known {
            Some(true) => {}
            Some(false) => {
                reading.standing = Standing::Invalidated;
                bump(&self.counters.tag_invalidated_reads);
            }
            None => {
                let mut readings = [Some(reading)];
                self.check_tags(&mut readings).await?;
                let [checked] = readings;
                return Ok(checked.and_then(Reading::into_servable));
            }
        }
        Ok(reading.into_servable())
    }
}
