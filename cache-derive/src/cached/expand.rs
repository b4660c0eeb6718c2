//! Writing a cached function: the wrapper (which keeps the function's
//! signature and runs its body as the load), `{name}_key` and
//! `{name}_invalidate`. Absolute paths only.

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::Generics;
use syn::spanned::Spanned;

use super::Plan;
use super::signature::{self, Form, Param, rename_self};
use crate::expand::{CommonTokens, common_tokens};

pub(crate) fn write(plan: &Plan) -> TokenStream {
    let wrapper = wrapper(plan);
    let helpers = helpers(plan);
    quote!(#wrapper #helpers)
}

/// `const __SITE`: the function's keyspace.
fn site(plan: &Plan) -> TokenStream {
    let common = &plan.common;
    let krate = &common.krate;
    let CommonTokens {
        ttl,
        codec,
        compress,
        load,
        local,
    } = common_tokens(common);
    let (prefix, version, tagged) = (&common.prefix, common.version, common.tagged);
    let function = plan.function.sig.ident.to_string();
    quote! {
        static __SITE: #krate::__private::Site = #krate::__private::Site {
            function: #function,
            keyspace: {
                const COMPRESS: ::core::option::Option<#krate::CompressSettings> = #compress;
                #krate::KeyspaceSpec {
                prefix: ::std::borrow::Cow::Borrowed(#prefix),
                version: #version,
                ttl: #ttl,
                codec: #codec,
                load: #load,
                local: #local,
                tagged: #tagged,
                compress: match COMPRESS {
                    ::core::option::Option::Some(settings) => {
                        ::core::option::Option::Some(settings.algorithm)
                    }
                    ::core::option::Option::None => ::core::option::Option::None,
                },
                compress_min: match COMPRESS {
                    ::core::option::Option::Some(settings) => {
                        ::core::option::Option::Some(settings.min_size)
                    }
                    ::core::option::Option::None => ::core::option::Option::None,
                },
                }
            },
        };
    }
}

