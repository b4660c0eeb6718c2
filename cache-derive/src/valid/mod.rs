//! Checking attribute values; every error is spanned at the offending token.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Lit, Member, Path, Type};

mod codec;
mod compress;
mod plain;

pub(crate) use self::codec::Codec;
use self::codec::codec;
pub(crate) use self::compress::Compress;
use crate::attr::{Container, Errors, KeyField, Marked, TagField};

/// The longest TTL: Redis' millisecond expiry times are `i64` since the epoch,
/// and half that range leaves room for "now" (the same bound as
/// `cache_core::MAX_TTL`).
const MAX_TTL_MS: u64 = i64::MAX as u64 / 2;

/// What the derive writes, all checked.
pub(crate) struct Settings {
    pub(crate) common: Common,
    pub(crate) key: Key,
    /// The tag fields: the tag's name, the field and its type.
    pub(crate) tags: Vec<(String, Member, Type)>,
    /// Under `codec = "plain"`, the newtype's field type, which must be a
    /// `cache_core::PlainValue`.
    pub(crate) plain_field: Option<Type>,
}

/// The keyspace and load-policy settings that the derive and `#[cached]`
/// share, all checked.
pub(crate) struct Common {
    pub(crate) krate: Path,
    pub(crate) prefix: String,
    pub(crate) version: u32,
    pub(crate) ttl_ms: Option<u64>,
    pub(crate) codec: Codec,
    pub(crate) compress: Option<Compress>,
    pub(crate) load: Load,
    /// The local tier: capacity and TTL in milliseconds.
    pub(crate) local: Option<(u64, u64)>,
    /// Whether the keyspace is tagged.
    pub(crate) tagged: bool,
}

/// The `get_or_load` policy; `None` fields keep `LoadPolicy::DEFAULT`'s.
#[derive(Default)]
pub(crate) struct Load {
    pub(crate) negative_ttl_ms: Option<u64>,
    pub(crate) jitter: Option<f64>,
    pub(crate) early_refresh: Option<f64>,
    pub(crate) fail_closed: Option<bool>,
    /// Lease and wait, in milliseconds.
    pub(crate) distributed: Option<(u64, u64)>,
    pub(crate) hard_timeout_ms: Option<u64>,
    pub(crate) fail_safe_ms: Option<u64>,
    pub(crate) fail_safe_throttle_ms: Option<u64>,
    pub(crate) soft_timeout_ms: Option<u64>,
}

pub(crate) enum Key {
    Field { member: Member, ty: Type },
    Type(Type),
}

/// The first character a prefix may not hold (the rule of
/// `cache_core::is_valid_prefix`, checked to agree by a test).
fn first_bad_prefix_char(prefix: &str) -> Option<char> {
    prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
}

pub(crate) fn check(
    input: &DeriveInput,
    mut container: Container,
    marked: Marked,
    errors: &mut Errors,
) -> Settings {
    if let Data::Union(data) = &input.data {
        errors.push(
            data.union_token.span(),
            "`Cacheable` cannot be derived for a union; use a struct or an enum",
        );
    }
    let key_type = container.key_type.take();
    let default_prefix = snake_case(&input.ident.unraw());
    let mut common = common(container, default_prefix, errors);
    let tags = tag_fields(marked.tags, errors);
    common.tagged |= !tags.is_empty();
    let key = key_choice(key_type, marked.keys, errors);
    let plain_field = match common.codec {
        Codec::Plain(span) => plain::value_field(input, span, errors),
        _ => None,
    };
    Settings {
        common,
        key,
        tags,
        plain_field,
    }
}

/// Checks the shared settings; `default_prefix` is used when none is given.
pub(crate) fn common(container: Container, default_prefix: String, errors: &mut Errors) -> Common {
    let load = load_policy(&container, errors);
    let local = local_tier(&container, errors);
    let prefix = prefix(&container, default_prefix, errors);
    let version = version(&container, errors);
    let ttl_ms = container
        .ttl
        .as_ref()
        .and_then(|lit| match ttl_millis(lit) {
            Ok(ms) => Some(ms),
            Err(message) => {
                errors.push(lit.span(), message);
                None
            }
        });
    let codec = codec(&container, errors);
    let compress = compress::check(&container, errors);
    let krate = container
        .krate
        .map(|(path, _)| path)
        .unwrap_or_else(|| syn::parse_quote!(::cache_core));
    let common = Common {
        krate,
        prefix,
        version,
        ttl_ms,
        codec,
        compress,
        load,
        local,
        tagged: container.tagged.is_some(),
    };
    if let Codec::Plain(span) = common.codec {
        plain::check_common(&common, span, errors);
    }
    common
}

