//! (One file over 600 lines on purpose: every vector's recipe in one place, beside the check
//! that doc/format.md names each; they share the value generators and the temporal pairs.)
//!
//! Golden streams: committed streams of every block kind (and temporal pairs) still decode to
//! exactly their committed output, and doc/format.md names each as a conformance vector.

use residuum::{decode, decode_as, Codec, Error};
use std::path::PathBuf;

mod common;
use common::{assert_bits_eq, assert_golden_output, golden, NGLR_NET};

/// The wavelet vectors' settings: over the smooth source's halves (f32), over the wide
/// source (f64).
const WAVELET_HALVES: &[(&str, &str)] = &[
    ("nrmse", "1e-4"),
    ("residual", "wavelet"),
    ("block", "8x20x33"),
];
const WAVELET_WIDE: &[(&str, &str)] = &[
    ("nrmse", "1e-4"),
    ("residual", "wavelet"),
    ("block", "8x16x16"),
];

/// The settings of the NGLR vectors: the committed network on every block it can serve.
const NGLR_FORCED: &[(&str, &str)] = &[
    ("nrmse", "1e-5"),
    ("residual", "nglr"),
    ("nglr", NGLR_NET),
    ("block", "8x16x16"),
];

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
    smooth_integer(dims, i) as f32 / 4096.0
}

