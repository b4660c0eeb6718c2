//! Keys shared with other clients: a plain-codec keyspace whose values are
//! the bytes redis-cli (or a service in another language) reads and writes,
//! a counter that `INCR` and typed reads agree on, and the escape hatch on
//! full keys. Here the "other client" is redis-rs' own connection on Redis,
//! and the escape hatch on the memory backend:
//!
//! ```text
//! cargo run --example shared_keys
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example shared_keys
//! ```

use std::time::Duration;

use cache_core::redis::AsyncCommands;
use cache_core::{Cache, Codec};

mod support;

/// Writes `text` at `full_key` the way `redis-cli SET full_key text` would.
async fn other_client_set(cache: &Cache, full_key: &str, text: &str) -> cache_core::Result<()> {
    match cache.redis_connection() {
        Some(mut connection) => {
            let written: cache_core::redis::RedisResult<()> = connection.set(full_key, text).await;
            written.map_err(|error| cache_core::Error::config(format!("SET failed: {error}")))
        }
        None => cache.raw_set(full_key, text.as_bytes(), None).await,
    }
}

#[tokio::main]
async fn main() -> cache_core::Result<()> {
    let cache = support::connect("shared_keys").await?;

    // Greetings another service writes as plain text.
    let greetings = cache
        .keyspace("greeting")
        .codec(Codec::Plain)
        .ttl(Duration::from_secs(300))
        .typed::<str, String>()?;
    let key = greetings.key("fr");
    other_client_set(&cache, &key, "bonjour").await?;
    println!("redis-cli SET {key} bonjour");
    println!("typed GET  -> {:?}", greetings.get("fr").await?);
    greetings.set("en", &"hello".to_owned()).await?;
    let stored = cache.raw_get(&greetings.key("en")).await?;
    println!(
        "typed SET, redis-cli GET {} -> {:?}",
        greetings.key("en"),
        stored.as_deref().map(String::from_utf8_lossy)
    );

    // A counter: INCR from anywhere, typed reads agree.
    let calls = cache.keyspace("calls").typed::<str, i64>()?;
    let counter = calls.key("gpt-4");
    cache.raw_incr(&counter, 41).await?;
    println!("redis-cli INCRBY {counter} 41");
    println!("typed incr -> {}", calls.incr("gpt-4", 1).await?);
    println!("typed GET  -> {:?}", calls.get("gpt-4").await?);

    // The escape hatch: full keys as they are, on every backend.
    let legacy = "legacy:session:7";
    cache.raw_set(legacy, b"ada", None).await?;
    cache.raw_expire(legacy, Duration::from_secs(60)).await?;
    println!("{legacy}: ttl {:?}", cache.raw_ttl(legacy).await?);
    println!("{legacy}: deleted {}", cache.raw_delete(legacy).await?);

    // A value type plain cannot hold is refused when the keyspace is built.
    let refused = cache
        .keyspace("ratio")
        .codec(Codec::Plain)
        .typed::<str, f64>();
    println!(
        "plain f64 -> {}",
        refused.err().map(|e| e.to_string()).unwrap_or_default()
    );
    Ok(())
}
