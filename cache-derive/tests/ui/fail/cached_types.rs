// Type errors are reported where they are written: a key part that is not a
// key, a cached type that is not serde, a `cache` that is not a handle.
use cache_core::{cached, Cache};

struct NotSerde;

#[cached(cache = cache())]
async fn not_a_key(filter: Vec<u64>) -> u64 {
    filter.len() as u64
}

#[cached(cache = cache(), key = id)]
async fn not_serde(id: u64) -> Option<NotSerde> {
    let _ = id;
    None
}

#[cached(cache = "redis://localhost")]
async fn not_a_handle(id: u64) -> u64 {
    id
}

fn cache() -> &'static Cache {
    unimplemented!()
}

fn main() {}
