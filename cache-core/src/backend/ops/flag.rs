//! Flags that expire at an absolute time.

use std::time::Duration;

use super::{Atomic, RedisForm};
use crate::backend::Retry;
use crate::backend::memory::{Store, Value, deadline};
use crate::error::Result;

/// Sets the flag at `key` to expire at `at_unix_ms` (the same instant as
/// `left` from now, which the memory backend uses).
pub(crate) struct RaiseUntil<'a> {
    pub(crate) key: &'a str,
    pub(crate) at_unix_ms: u64,
    pub(crate) left: Duration,
}

impl Atomic for RaiseUntil<'_> {
    type Output = ();
    type Reply = redis::Value;
    const NAME: &'static str = "SET";

    fn redis(&self) -> RedisForm<'_> {
        let cmd = redis::cmd("SET")
            .arg(self.key)
            .arg("1")
            .arg("PXAT")
            .arg(self.at_unix_ms)
            .take();
        RedisForm::Command(self.key, cmd, Retry::Idempotent)
    }

    fn decode(&self, _: redis::Value) -> Result<()> {
        Ok(())
    }

    fn in_memory(&self, store: &mut Store) -> Result<()> {
        let expires_at = deadline(store.now(), self.left);
        store.insert(self.key, Value::Bytes(b"1".to_vec()), Some(expires_at));
        Ok(())
    }
}
