//! Faults injected into a memory-backed handle (`cache_core::testing`): each
//! fault kind on each family of operations gives the documented error or
//! fallback and the same counters; and the same scenario gives the same
//! outcomes on injected faults as on a real server that is killed or frozen.

use std::time::{Duration, Instant};

use cache_core::testing::{Calls, Fault, Faults, LoadCounter};
use cache_core::{Cache, CacheStats, Error, FailurePolicy, LoadPolicy, RateLimit};
use cache_tests::RedisServer;

/// The timeout of every handle here.
const TIMEOUT: Duration = Duration::from_millis(200);
/// How far past its timeout a call may return (scheduling on a busy machine).
const MARGIN: Duration = Duration::from_millis(700);
/// What "at once" allows an operation on a busy machine.
const FAST: Duration = Duration::from_millis(60);

fn faulty(faults: &Faults) -> Cache {
    Cache::builder()
        .namespace("app")
        .timeout(TIMEOUT)
        .faults(faults.clone())
        .build_memory()
        .unwrap()
}

/// What a caller saw, in the terms the docs promise.
#[derive(Debug, PartialEq)]
enum Seen {
    Answer(String),
    Connection { unknown: bool },
    Timeout { unknown: bool },
    Server { unknown: bool },
    WrongType,
    Other(String),
}

fn seen<T: std::fmt::Debug>(result: Result<T, Error>) -> Seen {
    match result {
        Ok(value) => Seen::Answer(format!("{value:?}")),
        Err(err) if err.is_wrong_type() => Seen::WrongType,
        Err(err) if err.is_timeout() => Seen::Timeout {
            unknown: err.is_outcome_unknown(),
        },
        Err(err) if err.is_connection() => Seen::Connection {
            unknown: err.is_outcome_unknown(),
        },
        Err(err @ Error::Backend { .. }) => Seen::Server {
            unknown: err.is_outcome_unknown(),
        },
        Err(err) => Seen::Other(err.to_string()),
    }
}

/// One operation of each family on `cache`, with what each caller saw, how
/// long the operations took, and what the counters moved by (once settled).
/// Fail-open loads answer from their loader.
async fn every_family(cache: &Cache) -> (Vec<(&'static str, Seen)>, CacheStats, Duration) {
    let before = cache.stats();
    let started = Instant::now();
    let names = cache.keyspace("name").typed::<u64, String>().unwrap();
    let closed = LoadPolicy::DEFAULT.on_failure(FailurePolicy::Closed);
    let strict = cache.keyspace("strict").load_policy(closed);
    let strict = strict.typed::<u64, String>().unwrap();
    let counts = cache.keyspace("count").typed::<str, i64>().unwrap();
    let seqs = cache.keyspace("seq").sequences::<str>(10).unwrap();
    let locks = cache.keyspace("lock").locks::<str>().unwrap();
    let flags = cache.keyspace("revoked").flags::<str>().unwrap();
    let limit = RateLimit::sliding_window(5, Duration::from_secs(60));
    let limiter = cache.keyspace("api").rate_limiter::<str>(limit).unwrap();
    let online = cache.keyspace("online").typed_set::<str, u64>().unwrap();
    let ada = "Ada".to_owned();
    let loaded = || async { Some("loaded".to_owned()) };
    let many = |keys: Vec<u64>| async move {
        keys.into_iter()
            .map(|k| (k, k.to_string()))
            .collect::<Vec<_>>()
    };
    let seen = vec![
        ("get", seen(names.get(&1).await)),
        ("exists", seen(names.exists(&1).await)),
        ("set", seen(names.set(&1, &ada).await)),
        ("delete", seen(names.delete(&1).await)),
        ("take", seen(names.take(&1).await)),
        ("get_many", seen(names.get_many(&[&1, &2]).await)),
        ("set_many", seen(names.set_many(&[(&1, &ada)]).await)),
        ("delete_many", seen(names.delete_many(&[&1, &2]).await)),
        ("get_or_load", seen(names.get_or_load(&3, loaded).await)),
        (
            "get_or_load_many",
            seen(names.get_or_load_many(&[4, 5], many).await),
        ),
        (
            "fail-closed get_or_load",
            seen(strict.get_or_load(&3, loaded).await),
        ),
        ("incr", seen(counts.incr("u", 1).await)),
        ("sequence", seen(seqs.next("chat").await.map(|a| a.value))),
        (
            "lock",
            seen(locks.try_acquire("job", TIMEOUT).await.map(|l| l.is_some())),
        ),
        (
            "flag",
            seen(flags.raise_for("jwt", Duration::from_secs(60)).await),
        ),
        (
            "rate limit",
            seen(limiter.hit("u").await.map(|d| d.allowed)),
        ),
        ("typed set", seen(online.add("room", &[1]).await)),
    ];
    let took = started.elapsed();
    (seen, settled_stats(cache).await.since(&before), took)
}

/// The handle's counters once they stop moving: a load that failed to
/// reach Redis answers its callers first and writes back after, so its
/// write-back's error is counted after the call returned.
async fn settled_stats(cache: &Cache) -> CacheStats {
    let started = Instant::now();
    let mut last = cache.stats();
    let mut still_since = Instant::now();
    while still_since.elapsed() < Duration::from_millis(250) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the counters never settled"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
        let now = cache.stats();
        if now != last {
            (last, still_since) = (now, Instant::now());
        }
    }
    last
}

