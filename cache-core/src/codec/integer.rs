//! The decimal-integer value form: how integer-shaped values (`i64`, `u32`,
//! `struct Seq(i64)`, `#[serde(transparent)]` wrappers) are stored, so that a
//! value written by `INCR` and a value written by `set` are the same bytes.

use serde::de::{self, DeserializeOwned, Visitor};
use serde::ser::{self, Impossible, Serialize};

/// The range a counter must stay in; `None` means the end of the `i64` range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub(crate) min: Option<i64>,
    pub(crate) max: Option<i64>,
}

impl Bounds {
    /// True when the bounds are the whole `i64` range, which Redis enforces itself.
    pub(crate) fn is_full_range(self) -> bool {
        self.min.unwrap_or(i64::MIN) == i64::MIN && self.max.unwrap_or(i64::MAX) == i64::MAX
    }

    /// The range the current value must be in for `current + delta` to stay
    /// within the bounds, as (low, high) with `None` where only the `i64`
    /// range limits it (Redis checks that itself); `None` when no current
    /// value can do.
    pub(crate) fn current_range(self, delta: i64) -> Option<(Option<i64>, Option<i64>)> {
        let min = i128::from(self.min.unwrap_or(i64::MIN)) - i128::from(delta);
        let max = i128::from(self.max.unwrap_or(i64::MAX)) - i128::from(delta);
        let (low, high) = (min.max(i128::from(i64::MIN)), max.min(i128::from(i64::MAX)));
        if low > high {
            return None;
        }
        let low = i64::try_from(low).ok().filter(|&low| low > i64::MIN);
        let high = i64::try_from(high).ok().filter(|&high| high < i64::MAX);
        Some((low, high))
    }

    pub(crate) fn contains(self, value: i128) -> bool {
        let min = self.min.unwrap_or(i64::MIN);
        let max = self.max.unwrap_or(i64::MAX);
        (i128::from(min)..=i128::from(max)).contains(&value)
    }
}

/// Why a value could not be handled in integer form.
pub(crate) type IntegerError = super::SerdeMessage;

/// The range of `V` when it deserializes from a single integer of at most 64
/// bits, `None` for every other shape.
///
/// Asks `V`'s `Deserialize` impl which shape it wants, through a deserializer
/// that records the first request and then refuses, so no value is needed.
pub(crate) fn integer_bounds<V: DeserializeOwned>() -> Option<Bounds> {
    let mut bounds = None;
    let _ = V::deserialize(ShapeProbe {
        bounds: &mut bounds,
    });
    bounds
}

/// The value as an `i64`, or an error if it is not a single integer in range.
pub(crate) fn to_i64<V: Serialize + ?Sized>(value: &V) -> Result<i64, IntegerError> {
    value.serialize(ToI64)
}

/// Parses a decimal integer as stored by Redis into `V`.
pub(crate) fn from_decimal<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, IntegerError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| super::SerdeMessage("stored value is not a decimal integer".into()))?;
    let number: i64 = text.parse().map_err(|_| {
        super::SerdeMessage(format!(
            "stored value `{text:.32}` is not a decimal integer"
        ))
    })?;
    V::deserialize(FromI64(number))
}

struct ShapeProbe<'a> {
    bounds: &'a mut Option<Bounds>,
}

fn refuse() -> IntegerError {
    super::SerdeMessage("shape probe".into())
}

macro_rules! probe_integers {
    ($($method:ident: $ty:ty),*) => {$(
        fn $method<W: Visitor<'de>>(self, _visitor: W) -> Result<W::Value, Self::Error> {
            *self.bounds = Some(Bounds {
                min: i64::try_from(<$ty>::MIN).ok(),
                // u64's top half is beyond what a Redis integer holds.
                max: i64::try_from(<$ty>::MAX).ok(),
            });
            Err(refuse())
        }
    )*};
}