/// Whether `name` can name a tag: non-empty, made of A-Z a-z 0-9 . _ - (the
/// prefix rule, so that `name:value` reads one way).
pub(crate) fn is_tag_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The tag fields, each with its tag's name: as given, or the field's.
/// Names follow the prefix rule (so `name:value` reads one way) and are
/// distinct; tag fields go on structs.
fn tag_fields(fields: Vec<TagField>, errors: &mut Errors) -> Vec<(String, Member, Type)> {
    let mut tags: Vec<(String, Member, Type)> = Vec::with_capacity(fields.len());
    for field in fields {
        if field.in_enum {
            errors.push(
                field.span,
                "`#[cache(tag)]` goes on a struct's fields, not an enum's",
            );
            continue;
        }
        let (name, span) = match (&field.name, &field.member) {
            (Some(name), _) => (name.value(), name.span()),
            (None, Member::Named(ident)) => (
                ident.to_string().trim_start_matches("r#").to_owned(),
                field.span,
            ),
            (None, Member::Unnamed(_)) => {
                errors.push(
                    field.span,
                    "an unnamed field needs a tag name: `#[cache(tag = \"tenant\")]`",
                );
                continue;
            }
        };
        if !is_tag_name(&name) {
            errors.push(
                span,
                format!(
                    "tag name `{}` must be non-empty and made of A-Z a-z 0-9 . _ -",
                    name.escape_debug()
                ),
            );
            continue;
        }
        if tags.iter().any(|(known, ..)| *known == name) {
            errors.push(span, format!("duplicate tag name `{name}`"));
            continue;
        }
        tags.push((name, field.member, field.ty));
    }
    tags
}

/// The key prefix: as given (checked), or the type's name in snake case.
fn prefix(container: &Container, default: String, errors: &mut Errors) -> String {
    match &container.prefix {
        Some(lit) => {
            let prefix = lit.value();
            if prefix.is_empty() {
                errors.push(lit.span(), "`prefix` must not be empty");
            } else if let Some(bad) = first_bad_prefix_char(&prefix) {
                errors.push(
                    lit.span(),
                    format!("`prefix` may only hold A-Z a-z 0-9 . _ - (found {bad:?})"),
                );
            }
            prefix
        }
        None => default,
    }
}

/// The schema version: at least 1, within a u32.
fn version(container: &Container, errors: &mut Errors) -> u32 {
    match &container.version {
        Some(Lit::Int(lit)) => match lit.base10_parse::<u32>() {
            Ok(0) => {
                errors.push(lit.span(), "`version` must be at least 1");
                1
            }
            Ok(version) => version,
            Err(_) => {
                errors.push(lit.span(), "`version` must fit in a u32");
                1
            }
        },
        Some(other) => {
            errors.push(
                other.span(),
                "`version` must be an integer, e.g. `version = 2`",
            );
            1
        }
        None => 1,
    }
}

/// The longest local TTL, as `cache_core::MAX_LOCAL_TTL` (one year).
const MAX_LOCAL_TTL_MS: u64 = 365 * 24 * 3600 * 1000;

fn local_tier(container: &Container, errors: &mut Errors) -> Option<(u64, u64)> {
    let (capacity, ttl, span) = container.local.as_ref()?;
    let (Some(capacity), Some(ttl)) = (capacity, ttl) else {
        errors.push(
            *span,
            "`local` needs both, e.g. `local(capacity = 10000, ttl = \"5s\")`",
        );
        return None;
    };
    let parsed = match capacity {
        Lit::Int(int) => int.base10_parse::<u64>().ok().filter(|n| *n > 0),
        _ => None,
    };
    let Some(capacity) = parsed else {
        errors.push(
            capacity.span(),
            "`local` capacity must be a whole number of at least 1",
        );
        return None;
    };
    let ttl_ms = match ttl_millis(ttl) {
        Ok(ms) if ms <= MAX_LOCAL_TTL_MS => ms,
        Ok(_) => {
            errors.push(
                ttl.span(),
                "a local tier's `ttl` must be at most a year (\"365d\")",
            );
            return None;
        }
        Err(message) => {
            errors.push(ttl.span(), message);
            return None;
        }
    };
    Some((capacity, ttl_ms))
}

