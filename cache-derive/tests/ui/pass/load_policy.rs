use cache_core::{Cacheable, FailurePolicy, LoadPolicy};
use std::time::Duration;

#[derive(serde::Serialize, serde::Deserialize, Cacheable)]
#[cache(
    prefix = "price",
    ttl = "5m",
    negative_ttl = "30s",
    jitter = 0.1,
    early_refresh = 0.2,
    on_failure = "closed",
    distributed(lease = "5s", wait = "2s"),
    local(capacity = 10_000, ttl = "5s")
)]
struct ModelPrice {
    #[cache(key)]
    model: String,
}

fn main() {
    let expected = LoadPolicy::DEFAULT
        .negative_ttl(Duration::from_secs(30))
        .jitter(0.1)
        .early_refresh(0.2)
        .on_failure(FailurePolicy::Closed)
        .distributed(Duration::from_secs(5), Duration::from_secs(2));
    assert_eq!(ModelPrice::LOAD, expected);
    assert_eq!(ModelPrice::LOCAL, Some(cache_core::LocalSettings::new(10_000, Duration::from_secs(5))));
    let _ = ModelPrice { model: String::new() }.model;
}
