//! Compression of whole arrays into self-describing streams; orchestration only.
//!
//! The array is viewed as 3D and cut into blocks (`block`); each block is coded on its own (in
//! parallel, identically for any thread count) through the stages: the base model's prediction
//! where there is one and the previous step's reconstruction under temporal prediction (`base`),
//! the configured residual coder (`residual`: LBRC with its
//! predictors, or GAE), the integer coder (`entropy`); the smallest payload by actual bytes
//! wins, else zstd or raw. Lossy blocks are verified against the target on their actual
//! reconstruction; a block no step can serve is coded losslessly. The stream is framed by
//! `format`; decoding is `decode`'s.

use crate::base::{self, previous, Model};
use crate::block::{default_block, fold3, lossless_block, Grid};
use crate::bound::{data_range, BlockBound, ErrorStats, Target, RANGE_CHUNK};
use crate::dtype::{ElementType, Float};
use crate::error::{Error, ParameterError, Result};
use crate::format::step::{StepInfo, STEP_LEN};
use crate::format::{
    self, check_shape, checked_len, grid_len, header_len, BlockKind, StreamInfo, Tables,
};
use crate::params::{Config, Range};
use crate::pipeline::learn::Learner;
use crate::pipeline::{default_threads, scratch, shared_pool, two_stage, MAX_THREADS};
use crate::residual::predict::nglr;
use crate::residual::{lbrc, Base, BlockValues, LookHints, NglrUse, Recon, Specials, Staged};
use choice::{pick, picked, MODEL, NGLR, PREVIOUS};

mod choice;
use std::sync::Arc;
use std::time::Instant;

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
    trainer: Option<Arc<Learner<Model>>>,
    /// The NGLR network of `config.nglr`, loaded once.
    nglr: Option<Arc<NglrUse>>,
    /// Learns an NGLR network from the first arrays (`config.train_nglr`).
    nglr_trainer: Option<Arc<Learner<nglr::Network>>>,
}

/// One way of coding a lossy block, between the pipeline's stages.
struct Candidate {
    staged: Staged,
    errors: ErrorStats,
    /// The stream tables it needs ([`MODEL`], [`NGLR`], [`PREVIOUS`]).
    tables: usize,
    /// Its estimated bits per value (`Staged::estimate`).
    estimate: f64,
    /// Its reconstruction's element bytes, where asked for and at hand.
    recon: Option<Recon>,
}

/// A candidate whose estimated bits exceed the best one's (with or without the model) by
/// this factor is not integer-coded: the estimates are not that far off.
const PRUNE: f64 = 1.15;

/// A block between the pipeline's stages: its candidates and raw bytes (in case none pays).
struct Block {
    candidates: Vec<Candidate>,
    raw: Vec<u8>,
}

/// The previous step's bases worth staging for a block, and whether coding without one is
/// (`base::previous::choose`).
type Previous = (Vec<(u8, Vec<f64>)>, bool);

/// The previous step of a chain, for [`Codec::compress_step`].
pub(crate) struct StepInput<'a> {
    pub chain: u64,
    pub step: u64,
    /// The chain's latest keyframe, which this stream names where it needs the reference.
    pub keyframe: u64,
    /// The previous step's reconstruction (element bytes of the same type and shape) and its
    /// hash ([`crate::reference_hash`], which the chain already has); None for a keyframe.
    pub reference: Option<(&'a [u8], u64)>,
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
    /// Under temporal prediction, the hash ([`crate::reference_hash`]) of the reconstruction,
    /// as a reader decodes it (and the next step names it); 0 otherwise.
    pub recon_hash: u64,
}

impl CompressStats {
    /// RMS error over the range the bound was resolved against; None where there was none
    /// (`abs` and lossless targets need no range, and a block of one value has a range of 0),
    /// where 0 read as exact whatever the errors.
    pub fn nrmse(&self) -> Option<f64> {
        (self.range > 0.0).then(|| self.errors.rms() / self.range)
    }
}

