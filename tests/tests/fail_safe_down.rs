//! Fail-safe with Redis down: a keyspace with a local tier answers from the
//! tier's last copy of a key, past its local TTL and within the window,
//! without calling the loader; a key it never read is loaded, as fail-open
//! does. On a killed server, and on a cluster of its own whose master of the
//! key is frozen (SIGSTOP).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_core::{Cache, Freshness, LoadPolicy, StaleReason, TypedCache};
use cache_tests::{RedisCluster, RedisServer};

/// The handle's timeout: a frozen node answers nothing within it.
const TIMEOUT: Duration = Duration::from_millis(300);

fn prices(cache: &Cache) -> TypedCache<String, u64> {
    let policy = LoadPolicy::DEFAULT.fail_safe(Duration::from_secs(60));
    (cache.keyspace("price").ttl(Duration::from_secs(60)))
        .local(100, Duration::from_millis(200))
        .load_policy(policy)
        .typed::<String, u64>()
        .unwrap()
}

/// Writes and reads `gpt-4` so that the local tier keeps it.
async fn kept_locally(prices: &TypedCache<String, u64>) {
    cache_tests::local_tier_live(|| prices.local_is_live()).await;
    prices.set("gpt-4", &30).await.unwrap();
    // The write's own invalidation comes back first; then a read is kept.
    let started = Instant::now();
    while prices.local_stats().unwrap().invalidations < 1 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no invalidation"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(prices.get("gpt-4").await.unwrap(), Some(30));
    assert_eq!(prices.local_entries(), Some(1), "kept locally");
}

/// With Redis gone (and the local TTL over), the last copy answers.
async fn the_last_copy_answers(cache: &Cache, prices: &TypedCache<String, u64>, other_key: &str) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let loads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&loads);
    let down = prices.get_or_load_detailed("gpt-4", move || async move {
        counted.fetch_add(1, Ordering::SeqCst);
        Some(99)
    });
    let down = down.await.unwrap();
    assert_eq!(down.value, Some(30));
    assert_eq!(down.freshness, Freshness::Stale(StaleReason::RedisDown));
    assert_eq!(
        loads.load(Ordering::SeqCst),
        0,
        "no load while Redis is down"
    );
    assert_eq!(cache.stats().stale_redis_down, 1);
    let other = prices.get_or_load_detailed(other_key, || async { Some(5) });
    let other = other.await.unwrap();
    assert_eq!((other.value, other.freshness), (Some(5), Freshness::Fresh));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_is_answered_by_the_last_copy() {
    let mut redis = RedisServer::start("fail_safe_redis_down");
    let cache = Cache::builder()
        .url(redis.url())
        .namespace(redis.namespace())
        .timeout(TIMEOUT)
        .build()
        .await
        .unwrap();
    let prices = prices(&cache);
    kept_locally(&prices).await;
    redis.kill();
    the_last_copy_answers(&cache, &prices, "claude").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_cluster_master_is_answered_by_the_last_copy() {
    let cluster = RedisCluster::start();
    let cache = cluster.cache("fail_safe_cluster_down", TIMEOUT).await;
    let prices = prices(&cache);
    kept_locally(&prices).await;
    let master = cluster.master_of(&prices.key("gpt-4"));
    // Another key on the same master, so that its load also finds Redis down.
    let other = (0..1_000)
        .map(|i| format!("model-{i}"))
        .find(|key| cluster.master_of(&prices.key(key)) == master)
        .unwrap();
    cluster.freeze(master);
    the_last_copy_answers(&cache, &prices, &other).await;
    cluster.resume(master);
}
