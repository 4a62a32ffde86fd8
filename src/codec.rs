//! Compression and decompression of whole arrays into self-describing streams.

use crate::dtype::ElementType;
use crate::entropy::{decode_bytes, encode_bytes, Coded};
use crate::error::{Error, Result};
use crate::format::{self, block_count, checked_len, header_len, BlockKind, StreamInfo};
use crate::params::{Config, Mode};

/// Floating-point element types residuum compresses.
pub trait Float: bytemuck::Pod + private::Sealed {
    const TYPE: ElementType;
}
impl Float for f32 {
    const TYPE: ElementType = ElementType::F32;
}
impl Float for f64 {
    const TYPE: ElementType = ElementType::F64;
}
mod private {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A configured compressor. Decoding needs no configuration: see [`decode`].
#[derive(Debug, Clone, Default)]
pub struct Codec {
    config: Config,
}

impl Codec {
    pub fn new(config: Config) -> Self {
        Codec { config }
    }

    /// Builds a codec from `key=value` parameters (the ADIOS2 operator's), validating them.
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        Ok(Codec::new(Config::from_pairs(pairs)?))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The exact worst-case stream length for an array of `dims`: every block stored raw.
    /// Saturates for shapes too large to address (which compression then refuses).
    pub fn max_compressed_len(&self, dtype: ElementType, dims: &[usize]) -> usize {
        let block = self.block_shape(dims);
        let raw = checked_len(dims, dtype).unwrap_or(usize::MAX);
        header_len(dims.len(), block_count(dims, &block)).saturating_add(raw)
    }

    fn block_shape(&self, dims: &[usize]) -> Vec<usize> {
        match self.config.mode {
            // One block: zstd sees the whole array.
            Mode::Lossless => dims.iter().map(|&d| d.max(1)).collect(),
        }
    }

    /// Compresses the little-endian element bytes `data` of an array of `dims` into `out`, which
    /// must hold [`Codec::max_compressed_len`] bytes. Returns the stream length.
    pub fn compress_bytes(
        &self,
        dtype: ElementType,
        dims: &[usize],
        data: &[u8],
        out: &mut [u8],
    ) -> Result<usize> {
        check_shape(dims, dtype, data.len())?;
        let block = self.block_shape(dims);
        let coded = match self.config.mode {
            Mode::Lossless => encode_bytes(data, self.config.level)?,
        };
        let payload: (BlockKind, &[u8]) = match &coded {
            Coded::Raw => (BlockKind::Raw, data),
            Coded::Zstd(z) => (BlockKind::Zstd, z),
        };
        let blocks: &[(BlockKind, &[u8])] = if block_count(dims, &block) == 0 {
            &[]
        } else {
            std::slice::from_ref(&payload)
        };
        let info = StreamInfo {
            dtype,
            mode: self.config.mode,
            dims: dims.to_vec(),
            block,
            target: 0.0,
        };
        format::write_stream(&info, blocks, out)
    }

    /// Compresses a slice of floats of shape `dims` into a new stream.
    pub fn compress<T: Float>(&self, dims: &[usize], data: &[T]) -> Result<Vec<u8>> {
        check_shape(dims, T::TYPE, std::mem::size_of_val(data))?;
        let mut out = vec![0u8; self.max_compressed_len(T::TYPE, dims)];
        let n = self.compress_bytes(T::TYPE, dims, bytemuck::cast_slice(data), &mut out)?;
        out.truncate(n);
        Ok(out)
    }
}

fn check_shape(dims: &[usize], dtype: ElementType, data_len: usize) -> Result<()> {
    if dims.len() > format::MAX_DIMS {
        return Err(Error::BadShape(format!(
            "{} dimensions (at most {})",
            dims.len(),
            format::MAX_DIMS
        )));
    }
    let expected =
        checked_len(dims, dtype).ok_or_else(|| Error::BadShape(format!("{dims:?} overflows")))?;
    if expected != data_len {
        return Err(Error::InputSize {
            expected,
            got: data_len,
        });
    }
    Ok(())
}

/// Reads a stream's header: type, shape, mode, target.
pub fn stream_info(stream: &[u8]) -> Result<StreamInfo> {
    Ok(format::parse(stream)?.info)
}

/// Decodes `stream` into `out` (little-endian element bytes), which must hold at least
/// [`StreamInfo::decoded_len`] bytes; exactly that many are written. Returns the count.
pub fn decode_into(stream: &[u8], out: &mut [u8]) -> Result<usize> {
    let parsed = format::parse(stream)?;
    let len = parsed.info.decoded_len();
    if out.len() < len {
        return Err(Error::OutputTooSmall {
            needed: len,
            got: out.len(),
        });
    }
    match parsed.info.mode {
        Mode::Lossless => {
            if parsed.entries.len() == 1 {
                decode_bytes(parsed.entries[0].kind, parsed.payload(0)?, &mut out[..len])?;
            } else if !parsed.entries.is_empty() || len != 0 {
                return Err(Error::Corrupt("lossless stream must hold one block".into()));
            }
        }
    }
    Ok(len)
}

/// Decodes a stream into its header and element bytes.
pub fn decode(stream: &[u8]) -> Result<(StreamInfo, Vec<u8>)> {
    let info = stream_info(stream)?;
    let mut out = vec![0u8; info.decoded_len()];
    decode_into(stream, &mut out)?;
    Ok((info, out))
}

/// Decodes a stream of `T` elements.
pub fn decode_as<T: Float>(stream: &[u8]) -> Result<(Vec<usize>, Vec<T>)> {
    let info = stream_info(stream)?;
    if info.dtype != T::TYPE {
        return Err(Error::UnsupportedType(format!(
            "stream holds {}, {} requested",
            info.dtype,
            T::TYPE
        )));
    }
    let mut out = vec![T::zeroed(); info.element_count()];
    decode_into(stream, bytemuck::cast_slice_mut(&mut out))?;
    Ok((info.dims, out))
}
