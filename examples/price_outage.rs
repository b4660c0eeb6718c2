//! The model price cache staying up while Redis is down: prices are served
//! from the price table (fail-open `get_or_load`), every call returns within
//! the timeout, errors are counted, and the same handle recovers when Redis
//! is back.
//!
//! ```text
//! cargo run --example price_outage
//! ```
//!
//! It spawns (and later kills) its own redis-server, so it needs one installed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_core::{Cache, Cacheable};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Cacheable)]
#[cache(
    prefix = "price",
    ttl = "5m",
    on_failure = "open",
    negative_ttl = "30s"
)]
struct ModelPrice {
    #[cache(key)]
    model: String,
    input_per_1k: f64,
}

/// Stands in for the database the prices come from.
struct PriceTable {
    rows: HashMap<&'static str, f64>,
    reads: AtomicUsize,
}

impl PriceTable {
    async fn load(&self, model: &str) -> Option<ModelPrice> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.rows.get(model).map(|&input_per_1k| ModelPrice {
            model: model.to_owned(),
            input_per_1k,
        })
    }
}

const MODELS: [&str; 3] = ["gpt-4", "claude-3", "llama-3"];

/// One round of price lookups; returns the slowest call.
async fn serve_prices(
    prices: &cache_core::TypedCache<String, ModelPrice>,
    table: &Arc<PriceTable>,
) -> cache_core::Result<Duration> {
    let mut slowest = Duration::ZERO;
    for model in MODELS {
        let started = Instant::now();
        let table = Arc::clone(table);
        let price = prices
            .get_or_load(model, move || async move { table.load(model).await })
            .await?;
        slowest = slowest.max(started.elapsed());
        println!("  {model}: {:?}", price.map(|p| p.input_per_1k));
    }
    Ok(slowest)
}

#[tokio::main]
async fn main() -> cache_core::Result<()> {
    // This example kills and restarts its server, so it always spawns its own,
    // whatever REDIS_URL or REDIS_CLUSTER_NODES say.
    if std::env::var_os("REDIS_CLUSTER_NODES").is_some() || std::env::var_os("REDIS_URL").is_some()
    {
        println!("note: price_outage spawns its own redis-server, since it kills it");
    }
    let mut redis = cache_testkit::RedisServer::start("price-outage");
    let timeout = Duration::from_millis(250);
    let cache = Cache::builder()
        .url(redis.url())
        .namespace("gateway")
        .timeout(timeout)
        .build()
        .await?;
    let prices = cache.typed::<ModelPrice>()?;
    let table = Arc::new(PriceTable {
        rows: HashMap::from([("gpt-4", 0.03), ("claude-3", 0.015), ("llama-3", 0.0002)]),
        reads: AtomicUsize::new(0),
    });

    println!("Redis up: first round loads from the table, second is served by Redis");
    serve_prices(&prices, &table).await?;
    serve_prices(&prices, &table).await?;
    let reads_before = table.reads.load(Ordering::SeqCst);
    println!("table reads so far: {reads_before}");
    assert_eq!(reads_before, 3);

    redis.kill();
    println!("\nRedis killed: prices are still served, from the table");
    let slowest = serve_prices(&prices, &table).await?;
    let reads_down = table.reads.load(Ordering::SeqCst) - reads_before;
    let stats = cache.stats();
    println!(
        "slowest call {slowest:?} (timeout {timeout:?}); table reads {reads_down}; \
         backend errors {}, timeouts {}",
        stats.backend_errors, stats.timeouts
    );
    assert_eq!(reads_down, 3);
    assert!(stats.backend_errors + stats.timeouts > 0);

    redis.restart();
    println!("\nRedis back: the same handle recovers");
    let started = Instant::now();
    while prices.get("gpt-4").await.is_err() {
        if started.elapsed() > Duration::from_secs(5) {
            return Err(cache_core::Error::config(
                "Redis did not come back within 5 s",
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("reconnected after {:?}", started.elapsed());
    // The restarted Redis kept nothing (unless a write-back from the outage
    // landed after it came back), so this round reloads what is missing.
    serve_prices(&prices, &table).await?;
    let reads_after_reload = table.reads.load(Ordering::SeqCst);
    serve_prices(&prices, &table).await?;
    println!(
        "table reads in all: {}; the last round was served by Redis",
        reads_after_reload
    );
    assert_eq!(table.reads.load(Ordering::SeqCst), reads_after_reload);
    println!("final counters: {:?}", cache.stats());
    Ok(())
}
