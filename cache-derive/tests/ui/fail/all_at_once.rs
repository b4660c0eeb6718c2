// Every mistake is reported in one compile, not one per attempt.
#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(prefix = "a b", ttl = "0s", version = 0, codec = "xml", colour = "red")]
struct A {
    #[cache(key)]
    id: u64,
    #[cache(key)]
    other: u64,
}
fn main() {}
