//! Redis Sentinel, on a local deployment (a primary, two replicas, three
//! sentinels): the handle finds the primary through the sentinels; after a
//! SIGKILL of the primary under traffic the same handle answers again once
//! a replica is promoted (the time it took is printed), writes the old
//! primary acknowledged to its replicas are readable, and a local tier
//! serves nothing from before the switch. The sentinels and the data nodes
//! may have different credentials.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_core::TypedCache;
use cache_tests::{Passwords, RedisSentinel, port_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_is_found_through_the_sentinels() {
    let deployment = RedisSentinel::start("sentinel_found").await;
    let cache = deployment.builder().build().await.unwrap();
    let names = cache.keyspace("name").typed::<u64, String>().unwrap();
    names.set(&1, &"ada".to_owned()).await.unwrap();
    assert_eq!(names.get(&1).await.unwrap().as_deref(), Some("ada"));
    // Written on the primary the deployment started with.
    let mut raw = deployment.nodes[0].raw().await;
    let stored: Option<String> = redis::cmd("GET")
        .arg(names.key(&1))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some("\"ada\""));
}

fn counters(cache: &cache_core::Cache) -> TypedCache<u64, u64> {
    let counters = cache.keyspace("count").ttl(Duration::from_secs(600));
    let counters = counters.local(1_000, Duration::from_secs(60));
    counters.typed::<u64, u64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_followed_to_the_promoted_replica() {
    let mut deployment = RedisSentinel::start("sentinel_failover").await;
    let cache = deployment.builder().build().await.unwrap();
    let values = counters(&cache);
    cache_tests::local_tier_live(|| values.local_is_live()).await;
    for key in 0..100 {
        values.set(&key, &key).await.unwrap();
    }
    assert_eq!(values.get(&7).await.unwrap(), Some(7), "now held locally");
    // Every write so far is on both replicas.
    let mut primary = deployment.nodes[0].raw().await;
    let started = Instant::now();
    loop {
        let mut wait = redis::cmd("WAIT");
        wait.arg(2).arg(200);
        if wait.query_async(&mut primary).await == Ok(2u64) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "replicas never caught up"
        );
    }

    // Traffic: a write and a read every millisecond, counting answers.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let traffic = {
        let (values, stop, ok, failed) = (values.clone(), stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            let mut round = 1_000u64;
            while !stop.load(Ordering::SeqCst) {
                round += 1;
                let wrote = values.set(&round, &round).await;
                let read = values.get(&(round % 100)).await;
                match (wrote, read) {
                    (Ok(()), Ok(_)) => ok.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let old = port_of(deployment.nodes[0].url());
    let killed = Instant::now();
    deployment.nodes[0].kill();
    let new = deployment.wait_for_promotion(old).await;
    let promoted = killed.elapsed();
    // The same handle answers again.
    let recovered = loop {
        if values.set(&5_000, &5_000).await.is_ok() {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(40),
            "never answered again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    stop.store(true, Ordering::SeqCst);
    traffic.await.unwrap();
    println!(
        "primary killed: replica on port {new} promoted after {promoted:?}, \
         handle writing again after {recovered:?} ({} calls answered, {} failed meanwhile)",
        ok.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst)
    );
    assert!(
        recovered < promoted + Duration::from_secs(3),
        "{recovered:?}"
    );
    for key in 0..100 {
        assert_eq!(
            values.get(&key).await.unwrap(),
            Some(key),
            "acknowledged write {key}"
        );
    }
    // Another client changes a key on the new primary: the local tier,
    // flushed at the switch and tracking the new primary, never serves the old value.
    let index = deployment.primary_index().await.unwrap();
    let mut raw = deployment.nodes[index].raw().await;
    let _: () = redis::cmd("SET")
        .arg(values.key(&7))
        .arg("77")
        .query_async(&mut raw)
        .await
        .unwrap();
    let started = Instant::now();
    while values.get(&7).await.unwrap() != Some(77) {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "stale local copy"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_and_data_nodes_have_their_own_credentials() {
    let passwords = Passwords {
        data: "data-pw-1",
        sentinel: "sentinel-pw-2",
    };
    let deployment = RedisSentinel::start_with_passwords("sentinel_auth", Some(passwords)).await;
    let cache = (deployment.builder())
        .data_node_credentials(Some("app"), passwords.data)
        .build()
        .await
        .unwrap();
    let names = cache.keyspace("name").typed::<u64, String>().unwrap();
    names.set(&1, &"ada".to_owned()).await.unwrap();
    assert_eq!(names.get(&1).await.unwrap().as_deref(), Some("ada"));
    // Without the data nodes' credentials (its default user may only PING):
    // a write is refused, and no password is shown.
    let anonymous = deployment.builder().build().await.unwrap();
    let names = anonymous.keyspace("name").typed::<u64, String>().unwrap();
    let refused = names.set(&2, &"bob".to_owned()).await.unwrap_err();
    let shown = format!("{refused} {refused:?}");
    assert!(
        !shown.contains(passwords.sentinel) && !shown.contains(passwords.data),
        "{shown}"
    );
}
