//! Reading `#[cache(...)]` attributes, without judging their values yet.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, Lit, LitStr, Member, Path, Type};

/// The errors found so far; all are reported together.
#[derive(Default)]
pub(crate) struct Errors(Vec<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, span: Span, message: impl std::fmt::Display) {
        self.0.push(syn::Error::new(span, message));
    }

    pub(crate) fn add(&mut self, error: syn::Error) {
        self.0.push(error);
    }

    /// One error carrying every message, or `Ok` when there were none.
    pub(crate) fn finish(self) -> syn::Result<()> {
        let mut all = self.0.into_iter();
        let Some(mut first) = all.next() else {
            return Ok(());
        };
        for error in all {
            first.combine(error);
        }
        Err(first)
    }
}

/// The container's `#[cache(...)]` settings as written.
#[derive(Default)]
pub(crate) struct Container {
    pub(crate) prefix: Option<LitStr>,
    pub(crate) ttl: Option<Lit>,
    pub(crate) version: Option<Lit>,
    pub(crate) codec: Option<LitStr>,
    pub(crate) compress: Option<LitStr>,
    pub(crate) compress_min: Option<Lit>,
    pub(crate) krate: Option<(Path, Span)>,
    pub(crate) key_type: Option<(Type, Span)>,
    pub(crate) negative_ttl: Option<Lit>,
    pub(crate) jitter: Option<Lit>,
    pub(crate) early_refresh: Option<Lit>,
    pub(crate) on_failure: Option<LitStr>,
    pub(crate) hard_timeout: Option<Lit>,
    pub(crate) fail_safe: Option<Lit>,
    pub(crate) fail_safe_throttle: Option<Lit>,
    pub(crate) soft_timeout: Option<Lit>,
    /// `distributed(lease = .., wait = ..)`: the two values and the word's span.
    pub(crate) distributed: Option<(Option<Lit>, Option<Lit>, Span)>,
    /// `local(capacity = .., ttl = ..)`: the two values and the word's span.
    pub(crate) local: Option<(Option<Lit>, Option<Lit>, Span)>,
    /// The bare word `tagged`, where it is.
    pub(crate) tagged: Option<Span>,
}

/// A field marked `#[cache(tag)]` or `#[cache(tag = "name")]`.
pub(crate) struct TagField {
    /// Where the `tag` word is, for errors.
    pub(crate) span: Span,
    pub(crate) member: Member,
    pub(crate) ty: Type,
    /// The name given, if any (else the field's).
    pub(crate) name: Option<LitStr>,
    pub(crate) in_enum: bool,
}

/// The fields marked `#[cache(...)]`: key and tags.
#[derive(Default)]
pub(crate) struct Marked {
    pub(crate) keys: Vec<KeyField>,
    pub(crate) tags: Vec<TagField>,
}

/// A field marked `#[cache(key)]`.
pub(crate) struct KeyField {
    /// Where the `key` word is, for errors.
    pub(crate) span: Span,
    pub(crate) member: Member,
    pub(crate) ty: Type,
    /// Whether the field is in an enum variant.
    pub(crate) in_enum: bool,
    /// How many fields its struct or variant has, and whether they are unnamed.
    pub(crate) siblings: usize,
    pub(crate) unnamed: bool,
}

/// The value after `name =`, which must be a string literal. Any other value
/// is an error here, and reading goes on, so that the attribute's other
/// mistakes are reported too.
pub(crate) fn string(
    meta: &ParseNestedMeta,
    name: &syn::Ident,
    errors: &mut Errors,
) -> syn::Result<Option<LitStr>> {
    let expected = format!("`{name}` takes a string, e.g. {name} = \"...\"");
    match value_of(meta, &expected, errors)? {
        Some(Lit::Str(value)) => Ok(Some(value)),
        Some(other) => {
            errors.push(other.span(), expected);
            Ok(None)
        }
        None => Ok(None),
    }
}

/// Sets `slot` (once) to the string after `name =` parsed as Rust syntax (a
/// path, a type), with the string's span; `hint` is the error when it does
/// not parse.
fn parse_into<T: syn::parse::Parse>(
    slot: &mut Option<(T, Span)>,
    meta: &ParseNestedMeta,
    name: &syn::Ident,
    hint: &str,
    errors: &mut Errors,
) -> syn::Result<()> {
    let Some(value) = string(meta, name, errors)? else {
        return Ok(());
    };
    match value.parse::<T>() {
        Ok(parsed) => set_once(slot, (parsed, value.span()), name, errors),
        Err(_) => errors.push(value.span(), hint),
    }
    Ok(())
}

