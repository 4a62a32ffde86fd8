//! Codec round trips (real data, hostile values, odd shapes, random fields) and stream damage.

use proptest::prelude::*;
use residuum::internals::format::Tables;
use residuum::{decode, decode_as, stream_info, Codec, Error, FormatErrorKind, ParameterError};
use std::path::PathBuf;

mod common;
use common::real_fields;

fn lossless() -> Codec {
    Codec::from_pairs([("mode", "lossless")]).unwrap()
}

fn assert_bits_eq<T: Copy + Into<f64>>(a: &[T], b: &[T]) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let (x, y): (f64, f64) = ((*x).into(), (*y).into());
        assert!(x.to_bits() == y.to_bits(), "element {i}: {x} != {y}");
    }
}

#[test]
fn lossless_is_bit_exact_on_every_real_field_and_smaller() {
    for (name, dims, vals) in real_fields() {
        let s = lossless().compress(&dims, &vals).unwrap();
        let (d, back) = decode_as::<f32>(&s).unwrap();
        assert_eq!(d, dims, "{name}");
        assert_bits_eq(&vals, &back);
        assert!(
            s.len() <= lossless().max_compressed_len(residuum::ElementType::F32, &dims),
            "{name}"
        );
    }
}

#[test]
fn hostile_values_round_trip_bit_exactly() {
    let specials = vec![
        f64::NAN,
        -f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        f64::MIN_POSITIVE / 8.0,
        f64::MAX,
        f64::MIN,
        1e300,
        -1e-300,
        f64::from_bits(0x7ff8_dead_beef_0001),
    ];
    let s = lossless().compress(&[specials.len()], &specials).unwrap();
    let (_, back) = decode_as::<f64>(&s).unwrap();
    for (a, b) in specials.iter().zip(&back) {
        assert_eq!(a.to_bits(), b.to_bits());
    }
    let f: Vec<f32> = vec![
        f32::NAN,
        f32::INFINITY,
        -f32::INFINITY,
        1e-45,
        f32::MAX,
        -0.0,
    ];
    let (_, back) = decode_as::<f32>(&lossless().compress(&[2, 3], &f).unwrap()).unwrap();
    assert_bits_eq(&f, &back);
    let constant = vec![7.25f32; 4096];
    let s = lossless().compress(&[16, 16, 16], &constant).unwrap();
    assert!(
        s.len() < 400,
        "a constant block should shrink, got {} bytes",
        s.len()
    );
    assert_bits_eq(&constant, &decode_as::<f32>(&s).unwrap().1);
}

#[test]
fn odd_shapes_round_trip() {
    let shapes: &[&[usize]] = &[
        &[],
        &[0],
        &[1],
        &[1, 1, 1],
        &[1, 1, 37],
        &[5, 0, 3],
        &[3, 1, 4, 1, 5],
        &[2; 7],
    ];
    for &dims in shapes {
        let n: usize = dims.iter().product();
        let v: Vec<f64> = (0..n).map(|i| (i as f64).sqrt()).collect();
        let s = lossless().compress(dims, &v).unwrap();
        let (d, back) = decode_as::<f64>(&s).unwrap();
        assert_eq!(d, dims);
        assert_bits_eq(&v, &back);
    }
}

#[test]
fn bad_input_is_refused() {
    assert!(matches!(
        lossless().compress(&[3, 3], &[0f32; 8]),
        Err(Error::Parameter(ParameterError::InputSize {
            expected: 36,
            got: 32
        }))
    ));
    assert!(matches!(
        lossless().compress(&[usize::MAX, 2], &[0f32; 0]),
        Err(Error::Parameter(ParameterError::BadShape(_)))
    ));
    assert!(matches!(
        lossless().compress(&[1; 33], &[0f32; 1]),
        Err(Error::Parameter(ParameterError::BadShape(_)))
    ));
    let s = lossless().compress(&[4], &[1f32, 2., 3., 4.]).unwrap();
    assert!(matches!(
        decode_as::<f64>(&s),
        Err(Error::Parameter(ParameterError::UnsupportedType(_)))
    ));
}

