//! What a handle knows of whether its server can be reached, as a circuit
//! breaker does: once a connection to it was refused (the server is stopped,
//! killed or restarting), calls fail at once with a connection error and
//! nothing is sent, while one background task tries to reconnect, after
//! [`FIRST_PAUSE`] and then twice as long each time up to [`LONGEST_PAUSE`].
//! The first try that works lets calls through again. Without it, every call
//! made during an outage would wait for a reconnect attempt of its own.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::RedisError;
use tokio::sync::Notify;

/// The pause before the first reconnect attempt after the server was found down.
pub(crate) const FIRST_PAUSE: Duration = Duration::from_millis(25);

/// The longest pause between two reconnect attempts.
pub(crate) const LONGEST_PAUSE: Duration = Duration::from_millis(500);

/// One reconnect attempt: whether the server answered.
pub(crate) type Probe = Box<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// Whether the server is known to be down, shared by the clones of a connection.
#[derive(Debug, Default)]
pub(crate) struct Breaker {
    down: AtomicBool,
    /// Ends the prober's pause early (a new primary was announced).
    wake: Notify,
}

impl Breaker {
    /// Whether calls should fail at once.
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// The error a call gets while the server is down: a refusal, so that
    /// it reads as "not sent" and "could not be reached" everywhere.
    pub(crate) fn refusal() -> RedisError {
        std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "the server is down (a connection was refused); reconnecting in the background",
        )
        .into()
    }

    /// After a failed call: when `err` says the server refused a
    /// connection, calls fail at once from now on and `probe` is tried in the
    /// background until it answers.
    pub(crate) fn after(self: &Arc<Self>, err: &RedisError, probe: impl FnOnce() -> Probe) {
        if !err.is_connection_refusal() {
            return;
        }
        if self.down.swap(true, Ordering::AcqRel) {
            return; // a prober already runs
        }
        tracing::warn!("server unreachable: calls fail at once until a reconnect works");
        tokio::spawn(reconnect(Arc::downgrade(self), probe()));
    }

    /// The server answers again (a reconnect worked, or the sentinels named
    /// a new primary): calls go through.
    pub(crate) fn close(&self) {
        if self.down.swap(false, Ordering::AcqRel) {
            tracing::info!("server reachable again");
        }
        self.wake.notify_waiters();
    }
}

/// Tries `probe` with growing pauses until it answers, the breaker is
/// closed from elsewhere, or the handle is gone (only this task holds the
/// breaker then; it holds it only while it waits).
async fn reconnect(breaker: Weak<Breaker>, probe: Probe) {
    let mut pause = FIRST_PAUSE;
    loop {
        let Some(strong) = breaker.upgrade() else {
            return;
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = strong.wake.notified() => {}
        }
        if !strong.is_down() || Arc::strong_count(&strong) == 1 {
            return;
        }
        drop(strong);
        if probe().await {
            if let Some(strong) = breaker.upgrade() {
                strong.close();
            }
            return;
        }
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn refused() -> RedisError {
        std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into()
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_opens_it_until_a_probe_answers() {
        let breaker = Arc::new(Breaker::default());
        let reset: RedisError =
            std::io::Error::new(std::io::ErrorKind::ConnectionReset, "x").into();
        let tries = Arc::new(AtomicUsize::new(0));
        let probe = |tries: Arc<AtomicUsize>| -> Probe {
            Box::new(move || {
                let tries = Arc::clone(&tries);
                Box::pin(async move { tries.fetch_add(1, Ordering::SeqCst) >= 2 })
            })
        };
        // A dropped connection is not a refusal: the next call reconnects itself.
        breaker.after(&reset, || probe(Arc::clone(&tries)));
        assert!(!breaker.is_down());
        breaker.after(&refused(), || probe(Arc::clone(&tries)));
        assert!(breaker.is_down());
        assert!(Breaker::refusal().is_connection_refusal());
        // Tries after 25, 75 and 175 ms; the third answers.
        tokio::time::sleep(Duration::from_millis(170)).await;
        assert!(breaker.is_down());
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!breaker.is_down());
        assert_eq!(tries.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn closing_it_ends_the_prober() {
        let breaker = Arc::new(Breaker::default());
        let tries = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&tries);
        breaker.after(&refused(), move || {
            Box::new(move || {
                let tries = Arc::clone(&counted);
                Box::pin(async move {
                    tries.fetch_add(1, Ordering::SeqCst);
                    false
                })
            })
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        breaker.close();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!breaker.is_down());
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }
}
