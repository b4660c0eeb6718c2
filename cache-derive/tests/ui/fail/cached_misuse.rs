// Every misuse of #[cached]'s options is reported in one compile.
use cache_core::{cached, Cache};

#[cached(cache = cache(), ttl = "0s", colour = "red", prefix = "a b", ttl = 5, negative_ttl = "1m")]
async fn plain(id: u64) -> u64 {
    id
}

#[cached(cache = cache(), hard_timeout = "1s", on_failure = "closed")]
async fn optional(id: u64) -> Option<u64> {
    Some(id)
}

#[cached(prefix = "x")]
async fn no_cache(id: u64) -> u64 {
    id
}

#[cached(cache = cache(), batch, key = (a, b), tags(tenant))]
async fn batch_of_one(a: &[u64], b: u64, tenant: u64) -> Vec<u64> {
    let _ = (b, tenant);
    a.to_vec()
}

#[cached(cache = cache(), tags(bad, bad))]
async fn tagged_twice(bad: u64) -> u64 {
    bad
}

struct Svc;

impl Svc {
    #[cached(cache = cache())]
    async fn mutating(&mut self, id: &mut u64, more: impl Into<u64>) -> u64 {
        *id + more.into()
    }
}

fn cache() -> &'static Cache {
    unimplemented!()
}

fn main() {}
