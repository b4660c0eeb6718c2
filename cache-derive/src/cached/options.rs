//! Reading `#[cached(...)]`'s options, without judging them yet.

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Expr, Ident, LitStr};

use crate::attr::{self, Container, Errors};

/// The options as written.
#[derive(Default)]
pub(crate) struct Options {
    /// The keyspace and load-policy options the derive has too.
    pub(crate) shared: Container,
    /// `cache = <expr>`.
    pub(crate) cache: Option<Expr>,
    /// `key = part` or `key = (part, ...)`: the parts and where `key` is.
    pub(crate) key: Option<(Vec<Expr>, Span)>,
    /// `tags(name, name = expr, ...)`: each tag's name and value.
    pub(crate) tags: Vec<(LitStr, Expr)>,
    /// Where `tags` is, when given.
    pub(crate) tags_span: Option<Span>,
    /// The bare word `batch`, where it is.
    pub(crate) batch: Option<Span>,
}

const KNOWN: &str = "`cache`, `key`, `prefix`, `ttl`, `version`, `codec`, `compress`, \
    `compress_min`, `crate`, \
    `negative_ttl`, `jitter`, `early_refresh`, `on_failure`, `distributed`, `hard_timeout`, \
    `soft_timeout`, `fail_safe`, `fail_safe_throttle`, `local`, `tagged`, `tags`, `batch`";

/// Reads the attribute's arguments; every mistake goes to `errors`.
pub(crate) fn read(args: TokenStream, errors: &mut Errors) -> Options {
    let mut options = Options::default();
    let parser = syn::meta::parser(|meta| {
        let Some(name) = meta.path.get_ident().cloned() else {
            return attr::unknown(
                &meta,
                format!("unknown option; expected one of {KNOWN}"),
                errors,
            );
        };
        if attr::shared_option(&mut options.shared, &meta, &name, errors)? {
            return Ok(());
        }
        own_option(&mut options, &meta, &name, errors)
    });
    if let Err(error) = syn::parse::Parser::parse2(parser, args) {
        errors.add(error);
    }
    options
}

/// The options only `#[cached]` has.
fn own_option(
    options: &mut Options,
    meta: &ParseNestedMeta,
    name: &Ident,
    errors: &mut Errors,
) -> syn::Result<()> {
    match name.to_string().as_str() {
        "cache" => {
            let expr: Expr = meta.value()?.parse()?;
            attr::set_once(&mut options.cache, expr, name, errors);
        }
        "key" => {
            let parts = match meta.value()?.parse::<Expr>()? {
                Expr::Tuple(tuple) => tuple.elems.into_iter().collect(),
                Expr::Paren(one) => vec![*one.expr],
                one => vec![one],
            };
            attr::set_once(&mut options.key, (parts, name.span()), name, errors);
        }
        "tags" => {
            if options.tags_span.is_some() {
                errors.push(name.span(), "duplicate `tags` option");
            }
            options.tags_span = Some(name.span());
            meta.parse_nested_meta(|inner| {
                let Some(tag) = inner.path.get_ident() else {
                    errors.push(inner.path.span(), "a tag is `name` or `name = value`");
                    return Ok(());
                };
                let value: Expr = match inner.input.peek(syn::Token![=]) {
                    true => inner.value()?.parse()?,
                    false => syn::parse_quote!(#tag),
                };
                let label = tag.to_string();
                let label = LitStr::new(label.trim_start_matches("r#"), tag.span());
                options.tags.push((label, value));
                Ok(())
            })?;
        }
        "batch" if !meta.input.peek(syn::Token![=]) => {
            attr::set_once(&mut options.batch, name.span(), name, errors);
        }
        other => attr::unknown(
            meta,
            format!("unknown option `{other}`; expected one of {KNOWN}"),
            errors,
        )?,
    }
    Ok(())
}