#[test]
fn worst_case_size_is_exact_for_incompressible_data() {
    // xorshift bits: zstd cannot shrink them, so the block is stored raw and the stream is
    // exactly as long as the bound ADIOS2 sizes its buffer with.
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let v: Vec<f64> = (0..999)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            f64::from_bits(x)
        })
        .collect();
    for dims in [[999usize, 1, 1], [9, 111, 1], [3, 3, 111]] {
        let s = lossless().compress(&dims, &v).unwrap();
        assert_eq!(
            s.len(),
            lossless().max_compressed_len(residuum::ElementType::F64, &dims)
        );
    }
}

fn sample_stream() -> Vec<u8> {
    let v: Vec<f32> = (0..600).map(|i| (i as f32 * 0.1).sin()).collect();
    lossless().compress(&[6, 10, 10], &v).unwrap()
}

/// Flips `flips` pseudo-random bytes of `p` (from `seed`), then cuts `cut` bytes off its end.
fn mutate(p: &mut Vec<u8>, seed: u64, flips: usize, cut: usize) {
    let mut x = seed | 1;
    for _ in 0..flips {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (x as usize) % p.len();
        p[i] ^= (x >> 32) as u8 | 1;
    }
    p.truncate(p.len().saturating_sub(cut));
}

/// A one-block stream of the wavelet kind (from version 5; written as 10), with a NaN among its
/// values.
fn wavelet_stream() -> Vec<u8> {
    let mut v: Vec<f32> = (0..720).map(|i| (i as f32 * 0.05).sin() * 4.0).collect();
    v[100] = f32::NAN;
    let s = Codec::from_pairs([("nrmse", "1e-4"), ("residual", "wavelet")])
        .unwrap()
        .compress(&[3, 12, 20], &v)
        .unwrap();
    let parsed = residuum::internals::format::parse(&s).unwrap();
    assert_eq!(parsed.version, 11);
    assert_eq!(
        parsed.entries[0].kind,
        residuum::internals::format::BlockKind::Wavelet
    );
    s
}

/// The committed NGLR network.
const NGLR_NET: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/nglr_net.safetensors"
);

/// A one-block stream predicted with NGLR (from version 6; written as 10), the network in its
/// table, with a NaN.
fn nglr_stream() -> Vec<u8> {
    let mut v: Vec<f32> = (0..720)
        .map(|i| (i as f32 * 0.05).sin() * 4.0 + (i % 7) as f32 * 0.01)
        .collect();
    v[100] = f32::NAN;
    let s = Codec::from_pairs([("nrmse", "1e-5"), ("residual", "nglr"), ("nglr", NGLR_NET)])
        .unwrap()
        .compress(&[3, 12, 20], &v)
        .unwrap();
    let parsed = residuum::internals::format::parse(&s).unwrap();
    assert_eq!(parsed.version, 10);
    assert!(parsed.nglr().unwrap().is_some());
    s
}

#[test]
fn every_truncation_is_an_error() {
    for s in [sample_stream(), wavelet_stream(), nglr_stream()] {
        truncations_are_errors(&s);
    }
}

fn truncations_are_errors(s: &[u8]) {
    for n in 0..s.len() {
        match decode(&s[..n]) {
            Err(Error::Format(_)) => {}
            other => panic!("truncated to {n} of {} bytes: {other:?}", s.len()),
        }
    }
    let mut longer = s.to_vec();
    longer.push(0);
    assert!(matches!(decode(&longer), Err(e) if e.format_kind() == Some(FormatErrorKind::Corrupt)));
}

#[test]
fn every_single_byte_corruption_is_detected() {
    let (plain, wavelet, nglr) = (sample_stream(), wavelet_stream(), nglr_stream());
    // The wavelet stream's header, table and a stretch of its payload; all of the NGLR
    // stream's (its network is the last entry).
    let some = plain.len().min(wavelet.len());
    for (s, upto) in [(&plain, plain.len()), (&wavelet, some), (&nglr, nglr.len())] {
        corruptions_are_detected(s, upto);
    }
}

fn corruptions_are_detected(s: &[u8], upto: usize) {
    for i in 0..upto {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut c = s.to_vec();
            c[i] ^= flip;
            assert!(decode(&c).is_err(), "byte {i} ^ {flip:#x} went unnoticed");
        }
    }
}

