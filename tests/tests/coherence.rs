//! The local tier kept coherent across handles (separate connections, as
//! separate processes would have) on a spawned Redis and on the local
//! cluster: writes, deletes and clears through another handle, and writes by
//! a plain redis-rs client, are seen within the bound; a lost invalidation
//! connection flushes the tier and comes back; a read racing writes never
//! keeps the older value.

use std::time::{Duration, Instant};

use cache_core::{Cache, TypedCache};
use cache_tests::Env;

cache_tests::redis_suite!(
    writes_through_another_handle_are_seen_within_the_bound,
    a_plain_redis_client_write_is_seen_within_the_bound,
    a_killed_invalidation_connection_flushes_the_tier_and_comes_back,
    reads_racing_writes_never_keep_the_older_value,
    only_keyspaces_with_a_local_tier_are_tracked,
);

/// How soon another handle's write must be seen (loopback).
const BOUND: Duration = Duration::from_millis(100);

async fn prices(cache: &Cache) -> TypedCache<String, u64> {
    let prices = cache
        .keyspace("price")
        .ttl(Duration::from_secs(60))
        .local(1_000, Duration::from_secs(60))
        .typed::<String, u64>()
        .unwrap();
    cache_tests::local_tier_live(|| prices.local_is_live()).await;
    prices
}

async fn other_handle(env: &Env) -> Cache {
    let builder = env.another_handle().unwrap();
    builder
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap()
}

