//! The wavelet residual coder, for RMS targets (NRMSE, PSNR) on smooth blocks: a CDF 9/7
//! transform (`cdf97.rs`) in the layout of levels that the block's coefficients estimate
//! smaller (`layout.rs`), one uniform step for all its coefficients (the bands are nearly
//! orthonormal, so the coefficients' squared error is the values'), and the quantized
//! coefficients, in place, through the same integer coder as LBRC's residuals.
//!
//! Why next to LBRC: LBRC quantizes first, so every value carries its rounding noise, about a
//! bit per value that no predictor of the integers removes where the field is smooth at the
//! scale of the step. A transform spends its bits on the few coefficients that matter and
//! codes the rest as runs of zeros. It cannot bound every value's error cheaply, so point-wise
//! targets stay LBRC's. The codec tries both and keeps the smaller payload per block.
//!
//! Payload: offset f64 | step f64 | levels u8 (bit 7: the standard layout) | specials | coded
//! integers (the quantized coefficients in the block's shape). `doc/format.md` §5.10
//! specifies it.

mod cdf97;
mod fill;
mod gains;
mod layout;

use super::round::{float_of, half_away, int_of};
use super::specials;
use super::{decoded_bytes, BlockValues, Integers, OneStage, Recon, Staged};
use crate::bound::{unit_of, BlockBound, ErrorStats};
use crate::dtype::ElementType;
use crate::entropy::ints;
use crate::error::{try_vec, Error, Result};
use crate::format::payload::PayloadReader;
use crate::format::BlockKind;
use crate::pipeline::scratch;
use cdf97::Unscale;
use gains::Gains;
use layout::{Layout, MAX_LEVELS};

/// Levels the encoder uses (fewer where the block is too small; 3 to 6 cost within 0.1 % of
/// each other on ../shared/data).
const LEVELS: usize = 5;
/// Coefficients beyond this many steps make the float arithmetic inexact: such blocks are
/// LBRC's, and a stream that holds one is refused.
const MAX_Q: u64 = 1 << 50;
/// Shortest block the transform is tried on.
const MIN_VALUES: usize = 512;
/// Shortest block it is offered on next to LBRC in an array compressed once in several
/// blocks: the look at a block's coefficients costs a larger share of a small block's coding
/// (up to two thirds more), and with the default blocks of ../shared/data it never won on a
/// smaller one (2^15 and 47 000 values). Cut into 32^3 blocks, smooth fields gain on them
/// too: in situ, and where a small array is one block, smaller blocks are offered it
/// (`auto::MIN_IN_SERIES`).
pub(super) const MIN_OFFERED: usize = 1 << 16;
/// Except where the best coding so far spends less than this per value: there LBRC pays
/// mostly the rounding noise that the transform does not (the thin last slab, 1x181x360, of
/// a smooth synthetic geopotential-like field: 3.1 KB less of the field's 11.2 KB at 1e-4); no
/// block of ../shared/data below 2^16 values is coded in less.
const SMALL_BITS: f64 = 1.0;
/// Coefficients the step search estimates errors from (evenly spread over the block).
const SAMPLE: usize = 1 << 13;
/// How much more than the best coding so far the estimated bits may be for the coder to go on.
/// At 1.05 the standard layout's estimate let every block of era5_t2m through at 1e-4
/// (1.01-1.04 times LBRC's), and each was coded and lost (compression 2.3x slower); no block
/// of ../shared/data, the Gray-Scott steps or smooth synthetic fields changes at 1.0.
const TRY_MARGIN: f64 = 1.0;
/// The RMS error the first step aims at, of the budget.
const FIRST: f64 = 0.98;
/// And the steps after a verification.
const AIM: f64 = 0.99;
/// How much lower each recalibrated step that missed makes the next aim.
const MISS: f64 = 0.015;
/// Bits per value of the best coding so far below which the coder is not tried.
const LEAST_BITS: f64 = 0.1;
/// And above which: the largest at which it won on any block measured (../shared/data, and
/// Gray-Scott's steps at 1e-4 to 1e-6) was 5.5; there the residuals of a good predictor are
/// close to white at the step's scale, and the transform gains at most a fraction of a bit.
const MOST_BITS: f64 = 6.0;

