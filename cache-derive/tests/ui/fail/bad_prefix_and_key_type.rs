// A bad prefix and a key field whose type is not a key type: both reported
// in one compile (the key type is checked even when the attributes fail).
#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(prefix = "model price", ttl = "5m")]
struct Price {
    #[cache(key)]
    model: f64,
    input_per_1k: f64,
}
fn main() {}