impl<'de> de::Deserializer<'de> for ShapeProbe<'_> {
    type Error = IntegerError;

    fn deserialize_any<W: Visitor<'de>>(self, _visitor: W) -> Result<W::Value, Self::Error> {
        Err(refuse())
    }

    probe_integers!(
        deserialize_i8: i8,
        deserialize_i16: i16,
        deserialize_i32: i32,
        deserialize_i64: i64,
        deserialize_u8: u8,
        deserialize_u16: u16,
        deserialize_u32: u32,
        deserialize_u64: u64
    );

    see_through_newtypes!();

    serde::forward_to_deserialize_any! {
        bool i128 u128 f32 f64 char str string bytes byte_buf option unit unit_struct
        seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

struct FromI64(i64);

impl<'de> de::Deserializer<'de> for FromI64 {
    type Error = IntegerError;

    fn deserialize_any<W: Visitor<'de>>(self, visitor: W) -> Result<W::Value, Self::Error> {
        visitor.visit_i64(self.0)
    }

    see_through_newtypes!();

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

struct ToI64;

fn refuse_compound<T>(_: ToI64) -> Result<T, IntegerError> {
    Err(not_integer())
}

fn not_integer() -> IntegerError {
    super::SerdeMessage("value is not a single integer".into())
}

fn out_of_range() -> IntegerError {
    super::SerdeMessage("integer is outside the range of a Redis integer (i64)".into())
}

/// Integer types that always fit in an `i64`.
macro_rules! widen {
    ($($method:ident: $ty:ty),*) => {$(
        fn $method(self, v: $ty) -> Result<i64, IntegerError> {
            Ok(v.into())
        }
    )*};
}

macro_rules! refuse_serialize {
    ($($method:ident($($arg:ty),*)),* $(,)?) => {$(
        fn $method(self $(, _: $arg)*) -> Result<i64, IntegerError> {
            Err(not_integer())
        }
    )*};
}

impl ser::Serializer for ToI64 {
    type Ok = i64;
    type Error = IntegerError;
    type SerializeSeq = Impossible<i64, IntegerError>;
    type SerializeTuple = Impossible<i64, IntegerError>;
    type SerializeTupleStruct = Impossible<i64, IntegerError>;
    type SerializeTupleVariant = Impossible<i64, IntegerError>;
    type SerializeMap = Impossible<i64, IntegerError>;
    type SerializeStruct = Impossible<i64, IntegerError>;
    type SerializeStructVariant = Impossible<i64, IntegerError>;

    widen!(
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32
    );
    fn serialize_u64(self, v: u64) -> Result<i64, IntegerError> {
        i64::try_from(v).map_err(|_| out_of_range())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<i64, IntegerError> {
        value.serialize(self)
    }

    refuse_serialize!(
        serialize_bool(bool),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<i64, IntegerError> {
        Err(not_integer())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<i64, IntegerError> {
        Err(not_integer())
    }
    compound_methods!(refuse_compound);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Seq(u32);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(transparent)]
    struct Wrapped {
        n: i16,
    }

    #[test]
    fn detects_integer_shapes_and_their_ranges() {
        let full = Bounds {
            min: Some(i64::MIN),
            max: Some(i64::MAX),
        };
        assert_eq!(integer_bounds::<i64>(), Some(full));
        assert_eq!(
            integer_bounds::<u8>(),
            Some(Bounds {
                min: Some(0),
                max: Some(255)
            })
        );
        assert_eq!(
            integer_bounds::<u64>(),
            Some(Bounds {
                min: Some(0),
                max: None
            })
        );
        assert_eq!(
            integer_bounds::<Seq>(),
            Some(Bounds {
                min: Some(0),
                max: Some(u32::MAX.into())
            })
        );
        assert!(integer_bounds::<Wrapped>().is_some());
        assert!(integer_bounds::<String>().is_none());
        assert!(integer_bounds::<Option<i64>>().is_none());
        assert!(integer_bounds::<(i64, i64)>().is_none());
        assert!(integer_bounds::<f64>().is_none());
    }

    #[test]
    fn converts_both_ways_with_range_checks() {
        assert_eq!(to_i64(&Seq(7)).unwrap(), 7);
        assert_eq!(from_decimal::<Wrapped>(b"-3").unwrap(), Wrapped { n: -3 });
        assert!(to_i64(&u64::MAX).is_err());
        assert!(from_decimal::<Seq>(b"-1").is_err());
        assert!(from_decimal::<u8>(b"256").is_err());
        assert!(from_decimal::<i64>(b"12a").is_err());
        assert!(to_i64("text").is_err());
    }
}