/// The wavelet coder as a pipeline residual stage (over no base only).
pub(crate) struct Wavelet;

impl OneStage for Wavelet {
    fn stage(
        &self,
        block: &BlockValues,
        base: Option<super::Base>,
        bound: BlockBound,
        par: bool,
        beat: Option<f64>,
    ) -> Option<super::Stage> {
        let BlockBound::Rms(budget) = bound else {
            return None;
        };
        // Offered next to another coder (`beat`), on blocks large enough for the look at
        // their coefficients to pay, or that the other coder finds smooth; forced, on any it
        // can take.
        let n = block.values.len();
        let small = n < MIN_OFFERED && beat.is_some_and(|beat| beat >= SMALL_BITS);
        if base.is_some() || n < MIN_VALUES || small {
            return None;
        }
        if !may_beat(beat) {
            return None;
        }
        finish(block, budget, par, beat, look(block, budget)?)
    }
}

/// Whether the transform may beat the best coding so far (`beat` bits per value): below
/// `LEAST_BITS` that leaves too little to save, above `MOST_BITS` the transform has too little
/// to gain.
pub(super) fn may_beat(beat: Option<f64>) -> bool {
    beat.is_none_or(|beat| (LEAST_BITS..MOST_BITS).contains(&beat))
}

/// The wavelet's stage from the [`look`] at a block: the block's quantized coefficients for
/// the largest step whose actual reconstruction has an RMS error within `budget`, with that
/// reconstruction's errors. None where the look says it will not beat `beat`, or where no step
/// is found.
pub(super) fn finish(
    block: &BlockValues,
    budget: f64,
    par: bool,
    beat: Option<f64>,
    look: Look,
) -> Option<super::Stage> {
    let (ints, stats, recon) = encode(block, budget, par, beat, look)?;
    Some((
        vec![Staged::Ints(BlockKind::Wavelet, Vec::new(), ints)],
        stats,
        recon,
    ))
}

/// A look at a block's coefficients: the standard layout's at the first step, with their
/// estimated bits per value. None where the block has no finite value, no level fits its
/// shape, or its coefficients overflow.
pub(super) struct Look(Candidate);

impl Look {
    pub(super) fn estimate(&self) -> f64 {
        self.0.estimate
    }

    /// Its buffer back for the next block, where the coder goes no further.
    pub(super) fn drop_coefficients(self) {
        scratch::F64.give(self.0.c);
    }
}

/// The [`Look`] at `block` for an RMS error of `budget`.
pub(super) fn look(block: &BlockValues, budget: f64) -> Option<Look> {
    let (lo, hi) = block.range;
    let standard = Layout::standard(block.shape, LEVELS);
    if hi < lo || standard.levels() == 0 || !(budget.is_finite() && budget > 0.0) {
        return None;
    }
    let offset = block.dtype.round(crate::bound::midpoint(lo, hi));
    // The standard layout is looked at first: where a field is smooth at different scales
    // along different axes the dyadic one can cost many times its bits (15-25x in a sketch
    // over a smooth field with a steep vertical profile), while where the dyadic one wins
    // (localized detail) the standard one costs at most about a third more, so it still says
    // whether the transform may pay.
    Candidate::new(block, offset, budget, standard).map(Look)
}

