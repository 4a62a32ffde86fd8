//! Compression and decompression of whole arrays into self-describing streams.
//!
//! The array is viewed as 3D and cut into blocks; each block is coded on its own (in parallel,
//! identically for any thread count) as the cheapest of: constant, LBRC, zstd, raw. Lossy blocks
//! are verified against the target on their actual reconstruction; a block no step can serve is
//! coded losslessly.

use crate::block::{default_block, fold3, Block, Grid};
use crate::bound::{finite_min_max, span, BlockBound, Target};
use crate::dtype::ElementType;
use crate::entropy::{decode_bytes, encode_bytes, ints, Coded};
use crate::error::{Error, Result};
use crate::format::{self, checked_len, grid_len, header_len, BlockKind, StreamInfo};
use crate::params::{Config, IntCoder};
use crate::residual::lbrc;
use rayon::prelude::*;
use std::sync::Arc;

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
    /// Own pool when `threads` > 1; rayon's global one for 0; none for 1 (the caller's thread).
    pool: Option<Arc<rayon::ThreadPool>>,
}

impl Codec {
    pub fn new(config: Config) -> Result<Self> {
        let pool = match config.threads {
            0 | 1 => None,
            n => Some(Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| Error::Internal(format!("thread pool: {e}")))?,
            )),
        };
        Ok(Codec { config, pool })
    }

    /// Builds a codec from `key=value` parameters (the ADIOS2 operator's), validating them.
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        Codec::new(Config::from_pairs(pairs)?)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn block_shape(&self, dims: &[usize]) -> [usize; 3] {
        let d = fold3(dims);
        match self.config.target {
            // One block: zstd sees the whole array.
            Target::Lossless => d.map(|x| x.max(1)),
            _ => self.config.block.unwrap_or_else(|| default_block(d)),
        }
    }

    /// The exact worst-case stream length for an array of `dims`: every block stored raw.
    /// Saturates for shapes too large to address (which compression then refuses).
    pub fn max_compressed_len(&self, dtype: ElementType, dims: &[usize]) -> usize {
        let raw = checked_len(dims, dtype).unwrap_or(usize::MAX);
        header_len(dims.len(), grid_len(dims, self.block_shape(dims))).saturating_add(raw)
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
        let grid = Grid::new(fold3(dims), self.block_shape(dims));
        let bound = match self.config.target {
            t if t.needs_range() => {
                let par = !self.serial() && data.len() > RANGE_CHUNK * dtype.size();
                let range = self
                    .config
                    .range
                    .unwrap_or_else(|| self.run(par, |par| data_range(data, dtype, par)));
                t.resolve(range)
            }
            t => t.resolve(0.0),
        };
        let values = data.len() / dtype.size();
        let par = !self.serial() && (grid.len() > 1 || values >= lbrc::PAR_MIN);
        let coded = self.run(par, |par| {
            map_blocks(grid.len(), !par, |i| {
                self.encode_block(&grid, &grid.block(i), data, dtype, bound, par)
            })
        })?;
        let blocks: Vec<(BlockKind, &[u8])> =
            coded.iter().map(|(k, p)| (*k, p.as_slice())).collect();
        let info = StreamInfo {
            dtype,
            target: self.config.target,
            dims: dims.to_vec(),
            block: grid.block,
        };
        format::write_stream(&info, &blocks, out)
    }

    /// [`decode_into`] on the codec's threads (the same bytes for any count).
    pub fn decode_into(&self, stream: &[u8], out: &mut [u8]) -> Result<usize> {
        self.run(!self.serial(), |par| decode_blocks(stream, out, par))
    }

    fn serial(&self) -> bool {
        self.config.threads == 1
    }

    /// `f(par)` in the codec's pool where `par` (the work is worth sharing), else right here
    /// (a hand-over to a pool thread costs more than a small job).
    fn run<R: Send>(&self, par: bool, f: impl FnOnce(bool) -> R + Send) -> R {
        match &self.pool {
            Some(p) if par => p.install(|| f(true)),
            _ => f(par),
        }
    }

    fn encode_block(
        &self,
        grid: &Grid,
        b: &Block,
        data: &[u8],
        dtype: ElementType,
        bound: BlockBound,
        par: bool,
    ) -> Result<(BlockKind, Vec<u8>)> {
        let raw = grid.gather_bytes(data, dtype, b);
        if bound != BlockBound::Lossless {
            let values = raw_to_f64(&raw, dtype);
            if let Some(c) = lbrc::encode(&values, b.shape, bound, dtype, self.config.coder, par) {
                let (kind, payload) = match c {
                    lbrc::Coded::Constant(p) => (BlockKind::Constant, p),
                    lbrc::Coded::Lbrc(p) => (BlockKind::Lbrc, p),
                };
                if payload.len() < raw.len() {
                    return Ok((kind, payload));
                }
            }
        }
        // Lossless, or no step meets the bound: zstd where it shrinks the block, else raw.
        Ok(match encode_bytes(&raw, self.config.level)? {
            Coded::Zstd(z) => (BlockKind::Zstd, z),
            Coded::Raw => (BlockKind::Raw, raw),
        })
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

impl IntCoder {
    pub(crate) fn encode(self, r: &[i64], shape: [usize; 3], out: &mut Vec<u8>, par: bool) {
        match self {
            IntCoder::Context => ints::encode(r, shape, out, par),
            IntCoder::Planes => ints::encode_planes(r, 3, out),
        }
    }
}

/// Little-endian element bytes as f64 (exact for f32 and f64).
pub fn raw_to_f64(raw: &[u8], dtype: ElementType) -> Vec<f64> {
    match dtype {
        ElementType::F32 => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        ElementType::F64 => raw
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
    }
}

/// `f` over the block indices `0..n`, in parallel in the current pool unless `serial` or there
/// is one block (sparing the hand-over to another thread). Results in index order.
fn map_blocks<T: Send>(
    n: usize,
    serial: bool,
    f: impl Fn(usize) -> Result<T> + Sync + Send,
) -> Result<Vec<T>> {
    if serial || n <= 1 {
        (0..n).map(f).collect()
    } else {
        (0..n).into_par_iter().map(f).collect()
    }
}

/// Values per chunk of [`data_range`].
const RANGE_CHUNK: usize = 1 << 16;

/// Value range of the finite elements, in chunks (min/max: any order gives the same).
fn data_range(data: &[u8], dtype: ElementType, par: bool) -> f64 {
    let chunk = dtype.size() * RANGE_CHUNK;
    let min_max = |c: &[u8]| match dtype {
        ElementType::F32 => finite_min_max(
            c.chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64),
        ),
        ElementType::F64 => finite_min_max(
            c.chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap())),
        ),
    };
    let join = |a: (f64, f64), b: (f64, f64)| (a.0.min(b.0), a.1.max(b.1));
    let none = (f64::INFINITY, f64::NEG_INFINITY);
    span(if !par {
        data.chunks(chunk).map(min_max).fold(none, join)
    } else {
        data.par_chunks(chunk).map(min_max).reduce(|| none, join)
    })
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

