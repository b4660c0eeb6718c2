//! Coalescing (group commit) on a real server: calls that queued behind a
//! round trip in flight go out as one batch, and each caller still gets its
//! own answer, error and timeout. The server is frozen (SIGSTOP) while as
//! many calls as a handle keeps in flight are out, so the others are sure to
//! queue behind them.

use std::time::{Duration, Instant};

use cache_core::{Cache, Error, TypedCache};
use cache_tests::{Env, RedisServer};

/// How long the server stays frozen while calls queue.
const QUEUEING: Duration = Duration::from_millis(150);

async fn handle(redis: &RedisServer, timeout: Duration, coalesce: bool) -> Cache {
    let built = Cache::builder()
        .url(redis.url())
        .namespace(redis.namespace())
        .timeout(timeout)
        .coalesce(coalesce)
        .build()
        .await;
    built.unwrap()
}

fn prices(cache: &Cache) -> TypedCache<String, u64> {
    cache.keyspace("price").typed::<String, u64>().unwrap()
}

/// How many GETs the server has run so far.
async fn gets_run(redis: &RedisServer) -> u64 {
    let mut raw = redis.raw().await;
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut raw)
        .await
        .unwrap();
    let line = stats.lines().find(|line| line.starts_with("cmdstat_get:"));
    let calls = line.and_then(|line| line.split("calls=").nth(1));
    let calls = calls.and_then(|rest| rest.split(',').next());
    calls.map_or(0, |calls| calls.parse().unwrap())
}

/// Round trips a handle keeps in flight before calls queue (see
/// `CacheBuilder::coalesce`).
const IN_FLIGHT: u64 = 8;