/// The call's key: its parts, each checked to be a key type where written.
fn key(plan: &Plan) -> TokenStream {
    let krate = &plan.common.krate;
    let parts: Vec<TokenStream> = (plan.key.iter())
        .map(|part| quote_spanned!(part.span()=> #krate::__private::part(&(#part))))
        .collect();
    match parts.as_slice() {
        [one] => quote!(#krate::__private::written(#one)),
        _ => quote!(#krate::__private::written(&(#(#parts,)*))),
    }
}

fn tags(plan: &Plan) -> TokenStream {
    let krate = &plan.common.krate;
    if plan.tags.is_empty() {
        return quote!(::core::option::Option::None);
    }
    let each = plan.tags.iter().map(|(name, value)| {
        let part = quote_spanned!(value.span()=> #krate::__private::part(&(#value)));
        quote!(#krate::__private::tag(#name, #part))
    });
    quote!(::core::option::Option::Some(::std::vec![#(#each),*]))
}

/// `__make`: from owned copies of the arguments, the load (a closure that
/// runs the body). It captures nothing, so it can make a second one.
fn maker(plan: &Plan) -> TokenStream {
    let shape = &plan.shape;
    let mut inputs = Vec::new();
    let mut rebinds = Vec::new();
    if let Some(receiver) = shape.receiver.as_ref().filter(|_| plan.body_uses_self) {
        let owned = &receiver.owned;
        inputs.push(quote!(__self: #owned));
        if receiver.by_ref {
            rebinds.push(quote!(let __self = &__self;));
        } else if receiver.mutable {
            rebinds.push(quote!(let mut __self = __self;));
        }
    }
    for (at, param) in shape.params.iter().enumerate() {
        if Some(at) == plan.batch || !plan.body_uses[at] {
            continue;
        }
        let Param {
            name,
            pat,
            ty,
            referent,
        } = param;
        match referent {
            Some(referent) => {
                let owned = signature::owned_type(referent);
                inputs.push(quote!(#name: #owned));
                rebinds
                    .push(quote!(let #pat: &#referent = ::core::borrow::Borrow::borrow(&#name);));
            }
            None => inputs.push(quote!(#pat: #ty)),
        }
    }
    let mut body = plan.function.block.to_token_stream();
    if plan.body_uses_self {
        body = rename_self(body);
    }
    let output = &shape.output;
    let run = quote!(async move { #(#rebinds)* let __ret: #output = #body; __ret });
    let load = match (plan.batch, &shape.map_key) {
        (Some(at), Some(map_key)) => {
            let param = &shape.params[at];
            let pat = &param.pat;
            let rebind = match &param.referent {
                Some(referent) => {
                    let owned = signature::owned_type(referent);
                    quote! {
                        let __owned: #owned = ::core::iter::FromIterator::from_iter(__keys);
                        let #pat: &#referent = ::core::borrow::Borrow::borrow(&__owned);
                    }
                }
                None => {
                    let ty = &param.ty;
                    quote!(let #pat: #ty = ::core::iter::FromIterator::from_iter(__keys);)
                }
            };
            quote!(move |__keys: ::std::vec::Vec<#map_key>| async move { #rebind #run.await })
        }
        _ => quote!(move || #run),
    };
    quote! {
        #[allow(unreachable_code, clippy::let_and_return)]
        let __make = |#(#inputs),*| #load;
    }
}

/// The arguments `__make` is called with: clones, owned copies of borrowed
/// arguments, and the rest moved unless `keep` (the wrapper needs them again).
fn make_args(plan: &Plan, keep: bool) -> Vec<TokenStream> {
    let shape = &plan.shape;
    let mut args = Vec::new();
    if let Some(receiver) = shape.receiver.as_ref().filter(|_| plan.body_uses_self) {
        args.push(match receiver.by_ref {
            true => quote!(::core::clone::Clone::clone(self)),
            false => quote!(::core::clone::Clone::clone(&self)),
        });
    }
    for (at, param) in shape.params.iter().enumerate() {
        let name = &param.name;
        if Some(at) == plan.batch || !plan.body_uses[at] {
            continue;
        }
        args.push(
            match (&param.referent, keep || plan.cache_uses.contains(&at)) {
                (Some(_), _) => quote!(::std::borrow::ToOwned::to_owned(#name)),
                (None, true) => quote!(::core::clone::Clone::clone(&#name)),
                (None, false) => quote!(#name),
            },
        );
    }
    args
}

/// The keys of a batch call, from the argument that holds them.
fn batch_keys(plan: &Plan, at: usize) -> TokenStream {
    let krate = &plan.common.krate;
    let param = &plan.shape.params[at];
    let name = &param.name;
    match param.referent {
        Some(_) => quote!(#krate::__private::keys_of(#name)),
        None => quote!(#krate::__private::keys_of(&#name)),
    }
}

fn wrapper(plan: &Plan) -> TokenStream {
    let krate = &plan.common.krate;
    let function = &plan.function;
    let (attrs, vis, sig) = (&function.attrs, &function.vis, &function.sig);
    let shape = &plan.shape;
    let site = site(plan);
    let value = &shape.value;
    let value_check = quote_spanned!(value.span()=> #krate::__private::value_type::<#value>);
    let handle = handle(plan);
    let maker = maker(plan);
    let fallible = shape.form.fallible();
    let loader_args = make_args(plan, !fallible);
    let again_args = make_args(plan, true);
    // A value type that is not serde is reported at the type, here too.
    let runner_path = |runner: &str| {
        let runner = syn::Ident::new(runner, value.span());
        quote_spanned!(value.span()=> #krate::__private::#runner)
    };
    let (prelude, call) = match plan.batch {
        Some(at) => {
            let keys = batch_keys(plan, at);
            let (many_result, many) = (runner_path("many_result"), runner_path("many"));
            let call = match fallible {
                true => quote!(#many_result(__cache, &__SITE, #keys, __loader)),
                false => quote! {
                    #many(
                        __cache, &__SITE, #keys, (__loader, || __make(#(#again_args),*)(#keys)),
                    )
                },
            };
            (TokenStream::new(), call)
        }
        None => {
            let (key, tags) = (key(plan), tags(plan));
            let runner = match shape.form {
                Form::ResultOption => "result_option",
                Form::Result => "result_value",
                Form::Option => "option",
                Form::Plain => "value",
            };
            let loader = match fallible {
                true => quote!(__loader),
                false => quote!((__loader, || __make(#(#again_args),*)())),
            };
            let runner = runner_path(runner);
            // Bound first: the parts borrow the arguments only while the key is written.
            let prelude = quote!(let (__key, __tags) = (#key, #tags););
            (
                prelude,
                quote!(#runner(__cache, &__SITE, &__key, __tags, #loader)),
            )
        }
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            #site
            let _ = #value_check;
            match #handle {
                __cache => {
                    #maker
                    let __loader = __make(#(#loader_args),*);
                    #prelude
                    #call.await
                }
            }
        }
    }
}

/// The handle, from the `cache` expression (an error there is reported at it).
fn handle(plan: &Plan) -> TokenStream {
    let (krate, cache) = (&plan.common.krate, &plan.cache);
    quote_spanned!(cache.span()=> #krate::__private::handle(&(#cache)))
}

/// `{name}_key` and `{name}_invalidate`: they take the receiver, if any,
/// and the arguments the key and the `cache` expression use.
fn helpers(plan: &Plan) -> TokenStream {
    let krate = &plan.common.krate;
    let function = &plan.function;
    let (vis, name) = (&function.vis, &function.sig.ident);
    let shape = &plan.shape;
    let mut inputs = Vec::new();
    if shape.receiver.is_some() {
        inputs.push(quote!(&self));
    }
    let key_tokens: TokenStream = plan.key.iter().map(ToTokens::to_token_stream).collect();
    for (at, param) in shape.params.iter().enumerate() {
        let (name, ty) = (&param.name, &param.ty);
        let used = signature::mentions(key_tokens.clone(), &name.to_string());
        if plan.cache_uses.contains(&at) || (used && plan.batch.is_none()) {
            inputs.push(quote!(#name: #ty));
        }
    }
    let key = match (&shape.map_key, plan.batch) {
        (Some(map_key), Some(_)) => {
            inputs.push(quote!(key: &#map_key));
            quote!(key)
        }
        _ => {
            let key = key(plan);
            quote!(&#key)
        }
    };
    let inputs_tokens = quote!(#(#inputs),*);
    let generics = helper_generics(&function.sig.generics, &inputs_tokens);
    let (_, _, where_clause) = generics.split_for_impl();
    let site = site(plan);
    let handle = handle(plan);
    let key_fn = format_ident!("{}_key", name.to_string().trim_start_matches("r#"));
    let invalidate_fn = format_ident!("{}_invalidate", name.to_string().trim_start_matches("r#"));
    let key_doc = format!("The Redis key of a call of `{name}` (generated by `#[cached]`).");
    let invalidate_doc = format!(
        "Deletes the cached answer of a call of `{name}` (generated by `#[cached]`); \
         returns whether there was one.\n\n# Errors\nAs `TypedCache::delete`."
    );
    quote! {
        #[doc = #key_doc]
        #[allow(dead_code)]
        #vis fn #key_fn #generics (#inputs_tokens) -> ::std::string::String #where_clause {
            #site
            match #handle {
                __cache => #krate::__private::full_key(__cache, &__SITE, #key),
            }
        }

        #[doc = #invalidate_doc]
        #[allow(dead_code)]
        #vis async fn #invalidate_fn #generics (#inputs_tokens) -> #krate::Result<bool> #where_clause {
            #site
            match #handle {
                __cache => #krate::__private::invalidate(__cache, &__SITE, #key).await,
            }
        }
    }
}

/// The function's generic parameters that the helpers' inputs mention, and
/// the bounds that only those use.
fn helper_generics(generics: &Generics, inputs: &TokenStream) -> Generics {
    let mut kept = generics.clone();
    let names: Vec<String> = generics
        .params
        .iter()
        .map(|param| match param {
            syn::GenericParam::Type(ty) => ty.ident.to_string(),
            syn::GenericParam::Lifetime(def) => def.lifetime.ident.to_string(),
            syn::GenericParam::Const(def) => def.ident.to_string(),
        })
        .collect();
    let used: Vec<&String> = names
        .iter()
        .filter(|name| signature::mentions(inputs.clone(), name))
        .collect();
    let dropped: Vec<&String> = names.iter().filter(|name| !used.contains(name)).collect();
    kept.params = (generics.params.iter())
        .zip(&names)
        .filter(|(_, name)| used.contains(name))
        .map(|(param, _)| param.clone())
        .collect();
    if let Some(clause) = &mut kept.where_clause {
        clause.predicates = (clause.predicates.iter())
            .filter(|predicate| {
                let tokens = predicate.to_token_stream();
                !dropped
                    .iter()
                    .any(|name| signature::mentions(tokens.clone(), name))
            })
            .cloned()
            .collect();
    }
    kept
}
