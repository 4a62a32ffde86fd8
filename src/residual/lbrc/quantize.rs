//! LBRC's quantizer: the largest step whose actual reconstruction meets the block's bound,
//! and the block's integers for it.

use crate::bound::{initial_step, BlockBound, ErrorStats};
use crate::dtype::ElementType;
use crate::pipeline::scratch;
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
const REFINE_STRIDE: usize = 7;

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
        .try_fold(ErrorStats::default(), |mut all, s| {
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
    if let Some(base) = base {
        return quantize_chunk_on(values, base, offset, step, dtype, q);
    }
    let inv = 1.0 / step;
    let mut prev = 0i64;
    let (mut count, mut sum_sq, mut max_abs) = (0usize, 0.0f64, 0.0f64);
    for (&x, qv) in values.iter().zip(q.iter_mut()) {
        if x.is_finite() {
            let t = (x - offset) * inv;
            if t.abs() > MAX_Q {
                return None;
            }
            // Round half away from zero by truncation: any integer is correct here, because the
            // reconstruction is verified, and this avoids a libm call per value.
            prev = (t + 0.5f64.copysign(t)) as i64;
            // The reconstruction is finite or ±inf (never NaN): an infinite error fails any bound.
            let d = (x - reconstruct(offset, step, prev, dtype)).abs();
            count += 1;
            sum_sq += d * d;
            if d > max_abs {
                max_abs = d;
            }
        }
        // Non-finite values repeat their predecessor, so they cost little in the Lorenzo field.
        *qv = prev;
    }
    Some(ErrorStats {
        count,
        sum_sq,
        max_abs,
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
    let mut stats = ErrorStats::default();
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

/// Picks a large step whose actual reconstruction meets `bound`: the uniform quantizer's
/// estimate, shrunk until it holds, or grown by the headroom its measured error leaves (errors
/// scale about linearly with the step). Returns the step and its integers, or None if no step
/// works (the block is then coded losslessly).
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
    let mut q = scratch::I64.take(values.len());
    let mut tries = 0;
    // The last step that failed, above the one that holds.
    let mut failed = None;
    let mut stats = loop {
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
    // A second buffer only where a second step is tried (most blocks hold at the first).
    let mut q2 = Vec::new();
    let headroom = used(&stats, bound);
    if tries == 0 && headroom <= 0.9 {
        // Coarse or clustered data: the error stays well below the bound, so a larger step
        // may hold.
        let grown = (step * (0.97 / headroom.max(1e-3)).min(8.0)).min(f64::MAX);
        q2 = scratch::I64.take(values.len());
        match quantize(values, base, offset, grown, dtype, &mut q2, par) {
            Some(s) if s.meets(bound) => {
                (step, stats) = (grown, s);
                std::mem::swap(&mut q, &mut q2);
            }
            _ => failed = Some(grown),
        }
    }
    // Over a base the residuals are small against the step, where the error is far from
    // linear in it: the steps above leave up to half the bound unused. The largest step
    // between the one that holds and the one that failed is bisected on a sample of the
    // values (the RMS error of an evenly spread sample is about the block's), aiming a little
    // under the bound, then quantized in full: kept where it holds.
    if let (Some(b), Some(above), BlockBound::Rms(rms)) = (base, failed, bound) {
        if used(&stats, bound) < 0.9 && values.len() >= 8 * REFINE_STRIDE {
            let pick =
                |v: &[f64]| -> Vec<f64> { v.iter().step_by(REFINE_STRIDE).copied().collect() };
            let (sv, sb) = (pick(values), pick(b));
            let aim = BlockBound::Rms(0.97 * rms);
            let (mut lo, mut hi) = (step, above);
            let mut sq = Vec::with_capacity(sv.len());
            for _ in 0..6 {
                let mid = (lo * hi).sqrt();
                match quantize(&sv, Some(&sb), offset, mid, dtype, &mut sq, false) {
                    Some(s) if s.meets(aim) => lo = mid,
                    _ => hi = mid,
                }
            }
            if lo > step {
                if q2.capacity() < values.len() {
                    q2 = scratch::I64.take(values.len());
                }
                if let Some(s) = quantize(values, base, offset, lo, dtype, &mut q2, par)
                    .filter(|s| s.meets(bound))
                {
                    (step, stats) = (lo, s);
                    std::mem::swap(&mut q, &mut q2);
                }
            }
        }
    }
    scratch::I64.give(q2);
    Some((step, q, stats))
}
