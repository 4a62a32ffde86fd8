//! The choice per block between residual coders: the automatic one against each coder forced.

use residuum::{decode_as, Codec};

/// A smooth bump in a constant background, 64^3: its detail is localized, as in a Gray-Scott
/// step (whose active region is 5-13 % of the domain).
fn bump() -> Vec<f32> {
    let n = 64;
    let c = (n - 1) as f64 / 2.0;
    (0..n * n * n)
        .map(|x| {
            let (i, j, k) = ((x / (n * n)) as f64, ((x / n) % n) as f64, (x % n) as f64);
            let r2 = (i - c).powi(2) + (j - c).powi(2) + (k - c).powi(2);
            let wave = 1.0 + 0.3 * (0.7 * i + 0.4 * j).sin() * (0.5 * k).cos();
            (1.0 - 0.5 * (-r2 / 98.0).exp() * wave) as f32
        })
        .collect()
}

fn compress(v: &[f32], tau: &str, residual: &str) -> Vec<u8> {
    Codec::from_pairs([("nrmse", tau), ("residual", residual), ("threads", "1")])
        .unwrap()
        .compress(&[64, 64, 64], v)
        .unwrap()
}

#[test]
fn auto_finds_the_wavelet_where_detail_is_localized() {
    // A look at parts of the block (the prospect before) missed the wavelet here at 1e-5 and
    // 1e-6, where it is 2-2.6x smaller than LBRC; the whole block's coefficients do not.
    let v = bump();
    let (lo, hi) = v
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    for (tau, t) in [("1e-4", 1e-4), ("1e-5", 1e-5), ("1e-6", 1e-6)] {
        let auto = compress(&v, tau, "auto");
        let lbrc = compress(&v, tau, "lbrc").len();
        let wavelet = compress(&v, tau, "wavelet").len();
        assert!(
            wavelet * 3 < lbrc * 2,
            "{tau}: the case needs the wavelet to win"
        );
        assert!(
            auto.len() * 100 <= wavelet * 101,
            "{tau}: auto {} bytes, wavelet {wavelet}, LBRC {lbrc}",
            auto.len()
        );
        let (_, back) = decode_as::<f32>(&auto).unwrap();
        let sq: f64 = v
            .iter()
            .zip(&back)
            .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
            .sum();
        let nrmse = (sq / v.len() as f64).sqrt() / (hi - lo) as f64;
        assert!(nrmse <= t, "{tau}: NRMSE {nrmse}");
    }
}
