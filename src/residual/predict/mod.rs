//! Block predictors of LBRC's quantized integers. A predictor turns a block's integers into
//! residuals (forward) and back (inverse, in the decoder); the payload names it by an id byte
//! followed by its parameters. Per block, the one whose residuals cost the fewest estimated bits
//! on a sample of positions is chosen.
//!
//! Adding a predictor: one file with a [`Family`] (what it proposes for a block, how it reads
//! itself back), and one line in [`FAMILIES`]; `doc/format.md` gets its id.

mod least_squares;
mod lorenzo;
pub mod nglr;

use crate::error::{Error, Result};
use crate::format::payload::PayloadReader;
pub(crate) use lorenzo::{Lorenzo, LORENZO_3D};
use nglr::Network;
use std::sync::Arc;

/// A fitted predictor of one block's integers (C order over a 3D block shape).
pub(crate) trait Predictor: Send + Sync {
    /// Its id, the payload's predictor byte.
    fn id(&self) -> u8;
    /// Its parameters, written after the id.
    fn put_params(&self, _out: &mut Vec<u8>) {}
    /// Its residual at one sampled position, from the corners of the position's Lorenzo cube
    /// (see [`sample_corners`]); `interior` where all of them lie in the block.
    fn sample(&self, v: &[i64; 8], interior: bool) -> i64;
    /// The histogram of its residuals' bit-length classes over `samples` and their raw bits
    /// (below the leading one): what [`choose`] weighs. One call per predictor, so that
    /// [`Predictor::sample`] is called directly in the loop.
    fn sampled_cost(&self, samples: &Samples) -> ([u32; 64], u64) {
        class_histogram(samples.iter().map(|(v, interior)| self.sample(v, interior)))
    }
    /// The share of the best earlier proposal's estimated cost it must stay below to be chosen
    /// (below 1 for predictors that cost decoding time).
    fn margin(&self) -> f64 {
        1.0
    }
    /// Its prediction of `q[idx]` from the values before it (what [`Predictor::forward`]
    /// subtracts there).
    fn predict_at(&self, q: &[i64], shape: [usize; 3], idx: usize) -> i64;
    /// [`Predictor::predict_at`] where the whole Lorenzo cube of `idx` lies in the block (its
    /// plane, row and column are not the first), given the distances of a row and a plane.
    fn predict_interior(&self, q: &[i64], idx: usize, row: usize, plane: usize) -> i64;
    /// The residuals of `q`.
    fn forward(&self, q: Vec<i64>, shape: [usize; 3], par: bool) -> Vec<i64>;
    /// Rebuilds the integers from their residuals, in place. Wrapping arithmetic: hostile input
    /// cannot panic. Fails only where its working memory cannot be had (a hostile block's
    /// claim: an error, not an abort).
    fn inverse(&self, q: &mut [i64], shape: [usize; 3]) -> Result<()>;
}

/// The histogram of the bit-length classes of `residuals` and their raw bits (below the
/// leading one): [`Predictor::sampled_cost`]'s.
#[inline(always)]
pub(super) fn class_histogram(residuals: impl Iterator<Item = i64>) -> ([u32; 64], u64) {
    let mut hist = [0u32; 64];
    let mut raw = 0u64;
    for r in residuals {
        let z = ((r << 1) ^ (r >> 63)) as u64;
        let cls = 64 - z.leading_zeros() as usize;
        hist[cls.min(63)] += 1;
        raw += cls.saturating_sub(1) as u64;
    }
    (hist, raw)
}

/// A boxed predictor.
pub(crate) type Boxed = Box<dyn Predictor>;

/// One kind of predictor: what it proposes for a block and how it reads itself back.
pub(crate) struct Family {
    /// Predictors worth trying on a block of `shape`, fitted where they need it on its
    /// `samples`.
    propose: fn(samples: &Samples, shape: [usize; 3]) -> Vec<Boxed>,
    /// The predictor of id `id` with its parameters from `r`; None where `id` is not this
    /// family's.
    read: fn(id: u8, r: &mut PayloadReader) -> Option<Result<Boxed>>,
}

