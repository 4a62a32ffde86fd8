//! Data stored quantized (GRIB, packed netCDF) lie on a lattice o + k·s. Where the bound asks
//! for a finer step than s, LBRC codes the lattice integers instead: exact, with fewer
//! integers. Only the encoder looks for lattices; the payload is an ordinary LBRC one, with
//! one offset per plane where the planes lie on lattices of their own (GRIB packs each 2D
//! message with its own reference value: a stack of them shares the step, not the offset).

use super::quantize;
use crate::bound::ErrorStats;
use crate::dtype::ElementType;

/// The lattice `o + k·s` the finite values lie on, exactly as the decoder reconstructs them,
/// if its step s is coarser than `step`: a binary one (o = `lo`, s the greatest common divisor
/// of the values' distances from `lo`, in units of the lowest set bit among them), else a
/// rounded one ([`rounded_lattice`]). The values must come back bit for bit. Returns o, s, the
/// lattice integers and their (zero) errors.
pub(super) fn on_lattice(
    values: &[f64],
    lo: f64,
    step: f64,
    dtype: ElementType,
    par: bool,
) -> Option<(f64, f64, Vec<i64>, ErrorStats)> {
    // A sample's lattice is a multiple of the block's: where a sample's already falls to the
    // step, the block's does too (most blocks stop here, at little cost). Spread over the
    // block: its first values can be a boundary's, all alike.
    let spread: Vec<f64> = values
        .iter()
        .step_by((values.len() / 256) | 1)
        .copied()
        .collect();
    let binary = match lattice_step(&spread, lo) {
        Some(s) if s > step => lattice_step(values, lo).filter(|&s| s > step),
        _ => None,
    };
    let (offset, s) = match binary {
        Some(s) => (lo, s),
        None => rounded_lattice(values, &values[..values.len().min(4096)], lo, step)?,
    };
    let mut q = Vec::with_capacity(values.len());
    let stats = quantize::quantize(values, None, offset, s, dtype, &mut q, par)?;
    (stats.max_abs == 0.0).then_some((offset, s, q, stats))
}

/// Values a plane must hold for its own offset (8 bytes) to be worth looking for.
const MIN_PLANE: usize = 64;

/// The lattices `o_p + k·s` the finite values of each plane `p` of the block (along its slowest
/// axis) lie on, exactly as the decoder reconstructs them: o_p the plane's smallest value, s the
/// greatest common divisor of the planes' binary steps ([`plane_step`]), if s is coarser than
/// `beat` (the quantizer's step, or a lattice of the whole block) by enough to pay for the
/// offsets. Returns the offsets, s, the integers and their (zero) errors.
pub(super) fn on_plane_lattices(
    values: &[f64],
    shape: [usize; 3],
    beat: f64,
    dtype: ElementType,
) -> Option<(Vec<f64>, f64, Vec<i64>, ErrorStats)> {
    let (planes, m) = (shape[0], shape[1] * shape[2]);
    if planes < 2 || m < MIN_PLANE {
        return None;
    }
    // Each plane's offset, and its step (none where it holds one distinct value at most). Most
    // blocks stop at the first plane.
    let mut offsets = Vec::with_capacity(planes);
    let mut steps = Vec::with_capacity(planes);
    for plane in values.chunks_exact(m) {
        let (lo, hi) = crate::bound::finite_min_max(plane.iter().copied());
        offsets.push(if lo <= hi { lo } else { 0.0 });
        if lo < hi {
            steps.push(plane_step(plane, lo, beat)?);
        }
    }
    // The common step: the greatest common divisor of the steps, in units of the smallest
    // power of two among their lowest set bits (every step a whole multiple of it).
    let unit = steps
        .iter()
        .map(|&s| 2f64.powi(lowest_bit(s)))
        .fold(f64::INFINITY, f64::min);
    // (No steps: every plane holds one value at most, and LBRC serves such blocks as they are.)
    if steps.is_empty() || unit == 0.0 {
        return None;
    }
    let mut g = 0u64;
    for &s in &steps {
        let k = s / unit;
        if k >= (1u64 << 53) as f64 {
            return None;
        }
        g = gcd(g, k as u64);
    }
    let s = g as f64 * unit;
    // Each value saves log2(s / beat) bits; each offset costs 64.
    let saved = values.len() as f64 * (s / beat).log2();
    if !(s > beat && saved > 2.0 * 64.0 * planes as f64) {
        return None;
    }
    let mut q = Vec::with_capacity(values.len());
    let mut stats = ErrorStats::new(crate::bound::unit_of(s));
    let mut plane_q = Vec::with_capacity(m);
    for (plane, &o) in values.chunks_exact(m).zip(&offsets) {
        let st = quantize::quantize(plane, None, o, s, dtype, &mut plane_q, false)?;
        if st.max_abs != 0.0 {
            return None;
        }
        stats.merge(&st);
        q.extend_from_slice(&plane_q);
    }
    Some((offsets, s, q, stats))
}

