//! Temporal prediction through the library: a chain of steps coded over the previous step's
//! reconstruction stays within the bound at every step however long it runs (the decoded past,
//! never the original, is the base), keyframes come every K steps, a predicted step decodes only
//! with its reference, and damaged or lying streams are refused.

mod common;

use residuum::{
    decode, decode_step, step_info, Chain, Codec, DecodeOptions, Error, References, StepInfo,
};

/// A fixed fine texture (as of turbulent structures, which spatial prediction cannot see)
/// under a smooth field drifting slowly in time, plus a masked corner (NaN) that grows.
fn field(shape: [usize; 3], t: usize) -> Vec<f32> {
    let [a, b, c] = shape;
    let t = t as f64 * 0.02;
    let mut v = Vec::with_capacity(a * b * c);
    for i in 0..a {
        for j in 0..b {
            for k in 0..c {
                let (x, y, z) = (
                    i as f64 / a as f64,
                    j as f64 / b as f64,
                    k as f64 / c as f64,
                );
                let masked = x + y < 0.1 + 0.002 * t;
                v.push(if masked {
                    f32::NAN
                } else {
                    ((6.0 * x + t).sin() * (4.0 * y - 0.5 * t).cos()
                        + 0.3 * (9.0 * z + 2.0 * t).sin()
                        + 0.05 * (40.0 * x * y + t).cos()
                        + 0.02 * texture(i, j, k)) as f32
                });
            }
        }
    }
    v
}

