// `crate = "..."` lets a facade crate re-export cache-core under another path.
mod facade {
    pub use cache_core as inner;
}

#[derive(serde::Serialize, serde::Deserialize, cache_core::Cacheable)]
#[cache(crate = "facade::inner", prefix = "user")]
struct User {
    #[cache(key)]
    id: u64,
}

fn main() {
    use facade::inner::Cacheable;
    assert_eq!(User::PREFIX, "user");
    let _ = User { id: 1 }.id;
}
