//! `get_or_load` on both backends: single flight, shared errors, negative
//! caching, jitter, early refresh, healing of undecodable values, counters.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_core::{Cacheable, Error, LoadPolicy, TypedCache};
use cache_tests::Env;
use serde::{Deserialize, Serialize};

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
    get_or_load_many_loads_only_the_missing_keys_in_one_call,
    overlapping_batches_and_single_loads_load_each_key_once,
    get_or_load_many_caches_absence_heals_and_handles_duplicates,
    get_or_load_many_refreshes_only_the_keys_near_expiry_in_one_call,
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Cacheable)]
#[cache(prefix = "price", ttl = "5m", negative_ttl = "200ms", jitter = 0.2)]
struct ModelPrice {
    #[cache(key)]
    model: String,
    input_per_1k: f64,
}

fn prices(env: &Env, policy: LoadPolicy, ttl: Duration) -> TypedCache<String, ModelPrice> {
    env.cache
        .keyspace("price")
        .ttl(ttl)
        .load_policy(policy)
        .typed::<String, ModelPrice>()
        .unwrap()
}

fn price(model: &str, input: f64) -> ModelPrice {
    ModelPrice {
        model: model.to_owned(),
        input_per_1k: input,
    }
}

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
    let prices = env.cache.typed::<ModelPrice>();
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

/// A batch loader that records every call and the keys it was given, and
/// finds every key but those starting with "none".
/// What a batch loader returns in these tests.
type Loading = std::pin::Pin<Box<dyn Future<Output = Vec<(String, ModelPrice)>> + Send>>;

fn recording_loader(
    calls: &Arc<std::sync::Mutex<Vec<Vec<String>>>>,
    delay: Duration,
) -> impl FnOnce(Vec<String>) -> Loading + Send + 'static {
    let calls = Arc::clone(calls);
    move |keys: Vec<String>| {
        Box::pin(async move {
            calls.lock().unwrap().push(keys.clone());
            tokio::time::sleep(delay).await;
            keys.into_iter()
                .filter(|key| !key.starts_with("none"))
                .map(|key| {
                    let value = price(&key, key.len() as f64);
                    (key, value)
                })
                .collect()
        })
    }
}

async fn get_or_load_many_loads_only_the_missing_keys_in_one_call(env: Env) {
    let prices = prices(&env, LoadPolicy::DEFAULT, Duration::from_secs(60));
    let keys: Vec<String> = (0..1_000).map(|i| format!("m{i}")).collect();
    // 90% are cached already.
    let cached: Vec<(&String, ModelPrice)> = keys
        .iter()
        .filter(|key| !key.ends_with('7'))
        .map(|key| (key, price(key, 1.0)))
        .collect();
    let entries: Vec<(&str, &ModelPrice)> = cached.iter().map(|(k, v)| (k.as_str(), v)).collect();
    prices.set_many(&entries).await.unwrap();
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let got = prices
        .get_or_load_many(&keys, recording_loader(&calls, Duration::ZERO))
        .await
        .unwrap();
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "one loader call");
    let missing: Vec<String> = keys.iter().filter(|k| k.ends_with('7')).cloned().collect();
    assert_eq!(calls[0], missing, "exactly the missing keys, in order");
    assert_eq!(missing.len(), 100);
    for (key, value) in keys.iter().zip(&got) {
        let expected = if key.ends_with('7') {
            key.len() as f64
        } else {
            1.0
        };
        assert_eq!(
            value.as_ref().map(|p| p.input_per_1k),
            Some(expected),
            "{key}"
        );
        assert_eq!(value.as_ref().map(|p| p.model.as_str()), Some(key.as_str()));
    }
    // Written back: now all hits, and no loader call.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = prices
        .get_or_load_many(&keys, |_| async {
            unreachable!("all cached");
            #[allow(unreachable_code)]
            Vec::<(String, ModelPrice)>::new()
        })
        .await
        .unwrap();
    assert_eq!(again, got);
    assert!(prices.ttl("m7").await.unwrap().remaining().is_some());
    // Nothing asked, nothing done.
    assert!(
        prices
            .get_or_load_many(&[], |_| async {
                unreachable!("no keys");
                #[allow(unreachable_code)]
                Vec::<(String, ModelPrice)>::new()
            })
            .await
            .unwrap()
            .is_empty()
    );
}

