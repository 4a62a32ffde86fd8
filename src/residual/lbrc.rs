//! LBRC: quantize the residual with a per-block step chosen for the target, 3D Lorenzo on the
//! integers, zigzag, entropy coding. Non-finite values are kept aside and restored exactly.
//!
//! Payload: offset f64 | step f64 | specials | predictor u8 (Lorenzo mask 1..=7, or 8: least
//! squares, followed by its 7 i16 coefficients) | coded integers (see [`ints`]). A block whose
//! values all lie within the bound of `offset` is stored as a constant (offset and specials
//! only). `doc/format.md` specifies every byte.

use crate::bound::{finite_min_max, initial_step, BlockBound, ErrorStats};
use crate::dtype::ElementType;
use crate::entropy::ints;
use crate::error::{Error, Result};
use crate::params::IntCoder;
use rayon::prelude::*;

/// Integers beyond this make the float arithmetic inexact: such blocks are left to lossless.
const MAX_Q: f64 = (1u64 << 50) as f64;

/// How a block was coded.
pub enum Coded {
    /// Every finite value reconstructs as `offset`.
    Constant(Vec<u8>),
    Lbrc(Vec<u8>),
}

/// Rounds through the element type, as the decoder's output will be.
pub(crate) fn as_type(v: f64, dtype: ElementType) -> f64 {
    match dtype {
        ElementType::F32 => v as f32 as f64,
        ElementType::F64 => v,
    }
}

fn reconstruct(offset: f64, step: f64, q: i64, dtype: ElementType) -> f64 {
    as_type(offset + q as f64 * step, dtype)
}

/// The reconstruction on top of a base model's prediction `b`: the base plus the quantized
/// residual, rounded through the element type.
fn reconstruct_on(b: f64, offset: f64, step: f64, q: i64, dtype: ElementType) -> f64 {
    as_type(b + (offset + q as f64 * step), dtype)
}

/// Non-finite values: positions (delta-coded) and exact bits.
pub(crate) fn write_specials(values: &[f64], dtype: ElementType, out: &mut Vec<u8>) {
    let specials: Vec<usize> = (0..values.len())
        .filter(|&i| !values[i].is_finite())
        .collect();
    ints::put_varint(out, specials.len() as u64);
    let mut last = 0;
    for &i in &specials {
        ints::put_varint(out, (i - last) as u64);
        last = i;
        match dtype {
            ElementType::F32 => {
                out.extend_from_slice(&crate::dtype::f64_to_f32_bits(values[i]).to_le_bytes())
            }
            ElementType::F64 => out.extend_from_slice(&values[i].to_bits().to_le_bytes()),
        }
    }
}

/// Reads the non-finite values: positions and their exact bits (as stored for `dtype`).
pub(crate) fn read_specials(
    r: &mut ints::Reader,
    n: usize,
    dtype: ElementType,
) -> Result<Vec<(usize, u64)>> {
    let count = r.varint()? as usize;
    // Each takes a position byte and its element bytes: a larger count is a lie, not a size
    // to allocate for.
    if count > n || count > r.rest().len() / (1 + dtype.size()) {
        return Err(Error::Corrupt(
            "more special values than the block holds".into(),
        ));
    }
    let mut out = Vec::with_capacity(count);
    let mut pos = 0usize;
    for _ in 0..count {
        pos = pos
            .checked_add(r.varint()? as usize)
            .filter(|&p| p < n)
            .ok_or_else(|| Error::Corrupt("special value outside the block".into()))?;
        let bits = match dtype {
            ElementType::F32 => u32::from_le_bytes(r.bytes(4)?.try_into().unwrap()) as u64,
            ElementType::F64 => u64::from_le_bytes(r.bytes(8)?.try_into().unwrap()),
        };
        out.push((pos, bits));
    }
    Ok(out)
}

/// Writes element `i` of `out` (little-endian bytes of `dtype`) from its bits.
/// The bits `v` is stored with as an element of `dtype` (v already rounded through it).
pub(crate) fn value_bits(dtype: ElementType, v: f64) -> u64 {
    match dtype {
        ElementType::F32 => (v as f32).to_bits() as u64,
        ElementType::F64 => v.to_bits(),
    }
}

