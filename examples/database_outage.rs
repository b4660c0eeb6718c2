//! Model prices served through a database outage and a slow query, with
//! fail-safe: once a price has expired, a failed load answers with the last
//! good price (and nobody retries the database before the throttle runs
//! out), and a load slower than the soft timeout answers with it at once
//! while the query finishes in the background.
//!
//! ```text
//! cargo run --example database_outage
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example database_outage
//! ```

mod support;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use cache_core::{Cacheable, Freshness, TypedCache};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Cacheable)]
#[cache(
    prefix = "price",
    ttl = "1s",
    fail_safe = "1h",
    fail_safe_throttle = "2s",
    soft_timeout = "50ms",
    hard_timeout = "5s"
)]
struct ModelPrice {
    #[cache(key)]
    model: String,
    input_per_1k: f64,
}

/// How the database behaves right now.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Database {
    Up,
    Down,
    Slow,
}

/// Stands in for the price table, with a switch for its health.
struct PriceTable {
    rows: Mutex<HashMap<&'static str, f64>>,
    health: Mutex<Database>,
    queries: AtomicUsize,
}

impl PriceTable {
    async fn load(&self, model: &str) -> Result<Option<ModelPrice>, String> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        let health = *self.health.lock().unwrap_or_else(PoisonError::into_inner);
        match health {
            Database::Down => return Err("connection refused".to_owned()),
            Database::Slow => tokio::time::sleep(Duration::from_millis(500)).await,
            Database::Up => {}
        }
        let rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(rows.get(model).map(|&input_per_1k| ModelPrice {
            model: model.to_owned(),
            input_per_1k,
        }))
    }

    fn set(&self, health: Database) {
        *self.health.lock().unwrap_or_else(PoisonError::into_inner) = health;
    }
}

const MODELS: [&str; 3] = ["gpt-4", "claude-3", "llama-3"];

/// One round of lookups: prints each answer and its freshness; returns the
/// slowest call and how many answers were stale.
async fn round(
    prices: &TypedCache<String, ModelPrice>,
    table: &Arc<PriceTable>,
) -> cache_core::Result<(Duration, usize)> {
    let (mut slowest, mut stale) = (Duration::ZERO, 0);
    for model in MODELS {
        let table = Arc::clone(table);
        let started = Instant::now();
        let loaded = prices
            .try_get_or_load_detailed(model, move || async move { table.load(model).await })
            .await?;
        slowest = slowest.max(started.elapsed());
        let price = loaded.value.map(|p| p.input_per_1k);
        println!("  {model}: {price:?} ({:?})", loaded.freshness);
        stale += usize::from(loaded.freshness != Freshness::Fresh);
    }
    Ok((slowest, stale))
}

#[tokio::main]
async fn main() -> cache_core::Result<()> {
    let cache = support::connect("outage-demo").await?;
    let prices = cache.typed::<ModelPrice>()?;
    let rows = HashMap::from([("gpt-4", 0.03), ("claude-3", 0.015), ("llama-3", 0.0002)]);
    let table = Arc::new(PriceTable {
        rows: Mutex::new(rows),
        health: Mutex::new(Database::Up),
        queries: AtomicUsize::new(0),
    });
    let queries = || table.queries.load(Ordering::SeqCst);

    println!("Database up: prices are loaded and cached for 1 s");
    round(&prices, &table).await?;

    table.set(Database::Down);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    println!("\nDatabase down, prices expired: the last good prices answer");
    let before = queries();
    let (_, stale) = round(&prices, &table).await?;
    assert_eq!(stale, 3);
    println!("Again, within the throttle: no query reaches the database");
    round(&prices, &table).await?;
    println!("queries while down: {}", queries() - before);
    assert_eq!(
        queries() - before,
        3,
        "one failed query per model, then the throttle"
    );

    table.set(Database::Slow);
    table
        .rows
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert("gpt-4", 0.025);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    println!("\nDatabase back but slow (500 ms): answered within the soft timeout");
    let (slowest, stale) = round(&prices, &table).await?;
    println!("slowest call {slowest:?}");
    assert_eq!(stale, 3);
    tokio::time::sleep(Duration::from_millis(700)).await;
    println!("The slow queries finished in the background: fresh prices");
    let (_, stale) = round(&prices, &table).await?;
    assert_eq!(stale, 0);
    assert_eq!(
        prices.get("gpt-4").await?.map(|p| p.input_per_1k),
        Some(0.025)
    );

    let stats = cache.stats();
    println!(
        "\nqueries {}; stale answers: loader errors {}, loader timeouts {}; background loads {}",
        queries(),
        stats.stale_loader_errors,
        stats.stale_loader_timeouts,
        stats.background_loads
    );
    Ok(())
}
