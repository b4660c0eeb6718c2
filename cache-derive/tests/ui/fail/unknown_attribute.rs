#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(prefix = "a", expiry = "5m")]
struct A {
    #[cache(id)]
    id: u64,
}
fn main() {}
