//! The command line on a real field: compress, info, decompress bit-exactly, and clear errors.

use std::process::Command;

fn residuum() -> Command {
    Command::new(env!("CARGO_BIN_EXE_residuum"))
}

#[test]
fn compress_info_decompress_round_trip_on_real_data() {
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/ccsm_b003_ts_100x64x128.f32"
    );
    let dir = tempfile::tempdir().unwrap();
    let (rsd, back) = (dir.path().join("f.rsd"), dir.path().join("f.out"));
    let out = residuum()
        .args([
            "compress",
            "-i",
            data,
            "--dims",
            "100x64x128",
            "--type",
            "f32",
            "-p",
            "level=5",
            "-o",
        ])
        .arg(&rsd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ratio"));
    let info = residuum().args(["info", "-i"]).arg(&rsd).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.contains("type float, dims 100x64x128, mode lossless"),
        "{info}"
    );
    let out = residuum()
        .args(["decompress", "-i"])
        .arg(&rsd)
        .arg("-o")
        .arg(&back)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(std::fs::read(&back).unwrap() == std::fs::read(data).unwrap());
}

#[test]
fn bad_input_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("x.f32");
    std::fs::write(&raw, [0u8; 12]).unwrap();
    let o = dir.path().join("x.rsd");
    let run = |args: &[&str]| {
        let out = residuum().args(args).output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let (r, os) = (raw.to_str().unwrap(), o.to_str().unwrap());
    let e = run(&[
        "compress", "-i", r, "--dims", "4", "--type", "f32", "-o", os,
    ]);
    assert!(
        e.contains("input has 12 bytes but the shape needs 16"),
        "{e}"
    );
    let e = run(&[
        "compress", "-i", r, "--dims", "3", "--type", "f32", "-p", "speed=9", "-o", os,
    ]);
    assert!(e.contains("unknown parameter 'speed'"), "{e}");
    let e = run(&["decompress", "-i", r, "-o", os]);
    assert!(e.contains("not a residuum stream"), "{e}");
}