/// Every predictor, in the order their proposals are weighed (an earlier one wins ties).
const FAMILIES: &[Family] = &[lorenzo::FAMILY, least_squares::FAMILY];

/// The corners of the Lorenzo cube of interior position `idx`, as [`sample_corners`] gives
/// them.
#[inline(always)]
pub(super) fn interior_corners(q: &[i64], idx: usize, row: usize, plane: usize) -> [i64; 8] {
    std::array::from_fn(|sub| q[idx - (sub & 1) * plane - (sub >> 1 & 1) * row - (sub >> 2 & 1)])
}

/// Calls `f(v, interior)` at every `stride`-th position with the corners of its Lorenzo cube:
/// `v[sub]` is the value offset by one along the axes in `sub` (bit 0 planes, bit 1 rows,
/// bit 2 columns), 0 outside the block as in Lorenzo prediction; `interior` when none is.
pub(super) fn sample_corners(
    n: usize,
    q: impl Fn(usize) -> i64,
    shape: [usize; 3],
    stride: usize,
    mut f: impl FnMut(&[i64; 8], bool),
) {
    let [_, b, c] = shape;
    let offs: [usize; 8] =
        std::array::from_fn(|sub| (sub & 1) * b * c + (sub >> 1 & 1) * c + (sub >> 2 & 1));
    let mut v = [0i64; 8];
    // The coordinates advance by the stride's own, with carries (no division per sample).
    let (si, sj, sk) = (stride / (b * c), (stride / c) % b, stride % c);
    let (mut i, mut j, mut k) = (0, 0, 0);
    for idx in (0..n).step_by(stride) {
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
            v[sub] = if sub & !have == 0 { q(idx - o) } else { 0 };
        }
        f(&v, have == 0b111);
    }
}

/// The corners of the Lorenzo cube at position `at` of a block of `shape` whose integers are
/// `q(at)`, as [`sample_corners`] gives them, and whether all lie in the block.
pub(crate) fn corners_at(
    q: impl Fn(usize) -> i64,
    shape: [usize; 3],
    at: usize,
) -> ([i64; 8], bool) {
    let [_, b, c] = shape;
    let (i, j, k) = (at / (b * c), (at / c) % b, at % c);
    let have = usize::from(i > 0) | usize::from(j > 0) << 1 | usize::from(k > 0) << 2;
    let v = std::array::from_fn(|sub| match sub & !have {
        0 => q(at - (sub & 1) * b * c - (sub >> 1 & 1) * c - (sub >> 2 & 1)),
        _ => 0,
    });
    (v, have == 0b111)
}

/// The corners of the Lorenzo cubes of a block's sampled positions ([`sample_corners`]),
/// gathered once for every proposal's fit and cost.
pub(crate) struct Samples {
    corners: Vec<[i64; 8]>,
    interior: Vec<bool>,
}

impl Samples {
    pub(super) fn of(q: &[i64], shape: [usize; 3], stride: usize) -> Samples {
        Samples::by(q.len(), |at| q[at], shape, stride)
    }

    /// [`Samples::of`] the `n` integers `q(at)` of a block, each computed where it is needed.
    pub(crate) fn by(
        n: usize,
        q: impl Fn(usize) -> i64,
        shape: [usize; 3],
        stride: usize,
    ) -> Samples {
        let mut s = Samples {
            corners: Vec::with_capacity(n.div_ceil(stride)),
            interior: Vec::with_capacity(n.div_ceil(stride)),
        };
        sample_corners(n, q, shape, stride, |v, interior| {
            s.corners.push(*v);
            s.interior.push(interior);
        });
        s
    }

    /// Each sample's corners and whether they all lie in the block, in block order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&[i64; 8], bool)> {
        self.corners.iter().zip(self.interior.iter().copied())
    }
}

/// The proposal whose residuals cost the fewest estimated bits on a sample of positions: raw
/// bits below the leading one plus the entropy of the bit-length classes.
pub(crate) fn choose(q: &[i64], shape: [usize; 3]) -> Boxed {
    let n = q.len();
    // About 4096 samples (fewer in small blocks), an odd stride so they do not line up with
    // rows.
    let stride = (n / 8192).max(8) | 1;
    pick(&Samples::of(q, shape, stride), shape, n)
}