/// A pseudo-random value in [-1, 1] of a position.
fn texture(i: usize, j: usize, k: usize) -> f64 {
    let h = xxhash_rust::xxh3::xxh3_64(&[i as u8, j as u8, k as u8]);
    (h >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// Element bytes as floats.
fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn codec(pairs: &[(&str, &str)]) -> Codec {
    Codec::from_pairs(pairs.iter().copied()).unwrap()
}

/// RMS error of the finite values over the finite range, and whether NaNs came back as NaNs.
fn nrmse(orig: &[f32], dec: &[f32]) -> f64 {
    nrmse_of(orig.iter().zip(dec).map(|(&o, &d)| (o as f64, d as f64)))
}

/// [`nrmse`] of (original, decoded) pairs.
fn nrmse_of(pairs: impl Iterator<Item = (f64, f64)>) -> f64 {
    let (mut lo, mut hi, mut sq, mut n) = (f64::MAX, f64::MIN, 0.0, 0usize);
    for (o, d) in pairs {
        if o.is_nan() {
            assert!(d.is_nan(), "a NaN did not come back");
            continue;
        }
        lo = lo.min(o);
        hi = hi.max(o);
        sq += (o - d).powi(2);
        n += 1;
    }
    (sq / n as f64).sqrt() / (hi - lo)
}

const SHAPE: [usize; 3] = [24, 32, 40];

#[test]
fn long_chains_stay_within_the_bound_and_beat_spatial_coding() {
    let tau = 1e-5;
    let target = tau.to_string();
    let spatial = codec(&[("nrmse", &target)]);
    let temporal = codec(&[("nrmse", &target), ("temporal", "50")]);
    let mut chain = Chain::new(7);
    let (mut prev, mut with, mut without) = (None::<Vec<u8>>, 0usize, 0usize);
    let mut errors = Vec::new();
    for t in 0..120 {
        let x = field(SHAPE, t);
        let s = chain.compress(&temporal, &SHAPE, &x).unwrap();
        let info = step_info(&s).unwrap().expect("a step entry");
        assert_eq!((info.chain, info.step), (7, t as u64));
        if t % 50 == 0 {
            assert_eq!(
                (info.keyframe, info.reference),
                (t as u64, None),
                "step {t}"
            );
        } else {
            assert_eq!(info.keyframe, (t / 50 * 50) as u64, "step {t}");
            assert!(info.reference.is_some(), "step {t} is not predicted");
        }
        let (_, bytes) = decode_step(&s, prev.as_deref(), &DecodeOptions::default()).unwrap();
        let e = nrmse(&x, &floats(&bytes));
        assert!(e <= tau * (1.0 + 1e-9), "step {t}: NRMSE {e}");
        errors.push(e);
        with += s.len();
        without += spatial.compress(&SHAPE, &x).unwrap().len();
        prev = Some(bytes);
    }
    // No accumulation: the last steps' errors are those of the first predicted ones.
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let (early, late) = (mean(&errors[1..21]), mean(&errors[100..120]));
    assert!(late <= 1.2 * early, "error grows: {early} → {late}");
    assert!(
        (without as f64) > 1.3 * with as f64,
        "temporal {with} bytes, spatial {without}"
    );
}

/// A field whose features fade between steps (as Gray-Scott's do while its patterns form) is
/// predicted by its previous step scaled by a gain: blocks name gains (base codes of 6 and
/// more, doc/format.md §5.12), every step is within the bound, and the chain is over 2x smaller
/// than spatial coding (2.7x; 1.24x with the plain previous step, whose fading features leave
/// a residual as large as themselves).
#[test]
fn fading_fields_are_predicted_with_a_gain() {
    let tau = 1e-5;
    let target = tau.to_string();
    let spatial = codec(&[("nrmse", &target)]);
    let temporal = codec(&[("nrmse", &target), ("temporal", "100")]);
    let mut chain = Chain::new(3);
    let (mut prev, mut with, mut without, mut gains) = (None::<Vec<u8>>, 0, 0, 0);
    let smooth = field(SHAPE, 0);
    for t in 0..12 {
        // The texture fades by 7/8 per step over a fixed smooth field.
        let fade = 0.875f64.powi(t);
        let x: Vec<f32> = smooth
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let (a, b, c) = (
                    i / (SHAPE[1] * SHAPE[2]),
                    i / SHAPE[2] % SHAPE[1],
                    i % SHAPE[2],
                );
                (0.2 * v as f64 + fade * texture(a, b, c)) as f32
            })
            .collect();
        let s = chain.compress(&temporal, &SHAPE, &x).unwrap();
        let (_, bytes) = decode_step(&s, prev.as_deref(), &DecodeOptions::default()).unwrap();
        let e = nrmse(&x, &floats(&bytes));
        assert!(e <= tau * (1.0 + 1e-9), "step {t}: NRMSE {e}");
        let parsed = residuum::internals::format::parse(&s).unwrap();
        use residuum::internals::format::BlockKind;
        gains += (0..parsed.entries.len())
            .filter(|&i| parsed.entries[i].kind == BlockKind::Previous)
            .filter(|&i| parsed.payload(i).unwrap()[0] >= 6)
            .count();
        if t > 0 {
            with += s.len();
            without += spatial.compress(&SHAPE, &x).unwrap().len();
        }
        prev = Some(bytes);
    }
    assert!(gains > 0, "no block was predicted with a gain");
    assert!(
        without as f64 > 2.0 * with as f64,
        "temporal {with} bytes, spatial {without}"
    );
}

/// Real fields as chains of steps: each field's planes along its first axis, one after the
/// other (neighbouring planes are alike, as steps are), at an absolute bound of 1e-4 of its
/// range, and at NRMSE 1e-5: every step within the bound, special values exact.
#[test]
fn real_fields_as_steps_stay_within_the_bound() {
    for (name, dims, values) in common::real_fields() {
        let plane: usize = dims[1..].iter().product();
        let finite = values.iter().filter(|x| x.is_finite());
        let (lo, hi) = finite.fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        let eps = 1e-4 * (hi - lo) as f64;
        let range = (hi - lo).to_string();
        for abs in [true, false] {
            let mut params = vec![("temporal", "6".to_string())];
            match abs {
                true => params.push(("abs", eps.to_string())),
                false => params.extend([("nrmse", "1e-5".into()), ("range", range.clone())]),
            }
            let c = Codec::from_pairs(params).unwrap();
            let mut chain = Chain::new(5);
            let mut prev: Option<Vec<u8>> = None;
            for (t, x) in values.chunks_exact(plane).take(16).enumerate() {
                let s = chain.compress(&c, &dims[1..], x).unwrap();
                let (_, bytes) = decode_step(&s, prev.as_deref(), &DecodeOptions::default())
                    .unwrap_or_else(|e| panic!("{name} step {t}: {e}"));
                let got = floats(&bytes);
                let (mut sq, mut n) = (0.0, 0usize);
                for (o, d) in x.iter().zip(&got) {
                    if !o.is_finite() {
                        assert_eq!(o.to_bits(), d.to_bits(), "{name} step {t}");
                        continue;
                    }
                    let e = (*o as f64 - *d as f64).abs();
                    assert!(!abs || e <= eps, "{name} step {t}: {e} > {eps}");
                    sq += e * e;
                    n += 1;
                }
                let nrmse = (sq / n.max(1) as f64).sqrt() / (hi - lo) as f64;
                assert!(
                    abs || nrmse <= 1e-5 * (1.0 + 1e-9),
                    "{name} step {t}: {nrmse}"
                );
                prev = Some(bytes);
            }
        }
    }
}

