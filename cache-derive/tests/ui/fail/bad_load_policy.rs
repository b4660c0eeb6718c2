#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(jitter = 1.5, early_refresh = 0.0, on_failure = "maybe", negative_ttl = "0s")]
struct A(u64);

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(distributed(lease = "5s"))]
struct B(u64);

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(hard_timeout = "soon")]
struct C(u64);
fn main() {}
