//! Error targets and the choice of a quantization step that meets them.
//!
//! Every target is checked on the actual reconstruction (the values the decoder will produce,
//! rounded to the element type), never assumed from the step.

use crate::dtype::ElementType;
use rayon::prelude::*;

/// What the reconstruction must satisfy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Bit-exact.
    Lossless,
    /// Per block: RMS error over the finite values ≤ τ·R (R: the value range).
    Nrmse(f64),
    /// Pointwise |x − x'| ≤ ε.
    Abs(f64),
    /// Pointwise |x − x'| ≤ ε·R.
    Rel(f64),
    /// Global PSNR ≥ P dB, i.e. RMSE ≤ R·10^(−P/20); met by meeting that NRMSE in every block.
    Psnr(f64),
}

/// A target resolved against the value range: what each block must meet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BlockBound {
    Lossless,
    /// Block RMS error ≤ this.
    Rms(f64),
    /// Pointwise error ≤ this.
    Max(f64),
}

impl Target {
    pub fn code(self) -> u8 {
        match self {
            Target::Lossless => 0,
            Target::Nrmse(_) => 1,
            Target::Abs(_) => 2,
            Target::Rel(_) => 3,
            Target::Psnr(_) => 4,
        }
    }

    pub fn value(self) -> f64 {
        match self {
            Target::Lossless => 0.0,
            Target::Nrmse(v) | Target::Abs(v) | Target::Rel(v) | Target::Psnr(v) => v,
        }
    }

    pub fn from_code(code: u8, value: f64) -> Option<Target> {
        Some(match code {
            0 => Target::Lossless,
            1 => Target::Nrmse(value),
            2 => Target::Abs(value),
            3 => Target::Rel(value),
            4 => Target::Psnr(value),
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::Lossless => "lossless",
            Target::Nrmse(_) => "nrmse",
            Target::Abs(_) => "abs",
            Target::Rel(_) => "rel",
            Target::Psnr(_) => "psnr",
        }
    }

    /// Whether the target needs the value range.
    pub fn needs_range(self) -> bool {
        matches!(self, Target::Nrmse(_) | Target::Rel(_) | Target::Psnr(_))
    }

    /// The per-block bound for value range `range` (finite values only; 0 for constant data).
    /// The bound is always finite: a range that overflowed (max − min of values near ±f64::MAX)
    /// counts as f64::MAX, a lower bound of the true one, and a bound that overflows is
    /// clamped, so that no reconstruction "meets" an infinite bound.
    pub fn resolve(self, range: f64) -> BlockBound {
        let range = if range.is_nan() {
            0.0
        } else {
            range.min(f64::MAX)
        };
        let finite = |b: f64| if b.is_nan() { 0.0 } else { b.min(f64::MAX) };
        match self {
            Target::Lossless => BlockBound::Lossless,
            Target::Nrmse(t) => BlockBound::Rms(finite(t * range)),
            Target::Psnr(p) => BlockBound::Rms(finite(range * 10f64.powf(-p / 20.0))),
            Target::Abs(e) => BlockBound::Max(finite(e)),
            Target::Rel(e) => BlockBound::Max(finite(e * range)),
        }
    }
}

/// (min, max) of the finite values; (+∞, −∞) if there are none.
pub fn finite_min_max(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        // Plain comparisons: no NaN reaches them, and they compile to branch-free selects.
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (if v < l { v } else { l }, if v > h { v } else { h })
        })
}

/// The middle of finite `lo` ≤ `hi`: `(lo + hi) / 2`, or halves added where that sum overflows
/// (f64 values of one sign near f64::MAX), so that an offset is never infinite.
pub(crate) fn midpoint(lo: f64, hi: f64) -> f64 {
    let m = 0.5 * (lo + hi);
    if m.is_finite() {
        m
    } else {
        0.5 * lo + 0.5 * hi
    }
}

/// [`finite_min_max`] of a slice, the same bits, in lanes the compiler keeps in vector
/// registers ([`laned_min_max`]; the filtering fold above compiles to a scalar loop: about a
/// tenth of LBRC's stage on small blocks).
pub(crate) fn finite_min_max_of(values: &[f64]) -> (f64, f64) {
    let laned = laned_min_max::<f64, 8>(
        bytemuck::cast_slice(values),
        |b| f64::from_ne_bytes(b.try_into().unwrap()),
        (f64::INFINITY, f64::NEG_INFINITY),
    );
    zero_signs(laned, values.iter().copied())
}

