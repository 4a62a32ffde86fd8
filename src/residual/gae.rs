//! GAE, the baseline residual coder LBRC replaces: the residual is cut into 8×8 patches (in
//! the planes of the block's last two axes); patches whose residual already meets the bound
//! cost one mask bit; for the others a PCA basis is fit (on those patches, per block), their
//! coefficients are quantized, and each keeps the shortest prefix of its energy-sorted
//! coefficients that meets the bound on the actual reconstruction. Masks, prefix lengths and
//! coefficients are zstd-coded; the basis (only the columns some patch uses) travels as f32.
//!
//! Payload: specials | K u8 | basis K×64 f32 | step f64 | zstd(mask bits, lengths, coefficients)

use super::specials;
use super::{Base, BlockValues, OneStage, Staged};
use crate::base::{frame, Decoder};
use crate::bound::{BlockBound, ErrorStats};
use crate::dtype::ElementType;
use crate::error::{Error, Result};
use crate::format::payload::{put_varint, PayloadReader};
use crate::format::BlockKind;

const P: usize = 8;
const N: usize = P * P;

/// The patches of a block `[a, b, c]`: (slice, first row, first column), in order.
fn patches(shape: [usize; 3]) -> impl Iterator<Item = (usize, usize, usize)> {
    let [a, b, c] = shape;
    (0..a).flat_map(move |i| {
        (0..b.div_ceil(P)).flat_map(move |pj| (0..c.div_ceil(P)).map(move |pk| (i, pj * P, pk * P)))
    })
}

/// How many patches a block of `shape` has.
fn patch_count([a, b, c]: [usize; 3]) -> usize {
    a * b.div_ceil(P) * c.div_ceil(P)
}

/// Patch `pi` of [`patches`], found by index.
fn patch([_, b, c]: [usize; 3], pi: usize) -> (usize, usize, usize) {
    let (pb, pc) = (b.div_ceil(P), c.div_ceil(P));
    (pi / (pb * pc), (pi / pc % pb) * P, (pi % pc) * P)
}

/// Block indices of a patch's 64 cells (None outside the block).
fn cells(shape: [usize; 3], (i, j0, k0): (usize, usize, usize)) -> [Option<usize>; N] {
    let [_, b, c] = shape;
    std::array::from_fn(|n| {
        let (j, k) = (j0 + n / P, k0 + n % P);
        (j < b && k < c).then(|| (i * b + j) * c + k)
    })
}

