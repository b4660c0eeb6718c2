// #[cached] goes on async functions, and nowhere else.
use cache_core::{cached, Cache};

#[cached(cache = cache())]
fn blocking(id: u64) -> u64 {
    id
}

#[cached(cache = cache())]
async fn returns_nothing(id: u64) {
    let _ = id;
}

#[cached(cache = cache())]
struct NotAFunction;

fn cache() -> &'static Cache {
    unimplemented!()
}

fn main() {}
