//! Compression of large values: a short frame around the codec's bytes.
//!
//! The frame is `0xFF 'z'`, a method byte (0: the bytes as they are, 1: an
//! lz4 block, 2: a zstd frame), the length of the codec's bytes (u32,
//! big-endian), then the bytes. Codec bytes that would themselves start
//! with `0xFF 'z'` (only bincode can write them) are stored in a method-0
//! frame, so those two bytes always mean a frame, whatever the keyspace's
//! settings: compression can be turned on or off while both kinds are stored.
//! The frame sits inside the fail-safe and tag headers, around the codec's
//! bytes only.

use std::borrow::Cow;

use crate::error::BoxError;

/// What every frame starts with: a byte no JSON text begins with, and no
/// MessagePack value longer than one byte.
pub(crate) const MAGIC: [u8; 2] = [0xFF, b'z'];
/// The frame's header: magic, method, length.
const HEADER: usize = 4 + MAGIC.len() + 1;

/// Method bytes.
const STORED: u8 = 0;
const LZ4: u8 = 1;
const ZSTD: u8 = 2;

/// The zstd level: zstd's own default, a good balance for values read far
/// more often than written.
#[cfg(feature = "zstd")]
const ZSTD_LEVEL: i32 = 3;

/// The smallest value compressed when a keyspace does not say
/// ([`KeyspaceBuilder::compress_min`](crate::KeyspaceBuilder::compress_min)):
/// below about a kilobyte, compression saves little and costs a call.
pub const DEFAULT_COMPRESS_MIN: usize = 1024;

/// An algorithm that compresses a keyspace's large values; each is behind
/// the cargo feature of its name.
///
/// | | crate | trade-off |
/// |---|---|---|
/// | `Lz4` (feature `lz4`) | lz4_flex, pure Rust | the faster both ways; the bench's 16 KiB JSON document is stored in 29% of its bytes |
/// | `Zstd` (feature `zstd`) | zstd, the reference C library at level 3 | slower, and smaller than lz4 |
///
/// ```
/// # #[cfg(feature = "lz4")] {
/// assert_eq!(cache_core::Compression::Lz4.name(), "lz4");
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// LZ4 block compression through lz4_flex: the fastest.
    #[cfg(feature = "lz4")]
    Lz4,
    /// Zstandard through the zstd crate: smaller, slower.
    #[cfg(feature = "zstd")]
    Zstd,
}

impl Compression {
    /// The name used in the derive's `compress = "..."` attribute.
    ///
    /// ```
    /// # #[cfg(feature = "zstd")] {
    /// assert_eq!(cache_core::Compression::Zstd.name(), "zstd");
    /// # }
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "lz4")]
            Compression::Lz4 => "lz4",
            #[cfg(feature = "zstd")]
            Compression::Zstd => "zstd",
        }
    }

    fn method(self) -> u8 {
        match self {
            #[cfg(feature = "lz4")]
            Compression::Lz4 => LZ4,
            #[cfg(feature = "zstd")]
            Compression::Zstd => ZSTD,
        }
    }

    /// `bytes` compressed, or `None` when the compressor failed.
    #[cfg_attr(not(any(feature = "lz4", feature = "zstd")), allow(unused_variables))]
    fn compress(self, bytes: &[u8]) -> Option<Vec<u8>> {
        match self {
            #[cfg(feature = "lz4")]
            Compression::Lz4 => Some(lz4_flex::block::compress(bytes)),
            #[cfg(feature = "zstd")]
            Compression::Zstd => zstd_codec::compress(bytes),
        }
    }
}

/// How a keyspace compresses: the algorithm, and the size from which a
/// value is compressed. What [`Cacheable::COMPRESS`](crate::Cacheable::COMPRESS)
/// holds.
///
/// ```
/// # #[cfg(feature = "lz4")] {
/// use cache_core::{CompressSettings, Compression};
/// const PAGES: CompressSettings = CompressSettings::new(Compression::Lz4, 4096);
/// assert_eq!(PAGES.min_size, 4096);
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CompressSettings {
    /// The algorithm.
    pub algorithm: Compression,
    /// Values whose encoding is shorter are stored as they are.
    pub min_size: usize,
}

impl CompressSettings {
    /// `algorithm` for values of `min_size` bytes or more.
    ///
    /// ```
    /// # #[cfg(feature = "lz4")] {
    /// let settings = cache_core::CompressSettings::new(cache_core::Compression::Lz4, 1024);
    /// # }
    /// ```
    pub const fn new(algorithm: Compression, min_size: usize) -> Self {
        CompressSettings {
            algorithm,
            min_size,
        }
    }
}