/// NGLR needs its network: a missing or wrong file is refused when the codec is made, a stream
/// whose network entry is damaged or missing is refused when decoded.
#[test]
fn nglr_without_its_network_is_an_error() {
    let err = |pairs: &[(&str, &str)]| Codec::from_pairs(pairs.iter().copied()).unwrap_err();
    assert!(matches!(
        err(&[("nrmse", "1e-5"), ("residual", "nglr")]),
        Error::Parameter(_)
    ));
    let missing = err(&[("nrmse", "1e-5"), ("nglr", "/nonexistent/nglr.safetensors")]);
    assert!(matches!(missing, Error::Model(_)), "{missing}");
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a network").unwrap();
    let wrong = err(&[("nrmse", "1e-5"), ("nglr", garbage.to_str().unwrap())]);
    assert!(matches!(wrong, Error::Model(_)), "{wrong}");

    // The stream without its network entry (table and flag rewritten, checksums recomputed):
    // its NGLR block cannot be decoded.
    let s = nglr_stream();
    let parsed = residuum::internals::format::parse(&s).unwrap();
    let blocks: Vec<_> = (0..parsed.entries.len())
        .map(|i| (parsed.entries[i].kind, parsed.payload(i).unwrap()))
        .collect();
    let mut out = vec![0u8; s.len()];
    let none = Tables::default();
    let n =
        residuum::internals::format::write_stream(&parsed.info, &blocks, none, &mut out).unwrap();
    let e = decode(&out[..n]).unwrap_err();
    assert!(e.to_string().contains("no NGLR network"), "{e}");
    // And with a network of another content (weights changed, hash recomputed): decodes, but
    // not to the original values, so the hash in the entry is what ties stream and network.
    let entry = parsed.nglr().unwrap().unwrap();
    let mut bad = entry.to_vec();
    *bad.last_mut().unwrap() ^= 1;
    let bad = Tables {
        nglr: Some(&bad),
        ..Default::default()
    };
    let e = residuum::internals::format::write_stream(&parsed.info, &blocks, bad, &mut out)
        .map(|n| decode(&out[..n]));
    assert!(matches!(e, Ok(Err(Error::Model(_)))), "{e:?}");
}

#[test]
fn decode_never_writes_past_the_output() {
    let s = sample_stream();
    let need = stream_info(&s).unwrap().decoded_len();
    let mut small = vec![0u8; need - 1];
    assert!(matches!(
        residuum::decode_into(&s, &mut small),
        Err(Error::Parameter(ParameterError::OutputTooSmall { .. }))
    ));
    let mut big = vec![0xAAu8; need + 16];
    assert_eq!(residuum::decode_into(&s, &mut big).unwrap(), need);
    assert!(big[need..].iter().all(|&b| b == 0xAA));
}

/// Values for the golden streams: integer arithmetic only, identical on every machine; a few
/// non-finite values.
fn golden_values(n: u32) -> Vec<f32> {
    (0..n)
        .map(|i| match i % 97 {
            13 => f32::NAN,
            41 => f32::NEG_INFINITY,
            _ => (i.wrapping_mul(2_654_435_761) >> 20) as f32 / 64.0 - 20.0 + (i / 7) as f32 * 0.5,
        })
        .collect()
}

/// A smooth field for the golden streams (exact integer arithmetic, scaled by a power of two),
/// with the golden values' non-finite values.
fn smooth_golden_values(dims: &[usize]) -> Vec<f32> {
    let noise = golden_values(dims.iter().product::<usize>() as u32);
    noise
        .into_iter()
        .enumerate()
        .map(|(i, g)| if g.is_finite() { smooth_at(dims, i) } else { g })
        .collect()
}

/// The smooth field's value at `i` (integer arithmetic, exact in f32).
fn smooth_at(dims: &[usize], i: usize) -> f32 {
    let (b, c, i) = (dims[1] as i64, dims[2] as i64, i as i64);
    let (z, y, x) = (i / (b * c), i / c % b, i % c);
    (x * x * x - 3 * x * y * y + 40 * y * z * z - 700 * x * z + 5000 * y) as f32 / 4096.0
}

