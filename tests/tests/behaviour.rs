//! The behaviour suite: every test here runs on the embedded memory backend,
//! a spawned redis-server and the local cluster, the last two with
//! coalescing on (the default) and off, and must pass on all unchanged.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cache::{Cache, Codec, Error, MAX_TTL, Ttl};
use cache_core as cache;
use cache_tests::Env;
use serde::{Deserialize, Serialize};

cache_tests::backend_suite!(
    coalesce_off_too;
    round_trips_in_every_codec,
    floats_come_back_exactly_and_lossy_values_are_refused,
    default_ttl_is_applied_and_expires,
    set_with_ttl_overrides_and_expires,
    no_ttl_means_persistent,
    set_if_absent_writes_once,
    delete_and_exists_report_presence,
    expire_sets_a_new_ttl,
    take_hands_a_value_to_exactly_one_caller,
    hostile_keys_never_collide,
    undecodable_bytes_give_a_decode_error_naming_the_key,
    invalid_ttls_are_refused_before_sending,
    oversized_values_are_refused_before_sending,
    batch_operations_read_write_and_delete_many_keys,
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ModelPrice {
    model: String,
    input_per_1k: f64,
    output_per_1k: f64,
    tags: Vec<String>,
    tier: Tier,
    note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Tier {
    Free,
    Paid { monthly_cents: u64 },
}

fn price(model: &str) -> ModelPrice {
    ModelPrice {
        model: model.to_owned(),
        input_per_1k: 0.03,
        output_per_1k: 0.06,
        tags: vec!["chat".into(), "ünïcode ✓".into()],
        tier: Tier::Paid {
            monthly_cents: 2_000,
        },
        note: None,
    }
}

fn codecs() -> [Codec; 3] {
    [Codec::Json, Codec::Bincode, Codec::MsgPack]
}

/// Polls until `key` is gone, failing after `limit`.
async fn wait_until_gone(
    prices: &cache::TypedCache<String, ModelPrice>,
    key: &str,
    limit: Duration,
) {
    let started = Instant::now();
    while prices.exists(key).await.unwrap() {
        assert!(
            started.elapsed() < limit,
            "{key} still present after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn round_trips_in_every_codec(env: Env) {
    for codec in codecs() {
        let prices = env
            .cache
            .keyspace(format!("price-{}", codec.name()))
            .codec(codec)
            .typed::<String, ModelPrice>()
            .unwrap();
        let mut value = price("gpt-4");
        prices.set("gpt-4", &value).await.unwrap();
        assert_eq!(
            prices.get("gpt-4").await.unwrap(),
            Some(value.clone()),
            "{codec:?}"
        );

        value.tier = Tier::Free;
        value.note = Some("overwritten".into());
        prices.set("gpt-4", &value).await.unwrap();
        assert_eq!(prices.get("gpt-4").await.unwrap(), Some(value), "{codec:?}");
        assert_eq!(prices.get("missing").await.unwrap(), None, "{codec:?}");
    }
}

async fn default_ttl_is_applied_and_expires(env: Env) {
    let prices = env
        .cache
        .keyspace("price")
        .ttl(Duration::from_millis(300))
        .typed::<String, ModelPrice>()
        .unwrap();
    prices.set("gpt-4", &price("gpt-4")).await.unwrap();
    let left = prices.ttl("gpt-4").await.unwrap().remaining().unwrap();
    assert!(
        left > Duration::ZERO && left <= Duration::from_millis(300),
        "{left:?}"
    );
    wait_until_gone(&prices, "gpt-4", Duration::from_secs(3)).await;
    assert_eq!(prices.get("gpt-4").await.unwrap(), None);
    assert_eq!(prices.ttl("gpt-4").await.unwrap(), Ttl::Missing);
}

async fn set_with_ttl_overrides_and_expires(env: Env) {
    let prices = env
        .cache
        .keyspace("price")
        .ttl(Duration::from_secs(3600))
        .typed::<String, ModelPrice>()
        .unwrap();
    prices
        .set_with_ttl("short", &price("short"), Duration::from_millis(200))
        .await
        .unwrap();
    prices.set("long", &price("long")).await.unwrap();
    let short = prices.ttl("short").await.unwrap().remaining().unwrap();
    assert!(short <= Duration::from_millis(200), "{short:?}");
    let long = prices.ttl("long").await.unwrap().remaining().unwrap();
    assert!(long > Duration::from_secs(3500), "{long:?}");
    wait_until_gone(&prices, "short", Duration::from_secs(3)).await;
    assert!(prices.exists("long").await.unwrap());

    // `with_ttl` is a per-use override that leaves the original alone.
    let brief = prices.with_ttl(Duration::from_millis(150)).unwrap();
    brief.set("brief", &price("brief")).await.unwrap();
    assert!(brief.ttl("brief").await.unwrap().remaining().unwrap() <= Duration::from_millis(150));
    assert_eq!(prices.default_ttl(), Some(Duration::from_secs(3600)));
}

async fn no_ttl_means_persistent(env: Env) {
    let names = env.cache.keyspace("name").typed::<u64, String>().unwrap();
    assert_eq!(names.ttl(&1).await.unwrap(), Ttl::Missing);
    names.set(&1, &"ada".to_owned()).await.unwrap();
    assert_eq!(names.ttl(&1).await.unwrap(), Ttl::Persistent);
    // A plain `set` replaces an expiry too, as Redis' SET does.
    names
        .set_with_ttl(&2, &"bob".to_owned(), Duration::from_secs(60))
        .await
        .unwrap();
    names.set(&2, &"bob".to_owned()).await.unwrap();
    assert_eq!(names.ttl(&2).await.unwrap(), Ttl::Persistent);
}

async fn set_if_absent_writes_once(env: Env) {
    let owners = env
        .cache
        .keyspace("owner")
        .ttl(Duration::from_secs(30))
        .typed::<String, String>()
        .unwrap();
    assert!(owners.set_if_absent("job", &"a".to_owned()).await.unwrap());
    assert!(!owners.set_if_absent("job", &"b".to_owned()).await.unwrap());
    assert_eq!(owners.get("job").await.unwrap().as_deref(), Some("a"));
    assert!(owners.ttl("job").await.unwrap().remaining().is_some());

    // Of many concurrent writers exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..50 {
        let owners = owners.clone();
        tasks.push(tokio::spawn(async move {
            owners
                .set_if_absent("race", &format!("w{i}"))
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap());
    }
    assert_eq!(winners, 1);
}

async fn delete_and_exists_report_presence(env: Env) {
    let names = env
        .cache
        .keyspace("name")
        .typed::<String, String>()
        .unwrap();
    assert!(!names.exists("a").await.unwrap());
    assert!(!names.delete("a").await.unwrap());
    names.set("a", &"x".to_owned()).await.unwrap();
    assert!(names.exists("a").await.unwrap());
    assert!(names.delete("a").await.unwrap());
    assert!(!names.exists("a").await.unwrap());
    assert_eq!(names.get("a").await.unwrap(), None);
}

async fn expire_sets_a_new_ttl(env: Env) {
    let names = env
        .cache
        .keyspace("name")
        .typed::<String, String>()
        .unwrap();
    assert!(!names.expire("a", Duration::from_secs(5)).await.unwrap());
    names.set("a", &"x".to_owned()).await.unwrap();
    assert!(names.expire("a", Duration::from_secs(5)).await.unwrap());
    let left = names.ttl("a").await.unwrap().remaining().unwrap();
    assert!(
        left > Duration::from_secs(4) && left <= Duration::from_secs(5),
        "{left:?}"
    );
}

async fn take_hands_a_value_to_exactly_one_caller(env: Env) {
    let codes = env.cache.keyspace("otp").typed::<String, u32>().unwrap();
    codes.set("alice", &123_456).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let codes = codes.clone();
        tasks.push(tokio::spawn(
            async move { codes.take("alice").await.unwrap() },
        ));
    }
    let mut taken = Vec::new();
    for task in tasks {
        taken.extend(task.await.unwrap());
    }
    assert_eq!(taken, [123_456]);
    assert!(!codes.exists("alice").await.unwrap());
}

async fn floats_come_back_exactly_and_lossy_values_are_refused(env: Env) {
    let edges = [
        123_456_789.123_456_79,
        0.1 + 0.2,
        -0.0,
        f64::MIN_POSITIVE,
        5e-324,
        f64::MAX,
        f64::MIN,
        1.0 / 3.0,
        std::f64::consts::PI,
    ];
    for codec in codecs() {
        let floats = env
            .cache
            .keyspace(format!("f-{}", codec.name()))
            .codec(codec)
            .typed::<u32, (f64, f32)>()
            .unwrap();
        for (i, &value) in edges.iter().enumerate() {
            let single = value as f32;
            let pair = (value, if single.is_finite() { single } else { f32::MAX });
            floats.set(&(i as u32), &pair).await.unwrap();
            let back = floats.get(&(i as u32)).await.unwrap().unwrap();
            assert_eq!(
                (back.0.to_bits(), back.1.to_bits()),
                (pair.0.to_bits(), pair.1.to_bits()),
                "{codec:?} {value:e}"
            );
        }
        let nan = floats.set(&100, &(f64::NAN, 1.0)).await;
        let nested = env
            .cache
            .keyspace(format!("o-{}", codec.name()))
            .codec(codec)
            .typed::<u32, Option<Option<u8>>>()
            .unwrap();
        let some_none = nested.set(&1, &Some(None)).await;
        match codec {
            Codec::Json => {
                let err = nan.unwrap_err();
                assert!(matches!(err, Error::Encode { .. }), "{err:?}");
                assert_eq!(err.key(), Some(floats.key(&100).as_str()));
                assert!(!floats.exists(&100).await.unwrap());
            }
            _ => {
                nan.unwrap();
                assert!(floats.get(&100).await.unwrap().unwrap().0.is_nan());
            }
        }
        match codec {
            Codec::Bincode => {
                some_none.unwrap();
                assert_eq!(nested.get(&1).await.unwrap(), Some(Some(None)));
            }
            _ => {
                assert!(matches!(some_none, Err(Error::Encode { .. })), "{codec:?}");
                assert!(!nested.exists(&1).await.unwrap());
            }
        }
    }
}

fn hostile_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        "", " ", "a", "a:b", "a%3Ab", "a,b", "*", "?", "[a-z]", "{tag}", "{", "}", "a b", "a\nb",
        "a\r\nb", "\t", "\\", "%", "%%", "%25", "ключ", "键", "🔑", "e\u{301}", "é", "v1:x",
        "x:v1:y", "#", "#abc", "-1", "0", ".", "..", "_",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    keys.push("k".repeat(10 * 1024));
    keys.push(format!("{}x", "k".repeat(10 * 1024)));
    keys.push("é".repeat(5 * 1024));
    keys
}

async fn hostile_keys_never_collide(env: Env) {
    let values = env
        .cache
        .keyspace("hostile")
        .typed::<String, u64>()
        .unwrap();
    let keys = hostile_keys();
    let full: HashSet<String> = keys.iter().map(|k| values.key(k.as_str())).collect();
    assert_eq!(full.len(), keys.len(), "two keys mapped to one Redis key");
    for (i, key) in keys.iter().enumerate() {
        values.set(key.as_str(), &(i as u64)).await.unwrap();
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            values.get(key.as_str()).await.unwrap(),
            Some(i as u64),
            "key {key:.40?}"
        );
        let full_key = values.key(key.as_str());
        assert!(full_key.len() < 400, "long keys are digested");
        assert!(
            !full_key.contains(['{', '}', '*', '?', '[', ' ', '\n']),
            "{full_key:.80}"
        );
    }

    // Tuple keys: the parts stay apart however they are split.
    let pairs = env
        .cache
        .keyspace("pair")
        .typed::<(String, String), u64>()
        .unwrap();
    pairs
        .set(&("a,b".to_owned(), "c".to_owned()), &1)
        .await
        .unwrap();
    pairs
        .set(&("a".to_owned(), "b,c".to_owned()), &2)
        .await
        .unwrap();
    assert_eq!(
        pairs
            .get(&("a,b".to_owned(), "c".to_owned()))
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        pairs
            .get(&("a".to_owned(), "b,c".to_owned()))
            .await
            .unwrap(),
        Some(2)
    );
}

async fn undecodable_bytes_give_a_decode_error_naming_the_key(env: Env) {
    for codec in codecs() {
        let prices = env
            .cache
            .keyspace(format!("price-{}", codec.name()))
            .codec(codec)
            .typed::<String, ModelPrice>()
            .unwrap();
        let full_key = prices.key("gpt-4");
        env.write_raw(&full_key, b"\xff\x00garbage{").await;
        let err = prices.get("gpt-4").await.unwrap_err();
        assert!(err.is_decode(), "{codec:?}: {err:?}");
        assert_eq!(err.key(), Some(full_key.as_str()));
        assert!(err.to_string().contains(&full_key), "{err}");
        let err = prices.take("gpt-4").await.unwrap_err();
        assert!(err.is_decode(), "{codec:?}: {err:?}");
    }
}

async fn invalid_ttls_are_refused_before_sending(env: Env) {
    let names = env
        .cache
        .keyspace("name")
        .typed::<String, String>()
        .unwrap();
    let value = "x".to_owned();
    for ttl in [
        Duration::ZERO,
        Duration::from_micros(500),
        MAX_TTL + Duration::from_millis(1),
    ] {
        let err = names.set_with_ttl("a", &value, ttl).await.unwrap_err();
        assert!(matches!(err, Error::InvalidTtl { .. }), "{ttl:?}: {err:?}");
        assert_eq!(err.key(), Some(names.key("a").as_str()));
        assert!(!names.exists("a").await.unwrap(), "nothing was written");
        assert!(names.expire("a", ttl).await.is_err());
    }
    assert!(matches!(
        env.cache
            .keyspace("name")
            .ttl(Duration::ZERO)
            .typed::<String, String>(),
        Err(Error::InvalidTtl { .. })
    ));
    // The largest accepted TTL is really accepted.
    names.set_with_ttl("max", &value, MAX_TTL).await.unwrap();
    assert!(names.ttl("max").await.unwrap().remaining().is_some());
}

/// Whether `err` refuses a value over the size limit (directly, or as the
/// failed load's cause).
fn too_large(err: &Error) -> bool {
    match err {
        Error::ValueTooLarge { .. } => true,
        Error::Load { source, .. } => source.to_string().contains("over the limit"),
        _ => false,
    }
}

/// A loaded value over the limit is the answer but is not stored
/// (fail-open), an error naming the key under fail-closed, and an early
/// refresh that loads one leaves the old value in place.
async fn oversized_loads_are_not_stored(
    small: &Cache,
    blobs: &cache::TypedCache<String, String>,
    big: &str,
) {
    let loaded = blobs.get_or_load("loaded", {
        let big = big.to_owned();
        move || async move { Some(big) }
    });
    assert_eq!(loaded.await.unwrap().map(|s| s.len()), Some(4096));
    assert!(!blobs.exists("loaded").await.unwrap());
    assert_eq!(small.stats().unstored_values, 1);
    let closed = cache::LoadPolicy::DEFAULT.on_failure(cache::FailurePolicy::Closed);
    let closed = blobs.with_load_policy(closed).unwrap();
    let err = closed
        .get_or_load("loaded", {
            let big = big.to_owned();
            move || async move { Some(big) }
        })
        .await
        .unwrap_err();
    assert!(too_large(&err), "{err:?}");
    assert_eq!(err.key(), Some(blobs.key("loaded").as_str()));
    let refreshed = blobs
        .with_load_policy(cache::LoadPolicy::DEFAULT.early_refresh(0.99))
        .unwrap()
        .with_ttl(Duration::from_secs(100))
        .unwrap();
    refreshed.set("refresh", &"small".to_owned()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let served = refreshed
        .get_or_load("refresh", || async { Some("y".repeat(4096)) })
        .await
        .unwrap();
    assert_eq!(
        served.as_deref(),
        Some("small"),
        "the refresh runs in the background"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn oversized_values_are_refused_before_sending(env: Env) {
    let small = match env.another_handle() {
        Some(builder) => builder.max_value_size(1024).build().await.unwrap(),
        None => Cache::builder()
            .max_value_size(1024)
            .build_memory()
            .unwrap(),
    };
    let blobs = small.keyspace("blob").typed::<String, String>().unwrap();
    let err = blobs.set("big", &"x".repeat(2000)).await.unwrap_err();
    match &err {
        Error::ValueTooLarge { size, max, .. } => assert_eq!((*size, *max), (2002, 1024)),
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
    assert!(!blobs.exists("big").await.unwrap());
    blobs.set("fits", &"x".repeat(1000)).await.unwrap();
    assert_eq!(
        blobs.get("fits").await.unwrap().map(|s| s.len()),
        Some(1000)
    );

    // Every other write path applies the same limit, and writes nothing.
    let big = "x".repeat(4096);
    let err = blobs
        .set_with_ttl("a", &big, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(too_large(&err), "{err:?}");
    let err = blobs.set_if_absent("a", &big).await.unwrap_err();
    assert!(too_large(&err), "{err:?}");
    let err = blobs
        .set_many(&[("a", &"ok".to_owned()), ("b", &big)])
        .await
        .unwrap_err();
    assert!(too_large(&err), "{err:?}");
    oversized_loads_are_not_stored(&small, &blobs, &big).await;
    let members = small
        .keyspace("members")
        .typed_set::<String, String>()
        .unwrap();
    let err = members.add("s", &["y".repeat(4096)]).await.unwrap_err();
    assert!(too_large(&err), "{err:?}");
    let codes = small.keyspace("otp").one_time_codes::<str>(3).unwrap();
    let err = codes
        .issue("u", &"9".repeat(4096), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(too_large(&err), "{err:?}");
    let err = small.raw_set("raw", &[0; 4096], None).await.unwrap_err();
    assert!(too_large(&err), "{err:?}");
    for key in ["a", "b", "loaded"] {
        assert!(!blobs.exists(key).await.unwrap(), "{key} was written");
    }
    assert_eq!(
        blobs.get("refresh").await.unwrap().as_deref(),
        Some("small")
    );
    assert_eq!(members.len("s").await.unwrap(), None);
    assert_eq!(
        codes.verify("u", "9").await.unwrap(),
        cache::Verification::Missing
    );
    assert_eq!(small.raw_get("raw").await.unwrap(), None);
}

async fn batch_operations_read_write_and_delete_many_keys(env: Env) {
    let prices = env
        .cache
        .keyspace("price")
        .ttl(Duration::from_secs(60))
        .typed::<String, ModelPrice>()
        .unwrap();
    let models: Vec<String> = (0..100).map(|i| format!("model-{i}")).collect();
    let values: Vec<ModelPrice> = models.iter().map(|m| price(m)).collect();
    let entries: Vec<(&str, &ModelPrice)> = models
        .iter()
        .zip(&values)
        .step_by(2)
        .map(|(m, v)| (m.as_str(), v))
        .collect();
    prices.set_many(&entries).await.unwrap();

    let keys: Vec<&str> = models.iter().map(String::as_str).collect();
    let got = prices.get_many(&keys).await.unwrap();
    assert_eq!(got.len(), 100);
    for (i, found) in got.iter().enumerate() {
        let expected = (i % 2 == 0).then(|| values[i].clone());
        assert_eq!(found, &expected, "model-{i}");
    }
    let left = prices.ttl("model-0").await.unwrap().remaining().unwrap();
    assert!(
        left > Duration::from_secs(59),
        "set_many applies the default TTL: {left:?}"
    );

    assert_eq!(prices.delete_many(&keys[..10]).await.unwrap(), 5);
    assert_eq!(prices.get_many(&keys[..10]).await.unwrap(), vec![None; 10]);

    let empty: [&str; 0] = [];
    assert!(prices.get_many(&empty).await.unwrap_err().is_config());
    assert!(prices.set_many::<str>(&[]).await.unwrap_err().is_config());
}
