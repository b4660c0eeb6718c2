//! `clear()` of a keyspace: it removes that keyspace's keys (SCAN with an
//! escaped pattern and UNLINK in batches) and nothing else, and readers are
//! not blocked meanwhile. On the memory backend, a spawned redis-server and
//! the local cluster, the last two with coalescing on and off.

use std::time::{Duration, Instant};

use cache_core as cache;
use cache_tests::Env;

cache_tests::backend_suite!(
    coalesce_off_too;
    clear_removes_the_keyspace_and_nothing_else,
    clearing_many_keys_does_not_block_readers,
);

async fn clear_removes_the_keyspace_and_nothing_else(env: Env) {
    let policy = cache::LoadPolicy::DEFAULT.negative_ttl(Duration::from_secs(60));
    let space = |prefix: &str, version: u32| env.cache.keyspace(prefix).version(version);
    let prices = space("price", 1)
        .load_policy(policy)
        .typed::<String, f64>()
        .unwrap();
    let similar = space("prices", 1).typed::<String, f64>().unwrap();
    let next_version = space("price", 2).typed::<String, f64>().unwrap();
    for i in 0..50 {
        prices.set(&format!("m{i}"), &f64::from(i)).await.unwrap();
    }
    prices
        .get_or_load("missing", || async { None })
        .await
        .unwrap();
    similar.set("m1", &1.5).await.unwrap();
    next_version.set("m1", &2.5).await.unwrap();
    let flags = env.cache.keyspace("price-flags").flags::<str>().unwrap();
    flags.raise_for("x", Duration::from_secs(60)).await.unwrap();

    // 50 entries and one cached "absent" answer.
    assert_eq!(prices.clear().await.unwrap(), 51);
    for i in 0..50 {
        assert_eq!(prices.get(&format!("m{i}")).await.unwrap(), None);
    }
    // The cached "absent" went too: the loader runs again.
    let loaded = prices
        .get_or_load("missing", || async { Some(9.0) })
        .await
        .unwrap();
    assert_eq!(loaded, Some(9.0));
    assert_eq!(similar.get("m1").await.unwrap(), Some(1.5));
    assert_eq!(next_version.get("m1").await.unwrap(), Some(2.5));
    assert!(flags.is_raised("x").await.unwrap());
    // Another namespace on the same store stays.
    if let Some(builder) = env.another_handle() {
        let other = builder.namespace("other-ns").build().await.unwrap();
        let theirs = other.keyspace("price").typed::<String, f64>().unwrap();
        theirs.set("m1", &3.5).await.unwrap();
        prices.clear().await.unwrap();
        assert_eq!(theirs.get("m1").await.unwrap(), Some(3.5));
        theirs.clear().await.unwrap();
    }
    assert_eq!(flags.clear().await.unwrap(), 1);
    assert!(!flags.is_raised("x").await.unwrap());
}

/// 100,000 keys go while another task keeps reading: every read answers
/// within the timeout, because clear works in small batches.
async fn clearing_many_keys_does_not_block_readers(env: Env) {
    let bulk = env.cache.keyspace("bulk").typed::<u32, u32>().unwrap();
    let total = 100_000_u32;
    let keys: Vec<u32> = (0..total).collect();
    for chunk in keys.chunks(2_000) {
        let entries: Vec<(&u32, &u32)> = chunk.iter().map(|k| (k, k)).collect();
        bulk.set_many(&entries).await.unwrap();
    }
    let probe = env.cache.keyspace("probe").typed::<u32, u32>().unwrap();
    probe.set(&1, &1).await.unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let done = std::sync::Arc::clone(&done);
        tokio::spawn(async move {
            let mut reads = 0_u64;
            let mut slowest = Duration::ZERO;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let started = Instant::now();
                assert_eq!(probe.get(&1).await.unwrap(), Some(1));
                slowest = slowest.max(started.elapsed());
                reads += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (reads, slowest)
        })
    };
    let removed = bulk.clear().await.unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (reads, slowest) = reader.await.unwrap();
    assert_eq!(removed, u64::from(total));
    assert!(reads > 0);
    assert!(
        slowest < Duration::from_secs(2),
        "a read took {slowest:?} during the clear"
    );
    assert_eq!(bulk.get(&7).await.unwrap(), None);
}
