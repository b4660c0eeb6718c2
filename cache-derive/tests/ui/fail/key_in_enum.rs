#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
enum A {
    One {
        #[cache(key)]
        id: u64,
    },
    Two,
}
fn main() {}
