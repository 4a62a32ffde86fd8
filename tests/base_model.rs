//! The base model and the GAE baseline: a tiny model trains in seconds on a real field; streams
//! coded over it (LBRC or GAE residuals) decode within every bound, also for hostile input;
//! the model's reconstruction is the same for 1 and 2 threads and against a committed golden
//! stream; a missing, unreadable or mismatched model is an error, never garbage.

mod common;

use residuum::internals::format::{self, BlockKind};
use residuum::{decode, decode_as, Codec, Error};
use std::path::{Path, PathBuf};
use std::process::Command;

const CCSM: &str = "ccsm_b003_ts_100x64x128.f32";

/// The first 16 of ccsm's 100 time steps (enough blocks, quick in debug builds).
fn ccsm() -> (Vec<usize>, Vec<f32>) {
    let raw = std::fs::read(common::data_dir().join(CCSM)).unwrap();
    let v = raw
        .chunks_exact(4)
        .take(16 * 64 * 128)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (vec![16, 64, 128], v)
}

/// Trains a model for a few seconds with the CLI; checks what it writes.
fn train(dir: &Path) -> PathBuf {
    let out = dir.join("tiny.safetensors");
    let text = common::stdout_of(
        Command::new(env!("CARGO_BIN_EXE_residuum"))
            .args([
                "train",
                // The steps bound the training, not the clock (4 s here unloaded), so the
                // loss curve is the same on any machine.
                "--seconds",
                "600",
                "--steps",
                "20",
                "--batch",
                "8",
                "--data",
            ])
            .arg(common::data_dir().join(CCSM))
            .arg("--out")
            .arg(&out),
    );
    assert!(text.contains("base model alone reaches NRMSE"), "{text}");
    let csv = std::fs::read_to_string(dir.join("tiny.loss.csv")).unwrap();
    let rows: Vec<Vec<f64>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|x| x.parse().unwrap()).collect())
        .collect();
    assert!(rows.len() >= 5, "{csv}");
    // It learns: the loss of the last steps is below that of the first ones.
    let mean = |r: &[Vec<f64>]| r.iter().map(|x| x[2]).sum::<f64>() / r.len() as f64;
    assert!(mean(&rows[rows.len() - 3..]) < mean(&rows[..3]), "{csv}");
    let png = std::fs::read(dir.join("tiny.loss.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    out
}

/// A field with what breaks codecs: NaN, ±Inf, a constant region, denormals, huge values.
fn hostile(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| match i % 1009 {
            3 => f32::NAN,
            5 => f32::INFINITY,
            7 => f32::NEG_INFINITY,
            11 => 1e-42,
            _ if i < n / 4 => 2.5,
            _ if i % 4099 == 0 => 3e30,
            _ => ((i as f32) * 0.01).sin() * 100.0,
        })
        .collect()
}

fn rms<T: Copy + Into<f64>>(a: &[T], b: &[T]) -> f64 {
    let sq: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x.into() - y.into()).powi(2))
        .sum();
    (sq / a.len() as f64).sqrt()
}

fn codec(model: &Path, extra: &[(&str, &str)]) -> Codec {
    let mut p = vec![("model", model.to_str().unwrap()), ("base", "model")];
    p.extend_from_slice(extra);
    Codec::from_pairs(p).unwrap()
}

fn uses_model(stream: &[u8]) -> bool {
    let parsed = format::parse(stream).unwrap();
    parsed.model().unwrap().is_some()
        && parsed
            .entries
            .iter()
            .any(|e| matches!(e.kind, BlockKind::BaseLbrc | BlockKind::Gae))
}

