//! LBRC's quantizer: the largest step whose actual reconstruction meets the block's bound,
//! and the block's integers for it.

use crate::bound::{initial_step, unit_of, BlockBound, ErrorStats};
use crate::dtype::ElementType;
use crate::pipeline::{scratch, wide};
use crate::residual::round::{half_away, int_of};
use rayon::prelude::*;

/// Integers beyond this make the float arithmetic inexact: such blocks are left to lossless.
const MAX_Q: f64 = (1u64 << 50) as f64;

pub(super) fn reconstruct(offset: f64, step: f64, q: i64, dtype: ElementType) -> f64 {
    dtype.round(offset + q as f64 * step)
}

/// The reconstruction on top of a base model's prediction `b`: the base plus the quantized
/// residual, rounded through the element type.
pub(super) fn reconstruct_on(b: f64, offset: f64, step: f64, q: i64, dtype: ElementType) -> f64 {
    dtype.round(b + (offset + q as f64 * step))
}

/// Values per quantization chunk: chunks run in parallel, and their error sums are added in
/// chunk order, so the step chosen never depends on the thread count.
const Q_CHUNK: usize = 1 << 14;

/// The sample a step over a base is refined on: every this many values.
const REFINE_STRIDE: usize = 13;

/// Values sampled by [`plateau`].
const PLATEAU_SAMPLE: usize = 1024;

/// Where the quantizer's lattice sits when the block has a plateau: many values at or very
/// near one level (no rain, a background or rest state, a clipped value; over a base, a region
/// the base predicts exactly). With a lattice point on that level they reconstruct (nearly)
/// exactly and the error budget goes to the other values; with the lattice anywhere else each
/// of them costs up to half a step of error, and which share of the bound they take swings
/// with the step. The level: the median of the densest window of a quarter of `step` in a
/// sample of the residuals, where that window holds at least an eighth of the sample.
pub(in crate::residual) fn plateau(values: &[f64], base: Option<&[f64]>, step: f64) -> Option<f64> {
    // Odd: a stride that is a multiple of the rows would sample one column.
    let every = (values.len() / PLATEAU_SAMPLE) | 1;
    let mut r: Vec<f64> = match base {
        None => values.iter().step_by(every).copied().collect(),
        Some(b) => (values.iter().zip(b).step_by(every))
            .map(|(&x, &b)| x - b)
            .collect(),
    };
    r.retain(|x| x.is_finite());
    if r.len() < 64 || step.is_nan() || step < 0.0 {
        return None;
    }
    r.sort_unstable_by(f64::total_cmp);
    let width = 0.25 * step;
    let (mut best, mut at, mut j) = (0, 0, 0);
    for i in 0..r.len() {
        while j < r.len() && r[j] - r[i] <= width {
            j += 1;
        }
        if j - i > best {
            (best, at) = (j - i, i);
        }
    }
    (best * 8 >= r.len()).then(|| r[at + best / 2])
}

/// Quantizes with `step`, filling `q`; returns the errors, or None if the integers get too large
/// or the step is not a finite positive number (the decoder refuses it, and 0·∞ would make
/// NaN reconstructions that the error sums cannot see).
pub(super) fn quantize(
    values: &[f64],
    base: Option<&[f64]>,
    offset: f64,
    step: f64,
    dtype: ElementType,
    q: &mut Vec<i64>,
    par: bool,
) -> Option<ErrorStats> {
    if !(step.is_finite() && step > 0.0) {
        return None;
    }
    q.resize(values.len(), 0);
    let run = |(i, (v, q)): (usize, (&[f64], &mut [i64]))| {
        let b = base.map(|b| &b[i * Q_CHUNK..i * Q_CHUNK + v.len()]);
        quantize_chunk(v, b, offset, step, dtype, q)
    };
    let stats: Vec<Option<ErrorStats>> = if par && values.len() > Q_CHUNK {
        let chunks = values.par_chunks(Q_CHUNK).zip(q.par_chunks_mut(Q_CHUNK));
        chunks.enumerate().map(run).collect()
    } else {
        let chunks = values.chunks(Q_CHUNK).zip(q.chunks_mut(Q_CHUNK));
        chunks.enumerate().map(run).collect()
    };
    stats
        .into_iter()
        .try_fold(ErrorStats::new(unit_of(step)), |mut all, s| {
            all.merge(&s?);
            Some(all)
        })
}

