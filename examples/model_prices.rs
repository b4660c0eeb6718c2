//! An LLM gateway's cache: model prices (5 minutes, cache-aside in front of a
//! price table), a JWT blacklist whose entries expire when the token would
//! have, a per-user API-call counter checked against a limit, a rate limiter,
//! and a 30 s lock around the nightly price-table refresh.
//!
//! ```text
//! cargo run --example model_prices                                   # memory
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example model_prices  # Redis
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_core::{Cacheable, RateLimit, TypedCache};
use serde::{Deserialize, Serialize};

mod support;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Cacheable)]
#[cache(prefix = "price", ttl = "5m", version = 1)]
struct ModelPrice {
    #[cache(key)]
    model: String,
    input_per_1k: f64,
    output_per_1k: f64,
}

/// Why a token was revoked, kept as long as the token would have been valid.
#[derive(Debug, Serialize, Deserialize, Cacheable)]
#[cache(prefix = "jwt-revocation")]
struct RevokedToken {
    #[cache(key)]
    jti: String,
    reason: String,
}

/// API calls by one user in the current one-minute window.
#[derive(Debug, Serialize, Deserialize, Cacheable)]
#[cache(prefix = "api-calls", ttl = "1m")]
struct ApiCalls(u32);

/// Stands in for the database table the gateway reads prices from.
struct PriceTable {
    rows: HashMap<String, ModelPrice>,
    reads: AtomicUsize,
}

impl PriceTable {
    async fn load(&self, model: &str) -> Option<ModelPrice> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await; // a database round trip
        self.rows.get(model).cloned()
    }
}

