// These UI tests build cache-core without its `msgpack` feature.
#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(codec = "msgpack")]
struct A(u64);
fn main() {}
