//! What every example shares: connect to Redis when `REDIS_URL` is set,
//! otherwise use the embedded memory backend.

use cache_core::Cache;

/// A cache under `namespace`: Redis at `REDIS_URL`, or in memory.
pub(crate) async fn connect(namespace: &str) -> cache_core::Result<Cache> {
    let builder = Cache::builder().namespace(namespace);
    match std::env::var("REDIS_URL") {
        Ok(url) => {
            println!("backend: Redis at {}", cache_core::redact_url(&url));
            builder.url(url).build().await
        }
        Err(_) => {
            println!("backend: embedded memory (set REDIS_URL to use Redis)");
            builder.build_memory()
        }
    }
}
