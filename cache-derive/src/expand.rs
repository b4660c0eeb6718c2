//! Writing the impls. Only absolute paths, so the user's imports and lints
//! (`unused_qualifications` included) never interfere.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::DeriveInput;

use crate::attr::{self, Errors};
use crate::valid::{self, Codec, Compress, Key};

/// The impls, or the errors plus a stand-in impl: so that a user sees only
/// the real errors, not a follow-on "`Cacheable` is not implemented" at
/// every use of the type (thiserror does the same).
pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let container = attr::container(input, &mut errors);
    let marked = attr::fields(input, &mut errors);
    let settings = valid::check(input, container, marked, &mut errors);
    match errors.finish() {
        Ok(()) => impls(input, &settings),
        Err(error) => {
            let errors = error.into_compile_error();
            let fallback = fallback(input, &settings);
            quote!(#errors #fallback)
        }
    }
}

/// A `Cacheable` impl for a type whose attributes had errors: the settings
/// are stand-ins, but the key type, the tag fields' types, the key field, the
/// codec and the compression are the real ones, so that rustc reports their errors in the same compile
/// as the attributes' (a bad key type is not hidden behind a bad prefix).
/// Unions get none: nothing can use them as a value.
fn fallback(input: &DeriveInput, settings: &valid::Settings) -> TokenStream {
    if matches!(input.data, syn::Data::Union(_)) {
        return TokenStream::new();
    }
    let krate = &settings.common.krate;
    let name = &input.ident;
    let (impl_generics, ty_generics, _) = input.generics.split_for_impl();
    let (key_ty, where_clause) = key_bound(input, settings);
    let tags = tags_fn(krate, &settings.tags);
    let keyed = keyed_impl(input, settings);
    // The codec and compression too: a feature that is off is its own error.
    let CommonTokens {
        codec, compress, ..
    } = common_tokens(&settings.common);
    quote! {
        #[automatically_derived]
        impl #impl_generics #krate::Cacheable for #name #ty_generics #where_clause {
            type Key = #key_ty;
            const PREFIX: &'static str = "invalid";
            const CODEC: #krate::Codec = #codec;
            const COMPRESS: ::core::option::Option<#krate::CompressSettings> = #compress;
            #tags
        }
        #keyed
    }
}

