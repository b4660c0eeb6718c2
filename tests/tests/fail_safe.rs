//! Fail-safe cache-aside: after its expiry a value is kept for the window and
//! answers when the load fails (error, panic, hard timeout) or is slow (soft
//! timeout); a failed load is not retried before the throttle runs out; the
//! stored format, plain reads and counters agree. On every backend.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_core::{
    Cache, Error, FailurePolicy, Freshness, LoadPolicy, StaleReason, Ttl, TypedCache,
};
use cache_tests::Env;

cache_tests::backend_suite!(
    a_failed_load_answers_with_the_expired_value_until_the_window_ends,
    a_panicking_or_stuck_loader_is_a_failed_load,
    a_slow_loader_is_answered_past_the_soft_timeout_and_completes_alone,
    a_batch_falls_back_key_by_key,
    a_fail_safe_keyspace_stores_a_header_and_plain_reads_see_the_expiry,
    a_value_that_cannot_be_stored_is_still_the_answer,
);

/// The keyspace TTL of these tests, short so that entries expire quickly.
const TTL: Duration = Duration::from_millis(300);

/// How far past a bound an answer may come (scheduling on a busy machine).
const MARGIN: Duration = Duration::from_millis(250);

/// How far past the soft timeout a stale answer may come.
const SOFT_MARGIN: Duration = Duration::from_millis(50);

fn prices(env: &Env, policy: LoadPolicy) -> TypedCache<String, u64> {
    env.cache
        .keyspace("price")
        .ttl(TTL)
        .load_policy(policy)
        .typed::<String, u64>()
        .unwrap()
}

/// `prices.get_or_load_detailed` with a loader that counts its runs and fails.
async fn failing(
    prices: &TypedCache<String, u64>,
    runs: &Arc<AtomicUsize>,
) -> cache_core::Result<cache_core::Loaded<u64>> {
    let runs = Arc::clone(runs);
    prices
        .try_get_or_load_detailed("gpt-4", move || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err::<Option<u64>, _>("database down")
        })
        .await
}

async fn a_failed_load_answers_with_the_expired_value_until_the_window_ends(env: Env) {
    let window = Duration::from_millis(1_500);
    let throttle = Duration::from_millis(500);
    let policy = LoadPolicy::DEFAULT
        .fail_safe(window)
        .fail_safe_throttle(throttle);
    let prices = prices(&env, policy);
    prices.set("gpt-4", &30).await.unwrap();
    let written = Instant::now();
    tokio::time::sleep(TTL + Duration::from_millis(50)).await;
    // Expired: plain reads see nothing; cache-aside keeps it for a failed load.
    assert_eq!(prices.get("gpt-4").await.unwrap(), None);
    assert_eq!(prices.ttl("gpt-4").await.unwrap(), Ttl::Missing);
    assert!(!prices.exists("gpt-4").await.unwrap());

    let runs = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let (prices, runs) = (prices.clone(), Arc::clone(&runs));
            tokio::spawn(async move { failing(&prices, &runs).await })
        })
        .collect();
    for caller in callers {
        let loaded = caller.await.unwrap().unwrap();
        assert_eq!(loaded.value, Some(30));
        assert_eq!(loaded.freshness, Freshness::Stale(StaleReason::LoaderError));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one load for 100 callers");
    assert_eq!(env.cache.stats().stale_loader_errors, 100);

    // Within the throttle: served without calling the loader.
    let again = failing(&prices, &runs).await.unwrap();
    assert_eq!(again.freshness, Freshness::Stale(StaleReason::LoaderError));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the throttle holds");
    // After it: tried once more, still stale.
    tokio::time::sleep(throttle + Duration::from_millis(50)).await;
    assert_eq!(failing(&prices, &runs).await.unwrap().value, Some(30));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    // After the window: the error.
    let gone = (written + TTL + window + Duration::from_millis(100)).duration_since(Instant::now());
    tokio::time::sleep(gone).await;
    match failing(&prices, &runs).await {
        Err(Error::Load { source, .. }) => assert!(source.to_string().contains("database down")),
        other => panic!("expected the loader's error after the window, got {other:?}"),
    }
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    let stats = env.cache.stats();
    assert_eq!((stats.loads, stats.load_errors), (3, 3));
    assert_eq!(stats.stale_loader_errors, 102);
}

