//! Serde codecs: how values become bytes.

/// The seven compound `serialize_*` methods of a serde serializer, each
/// answering `$answer(self)` (or the six but `serialize_seq`): the codec's
/// walkers differ only in that.
macro_rules! compound_methods {
    ($answer:path) => {
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Self::Error> {
            $answer(self)
        }
        compound_methods!(but_seq $answer);
    };
    // The six others, for a serializer that takes sequences.
    (but_seq $answer:path) => {
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Self::Error> {
            $answer(self)
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, Self::Error> {
            $answer(self)
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, Self::Error> {
            $answer(self)
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Self::Error> {
            $answer(self)
        }
        fn serialize_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStruct, Self::Error> {
            $answer(self)
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, Self::Error> {
            $answer(self)
        }
    };
}

/// A deserializer's `deserialize_newtype_struct` that sees through the newtype.
macro_rules! see_through_newtypes {
    () => {
        fn deserialize_newtype_struct<W: Visitor<'de>>(
            self,
            _name: &'static str,
            visitor: W,
        ) -> Result<W::Value, Self::Error> {
            visitor.visit_newtype_struct(self)
        }
    };
}

mod format;
mod integer;
mod lossless;
mod plain;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::BoxError;

pub use crate::stored::compress::{CompressSettings, Compression, DEFAULT_COMPRESS_MIN};
pub(crate) use format::{ValueFormat, check_size, stored_form};
pub(crate) use integer::Bounds;
pub use plain::PlainValue;
pub(crate) use plain::{PLAIN_SHAPES, check_plain, is_plain};

/// The serialization format of a typed cache's values.
///
/// JSON is always available and is the default. `Bincode` (bincode 2.x, behind the
/// `bincode` feature) and `MsgPack` (rmp-serde, behind the `msgpack` feature) are
/// smaller and faster. bincode is no longer maintained upstream, so prefer
/// MessagePack for new deployments.
///
/// Values whose serde form is a plain integer (`i64`, `u32`, a newtype such as
/// `struct Seq(i64)`, ...) are always stored as a decimal Redis integer, whatever
/// the codec, so that `INCR` and typed reads agree.
///
/// `Plain` stores a value as the bytes another client would: a string as its
/// UTF-8 bytes, a byte string (`Vec<u8>`) as itself, an
/// integer as decimal text. A keyspace of another value type is refused
/// when it is built.
///
/// ```
/// use cache_core::Codec;
///
/// assert_eq!(Codec::default(), Codec::Json);
/// assert_eq!(Codec::Json.name(), "json");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// `serde_json`: readable in `redis-cli`, the default.
    #[default]
    Json,
    /// bincode 2.x with its standard configuration.
    #[cfg(feature = "bincode")]
    Bincode,
    /// MessagePack through rmp-serde, with struct fields as names.
    #[cfg(feature = "msgpack")]
    MsgPack,
    /// The bytes themselves: strings, byte strings and integers only, stored
    /// with no header, so redis-cli and other clients share the keys.
    Plain,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Decodes bincode with a memory limit that grows with the input.
///
/// bincode counts what a value takes in memory (strings by their announced
/// length, numbers by their size) and allocates a string's buffer before
/// reading it. Its limit is a constant, so one of a few limits is picked: the
/// smallest step of 4x that is at least 16 times the input (what a valid value
/// can need: a `u128` takes one byte encoded and 16 in memory) and at least
/// 64 KiB. So a length prefix can make it allocate at most 64 times the input.
#[cfg(feature = "bincode")]
fn bincode_decode<V: DeserializeOwned>(bytes: &[u8]) -> std::result::Result<V, BoxError> {
    use bincode::config::standard;
    macro_rules! decode_within {
        ($($bits:literal),*) => {{
            let needed = bytes.len().saturating_mul(16);
            $(
                if needed <= 1 << $bits {
                    let config = standard().with_limit::<{ 1 << $bits }>();
                    bincode::serde::decode_from_slice(bytes, config)
                } else
            )* {
                let config = standard().with_limit::<{ usize::MAX }>();
                bincode::serde::decode_from_slice(bytes, config)
            }
        }};
    }
    // Redis strings stop at 512 MiB, so the last step is never passed.
    #[cfg(target_pointer_width = "64")]
    let decoded = decode_within!(16, 18, 20, 22, 24, 26, 28, 30, 32, 34);
    #[cfg(not(target_pointer_width = "64"))]
    let decoded = decode_within!(16, 18, 20, 22, 24, 26, 28);
    let (value, read) = decoded?;
    if read != bytes.len() {
        return Err(format!("{} trailing bytes", bytes.len() - read).into());
    }
    Ok(value)
}

impl Codec {
    /// The name used in the derive's `codec = "..."` attribute.
    ///
    /// ```
    /// assert_eq!(cache_core::Codec::default().name(), "json");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Codec::Json => "json",
            #[cfg(feature = "bincode")]
            Codec::Bincode => "bincode",
            #[cfg(feature = "msgpack")]
            Codec::MsgPack => "msgpack",
            Codec::Plain => "plain",
        }
    }

    /// Serializes `value` with this codec. Every value it accepts decodes back
    /// exactly as it was (floats bit for bit); a value the format would change
    /// is refused instead of stored.
    ///
    /// # Errors
    /// The serializer's error, e.g. a map with non-string keys under JSON, and
    /// values the format cannot give back: `NaN` and infinities under JSON (JSON
    /// writes them as `null`), and `Some(None)`, `Some(())` or `Some` of a unit
    /// struct under JSON and MessagePack (both write them like `None`); under
    /// `Plain`, anything but a string, a byte string or an integer.
    ///
    /// ```
    /// use cache_core::Codec;
    /// assert_eq!(Codec::Json.encode(&vec![1, 2]).unwrap(), b"[1,2]");
    /// assert_eq!(Codec::Json.encode(&0.1_f64).unwrap(), b"0.1");
    /// assert!(Codec::Json.encode(&f64::NAN).is_err());
    /// assert!(Codec::Json.encode(&Some(None::<u8>)).is_err());
    /// assert_eq!(Codec::Plain.encode("30.0").unwrap(), b"30.0");
    /// assert!(Codec::Plain.encode(&vec!["a"]).is_err());
    /// ```
    pub fn encode<V: Serialize + ?Sized>(
        self,
        value: &V,
    ) -> std::result::Result<Vec<u8>, BoxError> {
        match self {
            Codec::Json => {
                let bytes = serde_json::to_vec(value)?;
                // Only a value written with a `null` can have lost something.
                lossless::check_if(contains(&bytes, b"null"), value, lossless::Format::Json)?;
                Ok(bytes)
            }
            #[cfg(feature = "bincode")]
            Codec::Bincode => Ok(bincode::serde::encode_to_vec(
                value,
                bincode::config::standard(),
            )?),
            #[cfg(feature = "msgpack")]
            Codec::MsgPack => {
                let bytes = rmp_serde::to_vec_named(value)?;
                // 0xc0 is MessagePack's nil.
                lossless::check_if(bytes.contains(&0xc0), value, lossless::Format::MsgPack)?;
                Ok(bytes)
            }
            Codec::Plain => Ok(plain::to_plain(value)?),
        }
    }

    /// Deserializes `bytes` with this codec. Allocation is bounded by the input:
    /// a hostile length prefix gives an error, not a huge allocation. JSON and
    /// MessagePack allocate a string only for the bytes that are there;
    /// bincode, whose decoder allocates before it reads, is limited to 64 KiB or
    /// 64 times the input's length, whichever is larger (a valid bincode value
    /// needs at most 16 times its encoded size in memory).
    ///
    /// # Errors
    /// The deserializer's error for bytes that do not hold a `V`.
    ///
    /// ```
    /// let v: Vec<u8> = cache_core::Codec::Json.decode(b"[1,2]").unwrap();
    /// assert_eq!(v, [1, 2]);
    /// assert!(cache_core::Codec::Json.decode::<Vec<u8>>(b"{oops").is_err());
    /// ```
    pub fn decode<V: DeserializeOwned>(self, bytes: &[u8]) -> std::result::Result<V, BoxError> {
        match self {
            Codec::Json => Ok(serde_json::from_slice(bytes)?),
            #[cfg(feature = "bincode")]
            Codec::Bincode => bincode_decode(bytes),
            #[cfg(feature = "msgpack")]
            Codec::MsgPack => Ok(rmp_serde::from_slice(bytes)?),
            Codec::Plain => Ok(plain::from_plain(bytes)?),
        }
    }
}

/// A message-only error for the codec's own serde walkers (the integer form,
/// the lossless check).
#[derive(Debug)]
pub(crate) struct SerdeMessage(pub(crate) String);

impl std::fmt::Display for SerdeMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SerdeMessage {}

impl serde::ser::Error for SerdeMessage {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        SerdeMessage(msg.to_string())
    }
}

