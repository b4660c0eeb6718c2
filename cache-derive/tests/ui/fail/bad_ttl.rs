#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(ttl = 0)]
struct Zero(u64);

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(ttl = "5y")]
struct UnknownUnit(u64);

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(ttl = "300")]
struct NoUnit(u64);

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(ttl = "999999999999999d")]
struct OutOfRange(u64);
fn main() {}
