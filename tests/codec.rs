//! Codec round trips (real data, hostile values, odd shapes, random fields) and stream damage.

use proptest::prelude::*;
use residuum::internals::format::Tables;
use residuum::{
    decode, decode_as, stream_info, Codec, ElementType, Error, FormatErrorKind, ParameterError,
};

mod common;
use common::{assert_bits_eq, lossless, real_fields, NGLR_NET};

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
        f32::from_bits(0x7f80_0001),
        f32::from_bits(0xffa0_beef),
    ];
    let (_, back) = decode_as::<f32>(&lossless().compress(&[2, 4], &f).unwrap()).unwrap();
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

/// A smooth field packed on a step of 1/64 (as GRIB packs), in 2 blocks, with special values:
/// NaN payloads and infinities in the first, a -0.0 in the second.
fn packed_field() -> (Vec<usize>, Vec<f64>) {
    let dims = vec![16, 32, 64];
    let mut v: Vec<f64> = (0..16 * 32 * 64)
        .map(|i| {
            let (z, y, x) = ((i / 2048) as f64, (i / 64 % 32) as f64, (i % 64) as f64);
            let smooth = (0.1 * x).sin() * 40.0 + (0.07 * y).cos() * 25.0 + z;
            (smooth * 64.0).round() / 64.0
        })
        .collect();
    v[5] = f64::from_bits(0x7ff8_0000_dead_beef);
    (v[6], v[100]) = (f64::INFINITY, f64::NEG_INFINITY);
    v[20_000] = -0.0;
    (dims, v)
}

#[test]
fn lossless_codes_values_on_a_lattice_as_its_integers_bit_for_bit() {
    use residuum::internals::format::{parse, BlockKind};
    let (dims, v) = packed_field();
    let codec = Codec::from_pairs([("mode", "lossless"), ("block", "8x32x64")]).unwrap();
    let narrow: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    let streams = [
        (codec.compress(&dims, &v).unwrap(), 8),
        (codec.compress(&dims, &narrow).unwrap(), 4),
    ];
    for (s, size) in &streams {
        match size {
            8 => assert_bits_eq(&v, &decode_as::<f64>(s).unwrap().1),
            _ => assert_bits_eq(&narrow, &decode_as::<f32>(s).unwrap().1),
        }
        let parsed = parse(s).unwrap();
        assert_eq!(parsed.version, 14);
        // The first block as the lattice's integers, at a fraction of its bytes' zstd coding;
        // the second's -0.0 would come back as the lattice's +0.0: its f64 values stored as
        // bytes, its f32 values as their ordered bits.
        assert_eq!(parsed.entries[0].kind, BlockKind::Lbrc);
        let offset =
            |i: usize| u64::from_le_bytes(parsed.payload(i).unwrap()[..8].try_into().unwrap());
        assert!(f64::from_bits(offset(0)).is_finite());
        match size {
            8 => assert!(matches!(
                parsed.entries[1].kind,
                BlockKind::Zstd | BlockKind::Raw
            )),
            _ => assert_eq!(
                (parsed.entries[1].kind, offset(1)),
                (BlockKind::Lbrc, ORDERED)
            ),
        }
        let first: Vec<u8> = match size {
            8 => v[..16_384].iter().flat_map(|x| x.to_le_bytes()).collect(),
            _ => narrow[..16_384]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        };
        let zstd = zstd::bulk::compress(&first, 3).unwrap().len();
        let lbrc = parsed.payload(0).unwrap().len();
        assert!(
            5 * lbrc < 2 * zstd,
            "{size}-byte values: {lbrc} bytes, as zstd {zstd}"
        );
    }
}

/// The offset field of LBRC payloads whose integers are the values' ordered bits.
const ORDERED: u64 = 0x7ff8_0000_0000_0001;

#[test]
fn lossless_codes_f32_over_many_binades_as_their_ordered_bits() {
    // A smooth field over 22 binades and both signs, with what lossless must keep: a -0.0,
    // denormals, NaN payloads, infinities, the extremes.
    let mut v: Vec<f32> = (0..32_768)
        .map(|i| {
            let (z, x) = ((i / 1024) as f32, (i % 1024) as f32);
            (0.02 * x).sin() * (0.3 * z).exp() * 1e-4
        })
        .collect();
    v[..8].copy_from_slice(&[
        -0.0,
        1e-45,
        -3e-42,
        f32::from_bits(0x7fc0_1234),
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::MIN,
    ]);
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let (s, zstd) = ordered_bits_stream(&v, &bytes);
    assert!(4 * s.len() < 3 * zstd, "{} bytes, as zstd {zstd}", s.len());
}

/// `v` (with `bytes` its bytes) compressed losslessly as one block of 32 x 1024: asserts that
/// it comes back bit for bit from one Lbrc block of ordered bits; the stream, and the bytes
/// of zstd's coding of the values.
fn ordered_bits_stream<T: residuum::Float + std::fmt::Debug>(
    v: &[T],
    bytes: &[u8],
) -> (Vec<u8>, usize) {
    use residuum::internals::format::{parse, BlockKind};
    let s = lossless().compress(&[32, 1024], v).unwrap();
    assert_bits_eq(v, &decode_as::<T>(&s).unwrap().1);
    let parsed = parse(&s).unwrap();
    assert_eq!(parsed.entries.len(), 1);
    assert_eq!(parsed.entries[0].kind, BlockKind::Lbrc);
    assert_eq!(parsed.payload(0).unwrap()[..8], ORDERED.to_le_bytes());
    (s, zstd::bulk::compress(bytes, 3).unwrap().len())
}