impl serde::de::Error for SerdeMessage {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        SerdeMessage(msg.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Price {
        model: String,
        input: f64,
        tags: Vec<String>,
    }

    /// The self-describing codecs, which take any serde value.
    fn all_codecs() -> Vec<Codec> {
        vec![
            Codec::Json,
            #[cfg(feature = "bincode")]
            Codec::Bincode,
            #[cfg(feature = "msgpack")]
            Codec::MsgPack,
        ]
    }

    #[test]
    fn round_trips_in_every_codec() {
        let price = Price {
            model: "gpt-4".into(),
            input: 0.03,
            tags: vec!["a".into()],
        };
        for codec in all_codecs() {
            let bytes = codec.encode(&price).unwrap();
            assert_eq!(codec.decode::<Price>(&bytes).unwrap(), price, "{codec:?}");
        }
    }

    #[test]
    fn hostile_length_prefixes_fail_without_allocating() {
        // Each claims a 4-billion-element sequence backed by a few bytes.
        let msgpack_array = [0xdd, 0xff, 0xff, 0xff, 0xff, 0x01];
        let bincode_vec = [0xfc, 0xff, 0xff, 0xff, 0xff, 0x01];
        for codec in all_codecs() {
            for bytes in [&msgpack_array[..], &bincode_vec[..]] {
                assert!(codec.decode::<Vec<u64>>(bytes).is_err(), "{codec:?}");
                assert!(codec.decode::<String>(bytes).is_err(), "{codec:?}");
            }
        }
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Unit,
        Newtype(f64),
        Tuple(u8, String),
        Struct { x: Option<i16> },
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Sample {
        double: f64,
        single: f32,
        signed: i64,
        unsigned: u64,
        wide: i128,
        text: String,
        letter: char,
        flag: bool,
        bytes: Vec<u8>,
        nested_option: Option<Option<u8>>,
        unit_option: Option<()>,
        pairs: Vec<(i32, Option<f64>)>,
        map: std::collections::BTreeMap<String, f64>,
        shapes: Vec<Shape>,
    }

    fn floats() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            Just(123_456_789.123_456_79),
            Just(-0.0),
            Just(f64::MIN_POSITIVE),
            Just(f64::MAX),
            Just(f64::MIN),
            Just(5e-324),
            Just(f64::NAN),
            Just(f64::INFINITY),
        ]
    }

