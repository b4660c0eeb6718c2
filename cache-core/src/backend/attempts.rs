//! One call's attempts within what is left of its operation's budget: the
//! loop both the Redis backend and the memory backend's injected faults go
//! through, so that a failing call ends the same way on either.

use std::future::Future;
use std::time::Duration;

pub(crate) use super::next::Retry;
use super::next::{Attempt, NextStep, after_error};
use crate::error::{Error, Result};

/// How long to wait before sending again a command a cluster did not execute.
const CLUSTER_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// What one call is, for its errors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallSite<'a> {
    pub(crate) operation: &'static str,
    pub(crate) key: &'a str,
    pub(crate) retry: Retry,
    /// The handle's timeout, which a timeout error reports.
    pub(crate) timeout: Duration,
}

impl CallSite<'_> {
    /// Its timeout error; `outcome_unknown` when it may have been applied.
    pub(crate) fn timed_out(&self, outcome_unknown: bool) -> Error {
        Error::Timeout {
            operation: self.operation,
            key: Some(self.key.to_owned()),
            after: self.timeout,
            outcome_unknown,
        }
    }
}

/// Runs `attempt` until it succeeds or [`after_error`] gives up: an
/// idempotent call whose connection dropped goes once more, a call the
/// cluster did not execute goes again after a pause, and nothing is sent
/// once the budget is spent. Counting and telemetry are the caller's.
pub(crate) async fn attempts<T, F, Fut>(site: CallSite<'_>, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    let budget = crate::backend::budget(site.timeout);
    let deadline = tokio::time::Instant::now() + budget;
    // One resend after a dropped connection, for calls that may go twice.
    let mut may_resend = site.retry == Retry::Idempotent;
    loop {
        if budget.is_zero() {
            return Err(site.timed_out(false));
        }
        let err = match tokio::time::timeout_at(deadline, attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) => err,
            Err(_elapsed) => return Err(site.timed_out(site.retry == Retry::Never)),
        };
        let seen = Attempt {
            retry: site.retry,
            may_resend,
            deadline_passed: tokio::time::Instant::now() >= deadline,
        };
        match after_error(&err, seen) {
            NextStep::Resend => may_resend = false,
            NextStep::Pause => tokio::time::sleep(CLUSTER_RETRY_PAUSE).await,
            NextStep::Timeout { outcome_unknown } => return Err(site.timed_out(outcome_unknown)),
            NextStep::Fail { outcome_unknown } => {
                let key = Some(site.key);
                return Err(Error::from_redis(site.operation, key, err, outcome_unknown));
            }
        }
    }
}