#[test]
fn predicted_steps_need_their_reference() {
    let c = codec(&[("abs", "1e-4"), ("temporal", "10")]);
    let mut chain = Chain::new(3);
    let s0 = chain.compress(&c, &SHAPE, &field(SHAPE, 0)).unwrap();
    let s1 = chain.compress(&c, &SHAPE, &field(SHAPE, 1)).unwrap();
    let s2 = chain.compress(&c, &SHAPE, &field(SHAPE, 2)).unwrap();
    let opts = DecodeOptions::default();
    let (_, r0) = decode(&s0).unwrap();
    let (_, r1) = decode_step(&s1, Some(&r0), &opts).unwrap();
    // Without a reference, or with the wrong step: an error naming the keyframe.
    for (given, why) in [(None, "not given"), (Some(&r0), "hash differs")] {
        match decode_step(&s2, given.map(|r| r.as_slice()), &opts) {
            Err(Error::Reference(e)) => {
                assert_eq!((e.chain, e.step, e.keyframe), (3, 2, 0));
                let m = e.to_string();
                assert!(m.contains(why) && m.contains("from step 0"), "{m}");
            }
            other => panic!("{:?}", other.map(|(i, _)| i)),
        }
    }
    assert!(matches!(decode(&s2), Err(Error::Reference(_))));
    assert!(matches!(
        decode_step(&s2, Some(&r1[1..]), &opts),
        Err(Error::Reference(_))
    ));
    decode_step(&s2, Some(&r1), &opts).unwrap();
    // A keyframe ignores a reference.
    assert_eq!(decode_step(&s0, Some(&r1), &opts).unwrap().1, r0);
}