/// [`finite_min_max`] of f32 values widened, the same bits, in lanes (the step writer's range
/// of each field it writes).
#[cfg(any(feature = "adios", test))]
pub(crate) fn finite_min_max_of_f32(values: &[f32]) -> (f64, f64) {
    let laned = laned_min_max::<f32, 4>(
        bytemuck::cast_slice(values),
        |b| f32::from_ne_bytes(b.try_into().unwrap()),
        (f32::INFINITY, f32::NEG_INFINITY),
    );
    zero_signs(laned, values.iter().map(|&x| x as f64))
}

/// Only zeros of both signs compare equal with different bits: an extreme of zero takes the
/// sign of the first zero, as the fold's.
fn zero_signs((mut lo, mut hi): (f64, f64), mut values: impl Iterator<Item = f64>) -> (f64, f64) {
    if lo == 0.0 || hi == 0.0 {
        let zero = values.find(|&v| v == 0.0).unwrap_or(0.0);
        lo = if lo == 0.0 { zero } else { lo };
        hi = if hi == 0.0 { zero } else { hi };
    }
    (lo, hi)
}

/// The least and greatest finite values in `bytes`, `B` bytes each (`read` one, compared in
/// its own type: nothing widened per value), in lanes that the compiler keeps in vector
/// registers; (inf, -inf) where none. The extremes of [`finite_min_max`], but of zeros the
/// sign is any: [`span`] ignores it, and [`finite_min_max_of`] sets it.
#[inline(always)]
fn laned_min_max<T: Copy + PartialOrd + Into<f64>, const B: usize>(
    bytes: &[u8],
    read: impl Fn(&[u8]) -> T,
    (inf, neg_inf): (T, T),
) -> (f64, f64) {
    const LANES: usize = 8;
    let (mut lo, mut hi) = ([inf; LANES], [neg_inf; LANES]);
    // Finite: strictly between the infinities (NaN compares false).
    let mut add = |k: usize, v: T| {
        let f = inf > v && v > neg_inf;
        lo[k] = if f && v < lo[k] { v } else { lo[k] };
        hi[k] = if f && v > hi[k] { v } else { hi[k] };
    };
    let chunks = bytes.chunks_exact(B * LANES);
    for (k, b) in chunks.remainder().chunks_exact(B).enumerate() {
        add(k, read(b));
    }
    for c in chunks {
        for k in 0..LANES {
            add(k, read(&c[k * B..(k + 1) * B]));
        }
    }
    let lo = lo.into_iter().fold(inf, |m, v| if v < m { v } else { m });
    let hi = hi
        .into_iter()
        .fold(neg_inf, |m, v| if v > m { v } else { m });
    (lo.into(), hi.into())
}

/// max − min of a [`finite_min_max`] result; 0 when there were no finite values, f64::MAX when
/// the difference overflows (finite values of both signs near f64::MAX).
pub fn span((lo, hi): (f64, f64)) -> f64 {
    if hi >= lo {
        (hi - lo).min(f64::MAX)
    } else {
        0.0
    }
}

/// Range (max − min) of the finite values; 0 if there are none.
pub fn finite_range(values: impl IntoIterator<Item = f64>) -> f64 {
    span(finite_min_max(values))
}

/// The power of two at or below `x` (a bound, a step or a range), clamped to the normal
/// numbers; 2^-1022 for zero, 2^1023 for infinity. Errors are measured in such units: dividing
/// by a power of two is exact, so every figure is the same, but squares of errors near the
/// unit neither underflow (fields of 1e-160: a bound silently met by squares of 0) nor
/// overflow (fields beyond 1e154).
pub fn unit_of(x: f64) -> f64 {
    if x.is_nan() || x <= f64::MIN_POSITIVE {
        f64::MIN_POSITIVE
    } else if x > f64::MAX {
        f64::from_bits(0x7fe0_0000_0000_0000)
    } else {
        f64::from_bits(x.to_bits() & 0x7ff0_0000_0000_0000)
    }
}