/// [`choose`]'s proposal on `samples` of a block of `n` values.
pub(crate) fn pick(samples: &Samples, shape: [usize; 3], n: usize) -> Boxed {
    let mut all: Vec<Boxed> = FAMILIES
        .iter()
        .flat_map(|f| (f.propose)(samples, shape))
        .collect();
    if all.len() <= 1 || n < 64 {
        return match all.is_empty() {
            true => Box::new(Lorenzo::new(LORENZO_3D)),
            false => all.swap_remove(0),
        };
    }
    let costs: Vec<f64> = (all.iter().map(|p| p.sampled_cost(samples)))
        .map(|(hist, raw)| crate::entropy::ints::entropy_bits(&hist) + raw as f64)
        .collect();
    let mut best = 0;
    for (i, p) in all.iter().enumerate().skip(1) {
        if costs[i] < p.margin() * costs[best] {
            best = i;
        }
    }
    all.swap_remove(best)
}

/// Sets `q` at the positions `at` (ascending) to `p`'s prediction there, so that their
/// residuals are 0: values the decoder overwrites (special values) then cost nearly nothing,
/// and their neighbours are predicted from a smooth continuation instead of a jump. Inside the
/// block through [`Predictor::predict_interior`] (the general rule, on a quarter of a masked
/// ocean's values, was a ninth of its compression).
pub(crate) fn fill(p: &dyn Predictor, q: &mut [i64], shape: [usize; 3], at: &[usize]) {
    let [_, b, c] = shape;
    let plane = b * c;
    for &idx in at {
        let (i, in_plane) = (idx / plane, idx % plane);
        q[idx] = match i > 0 && in_plane >= c && in_plane % c > 0 {
            true => p.predict_interior(q, idx, c, plane),
            false => p.predict_at(q, shape, idx),
        };
    }
}

/// Reads a predictor: its id and parameters; `net` is the stream's NGLR network, if any (None:
/// NGLR is refused, as inside NGLR itself).
pub(crate) fn read(r: &mut PayloadReader, net: Option<&Arc<Network>>) -> Result<Boxed> {
    let id = r.bytes(1)?[0];
    if id == nglr::NGLR || id == nglr::NGLR_PLANAR {
        return nglr::read(r, id, net);
    }
    FAMILIES
        .iter()
        .find_map(|f| (f.read)(id, r))
        .unwrap_or_else(|| Err(Error::corrupt(format!("unknown predictor {id}"))))
}

#[cfg(test)]
mod tests {
    use super::least_squares::LEAST_SQUARES;
    use super::*;

    #[test]
    fn predictor_choice_follows_the_data() {
        // Varies only along the last axis, linearly: 1D along it leaves constants.
        let shape = [4, 8, 16];
        let q: Vec<i64> = (0..512).map(|i| (i % 16) as i64 * 5).collect();
        let p = choose(&q, shape).id();
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
        let p = choose(&q, shape).id();
        assert!(p == LEAST_SQUARES || p & 0b001 == 0b001, "{p}");
    }

    #[test]
    fn filled_positions_cost_nothing_and_everything_inverts() {
        let shape = [5, 6, 7];
        let mut x = 17u64;
        let q0: Vec<i64> = (0..210)
            .map(|i| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                (i % 7) as i64 * 9 + (x >> 59) as i64
            })
            .collect();
        let at: Vec<usize> = (0..210).filter(|i| i % 7 < 2 || i % 11 == 3).collect();
        let mut candidates = FAMILIES
            .iter()
            .flat_map(|f| (f.propose)(&Samples::of(&q0, shape, 1), shape))
            .collect::<Vec<_>>();
        assert!(candidates.iter().any(|p| p.id() == LEAST_SQUARES));
        for p in candidates.drain(..) {
            let mut q = q0.clone();
            fill(p.as_ref(), &mut q, shape, &at);
            let r = p.forward(q.clone(), shape, false);
            assert!(at.iter().all(|&i| r[i] == 0), "predictor {}", p.id());
            let mut back = r;
            p.inverse(&mut back, shape).unwrap();
            assert_eq!(back, q, "predictor {}", p.id());
        }
    }
}