fn errors(stats: &CacheStats) -> (u64, u64) {
    (stats.backend_errors, stats.timeouts)
}

/// Redis down, injected: every family fails at once as a connection error
/// (nothing sent, so no outcome is unknown), loads answer from the loader
/// unless fail-closed, and the counters say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_gives_connection_errors_and_fail_open_answers() {
    let faults = Faults::new();
    let cache = faulty(&faults);
    faults.down();
    let (seen, stats, _) = every_family(&cache).await;
    let refused = |unknown| Seen::Connection { unknown };
    let loaded = Seen::Answer(r#"Some("loaded")"#.to_owned());
    let expected = vec![
        ("get", refused(false)),
        ("exists", refused(false)),
        ("set", refused(false)),
        ("delete", refused(false)),
        ("take", refused(false)),
        ("get_many", refused(false)),
        ("set_many", refused(false)),
        ("delete_many", refused(false)),
        ("get_or_load", loaded),
        (
            "get_or_load_many",
            Seen::Answer(r#"[Some("4"), Some("5")]"#.to_owned()),
        ),
        ("fail-closed get_or_load", refused(false)),
        ("incr", refused(false)),
        ("sequence", refused(false)),
        ("lock", refused(false)),
        ("flag", refused(false)),
        ("rate limit", refused(false)),
        ("typed set", refused(false)),
    ];
    assert_eq!(seen, expected);
    assert_eq!(stats.timeouts, 0);
    assert_eq!(stats.backend_errors, 19, "{stats:?}");
    assert_eq!(stats.loads, 2, "{stats:?}");

    faults.up();
    let names = cache.keyspace("name").typed::<u64, String>().unwrap();
    assert_eq!(
        names.get(&3).await.unwrap(),
        None,
        "nothing was written while down"
    );
    names.set(&3, &"back".to_owned()).await.unwrap();
    assert_eq!(names.get(&3).await.unwrap().as_deref(), Some("back"));
}

/// The same scenario on a real server that was killed and on injected
/// "down": the same outcomes and the same counters, and on both every call
/// fails at once, seconds into the outage too (the handle knows its server
/// is down and reconnects in the background, so no call waits for a
/// reconnect of its own). Once the server is back, the same handle answers
/// within the longest reconnect pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_down_matches_a_killed_server() {
    let timeout = Duration::from_secs(2);
    let mut redis = RedisServer::start("killed-parity");
    let real = redis.cache_with_timeout(timeout).await;
    redis.kill();
    let (on_redis, redis_stats, _) = every_family(&real).await;
    // Seconds later, the same.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (later, later_stats, took) = every_family(&real).await;
    assert!(
        took < FAST * 17,
        "17 operations took {took:?} on a dead server"
    );
    assert_eq!(later, on_redis);
    assert_eq!(errors(&later_stats), errors(&redis_stats));
    assert_eq!(redis_stats.timeouts, 0, "{redis_stats:?}");

    let faults = Faults::new();
    let builder = Cache::builder().namespace("app").timeout(timeout);
    let cache = builder.faults(faults.clone()).build_memory().unwrap();
    faults.down();
    let (injected, injected_stats, took) = every_family(&cache).await;
    assert!(took < FAST * 17, "{took:?}");
    assert_eq!(injected, on_redis);
    assert_eq!(errors(&injected_stats), errors(&redis_stats));
    assert_eq!(injected_stats.loads, redis_stats.loads);

    redis.restart();
    let restarted = Instant::now();
    let names = real.keyspace("name").typed::<u64, String>().unwrap();
    while names.set(&9, &"back".to_owned()).await.is_err() {
        assert!(
            restarted.elapsed() < Duration::from_millis(500) + MARGIN,
            "not answering {:?} after the restart",
            restarted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The same scenario on a frozen server and on injected timeouts: every
/// operation answers within one timeout, with the same outcomes and counters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_timeouts_match_a_frozen_server() {
    let redis = RedisServer::start("frozen-parity");
    let real = redis.cache_with_timeout(TIMEOUT).await;
    redis.freeze();
    let (on_redis, redis_stats, _) = every_family(&real).await;
    redis.resume();

    let faults = Faults::new();
    let cache = faulty(&faults);
    faults.on(Calls::All).fail(Fault::Timeout);
    let (injected, injected_stats, took) = every_family(&cache).await;
    let per_operation = took / u32::try_from(injected.len()).unwrap();
    assert!(
        per_operation <= TIMEOUT + MARGIN,
        "{per_operation:?} per operation"
    );
    assert_eq!(injected, on_redis);
    assert_eq!(errors(&injected_stats), errors(&redis_stats));
    assert_eq!(injected_stats.backend_errors, 0);
    assert_eq!(injected_stats.timeouts, 19, "{injected_stats:?}");
}

/// Each fault kind, aimed at one family of calls, fails that family with its
/// documented error and leaves the others working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_kind_on_each_family() {
    let kinds = [
        (Fault::Connection, Seen::Connection { unknown: false }),
        (Fault::Dropped, Seen::Connection { unknown: false }),
        (Fault::Timeout, Seen::Timeout { unknown: false }),
        (
            Fault::Server("OOM command not allowed".into()),
            Seen::Server { unknown: false },
        ),
        (Fault::WrongType, Seen::WrongType),
    ];
    for (fault, expected) in kinds {
        let faults = Faults::new();
        let cache = faulty(&faults);
        let names = cache.keyspace("name").typed::<u64, String>().unwrap();
        let counts = cache.keyspace("count").typed::<str, i64>().unwrap();
        let ada = "Ada".to_owned();
        for (calls, family) in [
            (Calls::Reads, "reads"),
            (Calls::Writes, "writes"),
            (Calls::Batches, "batches"),
            (Calls::Scripts, "scripts"),
        ] {
            faults.heal();
            names.set(&1, &ada).await.unwrap();
            faults.on(calls).fail(fault.clone());
            let before = cache.stats();
            let outcomes = [
                ("reads", seen(names.get(&1).await)),
                ("writes", seen(names.set(&1, &ada).await)),
                ("batches", seen(names.get_many(&[&1]).await)),
                ("scripts", seen(counts.incr("u", 1).await)),
            ];
            let change = cache.stats().since(&before);
            for (name, outcome) in outcomes {
                if name != family {
                    assert!(
                        matches!(outcome, Seen::Answer(_)),
                        "{fault:?} on {family}: {name} {outcome:?}"
                    );
                    continue;
                }
                // Scripts are never sent twice: their outcome is unknown after
                // a lost connection or a timeout (not after a refused one).
                let expected = match (&expected, name) {
                    (_, "scripts") if fault == Fault::Dropped => Seen::Connection { unknown: true },
                    (Seen::Timeout { .. }, "scripts") => Seen::Timeout { unknown: true },
                    _ => match &expected {
                        Seen::Connection { unknown } => Seen::Connection { unknown: *unknown },
                        Seen::Timeout { unknown } => Seen::Timeout { unknown: *unknown },
                        Seen::Server { unknown } => Seen::Server { unknown: *unknown },
                        _ => Seen::WrongType,
                    },
                };
                assert_eq!(outcome, expected, "{fault:?} on {family}");
            }
            let counted = match fault {
                Fault::Timeout => (0, 1),
                Fault::WrongType => (0, 0),
                _ => (1, 0),
            };
            assert_eq!(errors(&change), counted, "{fault:?} on {family}");
        }
    }
}

/// Every fault kind on every call: each operation of each family (blocks
/// and loads included) gives that kind's error, loads answer from their
/// loader unless fail-closed, and the counters count each failed operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_kind_on_every_family() {
    // Operations never sent twice: a lost connection or a timeout leaves
    // their outcome unknown.
    let once = [
        "take",
        "incr",
        "sequence",
        "lock",
        "rate limit",
        "typed set",
    ];
    let loads = ["get_or_load", "get_or_load_many"];
    for fault in [
        Fault::Connection,
        Fault::Dropped,
        Fault::Timeout,
        Fault::Server("ERR injected".into()),
        Fault::WrongType,
    ] {
        let faults = Faults::new();
        let cache = faulty(&faults);
        faults.on(Calls::All).fail(fault.clone());
        let (seen, stats, _) = every_family(&cache).await;
        let mut failed = 0;
        for (operation, outcome) in seen {
            if loads.contains(&operation) {
                assert!(
                    matches!(outcome, Seen::Answer(_)),
                    "{fault:?}: {operation} {outcome:?}"
                );
                continue;
            }
            failed += 1;
            let unknown = once.contains(&operation);
            let expected = match fault {
                Fault::Connection => Seen::Connection { unknown: false },
                Fault::Dropped => Seen::Connection { unknown },
                Fault::Timeout => Seen::Timeout { unknown },
                Fault::WrongType => Seen::WrongType,
                _ => Seen::Server { unknown: false },
            };
            assert_eq!(outcome, expected, "{fault:?}: {operation}");
        }
        // Each fail-open load also counts its failed read and write-back.
        let counted = failed + 4;
        let expected = match fault {
            Fault::Timeout => (0, counted),
            Fault::WrongType => (0, 0),
            _ => (counted, 0),
        };
        assert_eq!(errors(&stats), expected, "{fault:?}: {stats:?}");
        assert_eq!(stats.loads, 2, "{fault:?}: {stats:?}");
    }
}

