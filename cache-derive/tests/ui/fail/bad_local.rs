#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(local(capacity = 100))]
struct MissingTtl(u64);

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(local(capacity = 0, ttl = "5s"))]
struct ZeroCapacity(u64);

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(local(capacity = 10, ttl = "400d"))]
struct TooLong(u64);
fn main() {}
