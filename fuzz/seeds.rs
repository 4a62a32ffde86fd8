//! Writes seed streams for the fuzz targets: real one-block streams of every block kind, and the
//! same streams with valid headers (correct checksums) that claim huge arrays.
//! `cargo run --release --bin seeds -- corpus/decode corpus/blocks [corpus/roundtrip]`; the
//! roundtrip seeds cover each of its settings with hostile values (`scripts/test.sh` replays all).

use residuum::Codec;
use std::path::Path;

/// The one-block `stream` re-headed to claim `n` values (one block over them).
fn claim(stream: &[u8], n: u64) -> Vec<u8> {
    let ndims = stream[8] as usize;
    let table = 20 + 8 * ndims + 24 + 8;
    let entry = &stream[table..table + 17];
    let mut h = stream[..20].to_vec();
    h[8] = 1;
    for v in [n, 1, 1, n, 1] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    h.extend_from_slice(entry);
    let sum = xxhash_rust::xxh3::xxh3_64(&h);
    h.extend_from_slice(&sum.to_le_bytes());
    h.extend_from_slice(&stream[table + 17 + 8..]);
    h
}

fn main() {
    let dirs: Vec<String> = std::env::args().skip(1).collect();
    let (decode_dir, blocks_dir) = (Path::new(&dirs[0]), Path::new(&dirs[1]));
    if let Some(dir) = dirs.get(2) {
        roundtrip(Path::new(dir));
    }
    std::fs::create_dir_all(decode_dir).unwrap();
    std::fs::create_dir_all(blocks_dir).unwrap();
    let wave: Vec<f32> = (0..4096).map(|i| (i as f32 * 0.37).sin() * 10.0).collect();
    let flat = vec![2.5f32; 4096];
    // A land mask: every third run of 64 values NaN (special values stored as a mask).
    let masked: Vec<f32> = (0..4096)
        .map(|i| if (i / 64) % 3 == 0 { f32::NAN } else { wave[i] })
        .collect();
    // The wave on a lattice of 1/64 (lossless streams code it as LBRC on it, version 14).
    let packed: Vec<f32> = wave.iter().map(|x| (x * 64.0).round() / 64.0).collect();
    type Kind<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [f32]);
    let kinds: [Kind; 10] = [
        (
            "wavelet",
            &[("nrmse", "1e-4"), ("residual", "wavelet")],
            &wave,
        ),
        ("lbrc", &[("nrmse", "1e-4"), ("residual", "lbrc")], &wave),
        ("ls", &[("abs", "1e-3")], &wave),
        ("planes", &[("abs", "1e-3"), ("coder", "planes")], &wave),
        ("gae", &[("nrmse", "1e-3"), ("residual", "gae")], &wave),
        ("constant", &[("nrmse", "1e-3")], &flat),
        ("zstd", &[("mode", "lossless")], &flat),
        ("lattice", &[("mode", "lossless")], &packed),
        // Across zero: no lattice, the values' ordered bits.
        ("bits", &[("mode", "lossless")], &wave),
        ("mask", &[("nrmse", "1e-4")], &masked),
    ];
    for (name, pairs, data) in kinds {
        let s = Codec::from_pairs(pairs.iter().copied())
            .unwrap()
            .compress(&[4096], data)
            .unwrap();
        std::fs::write(decode_dir.join(name), &s).unwrap();
        for bits in [20u32, 28, 36, 44, 62] {
            std::fs::write(
                decode_dir.join(format!("{name}-2e{bits}")),
                claim(&s, 1 << bits),
            )
            .unwrap();
        }
        // The blocks target: 4 bytes of shape and flags (large shapes, f32), then the payload.
        let table = 20 + 8 + 24 + 8;
        // A GAE block's payload starts with its base flag, which the codec reads.
        let payload = &s[table + 17 + 8 + (name == "gae") as usize..];
        for (flags, shape) in [(0u8, [7u8, 15, 31]), (16, [8, 8, 8]), (16, [4, 4, 4])] {
            let constant = (name == "constant") as u8 * 2;
            let gae = (name == "gae") as u8 * 8;
            let wavelet = (name == "wavelet") as u8 * 64;
            // Flag 32: the payloads of version 4 streams.
            let mut seed = vec![
                shape[0],
                shape[1],
                shape[2],
                flags | constant | gae | wavelet | 32,
            ];
            seed.extend_from_slice(payload);
            std::fs::write(
                blocks_dir.join(format!("{name}-{flags}-{}", shape[0])),
                seed,
            )
            .unwrap();
        }
    }
    // Lossless f64 computed in f64 (positive, every mantissa bit in use): the values' ordered
    // bits above their least, in steps of 2^s with the s low bits stored (version 15).
    let computed: Vec<f64> = wave
        .iter()
        .map(|&x| (20.0 + x as f64) * (1.0 + 2f64.powi(-40)))
        .collect();
    let s = Codec::from_pairs([("mode", "lossless")])
        .unwrap()
        .compress(&[4096], &computed)
        .unwrap();
    assert_eq!(residuum::internals::format::parse(&s).unwrap().version, 15);
    std::fs::write(decode_dir.join("bits64"), &s).unwrap();
    // NGLR (version 6, the network's entry after the block's): a 3D block with the committed
    // network, NaNs among its values.
    let cube: Vec<f32> = (0..4096)
        .map(|i| {
            if i % 301 == 7 {
                f32::NAN
            } else {
                wave[i] + (i / 256) as f32 * 0.1
            }
        })
        .collect();
    let net = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/golden/nglr_net.safetensors"
    );
    let codec =
        Codec::from_pairs([("nrmse", "1e-5"), ("residual", "nglr"), ("nglr", net)]).unwrap();
    // A 16³ cube (version 10), and a 2D array of one plane, 16 x 64 (predictor 10, version 12);
    // each block seed of flags 16 (shapes 2^b: 16³ and 1 x 16 x 64), 32 and 128 (decoded with
    // the target's own network: other weights, the same paths).
    // Decode and blocks seed names, dims, values, version, block-seed shape bytes.
    type NglrCase<'a> = (&'a str, &'a str, &'a [usize], usize, u16, [u8; 3]);
    let nglr_cases: [NglrCase; 2] = [
        ("nglr", "nglr-16-16", &[16, 16, 16], 4096, 10, [4, 4, 4]),
        ("nglr-planar", "nglr-planar", &[16, 64], 1024, 12, [0, 4, 6]),
    ];
    for (name, blocks_name, dims, n, version, shape) in nglr_cases {
        let s = codec.compress(dims, &cube[..n]).unwrap();
        std::fs::write(decode_dir.join(name), &s).unwrap();
        let parsed = residuum::internals::format::parse(&s).unwrap();
        assert_eq!(parsed.version, version);
        let mut seed = [shape.as_slice(), &[16 | 32 | 128]].concat();
        seed.extend_from_slice(parsed.payload(0).unwrap());
        std::fs::write(blocks_dir.join(blocks_name), seed).unwrap();
    }
    // Plane offsets (version 13): four planes of 16 x 16 on step 2^-8, each on an offset of its
    // own (every sum exact in f32); a blocks seed of flags 16 (shape 4 x 16 x 16), 32 and 128.
    let grib: Vec<f32> = (0..1024)
        .map(|i| 3.0 + (i / 256) as f32 * 0.0137 + ((i * i * 7) % 97) as f32 / 256.0)
        .collect();
    let s = Codec::from_pairs([("nrmse", "1e-6")])
        .unwrap()
        .compress(&[4, 16, 16], &grib)
        .unwrap();
    std::fs::write(decode_dir.join("grib"), &s).unwrap();
    let parsed = residuum::internals::format::parse(&s).unwrap();
    assert_eq!(parsed.version, 13);
    let mut seed = vec![2, 4, 4, 16 | 32 | 128];
    seed.extend_from_slice(parsed.payload(0).unwrap());
    std::fs::write(blocks_dir.join("grib-4-16"), seed).unwrap();
    // Temporal prediction (version 7, the step entry last): a keyframe and the step after it,
    // whose blocks are coded over the keyframe's reconstruction (smoothed or not).
    let c = Codec::from_pairs([("nrmse", "1e-5"), ("temporal", "8")]).unwrap();
    let mut chain = residuum::Chain::new(1);
    let next: Vec<f32> = cube.iter().map(|x| x + 0.01).collect();
    for (name, v) in [("keyframe", &cube), ("predicted", &next)] {
        let s = chain.compress(&c, &[16, 16, 16], v).unwrap();
        std::fs::write(decode_dir.join(name), &s).unwrap();
        let parsed = residuum::internals::format::parse(&s).unwrap();
        if parsed.entries[0].kind == residuum::internals::format::BlockKind::Previous {
            // Flags 64 | 8: a Previous payload over the target's own base values.
            let mut seed = vec![4, 4, 4, 16 | 32 | 64 | 8 | 4];
            seed.extend_from_slice(parsed.payload(0).unwrap());
            std::fs::write(blocks_dir.join("previous-16-16"), seed).unwrap();
        }
    }
}

