//! The building blocks: flags, locks, one-time codes, rate limits,
//! sequences and typed sets. Each is a thin typed front over operations of
//! `backend::ops` over a keyspace's [`Scope`](crate::engine::Scope); the
//! methods they share are written once here.

pub(crate) mod flag;
pub(crate) mod lock;
pub(crate) mod otp;
pub(crate) mod ratelimit;
pub(crate) mod sequence;
pub(crate) mod set;

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