async fn a_panicking_or_stuck_loader_is_a_failed_load(env: Env) {
    let hard = Duration::from_millis(300);
    let policy = LoadPolicy::DEFAULT
        .fail_safe(Duration::from_secs(60))
        .fail_safe_throttle(Duration::from_millis(200))
        .hard_timeout(hard);
    let prices = prices(&env, policy);
    prices.set("gpt-4", &30).await.unwrap();
    tokio::time::sleep(TTL + Duration::from_millis(50)).await;
    let panicked = prices
        .get_or_load_detailed("gpt-4", || async { panic!("the driver broke") })
        .await
        .unwrap();
    assert_eq!(panicked.value, Some(30));
    assert_eq!(
        panicked.freshness,
        Freshness::Stale(StaleReason::LoaderError)
    );
    // The key is not poisoned: after the throttle a stuck loader is tried,
    // given up at the hard timeout, and the expired value answers again.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let started = Instant::now();
    let stuck = prices
        .get_or_load_detailed("gpt-4", || async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Some(1)
        })
        .await
        .unwrap();
    assert!(
        started.elapsed() <= hard + MARGIN,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stuck.value, Some(30));
    assert_eq!(
        stuck.freshness,
        Freshness::Stale(StaleReason::LoaderTimeout)
    );
    // And a loader that works replaces it.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let fresh = prices.get_or_load_detailed("gpt-4", || async { Some(31) });
    let fresh = fresh.await.unwrap();
    assert_eq!((fresh.value, fresh.freshness), (Some(31), Freshness::Fresh));
    assert_eq!(prices.get("gpt-4").await.unwrap(), Some(31));
    let stats = env.cache.stats();
    assert_eq!(stats.stale_loader_errors, 1);
    assert_eq!(stats.stale_loader_timeouts, 1);
    assert_eq!(stats.loader_timeouts, 1);
}

async fn a_slow_loader_is_answered_past_the_soft_timeout_and_completes_alone(env: Env) {
    let soft = Duration::from_millis(100);
    let policy = LoadPolicy::DEFAULT
        .fail_safe(Duration::from_secs(60))
        .soft_timeout(soft)
        .hard_timeout(Duration::from_secs(5));
    // The loaded value lives for a minute, the first one for TTL.
    let prices = prices(&env, policy)
        .with_ttl(Duration::from_secs(60))
        .unwrap();
    prices.set_with_ttl("gpt-4", &30, TTL).await.unwrap();
    tokio::time::sleep(TTL + Duration::from_millis(50)).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..200)
        .map(|_| {
            let (prices, runs) = (prices.clone(), Arc::clone(&runs));
            tokio::spawn(async move {
                let started = Instant::now();
                let loaded = prices.get_or_load_detailed("gpt-4", move || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    Some(31)
                });
                (loaded.await, started.elapsed())
            })
        })
        .collect();
    for caller in callers {
        let (loaded, took) = caller.await.unwrap();
        let loaded = loaded.unwrap();
        assert_eq!(loaded.value, Some(30));
        assert_eq!(
            loaded.freshness,
            Freshness::Stale(StaleReason::LoaderTimeout)
        );
        assert!(took <= soft + SOFT_MARGIN, "answered after {took:?}");
    }
    // The load goes on alone and stores its value, seen by other handles too.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one background load");
    assert_eq!(prices.get("gpt-4").await.unwrap(), Some(31));
    if let Some(builder) = env.another_handle() {
        let other = builder.build().await.unwrap();
        let theirs = other.keyspace("price").typed::<String, u64>().unwrap();
        let theirs = theirs.with_load_policy(policy).unwrap();
        assert_eq!(theirs.get("gpt-4").await.unwrap(), Some(31));
    }
    let stats = env.cache.stats();
    assert_eq!((stats.loads, stats.background_loads), (1, 1));
    assert_eq!(stats.stale_loader_timeouts, 200);
}

