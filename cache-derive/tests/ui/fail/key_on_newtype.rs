#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
struct Seq(#[cache(key)] i64);

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(key_type = "u64")]
struct Both {
    #[cache(key)]
    id: u64,
}
fn main() {}
