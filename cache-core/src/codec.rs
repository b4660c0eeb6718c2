//! Serde codecs: how values become bytes.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::Bounds;
use crate::error::BoxError;
use crate::integer;

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
}

/// bincode refuses to allocate for lengths it has not seen bytes for beyond this.
#[cfg(feature = "bincode")]
const BINCODE_LIMIT: usize = 1 << 30;

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
        }
    }

    /// Serializes `value` with this codec.
    ///
    /// # Errors
    /// The serializer's error, e.g. a map with non-string keys under JSON.
    ///
    /// ```
    /// let bytes = cache_core::Codec::Json.encode(&vec![1, 2]).unwrap();
    /// assert_eq!(bytes, b"[1,2]");
    /// ```
    pub fn encode<V: Serialize + ?Sized>(self, value: &V) -> Result<Vec<u8>, BoxError> {
        match self {
            Codec::Json => Ok(serde_json::to_vec(value)?),
            #[cfg(feature = "bincode")]
            Codec::Bincode => Ok(bincode::serde::encode_to_vec(
                value,
                bincode::config::standard(),
            )?),
            #[cfg(feature = "msgpack")]
            Codec::MsgPack => Ok(rmp_serde::to_vec_named(value)?),
        }
    }

    /// Deserializes `bytes` with this codec. Allocation is bounded by the input:
    /// a hostile length prefix gives an error, not a huge allocation.
    ///
    /// # Errors
    /// The deserializer's error for bytes that do not hold a `V`.
    ///
    /// ```
    /// let v: Vec<u8> = cache_core::Codec::Json.decode(b"[1,2]").unwrap();
    /// assert_eq!(v, [1, 2]);
    /// assert!(cache_core::Codec::Json.decode::<Vec<u8>>(b"{oops").is_err());
    /// ```
    pub fn decode<V: DeserializeOwned>(self, bytes: &[u8]) -> Result<V, BoxError> {
        match self {
            Codec::Json => Ok(serde_json::from_slice(bytes)?),
            #[cfg(feature = "bincode")]
            Codec::Bincode => {
                let config = bincode::config::standard().with_limit::<BINCODE_LIMIT>();
                let (value, read) = bincode::serde::decode_from_slice(bytes, config)?;
                if read != bytes.len() {
                    return Err(format!("{} trailing bytes", bytes.len() - read).into());
                }
                Ok(value)
            }
            #[cfg(feature = "msgpack")]
            Codec::MsgPack => Ok(rmp_serde::from_slice(bytes)?),
        }
    }
}

/// How one typed cache turns values into bytes: its codec, or the decimal
/// integer form for integer-shaped values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ValueFormat {
    pub(crate) codec: Codec,
    /// The value type's range when it is integer-shaped.
    pub(crate) integer: Option<Bounds>,
}

impl ValueFormat {
    pub(crate) fn for_type<V: DeserializeOwned>(codec: Codec) -> Self {
        ValueFormat {
            codec,
            integer: integer::integer_bounds::<V>(),
        }
    }

    pub(crate) fn encode<V: Serialize + ?Sized>(self, value: &V) -> Result<Vec<u8>, BoxError> {
        if self.integer.is_some() {
            Ok(integer::to_i64(value)?.to_string().into_bytes())
        } else {
            self.codec.encode(value)
        }
    }

    pub(crate) fn decode<V: DeserializeOwned>(self, bytes: &[u8]) -> Result<V, BoxError> {
        if self.integer.is_some() {
            Ok(integer::from_decimal(bytes)?)
        } else {
            self.codec.decode(bytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Price {
        model: String,
        input: f64,
        tags: Vec<String>,
    }

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

    #[test]
    fn integer_format_is_decimal() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Seq(i64);
        let format = ValueFormat::for_type::<Seq>(Codec::Json);
        assert!(format.integer.is_some());
        assert_eq!(format.encode(&Seq(-12)).unwrap(), b"-12");
        assert_eq!(format.decode::<Seq>(b"41").unwrap(), Seq(41));
        assert!(
            ValueFormat::for_type::<Price>(Codec::Json)
                .integer
                .is_none()
        );
    }
}
