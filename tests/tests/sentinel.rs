//! Redis Sentinel, on local deployments (a primary, two replicas, three
//! sentinels): the handle finds the primary through the sentinels; after a
//! planned failover it writes to the new primary within a second of the
//! sentinels' announcement (so nothing it acknowledged later is lost when
//! the old primary is demoted and resynced); after a SIGKILL of the primary
//! under traffic every failed call is a connection error or a timeout, the
//! same handle answers again within a second of the promotion, writes the
//! old primary acknowledged to its replicas are readable, and a local tier
//! serves nothing from before the switch. Each with and without a local
//! tier. The sentinels and the data nodes may have different credentials.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache_core::TypedCache;
use cache_tests::{Passwords, RedisSentinel, port_of};

/// How soon after the sentinels announce a new primary the handle uses it
/// (the documented bound: the periodic check's interval; the announcement
/// itself moves it within a round trip).
const FOLLOWS_WITHIN: Duration = Duration::from_secs(1);

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_failover_is_followed_at_the_announcement() {
    planned_failover("sentinel_planned", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_failover_is_followed_at_the_announcement_with_a_local_tier() {
    planned_failover("sentinel_planned_local", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_followed_to_the_promoted_replica() {
    killed_primary("sentinel_failover", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_followed_to_the_promoted_replica_with_a_local_tier() {
    killed_primary("sentinel_failover_local", true).await;
}

/// The keyspace the failover tests write, with or without a local tier.
async fn counters(cache: &cache_core::Cache, local: bool) -> TypedCache<u64, u64> {
    let mut counters = cache.keyspace("count").ttl(Duration::from_secs(600));
    if local {
        counters = counters.local(1_000, Duration::from_secs(60));
    }
    let counters = counters.typed::<u64, u64>().unwrap();
    if local {
        cache_tests::local_tier_live(|| counters.local_is_live()).await;
    }
    counters
}

/// Writes of key `n` = `n` every millisecond (and, with `reads`, a read of
/// one of the first 100 keys), recording when each write was acknowledged
/// and every failure that is neither a connection error nor a timeout.
struct Traffic {
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicU64>,
    wrong_kind: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<Vec<(u64, Instant)>>,
}

impl Traffic {
    fn start(values: &TypedCache<u64, u64>, reads: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicU64::new(0));
        let wrong_kind = Arc::new(Mutex::new(Vec::new()));
        let (values, stopped) = (values.clone(), Arc::clone(&stop));
        let (failures, wrong) = (Arc::clone(&failed), Arc::clone(&wrong_kind));
        let task = tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut n = 1_000u64;
            while !stopped.load(Ordering::SeqCst) {
                n += 1;
                let mut outcomes = vec![values.set(&n, &n).await.map(|()| true)];
                if reads {
                    outcomes.push(values.get(&(n % 100)).await.map(|_| false));
                }
                for outcome in outcomes {
                    match outcome {
                        Ok(true) => acknowledged.push((n, Instant::now())),
                        Ok(false) => {}
                        Err(err) if err.is_connection() || err.is_timeout() => {
                            failures.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(err) => wrong.lock().unwrap().push(format!("{err:?}")),
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            acknowledged
        });
        Traffic {
            stop,
            failed,
            wrong_kind,
            task,
        }
    }

    /// Stops it: the acknowledged writes, and how many calls failed.
    async fn stop(self) -> (Vec<(u64, Instant)>, u64) {
        self.stop.store(true, Ordering::SeqCst);
        let acknowledged = self.task.await.unwrap();
        let wrong = self.wrong_kind.lock().unwrap().clone();
        assert!(
            wrong.is_empty(),
            "failures that are neither connection errors nor timeouts: {wrong:?}"
        );
        (acknowledged, self.failed.load(Ordering::SeqCst))
    }
}

/// A planned failover under traffic: once the demoted primary has resynced
/// from the new one, every write acknowledged later than `FOLLOWS_WITHIN`
/// after the announcement is on the new primary.
async fn planned_failover(test: &str, local: bool) {
    let deployment = RedisSentinel::start(test).await;
    let cache = deployment.builder().build().await.unwrap();
    let values = counters(&cache, local).await;
    let traffic = Traffic::start(&values, false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let old = port_of(deployment.nodes[0].url());
    deployment.fail_over().await;
    let new = deployment.wait_for_switch(old).await;
    let announced = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (acknowledged, failed) = traffic.stop().await;
    deployment.wait_until_replica_of(0, new).await;

    let index = deployment.primary_index().await.unwrap();
    let mut primary = deployment.nodes[index].raw().await;
    // Lost: after the bound; before the announcement; after it, within the bound.
    let mut lost = (Vec::new(), 0, Duration::ZERO);
    for (n, at) in &acknowledged {
        let stored: Option<String> = redis::cmd("GET")
            .arg(values.key(n))
            .query_async(&mut primary)
            .await
            .unwrap();
        if stored != Some(n.to_string()) {
            match at.checked_duration_since(announced) {
                Some(after) if after > FOLLOWS_WITHIN => lost.0.push((*n, after)),
                Some(after) => lost.2 = lost.2.max(after),
                None => lost.1 += 1,
            }
        }
    }
    println!(
        "planned failover to port {new}: {} writes acknowledged, {failed} failed; lost: {} \
         acknowledged before the announcement, the last {:?} after it",
        acknowledged.len(),
        lost.1,
        lost.2
    );
    assert!(
        lost.0.is_empty(),
        "writes acknowledged after the handle should have moved were lost: {:?}",
        &lost.0[..lost.0.len().min(10)]
    );
    assert!(acknowledged.len() > 1_000, "{} writes", acknowledged.len());
}

/// Waits until the primary replicated every write so far to both replicas.
async fn replicated(deployment: &RedisSentinel) {
    let mut primary = deployment.nodes[0].raw().await;
    let started = Instant::now();
    loop {
        let mut wait = redis::cmd("WAIT");
        wait.arg(2).arg(200);
        if wait.query_async(&mut primary).await == Ok(2u64) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "replicas never caught up"
        );
    }
}

/// SIGKILL of the primary under traffic: only connection errors and
/// timeouts meanwhile, the same handle writing again within
/// `FOLLOWS_WITHIN` of the promotion, replicated writes readable.
async fn killed_primary(test: &str, local: bool) {
    let mut deployment = RedisSentinel::start(test).await;
    let cache = deployment.builder().build().await.unwrap();
    let values = counters(&cache, local).await;
    for key in 0..100 {
        values.set(&key, &key).await.unwrap();
    }
    if local {
        assert_eq!(values.get(&7).await.unwrap(), Some(7), "now held locally");
    }
    replicated(&deployment).await;

    let traffic = Traffic::start(&values, true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let old = port_of(deployment.nodes[0].url());
    let killed = Instant::now();
    deployment.nodes[0].kill();
    let new = deployment.wait_for_switch(old).await;
    let promoted = killed.elapsed();
    let recovered = loop {
        if values.set(&5_000, &5_000).await.is_ok() {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(40),
            "never answered again"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let (acknowledged, failed) = traffic.stop().await;
    println!(
        "primary killed: port {new} announced after {promoted:?}, handle writing again after \
         {recovered:?} ({} writes acknowledged, {failed} calls failed meanwhile)",
        acknowledged.len(),
    );
    assert!(
        recovered < promoted + FOLLOWS_WITHIN,
        "{recovered:?} after the kill, {promoted:?} after the announcement"
    );
    for key in 0..100 {
        assert_eq!(
            values.get(&key).await.unwrap(),
            Some(key),
            "acknowledged write {key}"
        );
    }
    if local {
        no_stale_local_copy(&deployment, &values).await;
    }
}

/// Another client changes a key on the new primary: the local tier, flushed
/// at the switch and tracking the new primary, never serves the old value.
async fn no_stale_local_copy(deployment: &RedisSentinel, values: &TypedCache<u64, u64>) {
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