impl BlockBound {
    /// The unit ([`unit_of`]) in which errors against this bound are measured.
    pub fn unit(self) -> f64 {
        match self {
            BlockBound::Lossless => 1.0,
            BlockBound::Rms(b) | BlockBound::Max(b) => unit_of(b),
        }
    }
}

/// Error statistics of a reconstruction over the finite values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorStats {
    pub count: usize,
    /// The sum of the squared errors, each error measured in `unit`s.
    pub sum_sq: f64,
    pub max_abs: f64,
    /// A power of two (`bound::unit_of`).
    pub unit: f64,
}

impl Default for ErrorStats {
    fn default() -> Self {
        ErrorStats::new(1.0)
    }
}

impl ErrorStats {
    /// No errors yet, measured in `unit` (a power of two, `bound::unit_of`).
    pub fn new(unit: f64) -> ErrorStats {
        debug_assert_eq!(unit, unit_of(unit));
        ErrorStats {
            count: 0,
            sum_sq: 0.0,
            max_abs: 0.0,
            unit,
        }
    }

    /// No error over `count` values: a reconstruction bit for bit (NaNs counted too).
    pub fn exact(count: usize) -> ErrorStats {
        ErrorStats {
            count,
            ..ErrorStats::default()
        }
    }

    /// The RMS error (0 when nothing was counted).
    pub fn rms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            (self.sum_sq / self.count as f64).sqrt() * self.unit
        }
    }

    pub fn add(&mut self, x: f64, y: f64) {
        if x.is_finite() {
            // A non-finite reconstruction of a finite value is an infinite error (f64::max
            // would silently drop a NaN).
            let d = (x - y).abs();
            let d = if d.is_nan() { f64::INFINITY } else { d };
            let du = d * (1.0 / self.unit);
            self.count += 1;
            self.sum_sq += du * du;
            self.max_abs = self.max_abs.max(d);
        }
    }

    /// The errors of `rec` against `values` in `unit`s, as [`ErrorStats::add`] of each pair,
    /// summed in four lanes (one chain of dependent additions ran at a quarter of the speed).
    pub fn between(values: &[f64], rec: &[f64], unit: f64) -> ErrorStats {
        const LANES: usize = 4;
        let inv = 1.0 / unit;
        let (mut count, mut sq, mut max) = (0, [0.0; LANES], [0.0f64; LANES]);
        let (xs, ys) = (values.chunks_exact(LANES), rec.chunks_exact(LANES));
        let (x_rest, y_rest) = (xs.remainder(), ys.remainder());
        for (x, y) in xs.zip(ys) {
            for l in 0..LANES {
                let d = (x[l] - y[l]).abs();
                let d = if d.is_nan() { f64::INFINITY } else { d };
                let d = if x[l].is_finite() { d } else { 0.0 };
                count += usize::from(x[l].is_finite());
                sq[l] += (d * inv) * (d * inv);
                max[l] = max[l].max(d);
            }
        }
        let mut s = ErrorStats {
            count,
            sum_sq: (sq[0] + sq[1]) + (sq[2] + sq[3]),
            max_abs: max.into_iter().fold(0.0, f64::max),
            unit,
        };
        x_rest.iter().zip(y_rest).for_each(|(&x, &y)| s.add(x, y));
        s
    }

    /// The sum of the squared errors in units of `unit` (a power of two; in units of 1 it
    /// overflows or vanishes where the errors are beyond about 1e154 or below 1e-162).
    pub fn sum_sq_in(&self, unit: f64) -> f64 {
        in_unit(self.sum_sq, self.unit, unit)
    }

    /// Adds `o`'s errors. Where the units differ, both sums move (exactly) to the unit of the
    /// largest error, so neither the larger errors' squares overflow nor the smaller ones'
    /// vanish against an empty sum's unit.
    pub fn merge(&mut self, o: &ErrorStats) {
        let max_abs = self.max_abs.max(o.max_abs);
        if o.unit != self.unit {
            let unit = if max_abs > 0.0 {
                unit_of(max_abs)
            } else {
                self.unit.max(o.unit)
            };
            self.sum_sq = in_unit(self.sum_sq, self.unit, unit) + in_unit(o.sum_sq, o.unit, unit);
            self.unit = unit;
        } else {
            self.sum_sq += o.sum_sq;
        }
        self.count += o.count;
        self.max_abs = max_abs;
    }

    /// Whether these errors satisfy `bound`. NaN errors (a finite value reconstructed as
    /// non-finite) never do.
    pub fn meets(&self, bound: BlockBound) -> bool {
        match bound {
            BlockBound::Lossless => self.max_abs == 0.0 && self.sum_sq == 0.0,
            BlockBound::Rms(r) => self.rms() <= r,
            BlockBound::Max(m) => self.max_abs <= m,
        }
    }
}

