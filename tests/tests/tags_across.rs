//! Tags across handles (separate connections, as separate processes would
//! have) and across processes, on a spawned Redis and on the local cluster:
//! another handle's (and another process's) local tier stops serving the
//! entries of an invalidated tag within the coherence bound and keeps
//! serving the rest; reads racing invalidations never return
//! an entry written before one once it returned; a warm tagged read costs no
//! round trip for its tags; a flushed server's tag states count as lost; and
//! on a cluster of its own, a failover of the tags' master never brings an
//! invalidated entry back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_core::{Cache, TypedCache};
use cache_tests::{Env, RedisCluster, RedisServer};

cache_tests::redis_suite!(
    another_handle_stops_serving_a_tag_within_the_bound,
    another_process_stops_serving_a_tag_within_the_bound,
    reads_racing_invalidations_never_return_an_older_entry,
    a_warm_tagged_read_reads_no_tag_state,
);

/// How soon another handle must see a change (loopback), as in coherence.rs.
const BOUND: Duration = Duration::from_millis(100);

/// How far past the bound a busy machine may run.
const SLACK: Duration = Duration::from_millis(200);

async fn pages(cache: &Cache) -> TypedCache<String, u64> {
    let pages = cache
        .keyspace("page")
        .ttl(Duration::from_secs(60))
        .tagged()
        .local(1_000, Duration::from_secs(60))
        .typed::<String, u64>()
        .unwrap();
    cache_tests::local_tier_live(|| pages.local_is_live()).await;
    pages
}

async fn other_handle(env: &Env) -> Cache {
    let builder = env.another_handle().unwrap();
    builder
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap()
}