/// A fault for the next call only is absorbed by the resend of an
/// idempotent call, as a dropped connection is on Redis; not by a call that
/// is never sent twice. Calls by name and the call counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_next_counts_calls_and_named_calls_fail_alone() {
    let faults = Faults::new();
    let cache = faulty(&faults);
    let names = cache.keyspace("name").typed::<u64, String>().unwrap();
    let counts = cache.keyspace("count").typed::<str, i64>().unwrap();

    faults.fail_next(1, Fault::Dropped);
    assert_eq!(names.get(&1).await.unwrap(), None);
    assert_eq!((faults.calls(), faults.injected()), (2, 1));

    faults.fail_next(2, Fault::Dropped);
    assert!(names.get(&1).await.unwrap_err().is_connection());
    assert_eq!(names.get(&1).await.unwrap(), None, "only two calls failed");

    // A refused connection sent nothing: not sent again, outcome known.
    faults.fail_next(1, Fault::Connection);
    let err = names.get(&1).await.unwrap_err();
    assert!(err.is_connection() && !err.is_outcome_unknown(), "{err:?}");
    assert_eq!(faults.calls(), 6, "a refused read is not sent twice");

    faults.fail_next(1, Fault::Dropped);
    let err = counts.incr("u", 1).await.unwrap_err();
    assert!(err.is_connection() && err.is_outcome_unknown(), "{err:?}");
    assert_eq!(
        counts.incr("u", 1).await.unwrap(),
        1,
        "the failed call was not applied"
    );

    faults.fail_next(1, Fault::Dropped);
    let err = names
        .set_if_absent(&1, &"Ada".to_owned())
        .await
        .unwrap_err();
    assert!(err.is_connection() && err.is_outcome_unknown(), "{err:?}");
    assert!(
        names.get(&1).await.unwrap().is_none(),
        "the failed write was not applied"
    );

    faults
        .on(Calls::Named("INCRBY"))
        .fail(Fault::Server("ERR boom".into()));
    let err = counts.incr("u", 1).await.unwrap_err();
    assert!(err.to_string().contains("boom"), "{err}");
    assert_eq!(err.key(), Some("app:count:v1:u"));
    assert!(names.set(&1, &"Ada".to_owned()).await.is_ok());
    assert_eq!(cache.stats().backend_errors, 5);
}