#[test]
fn tiny_model_trains_and_streams_over_it_meet_every_bound() {
    let dir = tempfile::tempdir().unwrap();
    let model = train(dir.path());
    let (dims, v) = ccsm();
    let bad = hostile(40 * 33 * 29);
    for (field, dims) in [(&v, dims.clone()), (&bad, vec![40, 33, 29])] {
        let orig: Vec<f64> = field.iter().map(|&x| x as f64).collect();
        for residual in ["lbrc", "gae"] {
            for (mode, t) in [
                ("nrmse", 1e-4),
                ("abs", 1e-2),
                ("rel", 1e-3),
                ("psnr", 70.0),
            ] {
                let ts = t.to_string();
                let c = codec(&model, &[("residual", residual), (mode, &ts)]);
                let s = c.compress(&dims, field).unwrap();
                let (_, back) = decode_as::<f32>(&s).unwrap();
                let back: Vec<f64> = back.iter().map(|&x| x as f64).collect();
                // The tests' own checker, not the library's metrics, which the encoder's own
                // verification shares.
                common::check::check(&[(mode, ts.clone())], &orig, &back, &s);
                let what = format!("{residual} {mode}={t} on {dims:?}");
                if dims[0] == 16 {
                    assert!(uses_model(&s), "{what}: the model was not used");
                }
            }
        }
    }
}

#[test]
fn decoder_reconstruction_is_the_same_for_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let model = train(dir.path());
    let (dims, v) = ccsm();
    for residual in ["lbrc", "gae"] {
        let streams: Vec<Vec<u8>> = ["1", "2"]
            .iter()
            .map(|t| {
                codec(
                    &model,
                    &[("residual", residual), ("nrmse", "1e-5"), ("threads", t)],
                )
                .compress(&dims, &v)
                .unwrap()
            })
            .collect();
        assert!(uses_model(&streams[0]));
        assert_eq!(streams[0], streams[1], "{residual}: streams differ");
        let one = Codec::from_pairs([("threads", "1")]).unwrap();
        let two = Codec::from_pairs([("threads", "2")]).unwrap();
        let n = v.len() * 4;
        let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
        one.decode_into(&streams[0], &mut a).unwrap();
        two.decode_into(&streams[0], &mut b).unwrap();
        assert_eq!(a, b, "{residual}: decoding differs");
    }
}

/// A model with weights from integer arithmetic, identical everywhere, written as a model file.
fn fixed_model(path: &Path) {
    let mut bufs = Vec::new();
    for (k, (name, shape)) in residuum::internals::base::TENSORS.iter().enumerate() {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n as u32)
            .map(|i| {
                ((i.wrapping_mul(2_654_435_761).wrapping_add(k as u32 * 7919) >> 22) as f32 - 512.0)
                    / 4096.0
            })
            .collect();
        bufs.push((
            name.to_string(),
            shape.to_vec(),
            bytemuck::cast_slice::<f32, u8>(&v).to_vec(),
        ));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = bufs
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    let meta = std::collections::HashMap::from([(
        residuum::internals::base::LATENT_STEP_KEY.to_string(),
        "0.05".to_string(),
    )]);
    safetensors::serialize_to_file(views, Some(meta), path).unwrap();
}