#[test]
fn same_bytes_for_any_thread_count() {
    let streams = |threads: &str| {
        let c = codec(&[("nrmse", "1e-4"), ("temporal", "4"), ("threads", threads)]);
        let mut chain = Chain::new(1);
        (0..6)
            .map(|t| chain.compress(&c, &SHAPE, &field(SHAPE, t)).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(streams("1"), streams("2"));
}

/// A chain keeps the encoder's hints of its blocks as the operator keeps them per variable:
/// small blocks of a smooth field (two of 16x24x24 values) are offered the wavelet, which
/// compressing the same array once in such blocks does not offer them.
#[test]
fn chains_offer_small_blocks_the_wavelet_as_the_operator_does() {
    let shape = [32, 24, 24];
    let smooth: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|n| {
            let (x, y, z) = (n / 576, (n / 24) % 24, n % 24);
            ((0.11 * x as f64).sin() * 5.0 + (0.07 * y as f64 + 0.05 * z as f64).cos() * 3.0) as f32
        })
        .collect();
    let pairs = [("nrmse", "1e-4"), ("block", "16x24x24")];
    let once = codec(&pairs).compress(&shape, &smooth).unwrap();
    let c = codec(&[pairs[0], pairs[1], ("temporal", "4")]);
    let first = Chain::new(1).compress(&c, &shape, &smooth).unwrap();
    assert!(
        3 * first.len() < 2 * once.len(),
        "chain {} bytes, once {}",
        first.len(),
        once.len()
    );
}

#[test]
fn damaged_predicted_streams_are_refused() {
    let c = codec(&[("nrmse", "1e-5"), ("temporal", "8")]);
    let mut chain = Chain::new(9);
    let s0 = chain.compress(&c, &SHAPE, &field(SHAPE, 0)).unwrap();
    let s1 = chain.compress(&c, &SHAPE, &field(SHAPE, 1)).unwrap();
    let (_, r0) = decode(&s0).unwrap();
    let opts = DecodeOptions::default();
    let good = decode_step(&s1, Some(&r0), &opts).unwrap().1;
    for cut in (0..s1.len()).step_by(7) {
        assert!(
            decode_step(&s1[..cut], Some(&r0), &opts).is_err(),
            "cut {cut}"
        );
    }
    assert!(!good.is_empty());
    for i in 0..s1.len() {
        let mut d = s1.clone();
        d[i] ^= 0x10;
        // Checksums catch every flip (header, step entry, payloads); nothing panics.
        assert!(
            decode_step(&d, Some(&r0), &opts).is_err(),
            "flip at {i} decoded"
        );
    }
}

#[test]
fn hostile_steps_round_trip() {
    // Constant, all-NaN, one element, shapes changing between steps, ±Inf: each step exact
    // where promised and within the bound.
    let c = codec(&[("abs", "1e-3"), ("temporal", "5")]);
    let mut chain = Chain::new(11);
    let mut prev: Option<Vec<u8>> = None;
    let steps: Vec<(Vec<usize>, Vec<f32>)> = vec![
        (vec![4, 5, 6], vec![1.5; 120]),
        (vec![4, 5, 6], vec![f32::NAN; 120]),
        (vec![4, 5, 6], (0..120).map(|i| i as f32).collect()),
        (vec![1], vec![3.0]),
        (vec![4, 5, 6], (0..120).map(|i| (i as f32).sin()).collect()),
        (
            vec![4, 5, 6],
            (0..120)
                .map(|i| {
                    if i % 7 == 0 {
                        f32::INFINITY
                    } else {
                        i as f32 * 0.5
                    }
                })
                .collect(),
        ),
        (
            vec![4, 5, 6],
            (0..120).map(|i| i as f32 * 0.5 + 1e-4).collect(),
        ),
        (vec![0, 3], vec![]),
    ];
    for (t, (dims, x)) in steps.iter().enumerate() {
        let s = chain.compress(&c, dims, x).unwrap();
        let info: StepInfo = step_info(&s).unwrap().unwrap();
        let reference = prev.as_deref().filter(|_| info.reference.is_some());
        let (_, bytes) = decode_step(&s, reference, &DecodeOptions::default()).unwrap();
        for (o, d) in x.iter().zip(floats(&bytes)) {
            if o.is_finite() {
                assert!((o - d).abs() <= 1e-3, "step {t}: {o} vs {d}");
            } else {
                assert_eq!(o.to_bits(), d.to_bits(), "step {t}");
            }
        }
        prev = Some(bytes);
    }
}

/// A chain of f64 steps scaled by a power of two codes the same steps (the scaling is exact),
/// within the bound, where squared errors vanish (2^-560) or overflow (2^600): the steps over
/// the previous reconstruction check their errors as spatial blocks do.
#[test]
fn f64_chains_at_any_magnitude_code_the_same_steps() {
    let steps: Vec<Vec<f64>> = (0..12)
        .map(|t| field(SHAPE, t).iter().map(|&v| v as f64).collect())
        .collect();
    for (key, value) in [("nrmse", "1e-5"), ("psnr", "90")] {
        let c = codec(&[(key, value), ("temporal", "6")]);
        let bound = match key {
            "nrmse" => 1e-5,
            _ => 10f64.powf(-90.0 / 20.0),
        };
        let mut sizes: Vec<Vec<usize>> = Vec::new();
        for k in [0, -560, 600] {
            let scale = 2f64.powi(k);
            let mut chain = Chain::new(5);
            let mut prev: Option<Vec<u8>> = None;
            let mut size = Vec::new();
            for (t, x) in steps.iter().enumerate() {
                let scaled: Vec<f64> = x.iter().map(|v| v * scale).collect();
                let s = chain.compress(&c, &SHAPE, &scaled).unwrap();
                let (_, bytes) =
                    decode_step(&s, prev.as_deref(), &DecodeOptions::default()).unwrap();
                // Unscaled (exactly), so that the squares fit.
                let back = bytes
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()));
                let e = nrmse_of(x.iter().copied().zip(back.map(|d| d / scale)));
                assert!(e <= bound, "{key} at 2^{k}, step {t}: NRMSE {e}");
                size.push(s.len());
                prev = Some(bytes);
            }
            sizes.push(size);
        }
        assert_eq!(sizes[1], sizes[0], "{key} at 2^-560");
        assert_eq!(sizes[2], sizes[0], "{key} at 2^600");
    }
}

