//! `Codec::Plain` on every backend: strings, byte strings and integers are
//! stored as the bytes another client writes and reads (here redis-rs' own
//! connection, and the escape hatch on memory), and every setting that would
//! put a header or a frame around them is refused.

use std::time::Duration;

use cache_core::{Codec, Error, LoadPolicy};
use cache_tests::Env;
use redis::AsyncCommands;

cache_tests::backend_suite!(
    sentinel_too;
    strings_and_bytes_are_stored_as_themselves,
    values_other_clients_wrote_are_read_as_they_are,
    integers_read_what_incr_wrote,
    other_types_and_headers_are_refused_by_name,
);

/// Writes `bytes` at `full_key` as another client would: redis-rs' own
/// connection on Redis, the escape hatch on memory.
async fn other_client_set(env: &Env, full_key: &str, bytes: &[u8]) {
    match env.cache.redis_connection() {
        Some(mut raw) => raw.set::<_, _, ()>(full_key, bytes).await.unwrap(),
        None => env.cache.raw_set(full_key, bytes, None).await.unwrap(),
    }
}

/// Reads `full_key` as another client would.
async fn other_client_get(env: &Env, full_key: &str) -> Option<Vec<u8>> {
    match env.cache.redis_connection() {
        Some(mut raw) => raw.get(full_key).await.unwrap(),
        None => env.cache.raw_get(full_key).await.unwrap(),
    }
}

async fn strings_and_bytes_are_stored_as_themselves(env: Env) {
    let names = env.cache.keyspace("name").codec(Codec::Plain);
    let names = names.typed::<str, String>().unwrap();
    names.set("en", &"30.0".to_owned()).await.unwrap();
    assert_eq!(
        other_client_get(&env, &names.key("en")).await.as_deref(),
        Some(&b"30.0"[..])
    );
    assert_eq!(names.get("en").await.unwrap().as_deref(), Some("30.0"));

    // Bytes that look like the toolkit's own frames stay bytes.
    let blobs = (env.cache.keyspace("blob").codec(Codec::Plain))
        .typed::<str, Vec<u8>>()
        .unwrap();
    for bytes in [
        vec![0xFF, b'z', 0, 0, 0, 0, 1, 2],
        vec![0xFF, b'f', b's'],
        vec![],
    ] {
        blobs.set("b", &bytes).await.unwrap();
        assert_eq!(
            other_client_get(&env, &blobs.key("b")).await,
            Some(bytes.clone())
        );
        assert_eq!(blobs.get("b").await.unwrap(), Some(bytes));
    }
}

async fn values_other_clients_wrote_are_read_as_they_are(env: Env) {
    let names = (env.cache.keyspace("name").codec(Codec::Plain))
        .local(100, Duration::from_secs(60))
        .typed::<str, String>()
        .unwrap();
    other_client_set(&env, &names.key("fr"), "bonjour ✓".as_bytes()).await;
    assert_eq!(names.get("fr").await.unwrap().as_deref(), Some("bonjour ✓"));
    let batch = names.get_many(&["fr", "missing"]).await.unwrap();
    assert_eq!(batch, [Some("bonjour ✓".to_owned()), None]);
    let loaded = (names.get_or_load("fr", || async { Some("never".to_owned()) }))
        .await
        .unwrap();
    assert_eq!(loaded.as_deref(), Some("bonjour ✓"));

    // Bytes that are no UTF-8 text are a decode error naming the key.
    other_client_set(&env, &names.key("bad"), &[0xFF, 0xFE]).await;
    match names.get("bad").await {
        Err(Error::Decode { key, .. }) => assert_eq!(key, names.key("bad")),
        other => panic!("expected a decode error naming the key, got {other:?}"),
    }
}

async fn integers_read_what_incr_wrote(env: Env) {
    let calls = env.cache.keyspace("calls").codec(Codec::Plain);
    let calls = calls.typed::<str, i64>().unwrap();
    assert_eq!(
        env.cache.raw_incr(&calls.key("gpt-4"), 41).await.unwrap(),
        41
    );
    assert_eq!(calls.incr("gpt-4", 1).await.unwrap(), 42);
    assert_eq!(calls.get("gpt-4").await.unwrap(), Some(42));
    calls.set("o1", &-3).await.unwrap();
    assert_eq!(
        other_client_get(&env, &calls.key("o1")).await.as_deref(),
        Some(&b"-3"[..])
    );
}

fn config_message(result: cache_core::Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(Error::Config { message, .. }) => message,
        other => panic!("expected Error::Config, got {other:?}"),
    }
}

async fn other_types_and_headers_are_refused_by_name(env: Env) {
    let plain = || env.cache.keyspace("price").codec(Codec::Plain);
    let message = config_message(plain().typed::<str, f64>());
    assert!(
        message.contains("`price`") && message.contains("f64"),
        "{message}"
    );
    let message = config_message(plain().typed_set::<str, Vec<String>>());
    assert!(message.contains("Vec<alloc::string::String>"), "{message}");
    for (setting, builder) in [
        ("tags", plain().tagged()),
        ("compress", plain().compress(cache_core::Compression::Lz4)),
        (
            "fail_safe",
            plain().load_policy(LoadPolicy::DEFAULT.fail_safe(Duration::from_secs(60))),
        ),
    ] {
        let message = config_message(builder.typed::<str, String>());
        assert!(
            message.contains(setting) && message.contains("plain"),
            "{message}"
        );
    }
    let view = plain().typed::<str, String>().unwrap();
    let fail_safe = LoadPolicy::DEFAULT.fail_safe(Duration::from_secs(60));
    let message = config_message(view.with_load_policy(fail_safe));
    assert!(message.contains("fail_safe"), "{message}");
}
