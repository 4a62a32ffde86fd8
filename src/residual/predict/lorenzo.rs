//! Lorenzo predictors: first differences along a subset of the block's axes (the 3D Lorenzo
//! predictor along all three, 2D in planes, 1D along one axis), zero outside the block.
//! Id: the axes mask 1..=7; no parameters.

use super::{Boxed, Family, Predictor, Samples};

/// Predictor masks: bit d set means "difference along axis d". All three is first-order 3D
/// Lorenzo; the last two, 2D Lorenzo in each plane; one bit, a 1D predictor along that axis.
pub(crate) const LORENZO_3D: u8 = 0b111;

/// Lorenzo with zero boundary along the axes in `mask`, as successive first differences
/// (in place). Wrapping, as its inverse: values filled in at special positions
/// (`predict::fill`, itself wrapping) can grow past i64 over a large masked region; forward and
/// inverse agree modulo 2^64, and the decoder overwrites those positions.
fn lorenzo_forward(q: &mut [i64], shape: [usize; 3], mask: u8) {
    let [a, b, c] = shape;
    if mask & 0b100 != 0 {
        for row in q.chunks_exact_mut(c.max(1)) {
            for k in (1..row.len()).rev() {
                row[k] = row[k].wrapping_sub(row[k - 1]);
            }
        }
    }
    if mask & 0b010 != 0 {
        for plane in q.chunks_exact_mut((b * c).max(1)) {
            for j in (1..b).rev() {
                for k in 0..c {
                    plane[j * c + k] = plane[j * c + k].wrapping_sub(plane[(j - 1) * c + k]);
                }
            }
        }
    }
    if mask & 0b001 != 0 {
        let p = b * c;
        for i in (1..a).rev() {
            for k in 0..p {
                q[i * p + k] = q[i * p + k].wrapping_sub(q[(i - 1) * p + k]);
            }
        }
    }
}

