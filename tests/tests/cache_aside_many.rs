//! `get_or_load_many` on every backend: one loader call for the missing
//! keys, keys shared with concurrent loads loaded once, cached absences,
//! healing, duplicates and early refresh in batches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::{Error, LoadPolicy};
use cache_tests::Env;

mod aside_support;
use aside_support::{ModelPrice, price, prices};

cache_tests::backend_suite!(
    get_or_load_many_loads_only_the_missing_keys_in_one_call,
    overlapping_batches_and_single_loads_load_each_key_once,
    get_or_load_many_caches_absence_heals_and_handles_duplicates,
    get_or_load_many_refreshes_only_the_keys_near_expiry_in_one_call,
);

/// What a batch loader returns in these tests.
type Loading = std::pin::Pin<Box<dyn Future<Output = Vec<(String, ModelPrice)>> + Send>>;

/// A batch loader that records every call and the keys it was given, and
/// finds every key but those starting with "none".
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
