//! The quick start: a typed set/get with a TTL, a miss, a delete and a counter.
//!
//! Runs on the embedded memory backend, or against Redis when `REDIS_URL` is set:
//!
//! ```text
//! cargo run --example quickstart
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example quickstart
//! ```

use std::time::Duration;

use cache_core::Ttl;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct ModelPrice {
    model: String,
    input_per_1k: f64,
    output_per_1k: f64,
}

mod support;

#[tokio::main]
async fn main() -> cache_core::Result<()> {
    let cache = support::connect("quickstart").await?;

    // Prices are cached for five minutes.
    let prices = cache
        .keyspace("price")
        .ttl(Duration::from_secs(300))
        .typed::<String, ModelPrice>()?;
    let gpt4 = ModelPrice {
        model: "gpt-4".into(),
        input_per_1k: 0.03,
        output_per_1k: 0.06,
    };
    prices.set("gpt-4", &gpt4).await?;
    println!("SET {} (TTL 300 s)", prices.key("gpt-4"));
    let retired = ModelPrice {
        model: "gpt-3".into(),
        input_per_1k: 0.02,
        output_per_1k: 0.02,
    };
    prices.set("gpt-3", &retired).await?;
    println!("SET {} (TTL 300 s)", prices.key("gpt-3"));

    let read = prices.get("gpt-4").await?;
    println!("GET {} -> {read:?}", prices.key("gpt-4"));
    if let Ttl::Expires(left) = prices.ttl("gpt-4").await? {
        println!("TTL {} -> {} s left", prices.key("gpt-4"), left.as_secs());
    }

    let miss = prices.get("no-such-model").await?;
    println!("GET {} -> {miss:?} (a miss)", prices.key("no-such-model"));

    let existed = prices.delete("gpt-3").await?;
    println!("DEL {} -> existed: {existed}", prices.key("gpt-3"));
    println!(
        "GET {} -> {:?}",
        prices.key("gpt-3"),
        prices.get("gpt-3").await?
    );

    // An API-call counter: atomic, and it expires with its one-minute window.
    let calls = cache
        .keyspace("calls")
        .ttl(Duration::from_secs(60))
        .typed::<String, u64>()?;
    for _ in 0..3 {
        let count = calls.incr("user-42", 1).await?;
        println!("INCR {} -> {count}", calls.key("user-42"));
    }
    Ok(())
}
