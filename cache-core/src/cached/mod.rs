//! What `#[cached]` functions expand to: the keyspace an attribute
//! describes (`Site`), the handle its `cache = ...` expression gives, the
//! call's key, and the runners that answer a call by its return type. All of
//! it is `#[doc(hidden)]`: the attribute is the interface, documented in
//! `guide::cached`.

mod run;

use std::any::TypeId;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use self::run::{keys_of, many, many_result, option, result_option, result_value, value};
use crate::cache::Cache;
use crate::error::Result;
use crate::key::{CacheKey, KeyLayout};
use crate::keyspace::KeyspaceSpec;
use crate::typed::TypedCache;

/// The keyspace of one cached function, as its attribute wrote it (checked
/// at compile time).
#[derive(Debug)]
pub struct Site {
    /// The function's name, for logs.
    pub function: &'static str,
    /// Its keyspace.
    pub keyspace: KeyspaceSpec,
}

/// What a `cache = ...` expression may give: a handle, or a reference,
/// `Arc` or `Box` of one.
#[diagnostic::on_unimplemented(
    message = "`cache = ...` must give a `cache_core::Cache`, found `{Self}`",
    label = "not a cache handle",
    note = "a `Cache`, a reference to one, or an `Arc` or `Box` of one will do"
)]
pub trait AsCache {
    /// The handle.
    fn as_cache(&self) -> &Cache;
}

impl AsCache for Cache {
    fn as_cache(&self) -> &Cache {
        self
    }
}

impl<T: AsCache + ?Sized> AsCache for &T {
    fn as_cache(&self) -> &Cache {
        (**self).as_cache()
    }
}

impl<T: AsCache + ?Sized> AsCache for Arc<T> {
    fn as_cache(&self) -> &Cache {
        (**self).as_cache()
    }
}

impl<T: AsCache + ?Sized> AsCache for Box<T> {
    fn as_cache(&self) -> &Cache {
        (**self).as_cache()
    }
}

/// The handle a `cache = ...` expression gives.
pub fn handle<C: AsCache + ?Sized>(cache: &C) -> &Cache {
    cache.as_cache()
}

/// A key already written (escaped) from the call's key parts: written again
/// as it is, so a function's key is the one a typed keyspace of those parts
/// would use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WrittenKey(String);

impl CacheKey for WrittenKey {
    fn write_key(&self, out: &mut String) {
        out.push_str(&self.0);
    }
}

/// The key of a call whose key parts are `parts`.
pub fn written<Q: CacheKey + ?Sized>(parts: &Q) -> WrittenKey {
    let mut out = String::new();
    parts.write_key(&mut out);
    WrittenKey(out)
}

/// One key part, checked to be a key type where the attribute names it.
/// Its type is erased, so that a part that is not a key reports one error
/// (here) and none where the parts are put together.
pub fn part<Q: CacheKey>(part: &Q) -> &dyn CacheKey {
    part
}

/// A tag from an argument, `name:value` with the value escaped as keys are.
pub fn tag<Q: CacheKey + ?Sized>(name: &str, value: &Q) -> String {
    crate::cacheable::tag(name, value)
}

/// Checks, where the return type is written, that values can be cached.
pub fn value_type<V: Serialize + DeserializeOwned + Send + 'static>() {}

/// The typed view of `site`'s keyspace on `cache`: made once per handle,
/// site and value type, then cloned (a few reference counts) on each call.
///
/// # Errors
/// [`Error::Config`](crate::Error::Config) when the keyspace already has a
/// local tier with other settings on this handle.
pub fn view<K, V>(cache: &Cache, site: &'static Site) -> Result<TypedCache<K, V>>
where
    K: CacheKey + ?Sized,
    V: Serialize + DeserializeOwned + 'static,
{
    let memo = (std::ptr::from_ref(site) as usize, TypeId::of::<V>());
    let (space, format) = cache.engine().prepared_space(memo, || {
        let view = build::<K, V>(cache, site)?;
        Ok((view.space, view.format))
    })?;
    Ok(TypedCache::from_space(space, format))
}

/// The typed view of `site`'s keyspace, built and checked.
fn build<K, V>(cache: &Cache, site: &Site) -> Result<TypedCache<K, V>>
where
    K: CacheKey + ?Sized,
    V: Serialize + DeserializeOwned,
{
    TypedCache::new(site.keyspace.clone().check(Arc::clone(cache.engine()))?)
}

/// The full Redis key of a call: what `{function}_key` returns.
pub fn full_key<Q: CacheKey + ?Sized>(cache: &Cache, site: &Site, key: &Q) -> String {
    let spec = &site.keyspace;
    KeyLayout::new(cache.namespace(), &spec.prefix, spec.version).key(key)
}

/// Deletes a call's entry (and this handle's local copy): what
/// `{function}_invalidate` does.
///
/// # Errors
/// As [`TypedCache::delete`].
pub async fn invalidate<Q: CacheKey + ?Sized>(
    cache: &Cache,
    site: &'static Site,
    key: &Q,
) -> Result<bool> {
    view::<Q, ()>(cache, site)?.delete(key).await
}
