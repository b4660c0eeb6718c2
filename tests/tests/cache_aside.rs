//! `get_or_load` on every backend: single flight, shared errors, negative
//! caching, jitter, early refresh, healing of undecodable values, counters.
//! Batches (`get_or_load_many`) are in `cache_aside_many.rs`.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_core::{Error, LoadPolicy};
use cache_tests::Env;

mod aside_support;
use aside_support::{ModelPrice, price, prices};

cache_tests::backend_suite!(
    a_thousand_cold_misses_run_the_loader_once,
    misses_that_read_before_a_fast_load_stored_do_not_load_again,
    batch_misses_that_read_before_a_fast_load_stored_do_not_load_again,
    loader_errors_are_shared_and_not_cached,
    different_keys_never_wait_on_each_other,
    absent_answers_are_cached_only_with_a_negative_ttl,
    jitter_spreads_expiry_within_the_ttl,
    early_refresh_serves_the_old_value_and_reloads_once,
    undecodable_values_are_healed_by_reloading,
    derived_types_carry_their_load_policy,
);

/// A loader that counts its runs and takes `delay`.
fn counting_loader(
    runs: &Arc<AtomicUsize>,
    delay: Duration,
    value: Option<ModelPrice>,
) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Option<ModelPrice>> + Send>> + Send + 'static
{
    let runs = Arc::clone(runs);
    move || {
        Box::pin(async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            value
        })
    }
}

