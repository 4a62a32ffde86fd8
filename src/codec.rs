//! Compression and decompression of whole arrays into self-describing streams.
//!
//! The array is viewed as 3D and cut into blocks; each block is coded on its own (in parallel,
//! identically for any thread count) as the cheapest of: constant, LBRC, zstd, raw. Lossy blocks
//! are verified against the target on their actual reconstruction; a block no step can serve is
//! coded losslessly.

use crate::base::{self, Model};
use crate::block::{default_block, fold3, Grid};
use crate::bound::{finite_min_max, span, BlockBound, ErrorStats, Target};
use crate::dtype::ElementType;
use crate::entropy::{encode_bytes, ints, Coded};
use crate::error::{Error, Result};
use crate::format::{self, checked_len, grid_len, header_len, BlockKind, StreamInfo};
use crate::params::{Config, IntCoder, Range, Residual};
use crate::pipeline::{default_threads, two_stage, MAX_THREADS};
use crate::residual::{gae, lbrc};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Floating-point element types residuum compresses.
pub trait Float: bytemuck::Pod + Default + private::Sealed {
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

/// A configured compressor. Decoding needs no configuration: see [`crate::decode()`].
#[derive(Debug, Clone, Default)]
pub struct Codec {
    config: Config,
    /// Threads resolved from the configuration (at least 1).
    threads: usize,
    /// Shared pool of `threads` workers when there are several; none: the caller's thread.
    pool: Option<Arc<rayon::ThreadPool>>,
    /// The base model of `config.model`, loaded once.
    model: Option<Arc<Model>>,
    /// Learns a model from the first arrays (`config.train`).
    trainer: Option<Arc<Trainer>>,
}

/// Arrays kept to learn from: values as f32 and their 3D view.
type Collected = Vec<(Vec<f32>, [usize; 3])>;

/// The operator's `train=N`: collects the first N arrays, then trains on a background thread;
/// compression goes on without a model meanwhile and uses it once it is there.
#[derive(Debug)]
struct Trainer {
    want: usize,
    #[cfg_attr(not(feature = "train"), allow(dead_code))]
    seconds: f64,
    /// None once training started.
    collected: Mutex<Option<Collected>>,
    trained: std::sync::OnceLock<Arc<Model>>,
}

impl Trainer {
    fn observe(self: &Arc<Self>, data: &[u8], dtype: ElementType, dims: &[usize]) {
        let mut c = self.collected.lock().unwrap_or_else(|e| e.into_inner());
        let Some(arrays) = c.as_mut() else {
            return; // training started
        };
        let v = raw_to_f64(data, dtype)
            .into_iter()
            .map(|x| x as f32)
            .collect();
        arrays.push((v, fold3(dims)));
        if arrays.len() < self.want {
            return;
        }
        let arrays = c.take().unwrap_or_default();
        let me = self.clone();
        std::thread::spawn(move || me.train(arrays));
    }

    #[cfg(feature = "train")]
    fn train(&self, arrays: Collected) {
        use crate::base::train::{fit, Sample, TrainOptions};
        let samples: Vec<Sample> = arrays
            .iter()
            .map(|(v, shape)| Sample {
                values: v,
                shape: *shape,
            })
            .collect();
        let opts = TrainOptions {
            seconds: self.seconds,
            ..TrainOptions::default()
        };
        let trained = fit(&samples, &opts, |_| {}).and_then(|(bytes, curve)| {
            let m = Model::from_safetensors(&bytes).map_err(Error::Model)?;
            Ok((m, curve))
        });
        match trained {
            Ok((m, curve)) => {
                eprintln!(
                    "residuum: base model trained on {} arrays: {} steps in {:.1} s, loss {:.3e}",
                    arrays.len(),
                    curve.len(),
                    curve.last().map_or(0.0, |p| p.seconds),
                    curve.last().map_or(f64::NAN, |p| p.loss)
                );
                let _ = self.trained.set(Arc::new(m));
            }
            Err(e) => eprintln!("residuum: training the base model failed: {e}"),
        }
    }

