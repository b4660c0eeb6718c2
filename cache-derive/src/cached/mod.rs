//! `#[cached]`: reads the options (`options`) and the signature
//! (`signature`), checks what they need of each other here, and writes the
//! wrapper and its helpers (`expand`). Every error is spanned at the
//! offending token, and all of them are reported at once.

mod expand;
mod options;
mod signature;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{Expr, ItemFn, LitStr};

use self::options::Options;
use self::signature::{Form, Shape};
use crate::attr::Errors;
use crate::valid::{self, Common};

/// Everything the wrapper is written from, checked.
pub(crate) struct Plan {
    pub(crate) common: Common,
    pub(crate) cache: Expr,
    /// Which arguments (by index in `shape.params`) the `cache` expression uses.
    pub(crate) cache_uses: Vec<usize>,
    pub(crate) key: Vec<Expr>,
    pub(crate) tags: Vec<(LitStr, Expr)>,
    /// For a batch: the argument holding the keys.
    pub(crate) batch: Option<usize>,
    /// Which arguments the body uses (the load gets only those).
    pub(crate) body_uses: Vec<bool>,
    /// Whether a method's body uses `self` (the load then gets a clone).
    pub(crate) body_uses_self: bool,
    pub(crate) shape: Shape,
    pub(crate) function: ItemFn,
}

/// The attribute's expansion: the wrapper and its helpers, or the errors
/// and the function as it was (so that its uses report nothing more).
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let error = syn::Error::new(Span::call_site(), "`#[cached]` goes on an `async fn`");
            let error = error.into_compile_error();
            return quote::quote!(#error #item);
        }
    };
    let mut errors = Errors::default();
    let options = options::read(args, &mut errors);
    let batch = options.batch.is_some();
    let shape = signature::read(&mut function.sig, batch, &mut errors);
    let plan = plan(options, shape, function, &mut errors);
    match (errors.finish(), plan) {
        (Ok(()), Some(plan)) => expand::write(&plan),
        (Err(error), _) => {
            let error = error.into_compile_error();
            quote::quote!(#error #item)
        }
        (Ok(()), None) => item,
    }
}

fn plan(options: Options, shape: Shape, function: ItemFn, errors: &mut Errors) -> Option<Plan> {
    let name = function.sig.ident.to_string();
    let prefix = name.trim_start_matches("r#").to_owned();
    let rules = Rules::of(&options, shape.form);
    let mut common = valid::common(options.shared, prefix, errors);
    rules.check(options.batch, errors);
    let Some(cache) = options.cache else {
        errors.push(
            function.sig.ident.span(),
            "`#[cached]` needs `cache = ...`: where the handle comes from, e.g. \
             `cache = self.cache` or `cache = cache()`",
        );
        return None;
    };
    let names: Vec<String> = shape.params.iter().map(|p| p.name.to_string()).collect();
    let cache_uses: Vec<usize> = (0..names.len())
        .filter(|&at| signature::mentions(cache.to_token_stream(), &names[at]))
        .collect();
    let (key, batch) = key_parts(options.key, &shape, &cache_uses, options.batch, errors);
    let tags = tags(options.tags, options.batch, errors);
    common.tagged |= !tags.is_empty();
    let body = function.block.to_token_stream();
    // A pattern binds inside the body: its argument always goes to the load.
    let body_uses = (shape.params.iter())
        .map(|param| {
            let name = param.name.to_string();
            name.starts_with("__arg") || signature::mentions(body.clone(), &name)
        })
        .collect();
    let body_uses_self = shape.receiver.is_some() && signature::mentions(body, "self");
    Some(Plan {
        body_uses,
        body_uses_self,
        common,
        cache,
        cache_uses,
        key,
        tags,
        batch,
        shape,
        function,
    })
}

/// The options whose meaning depends on the return type, where they are.
struct Rules {
    form: Form,
    negative_ttl: Option<Span>,
    fallible_only: Vec<(&'static str, Span)>,
}

impl Rules {
    fn of(options: &Options, form: Form) -> Self {
        let shared = &options.shared;
        let mut fallible_only = Vec::new();
        if let Some(lit) = &shared.hard_timeout {
            fallible_only.push(("hard_timeout", lit.span()));
        }
        if let Some(lit) = &shared.on_failure
            && lit.value() == "closed"
        {
            fallible_only.push(("on_failure = \"closed\"", lit.span()));
        }
        Rules {
            form,
            negative_ttl: shared.negative_ttl.as_ref().map(|lit| lit.span()),
            fallible_only,
        }
    }

    fn check(&self, batch: Option<Span>, errors: &mut Errors) {
        if let Some(span) = self.negative_ttl
            && !self.form.optional()
            && batch.is_none()
        {
            errors.push(
                span,
                "`negative_ttl` caches \"none\": the function must return `Option<T>` or \
                 `Result<Option<T>, E>`",
            );
        }
        if self.form.fallible() {
            return;
        }
        for (option, span) in &self.fallible_only {
            errors.push(
                *span,
                format!(
                    "`{option}` can fail a call: the function must return `Result<T, E>` \
                     (with `E: From<cache_core::Error>`)"
                ),
            );
        }
    }
}

/// The key parts (for a batch: none, and the argument holding the keys).
fn key_parts(
    key: Option<(Vec<Expr>, Span)>,
    shape: &Shape,
    cache_uses: &[usize],
    batch: Option<Span>,
    errors: &mut Errors,
) -> (Vec<Expr>, Option<usize>) {
    let unused = || (0..shape.params.len()).filter(|at| !cache_uses.contains(at));
    let Some(batch) = batch else {
        let parts = match key {
            Some((parts, _)) => parts,
            None => unused()
                .map(|at| {
                    let name = &shape.params[at].name;
                    syn::parse_quote!(#name)
                })
                .collect(),
        };
        return (parts, None);
    };
    let named = match key {
        Some((parts, span)) => match parts.as_slice() {
            [Expr::Path(path)] => shape
                .params
                .iter()
                .position(|param| path.path.is_ident(&param.name))
                .ok_or(path.span()),
            _ => Err(span),
        },
        None => match unused().collect::<Vec<_>>().as_slice() {
            [one] => Ok(*one),
            _ => Err(batch),
        },
    };
    match named {
        Ok(at) => (Vec::new(), Some(at)),
        Err(span) => {
            errors.push(
                span,
                "a `batch` function names the argument that holds its keys: `key = ids`",
            );
            (Vec::new(), None)
        }
    }
}

/// The call's tags, their names checked.
fn tags(
    tags: Vec<(LitStr, Expr)>,
    batch: Option<Span>,
    errors: &mut Errors,
) -> Vec<(LitStr, Expr)> {
    let mut seen: Vec<String> = Vec::new();
    for (name, _) in &tags {
        let text = name.value();
        if batch.is_some() {
            errors.push(
                name.span(),
                "`tags(...)` are a call's; a `batch` function can be `tagged` instead",
            );
        } else if !valid::is_tag_name(&text) {
            errors.push(
                name.span(),
                format!("tag name `{text}` must be made of A-Z a-z 0-9 . _ -"),
            );
        } else if seen.contains(&text) {
            errors.push(name.span(), format!("duplicate tag name `{text}`"));
        }
        seen.push(text);
    }
    tags
}