/// The bytes to store for the codec's `bytes`: compressed in a frame when
/// `settings` asks for it and that is smaller; else as they are (in a
/// method-0 frame when they start like one).
pub(crate) fn pack(bytes: Vec<u8>, settings: Option<CompressSettings>) -> Vec<u8> {
    if let Some(settings) = settings.filter(|settings| bytes.len() >= settings.min_size)
        && let Ok(len) = u32::try_from(bytes.len())
        && let Some(compressed) = settings.algorithm.compress(&bytes)
        && compressed.len() + HEADER < bytes.len()
    {
        return frame(settings.algorithm.method(), len, &compressed);
    }
    if bytes.starts_with(&MAGIC) {
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        return frame(STORED, len, &bytes);
    }
    bytes
}

fn frame(method: u8, len: u32, body: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(HEADER + body.len());
    framed.extend_from_slice(&MAGIC);
    framed.push(method);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(body);
    framed
}

/// The codec's bytes in `stored`: decompressed into at most `limit` bytes
/// when it is a compressed frame.
///
/// # Errors
/// A frame that is cut short, of an unknown method, of a method whose
/// feature is off, that says it inflates past `limit`, or whose data does
/// not inflate to exactly the length it says.
pub(crate) fn unpack(stored: &[u8], limit: usize) -> Result<Cow<'_, [u8]>, BoxError> {
    let Some(rest) = stored.strip_prefix(&MAGIC[..]) else {
        return Ok(Cow::Borrowed(stored));
    };
    let Some(([method, len @ ..], body)) = rest.split_first_chunk::<5>() else {
        return Err("a compressed value's frame is cut short".into());
    };
    if *method == STORED {
        return Ok(Cow::Borrowed(body));
    }
    let len = usize::try_from(u32::from_be_bytes(*len)).unwrap_or(usize::MAX);
    if len > limit {
        return Err(format!(
            "a compressed value says it inflates to {len} bytes, over max_value_size ({limit})"
        )
        .into());
    }
    let inflated = decompress(*method, body, len)?;
    if inflated.len() != len {
        return Err(format!(
            "a compressed value inflates to {} bytes, not the {len} its frame says",
            inflated.len()
        )
        .into());
    }
    Ok(Cow::Owned(inflated))
}

/// `body` inflated by `method` into a buffer of `len` bytes, never more.
#[cfg_attr(not(any(feature = "lz4", feature = "zstd")), allow(unused_variables))]
fn decompress(method: u8, body: &[u8], len: usize) -> Result<Vec<u8>, BoxError> {
    match method {
        #[cfg(feature = "lz4")]
        LZ4 => {
            let mut out = vec![0; len];
            let written = lz4_flex::block::decompress_into(body, &mut out)
                .map_err(|error| format!("lz4: {error}"))?;
            out.truncate(written);
            Ok(out)
        }
        #[cfg(feature = "zstd")]
        ZSTD => zstd_codec::decompress(body, len),
        #[cfg(not(feature = "lz4"))]
        LZ4 => Err(needs_feature("lz4")),
        #[cfg(not(feature = "zstd"))]
        ZSTD => Err(needs_feature("zstd")),
        other => Err(format!("unknown compression method {other}").into()),
    }
}

#[cfg(not(all(feature = "lz4", feature = "zstd")))]
fn needs_feature(name: &str) -> BoxError {
    format!("a value compressed with {name}: reading it needs the `{name}` feature of cache-core")
        .into()
}

/// The same value in a form that reads without decompressing (what a
/// local tier keeps): a compressed frame inflated (kept in a method-0 frame
/// if the result starts like one); anything else, and a frame that does not
/// inflate, as it is (its reader then reports the error).
pub(crate) fn inflate(stored: Vec<u8>, limit: usize) -> Vec<u8> {
    if !stored.starts_with(&MAGIC) || stored.get(MAGIC.len()) == Some(&STORED) {
        return stored;
    }
    match unpack(&stored, limit) {
        Ok(inflated) => pack(inflated.into_owned(), None),
        Err(_) => stored,
    }
}

/// zstd with one compression and one decompression context per thread:
/// making a context costs more than compressing a small value.
#[cfg(feature = "zstd")]
mod zstd_codec {
    use std::cell::RefCell;

    use zstd::bulk::{Compressor, Decompressor};

    use super::ZSTD_LEVEL;
    use crate::error::BoxError;

    thread_local! {
        static COMPRESSOR: RefCell<Option<Compressor<'static>>> = const { RefCell::new(None) };
        static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
    }

    pub(super) fn compress(bytes: &[u8]) -> Option<Vec<u8>> {
        COMPRESSOR.with(|cell| {
            let mut cell = cell.try_borrow_mut().ok()?;
            if cell.is_none() {
                *cell = Some(Compressor::new(ZSTD_LEVEL).ok()?);
            }
            cell.as_mut()?.compress(bytes).ok()
        })
    }

