//! Replica reads, on the local cluster and behind Sentinel: with
//! `read_from_replicas(true)`, a plain `get` is served by a replica (seen in
//! the replicas' `INFO commandstats`), while a keyspace with a local tier
//! reads its primary only.

use std::time::{Duration, Instant};

use cache_core::{Cache, TypedCache};
use cache_tests::{RedisCluster, RedisSentinel, port_of, unique_namespace};

/// `cmdstat_get` calls in an `INFO commandstats` answer.
fn gets_in(info: &str) -> u64 {
    let line = info.lines().find(|line| line.starts_with("cmdstat_get:"));
    let calls = line.and_then(|line| line.split("calls=").nth(1));
    let calls = calls.and_then(|rest| rest.split(',').next());
    calls
        .and_then(|calls| calls.parse().ok())
        .unwrap_or_default()
}

/// Writes keys 0..20 and reads them until each is there (on whichever node
/// answers), so that the replicas have them.
async fn written(values: &TypedCache<u64, u64>) {
    for key in 0..20 {
        values.set(&key, &key).await.unwrap();
    }
    let started = Instant::now();
    for key in 0..20 {
        while values.get(&key).await.unwrap() != Some(key) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "never replicated"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn plain_and_local(cache: &Cache) -> (TypedCache<u64, u64>, TypedCache<u64, u64>) {
    let plain = cache.keyspace("plain").typed::<u64, u64>().unwrap();
    let local = cache.keyspace("local").local(100, Duration::from_secs(60));
    let local = local.typed::<u64, u64>().unwrap();
    cache_tests::local_tier_live(|| local.local_is_live()).await;
    written(&plain).await;
    written(&local).await;
    (plain, local)
}

/// Reads `values` 100 times; returns how many GETs the replicas served meanwhile.
async fn replica_gets_of<F, Fut>(values: &TypedCache<u64, u64>, replica_gets: F) -> u64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let before = replica_gets().await;
    for round in 0..100u64 {
        assert_eq!(values.get(&(round % 20)).await.unwrap(), Some(round % 20));
    }
    replica_gets().await - before
}

/// Waits (up to 10 s) until every node's `CLUSTER SLOTS` lists a replica
/// for every range: Redis lists a replica only once it has replicated
/// something, and each node learns that by gossip, so the handle's slot map
/// (from whichever node it asks) then has them all.
async fn replicas_listed(cluster: &RedisCluster) {
    let started = Instant::now();
    for port in cluster.ports() {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let mut raw = client.get_multiplexed_async_connection().await.unwrap();
        loop {
            let ranges: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async(&mut raw)
                .await
                .unwrap();
            // [start, end, primary, replicas...]
            if !ranges.is_empty() && ranges.iter().all(|range| range.len() > 3) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "replicas never listed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_replicas_serve_plain_reads_only() {
    let cluster = RedisCluster::shared();
    // Something to replicate, so that every replica is listed.
    let writer = cluster
        .cache("replica_reads_warmup", Duration::from_secs(2))
        .await;
    let warm = writer.keyspace("warm").typed::<u64, u64>().unwrap();
    for key in 0..100 {
        warm.set(&key, &key).await.unwrap();
    }
    replicas_listed(cluster).await;
    let cache = Cache::builder()
        .cluster_nodes(cluster.urls())
        .namespace(unique_namespace("cluster_replica_reads"))
        .read_from_replicas(true)
        .build()
        .await
        .unwrap();
    let (plain, local) = plain_and_local(&cache).await;
    let masters = cluster.master_ports();
    let replicas: Vec<u16> = (cluster.ports().iter().copied())
        .filter(|port| !masters.contains(port))
        .collect();
    let replica_gets = || async {
        let each = replicas.iter().map(|port| {
            let info = cluster
                .cli(*port, &["INFO", "commandstats"])
                .unwrap_or_default();
            gets_in(&info)
        });
        each.sum::<u64>()
    };
    let served = replica_gets_of(&plain, replica_gets).await;
    assert!(served >= 100, "replicas served {served} of 100 plain reads");
    let served = replica_gets_of(&local, replica_gets).await;
    assert_eq!(served, 0, "a keyspace with a local tier read a replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_replicas_serve_plain_reads_only() {
    let deployment = RedisSentinel::start("sentinel_replica_reads").await;
    let cache = deployment
        .builder()
        .read_from_replicas(true)
        .build()
        .await
        .unwrap();
    let (plain, local) = plain_and_local(&cache).await;
    let primary = deployment.primary_port().await.unwrap();
    let replica_gets = || async {
        let mut total = 0;
        for node in deployment
            .nodes
            .iter()
            .filter(|node| port_of(node.url()) != primary)
        {
            let mut raw = node.raw().await;
            let info: String = redis::cmd("INFO")
                .arg("commandstats")
                .query_async(&mut raw)
                .await
                .unwrap();
            total += gets_in(&info);
        }
        total
    };
    let served = replica_gets_of(&plain, replica_gets).await;
    assert!(served >= 100, "replicas served {served} of 100 plain reads");
    let served = replica_gets_of(&local, replica_gets).await;
    assert_eq!(served, 0, "a keyspace with a local tier read a replica");
}