/// Freezes the server with [`IN_FLIGHT`] reads of `key` in flight: calls
/// made until [`thaw`] queue behind them. The handle answers the first read's
/// result once all have the same.
async fn freeze_behind(
    redis: &RedisServer,
    prices: &TypedCache<String, u64>,
    key: &'static str,
) -> tokio::task::JoinHandle<cache_core::Result<Option<u64>>> {
    redis.freeze();
    let reads: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let prices = prices.clone();
            tokio::spawn(async move { prices.get(key).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    tokio::spawn(async move {
        let mut answers = Vec::new();
        for read in reads {
            answers.push(read.await.unwrap());
        }
        let first = answers.remove(0);
        for other in &answers {
            assert_eq!(
                format!("{other:?}"),
                format!("{first:?}"),
                "reads in flight"
            );
        }
        first
    })
}

/// Gives the calls just made time to queue, then thaws the server.
async fn thaw(redis: &RedisServer) {
    tokio::time::sleep(QUEUEING).await;
    redis.resume();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_type_or_undecodable_key_fails_only_its_own_caller() {
    let redis = RedisServer::start("coalesce_errors");
    let cache = handle(&redis, Duration::from_secs(5), true).await;
    let prices = prices(&cache);
    for i in 0..40_u64 {
        prices.set(&format!("m{i}"), &i).await.unwrap();
    }
    // One key holds a list, one holds bytes that are no u64.
    let mut raw = redis.raw().await;
    let list_key = format!("{}:price:v1:m7", redis.namespace());
    let _: () = redis::cmd("DEL")
        .arg(&list_key)
        .query_async(&mut raw)
        .await
        .unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg(&list_key)
        .arg("x")
        .query_async(&mut raw)
        .await
        .unwrap();
    let junk_key = format!("{}:price:v1:m9", redis.namespace());
    let _: () = redis::cmd("SET")
        .arg(&junk_key)
        .arg("not json")
        .query_async(&mut raw)
        .await
        .unwrap();

    let in_flight = freeze_behind(&redis, &prices, "m0").await;
    let calls: Vec<_> = (1..40_u64)
        .map(|i| {
            let prices = prices.clone();
            tokio::spawn(async move { prices.get(&format!("m{i}")).await })
        })
        .collect();
    thaw(&redis).await;
    assert_eq!(in_flight.await.unwrap().unwrap(), Some(0));
    for (i, call) in (1..40_u64).zip(calls) {
        match (i, call.await.unwrap()) {
            (7, Err(Error::WrongType { key, .. })) => assert!(key.ends_with(":m7"), "{key}"),
            (9, Err(Error::Decode { key, .. })) => assert!(key.ends_with(":m9"), "{key}"),
            (7 | 9, other) => panic!("m{i}: expected its own error, got {other:?}"),
            (i, answer) => assert_eq!(answer.unwrap(), Some(i), "m{i}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_of_one_key_share_one_get_and_writes_keep_their_order() {
    let redis = RedisServer::start("coalesce_shared_reads");
    let cache = handle(&redis, Duration::from_secs(5), true).await;
    let prices = prices(&cache);
    prices.set("gpt-4", &30).await.unwrap();
    prices.set("other", &1).await.unwrap();
    let before = gets_run(&redis).await;

    let in_flight = freeze_behind(&redis, &prices, "other").await;
    let readers: Vec<_> = (0..50)
        .map(|_| {
            let prices = prices.clone();
            tokio::spawn(async move { prices.get("gpt-4").await.unwrap() })
        })
        .collect();
    thaw(&redis).await;
    assert_eq!(in_flight.await.unwrap().unwrap(), Some(1));
    for reader in readers {
        assert_eq!(reader.await.unwrap(), Some(30));
    }
    // One GET for each call in flight, one for the fifty that queued.
    assert_eq!(gets_run(&redis).await - before, IN_FLIGHT + 1);

    // A write and a read of one key queued in that order: the read sees it.
    let in_flight = freeze_behind(&redis, &prices, "other").await;
    let writer = {
        let prices = prices.clone();
        tokio::spawn(async move { prices.set("gpt-4", &60).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let reader = {
        let prices = prices.clone();
        tokio::spawn(async move { prices.get("gpt-4").await })
    };
    thaw(&redis).await;
    in_flight.await.unwrap().unwrap();
    writer.await.unwrap().unwrap();
    assert_eq!(reader.await.unwrap().unwrap(), Some(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_queued_caller_times_out_on_its_own_and_a_write_given_up_is_not_sent() {
    let redis = RedisServer::start("coalesce_timeouts");
    let timeout = Duration::from_millis(300);
    let cache = handle(&redis, timeout, true).await;
    let prices = prices(&cache);
    prices.set("kept", &1).await.unwrap();

    let started = Instant::now();
    let first = freeze_behind(&redis, &prices, "kept").await;
    // Queued: a read, and a write whose caller gives up before it is sent.
    let reader = {
        let prices = prices.clone();
        tokio::spawn(async move { prices.get("queued").await })
    };
    let abandoned = {
        let prices = prices.clone();
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_millis(30), prices.set("abandoned", &7)).await
        })
    };
    assert!(abandoned.await.unwrap().is_err(), "the write gave up");
    match first.await.unwrap() {
        Err(Error::Timeout { key, .. }) => assert!(key.unwrap().ends_with(":kept")),
        other => panic!("expected the first call's timeout, got {other:?}"),
    }
    match reader.await.unwrap() {
        Err(Error::Timeout { key, .. }) => assert!(key.unwrap().ends_with(":queued")),
        other => panic!("expected the queued call's own timeout, got {other:?}"),
    }
    let waited = started.elapsed();
    assert!(waited < timeout + Duration::from_millis(400), "{waited:?}");
    redis.resume();

    // The queue recovers, and the write given up never reached the server.
    assert_eq!(prices.get("kept").await.unwrap(), Some(1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(prices.get("abandoned").await.unwrap(), None);
    // Each call that timed out counted once: not again when the batch that
    // still carried the queued read failed or came back after it left.
    tokio::time::sleep(timeout).await;
    assert_eq!(cache.stats().timeouts, IN_FLIGHT + 1, "{:?}", cache.stats());
}

/// Many tasks reading and writing keys of many slots at once: every batch is
/// split per slot, and each caller gets its own value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_on_a_cluster_split_by_slot_and_answer_each_caller() {
    let env = Env::cluster("coalesce_cluster").await;
    let prices = prices(&env.cache);
    let tasks: Vec<_> = (0..64_u64)
        .map(|task| {
            let prices = prices.clone();
            tokio::spawn(async move {
                for round in 0..20_u64 {
                    let key = format!("t{task}-{}", round % 5);
                    prices.set(&key, &(task * 1000 + round)).await.unwrap();
                    assert_eq!(prices.get(&key).await.unwrap(), Some(task * 1000 + round));
                    if round % 7 == 0 {
                        assert!(prices.delete(&key).await.unwrap());
                        assert_eq!(prices.get(&key).await.unwrap(), None);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// The same work through a handle with coalescing off gives the same
/// answers: the switch changes how calls travel, not what they do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_off_sends_each_call_alone() {
    let redis = RedisServer::start("coalesce_off");
    let cache = handle(&redis, Duration::from_secs(5), false).await;
    let prices = prices(&cache);
    prices.set("gpt-4", &30).await.unwrap();
    let before = gets_run(&redis).await;
    let readers: Vec<_> = (0..20)
        .map(|_| {
            let prices = prices.clone();
            tokio::spawn(async move { prices.get("gpt-4").await.unwrap() })
        })
        .collect();
    for reader in readers {
        assert_eq!(reader.await.unwrap(), Some(30));
    }
    assert_eq!(gets_run(&redis).await - before, 20);
}