/// Reads `key` until the local tier answers it.
async fn kept(pages: &TypedCache<String, u64>, key: &str) {
    let started = Instant::now();
    loop {
        let before = pages.local_stats().unwrap().hits;
        assert!(pages.get(key).await.unwrap().is_some(), "{key} missing");
        if pages.local_stats().unwrap().hits > before {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{key} never kept"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn another_handle_stops_serving_a_tag_within_the_bound(env: Env) {
    let mine = pages(&env.cache).await;
    let theirs = pages(&other_handle(&env).await).await;
    for (key, tag) in [("a1", "tenant:a"), ("a2", "tenant:a"), ("b1", "tenant:b")] {
        mine.set_tagged(key, &1, &[tag]).await.unwrap();
        kept(&theirs, key).await;
    }
    env.cache.invalidate_tag("tenant:a").await.unwrap();
    let invalidated = Instant::now();
    for key in ["a1", "a2"] {
        while theirs.get(key).await.unwrap().is_some() {
            let after = invalidated.elapsed();
            assert!(after < BOUND + SLACK, "{key} still served {after:?} after");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    println!("seen after {:?}", invalidated.elapsed());
    // The untouched tag is still served by the local tier.
    let before = theirs.local_stats().unwrap().hits;
    assert_eq!(theirs.get("b1").await.unwrap(), Some(1));
    assert_eq!(theirs.local_stats().unwrap().hits, before + 1);
    assert!(theirs.local_stats().unwrap().invalidations >= 1);
}

async fn another_process_stops_serving_a_tag_within_the_bound(env: Env) {
    use tokio::io::AsyncBufReadExt;
    let pages = pages(&env.cache).await;
    pages.set_tagged("k", &1, &["tenant:a"]).await.unwrap();
    pages.set_tagged("other", &2, &["tenant:b"]).await.unwrap();
    let (kind, target) = match (&env.redis, env.cluster) {
        (Some(redis), _) => ("url", redis.url().to_owned()),
        (None, Some(cluster)) => ("nodes", cluster.urls().join(",")),
        (None, None) => panic!("a Redis suite has a server or a cluster"),
    };
    let namespace = env.cache.namespace().unwrap_or_default().to_owned();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tag-reader"))
        .args([kind, target.as_str(), namespace.as_str()])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut next = async || {
        let line = tokio::time::timeout(Duration::from_secs(15), lines.next_line()).await;
        line.unwrap().unwrap().unwrap_or_default()
    };
    assert_eq!(next().await, "ready");
    env.cache.invalidate_tag("tenant:a").await.unwrap();
    let invalidated = Instant::now();
    assert_eq!(next().await, "gone");
    let after = invalidated.elapsed();
    assert!(
        after < BOUND + SLACK,
        "the other process served it {after:?} after"
    );
    println!("the other process stopped serving it {after:?} after");
    assert_eq!(next().await, "other kept");
    assert!(child.wait().await.unwrap().success());
}

async fn reads_racing_invalidations_never_return_an_older_entry(env: Env) {
    let mine = pages(&env.cache).await;
    let theirs = pages(&other_handle(&env).await).await;
    // What each round wrote, and when its invalidation returned.
    let round = Arc::new(AtomicU64::new(0));
    let invalidated_at: Arc<std::sync::Mutex<Vec<Option<Instant>>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = |pages: TypedCache<String, u64>, slack: Duration| {
        let (round, invalidated_at, stop) = (round.clone(), invalidated_at.clone(), stop.clone());
        tokio::spawn(async move {
            let mut reads = 0_u64;
            while !stop.load(Ordering::SeqCst) {
                // A local hit never yields: let the writer run.
                tokio::task::yield_now().await;
                let began = Instant::now();
                let Some(seen) = pages.get("k").await.unwrap() else {
                    continue;
                };
                reads += 1;
                let done = invalidated_at
                    .lock()
                    .unwrap()
                    .get(seen as usize)
                    .copied()
                    .flatten();
                if let Some(done) = done {
                    assert!(
                        began <= done + slack,
                        "round {seen} served {:?} after its invalidation returned (now {})",
                        began - done,
                        round.load(Ordering::SeqCst)
                    );
                }
            }
            reads
        })
    };
    let readers = [
        reader(mine.clone(), Duration::ZERO),
        reader(theirs.clone(), BOUND + SLACK),
    ];
    for n in 0..1_000_u64 {
        round.store(n, Ordering::SeqCst);
        invalidated_at.lock().unwrap().push(None);
        let tag = format!("round:{}", n % 7);
        mine.set_tagged("k", &n, &[tag.as_str()]).await.unwrap();
        tokio::task::yield_now().await;
        env.cache.invalidate_tag(&tag).await.unwrap();
        let done = Instant::now();
        invalidated_at.lock().unwrap()[n as usize] = Some(done);
        assert_eq!(mine.get("k").await.unwrap(), None, "round {n}");
    }
    stop.store(true, Ordering::SeqCst);
    for reader in readers {
        assert!(reader.await.unwrap() > 0, "a reader never saw a value");
    }
}

async fn a_warm_tagged_read_reads_no_tag_state(env: Env) {
    // No local tier for values: every read is a GET; the tag states come
    // from the handle's state cache once it is warm.
    let pages = env
        .cache
        .keyspace("page")
        .ttl(Duration::from_secs(60))
        .tagged();
    let pages = pages.typed::<String, u64>().unwrap();
    pages.set_tagged("k", &1, &["a", "b"]).await.unwrap();
    // MGETs seen by the node holding the tag states.
    let states_node = env
        .cluster
        .map(|c| c.master_of(&cache_tests::tag_state_key(&env.cache, "a")));
    let mut redis = env.cache.redis_connection().unwrap();
    let mut mgets = async || -> u64 {
        let info: String = match (states_node, env.cluster) {
            (Some(port), Some(cluster)) => cluster.cli(port, &["INFO", "commandstats"]).unwrap(),
            _ => redis::cmd("INFO")
                .arg("commandstats")
                .query_async(&mut redis)
                .await
                .unwrap(),
        };
        let line = info.lines().find(|l| l.starts_with("cmdstat_mget:"));
        let calls = line.and_then(|l| l.split(['=', ',']).nth(1));
        calls.and_then(|c| c.parse().ok()).unwrap_or(0)
    };
    // Warm up: the tracking connection comes up and the states are kept.
    let started = Instant::now();
    loop {
        assert_eq!(pages.get("k").await.unwrap(), Some(1));
        let before = mgets().await;
        for _ in 0..20 {
            assert_eq!(pages.get("k").await.unwrap(), Some(1));
        }
        if mgets().await == before {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "tag states never kept"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.cache.invalidate_tag("b").await.unwrap();
    assert_eq!(pages.get("k").await.unwrap(), None);
}

/// A flushed server loses the tag states with the entries: an entry that
/// survives elsewhere (here: written back raw, as another node or a restore
/// would have it) reads as invalidated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_servers_tag_states_count_as_lost() {
    let redis = RedisServer::start("tags_flush");
    let cache = redis.cache().await;
    let pages = cache
        .keyspace("page")
        .tagged()
        .typed::<String, u64>()
        .unwrap();
    pages.set_tagged("k", &1, &["tenant:a"]).await.unwrap();
    let stored = cache.raw_get(&pages.key("k")).await.unwrap().unwrap();
    let mut raw = redis.raw().await;
    redis::cmd("FLUSHALL")
        .query_async::<()>(&mut raw)
        .await
        .unwrap();
    cache.raw_set(&pages.key("k"), &stored, None).await.unwrap();
    // The flush reaches the handle's state cache within the coherence bound.
    let flushed = Instant::now();
    while pages.get("k").await.unwrap().is_some() {
        assert!(flushed.elapsed() < BOUND + SLACK, "served after the flush");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    pages.set_tagged("k", &2, &["tenant:a"]).await.unwrap();
    assert_eq!(pages.get("k").await.unwrap(), Some(2));
}

/// The master holding the tag states dies: invalidated entries stay
/// invalidated on the new master (the states replicated, or were lost),
/// and entries written after the failover are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_of_the_tags_master_never_revalidates_an_entry() {
    let cluster = RedisCluster::start();
    let cache = cluster
        .cache("tags_failover", Duration::from_millis(500))
        .await;
    let pages = cache
        .keyspace("page")
        .tagged()
        .typed::<String, u64>()
        .unwrap();
    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    for key in &keys {
        pages.set_tagged(key, &1, &["tenant:a"]).await.unwrap();
    }
    pages.set_tagged("kept", &1, &["tenant:b"]).await.unwrap();
    cache.invalidate_tag("tenant:a").await.unwrap();
    let victim = cluster.master_of(&cache_tests::tag_state_key(&cache, "tenant:a"));
    cluster.kill(victim);
    let killed = Instant::now();
    let limit = cache_tests::NODE_TIMEOUT + Duration::from_secs(5);
    let wanted: Vec<&String> = keys.iter().collect();
    let mut answers = 0;
    while answers < 10 {
        assert!(
            killed.elapsed() < limit,
            "no answer within {limit:?} of the kill"
        );
        match pages.get_many(&wanted).await {
            Ok(got) => {
                assert!(
                    got.iter().all(Option::is_none),
                    "an invalidated entry came back: {got:?}"
                );
                answers += 1;
            }
            Err(err) => {
                println!("{:?} after the kill: {err}", killed.elapsed());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    // A write waits for the new master to take the tag states' slot.
    while pages.set_tagged("k0", &2, &["tenant:a"]).await.is_err() {
        assert!(
            killed.elapsed() < limit,
            "no write within {limit:?} of the kill"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pages.get("k0").await.unwrap(), Some(2));
    let kept = pages.get("kept").await.unwrap();
    assert!(kept.is_none() || kept == Some(1));
}