/// [`finish`]'s integers and errors, and the element bytes of their verified reconstruction
/// where `block.recon` asks for them (a chain's next base: else the step is decoded for it).
fn encode(
    block: &BlockValues,
    budget: f64,
    par: bool,
    beat: Option<f64>,
    Look(first): Look,
) -> Option<(Integers, ErrorStats, Option<Recon>)> {
    let BlockValues {
        values,
        specials,
        shape,
        dtype,
        ..
    } = *block;
    let offset = first.offset;
    // The block's coefficients at the first step, estimated as every candidate's integers are,
    // say whether verifying and coding them (more than LBRC's whole stage costs) may pay.
    // Parts of a block, transformed alone, misjudged blocks whose detail is localized (a
    // Gray-Scott step by 1.4-4x in bits: the parts lay over its active region or off it, not
    // in the block's proportion). Then the dyadic layout, and the one estimated smaller is
    // coded.
    if beat.is_some_and(|beat| first.estimate >= TRY_MARGIN * beat) {
        scratch::F64.give(first.c);
        return None;
    }
    let Candidate {
        layout,
        c,
        search,
        mut step,
        ..
    } = match Candidate::new(block, offset, budget, Layout::dyadic(shape, LEVELS)) {
        Some(dyadic) if dyadic.estimate < first.estimate => {
            scratch::F64.give(first.c);
            dyadic
        }
        other => {
            other.into_iter().for_each(|d| scratch::F64.give(d.c));
            first
        }
    };
    let mut best: Option<(f64, ErrorStats, Vec<i64>, Vec<f64>)> = None;
    let mut aim = AIM;
    for pass in 0..5 {
        let q = quantize(&c, step)?;
        let (stats, rec) = verify(&q, step, offset, shape, &layout, values, dtype);
        let used = stats.rms() / budget;
        let ok = stats.meets(BlockBound::Rms(budget));
        let kept = if ok {
            best.replace((step, stats, q, rec)).map(|b| (b.2, b.3))
        } else {
            Some((q, rec))
        };
        kept.into_iter().for_each(|(q, rec)| {
            scratch::I64.give(q);
            scratch::F64.give(rec);
        });
        // Close enough, or a failure after a success (the grown step did not hold).
        if (ok && used > 0.97) || (!ok && best.is_some()) || !(used.is_finite() && used > 0.0) {
            break;
        }
        // The sample's error curve, calibrated by the actual error. Near the budget the error
        // is jagged in the step by a percent or so where the model is far off (on Gray-Scott
        // steps at 1e-6 it ran 30 % low, and recalibrated aims at 0.99 missed four times
        // running): each miss after the first aims lower.
        if !ok && pass > 0 {
            aim -= MISS;
        }
        let calibrated = used / search.used(step);
        step = match calibrated.is_finite() && calibrated > 0.0 {
            true => search.step(aim / calibrated).unwrap_or(step * aim / used),
            false => step * aim / used,
        };
    }
    scratch::F64.give(c);
    let (step, stats, q, rec) = best?;
    let recon = block
        .recon
        .then(|| decoded_bytes(values.len(), dtype, specials, rec.iter().copied()));
    scratch::F64.give(rec);
    let mut head = Vec::with_capacity(32);
    head.extend_from_slice(&offset.to_le_bytes());
    head.extend_from_slice(&step.to_le_bytes());
    head.push(layout_byte(&layout));
    specials.write(values.len(), dtype, &mut head);
    let ints = Integers {
        head,
        values: q,
        shape,
        par: par && values.len() >= super::lbrc::PAR_MIN,
        nglr: false,
    };
    Some((ints, stats, recon))
}

/// A layout's coefficients of a block, the step search over them, the first step and the
/// estimated bits per value of their integers at that step.
struct Candidate {
    offset: f64,
    layout: Layout,
    c: Vec<f64>,
    search: Search,
    step: f64,
    estimate: f64,
}

