//! Quality of a reconstruction, as `residuum eval` and `residuum bench` report it.

use crate::block::Grid;
use crate::bound::{finite_range, unit_of, ErrorStats};

/// Errors of a reconstruction against the original, over the finite original values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// Value range R of the original.
    pub range: f64,
    /// Global RMSE / R (the RMSE itself where R is 0: a constant field has no relative error,
    /// and any error there must show).
    pub nrmse: f64,
    /// Largest per-block RMSE / R over `grid`'s blocks (likewise).
    pub worst_block_nrmse: f64,
    /// 20·log10(R / RMSE), infinite when exact (−∞ with errors where R is 0).
    pub psnr: f64,
    pub max_abs: f64,
    /// Non-finite originals not reproduced bit for bit.
    pub specials_changed: usize,
}

/// Compares `orig` and `back` (C order over the 3D view `grid.dims`), block by block.
pub fn quality(orig: &[f64], back: &[f64], grid: &Grid) -> Quality {
    assert_eq!(orig.len(), back.len());
    let range = finite_range(orig.iter().copied());
    // Errors are measured in units of the largest (`unit_of`; exact, the same figures): squared
    // errors of fields beyond about 1e154 would overflow, those of fields below 1e-162 vanish.
    let largest = (orig.iter().zip(back))
        .filter(|(x, _)| x.is_finite())
        .map(|(x, y)| (x - y).abs())
        // A NaN error (a finite value decoded as NaN) is an infinite one, as in `ErrorStats`.
        .fold(
            0.0,
            |m, d| if d.is_nan() { f64::INFINITY } else { m.max(d) },
        );
    let unit = if largest > 0.0 { unit_of(largest) } else { 1.0 };
    let [_, b, c] = grid.dims;
    let mut total = ErrorStats::new(unit);
    let mut worst: f64 = 0.0;
    for i in 0..grid.len() {
        let blk = grid.block(i);
        let mut s = ErrorStats::new(unit);
        for di in 0..blk.shape[0] {
            for dj in 0..blk.shape[1] {
                let row = ((blk.start[0] + di) * b + blk.start[1] + dj) * c + blk.start[2];
                for k in row..row + blk.shape[2] {
                    s.add(orig[k], back[k]);
                }
            }
        }
        worst = worst.max(s.rms());
        total.merge(&s);
    }
    let specials_changed = orig
        .iter()
        .zip(back)
        .filter(|(x, y)| !x.is_finite() && x.to_bits() != y.to_bits())
        .count();
    let rms = total.rms();
    let norm = |v: f64| if range > 0.0 { v / range } else { v };
    Quality {
        range,
        nrmse: norm(rms),
        worst_block_nrmse: norm(worst),
        psnr: if rms > 0.0 {
            20.0 * (range / rms).log10()
        } else {
            f64::INFINITY
        },
        max_abs: total.max_abs,
        specials_changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_global_and_worst_block_errors() {
        let g = Grid::new([1, 1, 4], [1, 1, 2]);
        let orig = [0.0, 1.0, 2.0, 4.0];
        let back = [0.0, 1.0, 2.0, 3.0];
        let q = quality(&orig, &back, &g);
        assert_eq!(q.range, 4.0);
        assert!((q.nrmse - 0.5 / 4.0).abs() < 1e-15);
        assert!((q.worst_block_nrmse - (0.5f64).sqrt() / 4.0).abs() < 1e-15);
        assert_eq!(q.max_abs, 1.0);
        assert!((q.psnr - 20.0 * 8f64.log10()).abs() < 1e-12);
    }

    /// Squared errors of 1e296 overflow, those of 1e-166 vanish; the unit keeps both.
    #[test]
    fn measures_fields_whose_squared_errors_would_overflow_or_vanish() {
        let g = Grid::new([1, 1, 4], [1, 1, 4]);
        for scale in [1e300, 1e-162] {
            let orig = [0.0, 1.0, 2.0, 4.0].map(|v| v * scale);
            let e = [1e-4, -1e-4, 1e-4, -1e-4].map(|v| v * scale);
            let back: Vec<f64> = orig.iter().zip(e).map(|(x, e)| x + e).collect();
            let q = quality(&orig, &back, &g);
            assert_eq!(q.range, 4.0 * scale);
            assert!((q.nrmse / 2.5e-5 - 1.0).abs() < 1e-9, "{}", q.nrmse);
            assert!((q.worst_block_nrmse / 2.5e-5 - 1.0).abs() < 1e-9);
            assert!((q.max_abs / (1e-4 * scale) - 1.0).abs() < 1e-9);
            assert!((q.psnr - 20.0 * 4e4f64.log10()).abs() < 1e-9, "{}", q.psnr);
        }
    }
}