/// The value after `name =`, which must be a literal (any kind; `valid`
/// judges it). Any other expression is an error here, and reading goes on.
fn literal(
    meta: &ParseNestedMeta,
    name: &syn::Ident,
    errors: &mut Errors,
) -> syn::Result<Option<Lit>> {
    value_of(meta, &format!("`{name}` takes a literal value"), errors)
}

/// The literal after `=`; any other expression is the error `expected`.
fn value_of(
    meta: &ParseNestedMeta,
    expected: &str,
    errors: &mut Errors,
) -> syn::Result<Option<Lit>> {
    let value: syn::Expr = meta.value()?.parse()?;
    match value {
        syn::Expr::Lit(syn::ExprLit { lit, .. }) => Ok(Some(lit)),
        other => {
            errors.push(other.span(), expected);
            Ok(None)
        }
    }
}

/// The two named values of a nested attribute such as
/// `distributed(lease = "5s", wait = "2s")`; anything else inside is an error.
fn pair(
    meta: &ParseNestedMeta,
    names: [&str; 2],
    errors: &mut Errors,
) -> syn::Result<(Option<Lit>, Option<Lit>)> {
    let (mut first, mut second) = (None, None);
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident(names[0]) {
            first = Some(inner.value()?.parse()?);
        } else if inner.path.is_ident(names[1]) {
            second = Some(inner.value()?.parse()?);
        } else {
            let [a, b] = names;
            errors.push(
                inner.path.span(),
                format!("expected `{a} = ...` or `{b} = ...`"),
            );
        }
        Ok(())
    })?;
    Ok((first, second))
}

/// Sets `slot` once; a second occurrence is an error at the repeated name.
pub(crate) fn set_once<T>(slot: &mut Option<T>, value: T, name: &syn::Ident, errors: &mut Errors) {
    if slot.is_some() {
        errors.push(name.span(), format!("duplicate `{name}` attribute"));
    } else {
        *slot = Some(value);
    }
}

fn cache_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|attr| attr.path().is_ident("cache"))
}

/// Reads `name = value` into `container` when `name` takes a string or any
/// literal; returns whether it did.
fn simple(
    container: &mut Container,
    meta: &ParseNestedMeta,
    name: &syn::Ident,
    errors: &mut Errors,
) -> syn::Result<bool> {
    let word = name.to_string();
    let strings = [
        ("prefix", &mut container.prefix),
        ("codec", &mut container.codec),
        ("compress", &mut container.compress),
        ("on_failure", &mut container.on_failure),
    ];
    if let Some((_, slot)) = strings.into_iter().find(|(known, _)| *known == word) {
        if let Some(value) = string(meta, name, errors)? {
            set_once(slot, value, name, errors);
        }
        return Ok(true);
    }
    let literals = [
        ("ttl", &mut container.ttl),
        ("version", &mut container.version),
        ("compress_min", &mut container.compress_min),
        ("negative_ttl", &mut container.negative_ttl),
        ("jitter", &mut container.jitter),
        ("early_refresh", &mut container.early_refresh),
        ("hard_timeout", &mut container.hard_timeout),
        ("fail_safe", &mut container.fail_safe),
        ("fail_safe_throttle", &mut container.fail_safe_throttle),
        ("soft_timeout", &mut container.soft_timeout),
    ];
    if let Some((_, slot)) = literals.into_iter().find(|(known, _)| *known == word) {
        if let Some(value) = literal(meta, name, errors)? {
            set_once(slot, value, name, errors);
        }
        return Ok(true);
    }
    Ok(false)
}

