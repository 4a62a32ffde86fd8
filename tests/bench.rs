//! `residuum bench` on a real field: a table with every codec, a CSV whose rows hold the
//! measured points, and a PNG.

use std::path::Path;

mod common;

/// A real field (`RESIDUUM_DATA`, else `../shared/data`).
fn data() -> std::path::PathBuf {
    common::data_dir().join("nyx_temperature_32x32x32.f32")
}

/// The real field's values.
fn values() -> Vec<f32> {
    std::fs::read(data())
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// A masked corner of the 32^3 field (land), as an ocean model writes it.
fn land(i: usize) -> bool {
    (i / 1024) < 8 && (i % 32) < 12
}

/// Runs `residuum bench` on `data` with `extra` options, writing into `out`; returns its table.
fn bench(data: &Path, extra: &[&str], out: &Path) -> String {
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_residuum"))
        .arg("bench")
        .arg(data)
        .args(["--targets", "1e-4,1e-5", "--reps", "1"])
        .args(extra)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    text
}

/// The CSV's rows, split into columns.
fn rows(out: &Path) -> Vec<Vec<String>> {
    let csv = std::fs::read_to_string(out.join("bench.csv")).unwrap();
    let width = csv.lines().next().unwrap().split(',').count();
    let rows: Vec<Vec<String>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    assert!(rows.iter().all(|r| r.len() == width), "{csv}");
    rows
}

#[test]
fn bench_compares_codecs_and_writes_csv_and_png() {
    let out = tempfile::tempdir().unwrap();
    let text = bench(&data(), &[], out.path());
    assert!(
        text.contains("nyx_temperature_32x32x32") && text.contains("CR vs best peer"),
        "{text}"
    );
    let rows = rows(out.path());
    let codecs = [
        "residuum",
        "residuum 2 threads",
        "SZ3 interp+Lorenzo",
        "SZ3 Lorenzo+regression",
        "ZFP accuracy",
        "SPERR pwe",
        "SPERR psnr",
    ];
    assert_eq!(rows.len(), 2 * codecs.len(), "{rows:?}");
    for r in &rows {
        assert!(codecs.contains(&r[2].as_str()), "{r:?}");
        let (target, cr, nrmse): (f64, f64, f64) = (
            r[1].parse().unwrap(),
            r[4].parse().unwrap(),
            r[5].parse().unwrap(),
        );
        // Every codec, peers included, was held to the target; and actually compressed.
        assert!(nrmse <= target * (1.0 + 1e-9), "{r:?}");
        assert!(cr > 1.0, "{r:?}");
    }
    let png = std::fs::read(out.path().join("rate_distortion.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}

/// With `--fill`, every codec gets the fill values as missing data: the same sizes and errors
/// as where the file holds NaN. Without it, 1e20 is data to every codec.
#[test]
fn fill_values_are_missing_data_to_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    let values = values();
    // A masked corner (land), as an ocean model writes it: with NaN, and with a fill value.
    let masked = |fill: f32| -> Vec<u8> {
        let v = values.iter().enumerate();
        v.flat_map(|(i, &x)| if land(i) { fill } else { x }.to_le_bytes())
            .collect()
    };
    let (nan, filled) = (dir.path().join("nan"), dir.path().join("filled"));
    for d in [&nan, &filled] {
        std::fs::create_dir(d).unwrap();
    }
    let name = "sst_32x32x32.f32";
    std::fs::write(nan.join(name), masked(f32::NAN)).unwrap();
    std::fs::write(filled.join(name), masked(1e20)).unwrap();
    let out = |n: &str| dir.path().join(n);
    bench(&nan.join(name), &[], &out("nan-out"));
    bench(&filled.join(name), &["--fill", "1e20"], &out("fill-out"));
    bench(&filled.join(name), &[], &out("data-out"));
    let (nan, fill, data) = (
        rows(&out("nan-out")),
        rows(&out("fill-out")),
        rows(&out("data-out")),
    );
    assert_eq!(nan.len(), 14, "{nan:?}");
    for ((n, f), d) in nan.iter().zip(&fill).zip(&data) {
        // Field, target, codec, bytes, CR, NRMSE and the worst block's: the same.
        assert_eq!(n[..7], f[..7], "{n:?} {f:?}");
        // As data, 1e20 sets the range (1e13 times the field's), so every codec codes the
        // field's values far more coarsely.
        assert_eq!(n[..3], d[..3]);
        let cr = |r: &[String]| r[4].parse::<f64>().unwrap();
        assert!(cr(d) > 5.0 * cr(n), "{n:?} {d:?}");
    }
}

/// A constant field (range 0: every bound meets any NRMSE) is measured like any other, where a
/// bound of 0 made SPERR refuse and the whole run fail; every codec holds it exactly here.
#[test]
fn constant_fields_are_measured_like_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for (name, v) in [("zero", 0f32), ("level", 2.5)] {
        let bytes: Vec<u8> = (0..16 * 16 * 16).flat_map(|_| v.to_le_bytes()).collect();
        std::fs::write(data.join(format!("{name}_16x16x16.f32")), bytes).unwrap();
    }
    let out = dir.path().join("out");
    bench(&data, &[], &out);
    let rows = rows(&out);
    assert_eq!(rows.len(), 2 * 2 * 7, "{rows:?}");
    for r in &rows {
        let (cr, nrmse): (f64, f64) = (r[4].parse().unwrap(), r[5].parse().unwrap());
        assert!(cr > 1.0 && nrmse == 0.0, "{r:?}");
    }
}

/// What would make a run fail after its measurements fails before them: two fields of one name
/// (the table tells fields by name, and mixed them up), an output that cannot be a directory, a
/// field of one value.
#[test]
fn bench_refuses_what_it_cannot_report_before_measuring() {
    let dir = tempfile::tempdir().unwrap();
    let field = std::fs::read(data()).unwrap();
    for d in ["a", "b"] {
        std::fs::create_dir(dir.path().join(d)).unwrap();
        std::fs::write(
            dir.path().join(d).join("nyx_temperature_32x32x32.f32"),
            &field,
        )
        .unwrap();
    }
    let file = dir.path().join("file");
    std::fs::write(&file, b"").unwrap();
    std::fs::create_dir(dir.path().join("one")).unwrap();
    std::fs::write(dir.path().join("one").join("a_32x32.f32"), &field[..4096]).unwrap();
    std::fs::write(dir.path().join("one").join("z_1.f32"), 1f32.to_le_bytes()).unwrap();
    for (inputs, out, why) in [
        (
            vec!["a", "b"],
            dir.path().join("out"),
            "two fields are named",
        ),
        (vec!["a"], file.clone(), "File exists"),
        // SZ3 threw at one value, through the FFI: an abort after the fields before it.
        (vec!["one"], dir.path().join("out1"), "z_1: 1 value(s)"),
    ] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_residuum"))
            .arg("bench")
            .args(inputs.iter().map(|d| dir.path().join(d)))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(why),
            "{inputs:?}: {err}"
        );
    }
}

