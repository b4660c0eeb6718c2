// Tag fields: a name for unnamed fields, names by the prefix rule and
// distinct, struct fields only, a key type, and `tag` never on the type.
#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(tag)]
struct Unnamed(#[cache(tag)] u64);

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
struct Names {
    #[cache(tag = "a:b")]
    first: String,
    #[cache(tag = "zone")]
    second: String,
    #[cache(tag = "zone")]
    third: String,
}

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(key_type = "u64")]
enum Variant {
    One {
        #[cache(tag)]
        tenant: u64,
    },
}

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
struct NotAKey {
    #[cache(tag)]
    tenants: Vec<u64>,
}

fn main() {}
