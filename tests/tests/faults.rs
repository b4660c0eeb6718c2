//! Fault tests against a spawned redis-server: killed and restarted during
//! traffic, frozen with SIGSTOP, down at start-up; and single flight across
//! processes (handles on separate connections).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_core::{Cache, FailurePolicy, LoadPolicy};
use cache_tests::RedisServer;

/// How far past its timeout a call may return (scheduling on a busy machine).
const MARGIN: Duration = Duration::from_millis(700);

async fn handle(redis: &RedisServer, timeout: Duration) -> Cache {
    Cache::builder()
        .url(redis.url())
        .namespace(redis.namespace())
        .timeout(timeout)
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_single_flight_loads_once_across_four_handles() {
    let redis = RedisServer::start("distributed");
    let policy = LoadPolicy::DEFAULT.distributed(Duration::from_secs(5), Duration::from_secs(5));
    let runs = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        // Separate handles: separate connections and separate in-process flights,
        // as four service instances would have.
        let prices = distributed_prices(&redis, policy).await;
        for _ in 0..250 {
            let prices = prices.clone();
            let runs = Arc::clone(&runs);
            tasks.push(tokio::spawn(async move {
                prices
                    .get_or_load("gpt-4", move || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Some(0.03)
                    })
                    .await
            }));
        }
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), Some(0.03));
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "loaded more than once across handles"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_and_restarted_server_loses_no_acknowledged_write() {
    // Every acknowledged write is on disk before the reply.
    let mut redis =
        RedisServer::start_with("kill", &["--appendonly", "yes", "--appendfsync", "always"]);
    let timeout = Duration::from_millis(500);
    let cache = handle(&redis, timeout).await;
    let values = cache.keyspace("w").typed::<String, u64>().unwrap();

    let stop_at = Instant::now() + Duration::from_secs(3);
    let mut writers = Vec::new();
    for task in 0..8u64 {
        let values = values.clone();
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut failed = 0;
            let mut i = 0u64;
            while Instant::now() < stop_at {
                let key = format!("{task}-{i}");
                let started = Instant::now();
                let result = values.set(&key, &i).await;
                let took = started.elapsed();
                assert!(took <= timeout + MARGIN, "a write hung for {took:?}");
                match result {
                    Ok(()) => acknowledged.push((key, i)),
                    Err(err) => {
                        assert!(err.is_connection() || err.is_timeout(), "{err:?}");
                        failed += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                i += 1;
            }
            (acknowledged, failed)
        }));
    }

    tokio::time::sleep(Duration::from_millis(800)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart();
    let restarted = Instant::now();
    // The same handle, not rebuilt, works again within 2 s.
    loop {
        if values.set("probe", &1).await.is_ok() {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(2),
            "no recovery within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut acknowledged = Vec::new();
    let mut failed = 0;
    for writer in writers {
        let (ok, errors) = writer.await.unwrap();
        acknowledged.extend(ok);
        failed += errors;
    }
    assert!(failed > 0, "the kill should have failed some writes");
    assert!(
        acknowledged.len() > 100,
        "too little traffic: {}",
        acknowledged.len()
    );
    for (key, value) in &acknowledged {
        assert_eq!(
            values.get(key).await.unwrap(),
            Some(*value),
            "acknowledged write {key} lost"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_gives_timeouts_and_fail_open_loads_still_answer() {
    let redis = RedisServer::start("sigstop");
    let timeout = Duration::from_millis(300);
    let cache = handle(&redis, timeout).await;
    let prices = cache
        .keyspace("price")
        .ttl(Duration::from_secs(60))
        .typed::<String, f64>()
        .unwrap();
    prices.set("cached", &1.0).await.unwrap();
    let strict = prices
        .with_load_policy(LoadPolicy::DEFAULT.on_failure(FailurePolicy::Closed))
        .unwrap();

    redis.freeze();
    let started = Instant::now();
    let err = prices.get("cached").await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        started.elapsed() <= timeout + MARGIN,
        "{:?}",
        started.elapsed()
    );

    // Fail-open (the default for get_or_load): the loader answers.
    let started = Instant::now();
    let loaded = prices
        .get_or_load("gpt-4", || async { Some(0.03) })
        .await
        .unwrap();
    assert_eq!(loaded, Some(0.03));
    assert!(
        started.elapsed() <= timeout + MARGIN,
        "{:?}",
        started.elapsed()
    );

    // Fail-closed: the timeout is the answer.
    let err = strict
        .get_or_load("gpt-5", || async { Some(0.5) })
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    let stats = cache.stats();
    assert!(stats.timeouts >= 3, "{stats:?}");

    redis.resume();
    let started = Instant::now();
    loop {
        if prices.get("cached").await.is_ok() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "no recovery after SIGCONT"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(prices.get("cached").await.unwrap(), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_handle_starts_without_redis_and_connects_when_it_is_up() {
    let mut redis = RedisServer::start("lazy");
    redis.kill();
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let eager = Cache::builder()
        .url(redis.url())
        .timeout(timeout)
        .build()
        .await;
    assert!(eager.is_err(), "nothing is listening");
    assert!(
        started.elapsed() <= timeout + MARGIN,
        "{:?}",
        started.elapsed()
    );

    let cache = Cache::builder()
        .url(redis.url())
        .namespace(redis.namespace())
        .timeout(timeout)
        .lazy_connect(true)
        .build()
        .await
        .unwrap();
    let names = cache.keyspace("name").typed::<String, String>().unwrap();
    let started = Instant::now();
    assert!(names.get("a").await.is_err());
    assert!(
        started.elapsed() <= timeout + MARGIN,
        "{:?}",
        started.elapsed()
    );
    // Fail-open loads serve while Redis is down.
    let loaded = names
        .get_or_load("a", || async { Some("from db".to_owned()) })
        .await
        .unwrap();
    assert_eq!(loaded.as_deref(), Some("from db"));
    // Let that load's best-effort write-back time out before Redis returns, or
    // it could land after the write below (the usual cache-aside race).
    tokio::time::sleep(timeout * 2).await;

    redis.restart();
    let started = Instant::now();
    loop {
        if names.set("a", &"x".to_owned()).await.is_ok() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "never connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(names.get("a").await.unwrap().as_deref(), Some("x"));
}

/// With the server frozen, every operation answers within one timeout (plus
/// scheduling margin): none pays the timeout twice, however many Redis calls
/// it would make. Operations that are not idempotent say their outcome is
/// unknown; idempotent ones do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_server_frozen_every_operation_answers_within_one_timeout() {
    let redis = RedisServer::start("one-timeout");
    // Long enough that paying it twice is beyond the margin.
    let timeout = Duration::from_millis(1_000);
    let cache = handle(&redis, timeout).await;
    let policy = LoadPolicy::DEFAULT
        .negative_ttl(Duration::from_secs(30))
        .distributed(Duration::from_secs(5), Duration::from_secs(5));
    let prices = cache
        .keyspace("price")
        .ttl(Duration::from_secs(60))
        .load_policy(policy)
        .typed::<String, f64>()
        .unwrap();
    let calls = cache.keyspace("calls").typed::<String, i64>().unwrap();
    let locks = cache.keyspace("lock").locks::<str>().unwrap();
    prices.set("cached", &1.0).await.unwrap();

    redis.freeze();
    let within_one_timeout = |what: &str, started: Instant| {
        let took = started.elapsed();
        assert!(took <= timeout + MARGIN, "{what} took {took:?}");
    };

    let started = Instant::now();
    let loaded = prices
        .get_or_load("gpt-4", || async { Some(0.03) })
        .await
        .unwrap();
    assert_eq!(loaded, Some(0.03));
    within_one_timeout("distributed fail-open get_or_load", started);

    let started = Instant::now();
    let err = prices.delete("cached").await.unwrap_err();
    assert!(err.is_timeout() && !err.is_outcome_unknown(), "{err:?}");
    within_one_timeout("delete with negative caching", started);

    let started = Instant::now();
    assert!(
        prices
            .delete_many(&["a", "b"])
            .await
            .unwrap_err()
            .is_timeout()
    );
    within_one_timeout("delete_many with negative caching", started);

    let started = Instant::now();
    let err = prices.get("cached").await.unwrap_err();
    assert!(err.is_timeout() && !err.is_outcome_unknown(), "{err:?}");
    within_one_timeout("get", started);

    let err = calls.incr("u", 1).await.unwrap_err();
    assert!(err.is_outcome_unknown(), "{err:?}");
    assert!(err.to_string().contains("outcome unknown"), "{err}");
    let err = locks
        .try_acquire("job", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.is_outcome_unknown(), "{err:?}");
    assert!(calls.take("u").await.unwrap_err().is_outcome_unknown());
    redis.resume();
}

/// After a restart, a handle's first idempotent call succeeds: the call that
/// meets the broken connection is sent once more on the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_calls_are_retried_once_after_a_restart() {
    let mut redis = RedisServer::start_with("retry", &["--appendonly", "yes"]);
    let first = handle(&redis, Duration::from_secs(2)).await;
    let second = handle(&redis, Duration::from_secs(2)).await;
    let names = |cache: &Cache| cache.keyspace("name").typed::<String, String>().unwrap();
    names(&first).set("a", &"ada".to_owned()).await.unwrap();
    assert_eq!(
        names(&second).get("a").await.unwrap().as_deref(),
        Some("ada")
    );

    for round in 0..3 {
        redis.kill();
        redis.restart();
        // Give the old connections time to notice nothing; the first call meets the break.
        assert_eq!(
            names(&second).get("a").await.unwrap().as_deref(),
            Some("ada"),
            "round {round}: the first read after the restart"
        );
        names(&first).set("b", &"bob".to_owned()).await.unwrap();
        assert!(names(&first).exists("b").await.unwrap());
    }
}

/// Fail-open batch cache-aside with the server frozen: the values come from
/// the loader within the timeout plus a small margin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_leaves_batch_loads_answering_from_the_loader() {
    let redis = RedisServer::start("sigstop-many");
    let timeout = Duration::from_millis(500);
    let cache = handle(&redis, timeout).await;
    let prices = cache
        .keyspace("price")
        .ttl(Duration::from_secs(60))
        .typed::<String, f64>()
        .unwrap();
    let models: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    redis.freeze();
    let started = Instant::now();
    let got = prices
        .get_or_load_many(&models, |missing: Vec<String>| async move {
            missing.into_iter().map(|m| (m, 0.5)).collect::<Vec<_>>()
        })
        .await
        .unwrap();
    let took = started.elapsed();
    redis.resume();
    assert_eq!(got, vec![Some(0.5); 100]);
    assert!(took <= timeout + MARGIN, "took {took:?}");
}

/// With the distributed policy, overlapping batches on four handles (four
/// service instances) load each key once across all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_batches_load_each_key_once_across_four_handles() {
    let redis = RedisServer::start("distributed-many");
    let policy = LoadPolicy::DEFAULT.distributed(Duration::from_secs(5), Duration::from_secs(5));
    let loads = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        usize,
    >::new()));
    let mut tasks = Vec::new();
    for instance in 0..4_usize {
        let prices = distributed_prices(&redis, policy).await;
        for batch in 0..4_usize {
            let prices = prices.clone();
            let loads = Arc::clone(&loads);
            tasks.push(tokio::spawn(async move {
                let start = (instance * 4 + batch) * 5;
                let keys: Vec<String> = (start..start + 30)
                    .map(|i| format!("m{}", i % 60))
                    .collect();
                let got = prices
                    .get_or_load_many(&keys, move |missing: Vec<String>| async move {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        let mut loads = loads.lock().unwrap();
                        for key in &missing {
                            *loads.entry(key.clone()).or_default() += 1;
                        }
                        missing.into_iter().map(|k| (k, 1.0)).collect::<Vec<_>>()
                    })
                    .await
                    .unwrap();
                assert_eq!(got, vec![Some(1.0); 30]);
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let loads = loads.lock().unwrap();
    assert_eq!(loads.len(), 60, "every key loaded");
    for (key, count) in loads.iter() {
        assert_eq!(*count, 1, "{key} loaded {count} times across handles");
    }
}

/// Two handles of the `price` keyspace with the distributed policy.
async fn two_distributed(
    redis: &RedisServer,
    wait: Duration,
) -> (
    cache_core::TypedCache<String, f64>,
    cache_core::TypedCache<String, f64>,
) {
    let policy = LoadPolicy::DEFAULT.distributed(Duration::from_secs(10), wait);
    (
        distributed_prices(redis, policy).await,
        distributed_prices(redis, policy).await,
    )
}

/// The `price` keyspace with `policy` on a handle of its own (its own
/// connection and in-process flights, as a separate instance would have).
async fn distributed_prices(
    redis: &RedisServer,
    policy: LoadPolicy,
) -> cache_core::TypedCache<String, f64> {
    handle(redis, Duration::from_secs(2))
        .await
        .keyspace("price")
        .ttl(Duration::from_secs(60))
        .load_policy(policy)
        .typed::<String, f64>()
        .unwrap()
}

/// Starts a `get_or_load` of `key` on `prices` whose loader holds the key's
/// lease until `release` fires; returns once the loader is running.
async fn hold_lease(
    prices: &cache_core::TypedCache<String, f64>,
    key: &str,
    release: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<cache_core::Result<Option<f64>>> {
    let (started, running) = tokio::sync::oneshot::channel();
    let prices = prices.clone();
    let key = key.to_owned();
    let task = tokio::spawn(async move {
        prices
            .get_or_load(&key, move || async move {
                let _ = started.send(());
                let _ = release.await;
                Some(2.0)
            })
            .await
    });
    running.await.unwrap();
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_loads_its_own_keys_while_another_process_loads_one_of_them() {
    // Waiting for the other process before loading our own keys would stall
    // two batches that each hold a key the other wants until `wait` runs out.
    let redis = RedisServer::start("distributed-crossing");
    let (one, other) = two_distributed(&redis, Duration::from_secs(30)).await;
    let (release, hold) = tokio::sync::oneshot::channel();
    let holder = hold_lease(&other, "b", hold).await;

    let (asked_tx, asked_rx) = tokio::sync::oneshot::channel();
    let batch = tokio::spawn(async move {
        one.get_or_load_many(
            &["a".to_owned(), "b".to_owned()],
            move |missing| async move {
                let _ = asked_tx.send(missing.clone());
                missing
                    .into_iter()
                    .map(|key| (key, 1.0))
                    .collect::<Vec<_>>()
            },
        )
        .await
    });
    // The loader is called for "a" alone while "b" is still being loaded elsewhere.
    let asked = tokio::time::timeout(Duration::from_secs(10), asked_rx)
        .await
        .expect("the batch loaded its own key without waiting for the other process")
        .unwrap();
    assert_eq!(asked, ["a".to_owned()]);
    assert!(!batch.is_finished(), "\"b\" is awaited, not answered");

    release.send(()).unwrap();
    assert_eq!(holder.await.unwrap().unwrap(), Some(2.0));
    assert_eq!(batch.await.unwrap().unwrap(), [Some(1.0), Some(2.0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_whose_lease_outlives_the_wait_is_loaded_or_named_in_the_error() {
    let redis = RedisServer::start("distributed-late");
    let wait = Duration::from_millis(300);
    let (one, other) = two_distributed(&redis, wait).await;
    let (release, hold) = tokio::sync::oneshot::channel();
    let holder = hold_lease(&other, "b", hold).await;

    // Nothing else to load: after `wait`, the batch loads "b" itself, as
    // `get_or_load` does.
    let got = one
        .get_or_load_many(&["b".to_owned()], |missing| async move {
            assert_eq!(missing, ["b".to_owned()]);
            [("b".to_owned(), 3.0)]
        })
        .await
        .unwrap();
    assert_eq!(got, [Some(3.0)]);
    one.delete("b").await.unwrap();

    // With its own key loaded in the one loader call, a key still held
    // elsewhere after `wait` is an error that names it, not a second load.
    let err = one
        .get_or_load_many(&["c".to_owned(), "b".to_owned()], |missing| async move {
            assert_eq!(missing, ["c".to_owned()]);
            [("c".to_owned(), 4.0)]
        })
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, cache_core::Error::Load { .. }), "{err:?}");
    assert!(message.contains(":price:v1:b`"), "{message}");
    assert!(message.contains("another process"), "{message}");
    // Its own key was stored all the same.
    assert_eq!(one.get("c").await.unwrap(), Some(4.0));

    release.send(()).unwrap();
    assert_eq!(holder.await.unwrap().unwrap(), Some(2.0));
}
