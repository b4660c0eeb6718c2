//! A building block's keys: the full key of a typed key, and the one-key
//! basics every block shares (exists, delete, ttl, clear). Typed views use
//! the keyspace engine's entry points instead (`engine::access`).

use std::borrow::Borrow;
use std::marker::PhantomData;
use std::sync::Arc;

use super::{Engine, KeyspaceSettings};
use crate::error::Result;
use crate::key::{CacheKey, KeyLayout};
use crate::ttl::Ttl;

/// Where a building block's keys live: the engine and the layout, for
/// keys of type `K`, with the basics every block shares.
pub(crate) struct Scope<K: ?Sized> {
    pub(crate) engine: Arc<Engine>,
    pub(crate) layout: KeyLayout,
    keys: PhantomData<fn(&K)>,
}

impl<K: ?Sized> Clone for Scope<K> {
    fn clone(&self) -> Self {
        Scope {
            engine: Arc::clone(&self.engine),
            layout: self.layout.clone(),
            keys: PhantomData,
        }
    }
}

impl<K: CacheKey + ?Sized> Scope<K> {
    pub(crate) fn new(settings: &KeyspaceSettings) -> Self {
        Scope {
            engine: Arc::clone(&settings.engine),
            layout: settings.layout.clone(),
            keys: PhantomData,
        }
    }

    /// The full key of `key`.
    pub(crate) fn key<Q>(&self, key: &Q) -> String
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        self.layout.key(key)
    }

    /// Removes every key of this keyspace; returns how many there were.
    pub(crate) async fn clear(&self) -> Result<u64> {
        let heads = [self.layout.head().to_owned()];
        self.engine.backend().clear(&heads).await
    }

    /// Whether `key` holds anything.
    pub(crate) async fn exists<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        self.engine.backend().exists(&self.key(key)).await
    }

    /// Removes `key`; returns whether it held anything.
    pub(crate) async fn delete<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        self.engine.backend().delete(&self.key(key)).await
    }

    /// The remaining time to live of `key`.
    pub(crate) async fn ttl<Q>(&self, key: &Q) -> Result<Ttl>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        self.engine.backend().ttl(&self.key(key)).await
    }
}
