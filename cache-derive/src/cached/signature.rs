//! What a cached function's signature says: how each argument reaches the
//! load (which runs in its own task, so it gets owned copies), and what the
//! return type is.

use proc_macro2::{TokenStream, TokenTree};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, Pat, PathArguments, ReturnType, Signature, Type};

use crate::attr::Errors;

/// The receiver of a method: the type the load gets a clone of.
pub(crate) struct Receiver {
    /// `Self` for `&self`, `Arc<Self>` for `self: Arc<Self>` or `self: &Arc<Self>`.
    pub(crate) owned: Type,
    /// Whether the body sees it through a reference.
    pub(crate) by_ref: bool,
    /// Whether the body binds it `mut`.
    pub(crate) mutable: bool,
}

/// One argument other than the receiver.
pub(crate) struct Param {
    /// The name the wrapper binds it to: the argument's own, or `__argN`
    /// for a pattern.
    pub(crate) name: Ident,
    /// The argument's pattern, as the body sees it.
    pub(crate) pat: Pat,
    pub(crate) ty: Type,
    /// `T` for an argument of type `&T`: the load gets a `T::Owned`.
    pub(crate) referent: Option<Type>,
}

/// The four return types, and the batch forms.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    ResultOption,
    Result,
    Option,
    Plain,
}

impl Form {
    /// Whether the function can return an error.
    pub(crate) fn fallible(self) -> bool {
        matches!(self, Form::ResultOption | Form::Result)
    }

    /// Whether it can return "none".
    pub(crate) fn optional(self) -> bool {
        matches!(self, Form::ResultOption | Form::Option)
    }
}

/// The signature, read.
pub(crate) struct Shape {
    pub(crate) receiver: Option<Receiver>,
    pub(crate) params: Vec<Param>,
    pub(crate) form: Form,
    /// The return type as written.
    pub(crate) output: Type,
    /// The cached value's type: `T` of `Result<Option<T>, E>` etc.; for a
    /// batch, the map's.
    pub(crate) value: Type,
    /// For a batch: the map's key type.
    pub(crate) map_key: Option<Type>,
}

/// Reads `sig`; `batch` says whether the value is a map of many keys.
pub(crate) fn read(sig: &mut Signature, batch: bool, errors: &mut Errors) -> Shape {
    if sig.asyncness.is_none() {
        errors.push(sig.fn_token.span(), "`#[cached]` goes on an `async fn`");
    }
    if let Some(token) = &sig.constness {
        errors.push(token.span(), "`#[cached]` cannot go on a `const fn`");
    }
    if let Some(token) = &sig.unsafety {
        errors.push(token.span(), "`#[cached]` cannot go on an `unsafe fn`");
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(
            variadic.span(),
            "`#[cached]` cannot go on a variadic function",
        );
    }
    let mut receiver = None;
    let mut params = Vec::new();
    for (index, input) in sig.inputs.iter_mut().enumerate() {
        match input {
            FnArg::Receiver(own) => receiver = read_receiver(own, errors),
            FnArg::Typed(typed) => {
                if let Some(param) = read_param(index, typed, errors) {
                    params.push(param);
                }
            }
        }
    }
    let output = match &sig.output {
        ReturnType::Type(_, ty) => (**ty).clone(),
        ReturnType::Default => {
            errors.push(
                sig.ident.span(),
                "a cached function returns the value it caches: add `-> T`",
            );
            syn::parse_quote!(())
        }
    };
    let (form, inner) = form_of(&output);
    let (value, map_key) = match batch {
        false => (inner, None),
        true => match map_types(&inner) {
            Some((key, value)) => (value, Some(key)),
            None => {
                errors.push(
                    inner.span(),
                    "a `batch` function returns a map of its keys to values, e.g. \
                     `HashMap<K, V>` or `Result<HashMap<K, V>, E>`",
                );
                (inner, Some(syn::parse_quote!(())))
            }
        },
    };
    Shape {
        receiver,
        params,
        form,
        output,
        value,
        map_key,
    }
}

fn read_receiver(own: &syn::Receiver, errors: &mut Errors) -> Option<Receiver> {
    match &*own.ty {
        Type::Reference(reference) if reference.mutability.is_some() => {
            errors.push(
                own.span(),
                "a cached method cannot take `&mut self`: its body runs in a task of its \
                 own, on a clone of `self`",
            );
            None
        }
        Type::Reference(reference) => Some(Receiver {
            owned: (*reference.elem).clone(),
            by_ref: true,
            mutable: false,
        }),
        ty => Some(Receiver {
            owned: ty.clone(),
            by_ref: false,
            mutable: own.mutability.is_some(),
        }),
    }
}

