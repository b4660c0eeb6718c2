//! What the cache-aside suites share: a derived price type and its keyspace.

use std::time::Duration;

use cache_core::{Cacheable, LoadPolicy, TypedCache};
use cache_tests::Env;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Cacheable)]
#[cache(prefix = "price", ttl = "5m", negative_ttl = "200ms", jitter = 0.2)]
pub(crate) struct ModelPrice {
    #[cache(key)]
    pub(crate) model: String,
    pub(crate) input_per_1k: f64,
}

pub(crate) fn prices(
    env: &Env,
    policy: LoadPolicy,
    ttl: Duration,
) -> TypedCache<String, ModelPrice> {
    env.cache
        .keyspace("price")
        .ttl(ttl)
        .load_policy(policy)
        .typed::<String, ModelPrice>()
        .unwrap()
}

pub(crate) fn price(model: &str, input: f64) -> ModelPrice {
    ModelPrice {
        model: model.to_owned(),
        input_per_1k: input,
    }
}
