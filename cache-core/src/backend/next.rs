//! What to do after one attempt of a call failed: the one decision every
//! path that sends to Redis takes (single calls in `bounded`, shared round
//! trips in `coalesce`). It looks only at what happened, never at which of
//! two timers fired first: redis-rs' own timers are set later than the
//! handle's (see [`backstop`]), and a failure to reach the server that comes
//! once the budget is spent is a timeout however it was reported.

use std::time::Duration;

use redis::RedisError;

/// Whether a call may be sent a second time after its connection dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Applying it twice is the same as once (GET, SET with a value, DEL,
    /// PEXPIRE, MGET, ...). Counts it returns (how many keys DEL removed) can
    /// be lower after a retry, when the first try was applied but its answer lost.
    Idempotent,
    /// It counts or consumes (INCR, GETDEL, SET NX, every script): sent once;
    /// after a timeout or a lost connection its outcome is unknown.
    Never,
}

/// The next step after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NextStep {
    /// Send it again at once: its connection dropped, and the call may go twice.
    Resend,
    /// Send it again after a pause: the cluster did not run it (a slot
    /// moving, a failover under way).
    Pause,
    /// Give up with a timeout; `outcome_unknown` when it may have been applied.
    Timeout { outcome_unknown: bool },
    /// Give up with the error itself; `outcome_unknown` as above.
    Fail { outcome_unknown: bool },
}

/// What the attempt's caller knows besides the error.
#[derive(Clone, Copy, Debug)]
pub(super) struct Attempt {
    pub(super) retry: Retry,
    /// Whether a resend after a dropped connection is still allowed.
    pub(super) may_resend: bool,
    /// Whether the operation's budget is spent.
    pub(super) deadline_passed: bool,
}

/// The connection broke under the call: the server restarted or the network
/// dropped it. The manager reconnects on the next call.
pub(super) fn is_connection_loss(err: &RedisError) -> bool {
    err.is_connection_dropped() || err.is_io_error()
}

/// An answer that the command was not executed and should go again (ASK,
/// MOVED, TRYAGAIN, CLUSTERDOWN, MASTERDOWN, and READONLY from a primary
/// demoted in a failover). `redirect` follows one redirection, Sentinel
/// asks for the new primary; what is left goes again after a pause.
pub(super) fn is_not_executed(err: &RedisError) -> bool {
    use redis::ServerErrorKind::{MasterDown, ReadOnly};
    err.is_cluster_error() || matches!(err.kind(), redis::ErrorKind::Server(MasterDown | ReadOnly))
}

/// The decision; pure, so that it is tested without a server.
pub(super) fn after_error(err: &RedisError, attempt: Attempt) -> NextStep {
    let may_be_applied = attempt.retry == Retry::Never;
    if is_not_executed(err) {
        // Known not run; past the budget it is a timeout whatever the last answer said.
        return match attempt.deadline_passed {
            true => NextStep::Timeout {
                outcome_unknown: false,
            },
            false => NextStep::Pause,
        };
    }
    if err.is_connection_refusal() {
        // No connection could be made, so nothing was sent.
        return NextStep::Fail {
            outcome_unknown: false,
        };
    }
    let lost = is_connection_loss(err);
    if err.is_timeout() || (lost && attempt.deadline_passed) {
        return NextStep::Timeout {
            outcome_unknown: may_be_applied,
        };
    }
    if lost && attempt.may_resend {
        return NextStep::Resend;
    }
    NextStep::Fail {
        outcome_unknown: may_be_applied && lost,
    }
}

