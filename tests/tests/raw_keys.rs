//! The escape hatch on every backend: full keys read and written as they
//! are (`raw_get`, `raw_set`, `raw_delete`, `raw_incr`, `raw_expire`,
//! `raw_ttl`), the same on memory, a server, the cluster and Sentinel.

use std::time::Duration;

use cache_core::{Error, Ttl};
use cache_tests::Env;

cache_tests::backend_suite!(
    sentinel_too;
    full_keys_are_written_read_expired_and_deleted_as_they_are,
    raw_incr_counts_in_the_form_typed_integers_read,
    raw_writes_drop_the_handles_local_copies,
);

/// A full key of this test's own, outside any keyspace's layout.
fn legacy_key(env: &Env, name: &str) -> String {
    format!("{}-legacy:{name}", env.cache.namespace().unwrap_or("none"))
}

async fn full_keys_are_written_read_expired_and_deleted_as_they_are(env: Env) {
    let cache = &env.cache;
    let key = legacy_key(&env, "user:7");
    assert_eq!(cache.raw_get(&key).await.unwrap(), None);
    assert_eq!(cache.raw_ttl(&key).await.unwrap(), Ttl::Missing);
    cache.raw_set(&key, b"ada", None).await.unwrap();
    assert_eq!(
        cache.raw_get(&key).await.unwrap().as_deref(),
        Some(&b"ada"[..])
    );
    assert_eq!(cache.raw_ttl(&key).await.unwrap(), Ttl::Persistent);

    assert!(
        cache
            .raw_expire(&key, Duration::from_secs(60))
            .await
            .unwrap()
    );
    let left = cache.raw_ttl(&key).await.unwrap().remaining().unwrap();
    assert!(
        left > Duration::from_secs(55) && left <= Duration::from_secs(60),
        "{left:?}"
    );
    let error = cache.raw_expire(&key, Duration::ZERO).await.unwrap_err();
    assert!(matches!(error, Error::InvalidTtl { .. }), "{error:?}");
    assert!(
        !cache
            .raw_expire(&legacy_key(&env, "none"), Duration::from_secs(1))
            .await
            .unwrap()
    );

    assert!(cache.raw_delete(&key).await.unwrap());
    assert!(!cache.raw_delete(&key).await.unwrap());
    assert_eq!(cache.raw_get(&key).await.unwrap(), None);

    // A short expiry really expires.
    cache.raw_set(&key, b"brief", None).await.unwrap();
    cache
        .raw_expire(&key, Duration::from_millis(100))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(cache.raw_get(&key).await.unwrap(), None);
}

async fn raw_incr_counts_in_the_form_typed_integers_read(env: Env) {
    let cache = &env.cache;
    let calls = cache.keyspace("api-calls").typed::<str, i64>().unwrap();
    let key = calls.key("gpt-4");
    assert_eq!(cache.raw_incr(&key, 5).await.unwrap(), 5);
    assert_eq!(cache.raw_incr(&key, -7).await.unwrap(), -2);
    assert_eq!(calls.get("gpt-4").await.unwrap(), Some(-2));
    assert_eq!(
        cache.raw_get(&key).await.unwrap().as_deref(),
        Some(&b"-2"[..])
    );
    assert_eq!(cache.raw_ttl(&key).await.unwrap(), Ttl::Persistent);

    // What a typed write stored, INCRBY counts on.
    calls.set("o1", &40).await.unwrap();
    assert_eq!(cache.raw_incr(&calls.key("o1"), 2).await.unwrap(), 42);

    let text = legacy_key(&env, "text");
    cache.raw_set(&text, b"thirty", None).await.unwrap();
    match cache.raw_incr(&text, 1).await {
        Err(Error::NotAnInteger { key, .. }) => assert_eq!(key, text),
        other => panic!("expected NotAnInteger naming the key, got {other:?}"),
    }
    let top = legacy_key(&env, "top");
    cache
        .raw_set(&top, i64::MAX.to_string().as_bytes(), None)
        .await
        .unwrap();
    match cache.raw_incr(&top, 1).await {
        Err(Error::Overflow { key, delta, .. }) => assert_eq!((key, delta), (top.clone(), 1)),
        other => panic!("expected Overflow, got {other:?}"),
    }
    let kept = cache.raw_get(&top).await.unwrap();
    assert_eq!(
        kept.as_deref(),
        Some(i64::MAX.to_string().as_bytes()),
        "nothing changed"
    );
}

async fn raw_writes_drop_the_handles_local_copies(env: Env) {
    let cache = &env.cache;
    let prices = (cache.keyspace("price"))
        .local(100, Duration::from_secs(60))
        .typed::<str, i64>()
        .unwrap();
    let key = prices.key("gpt-4");
    for (step, expected) in [("set", Some(9)), ("incr", Some(8)), ("delete", None)] {
        prices.set("gpt-4", &7).await.unwrap();
        assert_eq!(
            prices.get("gpt-4").await.unwrap(),
            Some(7),
            "{step}: warmed"
        );
        match step {
            "set" => cache.raw_set(&key, b"9", None).await.unwrap(),
            "incr" => drop(cache.raw_incr(&key, 1).await.unwrap()),
            _ => assert!(cache.raw_delete(&key).await.unwrap()),
        }
        assert_eq!(prices.get("gpt-4").await.unwrap(), expected, "{step}");
    }
    prices.set("gpt-4", &7).await.unwrap();
    assert_eq!(prices.get("gpt-4").await.unwrap(), Some(7));
    cache
        .raw_expire(&key, Duration::from_millis(100))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        prices.get("gpt-4").await.unwrap(),
        None,
        "expired, not kept locally"
    );
}
