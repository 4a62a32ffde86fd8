//! The least-squares predictor: a weighted sum of the seven causal neighbours of the 3D Lorenzo
//! cube, with weights fitted per block (in the encoder, in floating point) and stored as 7 i16 in
//! fixed point; integer arithmetic everywhere else, so decoding is exact on every machine.
//! Id 8, then the 7 weights (i16, little-endian). On the block's first plane, row and column it
//! falls back to 3D Lorenzo.

use super::lorenzo::{lorenzo_residual, Lorenzo};
use super::{Boxed, Family, Predictor, Samples, LORENZO_3D};
use rayon::prelude::*;

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

/// The causal neighbours the least-squares predictor weighs, as corners in
/// [`super::sample_corners`]: west, north, behind, north-west, behind-west, behind-north,
/// behind-north-west (the order of the weights in [`ls_row`]).
const LS_CORNERS: [usize; 7] = [4, 2, 1, 6, 5, 3, 7];

/// Fits the weights by least squares on the interior samples (encoder only, so floating point
/// is fine: the decoder gets the rounded integers). None if degenerate.
fn ls_fit(samples: &Samples, shape: [usize; 3]) -> Option<[i16; 7]> {
    if shape.iter().any(|&d| d < 2) {
        return None;
    }
    let mut m = [[0f64; 8]; 7]; // normal equations, right-hand side in column 7
    for v in samples
        .iter()
        .filter_map(|(v, interior)| interior.then_some(v))
    {
        let x: [f64; 7] = LS_CORNERS.map(|s| v[s] as f64);
        for r in 0..7 {
            for col in r..7 {
                m[r][col] += x[r] * x[col];
            }
            m[r][7] += x[r] * v[0] as f64;
        }
    }
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

/// The row that row `j` of plane `i`, on a face of the block (`i` or `j` 0), takes its faces'
/// rule from: the north or behind row (whichever exists, read from `done`, the values before
/// the row), or none.
fn face_up(done: &[i64], shape: [usize; 3], i: usize, j: usize) -> Option<&[i64]> {
    let [_, b, c] = shape;
    let row = (i * b + j) * c;
    match (i, j) {
        (0, 0) => None,
        (0, _) => Some(&done[row - c..row]),
        _ => (j == 0).then(|| &done[row - b * c..row - b * c + c]),
    }
}

/// The faces' rule (Lorenzo over the axes present) on a row on a face of the block, in place:
/// with one neighbouring row `up`, value k is predicted as up[k] + west − up[k−1] (up[0] for
/// the first), without, as west (0 for the first); so the row less `up` is the running sum of
/// the residuals. `DECODE` adds the predictions to `cur`, otherwise subtracts them (`orig` the
/// original row; unused when decoding). The same wrapping integers as [`ls_boundary`] per value.
fn face_row<const DECODE: bool>(cur: &mut [i64], orig: &[i64], up: Option<&[i64]>) {
    let len = cur.len();
    let up = |k: usize| up.map_or(0, |u| u[k]);
    // The row less `up` at the value before.
    let mut acc = 0i64;
    for k in 0..len {
        if DECODE {
            acc = acc.wrapping_add(cur[k]);
            cur[k] = acc.wrapping_add(up(k));
        } else {
            let d = orig[k].wrapping_sub(up(k));
            cur[k] = d.wrapping_sub(acc);
            acc = d;
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
            } else if i == 0 || j == 0 {
                face_row::<false>(cur, &q[row..row + c], face_up(q, shape, i, j));
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
            } else if i == 0 || j == 0 {
                let (done, rest) = q.split_at_mut(row);
                face_row::<true>(&mut rest[..c], &[], face_up(done, shape, i, j));
            } else {
                for k in 0..c {
                    let idx = row + k;
                    q[idx] = q[idx].wrapping_add(ls_boundary(q, shape, i, j, k));
                }
            }
        }
    }
}

