//! Finds values that a self-describing codec would store but not give back
//! as they were: JSON writes `NaN` and infinities as `null`, and both JSON and
//! MessagePack write `Some(None)` (or `Some(())`) exactly like `None`.
//!
//! The check walks the value through serde without writing anything. Codecs
//! run it only when their output holds a null, so the common value costs one
//! byte scan.

use serde::Serialize;
use serde::ser;

/// Which losses a codec has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// `null` for non-finite floats and for every null-like `Some`.
    Json,
    /// `nil` for every null-like `Some`; floats are kept bit for bit.
    #[cfg(feature = "msgpack")]
    MsgPack,
}

impl Format {
    /// Whether the codec writes `value` as its null, as it writes `None`.
    fn writes_as_null<T: Serialize + ?Sized>(self, value: &T) -> bool {
        match self {
            Format::Json => serde_json::to_vec(value).is_ok_and(|bytes| bytes == b"null"),
            #[cfg(feature = "msgpack")]
            Format::MsgPack => rmp_serde::to_vec_named(value).is_ok_and(|bytes| bytes == [0xc0]),
        }
    }
}

/// Why a value would not round-trip.
pub(crate) type Lossy = super::SerdeMessage;

/// When `needed`, an error naming the first part of `value` that `format`
/// would not give back unchanged.
pub(crate) fn check_if<V: Serialize + ?Sized>(
    needed: bool,
    value: &V,
    format: Format,
) -> Result<(), Lossy> {
    if !needed {
        return Ok(());
    }
    value.serialize(Walk(format))
}

fn non_finite(format: Format, value: f64) -> Result<(), Lossy> {
    if format == Format::Json && !value.is_finite() {
        return Err(super::SerdeMessage(format!(
            "{value} cannot be stored as JSON (it would read back as null); \
             use another codec or a finite value"
        )));
    }
    Ok(())
}

/// Walks a whole value, checking floats and every `Some`.
#[derive(Clone, Copy)]
struct Walk(Format);

impl Walk {
    fn some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Lossy> {
        if self.0.writes_as_null(value) {
            return Err(super::SerdeMessage(
                "`Some` of a null-like value (`None`, `()`, a unit struct) is stored \
                 like `None` and would read back as `None`"
                    .into(),
            ));
        }
        value.serialize(self)
    }
}

/// The scalar methods, which accept any value.
macro_rules! scalars {
    ($ok:ty, $answer:expr) => {
        scalars!(@each $ok, $answer;
            serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
            serialize_i64(i64), serialize_i128(i128), serialize_u8(u8), serialize_u16(u16),
            serialize_u32(u32), serialize_u64(u64), serialize_u128(u128), serialize_char(char),
            serialize_str(&str), serialize_bytes(&[u8])
        );
    };
    (@each $ok:ty, $answer:expr; $($method:ident($ty:ty)),*) => {$(
        fn $method(self, _: $ty) -> Result<$ok, Lossy> { Ok($answer) }
    )*};
}

impl ser::Serializer for Walk {
    type Ok = ();
    type Error = Lossy;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    scalars!((), ());

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Lossy> {
        Ok(())
    }

    fn serialize_f32(self, v: f32) -> Result<(), Lossy> {
        non_finite(self.0, f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Lossy> {
        non_finite(self.0, v)
    }
    fn serialize_none(self) -> Result<(), Lossy> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Lossy> {
        self.some(value)
    }
    fn serialize_unit(self) -> Result<(), Lossy> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Lossy> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Lossy> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Lossy> {
        value.serialize(self)
    }
    compound_methods!(Ok);
}

/// The compound forms all walk their parts the same way.
macro_rules! walk_parts {
    ($($trait:ident :: $method:ident($($name:ident: $arg:ty),*)),* $(,)?) => {$(
        impl ser::$trait for Walk {
            type Ok = ();
            type Error = Lossy;
            fn $method<T: Serialize + ?Sized>(&mut self, $($name: $arg,)* value: &T) -> Result<(), Lossy> {
                $(let _ = $name;)*
                value.serialize(*self)
            }
            fn end(self) -> Result<(), Lossy> {
                Ok(())
            }
        }
    )*};
}

walk_parts!(
    SerializeSeq::serialize_element(),
    SerializeTuple::serialize_element(),
    SerializeTupleStruct::serialize_field(),
    SerializeTupleVariant::serialize_field(),
    SerializeStruct::serialize_field(key: &'static str),
    SerializeStructVariant::serialize_field(key: &'static str),
);

impl ser::SerializeMap for Walk {
    type Ok = ();
    type Error = Lossy;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Lossy> {
        key.serialize(*self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Lossy> {
        value.serialize(*self)
    }
    fn end(self) -> Result<(), Lossy> {
        Ok(())
    }
}