fn read_param(index: usize, typed: &mut syn::PatType, errors: &mut Errors) -> Option<Param> {
    let ty = (*typed.ty).clone();
    let referent = match &ty {
        Type::Reference(reference) if reference.mutability.is_some() => {
            errors.push(
                ty.span(),
                "a cached function cannot take `&mut` arguments: its body runs in a task \
                 of its own, on copies of them",
            );
            return None;
        }
        Type::Reference(reference) => Some((*reference.elem).clone()),
        Type::ImplTrait(_) => {
            errors.push(
                ty.span(),
                "a cached function cannot take `impl Trait` arguments; use a generic parameter",
            );
            return None;
        }
        _ => None,
    };
    let pat = (*typed.pat).clone();
    let name = match &pat {
        Pat::Ident(ident) if ident.subpat.is_none() => ident.ident.clone(),
        _ => {
            // The wrapper binds the argument whole; the body destructures it.
            let name = format_ident!("__arg{}", index);
            *typed.pat = syn::parse_quote!(#name);
            name
        }
    };
    Some(Param {
        name,
        pat,
        ty,
        referent,
    })
}

/// The form of `output` and the type inside it.
fn form_of(output: &Type) -> (Form, Type) {
    match outer(output, "Result") {
        Some(inner) => match outer(&inner, "Option") {
            Some(value) => (Form::ResultOption, value),
            None => (Form::Result, inner),
        },
        None => match outer(output, "Option") {
            Some(value) => (Form::Option, value),
            None => (Form::Plain, output.clone()),
        },
    }
}

/// The first type argument of `ty` when its last path segment is `name`.
fn outer(ty: &Type, name: &str) -> Option<Type> {
    let (first, _) = type_args(ty, name)?;
    Some(first)
}

/// The key and value types of a map type (its first two type arguments).
fn map_types(ty: &Type) -> Option<(Type, Type)> {
    let (key, value) = type_args(ty, "")?;
    Some((key, value?))
}

/// The first two type arguments of a path type whose last segment is `name`
/// (any name when empty).
fn type_args(ty: &Type, name: &str) -> Option<(Type, Option<Type>)> {
    let Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if !name.is_empty() && last.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty.clone()),
        _ => None,
    });
    let first = types.next()?;
    Some((first, types.next()))
}

/// Whether `tokens` mention `ident` (as a word, at any depth, or as an
/// inline argument of a format string: `"{ident}"`, `"{ident:?}"`).
pub(crate) fn mentions(tokens: TokenStream, ident: &str) -> bool {
    tokens.into_iter().any(|token| match token {
        TokenTree::Ident(word) => word == ident,
        TokenTree::Group(group) => mentions(group.stream(), ident),
        TokenTree::Literal(literal) => {
            let text = literal.to_string();
            let inline = format!("{{{ident}");
            text.match_indices(&inline).any(|(at, _)| {
                let next = text[at + inline.len()..].chars().next();
                matches!(next, Some('}' | ':'))
            })
        }
        TokenTree::Punct(_) => false,
    })
}

/// `tokens` with every `self` (but `self::` paths) renamed `__self`: the
/// body runs in a closure, where `self` cannot be bound.
pub(crate) fn rename_self(tokens: TokenStream) -> TokenStream {
    let mut out = Vec::new();
    let mut tokens = tokens.into_iter().peekable();
    while let Some(token) = tokens.next() {
        match token {
            TokenTree::Ident(word) if word == "self" => {
                let path = matches!(tokens.peek(), Some(TokenTree::Punct(p)) if p.as_char() == ':');
                out.push(match path {
                    true => TokenTree::Ident(word),
                    false => TokenTree::Ident(Ident::new("__self", word.span())),
                });
            }
            TokenTree::Group(group) => {
                let mut renamed =
                    proc_macro2::Group::new(group.delimiter(), rename_self(group.stream()));
                renamed.set_span(group.span());
                out.push(TokenTree::Group(renamed));
            }
            other => out.push(other),
        }
    }
    out.into_iter().collect()
}

/// The owned type an argument of type `&T` is copied into.
pub(crate) fn owned_type(referent: &Type) -> TokenStream {
    quote!(<#referent as ::std::borrow::ToOwned>::Owned)
}