impl Codec {
    pub fn new(config: Config) -> Result<Self> {
        config.check()?;
        let threads = match config.threads {
            0 => default_threads(),
            n => n,
        };
        let model = match &config.model {
            Some(path) => Some(Arc::new(Model::load(path)?)),
            None => None,
        };
        let cannot = |key: &str, n: usize| {
            Error::Parameter(ParameterError::BadValue {
                key: key.into(),
                value: n.to_string(),
                reason: "this build of residuum cannot train (feature `train`)".into(),
            })
        };
        let (trainer, nglr_trainer) = learners(&config).ok_or_else(|| match config.train {
            0 => cannot("train_nglr", config.train_nglr),
            n => cannot("train", n),
        })?;
        let force = config.residual == crate::params::Residual::Nglr;
        let nglr = match &config.nglr {
            Some(path) => Some(Arc::new(NglrUse {
                net: Arc::new(nglr::load(path)?),
                force,
            })),
            None => None,
        };
        Codec {
            config,
            threads: 0,
            pool: None,
            model,
            trainer,
            nglr,
            nglr_trainer,
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
            nglr: self.nglr.clone(),
            nglr_trainer: self.nglr_trainer.clone(),
        })
    }

    /// The base model compression uses now: the configured one, or the one `train=N` learned
    /// (None while it trains).
    pub fn model(&self) -> Option<Arc<Model>> {
        self.model
            .clone()
            .or_else(|| self.trainer.as_ref()?.trained())
    }

    /// The NGLR network compression uses now: the configured one, or the one `train_nglr=N`
    /// learned (None while it trains).
    fn nglr(&self) -> Option<Arc<NglrUse>> {
        self.nglr.clone().or_else(|| {
            let net = self.nglr_trainer.as_ref()?.trained()?;
            let force = self.config.residual == crate::params::Residual::Nglr;
            Some(Arc::new(NglrUse { net, force }))
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
        let default = match self.config.target {
            Target::Lossless => lossless_block,
            _ => default_block,
        };
        self.config.block.unwrap_or_else(|| default(d))
    }

    /// The exact worst-case stream length for an array of `dims`: every block stored raw.
    /// Saturates for shapes too large to address (which compression then refuses).
    pub fn max_compressed_len(&self, dtype: ElementType, dims: &[usize]) -> usize {
        // A shape too large to address (which would overflow the grid's count too).
        let Some(raw) = checked_len(dims, dtype) else {
            return usize::MAX;
        };
        // `base=model` may carry the model whatever it saves (`auto` only where it saves more).
        let model = if self.config.force_model && (self.model.is_some() || self.trainer.is_some()) {
            format::entry_len(8 + base::DECODER_LEN)
        } else {
            0
        };
        // Forced NGLR likewise (a network learned in situ has at most MAX_HIDDEN units).
        let net = match (&self.nglr, &self.nglr_trainer) {
            (Some(u), _) if u.force => format::entry_len(u.net.entry().len()),
            (None, Some(_)) if self.config.residual == crate::params::Residual::Nglr => {
                format::entry_len(8 + nglr::Network::max_len())
            }
            _ => 0,
        };
        let step = if self.config.temporal > 0 {
            format::entry_len(STEP_LEN)
        } else {
            0
        };
        header_len(dims.len(), grid_len(dims, self.block_shape(dims)))
            .saturating_add(raw)
            .saturating_add(model)
            .saturating_add(net)
            .saturating_add(step)
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
        Ok(self
            .compress_step(dtype, dims, data, out, range, None, None)?
            .0)
    }

    /// [`Codec::compress_with`] as one step of a chain (`step`): blocks are also offered the
    /// previous step's reconstruction as their base, and the stream carries the step entry.
    /// With a step, also the reconstruction's element bytes where every block's is at hand
    /// (None: decode the stream for it). `hints`: what the previous steps of the same array
    /// taught the encoder (in situ).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn compress_step(
        &self,
        dtype: ElementType,
        dims: &[usize],
        data: &[u8],
        out: &mut [u8],
        range: Option<f64>,
        step: Option<&StepInput>,
        hints: Option<&LookHints>,
    ) -> Result<(CompressStats, Option<StepInfo>, Option<Vec<u8>>)> {
        let start = Instant::now();
        check_shape(dims, dtype, data.len())?;
        let (reference, known_hash) = step.and_then(|s| s.reference).unzip();
        if reference.is_some_and(|r| r.len() != data.len()) {
            return Err(Error::Internal("a reference of another shape".into()));
        }
        let grid = Grid::new(fold3(dims), self.block_shape(dims));
        let target = self.config.target;
        let fill = self.config.fill_bits(dtype);
        let range = match (target.needs_range(), range, self.config.range) {
            (false, _, _) => 0.0,
            (true, Some(r), _) | (true, None, Range::Fixed(r)) => r,
            (true, None, _) => {
                let par = !self.serial() && data.len() > RANGE_CHUNK * dtype.size();
                self.run(par, |par| data_range(data, dtype, fill, par))
            }
        };
        let bound = target.resolve(range);
        let values = data.len() / dtype.size();
        let model = self.model();
        let net = self.nglr();
        if bound != BlockBound::Lossless {
            if let Some(t) = &self.trainer {
                t.observe(data, dtype, dims, fill);
            }
            if let Some(t) = &self.nglr_trainer {
                t.observe(data, dtype, dims, fill);
            }
        }
        let first = |i: usize, par: bool| -> Result<Block> {
            let b = grid.block(i);
            let raw = grid.gather_bytes(data, dtype, &b);
            let mut values = scratch::F64.take(b.len());
            dtype.extend_f64s(&raw, &mut values);
            let specials = Specials::find(&raw, dtype, fill, &mut values);
            let candidates = if bound == BlockBound::Lossless {
                // The values as LBRC integers, bit for bit (a lattice's, f32's ordered bits);
                // the bytes where smaller.
                let block = BlockValues::new(&values, &specials, b.shape, dtype);
                (lbrc::prepare_lossless(&block, par).into_iter())
                    .map(|ints| {
                        let staged = Staged::Ints(BlockKind::Lbrc, Vec::new(), ints);
                        Candidate {
                            estimate: staged.estimate(),
                            staged,
                            errors: ErrorStats::exact(b.len()),
                            tables: 0,
                            recon: None,
                        }
                    })
                    .collect()
            } else {
                let block = BlockValues {
                    nglr: net.as_deref(),
                    recon: step.is_some(),
                    look: hints.and_then(|h| h.block(i, grid.len())),
                    whole: grid.len() == 1,
                    ..BlockValues::new(&values, &specials, b.shape, dtype)
                };
                let previous = reference.map(|r| {
                    let p = previous::previous_values(r, dtype, &grid, &b);
                    let chosen = previous::choose(&values, &p, b.shape, bound);
                    scratch::F64.give(p);
                    chosen
                });
                let candidates =
                    self.candidates(model.as_deref(), previous.as_ref(), &block, bound, par);
                for (_, base) in previous.into_iter().flat_map(|p| p.0) {
                    scratch::F64.give(base);
                }
                candidates
            };
            scratch::F64.give(values);
            Ok(Block { candidates, raw })
        };
        let (coder, level, forced) = (self.config.coder, self.config.level, self.forced());
        let lossless = bound == BlockBound::Lossless;
        let second = |_: usize, s: Block| choice::finish(s, dtype, coder, level, forced, lossless);
        let mut coded = if grid.len() > 1 && !self.serial() {
            let depth = 4 * self.threads;
            // Blocks share their stages only where there are too few to keep every thread
            // busy: a thread waiting on the shared half of its block takes up another block
            // meanwhile, and its own finishes late. ccsm and era5 (4 and 5 blocks) on 2
            // threads at 1e-4..1e-6: 1.67x one thread's speed on average with sharing, 1.81x
            // without, and 3-12 % less CPU time.
            let share = grid.len() < 2 * self.threads;
            two_stage(
                grid.len(),
                self.pool.as_deref(),
                depth,
                |i| first(i, share),
                second,
            )?
        } else {
            // One block (or one thread): no pipeline, but a large block shares its stages.
            let par = !self.serial() && values >= lbrc::PAR_MIN;
            self.run(par, |par| {
                two_stage(grid.len(), None, 1, |i| first(i, par), second)
            })?
        };
        // The model and the network travel in the stream: each worth it only where the
        // blocks it serves save more than its own bytes (table entry counted), so that the
        // stream never outgrows the one without it (nor `max_compressed_len`).
        let model_bytes = model.as_ref().map(|m| m.decoder.entry());
        let net_bytes = net.as_ref().map(|u| u.net.entry());
        // The step entry is written either way: naming the reference costs nothing more.
        let costs = [
            model_bytes.map(|b| format::entry_len(b.len())),
            net_bytes.map(|b| format::entry_len(b.len())),
            reference.map(|_| 0),
        ];
        let forced = self.forced();
        let carried = choice::carried(&coded, costs, forced);
        let mut errors = ErrorStats::default();
        let blocks: Vec<(BlockKind, &[u8])> = coded
            .iter()
            .map(|c| pick(c, carried, forced))
            .map(|(k, p, e, _)| {
                errors.merge(e);
                (*k, p.as_slice())
            })
            .collect();
        let step = step.map(|s| {
            let predicted = carried & PREVIOUS != 0;
            StepInfo {
                chain: s.chain,
                step: s.step,
                keyframe: if predicted { s.keyframe } else { s.step },
                reference: known_hash.filter(|_| predicted),
            }
        });
        let step_bytes = step.map(|s| s.bytes());
        // The encoder predicts blocks of one plane with predictor 10 (version 12).
        let nglr_planar = carried & NGLR != 0
            && (coded.iter().enumerate()).any(|(i, c)| {
                nglr::planar(grid.block(i).shape) && picked(c, carried, forced) & NGLR != 0
            });
        let tables = Tables {
            model: model_bytes.filter(|_| carried & MODEL != 0),
            nglr: net_bytes.filter(|_| carried & NGLR != 0),
            step: step_bytes.as_ref().map(|b| b.as_slice()),
            nglr_planar,
        };
        let info = StreamInfo {
            dtype,
            target,
            dims: dims.to_vec(),
            block: grid.block,
        };
        let bytes_out = format::write_stream(&info, &blocks, tables, out)?;
        drop(blocks);
        // A chain's next base, as the encoder already has it (without decoding the stream):
        // where every block's reconstruction is at hand; a single block's as it is.
        let recon = step
            .is_some()
            .then(|| {
                if let [c] = coded.as_mut_slice() {
                    let (kind, payload, _, bytes) = c.best[picked(c, carried, forced)].take()?;
                    return match (kind, bytes) {
                        (_, Some(b)) => Some(Arc::try_unwrap(b).unwrap_or_else(|b| b.to_vec())),
                        (BlockKind::Raw, None) => Some(payload),
                        _ => None,
                    };
                }
                let mut recon = vec![0u8; data.len()];
                for (i, c) in coded.iter().enumerate() {
                    let (kind, payload, _, bytes) = pick(c, carried, forced);
                    let bytes = match (kind, bytes) {
                        (_, Some(b)) => b.as_slice(),
                        (BlockKind::Raw, None) => payload.as_slice(),
                        _ => return None,
                    };
                    grid.scatter_bytes(bytes, &mut recon, dtype, &grid.block(i));
                }
                Some(recon)
            })
            .flatten();
        let stats = CompressStats {
            bytes_in: data.len(),
            bytes_out,
            errors,
            range,
            seconds: start.elapsed().as_secs_f64(),
            recon_hash: 0,
        };
        Ok((stats, step, recon))
    }

    /// [`crate::decode_into`] on the codec's threads (the same bytes for any count).
    pub fn decode_into(&self, stream: &[u8], out: &mut [u8]) -> Result<usize> {
        self.decode_step_into(stream, out, None)
    }

    /// [`Codec::decode_into`] of one step of a chain, with the previous step's
    /// reconstruction where the stream is predicted from it (see [`crate::decode_step`]).
    pub fn decode_step_into(
        &self,
        stream: &[u8],
        out: &mut [u8],
        reference: Option<&[u8]>,
    ) -> Result<usize> {
        self.run(!self.serial(), |par| {
            crate::decode::decode_blocks(stream, out, par, reference)
        })
    }

    /// One thread, as given or resolved (`threads=0` on a rank that owns one core): no pool,
    /// and no parallel work either, which would run on rayon's global pool of every core.
    fn serial(&self) -> bool {
        self.threads == 1
    }

    /// `f(par)` in the codec's pool where `par` (the work is worth sharing), else right here
    /// (a hand-over to a pool thread costs more than a small job).
    fn run<R: Send>(&self, par: bool, f: impl FnOnce(bool) -> R + Send) -> R {
        match &self.pool {
            Some(p) if par => p.install(|| f(true)),
            _ => f(par),
        }
    }

    /// The pipeline's first stage for a lossy block: the configured residual coder over no
    /// base and, where there is a model, over its prediction, and where there is a previous
    /// step, over its reconstruction.
    fn candidates(
        &self,
        model: Option<&Model>,
        previous: Option<&Previous>,
        block: &BlockValues,
        bound: BlockBound,
        par: bool,
    ) -> Vec<Candidate> {
        // The model's prediction, where it is finite (a hostile block can overflow it).
        let predicted = model.and_then(|m| {
            let p = base::predict(m, block.values, block.shape);
            p.prediction.iter().all(|x| x.is_finite()).then_some(p)
        });
        let coders = self.config.residual.coders();
        // Estimates serve only to compare candidates: none where there is just one.
        let compare = coders.len() > 1 || predicted.is_some() || previous.is_some();
        let mut beat: Option<f64> = None;
        let mut out = Vec::new();
        // Without a base where the previous step's estimate leaves it a chance.
        let spatial = previous.is_none_or(|p| p.1);
        let bases = spatial
            .then_some(None)
            .into_iter()
            .chain(predicted.as_ref().map(|p| Some(Base::Model(p))))
            .chain(
                previous
                    .into_iter()
                    .flat_map(|p| p.0.iter().map(|(s, v)| Some(Base::Previous(*s, v)))),
            );
        let mut stage = |base: Option<Base>, out: &mut Vec<Candidate>| {
            for coder in coders {
                let stages = coder.stages(block, base, bound, par, beat);
                let compare = compare || stages.iter().map(|s| s.0.len()).sum::<usize>() > 1;
                let stagings = stages.into_iter().flat_map(|(stagings, errors, recon)| {
                    stagings
                        .into_iter()
                        .map(move |s| (s, errors, recon.clone()))
                });
                for (staged, errors, recon) in stagings {
                    let estimate = if compare { staged.estimate() } else { 0.0 };
                    // The coders after see what they would see without NGLR (their choices,
                    // and so the stream without the network, stay as they were).
                    if !staged.uses_nglr() {
                        beat = Some(beat.map_or(estimate, |b| b.min(estimate)));
                    }
                    let tables = match base {
                        None => 0,
                        Some(Base::Model(_)) => MODEL,
                        Some(Base::Previous(..)) => PREVIOUS,
                    } | if staged.uses_nglr() { NGLR } else { 0 };
                    out.push(Candidate {
                        staged,
                        errors,
                        tables,
                        estimate,
                        recon,
                    });
                }
            }
        };
        for base in bases {
            stage(base, &mut out);
        }
        // Where nothing could code over the previous step (GAE takes no such base; a hostile
        // step can make one that LBRC refuses), the block is still coded without a base
        // rather than stored exactly.
        if out.is_empty() && !spatial {
            stage(None, &mut out);
        }
        out
    }

    /// The tables forced into every block that can use them (`base=model`, `residual=nglr`).
    fn forced(&self) -> usize {
        let nglr = self.config.residual == crate::params::Residual::Nglr;
        (usize::from(self.config.force_model) * MODEL) | (usize::from(nglr) * NGLR)
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

/// The in-situ learners the configuration asks for (`train`, `train_nglr`); None where this
/// build cannot train.
#[allow(clippy::type_complexity)]
fn learners(
    config: &Config,
) -> Option<(
    Option<Arc<Learner<Model>>>,
    Option<Arc<Learner<nglr::Network>>>,
)> {
    let (model, net) = (config.train, config.train_nglr);
    #[cfg(feature = "train")]
    {
        let s = config.train_seconds;
        Some((
            (model > 0).then(|| Arc::new(Learner::new("base model", model, s, base::train::learn))),
            (net > 0).then(|| Arc::new(Learner::new("NGLR network", net, s, nglr::train::learn))),
        ))
    }
    #[cfg(not(feature = "train"))]
    (model == 0 && net == 0).then_some((None, None))
}