#[test]
fn reader_references_stay_within_their_budget() {
    let info = |chain, step| StepInfo {
        chain,
        step,
        keyframe: 0,
        reference: Some(0),
    };
    let mut r = References::new(1000);
    r.put("a", &info(1, 0), vec![1; 400]);
    r.put("a", &info(2, 0), vec![2; 400]);
    assert!(r.get("a", &info(1, 1)).is_some());
    // Per source: the same chain id in another file is another chain.
    assert!(r.get("b", &info(1, 1)).is_none());
    // Over budget: the least recently used goes (chain 2's).
    r.put("a", &info(3, 0), vec![3; 400]);
    assert!(r.used() <= 1000);
    assert!(r.get("a", &info(2, 1)).is_none());
    assert!(r.get("a", &info(1, 1)).is_some() && r.get("a", &info(3, 1)).is_some());
    // The step put last and the one before it.
    r.set_capacity(10_000);
    for s in 1..5 {
        r.put("a", &info(1, s), vec![0; 100]);
    }
    assert!(r.get("a", &info(1, 5)).is_some() && r.get("a", &info(1, 4)).is_some());
    assert!(r.get("a", &info(1, 3)).is_none());
    // A reader starting the chain again drops the later steps it had.
    r.put("a", &info(1, 0), vec![0; 100]);
    assert!(r.get("a", &info(1, 1)).is_some() && r.get("a", &info(1, 5)).is_none());
    assert_eq!(r.used(), 100 + 400);
    // Nothing larger than the budget is kept.
    r.set_capacity(50);
    assert_eq!(r.used(), 0);
    // A stream may say any step: after u64::MAX no step follows (this overflowed before).
    r.set_capacity(1000);
    r.put("a", &info(7, u64::MAX), vec![0; 8]);
    assert!(r.get("a", &info(7, 0)).is_none());
    r.put("a", &info(7, 3), vec![0; 8]);
    assert!(r.get("a", &info(7, 4)).is_some());
}

#[test]
fn bad_settings_are_refused() {
    for (pairs, why) in [
        (vec![("mode", "lossless"), ("temporal", "5")], "lossy modes"),
        (
            vec![("abs", "1e-3"), ("temporal", "ten")],
            "keyframe interval",
        ),
    ] {
        let e = Codec::from_pairs(pairs).unwrap_err().to_string();
        assert!(e.contains("temporal") && e.contains(why), "{e}");
    }
    // A chain needs temporal=K.
    let e = Chain::new(1)
        .compress(&codec(&[("abs", "1e-3")]), &[4], &[1.0f32; 4])
        .unwrap_err();
    assert!(e.to_string().contains("temporal=K"), "{e}");
}