/// Reads a stream's header: type, shape, target, block shape.
pub fn stream_info(stream: &[u8]) -> Result<StreamInfo> {
    Ok(format::parse(stream)?.info)
}

/// Decodes `stream` into `out` (little-endian element bytes), which must hold at least
/// [`StreamInfo::decoded_len`] bytes; exactly that many are written. Returns the count.
/// Blocks decode in parallel in the current rayon pool; [`Codec::decode_into`] limits that
/// to the codec's threads.
pub fn decode_into(stream: &[u8], out: &mut [u8]) -> Result<usize> {
    decode_blocks(stream, out, true)
}

fn decode_blocks(stream: &[u8], out: &mut [u8], par: bool) -> Result<usize> {
    let parsed = format::parse(stream)?;
    let info = &parsed.info;
    let len = info.decoded_len();
    if out.len() < len {
        return Err(Error::OutputTooSmall {
            needed: len,
            got: out.len(),
        });
    }
    let grid = info.grid();
    let dtype = info.dtype;
    let blocks = map_blocks(grid.len(), !par, |i| {
        let b = grid.block(i);
        let entry = &parsed.entries[i];
        let payload = parsed.payload(i)?;
        let bytes = b.len() * dtype.size();
        match entry.kind {
            BlockKind::Raw | BlockKind::Zstd => {
                let mut raw = vec![0u8; bytes];
                decode_bytes(entry.kind, payload, &mut raw)?;
                Ok(raw)
            }
            BlockKind::Constant | BlockKind::Lbrc => {
                if info.target == Target::Lossless {
                    return Err(Error::Corrupt("lossy block in a lossless stream".into()));
                }
                lbrc::decode(payload, b.shape, dtype, entry.kind == BlockKind::Constant)
            }
        }
    })?;
    for (i, raw) in blocks.iter().enumerate() {
        grid.scatter_bytes(raw, &mut out[..len], dtype, &grid.block(i));
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
