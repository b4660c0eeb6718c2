#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
struct A {
    #[cache(key)]
    id: u64,
    #[cache(key)]
    name: String,
}
fn main() {}
