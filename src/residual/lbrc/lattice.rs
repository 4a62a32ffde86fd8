//! Data stored quantized (GRIB, packed netCDF) lie on a lattice o + k·s. Where the bound asks
//! for a finer step than s, LBRC codes the lattice integers instead: exact, with fewer
//! integers. Only the encoder looks for lattices; the payload is an ordinary LBRC one, with
//! one offset per plane where the planes lie on lattices of their own (GRIB packs each 2D
//! message with its own reference value: a stack of them shares the step, not the offset).

mod fit;

use super::quantize;
use crate::bound::{BlockBound, ErrorStats};
use crate::dtype::ElementType;

/// The lattice `o + k·s` the finite values lie on, as the decoder reconstructs them, if its
/// step s is coarser than `step`: a binary one (o = `lo`, s the greatest common divisor of the
/// values' distances from `lo`, in units of the lowest set bit among them), or a rounded one
/// ([`rounded_lattice`]) coarser than that, where there is one. The values must come back bit
/// for bit, or, where no offset and step found do that (values unpacked in arithmetic the
/// decoder's does not repeat: f32 throughout, or f64 kept as f64), within `bound` from the
/// fitted one. Returns o, s, the lattice integers and their errors.
pub(super) fn on_lattice(
    values: &[f64],
    lo: f64,
    step: f64,
    bound: BlockBound,
    dtype: ElementType,
    par: bool,
) -> Option<(f64, f64, Vec<i64>, ErrorStats)> {
    // Where a sample's lattice already falls to the step, the block's does too (most blocks
    // stop here, at little cost).
    let binary = match lattice_step(&spread(values), lo) {
        Some(s) if s > step => lattice_step(values, lo).filter(|&s| s > step),
        _ => None,
    };
    let on = |(offset, s): (f64, f64)| {
        let mut q = Vec::with_capacity(values.len());
        let stats = quantize::quantize(values, None, offset, s, dtype, &mut q, par)?;
        Some((offset, s, q, stats))
    };
    let exact = |(.., stats): &(f64, f64, Vec<i64>, ErrorStats)| stats.max_abs == 0.0;
    let binary = binary.and_then(|s| on((lo, s)).filter(exact));
    // A rounded lattice coarser still: values packed with a scale that is no binary fraction
    // lie on their element type's spacing too, a binary lattice where the target is tight
    // (or lossless).
    let beat = binary.as_ref().map_or(step, |b| b.1);
    let rounded = || {
        let (o, s) = rounded_lattice(values, &values[..values.len().min(4096)], lo, beat)?;
        // GRIB's decimal step first, then the fit, then the linear program (each try a pass
        // over the block, the cheapest first).
        let decimal = decimal_step(s).filter(|&c| c > beat);
        if let Some(found) =
            decimal.and_then(|c| on((decimal_offset(values, lo, c, dtype)?, c)).filter(exact))
        {
            return Some(found);
        }
        let fitted = on((o, s))?;
        if exact(&fitted) {
            return Some(fitted);
        }
        (fit::feasible(values, o, s, dtype).and_then(on))
            .filter(exact)
            .or_else(|| fitted.3.meets(bound).then_some(fitted))
    };
    rounded().or(binary)
}

/// Values a plane must hold for its own offset (8 bytes) to be worth looking for.
const MIN_PLANE: usize = 64;

