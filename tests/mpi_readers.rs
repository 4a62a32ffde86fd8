//! A BP5 file written through the plugin by 1 and 4 MPI ranks reads back bit-identically from
//! Rust, bpls, Python (PyPI adios2 wheel) and the C++ example reader.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

const SHAPE: [usize; 3] = [20, 12, 9];
const STEPS: usize = 2;

/// Runs examples/bp5_roundtrip on `ranks` ranks and checks it verified what it wrote.
fn round_trip(ranks: usize, file: &std::path::Path, shape: &str, steps: usize) -> String {
    let out = run(mpirun(ranks).arg(example("bp5_roundtrip")).args([
        "--out",
        file.to_str().unwrap(),
        "--shape",
        shape,
        "--steps",
        &steps.to_string(),
    ]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{err}");
    assert!(
        text.contains(&format!("{ranks} ranks")) && text.contains("bit-identical"),
        "{text}"
    );
    text
}

/// The file the 4-rank run writes (once, shared by the reader tests).
fn four_rank_file() -> &'static PathBuf {
    static FILE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &FILE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("four.bp");
            let text = round_trip(4, &file, "20x12x9", STEPS);
            assert!(text.contains("rank grid [2, 2, 1]"), "{text}");
            (dir, file)
        })
        .1
}

#[test]
fn one_rank_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(1, &dir.path().join("one.bp"), "7x5x3", 3);
}

#[test]
fn four_ranks_write_blocks_that_bpls_decodes() {
    let file = four_rank_file();
    // Four blocks per variable and step, one per rank.
    let out = run(Command::new(adios2_prefix().join("bin/bpls"))
        .args(["-D", "-l"])
        .arg(file)
        .env("ADIOS2_PLUGIN_PATH", plugin_dir()));
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listing}");
    assert_eq!(listing.matches("block 3:").count(), 2 * STEPS, "{listing}");
    let expected = expected_raw(SHAPE, STEPS);
    let n = SHAPE.iter().product::<usize>();
    for (var, fmt, size) in [("U", "%.9g", 4), ("T", "%.17g", 8)] {
        let out = run(Command::new(adios2_prefix().join("bin/bpls"))
            .args(["-d", "-y", "-f", fmt])
            .arg(file)
            .arg(var)
            .env("ADIOS2_PLUGIN_PATH", plugin_dir()));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "bpls -d {var}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let vals: Vec<f64> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with(';'))
            .flat_map(str::split_whitespace)
            .map(|t| t.parse().unwrap())
            .collect();
        assert_eq!(vals.len(), n * STEPS, "{var}");
        for (s, chunk) in vals.chunks(n).enumerate() {
            let base = s * n * 12 + if size == 4 { 0 } else { n * 4 };
            for (i, &v) in chunk.iter().enumerate() {
                let want = &expected[base + i * size..base + (i + 1) * size];
                let got = if size == 4 {
                    (v as f32).to_le_bytes().to_vec()
                } else {
                    v.to_le_bytes().to_vec()
                };
                assert_eq!(got, want, "{var} step {s} element {i}");
            }
        }
    }
}

#[test]
fn python_wheel_reads_the_file() {
    let file = four_rank_file();
    let raw = file.with_extension("py.raw");
    let script = r#"
import sys, adios2, numpy as np
out = open(sys.argv[2], "wb")
with adios2.FileReader(sys.argv[1]) as f:
    steps = f.num_steps()
    for s in range(steps):
        u = f.read("U", step_selection=[s, 1]); t = f.read("T", step_selection=[s, 1])
        assert u.dtype == np.float32 and t.dtype == np.float64, (u.dtype, t.dtype)
        out.write(u.tobytes()); out.write(t.tobytes())
print("steps", steps)
"#;
    let out = run(Command::new(python())
        .args(["-c", script])
        .arg(file)
        .arg(&raw)
        .env("ADIOS2_PLUGIN_PATH", plugin_dir()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("steps {STEPS}")));
    assert!(
        std::fs::read(&raw).unwrap() == expected_raw(SHAPE, STEPS),
        "Python read different values"
    );
}

#[test]
fn cpp_reader_built_with_find_package_reads_the_file() {
    let reader = root().join("target/cpp-reader/read_bp");
    assert!(
        reader.is_file(),
        "{} not built: run scripts/build.sh",
        reader.display()
    );
    let file = four_rank_file();
    let raw = file.with_extension("cpp.raw");
    // No ADIOS2_PLUGIN_PATH: the reader uses the plugin directory find_package(residuum) gave it.
    let out = run(Command::new(reader)
        .arg(file)
        .arg(&raw)
        .env_remove("ADIOS2_PLUGIN_PATH"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), STEPS);
    assert!(
        std::fs::read(&raw).unwrap() == expected_raw(SHAPE, STEPS),
        "C++ read different values"
    );
}

#[test]
fn plugin_exports_only_the_operator_entry_points_and_the_insitu_hooks() {
    let lib = plugin_dir().join("libresiduum_plugin.so");
    let out = run(Command::new("nm").args(["-D", "--defined-only"]).arg(&lib));
    assert!(out.status.success());
    let mut syms: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    syms.sort();
    assert_eq!(
        syms,
        [
            "OperatorCreate",
            "OperatorDestroy",
            "residuum_plugin_hooks_v1"
        ]
    );
    // ldd must succeed: its empty output on failure would pass the check.
    let ldd = stdout_of(Command::new("ldd").arg(&lib));
    assert!(ldd.contains("libc.so"), "{ldd}");
    assert!(!ldd.contains("adios2"), "the plugin must not link ADIOS2");
}

/// The plugin is never unmapped: ADIOS2 dlcloses it at exit while its worker threads may still
/// be starting (bpls crashed so). Its dynamic section says NODELETE (as the C library's, whose
/// threads may outlive a dlclose too), and readers of the four-rank file, many at once, all
/// exit cleanly.
#[test]
fn the_plugin_stays_loaded_so_readers_exit_cleanly() {
    let installed = plugin_dir().join("../../libresiduum.so");
    for lib in [plugin_dir().join("libresiduum_plugin.so"), installed] {
        let out = run(Command::new("readelf").arg("-d").arg(&lib));
        let dynamic = String::from_utf8_lossy(&out.stdout);
        assert!(
            dynamic
                .lines()
                .any(|l| l.contains("FLAGS_1") && l.contains("NODELETE")),
            "{}: {dynamic}",
            lib.display()
        );
    }
    let file = four_rank_file();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..100 {
                    let out = run(Command::new(adios2_prefix().join("bin/bpls"))
                        .arg("-d")
                        .arg(file)
                        .arg("T")
                        .env("ADIOS2_PLUGIN_PATH", plugin_dir()));
                    assert!(out.status.success(), "bpls: {:?}", out.status);
                }
            });
        }
    });
}
