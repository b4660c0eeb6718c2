#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(prefix = "a", ttl = 5)]
#[cache(prefix = "b")]
struct A {
    id: u64,
}
fn main() {}
