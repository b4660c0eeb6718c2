//! `#[derive(Cacheable)]` and `#[cached]` for cache-core. Use them through
//! `cache_core` (the `derive` feature, on by default); the derive's
//! attributes are documented at `cache_core::Cacheable`, in a table with an
//! example for each, and `#[cached]` in `cache_core::guide::cached`.
//!
//! Laid out like thiserror's `impl/`, in passes that import only forward:
//! `attr` reads the attributes, `valid` checks them (every error spanned at
//! the offending token, all reported at once; `valid::compress` for the
//! compression options), and `expand` writes the impls with absolute paths
//! only. `cached` holds the same passes for `#[cached]`.

mod attr;
mod cached;
mod expand;
mod valid;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Implements `cache_core::Cacheable` (and `KeyedCacheable` when a field is
/// marked `#[cache(key)]`). The attributes, each with an example, are listed
/// in the docs of `cache_core::Cacheable`. When they have errors, the derive
/// reports them all and still implements `Cacheable` with a stand-in, so the
/// errors are not followed by others wherever the type is used.
#[proc_macro_derive(Cacheable, attributes(cache))]
pub fn derive_cacheable(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}

/// Caches an `async fn` or method in Redis (or the memory backend): the
/// body runs on a miss, once per key however many calls ask at once. The
/// options, return types and generated helpers are documented in
/// `cache_core::guide::cached`.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    cached::expand(args.into(), item.into()).into()
}
