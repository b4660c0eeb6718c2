//! `#[derive(Cacheable)]` for cache-core. Use it through `cache_core::Cacheable`
//! (the `derive` feature, on by default); the attributes are documented there.
//!
//! Laid out like thiserror's `impl/`: `attr` reads the attributes, `valid`
//! checks them (every error spanned at the offending token, all reported at
//! once), and `expand` writes the impls with absolute paths only.

mod attr;
mod expand;
mod valid;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Implements `cache_core::Cacheable` (and `KeyedCacheable` when a field is
/// marked `#[cache(key)]`).
///
/// Container attributes, all optional: `prefix = "..."` (default: the type name
/// in snake_case), `ttl = 300` or `ttl = "5m"` (units `ms`, `s`, `m`, `h`, `d`;
/// absent means no expiry), `version = 2` (default 1), `codec = "json" |
/// "bincode" | "msgpack"`, `key_type = "u64"` (the key type when no field is
/// marked; default `String`), `crate = "path::to::cache_core"`.
#[proc_macro_derive(Cacheable, attributes(cache))]
pub fn derive_cacheable(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