/// Committed streams of every kind: they must still decode to exactly the committed output
/// (its xxh3), so a later version proves it reads old files. `RESIDUUM_BLESS=1` writes the
/// missing ones; a committed one is never rewritten. `nrmse_1e-4_context_f32` holds the
/// one-lane context coder of the first lossy streams.
#[test]
fn golden_streams_still_decode_identically() {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden"));
    // The format-1 stream predates lossy modes and is never rewritten.
    let v1 = std::fs::read(dir.join("lossless_f32_17x5x3.rsd")).unwrap();
    let (dims, back) = decode_as::<f32>(&v1).unwrap();
    assert_eq!(dims, [17, 5, 3]);
    let old: Vec<f32> = (0u32..255)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 20) as f32 / 64.0 - 20.0)
        .collect();
    assert_bits_eq(&old, &back);

    // (name, codec parameters, shape)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [usize]);
    let cases: [Case; 19] = [
        ("lossless_v2_f32", &[("mode", "lossless")], &[9, 10, 11]),
        (
            "nrmse_1e-4_context_f32",
            &[("nrmse", "1e-4"), ("block", "4x8x8")],
            &[9, 10, 11],
        ),
        (
            "abs_1e-2_planes_f32",
            &[("abs", "1e-2"), ("coder", "planes"), ("block", "3x5x7")],
            &[990],
        ),
        (
            "psnr_60_4d_f32",
            &[("psnr", "60"), ("block", "2x6x6")],
            &[3, 2, 11, 15],
        ),
        (
            "nrmse_1e-4_lanes_f32",
            &[("nrmse", "1e-4"), ("block", "5x7x9")],
            &[9, 10, 11],
        ),
        ("rel_1e-3_lanes_1d_f32", &[("rel", "1e-3")], &[1001]),
        // Version 4: special values as a list, and as a mask with fill values among them.
        (
            "nrmse_1e-5_list_f32",
            &[("nrmse", "1e-5"), ("block", "5x7x9")],
            &[9, 10, 11],
        ),
        // Version 4: special values as a mask, fill values among them.
        (
            "abs_1e-2_mask_fill_f32",
            &[("abs", "1e-2"), ("fill", "1e20"), ("block", "4x8x8")],
            &[9, 10, 11],
        ),
        // Version 5: wavelet blocks (special values among them), LBRC for the edge blocks
        // too small for the transform.
        (
            "nrmse_1e-4_wavelet_f32",
            &[
                ("nrmse", "1e-4"),
                ("residual", "wavelet"),
                ("block", "8x16x16"),
            ],
            &[9, 20, 33],
        ),
        // Version 6: NGLR blocks (special values among them) with the committed network in
        // the table, LBRC for the blocks it cannot serve.
        (
            "nrmse_1e-5_nglr_f32",
            &[
                ("nrmse", "1e-5"),
                ("residual", "nglr"),
                ("nglr", NGLR_NET),
                ("block", "8x16x16"),
            ],
            &[9, 20, 33],
        ),
        // Version 8: the integer coder with modelled signs, on a smooth field whose residuals
        // have correlated signs; NGLR with the committed network over it.
        (
            "nrmse_1e-5_smooth_v8_f32",
            &[("nrmse", "1e-5"), ("block", "8x16x16")],
            &[9, 20, 33],
        ),
        (
            "nrmse_1e-5_nglr_v8_f32",
            &[
                ("nrmse", "1e-5"),
                ("residual", "nglr"),
                ("nglr", NGLR_NET),
                ("block", "8x16x16"),
            ],
            &[9, 20, 33],
        ),
        // Version 9: the same, with blocks whose signs are in the classes' symbols.
        (
            "nrmse_1e-5_smooth_v9_f32",
            &[("nrmse", "1e-5"), ("block", "8x16x16")],
            &[9, 20, 33],
        ),
        (
            "nrmse_1e-5_nglr_v9_f32",
            &[
                ("nrmse", "1e-5"),
                ("residual", "nglr"),
                ("nglr", NGLR_NET),
                ("block", "8x16x16"),
            ],
            &[9, 20, 33],
        ),
        // Version 10, written by the current encoder (the same bytes again): the same, and
        // wavelet blocks of both layouts on the smooth field.
        (
            "nrmse_1e-5_smooth_v10_f32",
            &[("nrmse", "1e-5"), ("block", "8x16x16")],
            &[9, 20, 33],
        ),
        (
            "nrmse_1e-5_nglr_v10_f32",
            &[
                ("nrmse", "1e-5"),
                ("residual", "nglr"),
                ("nglr", NGLR_NET),
                ("block", "8x16x16"),
            ],
            &[9, 20, 33],
        ),
        // Its first block with special values (their spikes are localized detail: the dyadic
        // layout), its second without (the standard layout). The first of these was written
        // before the step search weighed the faces' coefficients exactly, which chose another
        // step, the second before version 11: both are only decoded now.
        (
            "nrmse_1e-4_wavelet_v10_f32",
            &[
                ("nrmse", "1e-4"),
                ("residual", "wavelet"),
                ("block", "8x20x33"),
            ],
            &[16, 20, 33],
        ),
        (
            "nrmse_1e-4_wavelet_v10_faces_f32",
            &[
                ("nrmse", "1e-4"),
                ("residual", "wavelet"),
                ("block", "8x20x33"),
            ],
            &[16, 20, 33],
        ),
        // Version 11, written by the current encoder: the same field, its inverse transform
        // unscaling by multiplication (so other steps and values).
        (
            "nrmse_1e-4_wavelet_v11_f32",
            &[
                ("nrmse", "1e-4"),
                ("residual", "wavelet"),
                ("block", "8x20x33"),
            ],
            &[16, 20, 33],
        ),
    ];
    // Streams of versions 10 and 11 by an earlier encoder (the wavelet's of version 10: the
    // encoder writes version 11 for them).
    let superseded = [
        "nrmse_1e-4_wavelet_v10_f32",
        "nrmse_1e-4_wavelet_v10_faces_f32",
    ];
    for (name, params, dims) in cases {
        let n: usize = dims.iter().product();
        let mut v = match ["v8", "v9", "v10", "v11"].iter().any(|v| name.contains(v)) {
            true => smooth_golden_values(dims),
            false => golden_values(n as u32),
        };
        if name.contains("wavelet_v1") {
            for (i, x) in v.iter_mut().enumerate().skip(n / 2) {
                *x = smooth_at(dims, i);
            }
        }
        if name.contains("mask") {
            // Every third row filled, as a land mask would be.
            (0..n)
                .filter(|i| (i / 11) % 3 == 0)
                .for_each(|i| v[i] = 1e20);
        }
        let (rsd, hash) = (
            dir.join(format!("{name}.rsd")),
            dir.join(format!("{name}.xxh3")),
        );
        if std::env::var_os("RESIDUUM_BLESS").is_some() && !rsd.exists() {
            let s = Codec::from_pairs(params.iter().copied())
                .unwrap()
                .compress(dims, &v)
                .unwrap();
            let (_, out) = decode(&s).unwrap();
            std::fs::write(&rsd, &s).unwrap();
            std::fs::write(
                &hash,
                format!("{:016x}\n", xxhash_rust::xxh3::xxh3_64(&out)),
            )
            .unwrap();
        }
        let s = std::fs::read(&rsd).unwrap_or_else(|e| panic!("{name}: {e}"));
        if ["v10", "v11"].iter().any(|v| name.contains(v)) && !superseded.contains(&name) {
            // The encoder is deterministic: the same bytes again, on 1 and 2 threads.
            for threads in ["1", "2"] {
                let again = Codec::from_pairs(params.iter().copied().chain([("threads", threads)]))
                    .unwrap()
                    .compress(dims, &v)
                    .unwrap();
                assert!(
                    again == s,
                    "{name}: the encoder's bytes changed ({threads} threads)"
                );
            }
        }
        let (info, out) = decode(&s).unwrap();
        assert_eq!(info.dims, dims, "{name}");
        let want = std::fs::read_to_string(&hash).unwrap();
        assert_eq!(
            format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&out)),
            want.trim(),
            "{name}: decoded output changed"
        );
        // And the stored output still honours what it was written for.
        let back: Vec<f32> = out
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        for (x, y) in v.iter().zip(&back) {
            if !x.is_finite() || *x == 1e20 {
                assert_eq!(x.to_bits(), y.to_bits(), "{name}");
            }
        }
        if name.starts_with("lossless") {
            assert_bits_eq(&v, &back);
        }
        if name.starts_with("abs") {
            assert!(
                v.iter()
                    .zip(&back)
                    .all(|(x, y)| !x.is_finite() || *x == 1e20 || (x - y).abs() <= 1e-2),
                "{name}"
            );
        }
    }
}

