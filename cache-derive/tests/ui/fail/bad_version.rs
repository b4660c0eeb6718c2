#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(version = 0)]
struct Zero(u64);

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(version = "two")]
struct NotANumber(u64);
fn main() {}