impl Candidate {
    fn new(block: &BlockValues, offset: f64, budget: f64, layout: Layout) -> Option<Candidate> {
        let shape = block.shape;
        let c = coefficients(block.values, offset, shape, &layout)?;
        let search = Search::new(&c, block, budget, &layout);
        let Some(step) = search.step(FIRST) else {
            scratch::F64.give(c);
            return None;
        };
        // Quantized where the estimate looks only: most blocks looked at stop here.
        let inv = 1.0 / step;
        let estimate = super::estimate(c.len(), shape, |at| {
            round_q((c[at] * inv).clamp(-(MAX_Q as f64), MAX_Q as f64))
        });
        Some(Candidate {
            offset,
            layout,
            c,
            search,
            step,
            estimate,
        })
    }
}

/// The payload's levels byte: the layout's levels, and the standard layout's flag.
fn layout_byte(layout: &Layout) -> u8 {
    let flag = match layout {
        Layout::Dyadic(_) => 0,
        Layout::Standard(_) => STANDARD,
    };
    layout.levels() as u8 | flag
}

/// The levels byte's flag of the standard layout, from format version [`LAYOUT_VERSION`] on.
const STANDARD: u8 = 0x80;
/// The first format version whose wavelet blocks may use the standard layout.
const LAYOUT_VERSION: u16 = 10;
/// The first format version whose inverse transform unscales by multiplication.
const UNSCALE_VERSION: u16 = 11;

/// The inverse transform's unscaling in streams of `version`.
const fn unscale(version: u16) -> Unscale {
    if version >= UNSCALE_VERSION {
        Unscale::Multiply
    } else {
        Unscale::Divide
    }
}

/// The unscaling of the streams the encoder writes, which its verification reconstructs.
const WRITTEN: Unscale = unscale(crate::format::FORMAT_VERSION);

/// The wavelet coefficients of `values` less `offset` (special values bridged by their
/// neighbours: they are overwritten on decoding, see `fill`); None where they overflow.
fn coefficients(
    values: &[f64],
    offset: f64,
    shape: [usize; 3],
    layout: &Layout,
) -> Option<Vec<f64>> {
    let mut c = scratch::F64.take(values.len());
    c.extend(
        values
            .iter()
            .map(|&x| if x.is_finite() { x - offset } else { f64::NAN }),
    );
    // Only special values may be filled: a difference that overflowed is no gap.
    if (values.iter().zip(&c)).any(|(x, d)| x.is_finite() && !d.is_finite()) {
        scratch::F64.give(c);
        return None;
    }
    fill::fill_masked(&mut c, shape);
    layout::forward(&mut c, shape, layout);
    if c.iter().all(|v| v.is_finite()) {
        return Some(c);
    }
    scratch::F64.give(c);
    None
}

/// The step search's model of the reconstruction's error: a sample of the coefficients spread
/// evenly over the block, each with its gain (the squared error it brings to the values), whose
/// mean squared error is taken as the values' (special values' positions included: the error
/// spreads over them too). What it leaves out (the errors' correlations, rounding to the
/// element type) the verification measures, and the model is calibrated by it.
struct Search {
    sample: Vec<(f64, f64)>,
    budget: f64,
    /// 1 / [`unit_of`] the budget: the errors' unit (their squares stay representable).
    inv_unit: f64,
    /// The sample's squared error at the full budget, in units.
    full: f64,
}

impl Search {
    fn new(c: &[f64], block: &BlockValues, budget: f64, layout: &Layout) -> Search {
        let shape = block.shape;
        // An odd stride: an even one lines up with the bands' layout (every 32nd coefficient
        // of a block 64 wide is two columns, one of the lowest band and one of the finest).
        let stride = c.len().div_ceil(SAMPLE) | 1;
        let gains = Gains::new(shape, layout);
        let inv_unit = 1.0 / unit_of(budget);
        let sample: Vec<(f64, f64)> = (0..c.len())
            .step_by(stride)
            .map(|i| {
                let pos = [
                    i / (shape[1] * shape[2]),
                    (i / shape[2]) % shape[1],
                    i % shape[2],
                ];
                (c[i], gains.at(pos, layout))
            })
            .collect();
        Search {
            full: (budget * inv_unit) * (budget * inv_unit) * sample.len() as f64,
            sample,
            budget,
            inv_unit,
        }
    }

