// A key field whose type is not a key type: the error points at the type.
#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(prefix = "price", ttl = "5m")]
struct Price {
    #[cache(key)]
    model: f32,
    input_per_1k: f64,
}

// A bad prefix does not hide a codec whose feature is off.
#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(prefix = "user:{id}", codec = "msgpack")]
struct User {
    #[cache(key)]
    id: u64,
}
fn main() {}
