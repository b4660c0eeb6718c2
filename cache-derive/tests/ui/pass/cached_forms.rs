// Every form of #[cached] compiles cleanly under strict user lints: the four
// return types, a batch, methods on `&self` and `self: Arc<Self>`, borrowed
// and pattern arguments, generic return types, a handle from a function.
#![deny(warnings, unused_qualifications)]
#![forbid(unsafe_code)]

use cache_core::{cached, Cache};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

#[derive(Debug)]
pub struct AppError(String);

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<cache_core::Error> for AppError {
    fn from(error: cache_core::Error) -> Self {
        AppError(error.to_string())
    }
}

static CACHE: OnceLock<Cache> = OnceLock::new();

fn cache() -> &'static Cache {
    CACHE.get_or_init(Cache::memory)
}

#[cached(cache = cache(), prefix = "price", ttl = "5m", version = 2, negative_ttl = "30s")]
pub async fn price(model: &str) -> Result<Option<f64>, AppError> {
    Ok((!model.is_empty()).then_some(0.03))
}

#[cached(cache = cache(), ttl = 60, hard_timeout = "2s", on_failure = "closed")]
pub async fn count((tenant, id): (u64, u64)) -> Result<u64, AppError> {
    Ok(tenant + id)
}

#[cached(cache = cache(), key = (), jitter = 0.1, early_refresh = 0.2)]
pub async fn everything() -> Vec<String> {
    vec!["a".to_owned()]
}

#[cached(cache = cache(), batch, fail_safe = "1h")]
pub async fn names(ids: Vec<u64>) -> BTreeMap<u64, String> {
    ids.into_iter().map(|id| (id, id.to_string())).collect()
}

#[cached(cache = cache, local(capacity = 10, ttl = "1s"))]
pub async fn decoded<T: Serialize + DeserializeOwned + Default + Send + 'static>(
    cache: &Cache,
    id: u32,
) -> Option<T> {
    let _ = id;
    Some(T::default())
}

#[derive(Clone)]
pub struct Service {
    cache: Arc<Cache>,
    greeting: String,
}

impl Service {
    #[cached(cache = self.cache, tags(tenant), distributed(lease = "5s", wait = "1s"))]
    pub async fn greet(&self, tenant: &str, name: String) -> String {
        format!("{} {name} of {tenant}", self.greeting)
    }

    #[cached(cache = self.cache, prefix = "shout", tagged)]
    pub async fn shout(self: Arc<Self>, name: &str) -> String {
        name.to_uppercase()
    }
}

fn main() {
    let service = Service { cache: Arc::new(Cache::memory()), greeting: "hi".to_owned() };
    let _ = price("gpt-4");
    let _ = count((1, 2));
    let _ = everything();
    let _ = names(vec![1]);
    let _ = decoded::<u8>(cache(), 1);
    let _ = service.greet("acme", "ada".to_owned());
    let _ = Arc::new(service.clone()).shout("ada");
    assert_eq!(price_key("gpt-4"), "price:v2:gpt-4");
    assert_eq!(count_key((1, 2)), "count:v1:1,2");
    assert_eq!(everything_key(), "everything:v1:");
    assert_eq!(names_key(&7), "names:v1:7");
    assert_eq!(decoded_key(cache(), 3), "decoded:v1:3");
    assert_eq!(service.greet_key("acme", "ada".to_owned()), "greet:v1:acme,ada");
    assert_eq!(service.shout_key("ada"), "shout:v1:ada");
    let _ = (price_invalidate("x"), names_invalidate(&1), service.greet_invalidate("a", String::new()));
    let _ = (count_invalidate((1, 1)), everything_invalidate(), decoded_invalidate(cache(), 1));
    let _ = service.shout_invalidate("a");
}
