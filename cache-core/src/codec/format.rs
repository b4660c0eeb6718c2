//! How one typed view turns values into the bytes it stores and back: the
//! codec (or the decimal form of integer-shaped values), then compression.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::integer::Bounds;
use super::{Codec, integer};
use crate::error::{BoxError, Error, Result};
use crate::stats::KeyspaceCounters;
use crate::stored::compress::{self, CompressSettings};

/// [`Error::ValueTooLarge`] naming the key when `size` bytes exceed `max`.
pub(crate) fn check_size(full_key: &str, size: usize, max: usize) -> Result<()> {
    if size > max {
        return Err(Error::ValueTooLarge {
            key: full_key.to_owned(),
            size,
            max,
        });
    }
    Ok(())
}

/// The bytes to write at `full_key` for the codec's `bytes`: checked to fit
/// in `limit` (a reader inflates into no more), compressed as `compress`
/// asks (the sizes before and after counted), and checked to fit as stored.
pub(crate) fn stored_form(
    full_key: &str,
    bytes: Vec<u8>,
    (compress, limit): (Option<CompressSettings>, usize),
    counters: &KeyspaceCounters,
) -> Result<Vec<u8>> {
    check_size(full_key, bytes.len(), limit)?;
    let before = bytes.len();
    let stored = compress::pack(bytes, compress);
    if compress.is_some() {
        counters.compress_input_bytes.add(before);
        counters.compress_output_bytes.add(stored.len());
    }
    check_size(full_key, stored.len(), limit)?;
    Ok(stored)
}

/// How one typed cache turns values into bytes: its codec, or the decimal
/// integer form for integer-shaped values; large values compressed when the
/// keyspace asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ValueFormat {
    pub(crate) codec: Codec,
    /// The value type's range when it is integer-shaped.
    pub(crate) integer: Option<Bounds>,
    /// Compression of large values (never of integers: `INCR` reads them).
    pub(crate) compress: Option<CompressSettings>,
    /// `max_value_size`: the most a value may take, stored or inflated.
    pub(crate) limit: usize,
}

impl ValueFormat {
    pub(crate) fn for_type<V: DeserializeOwned>(
        codec: Codec,
        compress: Option<CompressSettings>,
        limit: usize,
    ) -> Self {
        let integer = integer::integer_bounds::<V>();
        ValueFormat {
            codec,
            compress: compress.filter(|_| integer.is_none()),
            integer,
            limit,
        }
    }

    /// [`Error::Config`] naming `prefix` and `V` when the codec is `Plain`
    /// and `V` is not a string, a byte string or an integer.
    pub(crate) fn check<V: DeserializeOwned>(self, prefix: &str) -> Result<Self> {
        if self.codec == Codec::Plain && self.integer.is_none() && !super::is_plain::<V>() {
            return Err(Error::config(format!(
                "codec plain on `{prefix}`: {} is not {}",
                std::any::type_name::<V>(),
                super::PLAIN_SHAPES
            )));
        }
        Ok(self)
    }

    /// The codec's bytes (or the decimal form).
    fn codec_bytes<V: Serialize + ?Sized>(
        self,
        value: &V,
    ) -> std::result::Result<Vec<u8>, BoxError> {
        if self.integer.is_some() {
            Ok(integer::to_i64(value)?.to_string().into_bytes())
        } else {
            self.codec.encode(value)
        }
    }

    /// Whether the codec's bytes are stored as they are, never framed:
    /// plain values are what other clients read.
    fn unframed(self) -> bool {
        self.codec == Codec::Plain
    }

    /// The bytes of `value`, uncompressed and unchecked: for a value that is
    /// answered but not stored.
    pub(crate) fn encode<V: Serialize + ?Sized>(
        self,
        value: &V,
    ) -> std::result::Result<Vec<u8>, BoxError> {
        let bytes = self.codec_bytes(value)?;
        Ok(if self.unframed() {
            bytes
        } else {
            compress::pack(bytes, None)
        })
    }

    /// The bytes to write at `full_key`: encoded, checked to read back
    /// unchanged, compressed when large, and checked to fit in
    /// `max_value_size` both as stored and inflated (a reader never inflates
    /// past it). Every value write goes through here; `counters` get the
    /// sizes before and after compression.
    pub(crate) fn encode_for<V: Serialize + ?Sized>(
        self,
        full_key: &str,
        value: &V,
        counters: &KeyspaceCounters,
    ) -> Result<Vec<u8>> {
        let bytes = self.codec_bytes(value).map_err(|source| Error::Encode {
            key: full_key.to_owned(),
            source,
        })?;
        if self.unframed() {
            check_size(full_key, bytes.len(), self.limit)?;
            return Ok(bytes);
        }
        stored_form(full_key, bytes, (self.compress, self.limit), counters)
    }

    /// The value in stored bytes (compressed or not).
    pub(crate) fn decode<V: DeserializeOwned>(
        self,
        stored: &[u8],
    ) -> std::result::Result<V, BoxError> {
        if self.unframed() && self.integer.is_none() {
            return self.codec.decode(stored);
        }
        let bytes = compress::unpack(stored, self.limit)?;
        if self.integer.is_some() {
            Ok(integer::from_decimal(&bytes)?)
        } else {
            self.codec.decode(&bytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn integer_format_is_decimal() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Seq(i64);
        let format = ValueFormat::for_type::<Seq>(Codec::Json, None, 1 << 20);
        assert!(format.integer.is_some());
        assert_eq!(format.encode(&Seq(-12)).unwrap(), b"-12");
        assert_eq!(format.decode::<Seq>(b"41").unwrap(), Seq(41));
        let text = ValueFormat::for_type::<String>(Codec::Json, None, 1 << 20);
        assert!(text.integer.is_none());
    }

    #[cfg(feature = "lz4")]
    #[test]
    fn integers_are_never_compressed() {
        let settings = CompressSettings::new(compress::Compression::Lz4, 0);
        let format = ValueFormat::for_type::<u64>(Codec::Json, Some(settings), 1 << 20);
        assert_eq!(format.compress, None);
        let text = ValueFormat::for_type::<String>(Codec::Json, Some(settings), 1 << 20);
        assert_eq!(text.compress, Some(settings));
    }
}
