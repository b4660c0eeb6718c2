//! One server: redis-rs' `ConnectionManager` (one multiplexed connection,
//! replaced after it breaks) behind a [`Breaker`], so that while the server
//! refuses connections a call fails at once instead of waiting for a
//! reconnect of its own.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::breaker::{Breaker, Probe};

/// The connection to one server, shared by a handle's clones.
#[derive(Clone)]
pub(crate) struct Server {
    manager: ConnectionManager,
    breaker: Arc<Breaker>,
    /// Bounds each reconnect attempt of the prober.
    timeout: Duration,
}

impl Server {
    pub(crate) fn new(manager: ConnectionManager, timeout: Duration) -> Self {
        Server {
            manager,
            breaker: Arc::default(),
            timeout,
        }
    }

    /// A reconnect attempt: a PING on the manager, which reconnects on it.
    fn probe(&self) -> Probe {
        let (manager, timeout) = (self.manager.clone(), self.timeout);
        Box::new(move || {
            let mut manager = manager.clone();
            Box::pin(async move { ping(&mut manager, timeout).await })
        })
    }

    fn checked(&self, answer: &redis::RedisResult<impl Sized>) {
        if let Err(err) = answer {
            self.breaker.after(err, || self.probe());
        }
    }
}

/// Whether `manager` answers a PING within `timeout`. The first PING after
/// a failed reconnect only starts a new one (the manager answers it with the
/// old failure), so a second one waits for that.
pub(super) async fn ping(manager: &mut ConnectionManager, timeout: Duration) -> bool {
    for _ in 0..2 {
        let ping = redis::cmd("PING");
        let answer = tokio::time::timeout(timeout, ping.query_async::<()>(manager)).await;
        if let Ok(Ok(())) = answer {
            return true;
        }
    }
    false
}

impl Server {
    /// Sends one command: what `req_packed_command` does, without the box
    /// the trait needs, for the callers that can await it in place.
    pub(crate) async fn command(&mut self, cmd: &Cmd) -> redis::RedisResult<Value> {
        if self.breaker.is_down() {
            return Err(Breaker::refusal());
        }
        let answer = self.manager.send_packed_command(cmd).await;
        self.checked(&answer);
        answer
    }
}

impl ConnectionLike for Server {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.command(cmd))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            if self.breaker.is_down() {
                return Err(Breaker::refusal());
            }
            let answer = self
                .manager
                .send_packed_commands(pipeline, offset, count)
                .await;
            self.checked(&answer);
            answer
        })
    }

    fn get_db(&self) -> i64 {
        self.manager.get_db()
    }
}
