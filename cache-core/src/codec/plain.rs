//! The plain value form: a string as its UTF-8 bytes, a byte string as
//! itself, an integer as decimal text, so that redis-cli and other languages'
//! clients read and write the same bytes. Every other shape is refused.

use serde::de::value::SeqDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, SeqAccess, Visitor};
use serde::ser::{self, Impossible, Serialize};

use super::SerdeMessage;

/// A type that [`Codec::Plain`](crate::Codec::Plain) can store: a string, a
/// byte string or an integer, kept as the bytes another client writes.
/// `#[derive(Cacheable)]` with `codec = "plain"` requires it of the newtype's
/// field, so that any other type is a compile error.
///
/// ```
/// use cache_core::Cacheable;
///
/// #[derive(serde::Serialize, serde::Deserialize, Cacheable)]
/// #[cache(prefix = "token", codec = "plain", key_type = "String")]
/// struct Token(String);
///
/// assert_eq!(Token::CODEC, cache_core::Codec::Plain);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored with codec \"plain\"",
    label = "not a string, byte string or integer",
    note = "the plain codec stores String, Box<str>, Vec<u8> and integers as other clients \
            write them; use codec \"json\" for other types"
)]
pub trait PlainValue {}

macro_rules! plain_values {
    ($($ty:ty),*) => {$(impl PlainValue for $ty {})*};
}

plain_values!(
    String,
    Box<str>,
    Vec<u8>,
    i8,
    i16,
    i32,
    i64,
    isize,
    u8,
    u16,
    u32,
    u64,
    usize
);

/// [`Error::Config`](crate::Error::Config) when a `Plain` keyspace asks for
/// one of `settings` (whether it is on, and its name) that put a header or a
/// frame around values: fail-safe, tags, compression.
pub(crate) fn check_plain<const N: usize>(
    prefix: &str,
    codec: super::Codec,
    settings: [(bool, &str); N],
) -> crate::error::Result<()> {
    let found = settings.into_iter().find(|(on, _)| *on);
    match (codec, found) {
        (super::Codec::Plain, Some((_, setting))) => Err(crate::error::Error::config(format!(
            "codec plain on `{prefix}` stores values as other clients read them, with no \
             header or frame, so it cannot have {setting}"
        ))),
        _ => Ok(()),
    }
}

/// What the plain form can hold: a string, a byte string or an integer.
pub(crate) const PLAIN_SHAPES: &str = "a string, a byte string (Vec<u8>) or an integer";

/// Whether `V` deserializes from a plain string or byte string (integers
/// are told apart by the integer form first).
///
/// Asks `V`'s `Deserialize` impl for the shape it wants, as the integer
/// probe does; a sequence is offered one element, to tell `Vec<u8>` from
/// other sequences.
pub(crate) fn is_plain<V: DeserializeOwned>() -> bool {
    let mut plain = false;
    let _ = V::deserialize(Probe { plain: &mut plain });
    plain
}

/// The plain bytes of `value`.
pub(crate) fn to_plain<V: Serialize + ?Sized>(value: &V) -> Result<Vec<u8>, SerdeMessage> {
    value.serialize(Plain)
}

/// `V` from plain bytes.
pub(crate) fn from_plain<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, SerdeMessage> {
    V::deserialize(Stored(bytes))
}

fn not_plain(what: &str) -> SerdeMessage {
    SerdeMessage(format!("the plain codec stores {PLAIN_SHAPES}, not {what}"))
}

struct Probe<'a> {
    plain: &'a mut bool,
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = SerdeMessage;

    fn deserialize_any<W: Visitor<'de>>(self, _visitor: W) -> Result<W::Value, Self::Error> {
        Err(SerdeMessage("shape probe".into()))
    }

    fn deserialize_str<W: Visitor<'de>>(self, visitor: W) -> Result<W::Value, Self::Error> {
        *self.plain = true;
        self.deserialize_any(visitor)
    }

    fn deserialize_string<W: Visitor<'de>>(self, visitor: W) -> Result<W::Value, Self::Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<W: Visitor<'de>>(self, visitor: W) -> Result<W::Value, Self::Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<W: Visitor<'de>>(self, visitor: W) -> Result<W::Value, Self::Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_seq<W: Visitor<'de>>(self, visitor: W) -> Result<W::Value, Self::Error> {
        visitor.visit_seq(ProbeElements { plain: self.plain })
    }

    see_through_newtypes!();

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char option unit
        unit_struct tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// A sequence's first element, asked of its shape: `u8` makes a byte string.
