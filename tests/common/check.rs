//! The bound check of the tests and of the round-trip fuzz target (`fuzz/`, which includes
//! this file by path): special values bit for bit, the others within the bound, measured on the
//! stream's own block grid.

use residuum::internals::Grid;
use residuum::stream_info;

/// Whether `x` is special: non-finite, or the fill value (`fill=`) where one is given.
pub fn special(x: f64, params: &[(&str, String)]) -> bool {
    let fill = params.iter().find(|(k, _)| *k == "fill");
    !x.is_finite() || fill.is_some_and(|(_, f)| x == f.parse::<f64>().unwrap() as f32 as f64)
}

/// Range of the values that are not special.
pub fn range_of(v: &[f64], params: &[(&str, String)]) -> f64 {
    let kept: Vec<f64> = v.iter().copied().filter(|&x| !special(x, params)).collect();
    range(&kept)
}

/// Range of the finite values.
pub fn range(v: &[f64]) -> f64 {
    let f = v.iter().filter(|x| x.is_finite());
    let r = f.clone().fold(f64::NEG_INFINITY, |a, &b| a.max(b))
        - f.fold(f64::INFINITY, |a, &b| a.min(b));
    if r.is_nan() || r < 0.0 {
        0.0 // no finite values
    } else {
        r
    }
}

/// Checks `back` against `orig` for the target in `params`, using the stream's own block grid:
/// special values (non-finite, fill) bit for bit, the others within the bound of the range of
/// the others.
pub fn check(params: &[(&str, String)], orig: &[f64], back: &[f64], stream: &[u8]) {
    assert_eq!(orig.len(), back.len());
    let r = range_of(orig, params);
    for (i, (&x, &y)) in orig.iter().zip(back).enumerate() {
        if special(x, params) {
            assert_eq!(
                x.to_bits(),
                y.to_bits(),
                "special value {i} changed: {x} -> {y}"
            );
        }
    }
    let (key, val): (&str, f64) = (params[0].0, params[0].1.parse().unwrap());
    match key {
        "abs" | "rel" => {
            let eps = if key == "abs" { val } else { val * r };
            for (i, (&x, &y)) in orig.iter().zip(back).enumerate() {
                if !special(x, params) {
                    assert!(
                        (x - y).abs() <= eps,
                        "{key}={val}: |{x} - {y}| > {eps} at {i}"
                    );
                }
            }
        }
        "nrmse" | "psnr" => {
            let bound = if key == "nrmse" {
                val * r
            } else {
                r * 10f64.powf(-val / 20.0)
            };
            let info = stream_info(stream).unwrap();
            let grid = info.grid();
            let to_bytes = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
            let (ob, bb) = (to_bytes(orig), to_bytes(back));
            let g = Grid::new(grid.dims, grid.block);
            let (mut total_sq, mut total_n) = (0.0, 0usize);
            for i in 0..g.len() {
                let b = g.block(i);
                let o = g.gather_bytes(&ob, residuum::ElementType::F64, &b);
                let d = g.gather_bytes(&bb, residuum::ElementType::F64, &b);
                let (mut sq, mut n) = (0.0, 0usize);
                for (x, y) in o.chunks_exact(8).zip(d.chunks_exact(8)) {
                    let (x, y) = (
                        f64::from_le_bytes(x.try_into().unwrap()),
                        f64::from_le_bytes(y.try_into().unwrap()),
                    );
                    if !special(x, params) {
                        sq += (x - y) * (x - y);
                        n += 1;
                    }
                }
                let rms = if n > 0 { (sq / n as f64).sqrt() } else { 0.0 };
                assert!(rms <= bound, "{key}={val}: block {i} RMS {rms} > {bound}");
                total_sq += sq;
                total_n += n;
            }
            if key == "psnr" && total_n > 0 && r > 0.0 {
                let psnr = 20.0 * (r / (total_sq / total_n as f64).sqrt()).log10();
                assert!(psnr >= val, "PSNR {psnr} < {val}");
            }
        }
        _ => unreachable!(),
    }
}
