#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(codec = "yaml")]
struct A(u64);
fn main() {}
