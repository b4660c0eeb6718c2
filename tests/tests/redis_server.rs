//! What only a real Redis can show: key names and TTLs seen from outside with
//! raw commands, other Redis types, connection errors and reconnection.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use cache_core::{Cache, Codec};
use cache_tests::RedisServer;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct ModelPrice {
    model: String,
    input_per_1k: f64,
}

#[tokio::test]
async fn keys_and_ttls_in_redis_are_exactly_as_documented() {
    let redis = RedisServer::start("layout");
    let cache = redis.cache().await;
    let ns = redis.namespace();
    let prices = cache
        .keyspace("price")
        .ttl(Duration::from_secs(300))
        .version(2)
        .typed::<String, ModelPrice>()
        .unwrap();
    let value = ModelPrice {
        model: "gpt-4".into(),
        input_per_1k: 0.03,
    };
    prices.set("gpt-4", &value).await.unwrap();

    let mut raw = redis.raw().await;
    let expected = format!("{ns}:price:v2:gpt-4");
    assert_eq!(prices.key("gpt-4"), expected);
    let ttl: i64 = raw.ttl(&expected).await.unwrap();
    assert!((299..=300).contains(&ttl), "TTL {ttl}");
    let stored: String = raw.get(&expected).await.unwrap();
    assert_eq!(stored, r#"{"model":"gpt-4","input_per_1k":0.03}"#);

    // Sub-second TTLs are sent with PX and keep their precision.
    prices
        .set_with_ttl("fast", &value, Duration::from_millis(1500))
        .await
        .unwrap();
    let pttl: i64 = raw.pttl(format!("{ns}:price:v2:fast")).await.unwrap();
    assert!((1000..=1500).contains(&pttl), "PTTL {pttl}");

    // Hostile keys are escaped; tuple and integer keys as documented.
    prices.set("a:b {c}*", &value).await.unwrap();
    let escaped: bool = raw
        .exists(format!("{ns}:price:v2:a%3Ab%20%7Bc%7D%2A"))
        .await
        .unwrap();
    assert!(escaped);
    let pairs = cache.keyspace("pair").typed::<(u64, String), u8>().unwrap();
    pairs.set(&(7, "x y".to_owned()), &1).await.unwrap();
    let pair: u8 = raw.get(format!("{ns}:pair:v1:7,x%20y")).await.unwrap();
    assert_eq!(pair, 1);
    let persistent: i64 = raw.ttl(format!("{ns}:pair:v1:7,x%20y")).await.unwrap();
    assert_eq!(persistent, -1, "no TTL configured means no expiry");

    // A counter is a plain Redis integer whatever the codec.
    let seqs = cache
        .keyspace("seq")
        .codec(Codec::MsgPack)
        .typed::<u64, i64>()
        .unwrap();
    seqs.incr(&42, 5).await.unwrap();
    let seq: i64 = raw.get(format!("{ns}:seq:v1:42")).await.unwrap();
    assert_eq!(seq, 5);
}

#[tokio::test]
async fn a_key_holding_a_list_gives_a_wrong_type_error() {
    let redis = RedisServer::start("wrongtype");
    let cache = redis.cache().await;
    let names = cache.keyspace("name").typed::<String, String>().unwrap();
    let counts = cache.keyspace("name").typed::<String, i64>().unwrap();
    let full_key = names.key("list");
    let mut raw = redis.raw().await;
    let _: i64 = raw.lpush(&full_key, "item").await.unwrap();

    let err = names.get("list").await.unwrap_err();
    assert!(err.is_wrong_type(), "{err:?}");
    assert_eq!(err.key(), Some(full_key.as_str()));
    assert!(names.take("list").await.unwrap_err().is_wrong_type());
    assert!(counts.incr("list", 1).await.unwrap_err().is_wrong_type());
    // Overwriting with SET is allowed, as in Redis.
    names.set("list", &"now a string".to_owned()).await.unwrap();
    assert_eq!(
        names.get("list").await.unwrap().as_deref(),
        Some("now a string")
    );
}

#[tokio::test]
async fn the_raw_connection_reaches_the_same_server() {
    let redis = RedisServer::start("raw");
    let cache = redis.cache().await;
    let names = cache.keyspace("name").typed::<String, String>().unwrap();
    names.set("a", &"x".to_owned()).await.unwrap();
    let mut conn = cache.redis_connection().unwrap();
    let stored: String = conn.get(names.key("a")).await.unwrap();
    assert_eq!(stored, "\"x\"");
}

#[tokio::test]
async fn a_bad_url_is_a_config_error_without_the_password() {
    for url in [
        "redis://:hunter2@",
        "http://:hunter2@localhost",
        "redis://:hunter2@host:notaport",
    ] {
        let err = Cache::builder().url(url).build().await.unwrap_err();
        assert!(err.is_config(), "{url}: {err:?}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
    let err = Cache::builder().namespace("").build().await.unwrap_err();
    assert!(err.to_string().contains("namespace"), "{err}");
}

#[tokio::test]
async fn unix_socket_urls_work() {
    let (redis, url) = RedisServer::start_with_unix_socket("unix");
    let cache = Cache::builder()
        .url(&url)
        .namespace(redis.namespace())
        .build()
        .await
        .unwrap();
    let names = cache.keyspace("name").typed::<String, String>().unwrap();
    names.set("a", &"via socket".to_owned()).await.unwrap();
    let mut raw = redis.raw().await;
    let stored: String = raw.get(names.key("a")).await.unwrap();
    assert_eq!(stored, "\"via socket\"");
}

#[tokio::test]
async fn rediss_urls_connect_over_tls_with_a_private_ca() {
    let (redis, tls_url, ca) = RedisServer::start_with_tls("tls");
    let cache = Cache::builder()
        .url(&tls_url)
        .namespace(redis.namespace())
        .tls_root_certificate(ca)
        .build()
        .await
        .unwrap();
    let names = cache.keyspace("name").typed::<String, String>().unwrap();
    names.set("a", &"over tls".to_owned()).await.unwrap();
    // Seen from the plain port: the same server.
    let mut raw = redis.raw().await;
    let stored: String = raw.get(names.key("a")).await.unwrap();
    assert_eq!(stored, "\"over tls\"");

    // Without the private CA the certificate is not trusted: a clear error.
    let err = Cache::builder()
        .url(tls_url.replace("rediss://", "rediss://:hunter2@"))
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(err.is_connection(), "{err:?}");
    assert!(err.to_string().contains("rediss://:***@localhost"), "{err}");
}

#[tokio::test]
async fn a_refused_connection_names_the_redacted_url() {
    // Bind then drop a listener: nothing listens on that port now.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://user:hunter2@127.0.0.1:{port}/0");
    let started = Instant::now();
    let err = Cache::builder()
        .url(&url)
        .timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        err.to_string()
            .contains(&format!("redis://user:***@127.0.0.1:{port}/0")),
        "{err}"
    );
    assert!(err.is_connection() || err.is_timeout(), "{err:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_within_the_timeout() {
    // Accepts TCP connections but never speaks Redis.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let started = Instant::now();
    let err = Cache::builder()
        .url(format!("redis://:pw@127.0.0.1:{port}"))
        .timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(err.is_timeout(), "{err:?}");
    assert!(elapsed < Duration::from_millis(800), "{elapsed:?}");
    assert!(
        err.to_string()
            .contains(&format!("redis://:***@127.0.0.1:{port}")),
        "{err}"
    );
    drop(listener);
}

#[tokio::test]
async fn the_same_handle_works_again_after_a_server_restart() {
    let mut redis = RedisServer::start_with("restart", &["--appendonly", "no"]);
    let cache = redis.cache_with_timeout(Duration::from_millis(500)).await;
    let names = cache.keyspace("name").typed::<String, String>().unwrap();
    names.set("before", &"x".to_owned()).await.unwrap();

    redis.kill();
    let err = names.get("before").await.unwrap_err();
    assert!(err.is_connection() || err.is_timeout(), "{err:?}");
    redis.restart();

    let started = Instant::now();
    loop {
        match names.set("after", &"y".to_owned()).await {
            Ok(()) => break,
            Err(err) => assert!(
                started.elapsed() < Duration::from_secs(2),
                "handle did not recover within 2 s: {err:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(names.get("after").await.unwrap().as_deref(), Some("y"));
    assert!(matches!(names.get("missing").await, Ok(None)));
}

/// Fencing tokens never go backwards, even after the server loses its data
/// (a flush, a restart without persistence), and their counters expire.
#[tokio::test]
async fn fencing_tokens_keep_increasing_after_the_server_loses_its_data() {
    let mut redis = RedisServer::start_with("fencing", &["--appendonly", "no"]);
    let cache = redis.cache().await;
    let locks = cache.keyspace("lock").locks::<str>().unwrap();
    let lease = Duration::from_secs(5);
    let mut raw = redis.raw().await;

    let first = locks.try_acquire("job", lease).await.unwrap().unwrap();
    let mut last = first.fencing_token();
    let fence_key = format!("{}:fence", first.key());
    let fence_ttl: i64 = raw.pttl(&fence_key).await.unwrap();
    assert!(
        fence_ttl > 5_000 && fence_ttl <= 15_000,
        "fence counter TTL {fence_ttl} ms"
    );
    assert!(first.release().await.unwrap());

    // Acquisitions faster than the clock's microseconds still increase.
    for _ in 0..200 {
        let guard = locks.try_acquire("job", lease).await.unwrap().unwrap();
        assert!(guard.fencing_token() > last);
        last = guard.fencing_token();
        assert!(guard.release().await.unwrap());
    }

    let _: () = redis::cmd("FLUSHALL").query_async(&mut raw).await.unwrap();
    let after_flush = locks.try_acquire("job", lease).await.unwrap().unwrap();
    assert!(
        after_flush.fencing_token() > last,
        "{} <= {last}",
        after_flush.fencing_token()
    );
    last = after_flush.fencing_token();
    drop(after_flush);

    redis.kill();
    redis.restart();
    let started = Instant::now();
    let after_restart = loop {
        match locks.try_acquire("job", lease).await {
            Ok(Some(guard)) => break guard,
            other => assert!(started.elapsed() < Duration::from_secs(3), "{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(after_restart.fencing_token() > last);
}

/// Every key the library writes expires, except sequence hashes, which are
/// documented as permanent (an expiring one would restart its numbering).
/// Tag states and the tag clock included.
#[tokio::test]
async fn every_key_the_library_writes_expires_except_sequences() {
    use cache_core::LoadPolicy;
    let redis = RedisServer::start("expiry-audit");
    let cache = redis.cache().await;
    let minute = Duration::from_secs(60);
    let policy = LoadPolicy::DEFAULT
        .negative_ttl(minute)
        .distributed(Duration::from_secs(5), Duration::from_secs(1));
    let prices = cache
        .keyspace("price")
        .ttl(minute)
        .load_policy(policy)
        .typed::<String, f64>()
        .unwrap();
    prices.set("a", &1.0).await.unwrap();
    prices
        .get_or_load("b", || async { Some(2.0) })
        .await
        .unwrap();
    prices.get_or_load("none", || async { None }).await.unwrap();
    prices.set_many(&[("c", &3.0)]).await.unwrap();
    let calls = cache
        .keyspace("calls")
        .ttl(minute)
        .typed::<String, i64>()
        .unwrap();
    calls.incr("u", 1).await.unwrap();
    let narrow = cache
        .keyspace("narrow")
        .ttl(minute)
        .typed::<String, u8>()
        .unwrap();
    narrow.incr("u", 1).await.unwrap();
    let locks = cache.keyspace("lock").locks::<str>().unwrap();
    let guard = locks.try_acquire("job", minute).await.unwrap().unwrap();
    let flags = cache.keyspace("jwt").flags::<str>().unwrap();
    flags.raise_for("t1", minute).await.unwrap();
    flags
        .raise_until("t2", std::time::SystemTime::now() + minute)
        .await
        .unwrap();
    let codes = cache.keyspace("otp").one_time_codes::<str>(3).unwrap();
    codes.issue("ada", "123456", minute).await.unwrap();
    codes.verify("ada", "000000").await.unwrap();
    use_limits_and_sets(&cache, minute).await;
    let seqs = cache.keyspace("seq").sequences::<u64>(10).unwrap();
    seqs.next(&1).await.unwrap();
    use_tags(&cache, minute).await;

    let mut raw = redis.raw().await;
    let pattern = format!("{}:*", redis.namespace());
    let mut keys = Vec::new();
    let mut scan = raw.scan_match::<_, String>(&pattern).await.unwrap();
    while let Some(key) = scan.next_item().await {
        keys.push(key.unwrap());
    }
    drop(scan);
    assert!(keys.len() >= 24, "only {} keys: {keys:?}", keys.len());
    let mut permanent = Vec::new();
    for key in &keys {
        let ttl: i64 = raw.pttl(key).await.unwrap();
        if ttl == -1 {
            permanent.push(key.clone());
        }
    }
    assert_eq!(permanent, [seqs.key(&1)], "keys without an expiry");
    drop(guard);
}

/// Both kinds of rate limit, and typed sets (one of them empty).
async fn use_limits_and_sets(cache: &cache_core::Cache, minute: Duration) {
    use cache_core::RateLimit;
    for rule in [
        RateLimit::fixed_window(5, minute),
        RateLimit::sliding_window(5, minute),
    ] {
        let prefix = if rule == RateLimit::fixed_window(5, minute) {
            "fixed"
        } else {
            "sliding"
        };
        let limiter = cache.keyspace(prefix).rate_limiter::<str>(rule).unwrap();
        limiter.hit("u").await.unwrap();
    }
    let members = cache
        .keyspace("members")
        .ttl(minute)
        .typed_set::<u64, String>()
        .unwrap();
    members.add(&1, &["ada".to_owned()]).await.unwrap();
    members.replace(&2, &[]).await.unwrap();
}

/// Tagged writes, a tagged load and invalidations: tag states and the tag
/// clock must expire with the entries that use them.
async fn use_tags(cache: &cache_core::Cache, ttl: Duration) {
    let pages = cache.keyspace("page").ttl(ttl).tagged();
    let pages = pages.typed::<String, u64>().unwrap();
    pages.set_tagged("a", &1, &["tenant:a"]).await.unwrap();
    cache.invalidate_tag("tenant:b").await.unwrap();
    pages.invalidate_all().await.unwrap();
    let loader = || async { Ok::<_, std::io::Error>(Some((2, vec!["tenant:c".to_owned()]))) };
    pages.get_or_load_tagged("b", loader).await.unwrap();
}