/// The golden pairs of temporal prediction (version 7): a keyframe, and the next step with
/// blocks coded over its reconstruction, which decodes only with it. The first pair was written
/// before bases could be scaled by a gain, the second's second step (over the first keyframe)
/// before the integer coder modelled signs (version 8), the third before it put them in the
/// classes' symbols (version 9), the fourth before the wavelet's standard layout (version 10);
/// the encoder writes the fifth.
const TEMPORAL_GOLDEN: [[&str; 2]; 5] = [
    ["temporal_abs_1e-2_step0_f32", "temporal_abs_1e-2_step1_f32"],
    [
        "temporal_abs_1e-2_step0_f32",
        "temporal_gain_abs_1e-2_step1_f32",
    ],
    [
        "temporal_v8_abs_1e-2_step0_f32",
        "temporal_v8_abs_1e-2_step1_f32",
    ],
    [
        "temporal_v9_abs_1e-2_step0_f32",
        "temporal_v9_abs_1e-2_step1_f32",
    ],
    [
        "temporal_v10_abs_1e-2_step0_f32",
        "temporal_v10_abs_1e-2_step1_f32",
    ],
];

/// The two steps the temporal golden streams hold (integer arithmetic only): the golden values
/// in the first half of the array, a gentle ramp in the second (there the previous step's
/// rounding noise dominates: its smoothed reconstruction predicts better); then the same moved
/// by multiples of 2^-8.
fn temporal_golden_steps(n: usize) -> [Vec<f32>; 2] {
    let mut first = golden_values(n as u32);
    for (i, x) in first.iter_mut().enumerate().skip(n / 2) {
        if x.is_finite() {
            *x = ((i / 110) * 3 + (i / 11 % 10) * 2 + i % 11) as f32 * 0.001_953_125;
        }
    }
    let second = first
        .iter()
        .enumerate()
        .map(|(i, &x)| x + ((i % 9) as f32 - 4.0) * 0.003_906_25)
        .collect();
    [first, second]
}

