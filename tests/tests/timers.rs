//! A frozen store is reported as a timeout, every time: the kind of an error
//! follows from what happened (nothing answered within the handle's timeout),
//! never from which of two timers (the handle's or redis-rs' own) fired first.
//! Building runs 20 times, the calls 5, on one server and on a cluster of its own.

use std::time::{Duration, Instant};

use cache_core::{Cache, CacheBuilder, Error};
use cache_tests::{RedisCluster, RedisServer};

/// The handle's timeout in these tests.
const TIMEOUT: Duration = Duration::from_millis(300);

/// How far past its timeout a call may return (scheduling on a busy machine).
const MARGIN: Duration = Duration::from_millis(700);

/// Builds per test: the race lost about 2 times in 3.
const ROUNDS: usize = 20;

/// Rounds of calls through a lazy handle.
const CALL_ROUNDS: usize = 5;

/// Asserts that `result` is a timeout that came within one timeout.
fn a_timeout<T: std::fmt::Debug>(what: &str, started: Instant, result: Result<T, Error>) {
    let took = started.elapsed();
    match result {
        Err(err) => assert!(err.is_timeout(), "{what}: {err:?}"),
        Ok(value) => panic!("{what}: answered {value:?} from a frozen store"),
    }
    assert!(took <= TIMEOUT + MARGIN, "{what} took {took:?}");
}

/// Builds handles on the frozen store, eagerly and lazily, and runs calls
/// through the lazy one (its first use connects).
async fn everything_times_out(builder: impl Fn() -> CacheBuilder) {
    for round in 0..ROUNDS {
        let started = Instant::now();
        let built = builder().timeout(TIMEOUT).build().await;
        a_timeout(&format!("build, round {round}"), started, built);
    }
    for round in 0..CALL_ROUNDS {
        let lazy = builder().timeout(TIMEOUT).lazy_connect(true).build().await;
        let lazy = lazy.unwrap_or_else(|err| panic!("a lazy build does not connect: {err}"));
        let prices = lazy.keyspace("price").typed::<String, u64>().unwrap();
        let started = Instant::now();
        a_timeout(
            &format!("get, round {round}"),
            started,
            prices.get("a").await,
        );
        let started = Instant::now();
        a_timeout(
            &format!("set, round {round}"),
            started,
            prices.set("a", &1).await,
        );
        let started = Instant::now();
        let incr = prices.incr("n", 1).await;
        a_timeout(&format!("incr, round {round}"), started, incr);
        let started = Instant::now();
        a_timeout(
            &format!("clear, round {round}"),
            started,
            prices.clear().await,
        );
    }
    // A keyspace with a local tier: its invalidation connection cannot be
    // set up either, and calls still time out within one timeout.
    let lazy = builder().timeout(TIMEOUT).lazy_connect(true).build().await;
    let lazy = lazy.unwrap_or_else(|err| panic!("a lazy build does not connect: {err}"));
    let tiered = lazy.keyspace("tiered").local(100, Duration::from_secs(5));
    let tiered = tiered.typed::<String, u64>();
    let tiered = tiered.unwrap_or_else(|err| panic!("local tier: {err}"));
    for round in 0..CALL_ROUNDS {
        let started = Instant::now();
        a_timeout(
            &format!("tiered get, round {round}"),
            started,
            tiered.get("a").await,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_is_a_timeout_whichever_timer_fires_first() {
    let redis = RedisServer::start("frozen-server");
    redis.freeze();
    let url = redis.url().to_owned();
    everything_times_out(|| Cache::builder().url(url.clone())).await;
    redis.resume();
    let cache = Cache::builder().url(redis.url()).timeout(TIMEOUT).build();
    assert!(cache.await.is_ok(), "the thawed server is reached again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_cluster_is_a_timeout_whichever_timer_fires_first() {
    let cluster = RedisCluster::start();
    for &port in cluster.ports() {
        cluster.freeze(port);
    }
    let nodes = cluster.urls();
    everything_times_out(|| Cache::builder().cluster_nodes(nodes.clone())).await;
    for &port in cluster.ports() {
        cluster.resume(port);
    }
    let cache = Cache::builder()
        .cluster_nodes(cluster.urls())
        .timeout(Duration::from_secs(2));
    assert!(
        cache.build().await.is_ok(),
        "the thawed cluster is reached again"
    );
}