    #[cfg(not(feature = "train"))]
    fn train(&self, _: Collected) {}
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

/// One way of coding a lossy block, between the pipeline's stages.
enum Candidate {
    /// LBRC on the values.
    Lbrc(lbrc::Prepared, ErrorStats),
    /// LBRC on the residual over the base model's prediction.
    BaseLbrc(Arc<base::Predicted>, lbrc::Prepared, ErrorStats),
    /// GAE (finished: it has no separate entropy stage) over no base or the model's.
    Gae(Option<Arc<base::Predicted>>, Vec<u8>, ErrorStats),
}

/// A block between the pipeline's stages: its candidates and raw bytes (in case none pays).
struct Staged {
    candidates: Vec<Candidate>,
    raw: Vec<u8>,
}

/// A coded block: how, its payload and its errors.
type CodedBlock = (BlockKind, Vec<u8>, ErrorStats);

/// A block's best coding without the base model, and with it where that is smaller.
struct Choice {
    plain: CodedBlock,
    with_model: Option<CodedBlock>,
}

/// The base model's part of a block payload: normalisation and coded latents.
fn put_base(p: &base::Predicted, out: &mut Vec<u8>) {
    out.extend_from_slice(&p.norm.mean.to_le_bytes());
    out.extend_from_slice(&p.norm.scale.to_le_bytes());
    crate::entropy::ints::put_varint(out, p.coded_latents.len() as u64);
    out.extend_from_slice(&p.coded_latents);
}

impl Codec {
    pub fn new(config: Config) -> Result<Self> {
        let threads = match config.threads {
            0 => default_threads(),
            n => n,
        };
        let model = match &config.model {
            Some(path) => Some(Arc::new(Model::load(path)?)),
            None => None,
        };
        if config.train > 0 && !cfg!(feature = "train") {
            return Err(Error::BadParameter {
                key: "train".into(),
                value: config.train.to_string(),
                reason: "this build of residuum cannot train (feature `train`)".into(),
            });
        }
        let trainer = (config.train > 0).then(|| {
            Arc::new(Trainer {
                want: config.train,
                seconds: config.train_seconds,
                collected: Mutex::new(Some(Vec::new())),
                trained: std::sync::OnceLock::new(),
            })
        });
        Codec {
            config,
            threads: 0,
            pool: None,
            model,
            trainer,
        }
        .with_threads(threads)
    }

    /// The same codec on `threads` threads (from the shared pools: cheap), at most
    /// [`MAX_THREADS`].
    pub fn with_threads(&self, threads: usize) -> Result<Self> {
        let threads = threads.clamp(1, MAX_THREADS);
        Ok(Codec {
            config: self.config.clone(),
            threads,
            pool: if threads > 1 {
                Some(shared_pool(threads)?)
            } else {
                None
            },
            model: self.model.clone(),
            trainer: self.trainer.clone(),
        })
    }

