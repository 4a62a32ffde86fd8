//! `residuum bench` on a real field: a table with every codec, a CSV whose rows hold the
//! measured points, and a PNG.

#[test]
fn bench_compares_codecs_and_writes_csv_and_png() {
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/nyx_temperature_32x32x32.f32"
    );
    let out = tempfile::tempdir().unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_residuum"))
        .args([
            "bench",
            data,
            "--targets",
            "1e-4,1e-5",
            "--reps",
            "1",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        text.contains("nyx_temperature_32x32x32") && text.contains("CR vs best peer"),
        "{text}"
    );
    let csv = std::fs::read_to_string(out.path().join("bench.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let codecs = [
        "residuum",
        "residuum 2 threads",
        "SZ3 interp+Lorenzo",
        "SZ3 Lorenzo+regression",
        "ZFP accuracy",
        "SPERR pwe",
        "SPERR psnr",
    ];
    assert_eq!(rows.len(), 2 * codecs.len(), "{csv}");
    for r in &rows {
        assert!(codecs.contains(&r[2]), "{r:?}");
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
