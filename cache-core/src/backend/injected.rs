//! Faults injected into the memory backend's calls (feature `testing`):
//! each call goes through the same attempt loop as a Redis call, with an
//! attempt that fails as the [`Faults`] controller says, so that the handle
//! answers, retries, times out and counts exactly as on a failing server.

use std::sync::Arc;
use std::time::Duration;

use super::Call;
use super::attempts::{CallSite, attempts};
use super::faults::{Fault, Faults};
use crate::error::Result;
use crate::stats::Stats;

/// A memory backend's faults, with what its calls need to fail like Redis'.
#[derive(Debug)]
pub(crate) struct Injector {
    faults: Faults,
    timeout: Duration,
    stats: Arc<Stats>,
}

impl Injector {
    pub(crate) fn new(faults: Faults, timeout: Duration, stats: Arc<Stats>) -> Self {
        Injector {
            faults,
            timeout,
            stats,
        }
    }

    /// The handle's timeout, shared by the calls of one operation.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Lets `call` through, or ends it as the injected faults say; counted
    /// and reported as a Redis call.
    pub(crate) async fn admit(&self, call: Call<'_>) -> Result<()> {
        #[cfg(feature = "metrics")]
        let started = std::time::Instant::now();
        let site = CallSite {
            operation: call.name,
            key: call.key,
            retry: call.retry,
            timeout: self.timeout,
        };
        let attempt = || {
            let injected = self.faults.attempt(call.kind, call.name);
            async move {
                tokio::time::sleep(injected.delay).await;
                match injected.fault {
                    None => Ok(()),
                    // Bounded by the attempt loop's deadline.
                    Some(Fault::Timeout) => std::future::pending().await,
                    Some(fault) => Err(redis_error(fault)),
                }
            }
        };
        let result = attempts(site, attempt).await;
        if let Err(error) = &result {
            self.stats.count_error(error);
        }
        #[cfg(feature = "metrics")]
        crate::telemetry::backend_call(site.operation, started.elapsed(), result.as_ref().err());
        result
    }
}

/// The client error a server failing with `fault` would give.
fn redis_error(fault: Fault) -> redis::RedisError {
    match fault {
        Fault::Server(reply) => {
            let (code, detail) = reply.split_once(' ').unwrap_or((reply.as_str(), ""));
            redis::make_extension_error(code.to_owned(), Some(detail.to_owned()))
        }
        Fault::WrongType => redis::make_extension_error(
            "WRONGTYPE".to_owned(),
            Some("Operation against a key holding the wrong kind of value".to_owned()),
        ),
        Fault::Dropped => std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset (injected fault)",
        )
        .into(),
        // A timeout never answers (see `admit`); a refusal is what a
        // connection to a server that is down gets.
        Fault::Connection | Fault::Timeout => std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused (injected fault)",
        )
        .into(),
    }
}