pub(crate) fn put_bits(out: &mut [u8], dtype: ElementType, i: usize, bits: u64) {
    match dtype {
        ElementType::F32 => out[4 * i..4 * i + 4].copy_from_slice(&(bits as u32).to_le_bytes()),
        ElementType::F64 => out[8 * i..8 * i + 8].copy_from_slice(&bits.to_le_bytes()),
    }
}

/// Values per quantization chunk: chunks run in parallel, and their error sums are added in
/// chunk order, so the step chosen never depends on the thread count.
const Q_CHUNK: usize = 1 << 14;

/// Quantizes with `step`, filling `q`; returns the errors, or None if the integers get too large
/// or the step is not a finite positive number (the decoder refuses it, and 0·∞ would make
/// NaN reconstructions that the error sums cannot see).
fn quantize(
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
fn choose_step(
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
    let mut q = Vec::with_capacity(values.len());
    let mut tries = 0;
    let stats = loop {
        match quantize(values, base, offset, step, dtype, &mut q, par) {
            Some(s) if s.meets(bound) => break s,
            None => return None,
            Some(_) if tries >= 40 => return None,
            Some(s) => {
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
    if tries > 0 || headroom > 0.9 {
        return Some((step, q, stats));
    }
    // Coarse or clustered data: the error stays well below the bound, so a larger step may hold.
    let grown = (step * (0.97 / headroom.max(1e-3)).min(8.0)).min(f64::MAX);
    let mut q2 = Vec::with_capacity(values.len());
    match quantize(values, base, offset, grown, dtype, &mut q2, par) {
        Some(s) if s.meets(bound) => Some((grown, q2, s)),
        _ => Some((step, q, stats)),
    }
}

/// Predictor masks: bit d set means "difference along axis d". All three is first-order 3D
/// Lorenzo; the last two, 2D Lorenzo in each plane; one bit, a 1D predictor along that axis.
pub(crate) const LORENZO_3D: u8 = 0b111;

/// Lorenzo with zero boundary along the axes in `mask`, as successive first differences
/// (in place).
pub fn lorenzo_forward(q: &mut [i64], shape: [usize; 3], mask: u8) {
    let [a, b, c] = shape;
    if mask & 0b100 != 0 {
        for row in q.chunks_exact_mut(c.max(1)) {
            for k in (1..row.len()).rev() {
                row[k] -= row[k - 1];
            }
        }
    }
    if mask & 0b010 != 0 {
        for plane in q.chunks_exact_mut((b * c).max(1)) {
            for j in (1..b).rev() {
                for k in 0..c {
                    plane[j * c + k] -= plane[(j - 1) * c + k];
                }
            }
        }
    }
    if mask & 0b001 != 0 {
        let p = b * c;
        for i in (1..a).rev() {
            for k in 0..p {
                q[i * p + k] -= q[(i - 1) * p + k];
            }
        }
    }
}

/// Inverse of [`lorenzo_forward`]: prefix sums. Wrapping, so hostile input cannot panic.
pub fn lorenzo_inverse(q: &mut [i64], shape: [usize; 3], mask: u8) {
    let [a, b, c] = shape;
    let p = b * c;
    if mask & 0b001 != 0 {
        for i in 1..a {
            for k in 0..p {
                q[i * p + k] = q[i * p + k].wrapping_add(q[(i - 1) * p + k]);
            }
        }
    }
    if mask & 0b010 != 0 {
        for plane in q.chunks_exact_mut(p.max(1)) {
            for j in 1..b {
                for k in 0..c {
                    plane[j * c + k] = plane[j * c + k].wrapping_add(plane[(j - 1) * c + k]);
                }
            }
        }
    }
    if mask & 0b100 != 0 {
        for row in q.chunks_exact_mut(c.max(1)) {
            for k in 1..row.len() {
                row[k] = row[k].wrapping_add(row[k - 1]);
            }
        }
    }
}

/// Lorenzo residual at (i, j, k) for the axes in `mask`, zero outside the block: inclusion-
/// exclusion over the corners of the differenced axes.
#[inline(always)]
fn lorenzo_residual(q: &[i64], shape: [usize; 3], mask: u8, i: usize, j: usize, k: usize) -> i64 {
    let [_, b, c] = shape;
    let mut r = 0i64;
    for sub in 0..8u8 {
        if sub & !mask != 0 {
            continue;
        }
        let (di, dj, dk) = (
            (sub & 1) as usize,
            ((sub >> 1) & 1) as usize,
            ((sub >> 2) & 1) as usize,
        );
        if i < di || j < dj || k < dk {
            continue;
        }
        let v = q[((i - di) * b + (j - dj)) * c + (k - dk)];
        r = if sub.count_ones() % 2 == 0 {
            r.wrapping_add(v)
        } else {
            r.wrapping_sub(v)
        };
    }
    r
}

/// Predictor id of the per-block least-squares predictor (ids 1..=7 are Lorenzo masks).
pub(crate) const LEAST_SQUARES: u8 = 8;
/// Fixed-point scale of its coefficients.
const LS_SHIFT: u32 = 12;

/// The predictor's rule on the block's first plane, row and column, where the fitted weights
/// lack neighbours: 3D Lorenzo, zero outside. Wrapping, so hostile input cannot panic.
#[inline(always)]
fn ls_boundary(q: &[i64], shape: [usize; 3], i: usize, j: usize, k: usize) -> i64 {
    debug_assert!(i == 0 || j == 0 || k == 0);
    let idx = (i * shape[1] + j) * shape[2] + k;
    q[idx].wrapping_sub(lorenzo_residual(q, shape, LORENZO_3D, i, j, k))
}

/// Calls `f(v, interior)` at every `stride`-th position with the corners of its Lorenzo cube:
/// `v[sub]` is the value offset by one along the axes in `sub` (bit 0 planes, bit 1 rows,
/// bit 2 columns), 0 outside the block as in [`lorenzo_forward`]; `interior` when none is.
fn sample_corners(q: &[i64], shape: [usize; 3], stride: usize, mut f: impl FnMut(&[i64; 8], bool)) {
    let [_, b, c] = shape;
    let offs: [usize; 8] =
        std::array::from_fn(|sub| (sub & 1) * b * c + (sub >> 1 & 1) * c + (sub >> 2 & 1));
    let mut v = [0i64; 8];
    // The coordinates advance by the stride's own, with carries (no division per sample).
    let (si, sj, sk) = (stride / (b * c), (stride / c) % b, stride % c);
    let (mut i, mut j, mut k) = (0, 0, 0);
    for idx in (0..q.len()).step_by(stride) {
        if idx > 0 {
            k += sk;
            j += sj + usize::from(k >= c);
            k -= if k >= c { c } else { 0 };
            i += si + usize::from(j >= b);
            j -= if j >= b { b } else { 0 };
        }
        debug_assert_eq!((i, j, k), (idx / (b * c), (idx / c) % b, idx % c));
        let have = usize::from(i > 0) | usize::from(j > 0) << 1 | usize::from(k > 0) << 2;
        for (sub, o) in offs.iter().enumerate() {
            v[sub] = if sub & !have == 0 { q[idx - o] } else { 0 };
        }
        f(&v, have == 0b111);
    }
}

/// The causal neighbours the least-squares predictor weighs, as corners in [`sample_corners`]:
/// west, north, behind, north-west, behind-west, behind-north, behind-north-west (the order of
/// the weights in [`ls_row`]).
const LS_CORNERS: [usize; 7] = [4, 2, 1, 6, 5, 3, 7];

/// Fits the weights by least squares on every `stride`-th interior position (encoder only, so
/// floating point is fine: the decoder gets the rounded integers). None if degenerate.
fn ls_fit(q: &[i64], shape: [usize; 3], stride: usize) -> Option<[i16; 7]> {
    if shape.iter().any(|&d| d < 2) {
        return None;
    }
    let mut m = [[0f64; 8]; 7]; // normal equations, right-hand side in column 7
    sample_corners(q, shape, stride, |v, interior| {
        if !interior {
            return;
        }
        let x: [f64; 7] = LS_CORNERS.map(|s| v[s] as f64);
        for r in 0..7 {
            for col in r..7 {
                m[r][col] += x[r] * x[col];
            }
            m[r][7] += x[r] * v[0] as f64;
        }
    });
    // The lower triangle mirrors the upper.
    for (r, col) in (1..7).flat_map(|r| (0..r).map(move |col| (r, col))) {
        m[r][col] = m[col][r];
    }
    // Gaussian elimination with partial pivoting.
    for col in 0..7 {
        let p = (col..7).max_by(|&x, &y| m[x][col].abs().total_cmp(&m[y][col].abs()))?;
        m.swap(col, p);
        let d = m[col][col];
        if d.abs() < 1e-9 {
            return None;
        }
        for r in 0..7 {
            if r != col {
                let f = m[r][col] / d;
                let pivot = m[col];
                for (v, p) in m[r][col..].iter_mut().zip(&pivot[col..]) {
                    *v -= f * p;
                }
            }
        }
    }
    let mut coef = [0i16; 7];
    for r in 0..7 {
        let w = m[r][7] / m[r][r] * (1u32 << LS_SHIFT) as f64;
        if !w.is_finite() || w.abs() > i16::MAX as f64 {
            return None;
        }
        coef[r] = w.round() as i16;
    }
    Some(coef)
}

/// The interior rule on one row, in place: the prediction of value k weighs value k−1 of
/// `west` and values k, k−1 of the rows above (`n`), behind (`b`) and behind-above (`bn`).
/// `DECODE` adds the prediction to `cur`, west values being the row as it is rebuilt (`west`
/// unused); otherwise it subtracts it, `west` being the original row.
#[inline(always)]
fn ls_row<const DECODE: bool>(
    coef: &[i16; 7],
    cur: &mut [i64],
    west: &[i64],
    n: &[i64],
    b: &[i64],
    bn: &[i64],
) {
    let c: [i64; 7] = coef.map(|v| v as i64);
    let len = cur.len();
    let (n, b, bn) = (&n[..len], &b[..len], &bn[..len]);
    let west = if DECODE { &[][..] } else { &west[..len] };
    let mut w = if DECODE { cur[0] } else { west[0] };
    for k in 1..len {
        // The west term last: it is the only one on the decoder's serial chain (wrapping
        // sums are the same in any order).
        let acc = (1i64 << (LS_SHIFT - 1))
            .wrapping_add(c[1].wrapping_mul(n[k]))
            .wrapping_add(c[2].wrapping_mul(b[k]))
            .wrapping_add(c[3].wrapping_mul(n[k - 1]))
            .wrapping_add(c[4].wrapping_mul(b[k - 1]))
            .wrapping_add(c[5].wrapping_mul(bn[k]))
            .wrapping_add(c[6].wrapping_mul(bn[k - 1]))
            .wrapping_add(c[0].wrapping_mul(w));
        let pred = acc >> LS_SHIFT;
        if DECODE {
            w = cur[k].wrapping_add(pred);
            cur[k] = w;
        } else {
            w = west[k];
            cur[k] = cur[k].wrapping_sub(pred);
        }
    }
}

/// Residuals of the least-squares predictor (every prediction reads the original `q`).
fn ls_forward(q: &[i64], shape: [usize; 3], coef: &[i16; 7], par: bool) -> Vec<i64> {
    let [_, b, c] = shape;
    let plane = (b * c).max(1);
    let mut r = q.to_vec();
    // Planes are independent (every prediction reads the original).
    let one_plane = |(i, rp): (usize, &mut [i64])| {
        for j in 0..b {
            let row = (i * b + j) * c;
            let cur = &mut rp[j * c..(j + 1) * c];
            if i > 0 && j > 0 && c > 1 {
                ls_row::<false>(
                    coef,
                    cur,
                    &q[row..row + c],
                    &q[row - c..row],
                    &q[row - plane..row - plane + c],
                    &q[row - plane - c..row - plane],
                );
                // The row's first value has no west neighbour: Lorenzo.
                cur[0] = q[row].wrapping_sub(ls_boundary(q, shape, i, j, 0));
            } else {
                for (k, v) in cur.iter_mut().enumerate() {
                    *v = q[row + k].wrapping_sub(ls_boundary(q, shape, i, j, k));
                }
            }
        }
    };
    if par {
        r.par_chunks_mut(plane).enumerate().for_each(one_plane);
    } else {
        r.chunks_mut(plane).enumerate().for_each(one_plane);
    }
    r
}

/// Inverse of [`ls_forward`], in place, in raster order.
fn ls_inverse(q: &mut [i64], shape: [usize; 3], coef: &[i16; 7]) {
    let [a, b, c] = shape;
    let plane = b * c;
    for i in 0..a {
        for j in 0..b {
            let row = (i * b + j) * c;
            if i > 0 && j > 0 && c > 1 {
                q[row] = q[row].wrapping_add(ls_boundary(q, shape, i, j, 0));
                let (done, rest) = q.split_at_mut(row);
                ls_row::<true>(
                    coef,
                    &mut rest[..c],
                    &[],
                    &done[row - c..row],
                    &done[row - plane..row - plane + c],
                    &done[row - plane - c..row - plane],
                );
            } else {
                for k in 0..c {
                    let idx = row + k;
                    q[idx] = q[idx].wrapping_add(ls_boundary(q, shape, i, j, k));
                }
            }
        }
    }
}

/// Picks the predictor mask whose residuals cost the fewest estimated bits, measured on a
/// sample of positions: raw bits below the leading one plus the entropy of the classes.
fn choose_predictor(q: &[i64], shape: [usize; 3]) -> (u8, Option<[i16; 7]>) {
    let [a, b, c] = shape;
    let n = q.len();
    let usable: u8 = (u8::from(a > 1)) | (u8::from(b > 1) << 1) | (u8::from(c > 1) << 2);
    let masks: Vec<u8> = (1..8u8).filter(|m| m & !usable == 0).collect();
    if masks.len() <= 1 || n < 64 {
        return (masks.first().copied().unwrap_or(LORENZO_3D), None);
    }
    // About 4096 samples (fewer in small blocks), an odd stride so they do not line up with
    // rows.
    let stride = (n / 8192).max(8) | 1;
    let ls = ls_fit(q, shape, stride);
    // Histogram slot 0 is least squares; 1..=7 the Lorenzo masks.
    let mut hist = [[0u32; 64]; 8];
    let mut raw = [0u64; 8];
    let mut tally = |slot: usize, r: i64| {
        let z = ((r << 1) ^ (r >> 63)) as u64;
        let cls = 64 - z.leading_zeros() as usize;
        hist[slot][cls.min(63)] += 1;
        raw[slot] += cls.saturating_sub(1) as u64;
    };
    // Lorenzo along `mask`: inclusion-exclusion over the corners of its axes.
    let signs: [[i64; 8]; 8] = std::array::from_fn(|m| {
        std::array::from_fn(|sub| match (sub & !m, sub.count_ones() % 2) {
            (0, 0) => 1,
            (0, _) => -1,
            _ => 0,
        })
    });
    let lorenzo = |m: u8, v: &[i64; 8]| {
        let sg = &signs[m as usize];
        (0..8).fold(0i64, |r, s| r.wrapping_add(sg[s].wrapping_mul(v[s])))
    };
    let half = 1i64 << (LS_SHIFT - 1);
    sample_corners(q, shape, stride, |v, interior| {
        for &m in &masks {
            tally(m as usize, lorenzo(m, v));
        }
        // At the block's faces the least-squares predictor is 3D Lorenzo.
        match &ls {
            Some(coef) if interior => {
                let acc = (0..7).fold(half, |acc, t| {
                    acc.wrapping_add((coef[t] as i64).wrapping_mul(v[LS_CORNERS[t]]))
                });
                tally(0, v[0].wrapping_sub(acc >> LS_SHIFT));
            }
            Some(_) => tally(0, lorenzo(LORENZO_3D, v)),
            None => {}
        }
    });
    let cost = |slot: usize| {
        let h = &hist[slot];
        let total: u32 = h.iter().sum();
        let ent: f64 = h
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| {
                let p = c as f64 / total as f64;
                -(c as f64) * p.log2()
            })
            .sum();
        ent + raw[slot] as f64
    };
    let best = masks
        .into_iter()
        .min_by(|&x, &y| cost(x as usize).total_cmp(&cost(y as usize)))
        .unwrap();
    match ls {
        // The fitted predictor must beat the best Lorenzo clearly: it slows decoding down.
        Some(coef) if cost(0) < 0.99 * cost(best as usize) => (LEAST_SQUARES, Some(coef)),
        _ => (best, None),
    }
}

/// Blocks smaller than this are coded on one thread: the hand-over to another costs more than
/// it saves.
pub(crate) const PAR_MIN: usize = 1 << 16;

/// A block after quantization and prediction, waiting for entropy coding.
pub struct Predicted {
    head: Vec<u8>,
    residuals: Vec<i64>,
    shape: [usize; 3],
    par: bool,
}

impl Predicted {
    /// The entropy-coding stage: the block's payload.
    pub fn finish(mut self, coder: IntCoder) -> Vec<u8> {
        coder.encode(&self.residuals, self.shape, &mut self.head, self.par);
        self.head
    }
}

/// What the first stage made of a block.
pub enum Prepared {
    /// Done: every finite value reconstructs as the offset.
    Constant(Vec<u8>),
    Predicted(Predicted),
}

/// Codes one block for `bound` in one go ([`prepare`], then [`Predicted::finish`]).
pub fn encode(
    values: &[f64],
    shape: [usize; 3],
    bound: BlockBound,
    dtype: ElementType,
    coder: IntCoder,
    par: bool,
) -> Option<(Coded, ErrorStats)> {
    let (prepared, stats) = prepare(values, None, shape, bound, dtype, par)?;
    let coded = match prepared {
        Prepared::Constant(p) => Coded::Constant(p),
        Prepared::Predicted(p) => Coded::Lbrc(p.finish(coder)),
    };
    Some((coded, stats))
}

/// The quantization and prediction stage of a block for `bound`, with the errors of its
/// verified reconstruction; None where lossless coding must take it. With `base` (a base
/// model's finite prediction of every value) the residual over it is coded, and the errors are
/// those of base + residual. `par` lets its steps (and the later entropy coding) use the current
/// rayon pool (the output is the same either way).
pub fn prepare(
    values: &[f64],
    base: Option<&[f64]>,
    shape: [usize; 3],
    bound: BlockBound,
    dtype: ElementType,
    par: bool,
) -> Option<(Prepared, ErrorStats)> {
    debug_assert_eq!(values.len(), shape.iter().product::<usize>());
    let par = par && values.len() >= PAR_MIN;
    let (lo, hi) = match base {
        None => finite_min_max(values.iter().copied()),
        Some(b) => finite_min_max(values.iter().zip(b).map(|(&x, &b)| x - b)),
    };
    let offset = if hi >= lo {
        as_type(0.5 * (lo + hi), dtype)
    } else {
        0.0
    };
    let mut head = Vec::with_capacity(32);
    head.extend_from_slice(&offset.to_le_bytes());

    // All finite values within the bound of the offset: a constant block. The extreme value
    // alone lower-bounds the errors (max |x − offset| ≥ half the range, RMS ≥ that / √n), so
    // the full check runs only where it can succeed.
    let half = 0.5 * (hi - lo);
    let possible = match bound {
        BlockBound::Rms(r) => half <= r * (values.len() as f64).sqrt() * 1.001,
        BlockBound::Max(m) => half <= m * 1.001,
        BlockBound::Lossless => false,
    };
    if possible || hi < lo {
        let mut cst = ErrorStats::default();
        match base {
            None => values.iter().for_each(|&x| cst.add(x, offset)),
            Some(b) => {
                (values.iter().zip(b)).for_each(|(&x, &b)| cst.add(x, as_type(b + offset, dtype)))
            }
        }
        if cst.meets(bound) {
            write_specials(values, dtype, &mut head);
            return Some((Prepared::Constant(head), cst));
        }
    }
    let (step, mut q, stats) = choose_step(values, base, offset, bound, dtype, par)?;
    head.extend_from_slice(&step.to_le_bytes());
    write_specials(values, dtype, &mut head);
    match choose_predictor(&q, shape) {
        (LEAST_SQUARES, Some(coef)) => {
            head.push(LEAST_SQUARES);
            coef.iter()
                .for_each(|c| head.extend_from_slice(&c.to_le_bytes()));
            q = ls_forward(&q, shape, &coef, par);
        }
        (mask, _) => {
            head.push(mask);
            lorenzo_forward(&mut q, shape, mask);
        }
    }
    let predicted = Predicted {
        head,
        residuals: q,
        shape,
        par,
    };
    Some((Prepared::Predicted(predicted), stats))
}

/// What a non-constant payload holds between its offset and its coded integers.
struct Head {
    step: f64,
    specials: Vec<(usize, u64)>,
    mask: u8,
    coef: Option<[i16; 7]>,
}

fn read_head(r: &mut ints::Reader, offset: f64, n: usize, dtype: ElementType) -> Result<Head> {
    let step = f64::from_le_bytes(r.bytes(8)?.try_into().unwrap());
    if !(step.is_finite() && step > 0.0 && offset.is_finite()) {
        return Err(Error::Corrupt("bad quantization step or offset".into()));
    }
    let specials = read_specials(r, n, dtype)?;
    let mask = r.bytes(1)?[0];
    let coef = match mask {
        1..=LORENZO_3D => None,
        LEAST_SQUARES => {
            let mut c = [0i16; 7];
            for v in c.iter_mut() {
                *v = i16::from_le_bytes(r.bytes(2)?.try_into().unwrap());
            }
            Some(c)
        }
        _ => return Err(Error::Corrupt(format!("unknown predictor {mask}"))),
    };
    Ok(Head {
        step,
        specials,
        mask,
        coef,
    })
}

/// The most values a non-constant payload of [`decode`] can hold (`None`: no limit), read
/// from its head and its coder's tables alone. (A constant block has no limit.)
pub fn max_values(payload: &[u8], n: usize, dtype: ElementType) -> Result<Option<u64>> {
    let mut r = ints::Reader::new(payload);
    let offset = f64::from_le_bytes(r.bytes(8)?.try_into().unwrap());
    read_head(&mut r, offset, n, dtype)?;
    ints::max_values(r.rest())
}

/// Decodes a block coded by [`encode`] (`constant` tells which kind) straight into its
/// little-endian element bytes, in block order; `base` is the prediction the encoder's `prepare`
/// coded the residual over.
pub fn decode(
    payload: &[u8],
    base: Option<&[f64]>,
    shape: [usize; 3],
    dtype: ElementType,
    constant: bool,
) -> Result<Vec<u8>> {
    let n: usize = shape.iter().product();
    let es = dtype.size();
    let mut r = ints::Reader::new(payload);
    let offset = f64::from_le_bytes(r.bytes(8)?.try_into().unwrap());
    if let Some(b) = base {
        if b.len() != n {
            return Err(Error::Corrupt(
                "base prediction does not match the block".into(),
            ));
        }
    }
    if constant {
        if !offset.is_finite() {
            return Err(Error::Corrupt(
                "constant block of a non-finite value".into(),
            ));
        }
        let mut out = crate::error::try_vec::<u8>(n * es, "a decoded block")?;
        match base {
            None => {
                let bits = value_bits(dtype, as_type(offset, dtype));
                (0..n).for_each(|i| put_bits(&mut out, dtype, i, bits));
            }
            Some(b) => (0..n).for_each(|i| {
                put_bits(
                    &mut out,
                    dtype,
                    i,
                    value_bits(dtype, as_type(b[i] + offset, dtype)),
                )
            }),
        }
        for (i, b) in read_specials(&mut r, n, dtype)? {
            put_bits(&mut out, dtype, i, b);
        }
        if !r.rest().is_empty() {
            return Err(Error::Corrupt("trailing bytes in a constant block".into()));
        }
        return Ok(out);
    }
    let Head {
        step,
        specials,
        mask,
        coef,
    } = read_head(&mut r, offset, n, dtype)?;
    // Decoded (and so checked against what the payload can hold) before `out` is allocated.
    let mut q = ints::decode(r.rest(), shape)?;
    let mut out = crate::error::try_vec::<u8>(n * es, "a decoded block")?;
    match &coef {
        Some(c) => ls_inverse(&mut q, shape, c),
        None => lorenzo_inverse(&mut q, shape, mask),
    }
    // The encoder's own reconstruction, written as bytes in one pass.
    if let Some(b) = base {
        for (i, &v) in q.iter().enumerate() {
            put_bits(
                &mut out,
                dtype,
                i,
                value_bits(dtype, reconstruct_on(b[i], offset, step, v, dtype)),
            );
        }
        for (i, bits) in specials {
            put_bits(&mut out, dtype, i, bits);
        }
        return Ok(out);
    }
    match dtype {
        ElementType::F32 => {
            for (d, &v) in out.chunks_exact_mut(4).zip(&q) {
                d.copy_from_slice(&(reconstruct(offset, step, v, dtype) as f32).to_le_bytes());
            }
        }
        ElementType::F64 => {
            for (d, &v) in out.chunks_exact_mut(8).zip(&q) {
                d.copy_from_slice(&reconstruct(offset, step, v, dtype).to_le_bytes());
            }
        }
    }
    for (i, b) in specials {
        put_bits(&mut out, dtype, i, b);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_predictor_inverts() {
        let shape = [3, 4, 5];
        let orig: Vec<i64> = (0..60).map(|i| (i * i * 7 % 23) as i64 - 11).collect();
        for mask in 1..=LORENZO_3D {
            let mut q = orig.clone();
            lorenzo_forward(&mut q, shape, mask);
            assert_ne!(q, orig);
            lorenzo_inverse(&mut q, shape, mask);
            assert_eq!(q, orig);
        }
    }

    #[test]
    fn least_squares_inverts_and_fits_a_linear_field() {
        let shape = [6, 7, 9];
        // q = 3i + 5j − 2k + noise: a plane the fitted weights should predict well.
        let mut s = 99u64;
        let q: Vec<i64> = (0..378)
            .map(|idx| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                let (i, j, k) = (idx / 63, (idx / 9) % 7, idx % 9);
                (3 * i + 5 * j) as i64 - 2 * k as i64 + (s >> 62) as i64
            })
            .collect();
        let coef = ls_fit(&q, shape, 1).expect("fit");
        let r = ls_forward(&q, shape, &coef, false);
        assert_eq!(r, ls_forward(&q, shape, &coef, true));
        let interior: i64 = r
            .iter()
            .enumerate()
            .filter(|(i, _)| *i > 72)
            .map(|(_, v)| v.abs())
            .max()
            .unwrap();
        assert!(interior <= 6, "residuals up to {interior}");
        let mut back = r.clone();
        ls_inverse(&mut back, shape, &coef);
        assert_eq!(back, q);
        // Hostile coefficients wrap instead of panicking, and still invert.
        let wild = [i16::MAX, i16::MIN, 7, -7, 0, 1, -1];
        let mut b = ls_forward(&q, shape, &wild, true);
        ls_inverse(&mut b, shape, &wild);
        assert_eq!(b, q);
    }

    #[test]
    fn predictor_choice_follows_the_data() {
        // Varies only along the last axis, linearly: 1D along it leaves constants.
        let shape = [4, 8, 16];
        let q: Vec<i64> = (0..512).map(|i| (i % 16) as i64 * 5).collect();
        let (p, _) = choose_predictor(&q, shape);
        assert!(p == LEAST_SQUARES || p & 0b100 == 0b100, "{p}");
        // Planes of independent noise, identical along axis 0: difference along axis 0 only.
        let mut s = 7u64;
        let plane: Vec<i64> = (0..128)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                (s >> 50) as i64
            })
            .collect();
        let q: Vec<i64> = (0..512).map(|i| plane[i % 128]).collect();
        let (p, _) = choose_predictor(&q, shape);
        assert!(p == LEAST_SQUARES || p & 0b001 == 0b001, "{p}");
    }
}