/// Seeds of the roundtrip target: its 10 setting bytes (dimensions, bound, error mode or stage,
/// raw or smooth values, block shape, f32 or scaled f64) over every mode, then hostile values.
fn roundtrip(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let hostile = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        f32::from_bits(1),
        f32::MIN_POSITIVE,
        f32::MAX,
        -f32::MAX,
        1.0,
        -999.0,
        3.25e-20,
        7.5e30,
    ];
    // A fixed linear congruential sequence: the same seeds on every run.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as u8
    };
    // Bytes 0..7 each choose one setting; 7 (mode, with 8 any block shape, with 16 NGLR) takes
    // all 32.
    for i in 0..96u32 {
        let mut seed: Vec<u8> = (0..10).map(|_| next()).collect();
        seed[7] = (i % 32) as u8;
        // Half raw values, half a smooth field (odd byte 6); a third as scaled f64 (odd byte 8).
        seed[6] = (seed[6] & !1) | (i / 16 % 2) as u8;
        seed[8] = (seed[8] & !1) | (i % 3 == 0) as u8;
        for _ in 0..1 + next() % 24 {
            let v = match next() % 3 {
                0 => hostile[next() as usize % hostile.len()],
                _ => (next() as f32 - 128.0) * 0.37,
            };
            seed.extend_from_slice(&v.to_le_bytes());
        }
        std::fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap();
    }
    // Stacked GRIB messages with a decimal scale factor ((R + X)·10^-2 in f64, read as f32),
    // 4x16x16 raw values: each plane on its own reference value (nrmse 1e-6), and all planes on
    // one (1e-5).
    let own = [29000.37f32, 29123.83, -3.284_861, 28731.1];
    for (name, exp, refs) in [
        ("grib-decimal", 5, own),
        ("grib-decimal-one", 4, [own[0]; 4]),
    ] {
        let mut seed = vec![2, 3, 15, 15, 0, exp, 0, 0, 0, 0];
        for i in 0..1024u32 {
            let x = (refs[i as usize / 256] as f64 + (i * i * 7 % 997) as f64) * 0.01;
            seed.extend_from_slice(&(x as f32).to_le_bytes());
        }
        std::fs::write(dir.join(name), seed).unwrap();
    }
    // netCDF's int16 packing (`k·scale_factor + add_offset`, an arbitrary scale) at nrmse 1e-6,
    // 4x16x16 raw values: unpacked in f64 and read as f32 (back exactly), and unpacked in f32
    // (back within a rounding).
    let (scale, offset) = (0.001_731_296_843f64, 287.431_717f64);
    // And losslessly (head[7] = 48), on the lattice's integers where unpacked in f64.
    for (name, in_f32, mode) in [
        ("netcdf-int16", false, 0),
        ("netcdf-int16-f32", true, 0),
        ("netcdf-int16-lossless", false, 48),
    ] {
        let mut seed = vec![2, 3, 15, 15, 0, 5, 0, mode, 0, 0];
        for i in 0..1024i64 {
            let k = i * i * 7 % 65_535 - 32_767;
            let x = match in_f32 {
                false => (k as f64 * scale + offset) as f32,
                true => k as f32 * scale as f32 + offset as f32,
            };
            seed.extend_from_slice(&x.to_le_bytes());
        }
        std::fs::write(dir.join(name), seed).unwrap();
    }
    // Losslessly as f64 computed in f64 (mag 3: scaled by 8, every mantissa bit in use), 4x16x16
    // values within two binades: their ordered bits above their least, their low bits stored.
    let mut seed = vec![2, 3, 15, 15, 0, 5, 0, 48, 3, 0];
    for i in 0..1024 {
        let x = 20.0 + (i as f32 * 0.02).sin() * 10.0;
        seed.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(dir.join("bits64-lossless"), seed).unwrap();
}