/// Eigenvectors of the symmetric matrix `m` (N×N, row-major), as columns sorted by decreasing
/// eigenvalue: cyclic Jacobi, a fixed sequence of rotations (deterministic).
fn eigenvectors(mut m: Vec<f64>) -> Vec<f64> {
    let mut v: Vec<f64> = (0..N * N)
        .map(|i| if i / N == i % N { 1.0 } else { 0.0 })
        .collect();
    for _sweep in 0..12 {
        let off: f64 = (0..N)
            .flat_map(|p| (0..N).filter(move |&q| q != p).map(move |q| (p, q)))
            .map(|(p, q)| m[p * N + q] * m[p * N + q])
            .sum();
        if off < 1e-22 {
            break;
        }
        for p in 0..N {
            for q in p + 1..N {
                let apq = m[p * N + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (m[q * N + q] - m[p * N + p]) / (2.0 * apq);
                let t = theta.signum().max(0.0) * 2.0 - 1.0;
                let t = t / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..N {
                    let (mkp, mkq) = (m[k * N + p], m[k * N + q]);
                    m[k * N + p] = c * mkp - s * mkq;
                    m[k * N + q] = s * mkp + c * mkq;
                }
                for k in 0..N {
                    let (mpk, mqk) = (m[p * N + k], m[q * N + k]);
                    m[p * N + k] = c * mpk - s * mqk;
                    m[q * N + k] = s * mpk + c * mqk;
                }
                for k in 0..N {
                    let (vkp, vkq) = (v[k * N + p], v[k * N + q]);
                    v[k * N + p] = c * vkp - s * vkq;
                    v[k * N + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..N).collect();
    order.sort_by(|&a, &b| m[b * N + b].total_cmp(&m[a * N + a]));
    // Columns in energy order, stored column-major: basis[j * N + n].
    let mut basis = vec![0.0; N * N];
    for (j, &col) in order.iter().enumerate() {
        for n in 0..N {
            basis[j * N + n] = v[n * N + col];
        }
    }
    basis
}

/// Codes `block` as `base` plus a GAE-coded residual within `bound`, or
/// returns None where GAE cannot meet it. `base` is None for a zero base.
pub(crate) fn encode(
    block: &BlockValues,
    base: Option<&[f64]>,
    bound: BlockBound,
) -> Option<(Vec<u8>, ErrorStats)> {
    let BlockValues {
        values,
        specials,
        shape,
        dtype,
        ..
    } = *block;
    let b_at = |i: usize| base.map_or(0.0, |b| b[i]);
    let step = match bound {
        // Every coefficient kept: error RMS ≤ step/2 over the patch (orthonormal basis).
        BlockBound::Rms(e) => e,
        // Every coefficient kept: each value is off by at most step/2 · ‖row‖₁ ≤ 4·step.
        BlockBound::Max(m) => m / 4.0,
        BlockBound::Lossless => return None,
    };
    if !(step.is_finite() && step > 0.0) {
        return None;
    }
    let all: Vec<(usize, usize, usize)> = patches(shape).collect();
    // Whether the base alone meets the bound in each patch; where it does, its errors are
    // the block's there.
    let mut stats = ErrorStats::new(bound.unit());
    let mut failing = Vec::new();
    let mut mask = vec![false; all.len()];
    for (pi, &p) in all.iter().enumerate() {
        let mut st = ErrorStats::new(bound.unit());
        for i in cells(shape, p).into_iter().flatten() {
            st.add(values[i], dtype.round(b_at(i)));
        }
        if st.meets(bound) {
            stats.merge(&st);
        } else {
            mask[pi] = true;
            failing.push(pi);
        }
    }
    let residual = |cell: Option<usize>| match cell {
        Some(i) if values[i].is_finite() => values[i] - b_at(i),
        _ => 0.0,
    };
    // The basis: covariance of the failing patches, rounded to f32 as it is stored. Residuals
    // in units of a power of two near the largest (exact): the covariance neither overflows
    // nor underflows, and the eigen-solver's fixed thresholds act alike at any magnitude
    // (residuals beyond about 1e154 overflowed it: 12 sweeps per block for no basis; below
    // about 1e-162 it vanished: no rotation at all).
    let unit = crate::bound::unit_of(
        failing
            .iter()
            .flat_map(|&pi| cells(shape, all[pi]))
            .fold(0.0, |m, c| residual(c).abs().max(m)),
    );
    let mut cov = vec![0.0f64; N * N];
    for &pi in &failing {
        let r: Vec<f64> = cells(shape, all[pi])
            .iter()
            .map(|&c| residual(c) / unit)
            .collect();
        for m in 0..N {
            for n in 0..N {
                cov[m * N + n] += r[m] * r[n];
            }
        }
    }
    let basis: Vec<f64> = eigenvectors(cov).iter().map(|&v| v as f32 as f64).collect();
    let mut lengths = Vec::with_capacity(failing.len());
    let mut coeffs: Vec<i64> = Vec::new();
    let mut used = 0usize;
    for &pi in &failing {
        let cl = cells(shape, all[pi]);
        let r: Vec<f64> = cl.iter().map(|&c| residual(c)).collect();
        let q: Vec<i64> = (0..N)
            .map(|j| {
                let c: f64 = (0..N).map(|n| basis[j * N + n] * r[n]).sum();
                (c / step).round() as i64
            })
            .collect();
        // Shortest prefix meeting the bound, adding one coefficient at a time (the decoder
        // sums in the same order).
        let mut acc = [0.0f64; N];
        let mut k = 0;
        let ok = loop {
            let mut st = ErrorStats::new(bound.unit());
            for (n, c) in cl.iter().enumerate() {
                if let Some(i) = *c {
                    st.add(values[i], dtype.round(b_at(i) + acc[n]));
                }
            }
            if st.meets(bound) {
                break Some(st);
            }
            if k == N {
                break None;
            }
            let cq = q[k] as f64 * step;
            for n in 0..N {
                acc[n] += basis[k * N + n] * cq;
            }
            k += 1;
        };
        stats.merge(&ok?);
        used = used.max(k);
        lengths.push(k as u8);
        coeffs.extend_from_slice(&q[..k]);
    }
    if !stats.meets(bound) {
        return None;
    }
    let mut out = Vec::new();
    specials.write(values.len(), dtype, &mut out);
    out.push(used as u8);
    for v in &basis[..used * N] {
        out.extend_from_slice(&(*v as f32).to_le_bytes());
    }
    out.extend_from_slice(&step.to_le_bytes());
    let mut body = Vec::new();
    let bits: Vec<u8> = mask
        .chunks(8)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u8, |b, (i, &m)| b | (m as u8) << i)
        })
        .collect();
    body.extend_from_slice(&bits);
    body.extend_from_slice(&lengths);
    for &c in &coeffs {
        put_varint(&mut body, ((c << 1) ^ (c >> 63)) as u64);
    }
    let z = zstd::bulk::compress(&body, 19).ok()?;
    put_varint(&mut out, body.len() as u64);
    out.extend_from_slice(&z);
    Some((out, stats))
}

/// GAE as the pipeline's residual stage. Its block kind, `Gae`, says whether a base part
/// ([`frame`]) comes first: 0 or 1, then the base part where 1, then the GAE payload.
pub(crate) struct Gae;

impl OneStage for Gae {
    fn stage(
        &self,
        block: &BlockValues,
        base: Option<Base>,
        bound: BlockBound,
        _par: bool,
        _beat: Option<f64>,
    ) -> Option<super::Stage> {
        // The baseline codes over no base or the model's (as the method describes it).
        let base = match base {
            Some(Base::Previous(..)) => return None,
            Some(Base::Model(b)) => Some(b),
            None => None,
        };
        let (p, e) = encode(block, base.map(|b| b.prediction.as_slice()), bound)?;
        let mut out = vec![base.is_some() as u8];
        if let Some(b) = base {
            frame::put(b, &mut out);
        }
        out.extend_from_slice(&p);
        Some((vec![Staged::Done(BlockKind::Gae, out)], e, None))
    }
}

/// Decodes a `Gae` block payload: its base flag and part, then the GAE payload.
pub(crate) fn decode_block(
    payload: &[u8],
    decoder: Option<&Decoder>,
    shape: [usize; 3],
    dtype: ElementType,
    version: u16,
) -> Result<Vec<u8>> {
    let mut r = PayloadReader::new(payload);
    let pred = match r.bytes(1)?[0] {
        0 => None,
        1 => Some(frame::read(&mut r, decoder, shape)?),
        k => return Err(Error::corrupt(format!("unknown GAE base {k}"))),
    };
    decode(r.rest(), pred.as_deref(), shape, dtype, version)
}

/// Decodes a block coded by `encode` over the same `base`, in a stream of `version`.
pub fn decode(
    payload: &[u8],
    base: Option<&[f64]>,
    shape: [usize; 3],
    dtype: ElementType,
    version: u16,
) -> Result<Vec<u8>> {
    let n_vals: usize = shape.iter().product();
    if base.is_some_and(|b| b.len() != n_vals) {
        return Err(Error::corrupt("base prediction does not match the block"));
    }
    let b_at = |i: usize| base.map_or(0.0, |b| b[i]);
    let mut r = PayloadReader::new(payload);
    let specials = specials::read(&mut r, n_vals, dtype, version)?;
    let used = r.bytes(1)?[0] as usize;
    if used > N {
        return Err(Error::corrupt("GAE basis wider than a patch"));
    }
    let basis: Vec<f64> = r
        .bytes(4 * N * used)?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
        .collect();
    let step = f64::from_le_bytes(r.bytes(8)?.try_into().unwrap());
    if !(step.is_finite() && step > 0.0) || basis.iter().any(|v| !v.is_finite()) {
        return Err(Error::corrupt("bad GAE basis or step"));
    }
    let body_len = r.size()?;
    let count = patch_count(shape);
    // The body's length is checked against its frame before anything of it is allocated; the
    // patches are found by index, so a block that claims many costs no memory of its own.
    let body = crate::entropy::zstd_frame(r.rest(), body_len, "GAE body")?;
    let mut br = PayloadReader::new(&body);
    let bits = br.bytes(count.div_ceil(8))?.to_vec();
    // The coded patches are walked, not listed: a list (8 bytes a patch) could outgrow the
    // body it is read from many times over.
    let masked = || (0..count).filter(|&pi| bits[pi / 8] >> (pi % 8) & 1 == 1);
    let lengths = br.bytes(masked().count())?.to_vec();
    let mut out = crate::error::try_vec::<u8>(n_vals * dtype.size(), "a decoded block")?;
    (0..n_vals).for_each(|i| dtype.put_bits(&mut out, i, dtype.bits_of(dtype.round(b_at(i)))));
    for (pi, &k) in masked().zip(&lengths) {
        let k = k as usize;
        if k > used {
            return Err(Error::corrupt("GAE prefix longer than the basis"));
        }
        let mut acc = [0.0f64; N];
        for j in 0..k {
            let z = br.varint()?;
            let cq = ((z >> 1) as i64 ^ -((z & 1) as i64)) as f64 * step;
            for n in 0..N {
                acc[n] += basis[j * N + n] * cq;
            }
        }
        for (n, c) in cells(shape, patch(shape, pi)).iter().enumerate() {
            if let Some(i) = *c {
                let bits = dtype.bits_of(dtype.round(b_at(i) + acc[n]));
                dtype.put_bits(&mut out, i, bits);
            }
        }
    }
    if !br.rest().is_empty() {
        return Err(Error::corrupt("trailing bytes in a GAE block"));
    }
    for (i, bits) in specials {
        dtype.put_bits(&mut out, i, bits);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::residual::specials::Specials;

    /// The decoder finds patches by index; the encoder walks them in order.
    #[test]
    fn patches_by_index_are_the_patches_in_order() {
        for shape in [[1, 1, 1], [3, 8, 8], [2, 9, 17], [1, 40, 3], [5, 1, 100]] {
            let walked: Vec<_> = patches(shape).collect();
            assert_eq!(walked.len(), patch_count(shape), "{shape:?}");
            for (pi, &p) in walked.iter().enumerate() {
                assert_eq!(patch(shape, pi), p, "{shape:?} {pi}");
            }
        }
    }

    /// Power-of-two scaling is exact, so a block scaled by 2^k codes to the same payload, its
    /// step aside, wherever its values stay normal. Before the covariance was measured in a
    /// unit near the residuals, at 2^-900 it underflowed to 0 (an identity basis) and at 2^900
    /// it overflowed (no basis at all).
    #[test]
    fn the_basis_and_coefficients_do_not_depend_on_the_magnitude() {
        let shape = [2, 16, 16];
        let field: Vec<f64> = (0..512)
            .map(|i| ((i % 16) as f64 * 0.7).sin() * 40.0 + ((i / 16) as f64 * 0.3).cos() * 9.0)
            .collect();
        let coded = |k: i32| {
            let s = 2f64.powi(k);
            let v: Vec<f64> = field.iter().map(|x| x * s).collect();
            let specials = Specials::of(&v, ElementType::F64);
            let block = BlockValues::new(&v, &specials, shape, ElementType::F64);
            let (mut p, _) = encode(&block, None, BlockBound::Rms(0.05 * s)).expect("codes");
            // The step (f64) follows the specials, K and the K used columns of the basis.
            let k_at = specials_len(&specials, v.len());
            let step_at = k_at + 1 + p[k_at] as usize * N * 4;
            let step = f64::from_le_bytes(p[step_at..step_at + 8].try_into().unwrap());
            assert_eq!(step, 0.05 * s);
            p[step_at..step_at + 8].fill(0);
            p
        };
        let unscaled = coded(0);
        assert!(unscaled[specials_len(&Specials::of(&field, ElementType::F64), 512)] > 0);
        for k in [-900, -300, 300, 900] {
            assert!(coded(k) == unscaled, "scaled by 2^{k}");
        }
    }

    fn specials_len(specials: &Specials, n: usize) -> usize {
        let mut out = Vec::new();
        specials.write(n, ElementType::F64, &mut out);
        out.len()
    }
}