/// Committed streams coded over a fixed model must keep decoding to the committed output: the
/// model's decoder inference may never change. `RESIDUUM_BLESS=1` writes missing ones.
#[test]
fn golden_stream_over_a_model_still_decodes_identically() {
    let golden = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden"));
    let dims = [20usize, 24, 36];
    let v: Vec<f32> = (0..dims.iter().product::<usize>() as u32)
        .map(|i| {
            ((i % 36) as f32 * 0.3).sin()
                + ((i / 864) as f32 * 0.2).cos() * 2.0
                + (i % 7) as f32 / 64.0
        })
        .collect();
    // The values as f64, over 3: what no f32 holds.
    let wide: Vec<f64> = v.iter().map(|&x| x as f64 / 3.0).collect();
    // BaseLbrc blocks; at 1e-1 on small blocks some with a constant residual (residual kind 0:
    // the prediction and an offset meet the bound), the others with an Lbrc one (kind 1); Gae
    // blocks over the model (base flag 1); BaseLbrc in f64.
    for (name, t, residual, block) in [
        ("base_lbrc_nrmse_1e-5_f32", 1e-5, "lbrc", "10x24x36"),
        ("base_lbrc_nrmse_1e-1_f32", 1e-1, "lbrc", "4x8x8"),
        ("base_gae_nrmse_1e-2_f32", 1e-2, "gae", "10x24x36"),
        ("base_lbrc_nrmse_1e-5_f64", 1e-5, "lbrc", "10x24x36"),
    ] {
        let f64s = name.ends_with("f64");
        let s = common::golden(&golden, name, || {
            let dir = tempfile::tempdir().unwrap();
            let m = dir.path().join("fixed.safetensors");
            fixed_model(&m);
            let nrmse = t.to_string();
            let extra = [("nrmse", nrmse.as_str()), ("residual", residual)];
            let c = codec(&m, &[&extra[..], &[("block", block)]].concat());
            let s = match f64s {
                true => c.compress(&dims, &wide),
                false => c.compress(&dims, &v),
            }
            .unwrap();
            let out = decode(&s).unwrap().1;
            (s, out)
        });
        assert!(uses_model(&s), "{name} must exercise the model");
        let parsed = format::parse(&s).unwrap();
        let n = parsed.entries.len();
        if residual == "gae" {
            assert!(
                (0..n).all(|i| parsed.entries[i].kind == BlockKind::Gae
                    && parsed.payload(i).unwrap()[0] == 1),
                "{name}: Gae blocks over the model"
            );
        } else if t == 1e-1 {
            let kinds: Vec<u8> = (0..n)
                .map(|i| residual_kind(parsed.payload(i).unwrap()))
                .collect();
            assert!(
                kinds.contains(&0) && kinds.contains(&1),
                "{name}: {kinds:?}"
            );
        }
        common::assert_golden_output(&golden, name, &decode(&s).unwrap().1);
        // A generous bound on the values' range.
        let (range, rms) = match f64s {
            true => (6.1 / 3.0, rms(&wide, &decode_as::<f64>(&s).unwrap().1)),
            false => (6.1, rms(&v, &decode_as::<f32>(&s).unwrap().1)),
        };
        assert!(rms <= t * range, "{name}: rms {rms}");
    }
}

/// The residual kind of a BaseLbrc payload: after the base part's mean, scale and latents
/// (their length a LEB128 varint; `doc/format.md` §5.7, §5.8).
fn residual_kind(payload: &[u8]) -> u8 {
    let (mut len, mut at) = (0usize, 16);
    for shift in (0..).step_by(7) {
        let b = payload[at];
        at += 1;
        len |= ((b & 127) as usize) << shift;
        if b < 128 {
            break;
        }
    }
    payload[at + len]
}

#[test]
fn missing_unreadable_or_mismatched_models_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.safetensors");
    let e =
        Codec::from_pairs([("nrmse", "1e-4"), ("model", missing.to_str().unwrap())]).unwrap_err();
    assert!(
        matches!(e, Error::Model(_)) && e.to_string().contains("none.safetensors"),
        "{e}"
    );
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a model at all").unwrap();
    let e = Codec::from_pairs([("nrmse", "1e-4"), ("model", junk.to_str().unwrap())]).unwrap_err();
    assert!(matches!(e, Error::Model(_)), "{e}");

    let m = dir.path().join("fixed.safetensors");
    fixed_model(&m);
    let (dims, v) = ccsm();
    let s = codec(&m, &[("nrmse", "1e-4")]).compress(&dims, &v).unwrap();
    let parsed = format::parse(&s).unwrap();
    let n = parsed.entries.len();
    let payloads: Vec<Vec<u8>> = (0..n)
        .map(|i| parsed.payload(i).unwrap().to_vec())
        .collect();
    let model = parsed.model().unwrap().unwrap().to_vec();
    let blocks: Vec<(BlockKind, &[u8])> = parsed
        .entries
        .iter()
        .zip(&payloads)
        .map(|(e, p)| (e.kind, p.as_slice()))
        .collect();
    let rewrite = |model: Option<&[u8]>| {
        let mut out = vec![0u8; s.len() + 64];
        let tables = format::Tables {
            model,
            ..Default::default()
        };
        let len = format::write_stream(&parsed.info, &blocks, tables, &mut out).unwrap();
        out.truncate(len);
        out
    };
    // Rewritten as it was, it decodes; without its model, or with another model's hash, it
    // is refused with a model error.
    let mut with = xxhash_rust::xxh3::xxh3_64(&model).to_le_bytes().to_vec();
    with.extend_from_slice(&model);
    assert_eq!(
        decode(&rewrite(Some(&with))).unwrap().1,
        decode(&s).unwrap().1
    );
    let e = decode(&rewrite(None)).unwrap_err();
    assert!(
        matches!(e, Error::Model(_)) && e.to_string().contains("carries none"),
        "{e}"
    );
    let mut wrong = with.clone();
    wrong[0] ^= 1;
    let e = decode(&rewrite(Some(&wrong))).unwrap_err();
    assert!(
        matches!(e, Error::Model(_)) && e.to_string().contains("hash"),
        "{e}"
    );
}

