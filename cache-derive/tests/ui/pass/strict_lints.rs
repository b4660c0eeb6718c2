// Generated code compiles cleanly under the strictest user lints.
#![deny(warnings, unused_qualifications)]
#![forbid(unsafe_code)]

use cache_core::{Cacheable, KeyedCacheable};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Serialize, Deserialize, Cacheable)]
#[cache(prefix = "price", ttl = "5m", version = 2, codec = "json")]
pub struct ModelPrice {
    #[cache(key)]
    pub model: String,
    pub input_per_1k: f64,
}

#[derive(Serialize, Deserialize, Cacheable)]
#[cache(prefix = "seq")]
pub struct MessageSeq(pub i64);

fn main() {
    assert_eq!(ModelPrice::PREFIX, "price");
    assert_eq!(ModelPrice::VERSION, 2);
    assert_eq!(ModelPrice::TTL, Some(Duration::from_secs(300)));
    let price = ModelPrice { model: "gpt-4".into(), input_per_1k: 0.03 };
    assert_eq!(price.cache_key(), "gpt-4");
    assert_eq!(MessageSeq::TTL, None);
    assert_eq!(MessageSeq::VERSION, 1);
    let _ = MessageSeq(1).0;
    let _ = price.input_per_1k;
}