/// The lattices `o_p + k·s` the finite values of each plane `p` of the block (along its slowest
/// axis) lie on, as the decoder reconstructs them, if s is coarser than `beat` (the quantizer's
/// step, or a lattice of the whole block) by enough to pay for the offsets: binary ones (o_p the
/// plane's smallest value, s the greatest common divisor of the planes' steps) or decimal ones
/// (s GRIB's 2^E·10^-D, [`plane_step`]; o_p from [`decimal_offset`], else the plane's smallest
/// value). The values must come back within `bound` (bit for bit, where the offsets allow).
/// Returns the offsets, s, the integers and their errors.
pub(super) fn on_plane_lattices(
    values: &[f64],
    shape: [usize; 3],
    beat: f64,
    bound: BlockBound,
    dtype: ElementType,
) -> Option<(Vec<f64>, f64, Vec<i64>, ErrorStats)> {
    let (planes, m) = (shape[0], shape[1] * shape[2]);
    if planes < 2 || m < MIN_PLANE || !may_lie_on_lattice(&values[..m], beat) {
        return None;
    }
    // Each plane's offset, and its step (none where it holds one distinct value at most). Most
    // blocks stop at the first plane. The planes of a variable share their step: where an
    // earlier plane's decimal step fits a plane, it needs no search (and its offset holds for
    // any step that divides it).
    let mut offsets = Vec::with_capacity(planes);
    let mut steps = Vec::with_capacity(planes);
    let mut known = None;
    for plane in values.chunks_exact(m) {
        let (lo, hi) = crate::bound::finite_min_max(plane.iter().copied());
        if lo >= hi {
            offsets.push(if lo == hi { lo } else { 0.0 });
            continue;
        }
        let decimal = |c| Some((PlaneStep::Decimal(c), decimal_offset(plane, lo, c, dtype)?));
        // Where no offset reproduces every value (f64, or unpacking that rounded more than
        // once), the plane's smallest value: on the lattice within those roundings.
        let (step, offset) = match known.and_then(decimal) {
            Some(fits) => fits,
            None => match plane_step(plane, lo, beat)? {
                PlaneStep::Decimal(c) => decimal(c).unwrap_or((PlaneStep::Decimal(c), lo)),
                binary => (binary, lo),
            },
        };
        if let PlaneStep::Decimal(c) = step {
            known = Some(c);
        }
        steps.push(step);
        offsets.push(offset);
    }
    // (No steps: every plane holds one value at most, and LBRC serves such blocks as they are.)
    let s = match *steps.first()? {
        PlaneStep::Binary(_) => binary_gcd(&steps)?,
        PlaneStep::Decimal(_) => decimal_common(&steps)?,
    };
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
        stats.merge(&st);
        q.extend_from_slice(&plane_q);
    }
    stats.meets(bound).then_some((offsets, s, q, stats))
}

/// Whether a plane may lie on a lattice coarser than `beat`, from a spread sample and its first
/// values (most blocks lie on none, and [`plane_step`] passes over the whole plane twice to say
/// so): the plane's binary step divides the sample's, and no two of its first values differ by
/// less than its step. Where this says no, [`plane_step`] gives None.
fn may_lie_on_lattice(plane: &[f64], beat: f64) -> bool {
    let sample = spread(plane);
    let (lo, _) = crate::bound::finite_min_max(sample.iter().copied());
    match lattice_step(&sample, lo) {
        Some(s) if s <= beat => least_gap(&plane[..plane.len().min(4096)]) > beat,
        _ => true,
    }
}

/// About 256 values spread over the whole of `values` (its first ones can be a boundary's, all
/// alike), for a sample's lattice: a multiple of the lattice of all.
fn spread(values: &[f64]) -> Vec<f64> {
    (values.iter().step_by((values.len() / 256) | 1))
        .copied()
        .collect()
}

/// A plane's lattice step.
#[derive(Clone, Copy)]
enum PlaneStep {
    /// A whole multiple of a power of two: the plane's smallest value is on the lattice.
    Binary(f64),
    /// GRIB's decimal scale, 2^E·10^-D: each plane's offset is the one its values' roundings
    /// allow ([`decimal_offset`]).
    Decimal(f64),
}

impl PlaneStep {
    /// The binary step, None if decimal.
    fn binary(self) -> Option<f64> {
        match self {
            PlaneStep::Binary(s) => Some(s),
            PlaneStep::Decimal(_) => None,
        }
    }

    /// The decimal step, None if binary.
    fn decimal(self) -> Option<f64> {
        match self {
            PlaneStep::Binary(_) => None,
            PlaneStep::Decimal(c) => Some(c),
        }
    }
}