/// Decodes a committed stream, the second of a temporal pair over the keyframe's
/// reconstruction.
fn decode_golden(dir: &std::path::Path, name: &str, s: &[u8]) -> Vec<u8> {
    let pair = TEMPORAL_GOLDEN.iter().find(|p| p[1] == name);
    let reference = pair.map(|p| {
        let first = std::fs::read(dir.join(format!("{}.rsd", p[0]))).unwrap();
        decode(&first).unwrap().1
    });
    residuum::decode_step(s, reference.as_deref(), &Default::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .1
}

#[test]
fn golden_temporal_streams_still_decode_identically() {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden"));
    let dims = [9usize, 10, 11];
    let params = [("abs", "1e-2"), ("temporal", "4"), ("block", "5x7x9")];
    let steps = temporal_golden_steps(dims.iter().product());
    let encode = |threads: &str| {
        let c = Codec::from_pairs(params.iter().copied().chain([("threads", threads)])).unwrap();
        let mut chain = residuum::Chain::new(0x7e57);
        steps
            .each_ref()
            .map(|v| chain.compress(&c, &dims, v).unwrap())
    };
    let fresh = encode("1");
    let current = TEMPORAL_GOLDEN[4];
    for (name, stream) in current.iter().zip(&fresh) {
        let (rsd, hash) = (
            dir.join(format!("{name}.rsd")),
            dir.join(format!("{name}.xxh3")),
        );
        if std::env::var_os("RESIDUUM_BLESS").is_some() && !rsd.exists() {
            std::fs::write(&rsd, stream).unwrap();
            let out = decode_golden(&dir, name, stream);
            let h = xxhash_rust::xxh3::xxh3_64(&out);
            std::fs::write(&hash, format!("{h:016x}\n")).unwrap();
        }
    }
    for (i, name) in TEMPORAL_GOLDEN.iter().flatten().enumerate() {
        let s = std::fs::read(dir.join(format!("{name}.rsd"))).unwrap();
        // The encoder is deterministic: the same bytes again, on 1 and 2 threads.
        if i >= 8 {
            assert!(
                s == fresh[i - 8] && s == encode("2")[i - 8],
                "{name}: the encoder's bytes changed"
            );
        }
        let out = decode_golden(&dir, name, &s);
        let want = std::fs::read_to_string(dir.join(format!("{name}.xxh3"))).unwrap();
        assert_eq!(
            format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&out)),
            want.trim(),
            "{name}: decoded output changed"
        );
        for (x, y) in steps[i % 2].iter().zip(out.chunks_exact(4)) {
            let y = f32::from_le_bytes(y.try_into().unwrap());
            assert!(
                if x.is_finite() {
                    (x - y).abs() <= 1e-2
                } else {
                    x.to_bits() == y.to_bits()
                },
                "{name}: {x} vs {y}"
            );
        }
    }
    // The seconds are predicted: blocks over the previous step, and refused without it; the
    // encoder's scales bases by gains (base code 6 or more: doc/format.md §5.12).
    use residuum::internals::format::BlockKind;
    for (name, gain) in TEMPORAL_GOLDEN
        .iter()
        .map(|p| p[1])
        .zip([false, true, true, true])
    {
        let s = std::fs::read(dir.join(format!("{name}.rsd"))).unwrap();
        let parsed = residuum::internals::format::parse(&s).unwrap();
        let codes: Vec<u8> = (0..parsed.entries.len())
            .filter(|&i| parsed.entries[i].kind == BlockKind::Previous)
            .map(|i| parsed.payload(i).unwrap()[0])
            .collect();
        assert!(!codes.is_empty(), "{name}");
        assert_eq!(codes.iter().any(|&c| c >= 6), gain, "{name}: {codes:?}");
        assert!(matches!(decode(&s), Err(Error::Reference(_))));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_fields_round_trip(dims in prop::collection::vec(1usize..9, 1..5), seed in any::<u64>(), level in 1i32..20) {
        let n: usize = dims.iter().product();
        let v: Vec<f64> = (0..n as u64).map(|i| f64::from_bits(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15))).collect();
        let c = Codec::from_pairs([("level", level.to_string())]).unwrap();
        let s = c.compress(&dims, &v).unwrap();
        prop_assert!(s.len() <= c.max_compressed_len(residuum::ElementType::F64, &dims));
        let (d, back) = decode_as::<f64>(&s).unwrap();
        prop_assert_eq!(d, dims);
        prop_assert!(v.iter().zip(&back).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    /// Behind the checksums: mutated real block payloads and random bytes straight into the
    /// block decoder return errors or values, never panic.
    #[test]
    fn block_decoder_survives_mutated_payloads(seed in any::<u64>(), flips in 1usize..8, cut in 0usize..64) {
        use residuum::internals::lbrc;
        let shape = [3usize, 7, 9];
        let v: Vec<f64> = (0..189).map(|i| ((i * 37 % 101) as f64).sqrt() * 3.0).collect();
        let bound = residuum::internals::BlockBound::Rms(1e-3);
        for coder in [residuum::IntCoder::Context, residuum::IntCoder::Planes] {
            let Some((lbrc::Payload::Lbrc(mut p), _)) = lbrc::encode(&v, shape, bound, residuum::ElementType::F64, coder, true) else {
                panic!("expected an LBRC block");
            };
            mutate(&mut p, seed, flips, cut);
            for version in [3, 4] {
                let _ = lbrc::decode(&p, None, None, shape, residuum::ElementType::F64, false, version);
                let _ = lbrc::decode(&p, None, None, shape, residuum::ElementType::F32, true, version);
            }
        }
        // A wavelet block's payload, mutated the same way.
        let s = wavelet_stream();
        let parsed = residuum::internals::format::parse(&s).unwrap();
        let mut p = parsed.payload(0).unwrap().to_vec();
        mutate(&mut p, seed, flips, cut);
        for dtype in [residuum::ElementType::F32, residuum::ElementType::F64] {
            for version in [5, 10] {
                let _ = residuum::internals::wavelet::decode(&p, [3, 12, 20], dtype, version);
            }
        }
        // An NGLR block's payload, decoded with its network.
        let s = nglr_stream();
        let parsed = residuum::internals::format::parse(&s).unwrap();
        let net = std::sync::Arc::new(
            residuum::internals::nglr::Network::from_entry(parsed.nglr().unwrap().unwrap()).unwrap(),
        );
        let mut p = parsed.payload(0).unwrap().to_vec();
        mutate(&mut p, seed, flips, cut);
        let _ = residuum::internals::lbrc::decode(&p, None, Some(&net), [3, 12, 20], residuum::ElementType::F32, false, 6);
        // A block whose signs are modelled (the second of the smooth golden stream).
        let s = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/nrmse_1e-5_smooth_v8_f32.rsd")).unwrap();
        let parsed = residuum::internals::format::parse(&s).unwrap();
        let mut p = parsed.payload(1).unwrap().to_vec();
        mutate(&mut p, seed, flips, cut);
        let _ = residuum::internals::lbrc::decode(&p, None, None, [8, 16, 16], residuum::ElementType::F32, false, 8);
        // Blocks whose signs are in their streams and in the classes' symbols (the second and
        // the tenth of the smooth golden stream of version 9).
        let s = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/nrmse_1e-5_smooth_v9_f32.rsd")).unwrap();
        let parsed = residuum::internals::format::parse(&s).unwrap();
        for (block, shape) in [(1, [8, 16, 16]), (9, [1, 4, 16])] {
            let mut p = parsed.payload(block).unwrap().to_vec();
            mutate(&mut p, seed, flips, cut);
            let _ = residuum::internals::lbrc::decode(&p, None, None, shape, residuum::ElementType::F32, false, 9);
        }
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512), keep_magic in any::<bool>()) {
        let mut b = bytes;
        if keep_magic && b.len() >= 6 {
            b[..4].copy_from_slice(b"RSDM");
            b[4..6].copy_from_slice(&1u16.to_le_bytes());
        }
        prop_assert!(decode(&b).is_err());
    }
}