/// Latency: a delay within the timeout only slows the call; past it, the
/// call times out at the timeout, not after the delay; and the calls of one
/// operation share one timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delays_slow_calls_and_share_one_timeout() {
    let faults = Faults::new();
    let cache = faulty(&faults);
    let names = cache.keyspace("name").typed::<u64, String>().unwrap();

    faults.on(Calls::Reads).delay(Duration::from_millis(50));
    let started = Instant::now();
    assert_eq!(names.get(&1).await.unwrap(), None);
    assert!(started.elapsed() >= Duration::from_millis(50));

    faults.on(Calls::Reads).delay(Duration::from_secs(5));
    let started = Instant::now();
    assert!(names.get(&1).await.unwrap_err().is_timeout());
    assert!(
        started.elapsed() < TIMEOUT + MARGIN,
        "{:?}",
        started.elapsed()
    );
    assert!(
        names.set(&1, &"Ada".to_owned()).await.is_ok(),
        "writes are not delayed"
    );

    // Each call takes 150 ms of a 200 ms timeout: a load's read fits, its
    // write-back does not, and the operation still ends in time.
    faults.heal();
    faults.on(Calls::All).delay(Duration::from_millis(150));
    let loads = LoadCounter::new();
    let started = Instant::now();
    let answer = names.get_or_load(&2, loads.wrap(|| async { Some("x".to_owned()) }));
    assert_eq!(answer.await.unwrap().as_deref(), Some("x"));
    assert!(
        started.elapsed() < TIMEOUT + MARGIN,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(loads.calls(), 1);
    assert_eq!(cache.stats().timeouts, 1, "the write-back ran out of time");
}