struct ProbeElements<'a> {
    plain: &'a mut bool,
}

impl<'de> SeqAccess<'de> for ProbeElements<'_> {
    type Error = SerdeMessage;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        seed.deserialize(ProbeByte { plain: self.plain }).map(Some)
    }
}

struct ProbeByte<'a> {
    plain: &'a mut bool,
}

impl<'de> de::Deserializer<'de> for ProbeByte<'_> {
    type Error = SerdeMessage;

    fn deserialize_any<W: Visitor<'de>>(self, _visitor: W) -> Result<W::Value, Self::Error> {
        Err(SerdeMessage("shape probe".into()))
    }

    fn deserialize_u8<W: Visitor<'de>>(self, visitor: W) -> Result<W::Value, Self::Error> {
        *self.plain = true;
        self.deserialize_any(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
        struct enum identifier ignored_any
    }
}

/// Stored plain bytes, offered as the shape the value asks for.
struct Stored<'a>(&'a [u8]);

impl Stored<'_> {
    fn text(&self) -> Result<&str, SerdeMessage> {
        std::str::from_utf8(self.0)
            .map_err(|_| SerdeMessage("the stored bytes are not UTF-8 text".into()))
    }

    fn decimal<T: std::str::FromStr>(&self) -> Result<T, SerdeMessage> {
        let text = self.text()?;
        text.parse()
            .map_err(|_| SerdeMessage(format!("stored value `{text:.32}` is not an integer")))
    }
}

macro_rules! stored_integers {
    ($($method:ident: $visit:ident $ty:ty),*) => {$(
        fn $method<W: Visitor<'de>>(self, visitor: W) -> Result<W::Value, Self::Error> {
            visitor.$visit(self.decimal::<$ty>()?)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Stored<'_> {
    type Error = SerdeMessage;

    fn deserialize_any<W: Visitor<'de>>(self, visitor: W) -> Result<W::Value, Self::Error> {
        match std::str::from_utf8(self.0) {
            Ok(text) => visitor.visit_str(text),
            Err(_) => visitor.visit_bytes(self.0),
        }
    }

    fn deserialize_str<W: Visitor<'de>>(self, visitor: W) -> Result<W::Value, Self::Error> {
        visitor.visit_str(self.text()?)
    }

    fn deserialize_string<W: Visitor<'de>>(self, visitor: W) -> Result<W::Value, Self::Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<W: Visitor<'de>>(self, visitor: W) -> Result<W::Value, Self::Error> {
        visitor.visit_bytes(self.0)
    }

    fn deserialize_byte_buf<W: Visitor<'de>>(self, visitor: W) -> Result<W::Value, Self::Error> {
        visitor.visit_byte_buf(self.0.to_vec())
    }

    fn deserialize_seq<W: Visitor<'de>>(self, visitor: W) -> Result<W::Value, Self::Error> {
        let mut bytes = SeqDeserializer::new(self.0.iter().copied());
        let value = visitor.visit_seq(&mut bytes)?;
        bytes.end()?;
        Ok(value)
    }

    stored_integers!(
        deserialize_i8: visit_i8 i8,
        deserialize_i16: visit_i16 i16,
        deserialize_i32: visit_i32 i32,
        deserialize_i64: visit_i64 i64,
        deserialize_u8: visit_u8 u8,
        deserialize_u16: visit_u16 u16,
        deserialize_u32: visit_u32 u32,
        deserialize_u64: visit_u64 u64
    );

    see_through_newtypes!();

    serde::forward_to_deserialize_any! {
        bool i128 u128 f32 f64 char option unit unit_struct tuple tuple_struct map
        struct enum identifier ignored_any
    }
}

/// The plain form's serializer: strings, byte strings and integers only.
struct Plain;

fn refuse_compound<T>(_: Plain) -> Result<T, SerdeMessage> {
    Err(not_plain("a compound value"))
}

macro_rules! plain_integers {
    ($($method:ident: $ty:ty),*) => {$(
        fn $method(self, v: $ty) -> Result<Vec<u8>, SerdeMessage> {
            Ok(v.to_string().into_bytes())
        }
    )*};
}

