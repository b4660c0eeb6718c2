//! A load's flight is over before anyone sees its outcome: a call that starts
//! after a failed (or panicked) load returned runs its own loader, for every
//! key the failed load covered, on every backend.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_core::{Error, LoadPolicy, TypedCache};
use cache_tests::Env;

cache_tests::backend_suite!(
    a_failed_batch_load_never_answers_a_later_call,
    a_failed_single_load_never_answers_a_later_call,
    a_panicking_loader_is_a_failed_load_not_a_poisoned_key,
    a_panicking_batch_loader_is_a_failed_load_for_every_key,
);

/// How many times each sequence runs: the fault was a race, seen in a few
/// of 200 calls.
const ROUNDS: usize = 200;

fn prices(env: &Env) -> TypedCache<String, u64> {
    env.cache
        .keyspace("price")
        .ttl(Duration::from_secs(60))
        .load_policy(LoadPolicy::DEFAULT)
        .typed::<String, u64>()
        .unwrap()
}

fn batch(round: usize) -> Vec<String> {
    (0..3).map(|i| format!("m{round}-{i}")).collect()
}

/// A loader that finds every key it is asked for, and counts its keys.
fn finding(
    loaded: &Arc<AtomicUsize>,
) -> impl FnOnce(Vec<String>) -> std::future::Ready<Vec<(String, u64)>> + Send + 'static {
    let loaded = Arc::clone(loaded);
    move |keys: Vec<String>| {
        loaded.fetch_add(keys.len(), Ordering::SeqCst);
        std::future::ready(keys.into_iter().map(|key| (key, 7)).collect())
    }
}

async fn fail_batch(prices: &TypedCache<String, u64>, keys: &[String]) {
    let failed = prices
        .try_get_or_load_many(keys, |_| async {
            Err::<Vec<(String, u64)>, _>("database down")
        })
        .await;
    match failed {
        Err(Error::Load { source, .. }) => assert_eq!(source.to_string(), "database down"),
        other => panic!("expected the loader's error, got {other:?}"),
    }
}

async fn a_failed_batch_load_never_answers_a_later_call(env: Env) {
    let prices = prices(&env);
    let loaded = Arc::new(AtomicUsize::new(0));
    for round in 0..ROUNDS {
        let keys = batch(round);
        fail_batch(&prices, &keys).await;
        if round % 2 == 0 {
            // The whole batch again: every key is loaded by this call.
            let got = prices.get_or_load_many(&keys, finding(&loaded)).await;
            match got {
                Ok(values) => assert_eq!(values, [Some(7); 3], "round {round}"),
                Err(err) => panic!("round {round}: a later batch got {err:?}"),
            }
        } else {
            // One key the failed call's error did not name.
            let key = &keys[1 + round % 2];
            let got = prices.get_or_load(key, || async { Some(7) }).await;
            match got {
                Ok(value) => assert_eq!(value, Some(7), "round {round}"),
                Err(err) => panic!("round {round}: a later load of {key} got {err:?}"),
            }
        }
    }
    assert_eq!(loaded.load(Ordering::SeqCst), 3 * ROUNDS / 2);
    // Nothing was cached by the failed loads: their keys that no later call
    // loaded are still missing.
    assert_eq!(prices.get(&batch(1)[0]).await.unwrap(), None);
}

async fn a_failed_single_load_never_answers_a_later_call(env: Env) {
    let prices = prices(&env);
    for round in 0..ROUNDS {
        let key = format!("s{round}");
        let failed = prices
            .try_get_or_load(&key, || async { Err::<Option<u64>, _>("database down") })
            .await;
        assert!(matches!(failed, Err(Error::Load { .. })), "{failed:?}");
        let got = prices.get_or_load(&key, || async { Some(7) }).await;
        match got {
            Ok(value) => assert_eq!(value, Some(7), "round {round}"),
            Err(err) => panic!("round {round}: a later load got {err:?}"),
        }
    }
}

async fn a_panicking_loader_is_a_failed_load_not_a_poisoned_key(env: Env) {
    let prices = prices(&env);
    let waiters: Vec<_> = (0..10)
        .map(|_| {
            let prices = prices.clone();
            tokio::spawn(async move {
                prices
                    .get_or_load("gpt-4", || async {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        panic!("the loader blew up")
                    })
                    .await
            })
        })
        .collect();
    for waiter in waiters {
        match waiter.await.unwrap() {
            Err(Error::Load { source, .. }) => {
                assert_eq!(source.to_string(), "the loader panicked");
            }
            other => panic!("expected a failed load, got {other:?}"),
        }
    }
    // One failed load, counted as such; not poisoned: the next call loads.
    let stats = env.cache.stats();
    assert_eq!((stats.loads, stats.load_errors), (1, 1));
    let got = prices.get_or_load("gpt-4", || async { Some(7) }).await;
    assert_eq!(got.unwrap(), Some(7));
}

async fn a_panicking_batch_loader_is_a_failed_load_for_every_key(env: Env) {
    let prices = prices(&env);
    let keys = batch(0);
    let failed = prices
        .get_or_load_many(&keys, |_| async {
            panic!("the loader blew up");
            #[allow(unreachable_code)]
            Vec::<(String, u64)>::new()
        })
        .await;
    match failed {
        Err(Error::Load { source, .. }) => assert_eq!(source.to_string(), "the loader panicked"),
        other => panic!("expected a failed load, got {other:?}"),
    }
    for key in &keys {
        let got = prices.get_or_load(key, || async { Some(7) }).await;
        assert_eq!(got.unwrap(), Some(7), "{key}");
    }
}