fn quantize_chunk(
    values: &[f64],
    base: Option<&[f64]>,
    offset: f64,
    step: f64,
    dtype: ElementType,
    q: &mut [i64],
) -> Option<ErrorStats> {
    match (base, dtype) {
        (Some(base), _) => quantize_chunk_on(values, base, offset, step, dtype, q),
        (None, ElementType::F32) => quantize_f32(values, offset, step, q),
        (None, ElementType::F64) => quantize_f64(values, offset, step, q),
    }
}

wide! {
    /// [`quantize_plain`] of f32 values, in wider vectors where the CPU has them (with AVX-512,
    /// about 40 % of the time on a late Gray-Scott step's blocks).
    fn quantize_f32(values: &[f64], offset: f64, step: f64, q: &mut [i64]) -> Option<ErrorStats> {
        quantize_plain(values, offset, step, q, |v| v as f32 as f64)
    }
}

wide! {
    /// [`quantize_f32`] of f64 values.
    fn quantize_f64(values: &[f64], offset: f64, step: f64, q: &mut [i64]) -> Option<ErrorStats> {
        quantize_plain(values, offset, step, q, |v| v)
    }
}

/// One value of [`quantize_plain`]: its integer, its reconstruction's error (0 where `x` is
/// not finite), and whether it is finite and whether its integer is too large.
/// The integer rounds half away from zero (any integer would do, as the reconstruction is
/// verified; this one keeps the bytes).
#[inline(always)]
fn quantize_one(
    x: f64,
    offset: f64,
    step: f64,
    inv: f64,
    round: impl Fn(f64) -> f64,
) -> (i64, f64, bool, bool) {
    let t = (x - offset) * inv;
    let r = half_away(t);
    let finite = x.is_finite();
    // The reconstruction is finite or ±inf (never NaN): an infinite error fails any bound.
    let d = (x - round(offset + r * step)).abs();
    let d = if finite { d } else { 0.0 };
    // `&`, not `&&`: a branch here kept the lanes out of vector registers (1.6-2.5x the time).
    (int_of(r), d, finite, finite & (t.abs() > MAX_Q))
}

/// The plain quantizer's loop (no base), in lanes that the compiler keeps in vector
/// registers: each value on its own, the error sums per lane (one chain of dependent
/// additions, and a branch per value, ran at a fraction of the speed). Non-finite values then
/// repeat their predecessor, so they cost little in the Lorenzo field.
#[inline(always)]
fn quantize_plain(
    values: &[f64],
    offset: f64,
    step: f64,
    q: &mut [i64],
    round: impl Fn(f64) -> f64 + Copy,
) -> Option<ErrorStats> {
    const LANES: usize = 4;
    let inv = 1.0 / step;
    // Errors are measured in units of the step (`unit_of`): about 1, whatever the magnitude.
    let unit = unit_of(step);
    let inv_unit = 1.0 / unit;
    let (mut count, mut over) = ([0usize; LANES], [false; LANES]);
    let (mut sq, mut max) = ([0.0f64; LANES], [0.0f64; LANES]);
    // Value `x` into lane `l`, its integer into `qv`.
    let mut lane = |l: usize, x: f64, qv: &mut i64| {
        let (qi, d, finite, big) = quantize_one(x, offset, step, inv, round);
        *qv = qi;
        sq[l] += (d * inv_unit) * (d * inv_unit);
        max[l] = if d > max[l] { d } else { max[l] };
        count[l] += usize::from(finite);
        over[l] |= big;
    };
    let mut xs = values.chunks_exact(LANES);
    let mut qs = q.chunks_exact_mut(LANES);
    for (x, qv) in (&mut xs).zip(&mut qs) {
        for l in 0..LANES {
            lane(l, x[l], &mut qv[l]);
        }
    }
    for (l, (&x, qv)) in xs.remainder().iter().zip(qs.into_remainder()).enumerate() {
        lane(l, x, qv);
    }
    if over.iter().any(|&o| o) {
        return None;
    }
    let count = count.iter().sum();
    if count < values.len() {
        let mut prev = 0;
        for (&x, qv) in values.iter().zip(q.iter_mut()) {
            if x.is_finite() {
                prev = *qv;
            } else {
                *qv = prev;
            }
        }
    }
    Some(ErrorStats {
        count,
        sum_sq: (sq[0] + sq[1]) + (sq[2] + sq[3]),
        max_abs: max.into_iter().fold(0.0, f64::max),
        unit,
    })
}

