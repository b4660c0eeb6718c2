// codec = "plain" holds one string, byte string or integer, with no header.
#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(codec = "plain")]
struct Price {
    #[cache(key)]
    model: String,
    input: f64,
}

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(codec = "plain", key_type = "String")]
struct Ratio(f64);

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(codec = "plain", key_type = "String", tagged, fail_safe = "1m")]
struct Token(String);

fn main() {}