/// The key type, and the impls' where clause with its `CacheKey` bound (the
/// key type may use the type's generic parameters). A key type that is not a
/// key type is reported at the bound.
fn key_bound<'s>(
    input: &DeriveInput,
    settings: &'s valid::Settings,
) -> (&'s syn::Type, syn::WhereClause) {
    let krate = &settings.common.krate;
    let key_ty = match &settings.key {
        Key::Field { ty, .. } | Key::Type(ty) => ty,
    };
    let mut where_clause =
        (input.generics.where_clause.clone()).unwrap_or_else(|| syn::parse_quote!(where));
    // Spanned at the key type, so that its error points at the field.
    let span = syn::spanned::Spanned::span(key_ty);
    let bound = respan(quote!(#krate::CacheKey), span);
    where_clause
        .predicates
        .push(syn::parse_quote_spanned!(span=> #key_ty: #bound));
    // A plain value's field must be plain: reported at the field's type.
    if let Some(field) = &settings.plain_field {
        let span = syn::spanned::Spanned::span(field);
        let bound = respan(quote!(#krate::PlainValue), span);
        where_clause
            .predicates
            .push(syn::parse_quote_spanned!(span=> #field: #bound));
    }
    (key_ty, where_clause)
}

/// `KeyedCacheable` for a type whose key is one of its fields.
fn keyed_impl(input: &DeriveInput, settings: &valid::Settings) -> TokenStream {
    let Key::Field { member, .. } = &settings.key else {
        return TokenStream::new();
    };
    let krate = &settings.common.krate;
    let name = &input.ident;
    let (impl_generics, ty_generics, _) = input.generics.split_for_impl();
    let (_, where_clause) = key_bound(input, settings);
    quote! {
        #[automatically_derived]
        impl #impl_generics #krate::KeyedCacheable for #name #ty_generics #where_clause {
            fn cache_key(&self) -> &<Self as #krate::Cacheable>::Key {
                &self.#member
            }
        }
    }
}

/// The shared settings as expressions of cache-core's types.
pub(crate) struct CommonTokens {
    pub(crate) ttl: TokenStream,
    pub(crate) codec: TokenStream,
    pub(crate) compress: TokenStream,
    pub(crate) load: TokenStream,
    pub(crate) local: TokenStream,
}

pub(crate) fn common_tokens(common: &valid::Common) -> CommonTokens {
    let krate = &common.krate;
    let ttl = match common.ttl_ms {
        Some(ms) => quote!(::core::option::Option::Some(::core::time::Duration::from_millis(#ms))),
        None => quote!(::core::option::Option::None),
    };
    let codec = match common.codec {
        Codec::Json => quote!(#krate::Codec::Json),
        Codec::Plain(_) => quote!(#krate::Codec::Plain),
        Codec::Gated(codec, span) => {
            // Every token carries the `codec` value's span, so that the
            // feature-off error points at it.
            let gate = quote::format_ident!("__cacheable_codec_{}", codec, span = span);
            let path = respan(quote!(#krate::#gate), span);
            quote_spanned!(span=> #path!())
        }
    };
    let compress = compress_tokens(krate, common.compress.as_ref());
    let load = load_policy(krate, &common.load);
    let local = match common.local {
        Some((capacity, ms)) => quote!(::core::option::Option::Some(
            #krate::LocalSettings::new(#capacity, ::core::time::Duration::from_millis(#ms))
        )),
        None => quote!(::core::option::Option::None),
    };
    CommonTokens {
        ttl,
        codec,
        compress,
        load,
        local,
    }
}

fn impls(input: &DeriveInput, settings: &valid::Settings) -> TokenStream {
    let krate = &settings.common.krate;
    let name = &input.ident;
    let (impl_generics, ty_generics, _) = input.generics.split_for_impl();
    let prefix = &settings.common.prefix;
    let version = settings.common.version;
    let CommonTokens {
        ttl,
        codec,
        compress,
        load,
        local,
    } = common_tokens(&settings.common);
    let (key_ty, where_clause) = key_bound(input, settings);
    let keyed = keyed_impl(input, settings);

    let tagged = settings.common.tagged;
    let tags = tags_fn(krate, &settings.tags);
    quote! {
        #[automatically_derived]
        impl #impl_generics #krate::Cacheable for #name #ty_generics #where_clause {
            type Key = #key_ty;
            const TAGGED: bool = #tagged;
            #tags
            const PREFIX: &'static str = #prefix;
            const VERSION: u32 = #version;
            const TTL: ::core::option::Option<::core::time::Duration> = #ttl;
            const CODEC: #krate::Codec = #codec;
            const COMPRESS: ::core::option::Option<#krate::CompressSettings> = #compress;
            const LOAD: #krate::LoadPolicy = #load;
            const LOCAL: ::core::option::Option<#krate::LocalSettings> = #local;
        }
        #keyed
    }
}

/// `fn tags`, for a type with tag fields: `name:value` for each, the value
/// escaped as keys are. A field type that is not a key type is an error at
/// the field's type.
fn tags_fn(krate: &syn::Path, tags: &[(String, syn::Member, syn::Type)]) -> TokenStream {
    if tags.is_empty() {
        return TokenStream::new();
    }
    let each = tags.iter().map(|(name, member, ty)| {
        let span = syn::spanned::Spanned::span(ty);
        let check = quote_spanned!(span=> #krate::tag::<#ty>);
        quote!(#check(#name, &self.#member))
    });
    quote! {
        fn tags(&self) -> ::std::vec::Vec<::std::string::String> {
            ::std::vec![#(#each),*]
        }
    }
}

fn load_policy(krate: &syn::Path, load: &valid::Load) -> TokenStream {
    let duration = |ms: u64| quote!(::core::time::Duration::from_millis(#ms));
    let mut policy = quote!(#krate::LoadPolicy::DEFAULT);
    if let Some(ms) = load.negative_ttl_ms {
        let ttl = duration(ms);
        policy = quote!(#policy.negative_ttl(#ttl));
    }
    if let Some(fraction) = load.jitter {
        policy = quote!(#policy.jitter(#fraction));
    }
    if let Some(fraction) = load.early_refresh {
        policy = quote!(#policy.early_refresh(#fraction));
    }
    if let Some(closed) = load.fail_closed {
        let failure = if closed { quote!(Closed) } else { quote!(Open) };
        policy = quote!(#policy.on_failure(#krate::FailurePolicy::#failure));
    }
    if let Some((lease, wait)) = load.distributed {
        let (lease, wait) = (duration(lease), duration(wait));
        policy = quote!(#policy.distributed(#lease, #wait));
    }
    let limits = [
        (load.hard_timeout_ms, quote!(hard_timeout)),
        (load.fail_safe_ms, quote!(fail_safe)),
        (load.fail_safe_throttle_ms, quote!(fail_safe_throttle)),
        (load.soft_timeout_ms, quote!(soft_timeout)),
    ];
    for (ms, method) in limits {
        if let Some(ms) = ms {
            let limit = duration(ms);
            policy = quote!(#policy.#method(#limit));
        }
    }
    policy
}

/// A path's tokens (idents and punctuation, no groups) with one span.
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token: TokenTree| {
            token.set_span(span);
            token
        })
        .collect()
}

/// The option as an `Option<cache_core::CompressSettings>` expression; a
/// compile error at the algorithm's name when its feature is off.
fn compress_tokens(krate: &syn::Path, compress: Option<&Compress>) -> TokenStream {
    let Some(compress) = compress else {
        return quote!(::core::option::Option::None);
    };
    let span = compress.span;
    let gate = quote::format_ident!("__cacheable_compress_{}", compress.name, span = span);
    let path = respan(quote!(#krate::#gate), span);
    let algorithm = quote_spanned!(span=> #path!());
    let min_size = usize::try_from(compress.min_size).unwrap_or(usize::MAX);
    quote!(::core::option::Option::Some(
        #krate::CompressSettings::new(#algorithm, #min_size)
    ))
}