fn load_policy(container: &Container, errors: &mut Errors) -> Load {
    let mut load = Load::default();
    let mut duration = |lit: &Lit, name: &str| match ttl_millis(lit) {
        Ok(ms) => Some(ms),
        Err(message) => {
            // The messages speak of `ttl`; name the attribute that was written.
            let message = message.replace("`ttl", &format!("`{name}"));
            errors.push(
                lit.span(),
                message.replace("ttl unit", &format!("{name} unit")),
            );
            None
        }
    };
    let durations = [
        (
            &container.negative_ttl,
            "negative_ttl",
            &mut load.negative_ttl_ms,
        ),
        (
            &container.hard_timeout,
            "hard_timeout",
            &mut load.hard_timeout_ms,
        ),
        (&container.fail_safe, "fail_safe", &mut load.fail_safe_ms),
        (
            &container.fail_safe_throttle,
            "fail_safe_throttle",
            &mut load.fail_safe_throttle_ms,
        ),
        (
            &container.soft_timeout,
            "soft_timeout",
            &mut load.soft_timeout_ms,
        ),
    ];
    for (lit, name, slot) in durations {
        *slot = lit.as_ref().and_then(|lit| duration(lit, name));
    }
    if let Some((lease, wait, span)) = &container.distributed {
        match (lease, wait) {
            (Some(lease), Some(wait)) => {
                let lease = duration(lease, "lease");
                let wait = duration(wait, "wait");
                load.distributed = lease.zip(wait);
            }
            _ => errors.push(
                *span,
                "`distributed` needs both, e.g. `distributed(lease = \"5s\", wait = \"2s\")`",
            ),
        }
    }
    fractions_and_failure(container, &mut load, errors);
    fail_safe_rules(container, &load, errors);
    load
}

fn key_choice(key_type: Option<(Type, Span)>, fields: Vec<KeyField>, errors: &mut Errors) -> Key {
    let mut usable = None;
    for field in fields {
        if field.in_enum {
            errors.push(
                field.span,
                "`#[cache(key)]` cannot be used in an enum: variants may not all have the field; \
                 use `key_type = \"...\"` on the enum",
            );
        } else if field.unnamed && field.siblings == 1 {
            errors.push(
                field.span,
                "`#[cache(key)]` cannot be on the only field of a newtype: the value would be \
                 its own key; use `key_type = \"...\"` on the struct",
            );
        } else if usable.is_some() {
            errors.push(field.span, "only one field can be `#[cache(key)]`");
        } else {
            usable = Some(field);
        }
    }
    match (usable, key_type) {
        (Some(field), Some((_, span))) => {
            errors.push(span, "`key_type` conflicts with the `#[cache(key)]` field");
            Key::Field {
                member: field.member,
                ty: field.ty,
            }
        }
        (Some(field), None) => Key::Field {
            member: field.member,
            ty: field.ty,
        },
        (None, Some((ty, _))) => Key::Type(ty),
        (None, None) => Key::Type(syn::parse_quote!(::std::string::String)),
    }
}

/// `ttl = 300` (seconds) or `ttl = "300ms" | "30s" | "5m" | "1h" | "7d"`.
fn ttl_millis(lit: &Lit) -> Result<u64, String> {
    let (amount, unit_ms) = match lit {
        Lit::Int(int) => {
            if !int.suffix().is_empty() {
                return Err("write the unit inside a string, e.g. `ttl = \"30s\"`".into());
            }
            let seconds = int
                .base10_parse::<u64>()
                .map_err(|_| "`ttl` is out of range".to_owned())?;
            (seconds, 1_000)
        }
        Lit::Str(text) => {
            let text = text.value();
            let split = text
                .find(|c: char| !c.is_ascii_digit())
                .ok_or_else(|| format!("`ttl = {text:?}` needs a unit: ms, s, m, h or d"))?;
            let (digits, unit) = text.split_at(split);
            let unit_ms = match unit {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                other => {
                    return Err(format!(
                        "unknown ttl unit {other:?}; expected ms, s, m, h or d (e.g. \"5m\")"
                    ));
                }
            };
            let amount = digits.parse::<u64>().map_err(|_| {
                format!("`ttl = {text:?}` must be a whole number and a unit, e.g. \"5m\"")
            })?;
            (amount, unit_ms)
        }
        _ => {
            return Err(
                "`ttl` must be seconds (`ttl = 300`) or a string with a unit (`ttl = \"5m\"`)"
                    .into(),
            );
        }
    };
    match amount.checked_mul(unit_ms) {
        Some(0) => Err("`ttl` must be greater than zero; leave it out for no expiry".into()),
        Some(ms) if ms <= MAX_TTL_MS => Ok(ms),
        _ => Err("`ttl` is out of range: Redis accepts at most about 146 million years".into()),
    }
}

/// `ModelPrice` → `model_price`, `HTTPCache` → `http_cache`.
fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    out
}

trait Unraw {
    fn unraw(&self) -> String;
}

