//! An LLM gateway's cache: model prices (5 minutes, cache-aside in front of a
//! price table), a JWT blacklist whose entries expire when the token would
//! have, and a per-user API-call counter checked against a limit.
//!
//! ```text
//! cargo run --example model_prices                                   # memory
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example model_prices  # Redis
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_core::{Cacheable, TypedCache};
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

/// A revoked token, remembered until the token itself would have expired.
#[derive(Debug, Serialize, Deserialize, Cacheable)]
#[cache(prefix = "jwt-revoked")]
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

    // --- Prices, cache-aside ---------------------------------------------------
    let prices = cache.typed::<ModelPrice>();
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

    // --- JWT blacklist ---------------------------------------------------------
    let revoked = cache.typed::<RevokedToken>();
    let token_exp = unix_now() + 900; // the token's `exp` claim: 15 minutes from now
    let remaining = Duration::from_secs(token_exp.saturating_sub(unix_now()));
    let entry = RevokedToken {
        jti: "token-123".into(),
        reason: "user logged out".into(),
    };
    if remaining.is_zero() {
        println!("token already expired; nothing to remember");
    } else {
        revoked.put_with_ttl(&entry, remaining).await?;
    }
    let is_revoked = revoked.exists("token-123").await?;
    println!(
        "token-123 revoked: {is_revoked}, remembered for {:?}; token-456 revoked: {}",
        revoked
            .ttl("token-123")
            .await?
            .remaining()
            .unwrap_or_default(),
        revoked.exists("token-456").await?
    );
    assert!(is_revoked);

    // --- API calls against a limit ---------------------------------------------
    let calls = cache.typed::<ApiCalls>();
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
    Ok(())
}
