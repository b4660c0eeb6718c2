//! Typed sets: members are encoded bytes, and every set this crate writes
//! holds a marker member, the empty byte string, so that an empty set is
//! told apart from a missing one.

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::Duration;

use redis::{FromRedisValue, Script};

use super::{Atomic, RedisForm};
use crate::backend::Retry;
use crate::backend::memory::{Store, Value, deadline};
use crate::error::{Error, Result};
use crate::ttl::ttl_millis;

/// The member that marks a set as known, even when it has no other member.
pub(crate) const MARKER: &[u8] = b"";

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

/// Adds `members` (after emptying the set when `replace`), refreshing the TTL;
/// the output is how many members were new.
pub(crate) struct Write<'a> {
    pub(crate) key: &'a str,
    pub(crate) members: &'a [Vec<u8>],
    pub(crate) ttl: Option<Duration>,
    pub(crate) replace: bool,
}

impl Atomic for Write<'_> {
    type Output = usize;
    type Reply = usize;
    const NAME: &'static str = "SADD";

    fn redis(&self) -> RedisForm<'_> {
        let replace = if self.replace {
            b"1".to_vec()
        } else {
            Vec::new()
        };
        let ttl = self
            .ttl
            .map(|ttl| ttl_millis(ttl).to_string())
            .unwrap_or_default();
        let mut args = vec![replace, ttl.into_bytes()];
        args.extend(self.members.iter().cloned());
        RedisForm::Script(&WRITE, vec![self.key], args)
    }

    fn decode(&self, added: usize) -> Result<usize> {
        Ok(added)
    }

    fn in_memory(&self, store: &mut Store) -> Result<usize> {
        if self.replace {
            store.remove(self.key);
        }
        let expires_at = self.ttl.map(|ttl| deadline(store.now(), ttl));
        if store.set(self.key, Self::NAME)?.is_none() {
            let fresh = HashSet::from([MARKER.to_vec()]);
            store.insert(self.key, Value::Set(fresh), expires_at);
        }
        let Some((set, expiry)) = store.set(self.key, Self::NAME)? else {
            return Ok(0);
        };
        if expires_at.is_some() {
            *expiry = expires_at;
        }
        Ok(self
            .members
            .iter()
            .filter(|m| set.insert((*m).clone()))
            .count())
    }
}

/// What a read or removal asks of a set.
pub(crate) enum Query<'a> {
    /// Removes these members; answers how many were there.
    Remove(&'a [Vec<u8>]),
    /// Answers every member, marker included.
    Members,
    /// Answers 1 when the member is there.
    Contains(&'a [u8]),
    /// Answers the number of members, marker included.
    Len,
}

/// The answer to a [`Query`].
pub(crate) enum Answer {
    Count(usize),
    Members(Vec<Vec<u8>>),
}

/// One query on the set at `key`.
pub(crate) struct SetQuery<'a> {
    pub(crate) key: &'a str,
    pub(crate) query: Query<'a>,
}

impl Atomic for SetQuery<'_> {
    type Output = Answer;
    type Reply = redis::Value;
    const NAME: &'static str = "set";

    fn redis(&self) -> RedisForm<'_> {
        let (cmd, retry) = match self.query {
            Query::Remove(members) => (
                redis::cmd("SREM").arg(self.key).arg(members).take(),
                Retry::Never,
            ),
            Query::Members => (
                redis::cmd("SMEMBERS").arg(self.key).take(),
                Retry::Idempotent,
            ),
            Query::Contains(member) => (
                redis::cmd("SISMEMBER").arg(self.key).arg(member).take(),
                Retry::Idempotent,
            ),
            Query::Len => (redis::cmd("SCARD").arg(self.key).take(), Retry::Idempotent),
        };
        RedisForm::Command(self.key, cmd, retry)
    }

    fn decode(&self, reply: redis::Value) -> Result<Answer> {
        let parsed = match self.query {
            Query::Members => Vec::<Vec<u8>>::from_redis_value(reply).map(Answer::Members),
            _ => usize::from_redis_value(reply).map(Answer::Count),
        };
        parsed.map_err(|source| Error::from_redis(Self::NAME, Some(self.key), source.into(), false))
    }

    fn in_memory(&self, store: &mut Store) -> Result<Answer> {
        let found = store.set(self.key, Self::NAME)?.map(|(set, _)| set);
        Ok(match (&self.query, found) {
            (Query::Members, Some(set)) => Answer::Members(set.iter().cloned().collect()),
            (Query::Members, None) => Answer::Members(Vec::new()),
            (Query::Remove(members), Some(set)) => {
                Answer::Count(members.iter().filter(|m| set.remove(*m)).count())
            }
            (Query::Contains(member), Some(set)) => {
                Answer::Count(usize::from(set.contains(*member)))
            }
            (Query::Len, Some(set)) => Answer::Count(set.len()),
            (_, None) => Answer::Count(0),
        })
    }
}