    /// The RMS error `step` is predicted to give, over the budget.
    fn used(&self, step: f64) -> f64 {
        let inv = 1.0 / step;
        let error = |&(v, w): &(f64, f64)| {
            let t = v * inv;
            // Beyond the quantizer's limit the error counts as huge: it refuses such a step.
            let d = (t - half_away(t.clamp(-(MAX_Q as f64), MAX_Q as f64))) * step * self.inv_unit;
            w * d * d
        };
        // Four sums side by side: one chain of dependent additions ran at a quarter of the
        // speed, twelve times per step searched.
        let chunks = self.sample.chunks_exact(4);
        let mut sq: f64 = chunks.remainder().iter().map(error).sum();
        let mut lanes = [0.0; 4];
        for c in chunks {
            for (l, x) in lanes.iter_mut().zip(c) {
                *l += error(x);
            }
        }
        sq += (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
        (sq / self.full).sqrt()
    }

    /// The largest step predicted to use at most `aim` of the budget (the error grows with
    /// the step, about monotonically: bisection in log scale from the budget, where every
    /// error is below it, to 1024 times it).
    fn step(&self, aim: f64) -> Option<f64> {
        let (mut lo, mut hi) = (self.budget, self.budget * 1024.0);
        if !(hi.is_finite() && lo > 0.0) || self.used(lo) > aim {
            return None;
        }
        // The geometric mean in units (exact: the same steps, but no product under- or
        // overflows at budgets of 1e-160 or 1e160).
        let unit = 1.0 / self.inv_unit;
        for _ in 0..12 {
            let mid = ((lo * self.inv_unit) * (hi * self.inv_unit)).sqrt() * unit;
            if self.used(mid) <= aim {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(lo)
    }
}

/// `t` rounded half away from zero (any integer would do, as the reconstruction is verified;
/// a wider zero zone measured no better), for |t| <= [`MAX_Q`].
#[inline(always)]
fn round_q(t: f64) -> i64 {
    int_of(half_away(t))
}

/// The integers of the coefficients `c` for `step`, or None where one gets too large (checked
/// after the loop, which an early exit kept out of vector registers).
fn quantize(c: &[f64], step: f64) -> Option<Vec<i64>> {
    let inv = 1.0 / step;
    let mut q = scratch::I64.take(c.len());
    let mut over = false;
    q.extend(c.iter().map(|&v| {
        let t = v * inv;
        over |= (t.abs() > MAX_Q as f64) | t.is_nan();
        round_q(t.clamp(-(MAX_Q as f64), MAX_Q as f64))
    }));
    if over {
        scratch::I64.give(q);
        return None;
    }
    Some(q)
}

/// The reconstruction the decoder will make from the integers `q` of `step` (its special
/// values aside), in a buffer from the pool, and its errors against `values`.
fn verify(
    q: &[i64],
    step: f64,
    offset: f64,
    shape: [usize; 3],
    layout: &Layout,
    values: &[f64],
    dtype: ElementType,
) -> (ErrorStats, Vec<f64>) {
    let mut rec = synthesize(q, step, shape, layout, WRITTEN);
    rec.iter_mut().for_each(|v| *v = dtype.round(*v + offset));
    (ErrorStats::between(values, &rec, unit_of(step)), rec)
}

/// What the decoder makes of the integers `q` (at most [`MAX_Q`] in magnitude, as the
/// quantizer and the decoder's check make them) of `step` before the offset is added and the
/// element type rounds them (`doc/format.md` §5.10, steps 1 and 2), in a buffer from the pool
/// (page faults in fresh ones were a sixth of decoding a block).
fn synthesize(q: &[i64], step: f64, shape: [usize; 3], layout: &Layout, undo: Unscale) -> Vec<f64> {
    let mut x = scratch::F64.take(q.len());
    x.extend(q.iter().map(|&v| float_of(v) * step));
    layout::inverse(&mut x, shape, layout, undo);
    x
}

/// What a payload holds before its coded integers.
struct Head {
    offset: f64,
    step: f64,
    layout: Layout,
    specials: Vec<(usize, u64)>,
}

/// Reads a payload's head; `full`: its special values too (else they are only skipped, for
/// [`max_values`]).
fn read_head(
    r: &mut PayloadReader,
    shape: [usize; 3],
    dtype: ElementType,
    version: u16,
    full: bool,
) -> Result<Head> {
    let offset = f64::from_le_bytes(r.bytes(8)?.try_into().unwrap());
    let step = f64::from_le_bytes(r.bytes(8)?.try_into().unwrap());
    if !(step.is_finite() && step > 0.0 && offset.is_finite()) {
        return Err(Error::corrupt("bad wavelet step or offset"));
    }
    let byte = r.bytes(1)?[0];
    // Before version 10 the byte is the count alone (a set high bit: too many levels).
    let standard = version >= LAYOUT_VERSION && byte & STANDARD != 0;
    let count = usize::from(if standard { byte & !STANDARD } else { byte });
    let layout = match standard {
        true => Layout::standard(shape, count.min(MAX_LEVELS)),
        false => Layout::dyadic(shape, count.min(MAX_LEVELS)),
    };
    if count == 0 || layout.levels() != count {
        return Err(Error::corrupt(format!(
            "{count} wavelet levels ({layout:?}) for a block of {shape:?}"
        )));
    }
    let n = shape.iter().product();
    let specials = match full {
        true => specials::read(r, n, dtype, version)?,
        false => specials::skip(r, n, dtype, version).map(|_| Vec::new())?,
    };
    Ok(Head {
        offset,
        step,
        layout,
        specials,
    })
}

/// The most values a payload of [`decode`] can hold (`None`: no limit), from its head and its
/// coder's tables alone.
pub(crate) fn max_values(
    payload: &[u8],
    shape: [usize; 3],
    dtype: ElementType,
    version: u16,
) -> Result<Option<u64>> {
    let mut r = PayloadReader::new(payload);
    read_head(&mut r, shape, dtype, version, false)?;
    ints::max_values(r.rest())
}

/// Decodes a wavelet block into its little-endian element bytes.
pub fn decode(
    payload: &[u8],
    shape: [usize; 3],
    dtype: ElementType,
    version: u16,
) -> Result<Vec<u8>> {
    let mut r = PayloadReader::new(payload);
    let head = read_head(&mut r, shape, dtype, version, true)?;
    // Decoded (and so checked against what the payload can hold) before anything else of the
    // block's size is allocated.
    let q = ints::decode(r.rest(), shape)?;
    if q.iter().any(|v| v.unsigned_abs() > MAX_Q) {
        return Err(Error::corrupt("wavelet coefficient out of range"));
    }
    let n = q.len();
    let mut out = try_vec::<u8>(n * dtype.size(), "a decoded block")?;
    let rec = synthesize(&q, head.step, shape, &head.layout, unscale(version));
    scratch::I64.give(q);
    // The offset added and the sum rounded to the element type as the bytes are written (one
    // pass, and no dispatch on the type per value).
    let offset = head.offset;
    match dtype {
        ElementType::F32 => {
            for (d, &v) in out.chunks_exact_mut(4).zip(&rec) {
                d.copy_from_slice(&((v + offset) as f32).to_le_bytes());
            }
        }
        ElementType::F64 => {
            for (d, &v) in out.chunks_exact_mut(8).zip(&rec) {
                d.copy_from_slice(&(v + offset).to_le_bytes());
            }
        }
    }
    scratch::F64.give(rec);
    for (i, bits) in head.specials {
        dtype.put_bits(&mut out, i, bits);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
