//! Data stored quantized (GRIB, packed netCDF) lie on a lattice o + k·s. Where the bound asks
//! for a finer step than s, LBRC codes the lattice integers instead: exact, with fewer
//! integers. Only the encoder looks for lattices; the payload is an ordinary LBRC one.

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
    let low = finite()
        .filter(|&d| d > 0.0)
        .map(|d| {
            let bits = d.to_bits();
            let (e, m) = ((bits >> 52) as i32, bits & ((1 << 52) - 1));
            let m = if e == 0 { m } else { m | 1 << 52 };
            e.max(1) - 1075 + m.trailing_zeros() as i32
        })
        .min()?;
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
