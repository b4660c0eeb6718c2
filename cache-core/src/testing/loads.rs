//! A loader wrapper that counts how often, and how many at once, a loader ran.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts the runs of the loaders it wraps: how many started, how many are
/// running, and the most that ran at once. Clones share the counts.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// use cache_core::testing::LoadCounter;
///
/// let prices = cache_core::Cache::memory().keyspace("price").typed::<str, f64>()?;
/// let loads = LoadCounter::new();
/// let calls = (0..1_000).map(|_| {
///     prices.get_or_load("gpt-4", loads.wrap(|| async {
///         tokio::time::sleep(std::time::Duration::from_millis(20)).await;
///         Some(0.03)
///     }))
/// });
/// for answer in futures_util::future::join_all(calls).await {
///     assert_eq!(answer?, Some(0.03));
/// }
/// assert_eq!(loads.calls(), 1); // 1,000 concurrent requests ran the loader once
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct LoadCounter {
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    started: AtomicU64,
    running: AtomicU64,
    most_at_once: AtomicU64,
}

/// Marks one run as over when dropped, also when the load is cancelled or
/// panics.
struct Running(Arc<Counts>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl LoadCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        LoadCounter::default()
    }

    /// `loader`, counted: a loader with no argument, as `get_or_load`,
    /// `try_get_or_load` and `get_or_load_tagged` take.
    pub fn wrap<F, Fut>(&self, loader: F) -> impl FnOnce() -> CountedFuture<Fut> + Send + 'static
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future,
    {
        let counts = Arc::clone(&self.counts);
        move || counted(counts, loader())
    }

    /// `loader`, counted: a loader of many keys, as `get_or_load_many` and
    /// `try_get_or_load_many` take.
    pub fn wrap_many<A, F, Fut>(
        &self,
        loader: F,
    ) -> impl FnOnce(A) -> CountedFuture<Fut> + Send + 'static
    where
        F: FnOnce(A) -> Fut + Send + 'static,
        Fut: Future,
    {
        let counts = Arc::clone(&self.counts);
        move |keys| counted(counts, loader(keys))
    }

    /// Runs that started.
    pub fn calls(&self) -> u64 {
        self.counts.started.load(Ordering::SeqCst)
    }

    /// Runs that started and have not ended.
    pub fn running(&self) -> u64 {
        self.counts.running.load(Ordering::SeqCst)
    }

    /// The most runs that were under way at the same time.
    pub fn max_concurrent(&self) -> u64 {
        self.counts.most_at_once.load(Ordering::SeqCst)
    }
}

fn counted<Fut: Future>(counts: Arc<Counts>, run: Fut) -> CountedFuture<Fut> {
    counts.started.fetch_add(1, Ordering::SeqCst);
    let now = counts.running.fetch_add(1, Ordering::SeqCst) + 1;
    counts.most_at_once.fetch_max(now, Ordering::SeqCst);
    CountedFuture {
        run: Box::pin(run),
        running: Some(Running(counts)),
    }
}

/// A counted run of a loader; it is counted as running until it completes
/// or is dropped.
pub struct CountedFuture<Fut> {
    run: std::pin::Pin<Box<Fut>>,
    running: Option<Running>,
}

impl<Fut> std::fmt::Debug for CountedFuture<Fut> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountedFuture").finish_non_exhaustive()
    }
}

impl<Fut: Future> Future for CountedFuture<Fut> {
    type Output = Fut::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Fut::Output> {
        let answer = self.run.as_mut().poll(cx);
        if answer.is_ready() {
            self.running = None;
        }
        answer
    }
}