/// The smooth field's integer at `i`.
fn smooth_integer(dims: &[usize], i: usize) -> i64 {
    let (b, c, i) = (dims[1] as i64, dims[2] as i64, i as i64);
    let (z, y, x) = (i / (b * c), i / c % b, i % c);
    x * x * x - 3 * x * y * y + 40 * y * z * z - 700 * x * z + 5000 * y
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
    let cases: [Case; 21] = [
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
        ("nrmse_1e-5_nglr_f32", NGLR_FORCED, &[9, 20, 33]),
        // Version 8: the integer coder with modelled signs, on a smooth field whose residuals
        // have correlated signs; NGLR with the committed network over it.
        (
            "nrmse_1e-5_smooth_v8_f32",
            &[("nrmse", "1e-5"), ("block", "8x16x16")],
            &[9, 20, 33],
        ),
        ("nrmse_1e-5_nglr_v8_f32", NGLR_FORCED, &[9, 20, 33]),
        // Version 9: the same, with blocks whose signs are in the classes' symbols.
        (
            "nrmse_1e-5_smooth_v9_f32",
            &[("nrmse", "1e-5"), ("block", "8x16x16")],
            &[9, 20, 33],
        ),
        ("nrmse_1e-5_nglr_v9_f32", NGLR_FORCED, &[9, 20, 33]),
        // Version 10, written by the current encoder (the same bytes again): the same, and
        // wavelet blocks of both layouts on the smooth field.
        (
            "nrmse_1e-5_smooth_v10_f32",
            &[("nrmse", "1e-5"), ("block", "8x16x16")],
            &[9, 20, 33],
        ),
        ("nrmse_1e-5_nglr_v10_f32", NGLR_FORCED, &[9, 20, 33]),
        // Version 12, written by the current encoder: the same, its blocks of one plane (the
        // last plane) predicted by NGLR too (predictor 10).
        ("nrmse_1e-5_nglr_v12_f32", NGLR_FORCED, &[9, 20, 33]),
        // Its first block with special values (their spikes are localized detail: the dyadic
        // layout), its second without (the standard layout). The first of these was written
        // before the step search weighed the faces' coefficients exactly, which chose another
        // step, the second before version 11: both are only decoded now.
        ("nrmse_1e-4_wavelet_v10_f32", WAVELET_HALVES, &[16, 20, 33]),
        (
            "nrmse_1e-4_wavelet_v10_faces_f32",
            WAVELET_HALVES,
            &[16, 20, 33],
        ),
        // Version 11: the same field, its inverse transform unscaling by multiplication (so
        // other steps and values); the second written by the current encoder, whose transform
        // sees the special values' positions bridged by their neighbours (other integers).
        ("nrmse_1e-4_wavelet_v11_f32", WAVELET_HALVES, &[16, 20, 33]),
        (
            "nrmse_1e-4_wavelet_v11_bridged_f32",
            WAVELET_HALVES,
            &[16, 20, 33],
        ),
    ];
    // Streams of versions 10 and 11 by an earlier encoder (the wavelet's of version 10: the
    // encoder writes version 11 for them, and the first of version 11, before special values
    // were bridged; NGLR's of version 10: it writes version 12).
    let superseded = [
        "nrmse_1e-4_wavelet_v10_f32",
        "nrmse_1e-4_wavelet_v10_faces_f32",
        "nrmse_1e-4_wavelet_v11_f32",
        "nrmse_1e-5_nglr_v10_f32",
    ];
    for (name, params, dims) in cases {
        let n: usize = dims.iter().product();
        let mut v = match ["v8", "v9", "v10", "v11", "v12"]
            .iter()
            .any(|v| name.contains(v))
        {
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
        let s = golden(&dir, name, || {
            let s = Codec::from_pairs(params.iter().copied())
                .unwrap()
                .compress(dims, &v)
                .unwrap();
            let out = decode(&s).unwrap().1;
            (s, out)
        });
        if ["v10", "v11", "v12"].iter().any(|v| name.contains(v)) && !superseded.contains(&name) {
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
        assert_version(&s, name);
        let (info, out) = decode(&s).unwrap();
        assert_eq!(info.dims, dims, "{name}");
        assert_golden_output(&dir, name, &out);
        // And the stored output still honours what it was written for.
        let back: Vec<f32> = out
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        if name.starts_with("lossless") {
            assert_bits_eq(&v, &back);
        } else {
            // Every target (abs, rel, nrmse, psnr), special values bit for bit: a vector
            // blessed while its bound broke would fail here.
            let given: Vec<(&str, String)> =
                params.iter().map(|(k, v)| (*k, v.to_string())).collect();
            let wide = |x: &[f32]| x.iter().map(|&x| x as f64).collect::<Vec<_>>();
            common::check::check(&given, &wide(&v), &wide(&back), &s);
        }
    }
}

/// The version a vector's name gives (`_vN_`, where it does), as its header says.
fn assert_version(s: &[u8], name: &str) {
    let named = name
        .split('_')
        .find_map(|p| p.strip_prefix('v')?.parse::<u16>().ok());
    let parsed = residuum::internals::format::parse(s).unwrap();
    assert!(
        named.is_none_or(|v| v == parsed.version),
        "{name}: version {}",
        parsed.version
    );
}

/// Vectors of what the others lack: Gae and Constant blocks, Lbrc blocks coded with `PLANES`,
/// f64 streams (NGLR among them), Lbrc blocks with plane offsets, lossless streams with Lbrc
/// blocks and an empty array (`doc/format.md` §10). The current encoder wrote them (as
/// versions 10 to 14, the empty one as version 2) and must still write them byte for byte,
/// on 1 and 2 threads, until a change of format moves them among those only decoded (as the
/// NGLR stream of version 10).
#[test]
fn golden_streams_of_the_other_kinds_still_decode_identically() {
    use residuum::internals::format::{parse, BlockKind};
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden"));
    let dims = [9usize, 20, 33];
    let smooth = smooth_golden_values(&dims);
    // The smooth field made flat (1.5) in its first eight planes, the non-finite values kept:
    // the blocks there are Constant blocks with their specials.
    let flat: Vec<f64> = smooth
        .iter()
        .enumerate()
        .map(|(i, &x)| match i < 8 * 20 * 33 && x.is_finite() {
            true => 1.5,
            false => x as f64,
        })
        .collect();
    // Values no f32 holds: the smooth field's integers over 3·4096 in f64.
    let wide: Vec<f64> = smooth
        .iter()
        .enumerate()
        .map(|(i, &x)| match x.is_finite() {
            true => smooth_integer(&dims, i) as f64 / 12288.0,
            false => x as f64,
        })
        .collect();
    // Stacked GRIB messages: each plane on step 2^-12 from its own offset (a multiple of 2^-16
    // the other planes' lattices do not hold), every value exact in f32.
    let grib: Vec<f64> = smooth
        .iter()
        .enumerate()
        .map(|(i, &x)| match x.is_finite() {
            true => {
                let p = (i / (20 * 33)) as i64;
                let offset = 252.0 + (p * 2_654_435_761 % 4096) as f64 / 65536.0;
                offset + (smooth_integer(&dims, i) / 16) as f64 / 4096.0
            }
            false => x as f64,
        })
        .collect();
    // The smooth field cubed (f32 products), over many binades and both signs: no lattice.
    let binades: Vec<f64> = smooth.iter().map(|&x| (x * x * x) as f64).collect();
    // Computed in f64 from the smooth field (a square root, correctly rounded everywhere):
    // every bit of the mantissa in use, both signs, no lattice.
    let roots: Vec<f64> = smooth
        .iter()
        .map(|&x| ((x as f64) * (x as f64) + 2.0).sqrt() - 1.5)
        .collect();
    let smooth: Vec<f64> = smooth.iter().map(|&x| x as f64).collect();
    // (name, parameters, dims, values, what it must hold)
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a [usize],
        &'a [f64],
        &'a [BlockKind],
    );
    let cases: [Case; 17] = [
        (
            "nrmse_1e-2_gae_v10_f32",
            &[("nrmse", "1e-2"), ("residual", "gae"), ("block", "8x16x16")],
            &dims,
            &smooth,
            &[BlockKind::Gae, BlockKind::Zstd],
        ),
        (
            "abs_1e-3_planes_v10_f32",
            &[("abs", "1e-3"), ("coder", "planes"), ("block", "8x16x16")],
            &dims,
            &smooth,
            &[BlockKind::Lbrc],
        ),
        (
            "nrmse_1e-5_constant_v10_f32",
            &[("nrmse", "1e-5"), ("block", "8x16x16")],
            &dims,
            &flat,
            &[BlockKind::Constant, BlockKind::Lbrc],
        ),
        (
            "nrmse_1e-6_v10_f64",
            &[("nrmse", "1e-6"), ("block", "8x16x16")],
            &dims,
            &wide,
            &[BlockKind::Lbrc],
        ),
        // The other kinds as f64: Gae, the Wavelet's unscaling, NGLR, Constant's offset.
        (
            "nrmse_1e-2_gae_v10_f64",
            &[("nrmse", "1e-2"), ("residual", "gae"), ("block", "8x16x16")],
            &dims,
            &wide,
            &[BlockKind::Gae],
        ),
        (
            "nrmse_1e-4_wavelet_v11_f64",
            WAVELET_WIDE,
            &dims,
            &wide,
            &[BlockKind::Wavelet],
        ),
        (
            "nrmse_1e-4_wavelet_v11_bridged_f64",
            WAVELET_WIDE,
            &dims,
            &wide,
            &[BlockKind::Wavelet],
        ),
        (
            "nrmse_1e-5_nglr_v10_f64",
            NGLR_FORCED,
            &dims,
            &wide,
            &[BlockKind::Lbrc],
        ),
        (
            "nrmse_1e-5_nglr_v12_f64",
            NGLR_FORCED,
            &dims,
            &wide,
            &[BlockKind::Lbrc],
        ),
        (
            "nrmse_1e-5_constant_v10_f64",
            &[("nrmse", "1e-5"), ("block", "8x16x16")],
            &dims,
            &flat,
            &[BlockKind::Constant],
        ),
        (
            "nrmse_1e-6_grib_v13_f32",
            &[("nrmse", "1e-6")],
            &dims,
            &grib,
            &[BlockKind::Lbrc],
        ),
        (
            "nrmse_1e-6_grib_v13_f64",
            &[("nrmse", "1e-6")],
            &dims,
            &grib,
            &[BlockKind::Lbrc],
        ),
        // Version 14: lossless streams with Lbrc blocks (values on a lattice, bit for bit).
        (
            "lossless_grib_v14_f32",
            &[("mode", "lossless")],
            &dims,
            &grib,
            &[BlockKind::Lbrc],
        ),
        (
            "lossless_grib_v14_f64",
            &[("mode", "lossless")],
            &dims,
            &grib,
            &[BlockKind::Lbrc],
        ),
        // And f32 values' ordered bits as the integers.
        (
            "lossless_bits_v14_f32",
            &[("mode", "lossless")],
            &dims,
            &binades,
            &[BlockKind::Lbrc],
        ),
        // And f64's, above the block's least in steps of 2^s, their s low bits stored.
        (
            "lossless_bits_v15_f64",
            &[("mode", "lossless")],
            &dims,
            &roots,
            &[BlockKind::Lbrc],
        ),
        (
            "nrmse_1e-4_empty_v2_f32",
            &[("nrmse", "1e-4"), ("block", "8x16x16")],
            &[0, 20, 33],
            &[],
            &[],
        ),
    ];
    for (name, params, dims, v, kinds) in cases {
        let f64s = name.ends_with("f64");
        let compress = |threads: &str| {
            let codec =
                Codec::from_pairs(params.iter().copied().chain([("threads", threads)])).unwrap();
            match f64s {
                true => codec.compress(dims, v),
                false => codec.compress(dims, &v.iter().map(|&x| x as f32).collect::<Vec<_>>()),
            }
            .unwrap()
        };
        let s = golden(&dir, name, || {
            let s = compress("1");
            let out = decode(&s).unwrap().1;
            (s, out)
        });
        // Written by an earlier encoder (NGLR's: version 10, it writes version 12 now; the
        // wavelet's: before special values were bridged): only decoded.
        let superseded = ["nrmse_1e-5_nglr_v10_f64", "nrmse_1e-4_wavelet_v11_f64"].contains(&name);
        for threads in ["1", "2"].iter().filter(|_| !superseded) {
            assert!(
                compress(threads) == s,
                "{name}: the encoder's bytes changed ({threads} threads)"
            );
        }
        assert_version(&s, name);
        let parsed = parse(&s).unwrap();
        // The network travels only where blocks use it.
        assert_eq!(
            parsed.nglr().unwrap().is_some(),
            name.contains("nglr"),
            "{name}: the NGLR network"
        );
        for kind in kinds {
            assert!(
                parsed.entries.iter().any(|e| e.kind == *kind),
                "{name}: no {kind:?} block"
            );
        }
        let (info, out) = decode(&s).unwrap();
        assert_eq!(info.dims, dims, "{name}");
        assert_golden_output(&dir, name, &out);
        // And the stored output still honours what it was written for.
        let back: Vec<f64> = match f64s {
            true => decode_as::<f64>(&s).unwrap().1,
            false => decode_as::<f32>(&s)
                .unwrap()
                .1
                .iter()
                .map(|&x| x as f64)
                .collect(),
        };
        if name.starts_with("lossless") {
            let bits = |x: f64| if f64s { x } else { x as f32 as f64 }.to_bits();
            assert!(
                v.iter().zip(&back).all(|(&x, &y)| bits(x) == y.to_bits()),
                "{name}: not bit for bit"
            );
        } else {
            let given: Vec<(&str, String)> =
                params.iter().map(|(k, v)| (*k, v.to_string())).collect();
            common::check::check(&given, v, &back, &s);
        }
    }
}

/// The golden pairs of temporal prediction (version 7): a keyframe, and the next step with
/// blocks coded over its reconstruction, which decodes only with it. The first pair was written
/// before bases could be scaled by a gain, the second's second step (over the first keyframe)
/// before the integer coder modelled signs (version 8), the third before it put them in the
/// classes' symbols (version 9), the fourth before the wavelet's standard layout (version 10);
/// the encoder writes the fifth, and the sixth: the same steps over 3 in f64 (`wide_steps`).
const TEMPORAL_GOLDEN: [[&str; 2]; 6] = [
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
    [
        "temporal_v10_abs_1e-2_step0_f64",
        "temporal_v10_abs_1e-2_step1_f64",
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

/// The temporal steps in f64 over 3 (values no f32 holds), the non-finite ones as they are.
fn wide_steps(steps: &[Vec<f32>; 2]) -> [Vec<f64>; 2] {
    steps.each_ref().map(|v| {
        v.iter()
            .map(|&x| match x.is_finite() {
                true => x as f64 / 3.0,
                false => x as f64,
            })
            .collect()
    })
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
    let wide = wide_steps(&steps);
    // The current encoder's pairs, f32 and f64, in TEMPORAL_GOLDEN's order.
    let encode = |threads: &str| {
        let c = Codec::from_pairs(params.iter().copied().chain([("threads", threads)])).unwrap();
        let mut chain = residuum::Chain::new(0x7e57);
        let mut out: Vec<Vec<u8>> = steps
            .iter()
            .map(|v| chain.compress(&c, &dims, v).unwrap())
            .collect();
        let mut chain = residuum::Chain::new(0x7e57);
        out.extend(wide.iter().map(|v| chain.compress(&c, &dims, v).unwrap()));
        out
    };
    let fresh = encode("1");
    let current = TEMPORAL_GOLDEN[4..].iter().flatten();
    for (name, stream) in current.zip(&fresh) {
        // In order: a second step's decoded bytes need the first's stream.
        golden(&dir, name, || {
            (stream.clone(), decode_golden(&dir, name, stream))
        });
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
        assert_golden_output(&dir, name, &out);
        let back: Vec<f64> = match name.ends_with("f64") {
            true => out
                .chunks_exact(8)
                .map(|y| f64::from_le_bytes(y.try_into().unwrap()))
                .collect(),
            false => out
                .chunks_exact(4)
                .map(|y| f32::from_le_bytes(y.try_into().unwrap()) as f64)
                .collect(),
        };
        let want: Vec<f64> = match name.ends_with("f64") {
            true => wide[i % 2].clone(),
            false => steps[i % 2].iter().map(|&x| x as f64).collect(),
        };
        common::check::check(&[("abs", "1e-2".into())], &want, &back, &s);
    }
    // The seconds are predicted: blocks over the previous step, and refused without it; the
    // encoder's scales bases by gains (base code 6 or more: doc/format.md §5.12), where they
    // pay (not on the f64 pair's).
    use residuum::internals::format::BlockKind;
    for (name, gain) in TEMPORAL_GOLDEN
        .iter()
        .map(|p| p[1])
        .zip([false, true, true, true, true, false])
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