impl Unraw for syn::Ident {
    fn unraw(&self) -> String {
        let name = self.to_string();
        name.strip_prefix("r#").map(str::to_owned).unwrap_or(name)
    }
}

/// The fraction attributes (`jitter`, `early_refresh`) and `on_failure`.
fn fractions_and_failure(container: &Container, load: &mut Load, errors: &mut Errors) {
    let mut fraction = |lit: &Lit, name: &str, zero_ok: bool| {
        let value = match lit {
            Lit::Float(float) => float.base10_parse::<f64>().ok(),
            _ => None,
        };
        match value {
            Some(v) if v < 1.0 && (v > 0.0 || (zero_ok && v == 0.0)) => Some(v),
            _ => {
                errors.push(
                    lit.span(),
                    format!("`{name}` must be a fraction between 0 and 1, e.g. `{name} = 0.1`"),
                );
                None
            }
        }
    };
    load.jitter = container
        .jitter
        .as_ref()
        .and_then(|lit| fraction(lit, "jitter", true));
    load.early_refresh = container
        .early_refresh
        .as_ref()
        .and_then(|lit| fraction(lit, "early_refresh", false));
    load.fail_closed = container
        .on_failure
        .as_ref()
        .and_then(|lit| match lit.value().as_str() {
            "open" => Some(false),
            "closed" => Some(true),
            other => {
                errors.push(
                    lit.span(),
                    format!("unknown on_failure {other:?}; expected \"open\" or \"closed\""),
                );
                None
            }
        });
}

/// What the fail-safe attributes need of each other: `soft_timeout` and
/// `fail_safe_throttle` act on expired values, kept only with `fail_safe`;
/// the load a soft timeout leaves running is bounded by the hard one, which
/// must be longer.
fn fail_safe_rules(container: &Container, load: &Load, errors: &mut Errors) {
    if container.fail_safe.is_none() {
        let needs = [
            ("soft_timeout", &container.soft_timeout),
            ("fail_safe_throttle", &container.fail_safe_throttle),
        ];
        for (name, lit) in needs {
            if let Some(lit) = lit {
                errors.push(
                    lit.span(),
                    format!("`{name}` needs `fail_safe`, e.g. `fail_safe = \"1h\"`: it acts on expired values"),
                );
            }
        }
    }
    let Some(lit) = &container.soft_timeout else {
        return;
    };
    match (load.soft_timeout_ms, load.hard_timeout_ms) {
        (Some(_), None) if container.hard_timeout.is_none() => errors.push(
            lit.span(),
            "`soft_timeout` needs `hard_timeout`, e.g. `hard_timeout = \"2s\"`: it bounds the load left running",
        ),
        (Some(soft), Some(hard)) if soft >= hard => {
            errors.push(lit.span(), "`soft_timeout` must be below `hard_timeout`");
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn snake_cases_type_names() {
        assert_eq!(snake_case("ModelPrice"), "model_price");
        assert_eq!(snake_case("HTTPCache"), "http_cache");
        assert_eq!(snake_case("Seq2Id"), "seq2_id");
        assert_eq!(snake_case("x"), "x");
    }

    #[test]
    fn parses_ttls() {
        let ms = |tokens: proc_macro2::TokenStream| ttl_millis(&syn::parse2(tokens).unwrap());
        assert_eq!(ms(quote::quote!(300)), Ok(300_000));
        assert_eq!(ms(quote::quote!("300ms")), Ok(300));
        assert_eq!(ms(quote::quote!("5m")), Ok(300_000));
        assert_eq!(ms(quote::quote!("7d")), Ok(604_800_000));
        assert!(ms(quote::quote!(0)).is_err());
        assert!(ms(quote::quote!("5y")).is_err());
        assert!(ms(quote::quote!("5")).is_err());
        assert!(ms(quote::quote!("99999999999999999d")).is_err());
    }

    /// The derive checks at compile time what cache-core checks at run time;
    /// the copies of the rules must agree.
    #[test]
    fn the_rules_copied_from_cache_core_agree_with_it() {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap();
        assert_eq!(MAX_TTL_MS, millis(cache_core::MAX_TTL));
        assert_eq!(MAX_LOCAL_TTL_MS, millis(cache_core::MAX_LOCAL_TTL));
        for prefix in [
            "price", "a.b_c-D9", "", " ", "a:b", "a{b}", "ü", "x*", "a b", "a%", "_", "-", ".",
        ] {
            let derive_accepts = !prefix.is_empty() && first_bad_prefix_char(prefix).is_none();
            assert_eq!(
                derive_accepts,
                cache_core::is_valid_prefix(prefix),
                "{prefix:?}"
            );
        }
    }
}