    /// Inflates `body` into a buffer of `len` bytes, never more.
    pub(super) fn decompress(body: &[u8], len: usize) -> Result<Vec<u8>, BoxError> {
        DECOMPRESSOR.with(|cell| {
            let mut cell = cell
                .try_borrow_mut()
                .map_err(|_| "zstd: decompressor in use")?;
            if cell.is_none() {
                *cell = Some(Decompressor::new()?);
            }
            let decompressor = cell.as_mut().ok_or("zstd: no decompressor")?;
            let mut out = Vec::with_capacity(len);
            decompressor
                .decompress_to_buffer(body, &mut out)
                .map_err(|error| format!("zstd: {error}"))?;
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 16 << 20;

    #[cfg(any(feature = "lz4", feature = "zstd"))]
    fn document() -> Vec<u8> {
        let items: Vec<String> = (0..200)
            .map(|i| format!("{{\"sku\":\"item-{i}\",\"price\":{i}.5,\"tags\":[\"a\",\"b\"]}}"))
            .collect();
        format!("[{}]", items.join(",")).into_bytes()
    }

    #[cfg(any(feature = "lz4", feature = "zstd"))]
    fn algorithms() -> Vec<Compression> {
        vec![
            #[cfg(feature = "lz4")]
            Compression::Lz4,
            #[cfg(feature = "zstd")]
            Compression::Zstd,
        ]
    }

    #[cfg(any(feature = "lz4", feature = "zstd"))]
    #[test]
    fn large_values_compress_and_unpack_to_themselves() {
        let plain = document();
        for algorithm in algorithms() {
            let packed = pack(plain.clone(), Some(CompressSettings::new(algorithm, 1024)));
            assert!(packed.starts_with(&MAGIC), "{algorithm:?}");
            assert!(
                packed.len() * 3 < plain.len(),
                "{algorithm:?}: {}",
                packed.len()
            );
            assert_eq!(unpack(&packed, LIMIT).unwrap(), plain.as_slice());
            let inflated = inflate(packed, LIMIT);
            assert_eq!(inflated, plain, "{algorithm:?}");
        }
    }

    #[cfg(all(feature = "lz4", feature = "zstd"))]
    #[test]
    fn zstd_stores_less_than_lz4() {
        let with = |algorithm| pack(document(), Some(CompressSettings::new(algorithm, 0))).len();
        assert!(with(Compression::Zstd) < with(Compression::Lz4));
    }

    #[cfg(any(feature = "lz4", feature = "zstd"))]
    #[test]
    fn small_values_and_plain_bytes_stay_as_they_are() {
        for algorithm in algorithms() {
            let settings = Some(CompressSettings::new(algorithm, 1024));
            assert_eq!(pack(b"{\"a\":1}".to_vec(), settings), b"{\"a\":1}");
        }
        assert_eq!(pack(document(), None), document());
        assert_eq!(unpack(b"[1,2]", LIMIT).unwrap(), b"[1,2]".as_slice());
    }

    #[test]
    fn bytes_that_start_like_a_frame_are_framed_as_they_are() {
        let tricky = vec![0xFF, b'z', LZ4, 0, 0, 0, 9, 1, 2];
        let packed = pack(tricky.clone(), None);
        assert_eq!(&packed[..3], &[0xFF, b'z', STORED]);
        assert_eq!(unpack(&packed, LIMIT).unwrap(), tricky.as_slice());
        assert_eq!(inflate(packed.clone(), LIMIT), packed);
    }

    #[cfg(any(feature = "lz4", feature = "zstd"))]
    #[test]
    fn broken_frames_are_refused() {
        assert!(unpack(&[0xFF, b'z', LZ4, 0], LIMIT).is_err());
        assert!(unpack(&[0xFF, b'z', 9, 0, 0, 0, 1, 0], LIMIT).is_err());
        for algorithm in algorithms() {
            let packed = pack(document(), Some(CompressSettings::new(algorithm, 0)));
            let cut = &packed[..packed.len() - 5];
            let error = unpack(cut, LIMIT).unwrap_err();
            assert!(!error.to_string().is_empty(), "{algorithm:?}");
            assert_eq!(inflate(cut.to_vec(), LIMIT), cut, "{algorithm:?}");
            // A frame that says it is shorter than it inflates.
            let mut short = packed.clone();
            short[3..HEADER].copy_from_slice(&100_u32.to_be_bytes());
            assert!(unpack(&short, LIMIT).is_err(), "{algorithm:?}");
        }
    }

    #[cfg(any(feature = "lz4", feature = "zstd"))]
    #[test]
    fn a_frame_over_the_limit_is_refused_before_inflating() {
        for algorithm in algorithms() {
            let packed = pack(
                vec![b'a'; 1 << 20],
                Some(CompressSettings::new(algorithm, 0)),
            );
            let error = unpack(&packed, 64 << 10).unwrap_err().to_string();
            assert!(error.contains("max_value_size"), "{error}");
        }
    }
}