/// Inverse of [`lorenzo_forward`]: prefix sums. Wrapping, so hostile input cannot panic.
fn lorenzo_inverse(q: &mut [i64], shape: [usize; 3], mask: u8) {
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
pub(super) fn lorenzo_residual(
    q: &[i64],
    shape: [usize; 3],
    mask: u8,
    i: usize,
    j: usize,
    k: usize,
) -> i64 {
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

/// The Lorenzo predictor along the axes of one mask.
pub(crate) struct Lorenzo {
    mask: u8,
    /// Signs of the Lorenzo cube's corners in its residual (0: a corner it does not use).
    signs: [i64; 8],
}

/// The signs of the Lorenzo cube's corners in the residual of `mask`.
const fn signs(mask: u8) -> [i64; 8] {
    let mut signs = [0; 8];
    let mut sub = 0;
    while sub < 8 {
        if sub & !mask == 0 {
            signs[sub as usize] = if sub.count_ones() % 2 == 0 { 1 } else { -1 };
        }
        sub += 1;
    }
    signs
}

/// [`Predictor::sampled_cost`] of the mask `M`, known when compiled: its residuals are then
/// sums and differences of the corners it uses, not eight products (the choice among a
/// block's predictors was a tenth of compressing a small block).
fn sampled_cost_of<const M: u8>(samples: &Samples) -> ([u32; 64], u64) {
    let signs = const { signs(M) };
    super::class_histogram(
        samples
            .iter()
            .map(|(v, _)| (0..8).fold(0i64, |r, s| r.wrapping_add(signs[s].wrapping_mul(v[s])))),
    )
}

impl Lorenzo {
    pub(crate) fn new(mask: u8) -> Lorenzo {
        Lorenzo {
            mask,
            signs: signs(mask),
        }
    }

    /// The residual from the corners of a Lorenzo cube: inclusion-exclusion over the corners
    /// of the differenced axes.
    #[inline(always)]
    pub(super) fn corner_residual(&self, v: &[i64; 8]) -> i64 {
        (0..8).fold(0i64, |r, s| {
            r.wrapping_add(self.signs[s].wrapping_mul(v[s]))
        })
    }
}

impl Predictor for Lorenzo {
    fn id(&self) -> u8 {
        self.mask
    }

    fn sample(&self, v: &[i64; 8], _interior: bool) -> i64 {
        self.corner_residual(v)
    }

    fn sampled_cost(&self, samples: &Samples) -> ([u32; 64], u64) {
        match self.mask {
            1 => sampled_cost_of::<1>(samples),
            2 => sampled_cost_of::<2>(samples),
            3 => sampled_cost_of::<3>(samples),
            4 => sampled_cost_of::<4>(samples),
            5 => sampled_cost_of::<5>(samples),
            6 => sampled_cost_of::<6>(samples),
            7 => sampled_cost_of::<7>(samples),
            _ => super::class_histogram(samples.iter().map(|(v, _)| self.corner_residual(v))),
        }
    }

    fn predict_at(&self, q: &[i64], shape: [usize; 3], idx: usize) -> i64 {
        let [_, b, c] = shape;
        let (i, j, k) = (idx / (b * c), (idx / c) % b, idx % c);
        q[idx].wrapping_sub(lorenzo_residual(q, shape, self.mask, i, j, k))
    }

    fn predict_interior(&self, q: &[i64], idx: usize, row: usize, plane: usize) -> i64 {
        let v = super::interior_corners(q, idx, row, plane);
        v[0].wrapping_sub(self.corner_residual(&v))
    }

    fn forward(&self, mut q: Vec<i64>, shape: [usize; 3], _par: bool) -> Vec<i64> {
        lorenzo_forward(&mut q, shape, self.mask);
        q
    }

    fn inverse(&self, q: &mut [i64], shape: [usize; 3]) -> crate::error::Result<()> {
        lorenzo_inverse(q, shape, self.mask);
        Ok(())
    }
}

pub(super) const FAMILY: Family = Family {
    // Every mask over the axes longer than 1, in mask order.
    propose: |_, [a, b, c]| {
        let usable: u8 = (u8::from(a > 1)) | (u8::from(b > 1) << 1) | (u8::from(c > 1) << 2);
        (1..8u8)
            .filter(|m| m & !usable == 0)
            .map(|m| Box::new(Lorenzo::new(m)) as Boxed)
            .collect()
    },
    read: |id, _| {
        (1..=LORENZO_3D)
            .contains(&id)
            .then(|| Ok(Box::new(Lorenzo::new(id)) as _))
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_integers_wrap_and_come_back() {
        // Filled-in special positions can hold any i64: differences wrap (under overflow
        // checks, as in fuzzing, `-=` panicked here) and the prefix sums undo them.
        let shape = [2, 3, 4];
        let q: Vec<i64> = (0..24)
            .map(|i| {
                if i % 3 == 0 {
                    i64::MAX - i
                } else {
                    i64::MIN + 7 * i
                }
            })
            .collect();
        for mask in 1..=LORENZO_3D {
            let mut r = q.clone();
            lorenzo_forward(&mut r, shape, mask);
            lorenzo_inverse(&mut r, shape, mask);
            assert_eq!(r, q, "mask {mask}");
        }
    }

    #[test]
    fn sampled_costs_are_those_of_the_corner_residuals() {
        // Each mask's cost is computed with its signs known when compiled: it must count what
        // the residuals the predictor codes would give.
        let shape = [6, 7, 9];
        let q: Vec<i64> = (0..378)
            .map(|i| ((i * i * 31 % 97) as i64 - 48) << (i % 5))
            .collect();
        let samples = Samples::of(&q, shape, 1);
        for mask in 1..=LORENZO_3D {
            let p = Lorenzo::new(mask);
            let residuals = samples.iter().map(|(v, _)| p.corner_residual(v));
            let expected = super::super::class_histogram(residuals);
            assert_eq!(p.sampled_cost(&samples), expected, "mask {mask}");
            assert!(expected.1 > 0);
        }
    }

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
}
