//! NGLR end to end: `residuum train --nglr` on a real field, the codec offering the network
//! (never a larger stream than without it), and the operator learning one from its first
//! arrays (`train_nglr=N`).

mod common;
use common::NGLR_NET;

use residuum::internals::format::parse;
use residuum::{decode_as, Codec};
use std::path::PathBuf;
use std::process::Command;

fn field(name: &str) -> (Vec<usize>, Vec<f32>) {
    let (_, dims, v) = common::real_fields()
        .into_iter()
        .find(|f| f.0.starts_with(name))
        .unwrap();
    (dims, v)
}

fn carries_network(s: &[u8]) -> bool {
    parse(s).unwrap().nglr().unwrap().is_some()
}

/// The first stream of `v` that `c` writes with a network, once its background training is
/// done (within `limit` seconds).
fn once_learnt(c: &Codec, dims: &[usize], v: &[f32], limit: u64) -> Vec<u8> {
    let start = std::time::Instant::now();
    loop {
        let s = c.compress(dims, v).unwrap();
        if carries_network(&s) {
            return s;
        }
        assert!(
            start.elapsed().as_secs() < limit,
            "no network after {limit} s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn rms_over_range(v: &[f32], back: &[f32]) -> f64 {
    let (lo, hi) = v
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let sq: f64 = v
        .iter()
        .zip(back)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    (sq / v.len() as f64).sqrt() / (hi - lo) as f64
}

/// The CLI trains a network on a field within its budget, writes it with its loss curve,
/// and reports what it saves; the codec then carries it where it pays, and the stream is
/// smaller than LBRC's alone.
#[test]
fn a_network_trained_by_the_cli_pays_for_itself() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lox.safetensors");
    let text = common::stdout_of(
        Command::new(env!("CARGO_BIN_EXE_residuum"))
            .args([
                "train",
                "--nglr",
                // The steps bound the training, not the clock (11 s here unloaded): the
                // network, and so what it saves, is the same however loaded the machine.
                "--seconds",
                "600",
                "--steps",
                "1500",
                "--data",
            ])
            .arg(common::data_dir().join("loxpost_energy_38x76x38.f32"))
            .arg("--out")
            .arg(&out),
    );
    assert!(text.contains("CR with NGLR over LBRC alone"), "{text}");
    for f in ["lox.loss.csv", "lox.loss.png"] {
        assert!(
            std::fs::metadata(dir.path().join(f)).unwrap().len() > 100,
            "{f}"
        );
    }
    let (dims, v) = field("loxpost_energy");
    let size = |net: Option<&str>| {
        let mut p = vec![("nrmse", "1e-5"), ("residual", "lbrc")];
        p.extend(net.map(|n| ("nglr", n)));
        Codec::from_pairs(p).unwrap().compress(&dims, &v).unwrap()
    };
    let (plain, with) = (size(None), size(Some(out.to_str().unwrap())));
    assert!(carries_network(&with) && !carries_network(&plain));
    assert_pays(&with, &plain, 0.98);
    let (_, back) = decode_as::<f32>(&with).unwrap();
    assert!(rms_over_range(&v, &back) <= 1e-5);
}

/// The stream `with` the network is smaller than `factor` times the one `without` it.
fn assert_pays(with: &[u8], without: &[u8], factor: f64) {
    assert!(
        (with.len() as f64) < factor * without.len() as f64,
        "{} bytes with the network, {} without",
        with.len(),
        without.len()
    );
}

/// Offered a network, the codec never writes a larger stream than without it (it carries
/// the network only where the blocks using it save more than its bytes), on every real field
/// and target, whether or not the network suits the field.
#[test]
fn a_network_never_makes_a_stream_larger() {
    for (name, dims, v) in common::real_fields() {
        for t in ["1e-4", "1e-6"] {
            let enc = |net: bool| {
                let mut p = vec![("nrmse", t)];
                if net {
                    p.push(("nglr", NGLR_NET));
                }
                Codec::from_pairs(p).unwrap().compress(&dims, &v).unwrap()
            };
            let (plain, with) = (enc(false), enc(true));
            assert!(
                with.len() <= plain.len(),
                "{name} {t}: {} > {}",
                with.len(),
                plain.len()
            );
            if !carries_network(&with) {
                assert!(with == plain, "{name} {t}: no network, yet other bytes");
            }
        }
    }
}

/// A 2D array (every block of one plane, where predictor 9 has no Lorenzo cube) is predicted
/// with the network as predictor 10 (version 12): the operator learns one from it, and it
/// pays. (Before predictor 10, NGLR never served 2D arrays: no samples to learn from.)
#[test]
fn two_dimensional_arrays_are_predicted_with_the_network() {
    let (dims, v) = field("loxpost_energy");
    let dims = [dims[0] * dims[1], dims[2]];
    let c = Codec::from_pairs([
        ("nrmse", "1e-5"),
        ("train_nglr", "1"),
        ("train_seconds", "3"),
    ])
    .unwrap();
    let first = c.compress(&dims, &v).unwrap();
    assert!(!carries_network(&first));
    let s = once_learnt(&c, &dims, &v, 120);
    assert_eq!(parse(&s).unwrap().version, 12);
    assert_pays(&s, &first, 0.9);
    let (_, back) = decode_as::<f32>(&s).unwrap();
    assert!(rms_over_range(&v, &back) <= 1e-5);
}

/// Predictor 10 is refused in a stream that claims an older version (header checksum
/// recomputed): a reader of version 11 would not know it, so no valid version 11 stream holds it.
#[test]
fn predictor_10_needs_version_12() {
    let golden = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/nrmse_1e-5_nglr_v12_f32.rsd"
    );
    let s = std::fs::read(golden).unwrap();
    assert!(decode_as::<f32>(&s).is_ok());
    // The header: fixed fields, dims, 3 block extents, the entry count, the entries, xxh3.
    let at = 20 + 8 * s[8] as usize + 24;
    let nblocks = u64::from_le_bytes(s[at..at + 8].try_into().unwrap()) as usize;
    let header = at + 8 + 17 * nblocks + 8;
    let mut old = s.clone();
    old[4..6].copy_from_slice(&11u16.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&old[..header - 8]);
    old[header - 8..header].copy_from_slice(&sum.to_le_bytes());
    let e = decode_as::<f32>(&old).unwrap_err();
    assert!(e.to_string().contains("predictor 10"), "{e}");
}