async fn a_batch_falls_back_key_by_key(env: Env) {
    let policy = LoadPolicy::DEFAULT.fail_safe(Duration::from_secs(60));
    let prices = prices(&env, policy);
    let keys = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
    prices
        .set_many(&[("a", &1), ("b", &2), ("c", &3)])
        .await
        .unwrap();
    tokio::time::sleep(TTL + Duration::from_millis(50)).await;
    let failed = prices.try_get_or_load_many(&keys, |_missing: Vec<String>| async {
        Err::<Vec<(String, u64)>, _>("database down")
    });
    assert_eq!(failed.await.unwrap(), [Some(1), Some(2), Some(3)]);
    assert_eq!(env.cache.stats().stale_loader_errors, 3);
    // A key with nothing to fall back on gets the error.
    let with_new = ["a".to_owned(), "new".to_owned()];
    let failed = prices.try_get_or_load_many(&with_new, |_missing: Vec<String>| async {
        Err::<Vec<(String, u64)>, _>("database down")
    });
    assert!(matches!(failed.await, Err(Error::Load { .. })));
}

async fn a_fail_safe_keyspace_stores_a_header_and_plain_reads_see_the_expiry(env: Env) {
    let window = Duration::from_secs(3_600);
    let prices = env
        .cache
        .keyspace("price")
        .ttl(Duration::from_secs(60))
        .load_policy(LoadPolicy::DEFAULT.fail_safe(window))
        .typed::<String, u64>()
        .unwrap();
    prices.set("gpt-4", &30).await.unwrap();
    let raw = env
        .cache
        .raw_get(&prices.key("gpt-4"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&raw[..4], b"\xFFfs\x00", "magic and state");
    assert_eq!(&raw[12..], b"30", "the codec's bytes after the header");
    let logical = prices.ttl("gpt-4").await.unwrap().remaining().unwrap();
    assert!(logical <= Duration::from_secs(60) && logical > Duration::from_secs(55));
    let kept = env.cache.raw_ttl(&prices.key("gpt-4")).await.unwrap();
    let kept = kept.remaining().unwrap();
    assert!(
        kept > window + Duration::from_secs(55),
        "Redis keeps it {kept:?}"
    );
    // expire moves the value's own expiry, and Redis' with it.
    assert!(prices.expire("gpt-4", TTL).await.unwrap());
    tokio::time::sleep(TTL + Duration::from_millis(50)).await;
    assert_eq!(prices.get("gpt-4").await.unwrap(), None);
    let loaded = prices.get_or_load_detailed("gpt-4", || async { None });
    assert_eq!(loaded.await.unwrap().freshness, Freshness::Fresh);
    // A view of the keyspace without fail-safe reads the fail-safe view's
    // values (JSON cannot look like a header), and the other way round.
    let plain_view = prices.with_load_policy(LoadPolicy::DEFAULT).unwrap();
    prices.set("both", &5).await.unwrap();
    assert_eq!(plain_view.get("both").await.unwrap(), Some(5));
    let loaded = plain_view.get_or_load("both", || async { Some(6) });
    assert_eq!(loaded.await.unwrap(), Some(5));
    // A value written before fail-safe (no header) reads as it is.
    env.write_raw(&prices.key("old"), b"7").await;
    assert_eq!(prices.get("old").await.unwrap(), Some(7));
    // A keyspace without fail-safe stores the codec's bytes alone.
    let plain = env.cache.keyspace("plain").typed::<String, u64>().unwrap();
    plain.set("gpt-4", &30).await.unwrap();
    let raw = env.cache.raw_get(&plain.key("gpt-4")).await.unwrap();
    assert_eq!(raw.as_deref(), Some(&b"30"[..]));
    // incr stores Redis integers: refused under fail-safe, naming the key.
    let err = prices.incr("gpt-4", 1).await.unwrap_err();
    assert!(
        err.is_config() && err.to_string().contains(&prices.key("gpt-4")),
        "{err}"
    );
}

async fn a_value_that_cannot_be_stored_is_still_the_answer(env: Env) {
    // JSON has no NaN: the codec refuses it rather than store a null.
    let floats = env.cache.keyspace("float").typed::<String, f64>().unwrap();
    let loaded = floats.get_or_load("nan", || async { Some(f64::NAN) });
    assert!(loaded.await.unwrap().is_some_and(f64::is_nan));
    assert!(!floats.exists("nan").await.unwrap());
    assert_eq!(env.cache.stats().unstored_values, 1);
    let keys = ["nan".to_owned(), "one".to_owned()];
    let many = floats.get_or_load_many(&keys, |_| async {
        vec![("nan".to_owned(), f64::NAN), ("one".to_owned(), 1.0)]
    });
    let many = many.await.unwrap();
    assert!(many[0].is_some_and(f64::is_nan));
    assert_eq!(many[1], Some(1.0));
    assert_eq!(
        floats.get("one").await.unwrap(),
        Some(1.0),
        "the others are stored"
    );
    // Fail-closed: the error that set would return.
    let closed = LoadPolicy::DEFAULT.on_failure(FailurePolicy::Closed);
    let closed = floats.with_load_policy(closed).unwrap();
    let err = closed.get_or_load("nan", || async { Some(f64::NAN) });
    assert!(matches!(err.await, Err(Error::Load { .. })));
}

/// Handles on one server or cluster, as instances of a service.
mod across_handles {
    use super::*;

    cache_tests::redis_suite!(four_handles_load_at_most_once_per_throttle_window);

    async fn four_handles_load_at_most_once_per_throttle_window(env: Env) {
        let throttle = Duration::from_millis(800);
        let policy = LoadPolicy::DEFAULT
            .fail_safe(Duration::from_secs(60))
            .fail_safe_throttle(throttle)
            .distributed(Duration::from_secs(5), Duration::from_secs(2));
        // Four handles: four connections and in-process flights, as four
        // instances of a service would have.
        let mut handles = Vec::new();
        for _ in 0..4 {
            let Some(builder) = env.another_handle() else {
                panic!("a Redis suite has other handles");
            };
            handles.push(builder.build().await.unwrap());
        }
        let views: Vec<_> = (handles.iter())
            .map(|cache| {
                let view = cache.keyspace("price").ttl(TTL).load_policy(policy);
                view.typed::<String, u64>().unwrap()
            })
            .collect();
        views[0].set("gpt-4", &30).await.unwrap();
        tokio::time::sleep(TTL + Duration::from_millis(50)).await;
        let runs = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut calls = 0;
        // Waves of callers on every handle for two and a half throttle windows.
        while started.elapsed() < throttle * 5 / 2 {
            let wave: Vec<_> = (views.iter())
                .flat_map(|view| std::iter::repeat_n(view.clone(), 10))
                .map(|view| {
                    let runs = Arc::clone(&runs);
                    tokio::spawn(async move { failing(&view, &runs).await })
                })
                .collect();
            for caller in wave {
                let loaded = caller.await.unwrap().unwrap();
                assert_eq!(loaded.value, Some(30));
                assert!(loaded.freshness.is_stale(), "{:?}", loaded.freshness);
                calls += 1;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // At the start, then at most once per window after it.
        let runs = runs.load(Ordering::SeqCst);
        assert!(
            (1..=3).contains(&runs),
            "{runs} loads in 2.5 throttle windows"
        );
        let stale: u64 = (handles.iter())
            .map(|cache| cache.stats().stale_loader_errors)
            .sum();
        assert_eq!(stale, calls, "each stale answer counted once");
    }
}

#[test]
fn fail_safe_settings_are_checked_when_the_view_is_made() {
    let cache = Cache::memory();
    let (soft, hard) = (Duration::from_millis(100), Duration::from_secs(2));
    let window = LoadPolicy::DEFAULT.fail_safe(Duration::from_secs(60));
    let refused = [
        (
            LoadPolicy::DEFAULT.soft_timeout(soft).hard_timeout(hard),
            "needs fail_safe",
        ),
        (window.soft_timeout(soft), "needs a hard_timeout"),
        (
            window.soft_timeout(hard).hard_timeout(soft),
            "must be below",
        ),
        (
            LoadPolicy::DEFAULT.fail_safe(Duration::ZERO),
            "greater than zero",
        ),
        (
            window.fail_safe_throttle(Duration::ZERO),
            "greater than zero",
        ),
    ];
    for (policy, why) in refused {
        let made = cache
            .keyspace("p")
            .load_policy(policy)
            .typed::<String, u64>();
        let err = made.unwrap_err();
        assert!(err.is_config(), "{err}");
        let text = err.to_string();
        assert!(text.contains(why) && text.contains("`p`"), "{text}");
    }
    let fine = window.soft_timeout(soft).hard_timeout(hard);
    assert!(
        cache
            .keyspace("p")
            .load_policy(fine)
            .typed::<String, u64>()
            .is_ok()
    );
}
