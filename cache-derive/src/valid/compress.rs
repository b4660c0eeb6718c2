//! Checking the `compress` and `compress_min` options.

use proc_macro2::Span;
use syn::Lit;

use crate::attr::{Container, Errors};

/// Redis' largest string: a larger threshold could never be reached.
const MAX_MIN_SIZE: u64 = 512 << 20;

/// `cache_core::DEFAULT_COMPRESS_MIN`, checked to agree by a test there.
const DEFAULT_MIN_SIZE: u64 = 1024;

/// A checked `compress` option.
pub(crate) struct Compress {
    /// `lz4` or `zstd`.
    pub(crate) name: &'static str,
    /// Where the algorithm's name is, for the feature-off error.
    pub(crate) span: Span,
    pub(crate) min_size: u64,
}

/// The compression the options ask for, if any.
pub(crate) fn check(container: &Container, errors: &mut Errors) -> Option<Compress> {
    let min_size = container.compress_min.as_ref().and_then(|lit| {
        size(lit)
            .map_err(|message| errors.push(lit.span(), message))
            .ok()
    });
    let Some(algorithm) = &container.compress else {
        if let Some(lit) = &container.compress_min {
            errors.push(
                lit.span(),
                "`compress_min` needs `compress = \"lz4\"` or `compress = \"zstd\"`",
            );
        }
        return None;
    };
    let name = match algorithm.value().as_str() {
        "lz4" => "lz4",
        "zstd" => "zstd",
        other => {
            errors.push(
                algorithm.span(),
                format!("unknown compression {other:?}; expected \"lz4\" or \"zstd\""),
            );
            return None;
        }
    };
    Some(Compress {
        name,
        span: algorithm.span(),
        min_size: min_size.unwrap_or(DEFAULT_MIN_SIZE),
    })
}

/// A size in bytes: a whole number, or a string with a unit (`B`, `KiB`, `MiB`).
fn size(lit: &Lit) -> Result<u64, String> {
    let bytes = match lit {
        Lit::Int(int) if int.suffix().is_empty() => int
            .base10_parse::<u64>()
            .map_err(|_| "`compress_min` is out of range".to_owned())?,
        Lit::Str(text) => {
            let text = text.value();
            let split = text
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len());
            let (digits, unit) = text.split_at(split);
            let scale: u64 = match unit {
                "" | "B" => 1,
                "KiB" => 1 << 10,
                "MiB" => 1 << 20,
                other => {
                    return Err(format!(
                        "unknown size unit {other:?} in `compress_min`; expected B, KiB or MiB \
                         (e.g. \"4KiB\")"
                    ));
                }
            };
            let amount = digits.parse::<u64>().map_err(|_| {
                format!(
                    "`compress_min = {text:?}` must be a whole number and a unit, e.g. \"4KiB\""
                )
            })?;
            amount.saturating_mul(scale)
        }
        _ => {
            return Err(
                "`compress_min` must be bytes (`compress_min = 4096`) or a string with a unit \
                 (`compress_min = \"4KiB\"`)"
                    .into(),
            );
        }
    };
    if bytes > MAX_MIN_SIZE {
        return Err("`compress_min` must be at most \"512MiB\", Redis' largest value".into());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(tokens: &str) -> Lit {
        syn::parse_str(tokens).unwrap()
    }

    #[test]
    fn sizes_read_with_and_without_units() {
        assert_eq!(size(&parse("4096")), Ok(4096));
        assert_eq!(size(&parse("\"512\"")), Ok(512));
        assert_eq!(size(&parse("\"64B\"")), Ok(64));
        assert_eq!(size(&parse("\"1KiB\"")), Ok(1024));
        assert_eq!(size(&parse("\"2MiB\"")), Ok(2 << 20));
        assert!(size(&parse("\"1KB\"")).unwrap_err().contains("KiB"));
        assert!(size(&parse("\"KiB\"")).is_err());
        assert!(size(&parse("\"1024MiB\"")).unwrap_err().contains("512MiB"));
        assert!(size(&parse("1.5")).is_err());
        assert!(size(&parse("10u8")).is_err());
    }
}
