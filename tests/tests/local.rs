//! The local in-process tier, on every backend: hits without a round trip,
//! writes through the handle drop local copies, capacity bounded. Coherence
//! across handles and processes is tested in `coherence.rs`.

use std::time::{Duration, Instant};

use cache_core::TypedCache;
use cache_tests::Env;

cache_tests::backend_suite!(
    repeated_reads_are_served_locally,
    writes_through_the_handle_keep_the_local_copy_current,
    raw_writes_through_the_handle_drop_the_local_copy,
    the_local_tier_stays_within_its_capacity,
    batch_reads_and_loads_use_the_local_tier,
    bad_local_settings_are_refused,
    a_local_copy_never_outlives_its_backend_ttl,
    shared_reads_hand_out_the_kept_value,
);

fn names(env: &Env, local_ttl: Duration) -> TypedCache<String, String> {
    env.cache
        .keyspace("name")
        .ttl(Duration::from_secs(60))
        .local(100, local_ttl)
        .typed::<String, String>()
        .unwrap()
}

/// On Redis, waits until the tier has received `writes` invalidations: the
/// handle's own writes come back as invalidations too, and one arriving after
/// a read would drop what that read kept.
async fn settled(env: &Env, names: &TypedCache<String, String>, writes: u64) {
    if env.redis.is_none() && env.cluster.is_none() {
        return;
    }
    let started = Instant::now();
    while names.local_stats().unwrap().invalidations < writes {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "invalidations never came"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the local tier serves (on Redis, once its invalidation
/// connection is up).
async fn live(names: TypedCache<String, String>) -> TypedCache<String, String> {
    cache_tests::local_tier_live(|| names.local_is_live()).await;
    names
}

async fn repeated_reads_are_served_locally(env: Env) {
    let names = live(names(&env, Duration::from_secs(5))).await;
    env.write_raw(&names.key("a"), b"\"ada\"").await;
    settled(&env, &names, 1).await;
    for _ in 0..10 {
        assert_eq!(names.get("a").await.unwrap().as_deref(), Some("ada"));
    }
    let stats = env.cache.stats();
    assert_eq!(stats.local_hits, 9, "the first read fills the local tier");
    assert_eq!(stats.hits, 10);
}

async fn writes_through_the_handle_keep_the_local_copy_current(env: Env) {
    let names = live(names(&env, Duration::from_secs(5))).await;
    names.set("a", &"one".to_owned()).await.unwrap();
    assert_eq!(names.get("a").await.unwrap().as_deref(), Some("one"));
    names.set("a", &"two".to_owned()).await.unwrap();
    assert_eq!(names.get("a").await.unwrap().as_deref(), Some("two"));
    assert!(names.delete("a").await.unwrap());
    assert_eq!(names.get("a").await.unwrap(), None);

    // Another view of the same keyspace on this handle shares the local tier.
    let other = names.clone();
    names.set("b", &"x".to_owned()).await.unwrap();
    assert_eq!(other.get("b").await.unwrap().as_deref(), Some("x"));
    let counters = env
        .cache
        .keyspace("name")
        .local(100, Duration::from_secs(5))
        .typed::<String, i64>()
        .unwrap();
    counters.incr("n", 1).await.unwrap();
    assert_eq!(counters.get("n").await.unwrap(), Some(1));
    counters.incr("n", 1).await.unwrap();
    assert_eq!(
        counters.get("n").await.unwrap(),
        Some(2),
        "incr drops the local copy"
    );
}

async fn raw_writes_through_the_handle_drop_the_local_copy(env: Env) {
    let names = live(names(&env, Duration::from_secs(60))).await;
    names.set("a", &"mine".to_owned()).await.unwrap();
    settled(&env, &names, 1).await;
    assert_eq!(names.get("a").await.unwrap().as_deref(), Some("mine"));
    assert_eq!(names.local_entries(), Some(1));
    env.write_raw(&names.key("a"), b"\"raw\"").await;
    assert_eq!(names.get("a").await.unwrap().as_deref(), Some("raw"));
}

async fn the_local_tier_stays_within_its_capacity(env: Env) {
    let names = live(names(&env, Duration::from_secs(60))).await;
    for i in 0..1_000 {
        names.set(&format!("k{i}"), &format!("v{i}")).await.unwrap();
        names.get(&format!("k{i}")).await.unwrap();
    }
    let stats = names.local_stats().unwrap();
    assert_eq!(stats.remote_hits, 1_000, "every read offered its value");
    let held = names.local_entries().unwrap();
    assert!(
        held <= 100,
        "local tier holds {held} entries with capacity 100"
    );
    // Everything is still readable: evicted entries come from the backend.
    assert_eq!(names.get("k0").await.unwrap().as_deref(), Some("v0"));
}

async fn batch_reads_and_loads_use_the_local_tier(env: Env) {
    let names = live(names(&env, Duration::from_secs(5))).await;
    names.set("a", &"A".to_owned()).await.unwrap();
    env.write_raw(&names.key("b"), b"\"B\"").await;
    settled(&env, &names, 2).await;
    assert_eq!(names.get("a").await.unwrap().as_deref(), Some("A"));
    let got = names.get_many(&["a", "b", "c"]).await.unwrap();
    assert_eq!(got, [Some("A".to_owned()), Some("B".to_owned()), None]);
    assert_eq!(
        env.cache.stats().local_hits,
        1,
        "a came from the local tier"
    );
    let again = names.get_many(&["a", "b"]).await.unwrap();
    assert_eq!(again, [Some("A".to_owned()), Some("B".to_owned())]);
    assert_eq!(
        env.cache.stats().local_hits,
        3,
        "b was filled by the first batch"
    );

    let loaded = names
        .get_or_load("c", || async { Some("C".to_owned()) })
        .await
        .unwrap();
    assert_eq!(loaded.as_deref(), Some("C"));
    // The write-back dropped the local copy; the next read keeps it.
    settled(&env, &names, 3).await;
    let read = names.get_or_load("c", || async { unreachable!("stored") });
    assert_eq!(read.await.unwrap().as_deref(), Some("C"));
    let before = env.cache.stats().local_hits;
    let cached = names
        .get_or_load("c", || async { unreachable!("served locally") })
        .await
        .unwrap();
    assert_eq!(cached.as_deref(), Some("C"));
    assert_eq!(env.cache.stats().local_hits, before + 1);
}

async fn bad_local_settings_are_refused(env: Env) {
    let zero_capacity = env
        .cache
        .keyspace("x")
        .local(0, Duration::from_secs(1))
        .typed::<String, String>();
    assert!(zero_capacity.unwrap_err().to_string().contains("capacity"));
    let zero_ttl = env
        .cache
        .keyspace("x")
        .local(10, Duration::ZERO)
        .typed::<String, String>();
    assert!(zero_ttl.is_err());
    let too_long = env
        .cache
        .keyspace("x")
        .local(10, cache_core::MAX_LOCAL_TTL + Duration::from_secs(1))
        .typed::<String, String>();
    assert!(too_long.is_err());

    // Views of one keyspace share one tier: other settings are an error, not ignored.
    let first = env.cache.keyspace("y").local(10, Duration::from_secs(5));
    let first = live(first.typed::<String, String>().unwrap()).await;
    let same = env.cache.keyspace("y").local(10, Duration::from_secs(5));
    let same = same.typed::<String, String>().unwrap();
    first.set("a", &"ada".to_owned()).await.unwrap();
    settled(&env, &first, 1).await;
    first.get("a").await.unwrap();
    assert_eq!(same.local_entries(), Some(1), "the tier is shared");
    let other = env.cache.keyspace("y").local(20, Duration::from_secs(5));
    let err = other.typed::<String, String>().unwrap_err();
    assert!(err.is_config() && err.to_string().contains("`y`"), "{err}");
    let plain = env.cache.keyspace("y").typed::<String, String>().unwrap();
    assert!(
        plain
            .with_local(10, Duration::from_secs(1))
            .unwrap_err()
            .is_config()
    );
}

async fn a_local_copy_never_outlives_its_backend_ttl(env: Env) {
    let names = live(names(&env, Duration::from_secs(60))).await;
    names
        .set_with_ttl("short", &"soon gone".to_owned(), Duration::from_millis(300))
        .await
        .unwrap();
    settled(&env, &names, 1).await;
    let started = Instant::now();
    assert!(names.get("short").await.unwrap().is_some());
    assert_eq!(names.local_entries(), Some(1), "kept, for at most 300 ms");
    // Read until it expires: the local copy must not answer past the TTL.
    // The clock is read before each call: a read that began inside the TTL may
    // rightly answer with the value even if it returns just after it. Redis
    // itself counts whole milliseconds and expires a key only once its time
    // is past, so it may answer up to a millisecond late: what must not
    // happen is an answer from the local tier.
    let local_hits = || names.local_stats().map(|stats| stats.hits);
    while started.elapsed() < Duration::from_millis(600) {
        let (asked_at, hits_before) = (started.elapsed(), local_hits());
        let found = names.get("short").await.unwrap();
        let from_local = local_hits() != hits_before;
        if asked_at > Duration::from_millis(300) && from_local {
            assert_eq!(
                found, None,
                "served by the local tier when asked {asked_at:?} after a 300 ms TTL"
            );
        }
        if asked_at > Duration::from_millis(302) {
            assert_eq!(
                found, None,
                "served when asked {asked_at:?} after a 300 ms TTL"
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn shared_reads_hand_out_the_kept_value(env: Env) {
    let names = live(names(&env, Duration::from_secs(60))).await;
    names.set("a", &"ada".to_owned()).await.unwrap();
    settled(&env, &names, 1).await;
    let first = names.get_shared("a").await.unwrap().unwrap();
    let again = names.get_shared("a").await.unwrap().unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&first, &again),
        "a hit is not decoded again"
    );
    // A plain read of the same entry decodes the kept bytes.
    assert_eq!(names.get("a").await.unwrap().as_deref(), Some("ada"));
    names.set("a", &"grace".to_owned()).await.unwrap();
    let after = names.get_shared("a").await.unwrap().unwrap();
    assert_eq!(after.as_str(), "grace");
    assert_eq!(names.get_shared("missing").await.unwrap(), None);
    // A view of another type over the same tier decodes the bytes itself.
    let raw = env
        .cache
        .keyspace("name")
        .ttl(Duration::from_secs(60))
        .local(100, Duration::from_secs(60))
        .typed::<String, serde_json::Value>()
        .unwrap();
    settled(&env, &names, 2).await;
    names.get_shared("a").await.unwrap();
    let value = raw.get_shared("a").await.unwrap().unwrap();
    assert_eq!(*value, serde_json::json!("grace"));
}
