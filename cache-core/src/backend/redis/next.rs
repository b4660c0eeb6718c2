//! What to do after one attempt of a call failed: the one decision every
//! path that sends to Redis takes (single calls in `bounded`, shared round
//! trips in `coalesce`). It looks only at what happened, never at which of
//! two timers fired first: redis-rs' own timers are set later than the
//! handle's (see [`backstop`]), and a failure to reach the server that comes
//! once the budget is spent is a timeout however it was reported.

use std::time::Duration;

use redis::RedisError;

use super::Retry;

/// The next step after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Next {
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

/// A cluster's answer that the command was not executed and should go again
/// (ASK, MOVED, TRYAGAIN, CLUSTERDOWN, MASTERDOWN). `redirect` follows one
/// redirection; what it leaves goes again after a pause.
pub(super) fn is_not_executed(err: &RedisError) -> bool {
    err.is_cluster_error()
        || err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::MasterDown)
}

/// The decision; pure, so that it is tested without a server.
pub(super) fn after_error(err: &RedisError, attempt: Attempt) -> Next {
    let may_be_applied = attempt.retry == Retry::Never;
    if is_not_executed(err) {
        // Known not run; past the budget it is a timeout whatever the last answer said.
        return match attempt.deadline_passed {
            true => Next::Timeout {
                outcome_unknown: false,
            },
            false => Next::Pause,
        };
    }
    let lost = is_connection_loss(err);
    if err.is_timeout() || (lost && attempt.deadline_passed) {
        return Next::Timeout {
            outcome_unknown: may_be_applied,
        };
    }
    if lost && attempt.may_resend {
        return Next::Resend;
    }
    Next::Fail {
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

    fn attempt(retry: Retry, may_resend: bool, deadline_passed: bool) -> Attempt {
        Attempt {
            retry,
            may_resend,
            deadline_passed,
        }
    }

    fn io(kind: std::io::ErrorKind) -> RedisError {
        std::io::Error::new(kind, "io").into()
    }

    fn server(kind: ServerErrorKind, detail: &str) -> RedisError {
        (ErrorKind::Server(kind), "server", detail.to_owned()).into()
    }

    #[test]
    fn a_dropped_connection_is_resent_once_when_the_call_allows_it() {
        let dropped = io(std::io::ErrorKind::ConnectionReset);
        let once = attempt(Retry::Idempotent, true, false);
        assert_eq!(after_error(&dropped, once), Next::Resend);
        let spent = attempt(Retry::Idempotent, false, false);
        let fail = Next::Fail {
            outcome_unknown: false,
        };
        assert_eq!(after_error(&dropped, spent), fail);
        let counting = attempt(Retry::Never, false, false);
        let unknown = Next::Fail {
            outcome_unknown: true,
        };
        assert_eq!(after_error(&dropped, counting), unknown);
    }

    #[test]
    fn a_failure_to_reach_the_server_after_the_deadline_is_a_timeout() {
        // redis-rs' initial cluster connection reports its timer as plain I/O.
        let refused: RedisError = (
            ErrorKind::Io,
            "Failed to create initial connections",
            "timed out".to_owned(),
        )
            .into();
        for retry in [Retry::Idempotent, Retry::Never] {
            let late = attempt(retry, true, true);
            let expected = Next::Timeout {
                outcome_unknown: retry == Retry::Never,
            };
            assert_eq!(after_error(&refused, late), expected);
        }
        // Within the budget, the same error is what it says.
        let early = attempt(Retry::Idempotent, false, false);
        let fail = Next::Fail {
            outcome_unknown: false,
        };
        assert_eq!(after_error(&refused, early), fail);
    }

    #[test]
    fn a_dependencys_own_timeout_is_a_timeout() {
        let timed_out = io(std::io::ErrorKind::TimedOut);
        let idempotent = attempt(Retry::Idempotent, true, false);
        let known = Next::Timeout {
            outcome_unknown: false,
        };
        assert_eq!(after_error(&timed_out, idempotent), known);
        let counting = attempt(Retry::Never, false, false);
        let unknown = Next::Timeout {
            outcome_unknown: true,
        };
        assert_eq!(after_error(&timed_out, counting), unknown);
    }

    #[test]
    fn what_a_cluster_did_not_run_goes_again_until_the_budget_is_spent() {
        let kinds = [
            (ServerErrorKind::Moved, "3999 127.0.0.1:7001"),
            (ServerErrorKind::Ask, "3999 127.0.0.1:7001"),
            (ServerErrorKind::TryAgain, "later"),
            (ServerErrorKind::ClusterDown, "down"),
            (ServerErrorKind::MasterDown, "down"),
        ];
        for (kind, detail) in kinds {
            let err = server(kind, detail);
            let within = attempt(Retry::Never, false, false);
            assert_eq!(after_error(&err, within), Next::Pause, "{kind:?}");
            let spent = attempt(Retry::Never, false, true);
            let known = Next::Timeout {
                outcome_unknown: false,
            };
            assert_eq!(after_error(&err, spent), known, "{kind:?}");
        }
    }

    #[test]
    fn a_servers_refusal_is_returned_as_it_is() {
        let wrong = server(ServerErrorKind::ResponseError, "WRONGTYPE nope");
        let fail = Next::Fail {
            outcome_unknown: false,
        };
        assert_eq!(after_error(&wrong, attempt(Retry::Never, true, true)), fail);
    }

    #[test]
    fn the_backstop_is_later_than_the_handles_timer() {
        for ms in [1, 50, 300, 1_000, 30_000] {
            let timeout = Duration::from_millis(ms);
            assert!(backstop(timeout) >= timeout + Duration::from_millis(100));
        }
    }
}