/// [`quantize_chunk`] of the residual over a base prediction (kept apart: the plain loop is
/// the hot path).
fn quantize_chunk_on(
    values: &[f64],
    base: &[f64],
    offset: f64,
    step: f64,
    dtype: ElementType,
    q: &mut [i64],
) -> Option<ErrorStats> {
    let inv = 1.0 / step;
    let mut prev = 0i64;
    let mut stats = ErrorStats::new(unit_of(step));
    for ((&x, &b), qv) in values.iter().zip(base).zip(q.iter_mut()) {
        if x.is_finite() {
            let t = (x - b - offset) * inv;
            if t.abs() > MAX_Q || t.is_nan() {
                return None;
            }
            prev = (t + 0.5f64.copysign(t)) as i64;
            stats.add(x, reconstruct_on(b, offset, step, prev, dtype));
        }
        *qv = prev;
    }
    Some(stats)
}

/// How much of `bound` the errors use (1: all of it).
fn used(stats: &ErrorStats, bound: BlockBound) -> f64 {
    match bound {
        BlockBound::Rms(r) => stats.rms() / r,
        BlockBound::Max(m) => stats.max_abs / m,
        BlockBound::Lossless => 1.0,
    }
}

/// The share of the bound that a first step's errors must leave unused for [`choose_step`] to
/// try a larger one.
pub(in crate::residual) const GROW_BELOW: f64 = 0.9;

/// The larger step tried after `step` used `used` of the bound (errors scale about linearly
/// with the step; at most 8x).
pub(in crate::residual) fn grown(step: f64, used: f64) -> f64 {
    (step * (0.97 / used.max(1e-3)).min(8.0)).min(f64::MAX)
}

/// Picks a large step whose actual reconstruction meets `bound`: the uniform quantizer's
/// estimate (over a base at RMS targets, the step searched on a sample instead), shrunk until
/// it holds, or grown by the headroom its measured error leaves (errors scale about linearly
/// with the step); at RMS targets, where more than 10 % of the bound is left, the largest step
/// below the one that failed is searched on a sample. Returns the step and its integers, or
/// None if no step works (the block is then coded losslessly).
pub(super) fn choose_step(
    values: &[f64],
    base: Option<&[f64]>,
    offset: f64,
    bound: BlockBound,
    dtype: ElementType,
    par: bool,
) -> Option<(f64, Vec<i64>, ErrorStats)> {
    let mut step = initial_step(bound);
    if !(step.is_finite() && step > 0.0) {
        return None;
    }
    let searched = match (base, bound) {
        (Some(_), BlockBound::Rms(rms)) => {
            sampled_step(values, base, offset, rms, step, None, dtype)
        }
        _ => None,
    };
    step = searched.unwrap_or(step);
    let mut q = scratch::I64.take(values.len());
    let mut tries = 0;
    // The smallest step known to fail.
    let mut failed = None;
    let stats = loop {
        match quantize(values, base, offset, step, dtype, &mut q, par) {
            Some(s) if s.meets(bound) => break s,
            None => return None,
            Some(_) if tries >= 40 => return None,
            Some(s) => {
                failed = Some(step);
                // Errors scale about linearly with the step: aim just under the bound first,
                // then back off harder if rounding or coarse data keep it failing.
                let over = used(&s, bound);
                step *= match tries {
                    0 if over.is_finite() => 0.9995 / over,
                    0..=3 => 0.97,
                    _ => 0.5,
                };
                // Near f64::MAX a bound's step can overflow: stay finite.
                step = step.min(f64::MAX);
                tries += 1;
            }
        }
    };
    let headroom = used(&stats, bound);
    let rms = match bound {
        BlockBound::Rms(r) => Some(r),
        _ => None,
    };
    // Within 10 % of the bound, or searched already, or nothing left to try (a point-wise
    // bound's step after a failure): done, without a second buffer.
    if searched.is_some() || headroom > GROW_BELOW || (tries > 0 && rms.is_none()) {
        return Some((step, q, stats));
    }
    let mut q2 = scratch::I64.take(values.len());
    if tries == 0 {
        // Coarse or clustered data: the error stays well below the bound, so a larger step
        // may hold.
        let grown = grown(step, headroom);
        match quantize(values, base, offset, grown, dtype, &mut q2, par) {
            Some(s) if s.meets(bound) => {
                scratch::I64.give(q);
                return Some((grown, q2, s));
            }
            _ => failed = Some(grown),
        }
    }
    // At RMS targets the error can be far from linear in the step (values on a storage
    // lattice, in clusters, or small against the step): the largest step that holds, between
    // this one and the one that failed, is searched on a sample.
    let between = rms
        .and_then(|r| sampled_step(values, base, offset, r, step, failed, dtype))
        .filter(|&s| s > 1.005 * step);
    if let Some(s) = between {
        if let Some(e) = quantize(values, base, offset, s, dtype, &mut q2, par) {
            if e.meets(bound) {
                scratch::I64.give(q);
                return Some((s, q2, e));
            }
        }
    }
    scratch::I64.give(q2);
    Some((step, q, stats))
}

