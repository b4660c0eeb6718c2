//! The `codec = "..."` attribute.

use proc_macro2::Span;

use crate::attr::{Container, Errors};

/// The value codec a keyspace names.
pub(crate) enum Codec {
    Json,
    /// A feature-gated codec: its name and the span of the `codec` value.
    Gated(&'static str, Span),
    /// `plain`, with the span of the `codec` value.
    Plain(Span),
}

/// The codec named, JSON by default.
pub(super) fn codec(container: &Container, errors: &mut Errors) -> Codec {
    match &container.codec {
        None => Codec::Json,
        Some(lit) => match lit.value().as_str() {
            "json" => Codec::Json,
            "bincode" => Codec::Gated("bincode", lit.span()),
            "msgpack" => Codec::Gated("msgpack", lit.span()),
            "plain" => Codec::Plain(lit.span()),
            other => {
                errors.push(
                    lit.span(),
                    format!(
                        "unknown codec {other:?}; expected \"json\", \"bincode\", \"msgpack\" \
                         or \"plain\""
                    ),
                );
                Codec::Json
            }
        },
    }
}