    fn shapes() -> impl Strategy<Value = Shape> {
        prop_oneof![
            Just(Shape::Unit),
            floats().prop_map(Shape::Newtype),
            (any::<u8>(), any::<String>()).prop_map(|(a, b)| Shape::Tuple(a, b)),
            any::<Option<i16>>().prop_map(|x| Shape::Struct { x }),
        ]
    }

    fn samples() -> impl Strategy<Value = Sample> {
        (
            (
                floats(),
                any::<f32>(),
                any::<i64>(),
                any::<u64>(),
                any::<i128>(),
            ),
            (
                any::<String>(),
                any::<char>(),
                any::<bool>(),
                any::<Vec<u8>>(),
            ),
            (any::<Option<Option<u8>>>(), any::<Option<()>>()),
            proptest::collection::vec((any::<i32>(), proptest::option::of(floats())), 0..4),
            proptest::collection::btree_map(any::<String>(), floats(), 0..4),
            proptest::collection::vec(shapes(), 0..4),
        )
            .prop_map(|(numbers, scalars, options, pairs, map, shapes)| Sample {
                double: numbers.0,
                single: numbers.1,
                signed: numbers.2,
                unsigned: numbers.3,
                wide: numbers.4,
                text: scalars.0,
                letter: scalars.1,
                flag: scalars.2,
                bytes: scalars.3,
                nested_option: options.0,
                unit_option: options.1,
                pairs,
                map,
                shapes,
            })
    }