/// The operator's `train=N`: the first N arrays are compressed without a model and learnt
/// from; once the background training is done, compression goes over the learnt model, and
/// the streams carry it.
#[test]
fn operator_learns_a_model_from_its_first_arrays() {
    let (dims, v) = ccsm();
    let c = Codec::from_pairs([
        ("nrmse", "1e-4"),
        ("train", "2"),
        ("train_seconds", "2"),
        ("base", "model"),
    ])
    .unwrap();
    for _ in 0..2 {
        let s = c.compress(&dims, &v).unwrap();
        assert!(!uses_model(&s));
    }
    let start = std::time::Instant::now();
    while c.model().is_none() {
        assert!(start.elapsed().as_secs() < 300, "no model after 300 s");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let s = c.compress(&dims, &v).unwrap();
    assert!(uses_model(&s));
    let (_, back) = decode_as::<f32>(&s).unwrap();
    let range =
        v.iter().fold(f32::MIN, |a, &b| a.max(b)) - v.iter().fold(f32::MAX, |a, &b| a.min(b));
    let rms = rms(&v, &back);
    assert!(rms <= 1e-4 * range as f64, "rms {rms}");
    let e = Codec::from_pairs([("train", "2"), ("model", "x.safetensors")]).unwrap_err();
    assert!(e.to_string().contains("either model or train"), "{e}");
}

/// A stream over a model, truncated anywhere or with any byte changed, is refused (checksums
/// cover the model entry as every block), never decoded into garbage or a panic.
#[test]
fn damaged_streams_over_a_model_are_refused() {
    let golden = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden"));
    let s = std::fs::read(golden.join("base_lbrc_nrmse_1e-5_f32.rsd")).unwrap();
    let len = residuum::stream_info(&s).unwrap().decoded_len();
    let mut out = vec![0u8; len];
    for cut in (0..s.len()).step_by(7) {
        assert!(
            residuum::decode_into(&s[..cut], &mut out).is_err(),
            "cut at {cut}"
        );
    }
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..3000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut d = s.clone();
        let i = (x as usize) % d.len();
        d[i] ^= (x >> 40) as u8 | 1;
        assert!(
            residuum::decode_into(&d, &mut out).is_err(),
            "byte {i} changed"
        );
    }
}

/// Empty, one-element and odd shapes over a model, with both residual coders: the bound holds
/// and nothing panics.
#[test]
fn odd_shapes_over_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("fixed.safetensors");
    fixed_model(&m);
    for dims in [
        vec![0usize],
        vec![1],
        vec![1, 1, 1],
        vec![3, 5, 7],
        vec![2, 1, 9, 4],
        vec![257],
    ] {
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| (i as f32 * 0.37).sin() * 5.0 + i as f32 * 0.01)
            .collect();
        for residual in ["lbrc", "gae"] {
            let c = codec(&m, &[("residual", residual), ("abs", "1e-3")]);
            let s = c.compress(&dims, &v).unwrap();
            let (got, back) = decode_as::<f32>(&s).unwrap();
            assert_eq!(got, dims);
            for (a, b) in v.iter().zip(&back) {
                assert!(
                    (a - b).abs() as f64 <= 1e-3,
                    "{dims:?} {residual}: {a} vs {b}"
                );
            }
        }
    }
}
