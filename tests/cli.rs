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
    assert!(e.contains("x.f32: 12 bytes, but [4] float needs 16"), "{e}");
    let e = run(&[
        "compress", "-i", r, "--dims", "3", "--type", "f32", "-p", "speed=9", "-o", os,
    ]);
    assert!(e.contains("unknown parameter 'speed'"), "{e}");
    let e = run(&["decompress", "-i", r, "-o", os]);
    assert!(e.contains("not a residuum stream"), "{e}");
}

#[test]
fn eval_reports_errors_within_the_target_and_npy_input_works() {
    let dir = tempfile::tempdir().unwrap();
    // A .npy file (version 1 header, little-endian float32, C order) of shape (6, 7, 8).
    let vals: Vec<f32> = (0..336).map(|i| (i as f32 * 0.13).sin() * 10.0).collect();
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (6, 7, 8), }";
    let pad = 64 - (10 + header.len() + 1) % 64;
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend_from_slice(&((header.len() + pad + 1) as u16).to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    npy.extend(std::iter::repeat_n(b' ', pad));
    npy.push(b'\n');
    npy.extend(vals.iter().flat_map(|v| v.to_le_bytes()));
    let path = dir.path().join("f.npy");
    let eval = |npy: &[u8]| {
        std::fs::write(&path, npy).unwrap();
        residuum()
            .args(["eval", "--nrmse", "1e-4", "-i"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let out = eval(&npy);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("dims [6, 7, 8]"), "{text}");
    let worst: f64 = text
        .split("worst block ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(worst <= 1e-4 && worst > 0.0, "{text}");
    // A Fortran-order or integer .npy is refused with the reason.
    let at = npy.windows(5).position(|w| w == b"'<f4'").unwrap();
    npy[at + 2] = b'i';
    let out = eval(&npy);
    assert!(String::from_utf8_lossy(&out.stderr).contains("little-endian float32/float64 only"));
}
