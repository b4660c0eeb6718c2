//! Derived types on both backends, and their keys and TTLs seen from outside.

use std::collections::HashSet;
use std::time::Duration;

use cache_core::{Cache, Cacheable, Codec, Ttl};
use cache_tests::RedisServer;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Cacheable)]
#[cache(prefix = "price", ttl = "5m", version = 2, codec = "json")]
struct ModelPrice {
    #[cache(key)]
    model: String,
    input_per_1k: f64,
    output_per_1k: f64,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Cacheable)]
#[cache(prefix = "seq", key_type = "u64")]
struct MessageSeq(i64);

#[derive(Debug, PartialEq, Serialize, Deserialize, Cacheable)]
#[cache(prefix = "seq-mp", key_type = "u64", codec = "msgpack")]
struct PackedSeq(i64);

#[derive(Debug, PartialEq, Serialize, Deserialize, Cacheable)]
#[cache(ttl = "1500ms", codec = "bincode", key_type = "(u64, u64)")]
enum Presence {
    Online { device: String },
    Away,
}

fn gpt4() -> ModelPrice {
    ModelPrice {
        model: "gpt-4".into(),
        input_per_1k: 0.03,
        output_per_1k: 0.06,
    }
}

async fn derived_types_behave(cache: &Cache) {
    let prices = cache.typed::<ModelPrice>().unwrap();
    prices.put(&gpt4()).await.unwrap();
    assert_eq!(prices.get("gpt-4").await.unwrap(), Some(gpt4()));
    let left = prices.ttl("gpt-4").await.unwrap().remaining().unwrap();
    assert!(
        left > Duration::from_secs(298) && left <= Duration::from_secs(300),
        "{left:?}"
    );

    // Per-call overrides still work.
    prices
        .put_with_ttl(&gpt4(), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(prices.ttl("gpt-4").await.unwrap().remaining().unwrap() <= Duration::from_secs(10));

    let seqs = cache.typed::<MessageSeq>().unwrap();
    assert_eq!(seqs.incr(&1, 1).await.unwrap(), MessageSeq(1));
    assert_eq!(seqs.incr(&1, 1).await.unwrap(), MessageSeq(2));
    assert_eq!(seqs.get(&1).await.unwrap(), Some(MessageSeq(2)));
    assert_eq!(
        seqs.ttl(&1).await.unwrap(),
        Ttl::Persistent,
        "no ttl: never expires"
    );

    let packed = cache.typed::<PackedSeq>().unwrap();
    assert_eq!(packed.incr(&1, 5).await.unwrap(), PackedSeq(5));
    assert_eq!(packed.get(&1).await.unwrap(), Some(PackedSeq(5)));

    let presence = cache.typed::<Presence>().unwrap();
    let online = Presence::Online {
        device: "phone".into(),
    };
    presence.set(&(7, 9), &online).await.unwrap();
    presence.set(&(7, 10), &Presence::Away).await.unwrap();
    assert_eq!(presence.get(&(7, 9)).await.unwrap(), Some(online));
    assert_eq!(presence.get(&(7, 10)).await.unwrap(), Some(Presence::Away));
    assert!(
        presence.ttl(&(7, 9)).await.unwrap().remaining().unwrap() <= Duration::from_millis(1500)
    );
}

#[tokio::test]
async fn derived_types_on_memory() {
    derived_types_behave(&Cache::memory()).await;
}

#[tokio::test]
async fn derived_types_on_redis() {
    let redis = RedisServer::start("derive");
    derived_types_behave(&redis.cache().await).await;
}

#[tokio::test]
async fn derived_keys_and_ttls_in_redis_are_exact() {
    let redis = RedisServer::start("derive-layout");
    let cache = redis.cache().await;
    let ns = redis.namespace();
    cache
        .typed::<ModelPrice>()
        .unwrap()
        .put(&gpt4())
        .await
        .unwrap();
    cache
        .typed::<MessageSeq>()
        .unwrap()
        .incr(&42, 1)
        .await
        .unwrap();
    cache
        .typed::<Presence>()
        .unwrap()
        .set(&(1, 2), &Presence::Away)
        .await
        .unwrap();

    let mut raw = redis.raw().await;
    let price_ttl: i64 = raw.ttl(format!("{ns}:price:v2:gpt-4")).await.unwrap();
    assert!((299..=300).contains(&price_ttl), "TTL {price_ttl}");
    let seq_ttl: i64 = raw.ttl(format!("{ns}:seq:v1:42")).await.unwrap();
    assert_eq!(seq_ttl, -1);
    let seq: i64 = raw.get(format!("{ns}:seq:v1:42")).await.unwrap();
    assert_eq!(seq, 1);
    let presence_pttl: i64 = raw.pttl(format!("{ns}:presence:v1:1,2")).await.unwrap();
    assert!((1..=1500).contains(&presence_pttl), "PTTL {presence_pttl}");
}

#[tokio::test]
async fn many_tasks_never_get_the_same_sequence_number() {
    let redis = RedisServer::start("derive-seq");
    let cache = redis.cache().await;
    let seqs = cache.typed::<MessageSeq>().unwrap();
    let mut tasks = Vec::new();
    for task in 0..40u64 {
        let seqs = seqs.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..25 {
                let user = task % 4;
                got.push((user, seqs.incr(&user, 1).await.unwrap().0));
            }
            got
        }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        for pair in task.await.unwrap() {
            assert!(seen.insert(pair), "{pair:?} handed out twice");
        }
    }
    for user in 0..4u64 {
        assert_eq!(seqs.get(&user).await.unwrap(), Some(MessageSeq(250)));
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Cacheable)]
#[cache(prefix = "hot", ttl = "1m", local(capacity = 100, ttl = "10s"))]
struct HotConfig {
    #[cache(key)]
    name: String,
    value: u32,
}

#[tokio::test]
async fn a_derived_local_tier_serves_repeated_reads() {
    let redis = RedisServer::start("derive-local");
    let cache = redis.cache().await;
    let configs = cache.typed::<HotConfig>().unwrap();
    let config = HotConfig {
        name: "limits".into(),
        value: 7,
    };
    cache_tests::local_tier_live(|| configs.local_is_live()).await;
    let started = std::time::Instant::now();
    configs.put(&config).await.unwrap();
    // The write drops the local copy; its invalidation comes back too.
    while configs.local_stats().unwrap().invalidations == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no invalidation"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..5 {
        assert_eq!(
            configs.get("limits").await.unwrap(),
            Some(HotConfig {
                name: "limits".into(),
                value: 7
            })
        );
    }
    assert_eq!(cache.stats().local_hits, 4, "the first read fills the tier");
    assert_eq!(configs.local_entries(), Some(1));
}

#[test]
fn derived_settings_are_what_the_attributes_say() {
    assert_eq!(ModelPrice::PREFIX, "price");
    assert_eq!(ModelPrice::VERSION, 2);
    assert_eq!(ModelPrice::TTL, Some(Duration::from_secs(300)));
    assert_eq!(ModelPrice::CODEC, Codec::Json);
    assert_eq!(Presence::PREFIX, "presence");
    assert_eq!(Presence::CODEC, Codec::Bincode);
    assert_eq!(PackedSeq::CODEC, Codec::MsgPack);
    assert_eq!(MessageSeq::TTL, None);
}
