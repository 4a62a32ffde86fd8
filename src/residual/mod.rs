//! The residual stage: what fixes fidelity after the base prediction ([`Base`]: none, the base
//! model's, or the previous step's reconstruction). Each coder is a [`ResidualCoder`]: LBRC is ours ([`lbrc`], its integers predicted
//! by a [`predict`] predictor and finished by an integer coder in the pipeline's second stage);
//! GAE ([`gae`]) the baseline it replaces.

mod auto;
pub mod gae;
pub mod lbrc;
pub(crate) mod predict;
pub(crate) mod round;
mod specials;
pub mod wavelet;

use crate::base::BasePrediction;
use crate::bound::{BlockBound, ErrorStats};
use crate::dtype::ElementType;
use crate::entropy::ints;
use crate::format::BlockKind;
use crate::params::{IntCoder, Residual};
pub(crate) use auto::{LookHint, LookHints};
use predict::nglr::Network;
pub(crate) use specials::Specials;
use std::sync::Arc;

/// A block after the residual stage.
pub(crate) enum Staged {
    /// Its finished payload, of a kind.
    Done(BlockKind, Vec<u8>),
    /// Integers waiting for their integer coder; the payload is the prefix, then them.
    Ints(BlockKind, Vec<u8>, Integers),
}

/// The NGLR network LBRC may predict with, and whether it must (`residual=nglr`).
#[derive(Debug)]
pub(crate) struct NglrUse {
    pub net: Arc<Network>,
    pub force: bool,
}

impl Staged {
    /// Whether decoding it needs the stream's NGLR network.
    pub(crate) fn uses_nglr(&self) -> bool {
        matches!(self, Staged::Ints(_, _, i) if i.nglr)
    }

    /// Estimated bits per value of its payload (0 for a finished one: only constant blocks
    /// and GAE's are finished this early, and neither is worth challenging by estimate).
    pub(crate) fn estimate(&self) -> f64 {
        match self {
            Staged::Done(..) => 0.0,
            Staged::Ints(_, _, ints) => ints.estimate(),
        }
    }

    /// The pipeline's second stage: the block's kind and payload.
    pub(crate) fn finish(self, coder: IntCoder) -> (BlockKind, Vec<u8>) {
        match self {
            Staged::Done(kind, payload) => (kind, payload),
            Staged::Ints(kind, mut prefix, residuals) => {
                if prefix.is_empty() {
                    return (kind, residuals.finish(coder));
                }
                prefix.extend_from_slice(&residuals.finish(coder));
                (kind, prefix)
            }
        }
    }
}

/// A block's integers (LBRC's prediction residuals, the wavelet's quantized coefficients) in
/// the layout of its shape, after the head of their payload, waiting for their integer coder.
pub(crate) struct Integers {
    pub head: Vec<u8>,
    pub values: Vec<i64>,
    pub shape: [usize; 3],
    pub par: bool,
    /// Predicted with the stream's NGLR network.
    pub nglr: bool,
}

/// Integers sampled for an estimate of their cost: about this many.
const ESTIMATE_SAMPLE: usize = 1 << 13;

/// Estimated bits per value of coding the `n` integers of a block of `shape` (`r(at)` the one
/// at `at`): [`ints::estimate_bits`] on a sample, at an odd stride so that the sample does not
/// line up with rows.
pub(crate) fn estimate(n: usize, shape: [usize; 3], r: impl Fn(usize) -> i64) -> f64 {
    let stride = (n / ESTIMATE_SAMPLE).max(1) | 1;
    let (bits, count) = ints::estimate_bits(r, shape, (0..n).step_by(stride));
    bits / count.max(1) as f64
}

impl Integers {
    /// [`estimate`] of these integers.
    pub(crate) fn estimate(&self) -> f64 {
        estimate(self.values.len(), self.shape, |at| self.values[at])
    }

    /// The integer-coding stage: the block's payload.
    pub(crate) fn finish(mut self, coder: IntCoder) -> Vec<u8> {
        coder.encode(&self.values, self.shape, &mut self.head, self.par);
        std::mem::take(&mut self.head)
    }
}

impl Drop for Integers {
    /// The integers' buffer goes back for the next block (coded or not).
    fn drop(&mut self) {
        crate::pipeline::scratch::I64.give(std::mem::take(&mut self.values));
    }
}

/// The prediction a residual is coded over.
#[derive(Clone, Copy)]
pub(crate) enum Base<'a> {
    /// The base model's, carried in the block's payload as its latents.
    Model(&'a BasePrediction),
    /// The previous step's reconstruction of the block (temporal prediction), which the reader
    /// keeps, smoothed and scaled as the code says (`base::previous::base`): the code is the
    /// payload's first byte. Its non-finite values are 0.
    Previous(u8, &'a [f64]),
}

impl Base<'_> {
    pub(crate) fn prediction(&self) -> &[f64] {
        match self {
            Base::Model(b) => &b.prediction,
            Base::Previous(_, p) => p,
        }
    }
}