/// Where the error is far from linear in the step (over a base the residuals are small
/// against it; values on a lattice or in clusters make it jump), the uniform quantizer's step
/// `first` can leave half the bound unused. The largest step (up to `failed`, a step known to
/// fail, or else 8 times `first`) whose RMS error on a sample of the values (every
/// [`REFINE_STRIDE`]th: its RMS error is about the block's) stays a little under `rms`, by
/// secant steps kept inside the bracket found so far (plain arithmetic: no libm, so every
/// machine picks the same step). None for blocks too small to sample, or where no step met the
/// aim.
fn sampled_step(
    values: &[f64],
    base: Option<&[f64]>,
    offset: f64,
    rms: f64,
    first: f64,
    failed: Option<f64>,
    dtype: ElementType,
) -> Option<f64> {
    if values.len() < 8 * REFINE_STRIDE {
        return None;
    }
    let pick = |v: &[f64]| -> Vec<f64> { v.iter().step_by(REFINE_STRIDE).copied().collect() };
    let (sv, sb) = (pick(values), base.map(pick));
    let aim = BlockBound::Rms(0.97 * rms);
    let mut sq = Vec::with_capacity(sv.len());
    // (step, share of the aim used) of the largest step that met the aim and of the smallest
    // that failed.
    let mut lo: Option<(f64, f64)> = None;
    let mut hi: Option<(f64, f64)> = failed.map(|f| (f, f64::INFINITY));
    let (top, bottom) = (failed.unwrap_or(8.0 * first), first / 8.0);
    let mut s = first;
    for _ in 0..8 {
        let u = quantize(&sv, sb.as_deref(), offset, s, dtype, &mut sq, false)
            .map_or(f64::INFINITY, |e| used(&e, aim));
        if u <= 1.0 {
            lo = Some((s, u));
        } else if hi.is_none_or(|h| s < h.0) {
            hi = Some((s, u));
        }
        s = match (lo, hi) {
            // Within 1 % of the aim, or of the smallest step that failed: done.
            (Some(l), _) if l.1 > 0.99 => break,
            (Some(l), Some(h)) if h.0 < 1.01 * l.0 => break,
            (Some(l), Some(h)) => {
                let t = if h.1.is_finite() {
                    (1.0 - l.1) / (h.1 - l.1)
                } else {
                    0.5
                };
                l.0 + (h.0 - l.0) * t.clamp(0.1, 0.9)
            }
            // Errors grow at most about linearly with the step. Within 1 % of the limit (at
            // or past it included) there is nothing left between the two: done (`clamp`
            // panics on bounds out of order).
            (Some(l), None) if 1.01 * l.0 > top => break,
            (Some(l), None) => (l.0 / l.1.max(0.125)).clamp(1.01 * l.0, top),
            (None, Some(h)) if h.0 / 1.01 < bottom => break,
            (None, Some(h)) => (h.0 / h.1.min(8.0)).clamp(bottom, h.0 / 1.01),
            (None, None) => break,
        };
    }
    lo.map(|l| l.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 8·[`REFINE_STRIDE`] values, 0 but for `v` at the first (the sample is every
    /// [`REFINE_STRIDE`]-th value from the first), and the RMS bound at which their errors at
    /// step 1 use `share` of the sample's aim.
    fn one_value(v: f64, share: f64) -> (Vec<f64>, f64) {
        let mut values = vec![0.0; 8 * REFINE_STRIDE];
        values[0] = v;
        let err = (v - v.round()).abs() / 8f64.sqrt();
        (values, err / (0.97 * share))
    }

    /// The quantizer's wide versions give the bits of the plain loop (inlined here, so
    /// compiled for plain x86-64): the integers, error sums and counts of f32 and f64 values
    /// with halves, non-finite values, denormals and integers past the limit.
    #[test]
    fn wide_versions_give_the_plain_loops_bits() {
        let mut values: Vec<f64> = (0..5000)
            .map(|i| ((i * 7919 % 10007) as f64 - 5003.0) * 0.37 + (i as f64).sin() * 1e-3)
            .collect();
        let special = [
            f64::NAN,
            f64::INFINITY,
            -f64::INFINITY,
            0.5,
            -0.5,
            1.5,
            -2.5,
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            4.9e-324,
            -3e7,
        ];
        for (i, &v) in special.iter().enumerate() {
            values[i * 331 + 7] = v;
        }
        let bits = |s: &Option<ErrorStats>| {
            s.map(|s| {
                (
                    s.count,
                    s.sum_sq.to_bits(),
                    s.max_abs.to_bits(),
                    s.unit.to_bits(),
                )
            })
        };
        for (offset, step) in [(0.0, 1.0), (0.25, 0.37), (-3.0, 1e-3), (0.0, 1e-290)] {
            // Odd lengths for the loops' tails; 1e-290 steps put integers past the limit (None).
            let n = if step < 1e-200 {
                values.len()
            } else {
                values.len() - 41
            };
            let v = &values[..n];
            for (f32_round, wide) in [
                (true, quantize_f32 as fn(&_, _, _, &mut _) -> _),
                (false, quantize_f64),
            ] {
                let (mut q_wide, mut q_plain) = (vec![0i64; n], vec![0i64; n]);
                let got = wide(v, offset, step, &mut q_wide);
                let want = if f32_round {
                    quantize_plain(v, offset, step, &mut q_plain, |x| x as f32 as f64)
                } else {
                    quantize_plain(v, offset, step, &mut q_plain, |x| x)
                };
                assert_eq!(bits(&got), bits(&want), "{offset} {step} {f32_round}");
                assert_eq!(want.is_none(), step < 1e-200);
                assert_eq!(q_wide, q_plain, "{offset} {step} {f32_round}");
            }
        }
    }

    /// A search that grows the step to within 1 % below its limit (8x the first) ends there;
    /// it once asked `clamp` for a range whose bottom was above its top, and panicked (seen
    /// compressing temporal steps, whose first step is far above their residuals).
    #[test]
    fn a_growing_search_ends_just_below_its_limit() {
        let (values, rms) = one_value(0.25, 0.126);
        let s = sampled_step(&values, None, 0.0, rms, 1.0, None, ElementType::F64)
            .expect("a step that meets the aim");
        assert!(s > 7.9 && s <= 8.0, "{s}");
    }

    /// The same at the other end: a search that shrinks the step to within 1 % above its limit
    /// (an eighth of the first), failing there, ends without a step.
    #[test]
    fn a_shrinking_search_ends_just_above_its_limit() {
        // At the second step tried (1/7.95) the value lies half a step from the lattice.
        let (values, rms) = one_value(4.5 / 7.95, 7.95);
        let s = sampled_step(&values, None, 0.0, rms, 1.0, None, ElementType::F64);
        assert_eq!(s, None);
    }
}
