use cache_core::Cacheable;

// A value of the wrong kind does not hide the attribute's other mistakes.
#[derive(serde::Serialize, serde::Deserialize, Cacheable)]
#[cache(prefix = 5, codec = json, ttl = "forever", version = "two")]
struct Price {
    #[cache(key)]
    model: String,
}

fn main() {}
