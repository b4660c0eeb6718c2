//! The building blocks: flags, locks, one-time codes, rate limits,
//! sequences and typed sets. Each is a thin typed front over operations of
//! `backend::ops`; what they share is written once here.

pub(crate) mod flag;
pub(crate) mod lock;
pub(crate) mod otp;
pub(crate) mod ratelimit;
pub(crate) mod sequence;
pub(crate) mod set;

use std::borrow::Borrow;
use std::marker::PhantomData;

use crate::cache::Cache;
use crate::error::Result;
use crate::key::{CacheKey, KeyLayout};
use crate::keyspace::KeyspaceSettings;
use crate::ttl::Ttl;

/// Where a block's keys live: the handle and the keyspace's layout, for keys
/// of type `K`.
pub(crate) struct Scope<K: ?Sized> {
    pub(crate) cache: Cache,
    pub(crate) layout: KeyLayout,
    keys: PhantomData<fn(&K)>,
}

impl<K: ?Sized> Clone for Scope<K> {
    fn clone(&self) -> Self {
        Scope {
            cache: self.cache.clone(),
            layout: self.layout.clone(),
            keys: PhantomData,
        }
    }
}

impl<K: CacheKey + ?Sized> Scope<K> {
    pub(crate) fn new(settings: &KeyspaceSettings) -> Self {
        Scope {
            cache: settings.cache.clone(),
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
        self.cache.backend().clear(&heads).await
    }

    /// Whether `key` holds anything.
    pub(crate) async fn exists<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        self.cache.backend().exists(&self.key(key)).await
    }

    /// Removes `key`; returns whether it held anything.
    pub(crate) async fn delete<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        self.cache.backend().delete(&self.key(key)).await
    }

    /// The remaining time to live of `key`.
    pub(crate) async fn ttl<Q>(&self, key: &Q) -> Result<Ttl>
    where
        K: Borrow<Q>,
        Q: CacheKey + ?Sized,
    {
        self.cache.backend().ttl(&self.key(key)).await
    }
}

/// A block's method that does one thing to one key through the scope
/// (`exists`, `delete`, `ttl`), under the block's own name and docs.
macro_rules! on_one_key {
    ($(#[$doc:meta])* pub async fn $name:ident -> $out:ty = $action:ident) => {
        $(#[$doc])*
        pub async fn $name<Q>(&self, key: &Q) -> $crate::Result<$out>
        where
            K: std::borrow::Borrow<Q>,
            Q: $crate::CacheKey + ?Sized,
        {
            self.scope.$action(key).await
        }
    };
}

/// `Clone` and `Debug` for a block `$name<K>` made of a `scope` and the
/// listed fields (all `Clone + Debug`). Derived, `Clone` would need
/// `K: Clone`, which `str` keys are not.
macro_rules! block_basics {
    ($name:ident<K $(, $extra:ident)?> { $($field:ident),* }) => {
        impl<K: ?Sized $(, $extra)?> Clone for $name<K $(, $extra)?> {
            fn clone(&self) -> Self {
                $name {
                    scope: self.scope.clone(),
                    $($field: self.$field.clone(),)*
                }
            }
        }

        impl<K: ?Sized $(, $extra)?> std::fmt::Debug for $name<K $(, $extra)?> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("keys", &self.scope.layout)
                    $(.field(stringify!($field), &self.$field))*
                    .finish()
            }
        }

    };
}

/// `key()` for a block `$name<K>`, with `$example` as its doc example.
macro_rules! block_key {
    ($name:ident<K $(, $extra:ident)?> $example:literal) => {
        impl<K: $crate::CacheKey + ?Sized $(, $extra)?> $name<K $(, $extra)?> {
            /// The full Redis key of `key`, as it appears in `redis-cli`.
            ///
            #[doc = $example]
            pub fn key<Q>(&self, key: &Q) -> String
            where
                K: std::borrow::Borrow<Q>,
                Q: $crate::CacheKey + ?Sized,
            {
                self.scope.key(key)
            }
        }
    };
}

pub(crate) use {block_basics, block_key, on_one_key};