    /// The base model compression uses now: the configured one, or the one `train=N` learned
    /// (None while it trains).
    pub fn model(&self) -> Option<Arc<Model>> {
        self.model
            .clone()
            .or_else(|| self.trainer.as_ref()?.trained.get().cloned())
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
        // `base=model` may carry the model whatever it saves (`auto` only where it saves more).
        let model = if self.config.force_model && (self.model.is_some() || self.trainer.is_some()) {
            format::model_entry_len(base::DECODER_LEN)
        } else {
            0
        };
        header_len(dims.len(), grid_len(dims, self.block_shape(dims)))
            .saturating_add(raw)
            .saturating_add(model)
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
        let model = self.model();
        if let (Some(t), true) = (&self.trainer, bound != BlockBound::Lossless) {
            t.observe(data, dtype, dims);
        }
        let first = |i: usize, par: bool| -> Result<Staged> {
            let b = grid.block(i);
            let raw = grid.gather_bytes(data, dtype, &b);
            let candidates = if bound == BlockBound::Lossless {
                Vec::new()
            } else {
                let v = raw_to_f64(&raw, dtype);
                self.candidates(model.as_deref(), &v, b.shape, bound, dtype, par)
            };
            Ok(Staged { candidates, raw })
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
        // The model travels in the stream: worth it only where the blocks it serves save more
        // than its own bytes.
        let model_bytes = model.as_ref().map(|m| m.decoder.entry());
        let saved: usize = coded
            .iter()
            .filter_map(|c| {
                let m = c.with_model.as_ref()?;
                Some(c.plain.1.len().saturating_sub(m.1.len()))
            })
            .sum();
        // Only where the stream gets smaller, its table entry counted: so it never outgrows
        // the stream without the model (nor `max_compressed_len`).
        let serves = coded.iter().any(|c| c.with_model.is_some());
        let use_model = model_bytes.is_some_and(|m| {
            serves && (saved > format::model_entry_len(m.len() - 8) || self.config.force_model)
        });
        let mut errors = ErrorStats::default();
        let blocks: Vec<(BlockKind, &[u8])> = coded
            .iter()
            .map(|c| match (&c.with_model, use_model) {
                (Some(m), true) => m,
                _ => &c.plain,
            })
            .map(|(k, p, e)| {
                errors.merge(e);
                (*k, p.as_slice())
            })
            .collect();
        let model = model_bytes.filter(|_| use_model);
        let info = StreamInfo {
            dtype,
            target,
            dims: dims.to_vec(),
            block: grid.block,
        };
        let bytes_out = format::write_stream(&info, &blocks, model, out)?;
        Ok(CompressStats {
            bytes_in: data.len(),
            bytes_out,
            errors,
            range,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// [`crate::decode_into`] on the codec's threads (the same bytes for any count).
    pub fn decode_into(&self, stream: &[u8], out: &mut [u8]) -> Result<usize> {
        self.run(!self.serial(), |par| {
            crate::decode::decode_blocks(stream, out, par)
        })
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

    /// The pipeline's first stage for a lossy block: the ways of coding it that the settings
    /// allow, quantized, predicted and verified.
    fn candidates(
        &self,
        model: Option<&Model>,
        v: &[f64],
        shape: [usize; 3],
        bound: BlockBound,
        dtype: ElementType,
        par: bool,
    ) -> Vec<Candidate> {
        // The model's prediction, where it is finite (a hostile block can overflow it).
        let predicted = model.and_then(|m| {
            let p = base::predict(m, v, shape);
            p.prediction
                .iter()
                .all(|x| x.is_finite())
                .then(|| Arc::new(p))
        });
        let mut out = Vec::new();
        match self.config.residual {
            Residual::Lbrc => {
                if let Some((p, e)) = lbrc::prepare(v, None, shape, bound, dtype, par) {
                    out.push(Candidate::Lbrc(p, e));
                }
                if let Some(pr) = predicted {
                    let base = Some(pr.prediction.as_slice());
                    if let Some((p, e)) = lbrc::prepare(v, base, shape, bound, dtype, par) {
                        out.push(Candidate::BaseLbrc(pr.clone(), p, e));
                    }
                }
            }
            Residual::Gae => {
                if let Some((p, e)) = gae::encode(v, None, shape, bound, dtype) {
                    out.push(Candidate::Gae(None, p, e));
                }
                if let Some(pr) = predicted {
                    let base = Some(pr.prediction.as_slice());
                    if let Some((p, e)) = gae::encode(v, base, shape, bound, dtype) {
                        out.push(Candidate::Gae(Some(pr.clone()), p, e));
                    }
                }
            }
        }
        out
    }

    /// The pipeline's second stage: entropy coding of every candidate, and the smallest with
    /// and without the base model; lossless coding where no lossy payload is smaller than the
    /// raw block (or no step met the bound).
    fn finish_block(&self, s: Staged, dtype: ElementType) -> Result<Choice> {
        let mut plain: Option<CodedBlock> = None;
        let mut with_model: Option<CodedBlock> = None;
        for c in s.candidates {
            let (coded, uses_model) = match c {
                Candidate::Lbrc(lbrc::Prepared::Constant(p), e) => {
                    ((BlockKind::Constant, p, e), false)
                }
                Candidate::Lbrc(lbrc::Prepared::Predicted(p), e) => {
                    ((BlockKind::Lbrc, p.finish(self.config.coder), e), false)
                }
                Candidate::BaseLbrc(pr, p, e) => {
                    let mut out = Vec::new();
                    put_base(&pr, &mut out);
                    match p {
                        lbrc::Prepared::Constant(p) => {
                            out.push(0);
                            out.extend_from_slice(&p);
                        }
                        lbrc::Prepared::Predicted(p) => {
                            out.push(1);
                            out.extend_from_slice(&p.finish(self.config.coder));
                        }
                    }
                    ((BlockKind::BaseLbrc, out, e), true)
                }
                Candidate::Gae(pr, p, e) => {
                    let mut out = vec![pr.is_some() as u8];
                    if let Some(pr) = &pr {
                        put_base(pr, &mut out);
                    }
                    out.extend_from_slice(&p);
                    ((BlockKind::Gae, out, e), pr.is_some())
                }
            };
            let slot = if uses_model {
                &mut with_model
            } else {
                &mut plain
            };
            if slot.as_ref().is_none_or(|b| coded.1.len() < b.1.len()) {
                *slot = Some(coded);
            }
        }
        let raw = s.raw;
        let raw_len = raw.len();
        let plain = match plain {
            Some(p) if p.1.len() < raw.len() => p,
            _ => {
                // Stored exactly: no error (counted over all values, as NaNs round-trip too).
                let exact = ErrorStats {
                    count: raw.len() / dtype.size(),
                    ..ErrorStats::default()
                };
                match encode_bytes(&raw, self.config.level)? {
                    Coded::Zstd(z) => (BlockKind::Zstd, z, exact),
                    Coded::Raw => (BlockKind::Raw, raw, exact),
                }
            }
        };
        // Forced, the model's coding is kept even where larger, but never beyond the raw
        // block: `max_compressed_len` holds.
        let with_model = with_model.filter(|m| {
            m.1.len() < plain.1.len() || (self.config.force_model && m.1.len() <= raw_len)
        });
        Ok(Choice { plain, with_model })
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
            .map(|c| crate::dtype::f32_to_f64(u32::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        ElementType::F64 => raw
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
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
