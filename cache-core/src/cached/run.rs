//! How a cached function's call is answered, one runner per return type.
//! A body that returns `Result` gets its own error back when it fails; a
//! caller that waited for another call's load gets `E::from(Error::Load)`.
//! A body that cannot return an error (a plain value, an `Option`, a plain
//! map) is run again in the caller's task when the cache cannot answer, so
//! the caller gets what the uncached function would have given.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Site, WrittenKey, view};
use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::key::CacheKey;

/// A body's error as the engine carries it to the calls that waited: its
/// message. The error itself goes back to the call that ran the body.
#[derive(Debug)]
struct Failed(String);

impl Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failed {}

/// Where the body's own error waits for the call that ran it.
struct ErrorSlot<E>(Arc<Mutex<Option<E>>>);

impl<E: Display> ErrorSlot<E> {
    fn new() -> (Self, Self) {
        let shared = Arc::new(Mutex::new(None));
        (ErrorSlot(Arc::clone(&shared)), ErrorSlot(shared))
    }

    /// Keeps `error`; the engine gets its message.
    fn keep(&self, error: E) -> Failed {
        let failed = Failed(error.to_string());
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
        failed
    }

    /// The body's own error if this call ran it, else `error` converted.
    fn answer(&self, error: Error) -> E
    where
        E: From<Error>,
    {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        kept.unwrap_or_else(|| E::from(error))
    }
}

/// One key through cache-aside, with the call's tags when it has some.
async fn load_one<V, E, F, Fut>(
    cache: &Cache,
    site: &'static Site,
    key: &WrittenKey,
    tags: Option<Vec<String>>,
    loader: F,
) -> Result<Option<V>>
where
    V: Serialize + DeserializeOwned + Send + 'static,
    E: Into<crate::BoxError> + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = std::result::Result<Option<V>, E>> + Send + 'static,
{
    let view = view::<WrittenKey, V>(cache, site)?;
    if tags.is_some() {
        view.space.check_tagged()?;
    }
    let tags = tags.unwrap_or_default();
    let loader = move || async move { Ok::<_, E>(loader().await?.map(|v| (v, tags))) };
    let (types, full_key) = ((view.format, view.tags_of), view.space.layout.key(key));
    Ok(view.space.load_one(types, full_key, loader).await?.value)
}

/// `Result<Option<V>, E>`: `Ok(None)` is cached only with a `negative_ttl`;
/// an `Err` is never cached.
///
/// # Errors
/// The body's error, or the cache's converted into `E`.
pub async fn result_option<V, E, F, Fut>(
    cache: &Cache,
    site: &'static Site,
    key: &WrittenKey,
    tags: Option<Vec<String>>,
    loader: F,
) -> std::result::Result<Option<V>, E>
where
    V: Serialize + DeserializeOwned + Send + 'static,
    E: From<Error> + Display + Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = std::result::Result<Option<V>, E>> + Send + 'static,
{
    let (slot, kept) = ErrorSlot::new();
    let loader = move || async move { loader().await.map_err(|error| kept.keep(error)) };
    load_one(cache, site, key, tags, loader)
        .await
        .map_err(|error| slot.answer(error))
}

/// `Result<V, E>`: an `Err` is never cached.
///
/// # Errors
/// The body's error, or the cache's converted into `E`.
pub async fn result_value<V, E, F, Fut>(
    cache: &Cache,
    site: &'static Site,
    key: &WrittenKey,
    tags: Option<Vec<String>>,
    loader: F,
) -> std::result::Result<V, E>
where
    V: Serialize + DeserializeOwned + Send + 'static,
    E: From<Error> + Display + Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = std::result::Result<V, E>> + Send + 'static,
{
    let loader = move || async move { loader().await.map(Some) };
    match result_option(cache, site, key, tags, loader).await? {
        Some(value) => Ok(value),
        None => Err(E::from(absence(cache, site, key))),
    }
}

/// The error for a cached absence found by a function that always returns
/// a value (another function with the same prefix stored it).
fn absence(cache: &Cache, site: &'static Site, key: &WrittenKey) -> Error {
    let message = "the keyspace holds a cached absence, and this function cannot return none";
    Error::Load {
        key: super::full_key(cache, site, key),
        source: Arc::new(Failed(message.to_owned())),
    }
}

/// `Option<V>`: `None` is cached only with a `negative_ttl`.
pub async fn option<V, F, Fut, A>(
    cache: &Cache,
    site: &'static Site,
    key: &WrittenKey,
    tags: Option<Vec<String>>,
    (loader, again): (F, A),
) -> Option<V>
where
    V: Serialize + DeserializeOwned + Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Option<V>> + Send + 'static,
    A: FnOnce() -> Fut,
{
    let loader = move || async move { Ok::<_, std::convert::Infallible>(loader().await) };
    match load_one(cache, site, key, tags, loader).await {
        Ok(answer) => answer,
        Err(error) => uncached(site, &error, again).await,
    }
}

