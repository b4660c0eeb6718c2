#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(prefix = "")]
struct Empty(u64);

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(prefix = "user:{id}")]
struct Malformed(u64);
fn main() {}