/// With `fill=`, the operator learns from the fill values as missing data, as it compresses
/// them: a masked ocean whose land is 1e20 gets a network that pays, as with NaN (before, the
/// network learnt from a range spanning 1e20, where every residual is 0, and lost).
#[test]
fn the_operator_learns_from_fill_values_as_missing_data() {
    let (dims, v) = field("ostia");
    let filled: Vec<f32> = v
        .iter()
        .map(|&x| if x.is_nan() { 1e20 } else { x })
        .collect();
    let c = Codec::from_pairs([
        ("nrmse", "1e-5"),
        ("fill", "1e20"),
        ("train_nglr", "1"),
        ("train_seconds", "3"),
        ("residual", "nglr"),
    ])
    .unwrap();
    let first = c.compress(&dims, &filled).unwrap();
    assert!(!carries_network(&first));
    let s = once_learnt(&c, &dims, &filled, 300);
    assert_pays(&s, &first, 0.99);
    let (_, back) = decode_as::<f32>(&s).unwrap();
    assert!(filled
        .iter()
        .zip(&back)
        .all(|(a, b)| *a != 1e20 || b.to_bits() == a.to_bits()));
    let kept: Vec<usize> = (0..v.len()).filter(|&i| v[i].is_finite()).collect();
    let pick = |x: &[f32]| kept.iter().map(|&i| x[i]).collect::<Vec<_>>();
    assert!(rms_over_range(&pick(&filled), &pick(&back)) <= 1e-5);
}

/// `residuum train --fill`: a field whose missing values are -999 trains the same network as
/// the field with NaN there.
#[test]
fn the_cli_learns_from_fill_values_as_missing_data() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = field("ostia");
    let name = "ostia_sst_masked_54x18x432.f32";
    let filled: Vec<u8> = v
        .iter()
        .flat_map(|&x| if x.is_nan() { -999f32 } else { x }.to_le_bytes())
        .collect();
    std::fs::create_dir(dir.path().join("filled")).unwrap();
    std::fs::write(dir.path().join("filled").join(name), filled).unwrap();
    let train = |data: PathBuf, fill: &[&str], out: &str| {
        let out = dir.path().join(out);
        common::stdout_of(
            Command::new(env!("CARGO_BIN_EXE_residuum"))
                .args(["train", "--nglr", "--seconds", "600", "--steps", "200"])
                .args(fill)
                .arg("--data")
                .arg(data)
                .arg("--out")
                .arg(&out),
        );
        std::fs::read(out).unwrap()
    };
    let nan = train(common::data_dir().join(name), &[], "nan.safetensors");
    let fill = train(
        dir.path().join("filled").join(name),
        &["--fill", "-999"],
        "fill.safetensors",
    );
    let ignored = train(
        dir.path().join("filled").join(name),
        &[],
        "ignored.safetensors",
    );
    assert!(nan == fill, "another network from the same data");
    assert!(nan != ignored, "--fill changes nothing");
}

/// `train_nglr=N`: the first N arrays are compressed without a network and learnt from; once
/// the background training is done, blocks are predicted with the network (forced here) and
/// the streams carry it.
#[test]
fn operator_learns_a_network_from_its_first_arrays() {
    let (dims, v) = field("ccsm");
    let c = Codec::from_pairs([
        ("nrmse", "1e-5"),
        ("train_nglr", "2"),
        ("train_seconds", "3"),
        ("residual", "nglr"),
    ])
    .unwrap();
    for _ in 0..2 {
        assert!(!carries_network(&c.compress(&dims, &v).unwrap()));
    }
    let s = once_learnt(&c, &dims, &v, 300);
    let (_, back) = decode_as::<f32>(&s).unwrap();
    assert!(rms_over_range(&v, &back) <= 1e-5);
    let e = Codec::from_pairs([("train_nglr", "2"), ("nglr", NGLR_NET)]).unwrap_err();
    assert!(e.to_string().contains("either nglr or train_nglr"), "{e}");
}
