//! Counters on typed keyspaces: `incr` is exact under concurrency, refuses
//! to leave the value type's range and changes nothing when it refuses,
//! gives new keys the default TTL, and stores Redis integers under every
//! codec. On the memory backend, a spawned redis-server and the local
//! cluster, the last two with coalescing on and off.

use std::collections::HashSet;
use std::time::Duration;

use cache::{Codec, Error, Ttl, TypedCache};
use cache_core as cache;
use cache_tests::Env;
use serde::{Deserialize, Serialize};

cache_tests::backend_suite!(
    coalesce_off_too;
    incr_is_exact_under_1000_concurrent_tasks,
    incr_refuses_to_overflow_and_changes_nothing,
    incr_applies_the_default_ttl_only_to_new_keys,
    refused_increments_at_the_ends_of_the_range_change_nothing,
    counters_read_back_as_integers_under_every_codec,
    incr_on_non_integers_is_an_error,
);

/// Every codec: the integer form must not depend on it.
const CODECS: [Codec; 3] = [Codec::Json, Codec::Bincode, Codec::MsgPack];

async fn incr_is_exact_under_1000_concurrent_tasks(env: Env) {
    let calls = env.cache.keyspace("calls").typed::<String, i64>().unwrap();
    let mut tasks = Vec::new();
    for _ in 0..1_000 {
        let calls = calls.clone();
        tasks.push(tokio::spawn(async move {
            calls.incr("user-1", 1).await.unwrap()
        }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        assert!(
            seen.insert(task.await.unwrap()),
            "a value was returned twice"
        );
    }
    assert_eq!(seen, (1..=1_000).collect::<HashSet<i64>>());
    assert_eq!(calls.get("user-1").await.unwrap(), Some(1_000));
}

async fn incr_refuses_to_overflow_and_changes_nothing(env: Env) {
    let wide = env.cache.keyspace("wide").typed::<String, i64>().unwrap();
    wide.set("n", &(i64::MAX - 1)).await.unwrap();
    assert_eq!(wide.incr("n", 1).await.unwrap(), i64::MAX);
    let err = wide.incr("n", 1).await.unwrap_err();
    assert!(matches!(err, Error::Overflow { .. }), "{err:?}");
    assert_eq!(err.key(), Some(wide.key("n").as_str()));
    assert_eq!(wide.get("n").await.unwrap(), Some(i64::MAX));
    wide.set("low", &i64::MIN).await.unwrap();
    assert!(matches!(
        wide.incr("low", -1).await,
        Err(Error::Overflow { .. })
    ));

    let narrow = env.cache.keyspace("narrow").typed::<String, u8>().unwrap();
    assert_eq!(narrow.incr("n", 250).await.unwrap(), 250);
    assert!(matches!(
        narrow.incr("n", 6).await,
        Err(Error::Overflow { .. })
    ));
    assert_eq!(narrow.get("n").await.unwrap(), Some(250));
    // Going below zero on a key that did not exist leaves no key behind.
    assert!(matches!(
        narrow.incr("fresh", -1).await,
        Err(Error::Overflow { .. })
    ));
    assert!(!narrow.exists("fresh").await.unwrap());

    let unsigned = env
        .cache
        .keyspace("unsigned")
        .typed::<String, u64>()
        .unwrap();
    assert!(matches!(
        unsigned.incr("n", -1).await,
        Err(Error::Overflow { .. })
    ));
    assert_eq!(unsigned.incr("n", i64::MAX).await.unwrap(), i64::MAX as u64);
}

async fn incr_applies_the_default_ttl_only_to_new_keys(env: Env) {
    let calls = env
        .cache
        .keyspace("calls")
        .ttl(Duration::from_secs(60))
        .typed::<String, u32>()
        .unwrap();
    assert_eq!(calls.incr("u", 1).await.unwrap(), 1);
    let first = calls.ttl("u").await.unwrap().remaining().unwrap();
    assert!(first > Duration::from_secs(59), "{first:?}");
    // A later increment keeps the window's original expiry instead of extending it.
    calls.expire("u", Duration::from_secs(10)).await.unwrap();
    assert_eq!(calls.incr("u", 1).await.unwrap(), 2);
    let later = calls.ttl("u").await.unwrap().remaining().unwrap();
    assert!(later <= Duration::from_secs(10), "{later:?}");

    // Full-range i64 counters take Redis' plain INCRBY path; same rules.
    let wide = env
        .cache
        .keyspace("wide-calls")
        .ttl(Duration::from_secs(60))
        .typed::<String, i64>()
        .unwrap();
    assert_eq!(wide.incr("u", 5).await.unwrap(), 5);
    assert!(wide.ttl("u").await.unwrap().remaining().unwrap() > Duration::from_secs(59));
    wide.expire("u", Duration::from_secs(10)).await.unwrap();
    assert_eq!(wide.incr("u", -2).await.unwrap(), 3);
    assert!(wide.ttl("u").await.unwrap().remaining().unwrap() <= Duration::from_secs(10));
}

/// Every refused increment leaves the key exactly as it was: value and TTL.
async fn refused_increments_at_the_ends_of_the_range_change_nothing(env: Env) {
    let ttl = Duration::from_secs(60);
    let space = |prefix: &str| env.cache.keyspace(prefix).ttl(ttl);
    let small = space("small").typed::<String, u8>().unwrap();
    let signed = space("signed").typed::<String, i32>().unwrap();
    let wide = space("wide").typed::<String, i64>().unwrap();
    let unsigned = space("unsigned").typed::<String, u64>().unwrap();

    // Persistent keys, so that a stray PEXPIRE would show.
    let cases: Vec<(String, &[u8], Vec<i64>)> = vec![
        (small.key("zero"), b"0", vec![i64::MIN, -1, 256, i64::MAX]),
        (small.key("top"), b"255", vec![1, i64::MAX, i64::MIN]),
        (
            signed.key("bottom"),
            b"-2147483648",
            vec![-1, i64::MIN, i64::MAX],
        ),
        (wide.key("max"), b"9223372036854775807", vec![1, i64::MAX]),
        (wide.key("min"), b"-9223372036854775808", vec![-1, i64::MIN]),
        (unsigned.key("zero"), b"0", vec![-1, i64::MIN]),
        (
            unsigned.key("max"),
            b"9223372036854775807",
            vec![1, i64::MAX],
        ),
    ];
    for (full_key, stored, deltas) in &cases {
        env.write_raw(full_key, stored).await;
        for &delta in deltas {
            let err = match full_key {
                k if k.starts_with(&small.key("")) => {
                    let short = &k[small.key("").len()..];
                    small.incr(short, delta).await.map(drop).unwrap_err()
                }
                k if k.starts_with(&signed.key("")) => {
                    let short = &k[signed.key("").len()..];
                    signed.incr(short, delta).await.map(drop).unwrap_err()
                }
                k if k.starts_with(&wide.key("")) => {
                    let short = &k[wide.key("").len()..];
                    wide.incr(short, delta).await.map(drop).unwrap_err()
                }
                k => {
                    let short = &k[unsigned.key("").len()..];
                    unsigned.incr(short, delta).await.map(drop).unwrap_err()
                }
            };
            assert!(
                matches!(err, Error::Overflow { .. }),
                "{full_key} {delta}: {err:?}"
            );
            let now = env.cache.raw_get(full_key).await.unwrap();
            assert_eq!(now.as_deref(), Some(*stored), "{full_key} {delta}");
        }
    }
    for (prefix, key) in [("small", "zero"), ("wide", "max"), ("unsigned", "zero")] {
        let view = env.cache.keyspace(prefix).typed::<String, i64>().unwrap();
        assert_eq!(
            view.ttl(key).await.unwrap(),
            Ttl::Persistent,
            "{prefix}:{key}"
        );
    }
    // A key that did not exist is not left behind.
    assert!(small.incr("fresh", i64::MIN).await.is_err());
    assert!(!small.exists("fresh").await.unwrap());
    // Not an integer: an error, and the TTL is not touched either.
    env.write_raw(&wide.key("text"), b"ada").await;
    let err = wide.incr("text", 1).await.unwrap_err();
    assert!(matches!(err, Error::NotAnInteger { .. }), "{err:?}");
    assert_eq!(wide.ttl("text").await.unwrap(), Ttl::Persistent);
    // Increments right up to each end still work.
    increments_reach_each_end(&small, &signed, &wide, &unsigned).await;
}

/// Increments right up to each end of every integer type's range.
async fn increments_reach_each_end(
    small: &TypedCache<String, u8>,
    signed: &TypedCache<String, i32>,
    wide: &TypedCache<String, i64>,
    unsigned: &TypedCache<String, u64>,
) {
    assert_eq!(small.incr("edge", 255).await.unwrap(), 255);
    assert_eq!(
        signed.incr("edge", i64::from(i32::MIN)).await.unwrap(),
        i32::MIN
    );
    assert_eq!(wide.incr("edge", i64::MIN).await.unwrap(), i64::MIN);
    assert_eq!(wide.incr("edge", i64::MAX).await.unwrap(), -1);
    assert_eq!(
        unsigned.incr("edge", i64::MAX).await.unwrap(),
        i64::MAX as u64
    );
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct MessageSeq(i64);

async fn counters_read_back_as_integers_under_every_codec(env: Env) {
    for codec in CODECS {
        let seqs = env
            .cache
            .keyspace(format!("seq-{}", codec.name()))
            .codec(codec)
            .typed::<u64, MessageSeq>()
            .unwrap();
        assert_eq!(seqs.incr(&7, 1).await.unwrap(), MessageSeq(1));
        assert_eq!(seqs.incr(&7, 41).await.unwrap(), MessageSeq(42));
        assert_eq!(
            seqs.get(&7).await.unwrap(),
            Some(MessageSeq(42)),
            "{codec:?}"
        );
        seqs.set(&7, &MessageSeq(100)).await.unwrap();
        assert_eq!(
            seqs.incr(&7, 1).await.unwrap(),
            MessageSeq(101),
            "{codec:?}"
        );
    }
}

async fn incr_on_non_integers_is_an_error(env: Env) {
    let names = env
        .cache
        .keyspace("name")
        .typed::<String, String>()
        .unwrap();
    names.set("a", &"ada".to_owned()).await.unwrap();
    let err = names.incr("a", 1).await.unwrap_err();
    assert!(err.is_config(), "{err:?}");
    assert!(err.to_string().contains(&names.key("a")), "{err}");

    let counts = env.cache.keyspace("name").typed::<String, i64>().unwrap();
    let err = counts.incr("a", 1).await.unwrap_err();
    assert!(matches!(err, Error::NotAnInteger { .. }), "{err:?}");
    assert_eq!(names.get("a").await.unwrap().as_deref(), Some("ada"));
}