/// `sum` (squares of errors in units of `from`) in units of `to`: times (from/to)^2, exact for
/// powers of two. A zero or infinite sum stays as it is (its ratio may overflow or vanish); a
/// finite positive one has errors within `to`'s reach, so the ratio is finite.
fn in_unit(sum: f64, from: f64, to: f64) -> f64 {
    if sum == 0.0 || sum.is_infinite() {
        sum
    } else {
        let r = from / to;
        sum * r * r
    }
}

/// The first step to try for `bound`: the uniform quantizer's (RMS Δ/√12, max error Δ/2).
pub fn initial_step(bound: BlockBound) -> f64 {
    match bound {
        BlockBound::Lossless => 0.0,
        BlockBound::Rms(r) => r * 12f64.sqrt(),
        BlockBound::Max(m) => 2.0 * m,
    }
}

/// Values per chunk of [`data_range`].
pub(crate) const RANGE_CHUNK: usize = 1 << 16;

/// Value range of the finite elements other than the fill value (whose bits are `fill`), in
/// chunks (min/max: any order gives the same).
pub(crate) fn data_range(data: &[u8], dtype: ElementType, fill: Option<u64>, par: bool) -> f64 {
    let chunk = dtype.size() * RANGE_CHUNK;
    // In lanes of the element type ([`laned_min_max`]: the filtering fold was a fortieth of
    // compressing a Gray-Scott step).
    let min_max = |c: &[u8]| match (dtype, fill) {
        (ElementType::F32, None) => laned_min_max::<f32, 4>(
            c,
            |b| f32::from_le_bytes(b.try_into().unwrap()),
            (f32::INFINITY, f32::NEG_INFINITY),
        ),
        (ElementType::F64, None) => laned_min_max::<f64, 8>(
            c,
            |b| f64::from_le_bytes(b.try_into().unwrap()),
            (f64::INFINITY, f64::NEG_INFINITY),
        ),
        (_, Some(fill)) => finite_min_max(
            c.chunks_exact(dtype.size())
                .map(|b| dtype.read_bits(b))
                .filter(|&bits| bits != fill)
                .map(|bits| dtype.widen(bits)),
        ),
    };
    let join = |a: (f64, f64), b: (f64, f64)| (a.0.min(b.0), a.1.max(b.1));
    let none = (f64::INFINITY, f64::NEG_INFINITY);
    span(if !par {
        data.chunks(chunk).map(min_max).fold(none, join)
    } else {
        data.par_chunks(chunk).map(min_max).reduce(|| none, join)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laned_extremes_are_the_folds() {
        // Odd lengths (a remainder past the lanes), specials anywhere, one extreme per lane.
        for n in [0usize, 1, 7, 8, 9, 31, 1000] {
            let v: Vec<f64> = (0..n)
                .map(|i| match i % 11 {
                    3 => f64::NAN,
                    5 => f64::INFINITY,
                    7 => f64::NEG_INFINITY,
                    _ => ((i * 7919) % 1009) as f64 - 500.5,
                })
                .collect();
            let f32s: Vec<u8> = v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect();
            let f64s: Vec<u8> = v.iter().flat_map(|&x| x.to_le_bytes()).collect();
            let expected = finite_min_max(v.iter().copied());
            let read4 = |b: &[u8]| f32::from_le_bytes(b.try_into().unwrap());
            let read8 = |b: &[u8]| f64::from_le_bytes(b.try_into().unwrap());
            let (inf4, inf8) = (
                (f32::INFINITY, -f32::INFINITY),
                (f64::INFINITY, -f64::INFINITY),
            );
            let (f32s, f64s) = (
                laned_min_max::<f32, 4>(&f32s, read4, inf4),
                laned_min_max::<f64, 8>(&f64s, read8, inf8),
            );
            assert_eq!(f32s, expected, "f32, {n} values");
            assert_eq!(f64s, expected, "f64, {n} values");
        }
    }

    #[test]
    fn min_max_in_lanes_gives_the_folds_bits() {
        let pool = [
            0.0,
            -0.0,
            1.5,
            -2.25,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            -f64::MAX,
            7.0,
            1e-40,
        ];
        let mut s = 3u64;
        for len in [0, 1, 7, 8, 9, 16, 31, 100] {
            for _ in 0..200 {
                let v: Vec<f64> = (0..len)
                    .map(|_| {
                        s = s
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        pool[(s >> 33) as usize % pool.len()]
                    })
                    .collect();
                let (a, b) = (finite_min_max(v.iter().copied()), finite_min_max_of(&v));
                assert_eq!(
                    (a.0.to_bits(), a.1.to_bits()),
                    (b.0.to_bits(), b.1.to_bits()),
                    "{v:?}"
                );
                let w: Vec<f32> = v.iter().map(|&x| x as f32).collect();
                let (a, b) = (
                    finite_min_max(w.iter().map(|&x| x as f64)),
                    finite_min_max_of_f32(&w),
                );
                assert_eq!(
                    (a.0.to_bits(), a.1.to_bits()),
                    (b.0.to_bits(), b.1.to_bits()),
                    "{w:?}"
                );
            }
        }
    }

    #[test]
    fn psnr_resolves_to_the_equivalent_rms() {
        let BlockBound::Rms(r) = Target::Psnr(60.0).resolve(2.0) else {
            panic!()
        };
        assert!((r - 2e-3).abs() < 1e-15);
        assert_eq!(Target::Rel(1e-3).resolve(10.0), BlockBound::Max(1e-2));
        assert_eq!(finite_range([f64::NAN, 3.0, f64::INFINITY, -1.0]), 4.0);
        assert_eq!(finite_range([f64::NAN]), 0.0);
    }

    #[test]
    fn overflowing_ranges_give_finite_bounds() {
        let r = finite_range([1e308, -1e308, 5.0]);
        assert_eq!(r, f64::MAX);
        for t in [
            Target::Nrmse(1e-12),
            Target::Rel(1e-12),
            Target::Psnr(240.0),
        ] {
            for range in [r, f64::INFINITY] {
                let b = t.resolve(range);
                let v = match b {
                    BlockBound::Rms(v) | BlockBound::Max(v) => v,
                    BlockBound::Lossless => unreachable!(),
                };
                assert!(v.is_finite() && v > 1e290, "{t:?}: {b:?}");
                // An infinite error (1e308 decoded as -1e308) never meets it.
                let mut s = ErrorStats::default();
                s.add(1e308, -1e308);
                assert!(!s.meets(b), "{t:?}");
            }
        }
        assert_eq!(
            Target::Nrmse(10.0).resolve(f64::MAX),
            BlockBound::Rms(f64::MAX)
        );
    }

    #[test]
    fn stats_between_slices_are_those_of_each_pair() {
        let x: Vec<f64> = (0..23).map(|i| (i as f64 * 0.37).sin()).collect();
        let mut y: Vec<f64> = x.iter().map(|v| v + 1e-3 * v.cos()).collect();
        y[5] = x[5] + 0.25;
        let mut one = ErrorStats::default();
        x.iter().zip(&y).for_each(|(&a, &b)| one.add(a, b));
        let all = ErrorStats::between(&x, &y, 1.0);
        assert_eq!((all.count, all.max_abs), (one.count, one.max_abs));
        assert!((one.max_abs - 0.25).abs() < 1e-12);
        assert!((all.sum_sq - one.sum_sq).abs() <= 1e-15 * one.sum_sq);
        // Special originals are left out; a NaN reconstruction of a finite value (in a lane
        // or in the remainder) fails every bound.
        let (mut x2, mut y2) = (x.clone(), y.clone());
        x2[2] = f64::NAN;
        y2[2] = 7.0;
        assert_eq!(ErrorStats::between(&x2, &y2, 1.0).count, x.len() - 1);
        for at in [1, 22] {
            let mut y3 = y.clone();
            y3[at] = f64::NAN;
            assert!(!ErrorStats::between(&x, &y3, 1.0).meets(BlockBound::Rms(1e9)));
        }
    }

    #[test]
    fn units_are_powers_of_two_within_the_normal_numbers() {
        assert_eq!(unit_of(3.0), 2.0);
        assert_eq!(unit_of(0.5), 0.5);
        assert_eq!(unit_of(1e-5), 2f64.powi(-17));
        for tiny in [0.0, -1.0, 5e-324, f64::NAN] {
            assert_eq!(unit_of(tiny), f64::MIN_POSITIVE);
        }
        assert_eq!(unit_of(f64::INFINITY), 2f64.powi(1023));
        assert_eq!(unit_of(f64::MAX), 2f64.powi(1023));
        assert_eq!(BlockBound::Rms(3e-170).unit(), unit_of(3e-170));
        assert_eq!(BlockBound::Lossless.unit(), 1.0);
    }

    /// The same errors at any magnitude give the same figures, scaled, and the same answers:
    /// squares of errors of 1e-170 underflowed to 0 and met any RMS bound.
    #[test]
    fn stats_in_units_hold_at_any_magnitude() {
        let x: Vec<f64> = (0..37).map(|i| (i as f64 * 0.37).sin()).collect();
        let y: Vec<f64> = x.iter().map(|v| v + 1e-3 * v.cos()).collect();
        let plain = ErrorStats::between(&x, &y, 1.0);
        let rms = plain.rms();
        let mut plain_one = ErrorStats::default();
        x.iter().zip(&y).for_each(|(&a, &b)| plain_one.add(a, b));
        let rms_one = plain_one.rms();
        for k in [-900, -600, -1, 0, 7, 600, 1000] {
            let s = 2f64.powi(k);
            let (xs, ys): (Vec<f64>, Vec<f64>) =
                x.iter().zip(&y).map(|(a, b)| (a * s, b * s)).unzip();
            let b = BlockBound::Rms(rms * s);
            let st = ErrorStats::between(&xs, &ys, b.unit());
            let mut one = ErrorStats::new(b.unit());
            xs.iter().zip(&ys).for_each(|(&a, &c)| one.add(a, c));
            // Each against its own order of summation.
            for (st, rms) in [(st, rms), (one, rms_one)] {
                assert_eq!(st.rms(), rms * s, "2^{k}");
                assert_eq!(st.max_abs, plain.max_abs * s, "2^{k}");
                let meets = |f: f64| st.meets(BlockBound::Rms(rms * s * f));
                assert!(meets(1.0) && !meets(0.99), "2^{k}");
            }
        }
    }

    #[test]
    fn merging_across_units_keeps_small_and_large_errors() {
        let tiny = 2f64.powi(-600);
        let mut small = ErrorStats::new(tiny);
        (0..4).for_each(|_| small.add(3.0 * tiny, 0.0));
        // Into an empty sum of another unit: nothing vanishes.
        let mut all = ErrorStats::default();
        all.merge(&small);
        assert_eq!((all.count, all.rms()), (4, 3.0 * tiny));
        // With large errors of another unit: their squares do not overflow.
        let mut large = ErrorStats::new(2f64.powi(600));
        (0..12).for_each(|_| large.add(2f64.powi(601), 0.0));
        all.merge(&large);
        assert_eq!(all.count, 16);
        assert_eq!(all.rms(), 2f64.powi(601) * (0.75f64).sqrt());
        assert_eq!(all.max_abs, 2f64.powi(601));
        // An infinite error stays one, whatever the other side's unit.
        let mut bad = ErrorStats::new(tiny);
        bad.add(1.0, f64::NAN);
        all.merge(&bad);
        assert_eq!(all.rms(), f64::INFINITY);
        assert!(!all.meets(BlockBound::Rms(f64::MAX)));
        let mut again = ErrorStats::new(tiny);
        again.merge(&all);
        assert_eq!(again.rms(), f64::INFINITY);
    }

    #[test]
    fn stats_ignore_non_finite_originals_and_fail_on_nan_errors() {
        let mut s = ErrorStats::default();
        s.add(f64::NAN, f64::NAN);
        s.add(1.0, 1.5);
        assert_eq!((s.count, s.max_abs), (1, 0.5));
        assert!(s.meets(BlockBound::Max(0.5)) && !s.meets(BlockBound::Max(0.4)));
        let mut bad = ErrorStats::default();
        bad.add(1.0, f64::NAN);
        assert!(!bad.meets(BlockBound::Rms(1e9)) && !bad.meets(BlockBound::Max(1e9)));
    }
}
