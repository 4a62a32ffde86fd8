//! Compression and decompression of whole arrays into self-describing streams.
//!
//! The array is viewed as 3D and cut into blocks; each block is coded on its own (in parallel,
//! identically for any thread count) as the cheapest of: constant, LBRC, zstd, raw. Lossy blocks
//! are verified against the target on their actual reconstruction; a block no step can serve is
//! coded losslessly.

use crate::block::{default_block, fold3, Grid};
use crate::bound::{finite_min_max, span, BlockBound, ErrorStats, Target};
use crate::dtype::ElementType;
use crate::entropy::{decode_bytes, encode_bytes, ints, Coded};
use crate::error::{Error, Result};
use crate::format::{self, checked_len, grid_len, header_len, BlockKind, StreamInfo};
use crate::params::{Config, IntCoder, Range};
use crate::pipeline::{default_threads, two_stage};
use crate::residual::lbrc;
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
    /// Threads resolved from the configuration (at least 1).
    threads: usize,
    /// Shared pool of `threads` workers when there are several; none: the caller's thread.
    pool: Option<Arc<rayon::ThreadPool>>,
}

/// What one compression did: sizes, the errors of the verified reconstruction and the range the
/// bound was resolved against (0 for absolute and lossless targets).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CompressStats {
    pub bytes_in: usize,
    pub bytes_out: usize,
    pub errors: ErrorStats,
    pub range: f64,
    pub seconds: f64,
}

impl CompressStats {
    /// RMS error over the value range (0 where there is no range).
    pub fn nrmse(&self) -> f64 {
        if self.range > 0.0 {
            self.errors.rms() / self.range
        } else {
            0.0
        }
    }
}

/// One pool per thread count for the whole process: every variable's operator shares it
/// instead of each bringing its own threads.
fn shared_pool(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    static POOLS: Mutex<Option<HashMap<usize, Arc<rayon::ThreadPool>>>> = Mutex::new(None);
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    let pools = pools.get_or_insert_with(HashMap::new);
    if let Some(p) = pools.get(&threads) {
        return Ok(p.clone());
    }
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("residuum-{i}"))
            .build()
            .map_err(|e| Error::Internal(format!("thread pool: {e}")))?,
    );
    pools.insert(threads, pool.clone());
    Ok(pool)
}

/// A block between the pipeline's stages.
enum Staged {
    /// Prepared for LBRC, with its errors and the raw bytes in case LBRC does not pay.
    Lossy(lbrc::Prepared, ErrorStats, Vec<u8>),
    Lossless(Vec<u8>),
}

impl Codec {
    pub fn new(config: Config) -> Result<Self> {
        let threads = match config.threads {
            0 => default_threads(),
            n => n,
        };
        Codec {
            config,
            threads: 0,
            pool: None,
        }
        .with_threads(threads)
    }

    /// The same codec on `threads` threads (from the shared pools: cheap).
    pub fn with_threads(&self, threads: usize) -> Result<Self> {
        let threads = threads.max(1);
        Ok(Codec {
            config: self.config.clone(),
            threads,
            pool: if threads > 1 {
                Some(shared_pool(threads)?)
            } else {
                None
            },
        })
    }

    /// The worker threads this codec uses.
    pub fn threads(&self) -> usize {
        self.threads
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
        Ok(self.compress_with(dtype, dims, data, out, None)?.bytes_out)
    }

    /// [`Codec::compress_bytes`] with statistics, resolving range-relative targets against
    /// `range` where given (the in-situ range handed over for `range=rank|global`), else as
    /// configured.
    pub fn compress_with(
        &self,
        dtype: ElementType,
        dims: &[usize],
        data: &[u8],
        out: &mut [u8],
        range: Option<f64>,
    ) -> Result<CompressStats> {
        let start = Instant::now();
        check_shape(dims, dtype, data.len())?;
        let grid = Grid::new(fold3(dims), self.block_shape(dims));
        let target = self.config.target;
        let range = match (target.needs_range(), range, self.config.range) {
            (false, _, _) => 0.0,
            (true, Some(r), _) | (true, None, Range::Fixed(r)) => r,
            (true, None, _) => {
                let par = !self.serial() && data.len() > RANGE_CHUNK * dtype.size();
                self.run(par, |par| data_range(data, dtype, par))
            }
        };
        let bound = target.resolve(range);
        let values = data.len() / dtype.size();
        let first = |i: usize, par: bool| -> Result<Staged> {
            let b = grid.block(i);
            let raw = grid.gather_bytes(data, dtype, &b);
            if bound != BlockBound::Lossless {
                let v = raw_to_f64(&raw, dtype);
                if let Some((p, e)) = lbrc::prepare(&v, b.shape, bound, dtype, par) {
                    return Ok(Staged::Lossy(p, e, raw));
                }
            }
            Ok(Staged::Lossless(raw))
        };
        let second = |_: usize, s: Staged| self.finish_block(s, dtype);
        let coded = if grid.len() > 1 && !self.serial() {
            let depth = 4 * self.threads;
            two_stage(
                grid.len(),
                self.pool.as_deref(),
                depth,
                |i| first(i, true),
                second,
            )?
        } else {
            // One block (or one thread): no pipeline, but a large block shares its stages.
            let par = !self.serial() && values >= lbrc::PAR_MIN;
            self.run(par, |par| {
                two_stage(grid.len(), None, 1, |i| first(i, par), second)
            })?
        };
        let mut errors = ErrorStats::default();
        let blocks: Vec<(BlockKind, &[u8])> = coded
            .iter()
            .map(|(k, p, e)| {
                errors.merge(e);
                (*k, p.as_slice())
            })
            .collect();
        let info = StreamInfo {
            dtype,
            target,
            dims: dims.to_vec(),
            block: grid.block,
        };
        let bytes_out = format::write_stream(&info, &blocks, out)?;
        Ok(CompressStats {
            bytes_in: data.len(),
            bytes_out,
            errors,
            range,
            seconds: start.elapsed().as_secs_f64(),
        })
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

    /// The pipeline's second stage: entropy coding, and lossless coding where the lossy payload
    /// would not be smaller than the raw block (or no step met the bound).
    fn finish_block(
        &self,
        s: Staged,
        dtype: ElementType,
    ) -> Result<(BlockKind, Vec<u8>, ErrorStats)> {
        let raw = match s {
            Staged::Lossy(p, errors, raw) => {
                let (kind, payload) = match p {
                    lbrc::Prepared::Constant(p) => (BlockKind::Constant, p),
                    lbrc::Prepared::Predicted(p) => (BlockKind::Lbrc, p.finish(self.config.coder)),
                };
                if payload.len() < raw.len() {
                    return Ok((kind, payload, errors));
                }
                raw
            }
            Staged::Lossless(raw) => raw,
        };
        // Stored exactly: no error (counted over all values, as NaNs round-trip too).
        let exact = ErrorStats {
            count: raw.len() / dtype.size(),
            ..ErrorStats::default()
        };
        Ok(match encode_bytes(&raw, self.config.level)? {
            Coded::Zstd(z) => (BlockKind::Zstd, z, exact),
            Coded::Raw => (BlockKind::Raw, raw, exact),
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
pub(crate) fn data_range(data: &[u8], dtype: ElementType, par: bool) -> f64 {
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