/// The binary step of a plane's lattice from `lo` (its smallest value), if coarser than `beat`:
/// exact ([`lattice_step`]), or within the rounding to the element type of values in a higher
/// binade than `lo` (GRIB decodes `R + k·2^E` in f64, and a reader may store it as f32).
fn plane_step(plane: &[f64], lo: f64, beat: f64) -> Option<f64> {
    if let Some(s) = lattice_step(plane, lo).filter(|&s| s > beat) {
        return Some(s);
    }
    let (_, s) = rounded_lattice(plane, &plane[..plane.len().min(4096)], lo, beat)?;
    let p = 2f64.powi(s.log2().round() as i32);
    ((s / p - 1.0).abs() < 1e-6 && p > beat).then_some(p)
}

/// The exponent of the lowest set bit of a finite `d` > 0: `d` is a whole multiple of 2^that.
fn lowest_bit(d: f64) -> i32 {
    let bits = d.to_bits();
    let (e, m) = ((bits >> 52) as i32, bits & ((1 << 52) - 1));
    let m = if e == 0 { m } else { m | 1 << 52 };
    e.max(1) - 1075 + m.trailing_zeros() as i32
}

/// A lattice whose step is not a binary fraction (a decimal scale factor, as GRIB's `D`): the
/// values are o + k·s rounded to their type, so distances are multiples of s only up to a
/// rounding. s starts as the smallest gap between neighbours of `sample`, divided by the
/// smallest m ≤ 16 that fits; it is refined by least squares on the sample's distances from
/// its smallest value up to 1, 4, 16, … steps, every one of which must be a multiple of it
/// within a rounding; o and s are then fitted over the block (the caller checks that every
/// value comes back bit for bit).
fn rounded_lattice(values: &[f64], sample: &[f64], lo: f64, step: f64) -> Option<(f64, f64)> {
    let finite = |v: &'_ [f64]| {
        v.iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect::<Vec<_>>()
    };
    let sample = finite(sample);
    let gap = sample
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .filter(|&d| d > 0.0)
        .fold(f64::INFINITY, f64::min);
    // The lattice's step is at most the gap: most blocks stop here.
    if !(gap.is_finite() && gap > step) {
        return None;
    }
    let scale = sample.iter().fold(lo.abs(), |m, x| m.max(x.abs()));
    // A few roundings of f32 (the coarsest element type), relative to the values.
    let tol = scale * 2f64.powi(-21);
    // Distances within the sample (from its own smallest value): neighbours in space, so
    // the first stages find values a few steps apart.
    let base = sample.iter().fold(f64::INFINITY, |m, &x| m.min(x));
    let dists: Vec<f64> = sample.iter().map(|&x| x - base).collect();
    let far = dists.iter().fold(0.0f64, |m, &d| m.max(d));
    // The lattice's integers would span at least far / gap (its step is about the gap at
    // most): beyond 2^52 the quantizer refuses them anyway (its limit is 2^50). A span that
    // overflows (values of both signs near the f64 limits) would never end the refinement.
    if far / gap > 2f64.powi(52) {
        return None;
    }
    let refine = |mut s: f64| -> Option<f64> {
        let mut steps = 1.0;
        loop {
            let (mut kd, mut kk) = (0.0, 0.0);
            for &d in dists.iter().filter(|&&d| d <= (steps + 0.5) * s) {
                let k = (d / s).round();
                if (d - k * s).abs() > tol {
                    return None;
                }
                kd += k * d;
                kk += k * k;
            }
            if kk > 0.0 {
                s = kd / kk;
            }
            if (steps + 0.5) * s >= far {
                return Some(s);
            }
            steps *= 4.0;
        }
    };
    let mut s = (1..=16)
        .map(|m| gap / m as f64)
        .take_while(|&s| s > step && s > 8.0 * tol)
        .find_map(refine)?;
    // The coarsest lattice that fits: a multiple of s may too (fewer, smaller integers).
    let fits = |s: f64| {
        dists
            .iter()
            .all(|&d| (d - (d / s).round() * s).abs() <= tol)
    };
    for _ in 0..8 {
        match (2..=5).map(|r| r as f64 * s).find(|&c| fits(c)) {
            Some(c) => s = c,
            None => break,
        }
    }
    // Least squares of x = o + k·s over the block, centred (k the lattice index from lo).
    let all = finite(values);
    let ks: Vec<f64> = all.iter().map(|&x| ((x - lo) / s).round()).collect();
    let n = all.len() as f64;
    let (mk, mx) = (ks.iter().sum::<f64>() / n, all.iter().sum::<f64>() / n);
    let (mut kx, mut kk) = (0.0, 0.0);
    for (&k, &x) in ks.iter().zip(&all) {
        kx += (k - mk) * (x - mx);
        kk += (k - mk) * (k - mk);
    }
    let fitted = if kk > 0.0 { kx / kk } else { s };
    Some((mx - fitted * mk, fitted)).filter(|&(o, s)| o.is_finite() && s > step)
}