/// doc/format.md names every committed golden stream as a conformance vector with the hash of
/// its decoded array: each decodes to exactly that, and no golden stream goes unnamed.
#[test]
fn the_format_document_names_and_matches_every_conformance_vector() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("doc/format.md")).unwrap();
    let section = doc
        .split("## 10. Conformance vectors")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("doc/format.md has a conformance vector section");
    // Table rows: | `NAME.rsd` | version | ... | `HASH` or a note |
    let rows: Vec<(String, Option<String>)> = section
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let file = cells.get(1)?.strip_prefix('`')?.strip_suffix(".rsd`")?;
            let last = cells.get(cells.len().checked_sub(2)?)?;
            let hash = last
                .strip_prefix('`')
                .and_then(|h| h.strip_suffix('`'))
                .map(str::to_string);
            Some((file.to_string(), hash))
        })
        .collect();
    let golden = root.join("tests/golden");
    let mut on_disk: Vec<String> = std::fs::read_dir(&golden)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".rsd").map(str::to_string)
        })
        .collect();
    on_disk.sort();
    let mut named: Vec<String> = rows.iter().map(|(f, _)| f.clone()).collect();
    named.sort();
    assert_eq!(named, on_disk, "doc/format.md and tests/golden disagree");
    for (name, hash) in rows {
        let s = std::fs::read(golden.join(format!("{name}.rsd"))).unwrap();
        let out = decode_golden(&golden, &name, &s);
        let got = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&out));
        let file = golden.join(format!("{name}.xxh3"));
        match hash {
            Some(h) => {
                assert_eq!(got, h, "{name}: the document's hash");
                let stored = std::fs::read_to_string(&file).unwrap();
                assert_eq!(stored.trim(), h, "{name}: the .xxh3 file");
            }
            // Only the format-1 vector has no hash file; the golden test checks its values.
            None => assert!(!file.exists(), "{name}: the document gives no hash"),
        }
    }
}