    /// What no self-describing codec can give back: `Some` of a null-like
    /// value; and, under JSON, floats that are not finite.
    fn lossy_for(codec: Codec, sample: &Sample) -> bool {
        let null_like_some =
            matches!(sample.nested_option, Some(None)) || sample.unit_option.is_some();
        let mut floats = vec![sample.double, f64::from(sample.single)];
        floats.extend(sample.pairs.iter().filter_map(|(_, f)| *f));
        floats.extend(sample.map.values().copied());
        floats.extend(sample.shapes.iter().filter_map(|shape| match shape {
            Shape::Newtype(f) => Some(*f),
            _ => None,
        }));
        match codec {
            Codec::Json => null_like_some || floats.iter().any(|f| !f.is_finite()),
            #[cfg(feature = "msgpack")]
            Codec::MsgPack => null_like_some,
            #[cfg(feature = "bincode")]
            Codec::Bincode => false,
            // Refuses every compound value.
            Codec::Plain => true,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every codec gives back exactly what it accepted (floats bit for bit:
        /// `Debug` tells -0.0 from 0.0 and shows the shortest exact digits), and
        /// refuses only what it could not give back.
        #[test]
        fn every_accepted_value_reads_back_exactly(sample in samples()) {
            for codec in all_codecs() {
                match codec.encode(&sample) {
                    Ok(bytes) => {
                        let back: Sample = codec.decode(&bytes).unwrap();
                        prop_assert_eq!(format!("{back:?}"), format!("{sample:?}"), "{:?}", codec);
                        prop_assert!(!lossy_for(codec, &sample), "{:?} accepted a lossy value", codec);
                    }
                    Err(error) => prop_assert!(
                        lossy_for(codec, &sample),
                        "{:?} refused a value it can store: {}", codec, error
                    ),
                }
            }
        }

        #[test]
        fn every_float_reads_back_bit_for_bit(f in floats(), g in any::<f32>()) {
            for codec in all_codecs() {
                if let Ok(bytes) = codec.encode(&f) {
                    let back: f64 = codec.decode(&bytes).unwrap();
                    prop_assert!(back.to_bits() == f.to_bits() || (f.is_nan() && back.is_nan()));
                }
                if let Ok(bytes) = codec.encode(&g) {
                    let back: f32 = codec.decode(&bytes).unwrap();
                    prop_assert!(back.to_bits() == g.to_bits() || (g.is_nan() && back.is_nan()));
                }
            }
        }
    }

    #[test]
    fn json_refuses_non_finite_floats_and_null_like_somes() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let error = Codec::Json.encode(&vec![1.0, bad]).unwrap_err();
            assert!(error.to_string().contains("JSON"), "{error}");
        }
        assert!(Codec::Json.encode(&Some(None::<u8>)).is_err());
        assert!(Codec::Json.encode(&Some(())).is_err());
        assert!(Codec::Json.encode(&vec![None::<u8>, Some(1)]).is_ok());
        assert!(Codec::Json.encode(&"null").is_ok());
        assert_eq!(
            Codec::Json
                .decode::<f64>(&Codec::Json.encode(&123_456_789.123_456_79).unwrap())
                .unwrap(),
            123_456_789.123_456_79
        );
    }

    #[cfg(feature = "bincode")]
    #[test]
    fn bincode_length_prefixes_cannot_reach_beyond_the_input() {
        // A string announcing 256 MiB (varint 0xfc + u32), backed by one byte.
        let blob = [0xfc, 0x00, 0x00, 0x00, 0x10, b'a'];
        let error = Codec::Bincode.decode::<String>(&blob).unwrap_err();
        assert!(
            error.to_string().to_lowercase().contains("limit"),
            "{error}"
        );
        // The same inside a struct and a vector of strings.
        assert!(
            Codec::Bincode
                .decode::<(u8, String)>(&[[1].as_slice(), &blob].concat())
                .is_err()
        );
        assert!(
            Codec::Bincode
                .decode::<Vec<String>>(&[[1].as_slice(), &blob].concat())
                .is_err()
        );
        // Valid values near the ratio a u128 needs still decode.
        let wide = vec![0_u128; 10_000];
        let bytes = Codec::Bincode.encode(&wide).unwrap();
        assert_eq!(Codec::Bincode.decode::<Vec<u128>>(&bytes).unwrap(), wide);
        let text = "x".repeat(3 << 20);
        let bytes = Codec::Bincode.encode(&text).unwrap();
        assert_eq!(Codec::Bincode.decode::<String>(&bytes).unwrap(), text);
    }
}