/// The greatest common divisor of binary steps, in units of the smallest power of two among
/// their lowest set bits (every step a whole multiple of it); None if a step is decimal.
fn binary_gcd(steps: &[PlaneStep]) -> Option<f64> {
    let steps: Vec<f64> = steps.iter().map(|s| s.binary()).collect::<Option<_>>()?;
    let unit = (steps.iter())
        .map(|&s| 2f64.powi(lowest_bit(s)))
        .fold(f64::INFINITY, f64::min);
    if unit == 0.0 {
        return None;
    }
    let mut g = 0u64;
    for s in steps {
        let k = s / unit;
        if k >= (1u64 << 53) as f64 {
            return None;
        }
        g = gcd(g, k as u64);
    }
    Some(g as f64 * unit)
}

/// The finest of decimal steps, where every step is a whole multiple of it (a plane with few
/// distinct values can lie on a coarser lattice than the others); None if a step is binary.
fn decimal_common(steps: &[PlaneStep]) -> Option<f64> {
    let steps: Vec<f64> = steps.iter().map(|s| s.decimal()).collect::<Option<_>>()?;
    let finest = steps.iter().copied().fold(f64::INFINITY, f64::min);
    let whole = |&c: &f64| {
        let r = c / finest;
        (r - r.round()).abs() < 1e-6 * r
    };
    steps.iter().all(whole).then_some(finest)
}

/// The step of a plane's lattice from `lo` (its smallest value), if coarser than `beat`: a
/// binary one, exact ([`lattice_step`]) or within the rounding to the element type of values in
/// a higher binade than `lo` (GRIB decodes `R + k·2^E` in f64, and a reader may store it as
/// f32), or a decimal one ([`decimal_step`]).
fn plane_step(plane: &[f64], lo: f64, beat: f64) -> Option<PlaneStep> {
    if let Some(s) = lattice_step(plane, lo).filter(|&s| s > beat) {
        return Some(PlaneStep::Binary(s));
    }
    let (_, s) = rounded_lattice(plane, &plane[..plane.len().min(4096)], lo, beat)?;
    let p = 2f64.powi(s.log2().round() as i32);
    if (s / p - 1.0).abs() < 1e-6 && p > beat {
        return Some(PlaneStep::Binary(p));
    }
    let c = decimal_step(s)?;
    (c > beat).then_some(PlaneStep::Decimal(c))
}