#[test]
fn lossless_codes_f64_computed_values_as_their_ordered_bits_from_version_15() {
    // Computed in f64 (every bit of the mantissa in use) over 38 binades and both signs, with
    // the extremes, denormals, zeros of both signs, a NaN payload and infinities.
    let mut v: Vec<f64> = (0..32_768)
        .map(|i| {
            let (z, x) = ((i / 1024) as f64, (i % 1024) as f64);
            (0.02 * x).sin() * (2.8 * z).exp() * 1e-20
        })
        .collect();
    v[..9].copy_from_slice(&[
        -0.0,
        0.0,
        5e-324,
        -2e-310,
        f64::from_bits(0x7ff8_0000_dead_beef),
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        f64::MIN,
    ]);
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let (s, zstd) = ordered_bits_stream(&v, &bytes);
    assert_eq!(residuum::internals::format::parse(&s).unwrap().version, 15);
    assert!(5 * s.len() < 4 * zstd, "{} bytes, as zstd {zstd}", s.len());
    // Version 14 readers knew ordered bits in f32 blocks only.
    let e = decode(&with_version(&s, 14)).unwrap_err();
    assert!(
        e.to_string().contains("ordered bits in a version 14"),
        "{e}"
    );
}

/// `s` with its version field set to `version` and its header checksum made to hold again.
fn with_version(s: &[u8], version: u16) -> Vec<u8> {
    let at = |e: usize| u64::from_le_bytes(s[e..e + 8].try_into().unwrap());
    let end = (8..s.len() - 8)
        .find(|&e| at(e) == xxhash_rust::xxh3::xxh3_64(&s[..e]))
        .expect("a header checksum");
    let mut out = s.to_vec();
    out[4..6].copy_from_slice(&version.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&out[..end]);
    out[end..end + 8].copy_from_slice(&sum.to_le_bytes());
    out
}

#[test]
fn lossless_streams_hold_lbrc_blocks_from_version_14_on_and_no_other_lossy_kind() {
    use residuum::internals::format::{parse, write_stream, BlockKind};
    let v = packed_field().1;
    let s = lossless().compress(&[8, 32, 64], &v[..16_384]).unwrap();
    assert_eq!(parse(&s).unwrap().entries[0].kind, BlockKind::Lbrc);
    assert_bits_eq(
        &v[..16_384],
        &decode_as::<f64>(&with_version(&s, 14)).unwrap().1,
    );
    // As version 13, whose lossless streams held raw and zstd blocks only.
    let e = decode(&with_version(&s, 13)).unwrap_err();
    assert!(
        e.to_string().contains("lossy block in a lossless stream"),
        "{e}"
    );
    // A lossy stream's blocks (constant, LBRC over the base, wavelet) in a lossless stream.
    let lossy = Codec::from_pairs([("nrmse", "1e-2"), ("block", "4x32x64")])
        .unwrap()
        .compress(&[8, 32, 64], &vec![1.5f32; 16_384])
        .unwrap();
    let parsed = parse(&lossy).unwrap();
    assert_eq!(parsed.entries[0].kind, BlockKind::Constant);
    let blocks: Vec<_> = (0..parsed.entries.len())
        .map(|i| (parsed.entries[i].kind, parsed.payload(i).unwrap()))
        .collect();
    let info = residuum::StreamInfo {
        target: residuum::Target::Lossless,
        ..parsed.info.clone()
    };
    let mut out = vec![0u8; lossy.len()];
    let n = write_stream(&info, &blocks, Tables::default(), &mut out).unwrap();
    let e = decode(&out[..n]).unwrap_err();
    assert!(
        e.to_string().contains("lossy block in a lossless stream"),
        "{e}"
    );
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
    // The messages name the network, not the base model (their shared kind once prefixed
    // every one with "base model:").
    for e in [&missing, &wrong] {
        let text = e.to_string();
        assert!(text.contains("NGLR network"), "{text}");
        assert!(!text.contains("base model"), "{text}");
    }

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

/// The statistics' NRMSE is the error over the range the bound was resolved against, and
/// absent where none was (it read 0, exact, for an `abs` target whatever the errors).
#[test]
fn compress_stats_give_an_nrmse_only_over_a_range() {
    let v: Vec<u8> = (0..4096u32)
        .flat_map(|i| ((i as f32 * 0.01).sin()).to_le_bytes())
        .collect();
    let stats = |pairs: &[(&str, &str)]| {
        let c = Codec::from_pairs(pairs.iter().copied()).unwrap();
        let mut out = vec![0u8; c.max_compressed_len(ElementType::F32, &[4096])];
        c.compress_with(ElementType::F32, &[4096], &v, &mut out, None)
            .unwrap()
    };
    let abs = stats(&[("abs", "1e-3")]);
    assert!(abs.errors.rms() > 0.0 && abs.nrmse().is_none(), "{abs:?}");
    let e = stats(&[("nrmse", "1e-4")]).nrmse().unwrap();
    assert!(e > 0.0 && e <= 1e-4, "{e}");
}