/// The fitted predictor of one block.
struct LeastSquares {
    coef: [i16; 7],
    /// Its rule at the block's faces.
    faces: Lorenzo,
}

impl Predictor for LeastSquares {
    fn id(&self) -> u8 {
        LEAST_SQUARES
    }

    fn put_params(&self, out: &mut Vec<u8>) {
        self.coef
            .iter()
            .for_each(|c| out.extend_from_slice(&c.to_le_bytes()));
    }

    fn sample(&self, v: &[i64; 8], interior: bool) -> i64 {
        if !interior {
            return self.faces.corner_residual(v);
        }
        let half = 1i64 << (LS_SHIFT - 1);
        let acc = (0..7).fold(half, |acc, t| {
            acc.wrapping_add((self.coef[t] as i64).wrapping_mul(v[LS_CORNERS[t]]))
        });
        v[0].wrapping_sub(acc >> LS_SHIFT)
    }

    /// It slows decoding down: it must beat the best Lorenzo clearly.
    fn margin(&self) -> f64 {
        0.99
    }

    fn predict_at(&self, q: &[i64], shape: [usize; 3], idx: usize) -> i64 {
        let [_, b, c] = shape;
        let (i, j, k) = (idx / (b * c), (idx / c) % b, idx % c);
        if !(i > 0 && j > 0 && k > 0) {
            return ls_boundary(q, shape, i, j, k);
        }
        self.predict_interior(q, idx, c, b * c)
    }

    /// The interior rule of `ls_row`, on the corners of the Lorenzo cube.
    fn predict_interior(&self, q: &[i64], idx: usize, row: usize, plane: usize) -> i64 {
        let v = super::interior_corners(q, idx, row, plane);
        let acc = (0..7).fold(1i64 << (LS_SHIFT - 1), |acc, t| {
            acc.wrapping_add((self.coef[t] as i64).wrapping_mul(v[LS_CORNERS[t]]))
        });
        acc >> LS_SHIFT
    }

    fn forward(&self, q: Vec<i64>, shape: [usize; 3], par: bool) -> Vec<i64> {
        ls_forward(&q, shape, &self.coef, par)
    }

    fn inverse(&self, q: &mut [i64], shape: [usize; 3]) -> crate::error::Result<()> {
        ls_inverse(q, shape, &self.coef);
        Ok(())
    }
}

fn with_coef(coef: [i16; 7]) -> Boxed {
    Box::new(LeastSquares {
        coef,
        faces: Lorenzo::new(LORENZO_3D),
    })
}

pub(super) const FAMILY: Family = Family {
    propose: |samples, shape| ls_fit(samples, shape).map(with_coef).into_iter().collect(),
    read: |id, r| {
        (id == LEAST_SQUARES).then(|| {
            let mut coef = [0i16; 7];
            for v in coef.iter_mut() {
                *v = i16::from_le_bytes(r.bytes(2)?.try_into().unwrap());
            }
            Ok(with_coef(coef))
        })
    },
};

#[cfg(test)]
mod tests {
    use super::*;

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
        let coef = ls_fit(&Samples::of(&q, shape, 1), shape).expect("fit");
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
        // The faces' rows follow the per-value rule.
        for (idx, &v) in r.iter().enumerate() {
            let (i, j, k) = (idx / 63, (idx / 9) % 7, idx % 9);
            if i == 0 || j == 0 || k == 0 {
                assert_eq!(
                    v,
                    q[idx].wrapping_sub(ls_boundary(&q, shape, i, j, k)),
                    "{idx}"
                );
            }
        }
        // Hostile coefficients wrap instead of panicking, and still invert.
        let wild = [i16::MAX, i16::MIN, 7, -7, 0, 1, -1];
        let mut b = ls_forward(&q, shape, &wild, true);
        ls_inverse(&mut b, shape, &wild);
        assert_eq!(b, q);
    }
}