macro_rules! refuse_scalars {
    ($($method:ident($($arg:ty),*) $what:literal),* $(,)?) => {$(
        fn $method(self $(, _: $arg)*) -> Result<Vec<u8>, SerdeMessage> {
            Err(not_plain($what))
        }
    )*};
}

impl ser::Serializer for Plain {
    type Ok = Vec<u8>;
    type Error = SerdeMessage;
    type SerializeSeq = Bytes;
    type SerializeTuple = Impossible<Vec<u8>, SerdeMessage>;
    type SerializeTupleStruct = Impossible<Vec<u8>, SerdeMessage>;
    type SerializeTupleVariant = Impossible<Vec<u8>, SerdeMessage>;
    type SerializeMap = Impossible<Vec<u8>, SerdeMessage>;
    type SerializeStruct = Impossible<Vec<u8>, SerdeMessage>;
    type SerializeStructVariant = Impossible<Vec<u8>, SerdeMessage>;

    plain_integers!(
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64
    );

    fn serialize_str(self, v: &str) -> Result<Vec<u8>, SerdeMessage> {
        Ok(v.as_bytes().to_vec())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<Vec<u8>, SerdeMessage> {
        Ok(v.to_vec())
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Bytes, SerdeMessage> {
        Ok(Bytes(Vec::with_capacity(len.unwrap_or(0))))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Vec<u8>, SerdeMessage> {
        value.serialize(self)
    }

    refuse_scalars!(
        serialize_bool(bool) "a bool",
        serialize_f32(f32) "a float",
        serialize_f64(f64) "a float",
        serialize_char(char) "a char",
        serialize_none() "an Option",
        serialize_unit() "()",
        serialize_unit_struct(&'static str) "a unit struct",
        serialize_unit_variant(&'static str, u32, &'static str) "an enum",
    );

    fn serialize_i128(self, _: i128) -> Result<Vec<u8>, SerdeMessage> {
        Err(not_plain("a 128-bit integer"))
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<Vec<u8>, SerdeMessage> {
        Err(not_plain("an Option"))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Vec<u8>, SerdeMessage> {
        Err(not_plain("an enum"))
    }

    compound_methods!(but_seq refuse_compound);
}

/// A sequence of bytes (`Vec<u8>` serializes as one): each element must be a `u8`.
struct Bytes(Vec<u8>);

impl ser::SerializeSeq for Bytes {
    type Ok = Vec<u8>;
    type Error = SerdeMessage;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeMessage> {
        let byte = super::integer::to_i64(value).ok();
        let byte = byte.and_then(|byte| u8::try_from(byte).ok());
        self.0
            .push(byte.ok_or_else(|| not_plain("a sequence of other than bytes"))?);
        Ok(())
    }

    fn end(self) -> Result<Vec<u8>, SerdeMessage> {
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_bytes_are_their_own_bytes() {
        assert_eq!(to_plain("30.0").unwrap(), b"30.0");
        assert_eq!(to_plain(&vec![0xFF_u8, 0, 1]).unwrap(), [0xFF, 0, 1]);
        assert_eq!(to_plain(&42_u64).unwrap(), b"42");
        assert_eq!(from_plain::<String>(b"30.0").unwrap(), "30.0");
        assert_eq!(from_plain::<Vec<u8>>(&[0xFF, 0]).unwrap(), [0xFF, 0]);
        assert_eq!(from_plain::<i64>(b"-7").unwrap(), -7);
        assert!(from_plain::<String>(&[0xFF]).is_err());
    }

    #[test]
    fn only_plain_shapes_pass_the_probe() {
        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct Token(String);
        assert_eq!(from_plain::<Token>(b"abc").unwrap(), Token("abc".into()));
        assert!(is_plain::<String>());
        assert!(is_plain::<Vec<u8>>());
        assert!(is_plain::<Token>());
        assert!(!is_plain::<Vec<String>>());
        assert!(!is_plain::<f64>());
        assert!(!is_plain::<Option<String>>());
        assert!(!is_plain::<(String, String)>());
    }

    #[test]
    fn other_shapes_are_refused_by_name() {
        let error = to_plain(&1.5_f64).unwrap_err();
        assert!(error.0.contains("not a float"), "{}", error.0);
        assert!(to_plain(&vec!["a"]).is_err());
        assert!(to_plain(&Some("a")).is_err());
    }
}