/// A load that finishes while other callers' reads are still out: those
/// reads missed, yet the value is stored by then; they must not load again.
async fn misses_that_read_before_a_fast_load_stored_do_not_load_again(env: Env) {
    for round in 0..5 {
        let prices = prices(&env, LoadPolicy::DEFAULT, Duration::from_secs(60));
        let model = format!("model-{round}");
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..1_000 {
            let (prices, model) = (prices.clone(), model.clone());
            let loader = counting_loader(&runs, Duration::ZERO, Some(price(&model, 0.03)));
            tasks.push(tokio::spawn(async move {
                // Arrivals spread over the load, as requests to a service are.
                if i % 10 == 0 {
                    tokio::task::yield_now().await;
                }
                prices.get_or_load(&model, loader).await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), Some(price(&model, 0.03)));
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "round {round}: loaded again"
        );
    }
}

/// The batch form of the above: batches of the same cold keys whose reads
/// were out while another batch's fast load stored them load none again.
async fn batch_misses_that_read_before_a_fast_load_stored_do_not_load_again(env: Env) {
    for round in 0..5 {
        let prices = prices(&env, LoadPolicy::DEFAULT, Duration::from_secs(60));
        let keys: Vec<String> = (0..20).map(|i| format!("r{round}-k{i}")).collect();
        let loads = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..300 {
            let (prices, keys, loads) = (prices.clone(), keys.clone(), Arc::clone(&loads));
            tasks.push(tokio::spawn(async move {
                if i % 10 == 0 {
                    tokio::task::yield_now().await;
                }
                let loader = move |missing: Vec<String>| async move {
                    loads.fetch_add(missing.len(), Ordering::SeqCst);
                    missing
                        .into_iter()
                        .map(|k| (k.clone(), price(&k, 1.0)))
                        .collect::<Vec<_>>()
                };
                let got = prices.get_or_load_many(&keys, loader).await.unwrap();
                assert!(got.iter().all(Option::is_some));
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            20,
            "round {round}: keys loaded again"
        );
    }
}

async fn a_thousand_cold_misses_run_the_loader_once(env: Env) {
    let prices = prices(&env, LoadPolicy::DEFAULT, Duration::from_secs(60));
    let runs = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..1_000 {
        let prices = prices.clone();
        let loader = counting_loader(
            &runs,
            Duration::from_millis(100),
            Some(price("gpt-4", 0.03)),
        );
        tasks.push(tokio::spawn(async move {
            prices.get_or_load("gpt-4", loader).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), Some(price("gpt-4", 0.03)));
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the loader ran more than once"
    );
    let stats = env.cache.stats();
    assert_eq!(stats.loads, 1);
    assert!(stats.coalesced_waits > 0, "{stats:?}");
    assert_eq!(
        prices.get("gpt-4").await.unwrap(),
        Some(price("gpt-4", 0.03))
    );
}

async fn loader_errors_are_shared_and_not_cached(env: Env) {
    let prices = prices(&env, LoadPolicy::DEFAULT, Duration::from_secs(60));
    let runs = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let prices = prices.clone();
        let runs = Arc::clone(&runs);
        tasks.push(tokio::spawn(async move {
            prices
                .try_get_or_load("gpt-4", move || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Err::<Option<ModelPrice>, _>("database unavailable")
                })
                .await
        }));
    }
    for task in tasks {
        let err = task.await.unwrap().unwrap_err();
        assert!(matches!(err, Error::Load { .. }), "{err:?}");
        assert!(err.to_string().contains("database unavailable"), "{err}");
        assert_eq!(err.key(), Some(prices.key("gpt-4").as_str()));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(env.cache.stats().load_errors, 1);
    // Not cached: the next call loads again, and succeeds.
    let loaded = prices
        .get_or_load(
            "gpt-4",
            counting_loader(&runs, Duration::ZERO, Some(price("gpt-4", 1.0))),
        )
        .await
        .unwrap();
    assert_eq!(loaded, Some(price("gpt-4", 1.0)));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

async fn different_keys_never_wait_on_each_other(env: Env) {
    let prices = prices(&env, LoadPolicy::DEFAULT, Duration::from_secs(60));
    let runs = Arc::new(AtomicUsize::new(0));
    let slow = {
        let prices = prices.clone();
        let loader = counting_loader(&runs, Duration::from_secs(2), Some(price("slow", 1.0)));
        tokio::spawn(async move { prices.get_or_load("slow", loader).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let fast = prices
        .get_or_load(
            "fast",
            counting_loader(&runs, Duration::ZERO, Some(price("fast", 2.0))),
        )
        .await
        .unwrap();
    assert_eq!(fast, Some(price("fast", 2.0)));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(slow.await.unwrap().unwrap(), Some(price("slow", 1.0)));
}

async fn absent_answers_are_cached_only_with_a_negative_ttl(env: Env) {
    let runs = Arc::new(AtomicUsize::new(0));
    let plain = prices(&env, LoadPolicy::DEFAULT, Duration::from_secs(60));
    for _ in 0..3 {
        let got = plain
            .get_or_load("nope", counting_loader(&runs, Duration::ZERO, None))
            .await
            .unwrap();
        assert_eq!(got, None);
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "without a negative TTL, absence is not cached"
    );

    let runs = Arc::new(AtomicUsize::new(0));
    let negative = prices(
        &env,
        LoadPolicy::DEFAULT.negative_ttl(Duration::from_millis(300)),
        Duration::from_secs(60),
    );
    for _ in 0..5 {
        let got = negative
            .get_or_load("missing", counting_loader(&runs, Duration::ZERO, None))
            .await
            .unwrap();
        assert_eq!(got, None);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(env.cache.stats().negative_hits, 4);
    assert_eq!(
        negative.get("missing").await.unwrap(),
        None,
        "no value was stored"
    );

    // The negative entry expires...
    tokio::time::sleep(Duration::from_millis(400)).await;
    negative
        .get_or_load("missing", counting_loader(&runs, Duration::ZERO, None))
        .await
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    // ... and an invalidation drops it at once.
    negative.delete("missing").await.unwrap();
    let found = negative
        .get_or_load(
            "missing",
            counting_loader(&runs, Duration::ZERO, Some(price("missing", 5.0))),
        )
        .await
        .unwrap();
    assert_eq!(found, Some(price("missing", 5.0)));
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

async fn jitter_spreads_expiry_within_the_ttl(env: Env) {
    let ttl = Duration::from_secs(100);
    let prices = prices(&env, LoadPolicy::DEFAULT.jitter(0.5), ttl);
    let mut seen = HashSet::new();
    for i in 0..40 {
        let model = format!("m{i}");
        if i % 2 == 0 {
            prices.set(&model, &price(&model, 1.0)).await.unwrap();
        } else {
            let loader = counting_loader(&Arc::default(), Duration::ZERO, Some(price(&model, 1.0)));
            prices.get_or_load(&model, loader).await.unwrap();
            // The write-back runs after the answer; give it a moment.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let left = prices.ttl(&model).await.unwrap().remaining().unwrap();
        assert!(
            left <= ttl && left >= ttl / 2 - Duration::from_secs(1),
            "{left:?}"
        );
        seen.insert(left.as_secs());
    }
    assert!(seen.len() >= 10, "expiries are not spread: {seen:?}");
}

async fn early_refresh_serves_the_old_value_and_reloads_once(env: Env) {
    let ttl = Duration::from_millis(1_000);
    let prices = prices(&env, LoadPolicy::DEFAULT.early_refresh(0.5), ttl);
    let runs = Arc::new(AtomicUsize::new(0));
    let first = prices
        .get_or_load(
            "gpt-4",
            counting_loader(&runs, Duration::ZERO, Some(price("gpt-4", 1.0))),
        )
        .await
        .unwrap();
    assert_eq!(first, Some(price("gpt-4", 1.0)));
    tokio::time::sleep(Duration::from_millis(650)).await; // under half the TTL left

    let mut tasks = Vec::new();
    for _ in 0..20 {
        let prices = prices.clone();
        let loader = counting_loader(&runs, Duration::from_millis(100), Some(price("gpt-4", 2.0)));
        tasks.push(tokio::spawn(async move {
            prices.get_or_load("gpt-4", loader).await
        }));
    }
    for task in tasks {
        // Everyone is served the current value at once.
        assert_eq!(task.await.unwrap().unwrap(), Some(price("gpt-4", 1.0)));
    }
    let started = Instant::now();
    while prices.get("gpt-4").await.unwrap() != Some(price("gpt-4", 2.0)) {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the refresh never landed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "one load, then exactly one refresh"
    );
    assert_eq!(env.cache.stats().refreshes, 1);
    let left = prices.ttl("gpt-4").await.unwrap().remaining().unwrap();
    assert!(
        left > Duration::from_millis(700),
        "the refresh restarted the TTL: {left:?}"
    );
}

async fn undecodable_values_are_healed_by_reloading(env: Env) {
    let prices = prices(&env, LoadPolicy::DEFAULT, Duration::from_secs(60));
    env.write_raw(&prices.key("gpt-4"), b"{not json").await;
    assert!(prices.get("gpt-4").await.unwrap_err().is_decode());
    let runs = Arc::new(AtomicUsize::new(0));
    let healed = prices
        .get_or_load(
            "gpt-4",
            counting_loader(&runs, Duration::ZERO, Some(price("gpt-4", 3.0))),
        )
        .await
        .unwrap();
    assert_eq!(healed, Some(price("gpt-4", 3.0)));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        prices.get("gpt-4").await.unwrap(),
        Some(price("gpt-4", 3.0))
    );
    assert!(
        env.cache.stats().decode_errors >= 2,
        "{:?}",
        env.cache.stats()
    );
    // A loader that finds nothing removes the undecodable value.
    env.write_raw(&prices.key("gone"), b"{not json").await;
    let found = prices.get_or_load("gone", || async { None }).await.unwrap();
    assert_eq!(found, None);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(prices.get("gone").await.unwrap(), None);
}

async fn derived_types_carry_their_load_policy(env: Env) {
    let prices = env.cache.typed::<ModelPrice>().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let got = prices
            .get_or_load("unknown", counting_loader(&runs, Duration::ZERO, None))
            .await
            .unwrap();
        assert_eq!(got, None);
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "negative_ttl from the derive"
    );
    prices.put(&price("gpt-4", 0.03)).await.unwrap();
    let left = prices.ttl("gpt-4").await.unwrap().remaining().unwrap();
    assert!(
        left <= Duration::from_secs(300) && left >= Duration::from_secs(239),
        "{left:?}"
    );
}