/// The loader counter: 1,000 concurrent requests for one key ran the loader
/// once; loads of different keys ran side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loader_counter_sees_single_flight() {
    let cache = Cache::memory();
    let prices = cache.keyspace("price").typed::<u64, f64>().unwrap();
    let loads = LoadCounter::new();
    let slow = || async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Some(0.03)
    };
    let before = cache.stats();
    let same = (0..1_000).map(|_| prices.get_or_load(&1, loads.wrap(slow)));
    for answer in futures_util::future::join_all(same).await {
        assert_eq!(answer.unwrap(), Some(0.03));
    }
    assert_eq!(
        (loads.calls(), loads.max_concurrent(), loads.running()),
        (1, 1, 0)
    );
    assert_eq!(cache.stats().since(&before).loads, 1);

    let keys: Vec<u64> = (2..12).collect();
    let others = keys
        .iter()
        .map(|key| prices.get_or_load(key, loads.wrap(slow)));
    futures_util::future::join_all(others).await;
    assert_eq!(loads.calls(), 11);
    assert!(loads.max_concurrent() > 1, "{}", loads.max_concurrent());

    // A batch loader, counted once per batch.
    let batches = LoadCounter::new();
    let many =
        |keys: Vec<u64>| async move { keys.into_iter().map(|k| (k, 1.0)).collect::<Vec<_>>() };
    let found = prices.get_or_load_many(&[1, 20, 21], batches.wrap_many(many));
    assert_eq!(found.await.unwrap(), vec![Some(0.03), Some(1.0), Some(1.0)]);
    assert_eq!((batches.calls(), batches.running()), (1, 0));
}