/// 10^D for GRIB's decimal scale factors D = 1 … 9 (exact in f64).
const DECIMAL: [f64; 9] = [1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// The step `2^E / 10^D` (GRIB's binary and decimal scale factors, D ≥ 1) within 1e-5 of a
/// fitted step `s`: GRIB decodes `(R + X·2^E)·10^-D` in f64, which a fitted step matches only
/// to the rounding of the values read.
fn decimal_step(s: f64) -> Option<f64> {
    DECIMAL.iter().find_map(|&p| {
        let c = 2f64.powi((s * p).log2().round() as i32) / p;
        ((s / c - 1.0).abs() < 1e-5).then_some(c)
    })
}

/// The offset of a decimal lattice of step `c` through the finite `values` (`lo` among them)
/// that reproduces every value in the element type `dtype`: each value less its multiple of c
/// bounds it to half the value's last place either side (a least-squares fit is only as close
/// as the values' roundings average out: too far where a plane has few distinct values or
/// values near 0). The middle of those bounds; None where they leave none.
fn decimal_offset(values: &[f64], lo: f64, c: f64, dtype: ElementType) -> Option<f64> {
    let (mut a, mut b) = (f64::NEG_INFINITY, f64::INFINITY);
    for x in values.iter().copied().filter(|x| x.is_finite()) {
        let (down, up) = match dtype {
            ElementType::F32 => ((x as f32).next_down() as f64, (x as f32).next_up() as f64),
            ElementType::F64 => (x.next_down(), x.next_up()),
        };
        let o = x - ((x - lo) / c).round() * c;
        a = a.max(o - 0.5 * (x - down));
        b = b.min(o + 0.5 * (up - x));
        if a > b {
            return None;
        }
    }
    Some(0.5 * (a + b)).filter(|o| o.is_finite())
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
/// smallest m ≤ 16 that fits: every distance of the sample from its smallest value must be a
/// multiple of it within a rounding, the multiples counted along the sorted values from their
/// median (so that extremes far from the others do not throw it off); o and s are then fitted
/// over the block (the caller checks that every value comes back bit for bit).
fn rounded_lattice(values: &[f64], sample: &[f64], lo: f64, step: f64) -> Option<(f64, f64)> {
    let finite = |v: &'_ [f64]| {
        v.iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect::<Vec<_>>()
    };
    // The lattice's step is at most the gap: most blocks stop here.
    let gap = least_gap(sample);
    if !(gap.is_finite() && gap > step) {
        return None;
    }
    let sample = finite(sample);
    let scale = sample.iter().fold(lo.abs(), |m, x| m.max(x.abs()));
    // One unit of f32's last place (the coarsest element type) at the largest value: the most
    // two values' roundings (half a unit each) move the distance between them.
    let tol = scale * 2f64.powi(-23);
    // Distances within the sample from its own smallest value, ascending.
    let base = sample.iter().fold(f64::INFINITY, |m, &x| m.min(x));
    let mut dists: Vec<f64> = sample.iter().map(|&x| x - base).collect();
    dists.sort_unstable_by(f64::total_cmp);
    let far = dists.last().copied().unwrap_or(0.0);
    // The lattice's integers would span at least far / gap (its step is about the gap at
    // most): beyond 2^52 the quantizer refuses them anyway (its limit is 2^50). A span that
    // overflows (values of both signs near the f64 limits) would never end the refinement.
    if far / gap > 2f64.powi(52) {
        return None;
    }
    // The steps that every distance is within `tol` of a multiple of, narrowing as the
    // multiples grow: each distance's multiple counted along the sorted distances from the one
    // before, where the bracket of steps leaves the rise's multiple one whole number, else from a
    // new start (the edge of a cluster, or a sparse extreme: its multiple is not known yet, and
    // a guess there threw the count off). Again while the bracket narrows: a rise left open may
    // be settled then. For the right step the bracket always holds it (each distance is within
    // `tol` of its multiple), so a bracket left empty rules the step out.
    let refine = |s: f64| -> Option<f64> {
        let (mut lo_s, mut hi_s) = (s - tol, s + tol);
        for _ in 0..16 {
            let before = (lo_s, hi_s);
            let (mut start, mut k, mut prev) = (dists[0], 0.0, dists[0]);
            for &d in &dists[1..] {
                let rise = d - prev;
                if rise <= 0.0 {
                    continue;
                }
                prev = d;
                let fewest = ((rise - tol) / hi_s).ceil().max(1.0);
                let most = ((rise + tol) / lo_s).floor();
                if fewest > most {
                    return None;
                }
                if fewest < most {
                    (start, k) = (d, 0.0);
                    continue;
                }
                k += fewest;
                lo_s = lo_s.max((d - start - tol) / k);
                hi_s = hi_s.min((d - start + tol) / k);
                if lo_s > hi_s {
                    return None;
                }
            }
            if (lo_s, hi_s) == before {
                break;
            }
        }
        Some(0.5 * (lo_s + hi_s))
    };
    let mut s = (1..=16)
        .map(|m| gap / m as f64)
        .take_while(|&s| s > step && s > 4.0 * tol)
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

/// The least nonzero distance between neighbouring finite values of `sample` (infinite where
/// there is none).
fn least_gap(sample: &[f64]) -> f64 {
    let finite: Vec<f64> = sample.iter().copied().filter(|x| x.is_finite()).collect();
    finite
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .filter(|&d| d > 0.0)
        .fold(f64::INFINITY, f64::min)
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
    use crate::params::IntCoder;

    /// [`on_plane_lattices`] on the tests' blocks of 4 planes of 8x16 f32 values, bit for bit.
    fn planes_exact(v: &[f64], beat: f64) -> Option<(Vec<f64>, f64, Vec<i64>, ErrorStats)> {
        on_plane_lattices(v, [4, 8, 16], beat, BlockBound::Lossless, ElementType::F32)
    }

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
        let (offsets, s, q, stats) = planes_exact(&v, 1e-3).unwrap();
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
        assert!(planes_exact(&v, 1.0 / 256.0).is_none());
        let mut off = v.clone();
        off[130] += 1e-3;
        assert!(planes_exact(&off, 1e-3).is_none());
    }

    /// GRIB's decoding of reference value `r` and packed integer `x` with decimal scale factor
    /// 2 (`(R + X)·10^-2` in f64), read as f32.
    fn grib(r: f32, x: u32) -> f64 {
        ((r as f64 + x as f64) * 0.01) as f32 as f64
    }

    /// Exactly the values, from the lattice `o_p + q·s` (one offset per plane of `m` values).
    fn exact(v: &[f64], offsets: &[f64], s: f64, q: &[i64], m: usize) {
        for (i, &x) in v.iter().enumerate().filter(|(_, x)| x.is_finite()) {
            assert_eq!(
                (offsets[i / m] + q[i] as f64 * s) as f32 as f64,
                x,
                "value {i}"
            );
        }
    }

    /// int16 packing's lattice (a step of about 9.3 units of f32) in two clusters with one value
    /// halfway between them, the median: counting multiples outward from it guessed the first
    /// gaps' (500 steps) from a step known to 13 %, and missed.
    #[test]
    fn a_lattice_in_clusters_is_found() {
        let (s, o) = (0.000_282_885_292_158_698, 291.081_234_5);
        let v: Vec<f64> = (0..4096u64)
            .map(|i| {
                let k = match i {
                    0..2048 => i,
                    2048 => 2547,
                    _ => i + 998,
                };
                (o + k as f64 * s) as f32 as f64
            })
            .collect();
        let lo = v.iter().fold(f64::INFINITY, |m, &x| m.min(x));
        let (fo, fs, q, stats) = on_lattice(
            &v,
            lo,
            4.6e-5,
            BlockBound::Lossless,
            ElementType::F32,
            false,
        )
        .unwrap();
        assert!((fs / s - 1.0).abs() < 1e-6 && stats.max_abs == 0.0);
        exact(&v, &[fo], fs, &q, v.len());
    }

    /// A block on one decimal lattice whose smallest value lies far below the next but one: the
    /// step's fit from the few values near the smallest threw the search off.
    #[test]
    fn a_decimal_lattice_with_sparse_low_values_is_found() {
        let v: Vec<f64> = (0..1024u32)
            .map(|i| {
                grib(
                    29000.37,
                    [0, 1]
                        .get(i as usize)
                        .copied()
                        .unwrap_or(40 + i * i * 7 % 900),
                )
            })
            .collect();
        let lo = v.iter().fold(f64::INFINITY, |m, &x| m.min(x));
        let (o, s, q, stats) =
            on_lattice(&v, lo, 1e-3, BlockBound::Lossless, ElementType::F32, false).unwrap();
        assert_eq!((s, stats.max_abs), (0.01, 0.0));
        exact(&v, &[o], s, &q, v.len());
    }

    /// Stacked GRIB messages with a decimal scale: each plane on its own reference value (not a
    /// whole number of steps apart); plane 2 with few distinct values, crossing 0, plane 3 all
    /// one value with a NaN.
    #[test]
    fn planes_on_decimal_lattices_of_their_own_share_one_step() {
        let refs = [29000.37f32, 29123.83, -3.284_861, 28731.1];
        let mut v: Vec<f64> = (0..4 * 128u32)
            .map(|i| {
                let (p, j) = (i as usize / 128, i % 128);
                let x = match p {
                    2 => j % 7 * 10,
                    3 => 0,
                    _ => (j * j * 7 + p as u32 * 31) % 997,
                };
                grib(refs[p], x)
            })
            .collect();
        v[3 * 128 + 5] = f64::NAN;
        let (offsets, s, q, stats) = planes_exact(&v, 1e-3).unwrap();
        assert_eq!((s, stats.max_abs), (0.01, 0.0));
        exact(&v, &offsets, s, &q, 128);
        // Not where one plane is off its lattice.
        let mut off = v.clone();
        off[130] += 3e-3;
        assert!(planes_exact(&off, 1e-3).is_none());
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