/// A plain `V`.
pub async fn value<V, F, Fut, A>(
    cache: &Cache,
    site: &'static Site,
    key: &WrittenKey,
    tags: Option<Vec<String>>,
    (loader, again): (F, A),
) -> V
where
    V: Serialize + DeserializeOwned + Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = V> + Send + 'static,
    A: FnOnce() -> Fut,
{
    let loader = move || async move { Ok::<_, std::convert::Infallible>(Some(loader().await)) };
    match load_one(cache, site, key, tags, loader).await {
        Ok(Some(value)) => value,
        Ok(None) => uncached(site, &absence(cache, site, key), again).await,
        Err(error) => uncached(site, &error, again).await,
    }
}

/// Runs the body in the caller's task, for a call the cache could not answer.
async fn uncached<T, Fut: Future<Output = T>>(
    site: &'static Site,
    error: &Error,
    again: impl FnOnce() -> Fut,
) -> T {
    // The error names the key: only its kind is logged.
    tracing::warn!(
        function = site.function,
        prefix = site.keyspace.prefix.as_ref(),
        timeout = error.is_timeout(),
        "the cache could not answer a cached function; running it uncached"
    );
    again().await
}

/// A batch that returns `Result` of a map: the found keys and their values.
///
/// # Errors
/// The body's error, or the cache's converted into `E`.
pub async fn many_result<K, V, M, E, F, Fut>(
    cache: &Cache,
    site: &'static Site,
    keys: Vec<K>,
    loader: F,
) -> std::result::Result<M, E>
where
    K: CacheKey + Clone + Eq + Hash + Send + Sync + 'static,
    V: Serialize + DeserializeOwned + Send + 'static,
    M: IntoIterator<Item = (K, V)> + FromIterator<(K, V)> + Send + 'static,
    E: From<Error> + Display + Send + 'static,
    F: FnOnce(Vec<K>) -> Fut + Send + 'static,
    Fut: Future<Output = std::result::Result<M, E>> + Send + 'static,
{
    let (slot, kept) = ErrorSlot::new();
    let loader = move |keys| async move { loader(keys).await.map_err(|error| kept.keep(error)) };
    load_many(cache, site, keys, loader)
        .await
        .map_err(|error| slot.answer(error))
}

/// A batch that returns a plain map.
pub async fn many<K, V, M, F, Fut, A>(
    cache: &Cache,
    site: &'static Site,
    keys: Vec<K>,
    (loader, again): (F, A),
) -> M
where
    K: CacheKey + Clone + Eq + Hash + Send + Sync + 'static,
    V: Serialize + DeserializeOwned + Send + 'static,
    M: IntoIterator<Item = (K, V)> + FromIterator<(K, V)> + Send + 'static,
    F: FnOnce(Vec<K>) -> Fut + Send + 'static,
    Fut: Future<Output = M> + Send + 'static,
    A: FnOnce() -> Fut,
{
    let loader = move |keys| async move { Ok::<_, std::convert::Infallible>(loader(keys).await) };
    match load_many(cache, site, keys, loader).await {
        Ok(found) => found,
        Err(error) => uncached(site, &error, again).await,
    }
}

/// The keys through batch cache-aside; the answer holds the keys found.
async fn load_many<K, V, M, E, F, Fut>(
    cache: &Cache,
    site: &'static Site,
    keys: Vec<K>,
    loader: F,
) -> Result<M>
where
    K: CacheKey + Clone + Eq + Hash + Send + Sync + 'static,
    V: Serialize + DeserializeOwned + Send + 'static,
    M: IntoIterator<Item = (K, V)> + FromIterator<(K, V)> + Send + 'static,
    E: Into<crate::BoxError> + 'static,
    F: FnOnce(Vec<K>) -> Fut + Send + 'static,
    Fut: Future<Output = std::result::Result<M, E>> + Send + 'static,
{
    let view = view::<K, V>(cache, site)?;
    let (types, full_key) = ((view.format, view.tags_of), |key: &K| {
        view.space.layout.key(key)
    });
    let values = view
        .space
        .load_many(types, (&keys, full_key), loader)
        .await?;
    // A key listed twice is answered once.
    let found: HashMap<K, V> = keys
        .into_iter()
        .zip(values)
        .filter_map(|(key, value)| Some((key, value?)))
        .collect();
    Ok(found.into_iter().collect())
}

/// The keys of a batch argument, in its order.
pub fn keys_of<'a, K: Clone + 'a>(ids: impl IntoIterator<Item = &'a K>) -> Vec<K> {
    ids.into_iter().cloned().collect()
}