/// A lossy block as the residual coders see it.
pub(crate) struct BlockValues<'a> {
    /// Its values widened to f64, in C order; the special values are non-finite here.
    pub values: &'a [f64],
    pub specials: &'a Specials,
    pub shape: [usize; 3],
    pub dtype: ElementType,
    /// The NGLR network LBRC may use.
    pub nglr: Option<&'a NglrUse>,
    /// Whether the caller wants the reconstruction's element bytes (a chain of steps keeps
    /// them as the next step's base).
    pub recon: bool,
    /// What the wavelet's look at the same block said at the previous step of a series (in
    /// situ), and where this step's goes.
    pub look: Option<&'a LookHint>,
    /// The block is the whole array (a small array's one block is offered the wavelet as a
    /// series' blocks are, see `auto`).
    pub whole: bool,
    /// The least and greatest finite values ([`crate::bound::finite_min_max_of`]), found once
    /// for the coders that set their offset by them.
    pub range: (f64, f64),
}

impl<'a> BlockValues<'a> {
    /// A block of `values` (with their special values `specials`), coded without NGLR and
    /// without keeping the reconstruction.
    pub(crate) fn new(
        values: &'a [f64],
        specials: &'a Specials,
        shape: [usize; 3],
        dtype: ElementType,
    ) -> BlockValues<'a> {
        BlockValues {
            values,
            specials,
            shape,
            dtype,
            nglr: None,
            recon: false,
            look: None,
            whole: false,
            range: crate::bound::finite_min_max_of(values),
        }
    }
}

/// What a coder made of a block: its stagings (several for one reconstruction: LBRC with and
/// without NGLR), the errors of their verified reconstruction, and where asked for and at hand,
/// the reconstruction's element bytes as the decoder forms them.
pub(crate) type Stage = (Vec<Staged>, ErrorStats, Option<Recon>);

/// A block's reconstruction as element bytes.
pub(crate) type Recon = Arc<Vec<u8>>;

/// The element bytes of a block of `n` values that decodes to `values` (already rounded
/// through the element type) and to its special values' own bits where they are.
pub(crate) fn decoded_bytes(
    n: usize,
    dtype: ElementType,
    specials: &Specials,
    values: impl Iterator<Item = f64>,
) -> Recon {
    let mut out = vec![0u8; n * dtype.size()];
    match dtype {
        ElementType::F32 => (out.chunks_exact_mut(4).zip(values))
            .for_each(|(o, v)| o.copy_from_slice(&(v as f32).to_le_bytes())),
        ElementType::F64 => (out.chunks_exact_mut(8).zip(values))
            .for_each(|(o, v)| o.copy_from_slice(&v.to_le_bytes())),
    }
    specials.restore(&mut out, dtype);
    Arc::new(out)
}

/// A way of coding a block's values within an error bound, in one stage.
pub(crate) trait OneStage: Sync {
    /// Codes `block` as `base`'s prediction (None: zero) plus a residual within `bound`, with
    /// the errors of the verified reconstruction. None where it cannot: lossless coding takes
    /// the block. `par` lets it use the current rayon pool (the output is the same either
    /// way). `beat`, the estimated bits per value of the best coding staged so far, lets a
    /// coder give up early where its own estimate is clearly worse. Several stagings of one
    /// reconstruction (LBRC with and without NGLR) come as several entries.
    fn stage(
        &self,
        block: &BlockValues,
        base: Option<Base>,
        bound: BlockBound,
        par: bool,
        beat: Option<f64>,
    ) -> Option<Stage>;
}

/// What the pipeline tries on a block: one coder ([`OneStage`]) or several, each staging the
/// block ([`auto`]).
pub(crate) trait ResidualCoder: Sync {
    /// Every stage made of `block`, in the order made (see [`OneStage::stage`]).
    fn stages(
        &self,
        block: &BlockValues,
        base: Option<Base>,
        bound: BlockBound,
        par: bool,
        beat: Option<f64>,
    ) -> Vec<Stage>;
}

impl<T: OneStage> ResidualCoder for T {
    fn stages(
        &self,
        block: &BlockValues,
        base: Option<Base>,
        bound: BlockBound,
        par: bool,
        beat: Option<f64>,
    ) -> Vec<Stage> {
        self.stage(block, base, bound, par, beat)
            .into_iter()
            .collect()
    }
}

/// A coder staged only where none before it staged the block.
struct Fallback(&'static dyn ResidualCoder);

impl ResidualCoder for Fallback {
    fn stages(
        &self,
        block: &BlockValues,
        base: Option<Base>,
        bound: BlockBound,
        par: bool,
        beat: Option<f64>,
    ) -> Vec<Stage> {
        match beat {
            None => self.0.stages(block, base, bound, par, None),
            Some(_) => Vec::new(),
        }
    }
}

impl Residual {
    /// The coders this setting tries on each block (the smallest payload wins).
    pub(crate) fn coders(self) -> &'static [&'static dyn ResidualCoder] {
        match self {
            Residual::Auto => &[&auto::Auto],
            // NGLR is LBRC with one more predictor.
            Residual::Lbrc | Residual::Nglr => &[&lbrc::Lbrc],
            // LBRC takes the blocks the wavelet cannot (too small, or no step meets the bound).
            Residual::Wavelet => &[&wavelet::Wavelet, &Fallback(&lbrc::Lbrc)],
            Residual::Gae => &[&gae::Gae],
        }
    }
}