/// The timeout given to redis-rs' own timers (connecting, a cluster's
/// requests) for a handle whose timeout is `timeout`: later than the
/// handle's own, so that a silent server is always reported by the handle's
/// timer, as a timeout. They only end what the handle already gave up on.
pub(super) fn backstop(timeout: Duration) -> Duration {
    timeout + timeout.max(Duration::from_millis(100))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::{ErrorKind, ServerErrorKind};
    use std::io::ErrorKind::{ConnectionRefused, ConnectionReset, TimedOut};

    const IDEMPOTENT: Retry = Retry::Idempotent;
    const NEVER: Retry = Retry::Never;

    fn io(kind: std::io::ErrorKind) -> RedisError {
        std::io::Error::new(kind, "io").into()
    }

    fn server(kind: ServerErrorKind) -> RedisError {
        (
            ErrorKind::Server(kind),
            "server",
            "3999 127.0.0.1:7001".to_owned(),
        )
            .into()
    }

    /// redis-rs' initial cluster connection reports its own timer as plain I/O.
    fn initial_connections() -> RedisError {
        let detail = "timed out".to_owned();
        (
            ErrorKind::Io,
            "Failed to create initial connections",
            detail,
        )
            .into()
    }

    fn timeout(outcome_unknown: bool) -> NextStep {
        NextStep::Timeout { outcome_unknown }
    }

    fn fail(outcome_unknown: bool) -> NextStep {
        NextStep::Fail { outcome_unknown }
    }

    /// Each case: the error, the call's retry rule, whether a resend is
    /// left, whether the budget is spent, and the decision.
    #[test]
    fn each_failure_leads_to_one_decision() {
        let cases = [
            // A dropped connection: resent once if the call may go twice.
            (
                io(ConnectionReset),
                IDEMPOTENT,
                true,
                false,
                NextStep::Resend,
            ),
            (io(ConnectionReset), IDEMPOTENT, false, false, fail(false)),
            (io(ConnectionReset), NEVER, false, false, fail(true)),
            // Not reached once the budget is spent: a timeout, however reported.
            (
                initial_connections(),
                IDEMPOTENT,
                true,
                true,
                timeout(false),
            ),
            (initial_connections(), NEVER, false, true, timeout(true)),
            (initial_connections(), IDEMPOTENT, false, false, fail(false)),
            // A dependency's own timer: a timeout too.
            (io(TimedOut), IDEMPOTENT, true, false, timeout(false)),
            (io(TimedOut), NEVER, false, false, timeout(true)),
            // A refused connection sent nothing: not resent, outcome known.
            (io(ConnectionRefused), IDEMPOTENT, true, false, fail(false)),
            (io(ConnectionRefused), NEVER, false, true, fail(false)),
            // A refusal is returned as it is, whenever it comes.
            (
                server(ServerErrorKind::ResponseError),
                NEVER,
                true,
                true,
                fail(false),
            ),
        ];
        for (at, (err, retry, may_resend, deadline_passed, expected)) in
            cases.into_iter().enumerate()
        {
            let attempt = Attempt {
                retry,
                may_resend,
                deadline_passed,
            };
            assert_eq!(after_error(&err, attempt), expected, "case {at}: {err:?}");
        }
    }

    #[test]
    fn what_a_server_did_not_run_goes_again_until_the_budget_is_spent() {
        // READONLY: a write that reached a primary demoted by a failover.
        let kinds = [
            ServerErrorKind::Moved,
            ServerErrorKind::Ask,
            ServerErrorKind::TryAgain,
            ServerErrorKind::ClusterDown,
            ServerErrorKind::MasterDown,
            ServerErrorKind::ReadOnly,
        ];
        for kind in kinds {
            let err = server(kind);
            for (deadline_passed, expected) in [(false, NextStep::Pause), (true, timeout(false))] {
                let attempt = Attempt {
                    retry: NEVER,
                    may_resend: false,
                    deadline_passed,
                };
                assert_eq!(after_error(&err, attempt), expected, "{kind:?}");
            }
        }
    }

    #[test]
    fn the_backstop_is_later_than_the_handles_timer() {
        for ms in [1, 50, 300, 1_000, 30_000] {
            let timeout = Duration::from_millis(ms);
            assert!(backstop(timeout) >= timeout + Duration::from_millis(100));
        }
    }
}