/// Cache-aside: the cache first, the table on a miss, then fill the cache.
async fn price_of(
    prices: &TypedCache<String, ModelPrice>,
    table: &PriceTable,
    model: &str,
) -> cache_core::Result<Option<ModelPrice>> {
    if let Some(hit) = prices.get(model).await? {
        return Ok(Some(hit));
    }
    let Some(loaded) = table.load(model).await else {
        return Ok(None);
    };
    prices.put(&loaded).await?;
    Ok(Some(loaded))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> cache_core::Result<()> {
    let cache = support::connect("gateway").await?;
    prices_aside(&cache).await?;
    local_tier(&cache).await?;
    jwt_blacklist(&cache).await?;
    api_limits(&cache).await?;
    refresh_lock(&cache).await
}

/// Prices, cache-aside: the second read is a hit; an update overwrites.
async fn prices_aside(cache: &cache_core::Cache) -> cache_core::Result<()> {
    let prices = cache.typed::<ModelPrice>()?;
    prices.delete("gpt-4").await?; // start cold, so the first read goes to the table
    let gpt4 = ModelPrice {
        model: "gpt-4".into(),
        input_per_1k: 0.03,
        output_per_1k: 0.06,
    };
    let table = PriceTable {
        rows: HashMap::from([("gpt-4".to_owned(), gpt4.clone())]),
        reads: AtomicUsize::new(0),
    };
    let first = price_of(&prices, &table, "gpt-4").await?;
    let second = price_of(&prices, &table, "gpt-4").await?;
    println!("price of gpt-4: {first:?}");
    println!(
        "two reads, {} table read(s); {} expires in {:?}",
        table.reads.load(Ordering::SeqCst),
        prices.key("gpt-4"),
        prices.ttl("gpt-4").await?.remaining().unwrap_or_default()
    );
    assert_eq!(first, second);
    assert_eq!(
        table.reads.load(Ordering::SeqCst),
        1,
        "the second read is a cache hit"
    );
    assert_eq!(price_of(&prices, &table, "unknown-model").await?, None);

    // A price update overwrites the cached entry (and restarts its TTL).
    let cheaper = ModelPrice {
        input_per_1k: 0.01,
        ..gpt4
    };
    prices.put(&cheaper).await?;
    println!("after the update: {:?}", prices.get("gpt-4").await?);
    assert_eq!(prices.get("gpt-4").await?, Some(cheaper));
    Ok(())
}

/// A local tier kept coherent across gateway instances: hot prices are
/// answered from the process; a price change through any instance (or any
/// Redis client) drops the others' local copies.
async fn local_tier(cache: &cache_core::Cache) -> cache_core::Result<()> {
    let local_prices = |cache: &cache_core::Cache| {
        cache
            .keyspace("price-local")
            .ttl(Duration::from_secs(300))
            .local(10_000, Duration::from_secs(60))
            .typed::<String, f64>()
    };
    let instance_a = local_prices(cache)?;
    let other = support::another_instance(cache, "gateway").await?;
    let instance_b = local_prices(&other)?;
    while instance_a.local_is_live() != Some(true) || instance_b.local_is_live() != Some(true) {
        tokio::time::sleep(Duration::from_millis(5)).await; // the invalidation connection
    }
    instance_b.set("gpt-4o", &0.005).await?;
    tokio::time::sleep(Duration::from_millis(50)).await; // let that write's invalidation pass
    instance_a.get("gpt-4o").await?; // from Redis, kept locally
    assert_eq!(instance_a.get("gpt-4o").await?, Some(0.005)); // from the process
    instance_b.set("gpt-4o", &0.004).await?;
    let changed = std::time::Instant::now();
    while instance_a.get("gpt-4o").await? != Some(0.004) {
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "instance A stayed stale"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let stats = instance_a.local_stats().unwrap_or_default();
    println!(
        "instance A saw B's price change after {:?}; its local tier: {} hits, {} invalidations",
        changed.elapsed(),
        stats.hits,
        stats.invalidations
    );
    assert!(stats.hits >= 1);
    Ok(())
}

/// A JWT blacklist: a revoked token is remembered until its own `exp`, then
/// forgotten.
async fn jwt_blacklist(cache: &cache_core::Cache) -> cache_core::Result<()> {
    let revoked = cache.keyspace("jwt-revoked").flags::<str>()?;
    let token_exp = SystemTime::now() + Duration::from_secs(900); // the `exp` claim
    revoked.raise_until("token-123", token_exp).await?;
    let expired_exp = UNIX_EPOCH + Duration::from_secs(unix_now() - 60);
    let remembered = revoked.raise_until("token-old", expired_exp).await?;
    let is_revoked = revoked.is_raised("token-123").await?;
    println!(
        "token-123 revoked: {is_revoked} (until its exp); token-456 revoked: {}; \
         an already expired token needs no entry: stored = {remembered}",
        revoked.is_raised("token-456").await?
    );
    assert!(is_revoked && !remembered);

    // A derived type works for the same job when the entry carries data.
    let revocations = cache.typed::<RevokedToken>()?;
    let entry = RevokedToken {
        jti: "token-123".into(),
        reason: "user logged out".into(),
    };
    let left = token_exp
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    if !left.is_zero() {
        revocations.put_with_ttl(&entry, left).await?;
    }
    println!(
        "why: {:?}",
        revocations.get("token-123").await?.map(|r| r.reason)
    );
    Ok(())
}

/// API calls against a limit: a fixed-window counter, then the sliding
/// window building block.
async fn api_limits(cache: &cache_core::Cache) -> cache_core::Result<()> {
    let calls = cache.typed::<ApiCalls>()?;
    calls.delete("user-42").await?;
    let limit = 5;
    let mut allowed = 0;
    for attempt in 1..=7 {
        let ApiCalls(count) = calls.incr("user-42", 1).await?;
        let ok = count <= limit;
        allowed += usize::from(ok);
        println!(
            "call {attempt}: count {count}/{limit} -> {}",
            if ok { "allowed" } else { "rejected" }
        );
    }
    assert_eq!(allowed, 5);
    println!(
        "window {} resets in {:?}",
        calls.key("user-42"),
        calls.ttl("user-42").await?.remaining().unwrap_or_default()
    );

    // The same limit as a building block: a sliding window, so a burst at a
    // window edge cannot pass twice the limit.
    let limiter = cache
        .keyspace("api-limit")
        .rate_limiter::<str>(RateLimit::sliding_window(5, Duration::from_secs(60)))?;
    limiter.reset("user-42").await?;
    let mut decisions = Vec::new();
    for _ in 0..7 {
        decisions.push(limiter.hit("user-42").await?);
    }
    let last = decisions[decisions.len() - 1];
    println!(
        "sliding window: {} of 7 allowed; last: count {}, remaining {}, retry in {:?}",
        decisions.iter().filter(|d| d.allowed).count(),
        last.count,
        last.remaining,
        last.reset_after
    );
    assert_eq!(decisions.iter().filter(|d| d.allowed).count(), 5);
    Ok(())
}

/// A 30 s lock around a shared resource, with its fencing token.
async fn refresh_lock(cache: &cache_core::Cache) -> cache_core::Result<()> {
    let locks = cache.keyspace("lock").locks::<str>()?;
    let lease = Duration::from_secs(30);
    let guard = locks
        .acquire("price-refresh", lease, Duration::from_secs(2))
        .await?;
    println!(
        "lock {} held, fencing token {} (the price table refuses writes with older tokens)",
        guard.key(),
        guard.fencing_token()
    );
    let second = locks.try_acquire("price-refresh", lease).await?;
    println!(
        "a second instance trying the same lock gets it: {}",
        second.is_some()
    );
    assert!(second.is_none());
    println!("released: {}", guard.release().await?);
    Ok(())
}