/// Reads `key` through `prices` until it holds `want`; returns how long that
/// took, failing past `BOUND` (plus scheduling slack on a busy machine).
async fn seen_within(prices: &TypedCache<String, u64>, key: &str, want: Option<u64>) -> Duration {
    let started = Instant::now();
    loop {
        if prices.get(key).await.unwrap() == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < BOUND * 3,
            "{key}: still stale after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Reads `key` until the value is served by the local tier.
async fn kept(prices: &TypedCache<String, u64>, key: &str) {
    let started = Instant::now();
    loop {
        let before = prices.local_stats().unwrap().hits;
        prices.get(key).await.unwrap();
        if prices.local_stats().unwrap().hits > before {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{key} never kept"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn writes_through_another_handle_are_seen_within_the_bound(env: Env) {
    let mine = prices(&env.cache).await;
    let theirs = prices(&other_handle(&env).await).await;
    let mut slowest = Duration::ZERO;
    for round in 1..=20_u64 {
        theirs.set("gpt-4", &round).await.unwrap();
        kept(&mine, "gpt-4").await;
        theirs.set("gpt-4", &(round * 100)).await.unwrap();
        slowest = slowest.max(seen_within(&mine, "gpt-4", Some(round * 100)).await);
    }
    kept(&mine, "gpt-4").await;
    assert!(theirs.delete("gpt-4").await.unwrap());
    slowest = slowest.max(seen_within(&mine, "gpt-4", None).await);

    theirs.set("a", &1).await.unwrap();
    theirs.set("b", &2).await.unwrap();
    kept(&mine, "a").await;
    kept(&mine, "b").await;
    assert_eq!(theirs.clear().await.unwrap(), 2);
    slowest = slowest.max(seen_within(&mine, "a", None).await);
    slowest = slowest.max(seen_within(&mine, "b", None).await);
    println!("slowest invalidation seen after {slowest:?}");
    assert!(mine.local_stats().unwrap().invalidations > 20);
}

async fn a_plain_redis_client_write_is_seen_within_the_bound(env: Env) {
    let mine = prices(&env.cache).await;
    mine.set("gpt-4", &3).await.unwrap();
    kept(&mine, "gpt-4").await;
    // Not through this library: a raw SET on another connection.
    let other = other_handle(&env).await;
    let mut raw = other.redis_connection().unwrap();
    redis::cmd("SET")
        .arg(mine.key("gpt-4"))
        .arg("30")
        .query_async::<()>(&mut raw)
        .await
        .unwrap();
    seen_within(&mine, "gpt-4", Some(30)).await;
}

/// `CLIENT KILL`s the invalidation connections of `cache`'s namespace on
/// every primary; returns how many it killed.
async fn kill_invalidation_connections(env: &Env) -> usize {
    let name = format!(
        "name=cache-core-invalidations:{}:",
        env.cache.namespace().unwrap_or_default()
    );
    let lists: Vec<(Option<u16>, String)> = match (&env.redis, env.cluster) {
        (Some(redis), _) => {
            let client = redis::Client::open(redis.url()).unwrap();
            let mut connection = client.get_multiplexed_async_connection().await.unwrap();
            let list: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query_async(&mut connection)
                .await
                .unwrap();
            vec![(None, list)]
        }
        (None, Some(cluster)) => cluster
            .master_ports()
            .into_iter()
            .map(|port| (Some(port), cluster.cli(port, &["CLIENT", "LIST"]).unwrap()))
            .collect(),
        (None, None) => unreachable!("a Redis suite"),
    };
    let mut killed = 0;
    for (port, list) in lists {
        for line in list.lines().filter(|line| line.contains(&name)) {
            let id = line
                .split_whitespace()
                .find_map(|field| field.strip_prefix("id="))
                .unwrap();
            match (port, &env.redis, env.cluster) {
                (Some(port), _, Some(cluster)) => {
                    cluster.cli(port, &["CLIENT", "KILL", "ID", id]).unwrap();
                }
                (_, Some(redis), _) => {
                    let client = redis::Client::open(redis.url()).unwrap();
                    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
                    redis::cmd("CLIENT")
                        .arg("KILL")
                        .arg("ID")
                        .arg(id)
                        .query_async::<()>(&mut connection)
                        .await
                        .unwrap();
                }
                _ => unreachable!("a Redis suite"),
            }
            killed += 1;
        }
    }
    killed
}

async fn a_killed_invalidation_connection_flushes_the_tier_and_comes_back(env: Env) {
    let mine = prices(&env.cache).await;
    let theirs = prices(&other_handle(&env).await).await;
    theirs.set("gpt-4", &1).await.unwrap();
    kept(&mine, "gpt-4").await;
    assert!(kill_invalidation_connections(&env).await >= 1);

    // Flushed (and bypassed) as soon as the connection reports it is gone.
    let started = Instant::now();
    while mine.local_stats().unwrap().flushes_channel_down == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "no flush after the kill"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(mine.local_entries(), Some(0));
    // Reads are right meanwhile, and the tier comes back.
    theirs.set("gpt-4", &2).await.unwrap();
    assert_eq!(mine.get("gpt-4").await.unwrap(), Some(2));
    cache_tests::local_tier_live(|| mine.local_is_live()).await;
    kept(&mine, "gpt-4").await;
    theirs.set("gpt-4", &3).await.unwrap();
    seen_within(&mine, "gpt-4", Some(3)).await;
}

async fn reads_racing_writes_never_keep_the_older_value(env: Env) {
    race_writes_against_reads(&env, 1_000).await;
}

/// `rounds` of: readers on this handle race a write through this handle,
/// then one through the other handle; after each, no older value may be
/// served once the newer one was seen, and the read right after the write
/// through this handle must see it at once.
async fn race_writes_against_reads(env: &Env, rounds: u64) {
    let mine = prices(&env.cache).await;
    let theirs = prices(&other_handle(env).await).await;
    for round in 1..=rounds {
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let mine = mine.clone();
                tokio::spawn(async move {
                    for _ in 0..5 {
                        mine.get("k").await.unwrap();
                    }
                })
            })
            .collect();
        mine.set("k", &(round * 2)).await.unwrap();
        let got = mine.get("k").await.unwrap();
        assert_eq!(got, Some(round * 2), "round {round}");
        theirs.set("k", &(round * 2 + 1)).await.unwrap();
        for reader in readers {
            reader.await.unwrap();
        }
        seen_within(&mine, "k", Some(round * 2 + 1)).await;
        // And it stays: no older value was kept behind the invalidation.
        for _ in 0..3 {
            assert_eq!(
                mine.get("k").await.unwrap(),
                Some(round * 2 + 1),
                "round {round}"
            );
        }
    }
}

async fn only_keyspaces_with_a_local_tier_are_tracked(env: Env) {
    let mine = prices(&env.cache).await;
    let other = other_handle(&env).await;
    let untiered = other.keyspace("plain").typed::<String, u64>().unwrap();
    for i in 0..10 {
        untiered.set(&format!("k{i}"), &i).await.unwrap();
    }
    // A write in the tracked keyspace after them: once its invalidation is
    // in, the ten before it would have been too.
    let theirs = prices(&other).await;
    theirs.set("marker", &1).await.unwrap();
    let started = std::time::Instant::now();
    while mine.local_stats().unwrap().invalidations == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no invalidation"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        mine.local_stats().unwrap().invalidations,
        1,
        "plain keys are not tracked"
    );

    // A keyspace that gets a local tier later is tracked from then on.
    let names = env
        .cache
        .keyspace("name")
        .local(100, Duration::from_secs(60))
        .typed::<String, u64>()
        .unwrap();
    cache_tests::local_tier_live(|| names.local_is_live()).await;
    let their_names = other.keyspace("name").typed::<String, u64>().unwrap();
    their_names.set("ada", &1).await.unwrap();
    kept(&names, "ada").await;
    their_names.set("ada", &2).await.unwrap();
    seen_within(&names, "ada", Some(2)).await;
    // The first tier kept serving meanwhile.
    kept(&mine, "marker").await;
}