/// Float64 fields are measured beside float32 ones, by every codec in their own type: the same
/// values widened code to about the same bytes, so twice the ratio; a fill value is matched as
/// a float64 (1e20 parsed as a float32 is another number there).
#[test]
fn float64_fields_are_measured_in_their_own_type() {
    let dir = tempfile::tempdir().unwrap();
    let values = values();
    let wide = |fill: f64| -> Vec<u8> {
        let v = values.iter().enumerate();
        v.flat_map(|(i, &x)| if land(i) { fill } else { x as f64 }.to_le_bytes())
            .collect()
    };
    let narrow: Vec<u8> = (values.iter().enumerate())
        .flat_map(|(i, &x)| if land(i) { f32::NAN } else { x }.to_le_bytes())
        .collect();
    let (both, filled) = (dir.path().join("both"), dir.path().join("filled"));
    for d in [&both, &filled] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::write(both.join("t32_32x32x32.f32"), narrow).unwrap();
    std::fs::write(both.join("t64_32x32x32.f64"), wide(f64::NAN)).unwrap();
    std::fs::write(filled.join("t64_32x32x32.f64"), wide(1e20)).unwrap();
    let out = |n: &str| dir.path().join(n);
    let text = bench(&both, &[], &out("both-out"));
    assert!(text.contains("t64_32x32x32"), "{text}");
    bench(&filled, &["--fill", "1e20"], &out("fill-out"));
    let (both, fill) = (rows(&out("both-out")), rows(&out("fill-out")));
    assert_eq!(both.len(), 2 * 2 * 7, "{both:?}");
    let cr = |r: &[String]| r[4].parse::<f64>().unwrap();
    let (t32, t64): (Vec<_>, Vec<_>) = both.iter().partition(|r| r[0] == "t32_32x32x32");
    for (a, b) in t32.iter().zip(&t64) {
        assert_eq!((&a[1], &a[2]), (&b[1], &b[2]));
        let nrmse: f64 = b[5].parse().unwrap();
        assert!(
            nrmse <= b[1].parse::<f64>().unwrap() * (1.0 + 1e-9),
            "{b:?}"
        );
        assert!(cr(b) > 1.5 * cr(a), "{a:?} {b:?}");
    }
    // The filled field's rows are the NaN one's: field, target, codec, bytes, CR, errors.
    for (n, f) in t64.iter().zip(&fill) {
        assert_eq!(n[..7], f[..7], "{n:?} {f:?}");
    }
}
