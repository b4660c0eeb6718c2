//! The loader's time limit (`hard_timeout`): a stuck loader fails its load
//! for every caller waiting for it within the limit, nothing is cached, the
//! next call loads anew, and the timeout is counted. On every backend.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_core::{Cacheable, Error, LoadPolicy, TypedCache};
use cache_tests::Env;
use serde::{Deserialize, Serialize};

cache_tests::backend_suite!(
    a_stuck_loader_fails_every_waiter_within_the_hard_timeout,
    a_stuck_batch_loader_fails_the_batch_within_the_hard_timeout,
    a_loader_within_the_hard_timeout_is_not_disturbed,
);

/// The loader's limit in these tests.
const LIMIT: Duration = Duration::from_millis(200);

/// How far past the limit an answer may come (scheduling on a busy machine).
const MARGIN: Duration = Duration::from_millis(700);

fn prices(env: &Env) -> TypedCache<String, u64> {
    env.cache
        .keyspace("price")
        .ttl(Duration::from_secs(60))
        .load_policy(LoadPolicy::DEFAULT.hard_timeout(LIMIT))
        .typed::<String, u64>()
        .unwrap()
}

fn timed_out(result: cache_core::Result<impl std::fmt::Debug>) {
    match result {
        Err(Error::Load { source, .. }) => {
            assert!(
                source.to_string().contains("did not answer within"),
                "{source}"
            );
        }
        other => panic!("expected the loader's timeout, got {other:?}"),
    }
}

async fn a_stuck_loader_fails_every_waiter_within_the_hard_timeout(env: Env) {
    let prices = prices(&env);
    let runs = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let (prices, runs) = (prices.clone(), Arc::clone(&runs));
            tokio::spawn(async move {
                let result = prices
                    .get_or_load("gpt-4", move || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        Some(1)
                    })
                    .await;
                (result, started.elapsed())
            })
        })
        .collect();
    for caller in callers {
        let (result, took) = caller.await.unwrap();
        timed_out(result);
        assert!(took <= LIMIT + MARGIN, "answered after {took:?}");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one loader for all");
    let stats = env.cache.stats();
    assert_eq!((stats.loader_timeouts, stats.load_errors), (1, 1));
    // Nothing cached; the next call loads anew.
    assert_eq!(prices.get("gpt-4").await.unwrap(), None);
    let loaded = prices.get_or_load("gpt-4", || async { Some(7) }).await;
    assert_eq!(loaded.unwrap(), Some(7));
    assert_eq!(prices.get("gpt-4").await.unwrap(), Some(7));
}

async fn a_stuck_batch_loader_fails_the_batch_within_the_hard_timeout(env: Env) {
    let prices = prices(&env);
    let keys: Vec<String> = (0..3).map(|i| format!("m{i}")).collect();
    let started = Instant::now();
    let result = prices
        .get_or_load_many(&keys, |_| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Vec::<(String, u64)>::new()
        })
        .await;
    let took = started.elapsed();
    timed_out(result);
    assert!(took <= LIMIT + MARGIN, "answered after {took:?}");
    assert_eq!(env.cache.stats().loader_timeouts, 1);
    let again = prices
        .get_or_load_many(&keys, |asked| async move {
            asked.into_iter().map(|key| (key, 7)).collect::<Vec<_>>()
        })
        .await;
    assert_eq!(again.unwrap(), [Some(7); 3]);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Cacheable)]
#[cache(prefix = "quote", ttl = "1m", hard_timeout = "200ms")]
struct Quote {
    #[cache(key)]
    symbol: String,
    cents: u64,
}

async fn a_loader_within_the_hard_timeout_is_not_disturbed(env: Env) {
    assert_eq!(Quote::LOAD, LoadPolicy::DEFAULT.hard_timeout(LIMIT));
    let quotes = env.cache.typed::<Quote>().unwrap();
    let quote = Quote {
        symbol: "ACME".into(),
        cents: 4_200,
    };
    let answer = quote.clone();
    let loaded = quotes
        .get_or_load("ACME", || async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Some(answer)
        })
        .await;
    assert_eq!(loaded.unwrap(), Some(quote.clone()));
    assert_eq!(quotes.get("ACME").await.unwrap(), Some(quote));
    assert_eq!(env.cache.stats().loader_timeouts, 0);
    // A zero limit is refused when the keyspace is made.
    let zero = LoadPolicy::DEFAULT.hard_timeout(Duration::ZERO);
    let refused = env
        .cache
        .keyspace("z")
        .load_policy(zero)
        .typed::<String, u64>();
    assert!(refused.unwrap_err().is_config());
}