/// Blocks whose reconstruction the encoder does not form itself (wavelet, GAE): the chain
/// decodes its own stream for the next step's base, which the reader's hash check confirms.
#[test]
fn chains_over_wavelet_and_gae_blocks() {
    for residual in ["wavelet", "gae"] {
        let c = codec(&[("nrmse", "1e-4"), ("residual", residual), ("temporal", "5")]);
        let spatial = codec(&[("nrmse", "1e-4"), ("residual", residual)]);
        let mut chain = Chain::new(2);
        let mut prev: Option<Vec<u8>> = None;
        for t in 0..6 {
            let x = field(SHAPE, t);
            let s = chain.compress(&c, &SHAPE, &x).unwrap();
            // Never much above coding the step alone: GAE takes no previous-step base, and its
            // blocks were stored exactly where that base looked best (2.2x the bytes).
            let alone = spatial.compress(&SHAPE, &x).unwrap().len();
            assert!(
                s.len() <= alone * 11 / 10,
                "{residual} step {t}: {} bytes, {alone} alone",
                s.len()
            );
            let (_, bytes) = decode_step(&s, prev.as_deref(), &DecodeOptions::default())
                .unwrap_or_else(|e| panic!("{residual} step {t}: {e}"));
            assert!(
                nrmse(&x, &floats(&bytes)) <= 1e-4 * (1.0 + 1e-9),
                "{residual} step {t}"
            );
            prev = Some(bytes);
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

    /// Random chains of drifting steps with hostile values sprinkled in (NaN, ±Inf, -0,
    /// denormals, values near f32::MAX) and now and then a jump: every step decodes over its
    /// reference within the bound (pointwise for abs and rel; for nrmse and psnr the RMS over
    /// the array, which the per-block bound implies), special values bit for bit.
    #[test]
    fn random_hostile_chains_keep_their_bounds(
        dims in proptest::collection::vec(1usize..10, 1..4),
        seed in proptest::prelude::any::<u64>(),
        mode in 0usize..4,
        exp in 2i32..7,
        every in 2u64..5,
        rate in 0usize..4,
    ) {
        let n: usize = dims.iter().product();
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let t = 10f64.powi(-exp);
        let (key, value) = match mode {
            0 => ("nrmse", t.to_string()),
            1 => ("abs", (t * 100.0).to_string()),
            2 => ("rel", t.to_string()),
            _ => ("psnr", (20 * exp).to_string()),
        };
        let every = every.to_string();
        let c = codec(&[(key, &value), ("temporal", &every)]);
        let mut chain = Chain::new(seed);
        let mut prev: Option<Vec<u8>> = None;
        let mut v: Vec<f64> = (0..n).map(|i| (i as f64 * 0.3).sin() * 50.0).collect();
        let share = [0.0, 0.01, 0.1, 0.5][rate];
        for step in 0..5 {
            let jump = if next() < 0.2 { 1e3 } else { 1.0 };
            let x: Vec<f32> = v
                .iter_mut()
                .map(|y| {
                    *y = *y * jump + next() - 0.5;
                    let h = next();
                    let special = [
                        f32::NAN,
                        f32::INFINITY,
                        f32::NEG_INFINITY,
                        -0.0,
                        f32::from_bits(7),
                        f32::MAX * 0.9,
                    ][(h * 6.0) as usize % 6];
                    if next() < share { special } else { *y as f32 }
                })
                .collect();
            let s = chain.compress(&c, &dims, &x).unwrap();
            let info = step_info(&s).unwrap().unwrap();
            let reference = prev.as_deref().filter(|_| info.reference.is_some());
            let (_, bytes) = decode_step(&s, reference, &DecodeOptions::default()).unwrap();
            let back = floats(&bytes);
            let finite: Vec<(f64, f64)> = x
                .iter()
                .zip(&back)
                .filter(|(o, _)| o.is_finite())
                .map(|(&o, &d)| (o as f64, d as f64))
                .collect();
            for (o, d) in x.iter().zip(&back) {
                if !o.is_finite() {
                    proptest::prop_assert_eq!(o.to_bits(), d.to_bits(), "step {}", step);
                }
            }
            let (lo, hi) = finite
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), &(o, _)| (l.min(o), h.max(o)));
            let range = (hi - lo).max(0.0);
            let tol = 1.0 + 1e-9;
            match key {
                "abs" | "rel" => {
                    let eps = if key == "abs" { t * 100.0 } else { t * range };
                    for &(o, d) in &finite {
                        proptest::prop_assert!((o - d).abs() <= eps * tol, "step {}: {} vs {}", step, o, d);
                    }
                }
                // psnr 20·exp is an RMS of 10^-exp of the range, as nrmse t.
                _ if range > 0.0 => {
                    let e = nrmse_of(finite.iter().copied());
                    proptest::prop_assert!(e <= t * tol, "step {}: NRMSE {} > {}", step, e, t);
                }
                // No range: a bound of 0.
                _ => {
                    for &(o, d) in &finite {
                        proptest::prop_assert_eq!(o, d, "step {}", step);
                    }
                }
            }
            prev = Some(bytes);
        }
    }
}
