//! The wavelet coder's tests: bounds on its own reconstruction, the versions' unscalings,
//! its cost against LBRC, damaged heads.

use super::*;
use crate::params::IntCoder;
use crate::residual::Specials;

fn smooth(shape: [usize; 3]) -> Vec<f64> {
    let [a, b, c] = shape;
    (0..a * b * c)
        .map(|i| {
            let (x, y, z) = ((i / (b * c)) as f64, ((i / c) % b) as f64, (i % c) as f64);
            300.0 + (0.11 * x).sin() * 5.0 + (0.07 * y + 0.05 * z).cos() * 3.0
        })
        .map(|v| v as f32 as f64)
        .collect()
}

fn round_trip(values: &[f64], shape: [usize; 3], budget: f64) -> (Vec<u8>, Vec<f64>) {
    let specials = Specials::of(values, ElementType::F32);
    let block = BlockValues::new(values, &specials, shape, ElementType::F32);
    let (ints, stats, _) = encode(
        &block,
        budget,
        false,
        None,
        look(&block, budget).expect("a look"),
    )
    .expect("codes");
    assert!(stats.rms() <= budget, "{} > {budget}", stats.rms());
    let payload = ints.finish(IntCoder::Context);
    let out = decode(
        &payload,
        shape,
        ElementType::F32,
        crate::format::FORMAT_VERSION,
    )
    .unwrap();
    let dec: Vec<f64> = out
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
        .collect();
    (payload, dec)
}

#[test]
fn meets_the_rms_budget_on_its_own_reconstruction_and_keeps_nans() {
    let shape = [12, 30, 41];
    let mut v = smooth(shape);
    for i in (0..v.len()).step_by(17) {
        v[i] = f64::NAN;
    }
    for budget in [1e-1, 1e-3, 1e-5] {
        let (payload, dec) = round_trip(&v, shape, budget);
        let (mut n, mut sq) = (0, 0.0);
        for (x, y) in v.iter().zip(&dec) {
            if x.is_nan() {
                assert!(y.is_nan());
            } else {
                n += 1;
                sq += (x - y) * (x - y);
            }
        }
        let rms = (sq / n as f64).sqrt();
        assert!(rms <= budget, "budget {budget}: rms {rms}");
        assert!(payload.len() < v.len() * 4);
    }
}

#[test]
fn the_decoder_of_the_written_version_gives_the_verified_reconstruction() {
    // f64 values keep the last bits that f32 rounds away: there the two unscalings differ,
    // and only the written version's reproduces the errors the encoder verified. Its element
    // bytes (a chain's next base) are the decoder's, special values included.
    let shape = [12, 30, 41];
    let mut v: Vec<f64> = smooth(shape)
        .iter()
        .enumerate()
        .map(|(i, x)| x + (i % 7) as f64 * 1e-9)
        .collect();
    (v[5], v[1000]) = (f64::NAN, f64::NEG_INFINITY);
    let specials = Specials::of(&v, ElementType::F64);
    let block = BlockValues {
        recon: true,
        ..BlockValues::new(&v, &specials, shape, ElementType::F64)
    };
    let (ints, stats, recon) = encode(
        &block,
        1e-7,
        false,
        None,
        look(&block, 1e-7).expect("a look"),
    )
    .expect("codes");
    let payload = ints.finish(IntCoder::Context);
    let bytes = decode(
        &payload,
        shape,
        ElementType::F64,
        crate::format::FORMAT_VERSION,
    )
    .unwrap();
    assert!(recon.is_some_and(|r| *r == bytes));
    let decoded = |version| -> Vec<f64> {
        let out = decode(&payload, shape, ElementType::F64, version).unwrap();
        out.chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };
    let (old, new) = (
        decoded(UNSCALE_VERSION - 1),
        decoded(crate::format::FORMAT_VERSION),
    );
    assert_eq!(ErrorStats::between(&v, &new, stats.unit), stats);
    let differ = old.iter().zip(&new).filter(|(a, b)| a != b).count();
    assert!(differ > 0, "no value differs");
    assert_ne!(ErrorStats::between(&v, &old, stats.unit), stats);
}

#[test]
fn smooth_blocks_cost_less_than_lbrc_at_a_loose_budget() {
    let shape = [16, 64, 64];
    let v = smooth(shape);
    let (payload, _) = round_trip(&v, shape, 1e-3);
    let bound = BlockBound::Rms(1e-3);
    let (lbrc, _) =
        crate::residual::lbrc::encode(&v, shape, bound, ElementType::F32, IntCoder::Context, false)
            .unwrap();
    let crate::residual::lbrc::Payload::Lbrc(lbrc) = lbrc else {
        panic!("not a constant block")
    };
    assert!(
        payload.len() * 3 < lbrc.len() * 2,
        "wavelet {} bytes, LBRC {}",
        payload.len(),
        lbrc.len()
    );
}

#[test]
fn damaged_heads_are_refused() {
    let shape = [8, 16, 16];
    let v = smooth(shape);
    let (payload, _) = round_trip(&v, shape, 1e-2);
    let v10 = LAYOUT_VERSION;
    // Either layout's byte, and too many levels for the shape in either.
    for (byte, ok) in [
        (2, true),
        (3, false),
        (9, false),
        (0x82, true),
        (0x83, false),
    ] {
        let mut head = payload.clone();
        head[16] = byte;
        assert_eq!(
            decode(&head, shape, ElementType::F32, v10).is_ok(),
            ok,
            "{byte}"
        );
    }
    // The standard layout's flag is unknown before version 10.
    let mut standard = payload.clone();
    standard[16] = 0x82;
    assert!(decode(&standard, shape, ElementType::F32, 9).is_err());
    let mut bad = payload.clone();
    bad[8..16].copy_from_slice(&f64::NAN.to_le_bytes());
    assert!(decode(&bad, shape, ElementType::F32, v10).is_err());
    for cut in [0, 8, 17, payload.len() - 1] {
        assert!(decode(&payload[..cut], shape, ElementType::F32, v10).is_err());
    }
}
