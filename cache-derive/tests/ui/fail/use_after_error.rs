use cache_core::Cacheable;

// After a failed derive, using the type shows no follow-on error.
#[derive(serde::Serialize, serde::Deserialize, Cacheable)]
#[cache(prefix = "bad prefix")]
struct Price {
    #[cache(key)]
    model: String,
}

fn main() {
    let prices = cache_core::Cache::memory().typed::<Price>().unwrap();
    let _ = prices.key("gpt-4");
}
