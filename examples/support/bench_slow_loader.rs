//! The bench's slow-loader cases: 64 tasks read 100 keys through
//! `get_or_load`; entries expire every second and the loader sleeps 500 ms
//! on every call. `slow_loader_plain_c64` has no fail-safe, so a caller that
//! meets an expired key waits for the loader; `slow_loader_fail_safe_c64`
//! has `fail_safe` with `soft_timeout = 20ms`, so it waits at most that
//! long. The figures are the calls' p50, p99 and slowest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::{Cache, LoadPolicy, TypedCache};

use super::{BenchResult, ModelPrice, sample_price};

/// The two cases, by name.
pub(crate) const CASES: [&str; 2] = ["slow_loader_plain_c64", "slow_loader_fail_safe_c64"];

/// How long an entry lives, and how long the loader takes.
const TTL: Duration = Duration::from_secs(1);
const LOADER: Duration = Duration::from_millis(500);

/// One case's figures: calls per second, p50 and p99 in microseconds.
pub(crate) struct Figures {
    pub(crate) name: &'static str,
    pub(crate) calls_per_s: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    /// The slowest call: a plain caller that met an expired key waited for
    /// the loader, so few calls (below the p99) take the whole 500 ms.
    pub(crate) max_us: f64,
}

/// The keyspace of `name`, with or without fail-safe.
fn keyspace(cache: &Cache, name: &str) -> BenchResult<TypedCache<String, ModelPrice>> {
    let plain = LoadPolicy::DEFAULT.hard_timeout(Duration::from_secs(5));
    let policy = match name {
        "slow_loader_fail_safe_c64" => plain
            .fail_safe(Duration::from_secs(3_600))
            .soft_timeout(Duration::from_millis(20)),
        _ => plain,
    };
    let view = cache.keyspace(name).ttl(TTL).load_policy(policy);
    Ok(view.typed::<String, ModelPrice>()?)
}

/// Runs each wanted case for `duration` (after the keys' first loads), one
/// after the other.
pub(crate) async fn run(
    cache: &Cache,
    duration: Duration,
    wanted: impl Fn(&str) -> bool,
) -> BenchResult<Vec<Figures>> {
    let mut figures = Vec::new();
    for name in CASES.into_iter().filter(|name| wanted(name)) {
        let prices = keyspace(cache, name)?;
        let keys: Arc<Vec<String>> = Arc::new((0..100).map(|i| format!("k{i}")).collect());
        for key in keys.iter() {
            prices.set(key, &sample_price()).await?;
        }
        figures.push(measure(name, &prices, &keys, duration).await?);
    }
    Ok(figures)
}

async fn measure(
    name: &'static str,
    prices: &TypedCache<String, ModelPrice>,
    keys: &Arc<Vec<String>>,
    duration: Duration,
) -> BenchResult<Figures> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for task in 0..64 {
        let (prices, keys) = (prices.clone(), Arc::clone(keys));
        tasks.push(tokio::spawn(async move {
            let mut took = Vec::new();
            let mut i = task * 7;
            while Instant::now() < deadline {
                let key = &keys[i % keys.len()];
                let call = Instant::now();
                prices
                    .get_or_load(key, || async {
                        tokio::time::sleep(LOADER).await;
                        Some(sample_price())
                    })
                    .await?;
                took.push(call.elapsed().as_secs_f64() * 1e6);
                i += 1;
            }
            BenchResult::Ok(took)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let index = ((all.len() as f64 - 1.0) * q) as usize;
        all.get(index).copied().unwrap_or(f64::NAN)
    };
    Ok(Figures {
        name,
        calls_per_s: all.len() as f64 / elapsed,
        p50_us: at(0.5),
        p99_us: at(0.99),
        max_us: at(1.0),
    })
}