async fn overlapping_batches_and_single_loads_load_each_key_once(env: Env) {
    let prices = prices(&env, LoadPolicy::DEFAULT, Duration::from_secs(60));
    let loads = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        usize,
    >::new()));
    let mut tasks = Vec::new();
    for task in 0..16_usize {
        let (batch_prices, batch_loads) = (prices.clone(), Arc::clone(&loads));
        tasks.push(tokio::spawn(async move {
            let (prices, loads) = (batch_prices, batch_loads);
            let keys: Vec<String> = (task * 10..task * 10 + 50)
                .map(|i| format!("k{}", i % 120))
                .collect();
            let counted = Arc::clone(&loads);
            let got = prices
                .get_or_load_many(&keys, move |missing: Vec<String>| async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let mut loads = counted.lock().unwrap();
                    for key in &missing {
                        *loads.entry(key.clone()).or_default() += 1;
                    }
                    missing
                        .into_iter()
                        .map(|k| (k.clone(), price(&k, 2.0)))
                        .collect::<Vec<_>>()
                })
                .await
                .unwrap();
            for (key, value) in keys.iter().zip(got) {
                assert_eq!(value.map(|p| p.model), Some(key.clone()));
            }
        }));
        // Single-key loads of the same keys join the same flights.
        let (prices, loads) = (prices.clone(), Arc::clone(&loads));
        tasks.push(tokio::spawn(async move {
            let key = format!("k{}", task * 7 % 120);
            let counted = Arc::clone(&loads);
            let loaded_key = key.clone();
            let got = prices
                .get_or_load(&key, move || async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    *counted
                        .lock()
                        .unwrap()
                        .entry(loaded_key.clone())
                        .or_default() += 1;
                    Some(price(&loaded_key, 2.0))
                })
                .await
                .unwrap();
            assert_eq!(got.map(|p| p.model), Some(key));
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let loads = loads.lock().unwrap();
    assert_eq!(loads.len(), 120, "every key loaded");
    for (key, count) in loads.iter() {
        assert_eq!(*count, 1, "{key} loaded {count} times");
    }
}

async fn get_or_load_many_caches_absence_heals_and_handles_duplicates(env: Env) {
    let policy = LoadPolicy::DEFAULT.negative_ttl(Duration::from_secs(60));
    let prices = prices(&env, policy, Duration::from_secs(60));
    env.write_raw(&prices.key("broken"), b"{not json").await;
    env.write_raw(&prices.key("none-broken"), b"{not json")
        .await;
    let keys: Vec<String> = ["a", "none-x", "a", "broken", "none-broken", "b", "a"]
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let got = prices
        .get_or_load_many(&keys, recording_loader(&calls, Duration::ZERO))
        .await
        .unwrap();
    let models: Vec<Option<String>> = got.into_iter().map(|p| p.map(|p| p.model)).collect();
    let some = |k: &str| Some(k.to_owned());
    assert_eq!(
        models,
        [
            some("a"),
            None,
            some("a"),
            some("broken"),
            None,
            some("b"),
            some("a")
        ]
    );
    // Each distinct key asked once; the undecodable ones were reloaded.
    assert_eq!(
        calls.lock().unwrap().clone(),
        [["a", "none-x", "broken", "none-broken", "b"]
            .map(str::to_owned)
            .to_vec()]
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Healed: a fresh value, or nothing where the loader found nothing.
    assert_eq!(
        prices.get("broken").await.unwrap().map(|p| p.model),
        some("broken")
    );
    assert_eq!(prices.get("none-broken").await.unwrap(), None);
    // Absence is cached: a second batch asks the loader nothing.
    let before = env.cache.stats().negative_hits;
    let again = prices
        .get_or_load_many(&["none-x".to_owned(), "a".to_owned()], |_| async {
            unreachable!("all cached, absence included");
            #[allow(unreachable_code)]
            Vec::<(String, ModelPrice)>::new()
        })
        .await
        .unwrap();
    assert_eq!(again.len(), 2);
    assert!(again[0].is_none() && again[1].is_some());
    assert!(env.cache.stats().negative_hits > before);
    // A failing loader fails the call, and nothing is cached.
    let err = prices
        .try_get_or_load_many(&["c".to_owned()], |_| async {
            Err::<Vec<(String, ModelPrice)>, _>("database down")
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Load { .. }) && err.to_string().contains("database down"),
        "{err}"
    );
    assert_eq!(prices.get("c").await.unwrap(), None);
}

async fn get_or_load_many_refreshes_only_the_keys_near_expiry_in_one_call(env: Env) {
    let policy = LoadPolicy::DEFAULT.early_refresh(0.5);
    let prices = prices(&env, policy, Duration::from_secs(2));
    prices.set("old", &price("old", 1.0)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    prices.set("fresh", &price("fresh", 1.0)).await.unwrap();
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keys = ["old".to_owned(), "fresh".to_owned()];
    let got = prices
        .get_or_load_many(&keys, recording_loader(&calls, Duration::ZERO))
        .await
        .unwrap();
    // Served at once from the cache, old value included.
    let served: Vec<Option<f64>> = got
        .iter()
        .map(|p| p.as_ref().map(|p| p.input_per_1k))
        .collect();
    assert_eq!(served, [Some(1.0), Some(1.0)]);
    // One background call, with only the key near its expiry.
    let started = Instant::now();
    while calls.lock().unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(2), "no refresh");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(calls.lock().unwrap().clone(), [vec!["old".to_owned()]]);
    assert_eq!(
        prices.get("old").await.unwrap().map(|p| p.input_per_1k),
        Some(3.0)
    );
    assert!(env.cache.stats().refreshes >= 1);
}