/// The greatest common divisor of the finite values' distances from `lo`, in units of the
/// lowest set bit among them (None without two distinct values).
fn lattice_step(values: &[f64], lo: f64) -> Option<f64> {
    let finite = || values.iter().filter(|x| x.is_finite()).map(|&x| x - lo);
    // The lowest set bit of any distance: every distance is a whole multiple of 2^low.
    let low = finite().filter(|&d| d > 0.0).map(lowest_bit).min()?;
    let unit = 2f64.powi(low);
    let mut g = 0u64;
    for d in finite() {
        let k = d / unit;
        if k >= (1u64 << 53) as f64 {
            return None;
        }
        // At 1 the divisor stays 1 (as on most lattices, whose unit is their step): only the
        // range is left to check (the divisions were 13 % of compressing era5_t2m at 1e-6).
        if g != 1 {
            g = gcd(g, k as u64);
        }
    }
    Some(g as f64 * unit)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::super::{decode, encode, Payload, PLANE_OFFSETS};
    use super::*;
    use crate::bound::BlockBound;
    use crate::params::IntCoder;

    /// Plane `p`'s offset: an f32 whose fraction the other planes' lattices do not hold.
    fn offset(p: usize) -> f64 {
        (3.0 + p as f64 * 0.0137) as f32 as f64
    }

    /// Four planes of 8x16 on step 2^-8, each on its own offset; plane 2 all one value, plane
    /// 3 with a NaN.
    fn stacked() -> Vec<f64> {
        let mut v: Vec<f64> = (0..4 * 128)
            .map(|i| {
                let (p, j) = (i / 128, i % 128);
                let offset = offset(p);
                let k = if p == 2 { 0 } else { (j * j * 7 + p * 31) % 97 };
                offset + k as f64 / 256.0
            })
            .collect();
        v[3 * 128 + 5] = f64::NAN;
        v
    }

    #[test]
    fn planes_on_lattices_of_their_own_share_one_step() {
        let v = stacked();
        let (offsets, s, q, stats) =
            on_plane_lattices(&v, [4, 8, 16], 1e-3, ElementType::F32).unwrap();
        assert_eq!(s, 1.0 / 256.0);
        assert_eq!(stats.max_abs, 0.0);
        // Each plane's smallest value.
        for (p, o) in offsets.iter().enumerate() {
            let plane = v[p * 128..(p + 1) * 128].iter().filter(|x| x.is_finite());
            assert_eq!(*o, plane.fold(f64::INFINITY, |m, &x| m.min(x)), "plane {p}");
        }
        for (i, &x) in v.iter().enumerate().filter(|(_, x)| x.is_finite()) {
            assert_eq!(offsets[i / 128] + q[i] as f64 * s, x, "value {i}");
        }
        // Not where the bound asks for no finer step, nor where one plane is off its lattice.
        assert!(on_plane_lattices(&v, [4, 8, 16], 1.0 / 256.0, ElementType::F32).is_none());
        let mut off = v.clone();
        off[130] += 1e-3;
        assert!(on_plane_lattices(&off, [4, 8, 16], 1e-3, ElementType::F32).is_none());
    }

    /// The payload with plane offsets decodes to the values bit for bit in version 13, and
    /// nowhere else: an older version, over a base, a non-finite offset, offsets cut short.
    #[test]
    fn plane_offsets_decode_exactly_and_only_where_they_may_stand() {
        let v = stacked();
        let shape = [4, 8, 16];
        let (coded, _) = encode(
            &v,
            shape,
            BlockBound::Max(1e-4),
            ElementType::F64,
            IntCoder::Context,
            false,
        )
        .unwrap();
        let Payload::Lbrc(p) = coded else {
            panic!("a constant block")
        };
        assert_eq!(p[..8], PLANE_OFFSETS.to_le_bytes());
        let dec = |p: &[u8], base: Option<&[f64]>, version| {
            decode(p, base, None, shape, ElementType::F64, false, version)
        };
        let back = dec(&p, None, 13).unwrap();
        for (i, b) in back.chunks_exact(8).enumerate() {
            assert_eq!(b, v[i].to_le_bytes(), "value {i}");
        }
        let err = |r: crate::error::Result<Vec<u8>>| r.unwrap_err().to_string();
        assert!(err(dec(&p, None, 12)).contains("plane offsets"));
        assert!(err(dec(&p, Some(&[0.0; 512]), 13)).contains("over a base"));
        let mut nan = p.clone();
        nan[24..32].copy_from_slice(&f64::INFINITY.to_le_bytes());
        assert!(err(dec(&nan, None, 13)).contains("not finite"));
        assert!(dec(&p[..16 + 4 * 8 - 1], None, 13).is_err());
    }
}