/// Reads one of the keyspace and load-policy options that the derive and
/// `#[cached]` share; returns whether `name` was one of them.
pub(crate) fn shared_option(
    container: &mut Container,
    meta: &ParseNestedMeta,
    name: &syn::Ident,
    errors: &mut Errors,
) -> syn::Result<bool> {
    if simple(container, meta, name, errors)? {
        return Ok(true);
    }
    match name.to_string().as_str() {
        "crate" => {
            let hint = "`crate` must be a path, e.g. \"my::cache_core\"";
            parse_into(&mut container.krate, meta, name, hint, errors)?;
        }
        "distributed" => {
            let (lease, wait) = pair(meta, ["lease", "wait"], errors)?;
            set_once(
                &mut container.distributed,
                (lease, wait, name.span()),
                name,
                errors,
            );
        }
        "local" => {
            let (capacity, ttl) = pair(meta, ["capacity", "ttl"], errors)?;
            set_once(
                &mut container.local,
                (capacity, ttl, name.span()),
                name,
                errors,
            );
        }
        "tagged" if !meta.input.peek(syn::Token![=]) => {
            set_once(&mut container.tagged, name.span(), name, errors);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Reports an unknown option at its name and skips its value, so that
/// reading goes on to the next one.
pub(crate) fn unknown(
    meta: &ParseNestedMeta,
    message: String,
    errors: &mut Errors,
) -> syn::Result<()> {
    errors.push(meta.path.span(), message);
    if meta.input.peek(syn::Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _: proc_macro2::Group = meta.input.parse()?;
    }
    Ok(())
}

pub(crate) fn container(input: &DeriveInput, errors: &mut Errors) -> Container {
    let mut container = Container::default();
    for attr in cache_attrs(&input.attrs) {
        let result = attr.parse_nested_meta(|meta| {
            let Some(name) = meta.path.get_ident().cloned() else {
                errors.push(meta.path.span(), "unknown cache attribute");
                return Ok(());
            };
            if shared_option(&mut container, &meta, &name, errors)? {
                return Ok(());
            }
            match name.to_string().as_str() {
                "key_type" => {
                    let hint = "`key_type` must be a type, e.g. \"u64\"";
                    parse_into(&mut container.key_type, &meta, &name, hint, errors)?;
                }
                "key" => errors.push(
                    name.span(),
                    "`key` goes on a field: `#[cache(key)] id: String`; use `key_type = \"...\"` here",
                ),
                "tag" => errors.push(
                    name.span(),
                    "`tag` goes on a field: `#[cache(tag)] tenant: u64`; use `tagged` here",
                ),
                other => unknown(
                    &meta,
                    format!(
                        "unknown cache attribute `{other}`; expected one of \
                         `prefix`, `ttl`, `version`, `codec`, `compress`, `compress_min`, \
                         `key_type`, `crate`, \
                         `negative_ttl`, `jitter`, `early_refresh`, `on_failure`, `distributed`, \
                         `hard_timeout`, `soft_timeout`, `fail_safe`, `fail_safe_throttle`, `local`, \
                         `tagged` (a bare word)"
                    ),
                    errors,
                )?,
            }
            Ok(())
        });
        if let Err(error) = result {
            errors.add(error);
        }
    }
    container
}

pub(crate) fn fields(input: &DeriveInput, errors: &mut Errors) -> Marked {
    let mut found = Marked::default();
    let mut scan = |fields: &Fields, in_enum: bool| {
        let unnamed = matches!(fields, Fields::Unnamed(_));
        for (index, field) in fields.iter().enumerate() {
            let member = match &field.ident {
                Some(ident) => Member::Named(ident.clone()),
                None => Member::Unnamed(index.into()),
            };
            for attr in cache_attrs(&field.attrs) {
                let result = attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident("key") {
                        found.keys.push(KeyField {
                            span: meta.path.span(),
                            member: member.clone(),
                            ty: field.ty.clone(),
                            in_enum,
                            siblings: fields.len(),
                            unnamed,
                        });
                    } else if meta.path.is_ident("tag") {
                        let name = match meta.input.peek(syn::Token![=]) {
                            true => {
                                let word = syn::Ident::new("tag", meta.path.span());
                                string(&meta, &word, errors)?
                            }
                            false => None,
                        };
                        found.tags.push(TagField {
                            span: meta.path.span(),
                            member: member.clone(),
                            ty: field.ty.clone(),
                            name,
                            in_enum,
                        });
                    } else {
                        errors.push(
                            meta.path.span(),
                            "unknown cache field attribute; expected `#[cache(key)]`, \
                             `#[cache(tag)]` or `#[cache(tag = \"name\")]`",
                        );
                    }
                    Ok(())
                });
                if let Err(error) = result {
                    errors.add(error);
                }
            }
        }
    };
    match &input.data {
        Data::Struct(data) => scan(&data.fields, false),
        Data::Enum(data) => {
            for variant in &data.variants {
                scan(&variant.fields, true);
            }
        }
        Data::Union(data) => {
            for field in &data.fields.named {
                if cache_attrs(&field.attrs).next().is_some() {
                    errors.push(field.span(), "`Cacheable` cannot be derived for a union");
                }
            }
        }
    }
    found
}
