//! What the bench's standalone cases run against: connections, typed views
//! on each codec, the `cached` crate's store, stored keys and a warm local
//! tier, built once.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use cache_core::{Cache, Cacheable, Codec, TypedCache};

use super::{BenchResult, KEYS_PER_TASK, ModelPrice, TTL_SECS, sample_price};

/// Everything the cases run against, built once.
pub(crate) struct Fixture {
    pub(crate) raw: redis::aio::MultiplexedConnection,
    /// Raw commands through redis-rs' reconnecting `ConnectionManager`, which the
    /// typed layer uses: separates its cost from the typed layer's own.
    pub(crate) raw_manager: redis::aio::ConnectionManager,
    pub(crate) client: redis::Client,
    pub(crate) raw_value: Vec<u8>,
    pub(crate) price: ModelPrice,
    pub(crate) json: TypedCache<String, ModelPrice>,
    /// The same keyspace through a handle with coalescing off.
    pub(crate) json_uncoalesced: TypedCache<String, ModelPrice>,
    pub(crate) msgpack: TypedCache<String, ModelPrice>,
    pub(crate) bincode: TypedCache<String, ModelPrice>,
    pub(crate) counters: TypedCache<u64, i64>,
    /// 100 stored keys for the batch cases.
    pub(crate) batch_keys: Vec<String>,
    /// 100 keys stored by raw redis-rs, for `raw_get_c64`.
    pub(crate) raw_get_keys: Vec<String>,
    /// For the 10%-miss case: a counter for fresh keys, the loader calls
    /// and the batches.
    pub(crate) fresh: AtomicU64,
    pub(crate) loader_calls: Arc<AtomicU64>,
    pub(crate) batches: AtomicU64,
    /// The same values behind a local in-process tier.
    pub(crate) local: TypedCache<String, ModelPrice>,
    /// A tagged keyspace: each value carries the keyspace's tag and two of
    /// its own, whose states the handle's state cache holds.
    pub(crate) tagged: TypedCache<String, ModelPrice>,
    pub(crate) peer: cached::AsyncRedisCache<String, ModelPrice>,
    /// The 16 KiB document cases' keyspaces.
    pub(crate) large: super::large::Large,
    /// fred: one client and a pool of four.
    pub(crate) fred: super::peers::FredClients,
}

impl Fixture {
    pub(crate) async fn new(url: &str) -> BenchResult<Self> {
        let client = redis::Client::open(url)?;
        let raw = client.get_multiplexed_async_connection().await?;
        let raw_manager = client.get_connection_manager().await?;
        // Throughput, not the timeout, is measured here: a generous bound keeps a
        // one-off stall of this shared machine from aborting a long run.
        let cache = Cache::builder()
            .url(url)
            .namespace("bench")
            .timeout(Duration::from_secs(5))
            .build()
            .await?;
        let with_codec = |codec: Codec| {
            cache
                .keyspace(ModelPrice::PREFIX)
                .ttl(Duration::from_secs(TTL_SECS))
                .codec(codec)
                .typed::<String, ModelPrice>()
        };
        let peer = cached::AsyncRedisCache::builder("bench-cached")
            .ttl(Duration::from_secs(TTL_SECS))
            .connection_string(url)
            .build()
            .await?;
        let json = cache.typed::<ModelPrice>()?;
        let uncoalesced = Cache::builder()
            .url(url)
            .namespace("bench")
            .timeout(Duration::from_secs(5))
            .coalesce(false)
            .build()
            .await?;
        let json_uncoalesced = uncoalesced.typed::<ModelPrice>()?;
        let mut raw = raw;
        for i in 0..KEYS_PER_TASK {
            let value = serde_json::to_vec(&sample_price())?;
            redis::cmd("SET")
                .arg(format!("bench-get:{i}"))
                .arg(value)
                .query_async::<()>(&mut raw)
                .await?;
        }
        let batch_keys: Vec<String> = (0..100).map(|i| format!("batch-{i}")).collect();
        for key in &batch_keys {
            json.set(key, &sample_price()).await?;
        }
        let local = warm_local_tier(&cache, &batch_keys).await?;
        let tagged = tagged_keyspace(&cache, &batch_keys).await?;
        let value = serde_json::to_vec(&sample_price())?;
        let fred = super::peers::FredClients::connect(url, &value).await?;
        Ok(Fixture {
            fred,
            large: super::large::Large::new(&cache)?,
            tagged,
            raw,
            raw_manager,
            client,
            raw_value: serde_json::to_vec(&sample_price())?,
            price: sample_price(),
            json,
            json_uncoalesced,
            batch_keys,
            raw_get_keys: (0..KEYS_PER_TASK)
                .map(|i| format!("bench-get:{i}"))
                .collect(),
            fresh: AtomicU64::new(0),
            loader_calls: Arc::default(),
            batches: AtomicU64::new(0),
            local,
            msgpack: with_codec(Codec::MsgPack)?,
            bincode: with_codec(Codec::Bincode)?,
            counters: cache.keyspace("bench-seq").typed::<u64, i64>()?,
            peer,
        })
    }
}

/// The local tier of `l1_hit_c64`, its values written and each read once,
/// so that every case's read is a local hit.
async fn warm_local_tier(
    cache: &Cache,
    batch_keys: &[String],
) -> BenchResult<TypedCache<String, ModelPrice>> {
    let local = cache
        .keyspace("bench-local")
        .ttl(Duration::from_secs(TTL_SECS))
        .local(10_000, Duration::from_secs(60))
        .typed::<String, ModelPrice>()?;
    for key in batch_keys {
        local.set(key, &sample_price()).await?;
    }
    // Serving once its invalidation connection is up, and once the
    // invalidations of the writes above have come back: then warm it.
    let started = std::time::Instant::now();
    while local.local_is_live() != Some(true)
        || (local.local_stats().map_or(0, |stats| stats.invalidations) < 100
            && started.elapsed() < Duration::from_secs(2)
            && cache.redis_connection().is_some())
    {
        if started.elapsed() > Duration::from_secs(10) {
            return Err("the local tier's invalidation connection never came up".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for key in batch_keys {
        local.get_shared(key).await?;
    }
    Ok(local)
}

/// The tagged keyspace of `typed_get_tagged_c64`, its values written and its
/// tag states in the state cache (no MGET left in a read of every key).
async fn tagged_keyspace(
    cache: &Cache,
    keys: &[String],
) -> BenchResult<TypedCache<String, ModelPrice>> {
    let tagged = cache
        .keyspace("bench-tagged")
        .ttl(Duration::from_secs(TTL_SECS))
        .tagged()
        .typed::<String, ModelPrice>()?;
    for key in keys {
        let tags = ["provider:openai", "tenant:acme"];
        tagged.set_tagged(key, &sample_price(), &tags).await?;
    }
    let mut raw = cache.redis_connection().ok_or("the bench runs on Redis")?;
    let started = std::time::Instant::now();
    loop {
        let before = mget_calls(&mut raw).await?;
        for key in keys {
            tagged.get(key).await?;
        }
        if mget_calls(&mut raw).await? == before {
            return Ok(tagged);
        }
        if started.elapsed() > Duration::from_secs(10) {
            return Err("the tag states never stayed in the state cache".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many MGETs the server has run.
async fn mget_calls(raw: &mut cache_core::RedisConnection) -> BenchResult<u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(raw)
        .await?;
    let line = info.lines().find(|l| l.starts_with("cmdstat_mget:"));
    let calls = line.and_then(|l| l.split(['=', ',']).nth(1));
    Ok(calls.and_then(|c| c.parse().ok()).unwrap_or(0))
}
