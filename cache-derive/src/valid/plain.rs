//! `codec = "plain"`: values stored as other clients write them, so only a
//! newtype over a string, a byte string or an integer, and nothing that puts
//! a header or a frame around the value.

use proc_macro2::Span;
use syn::{Data, DeriveInput, Fields, Type};

use super::Common;
use crate::attr::Errors;

/// Errors at the codec's `span` for settings that need a header or a
/// frame: fail-safe, tags and compression.
pub(crate) fn check_common(common: &Common, span: Span, errors: &mut Errors) {
    let needs_header = [
        (common.load.fail_safe_ms.is_some(), "fail_safe"),
        (common.tagged, "tags"),
        (common.compress.is_some(), "compress"),
    ];
    for (_, feature) in needs_header.into_iter().filter(|(on, _)| *on) {
        errors.push(
            span,
            format!(
                "codec \"plain\" stores values as other clients read them, with no header or \
                 frame, so it cannot have {feature}"
            ),
        );
    }
}

/// The type of the one field of the newtype `input` must be.
pub(crate) fn value_field(input: &DeriveInput, span: Span, errors: &mut Errors) -> Option<Type> {
    let field = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Unnamed(fields) if fields.unnamed.len() == 1 => fields.unnamed.first(),
            _ => None,
        },
        _ => None,
    };
    if field.is_none() {
        errors.push(
            span,
            "codec \"plain\" stores one string, byte string or integer: derive it on a \
             newtype such as `struct Token(String)`",
        );
    }
    field.map(|field| field.ty.clone())
}
