//! The Gray-Scott example on 1, 2 and 4 MPI ranks: its compressed BP5 output holds every rank's
//! block and reads back within the NRMSE target from Rust (the simulation's own check and the
//! example reader), bpls and Python, against an uncompressed run of the same simulation.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

const TARGET: f64 = 1e-5;

/// Runs the simulation on `ranks` ranks with `output` into `file`; returns its report.
fn simulate(ranks: usize, output: &str, file: &Path) -> String {
    let out = run(mpirun(ranks).arg(example("gray_scott")).args([
        "--output",
        output,
        "--L",
        "24",
        "--steps",
        "30",
        "--plotgap",
        "10",
        "--out",
        file.to_str().unwrap(),
    ]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The NRMSE columns of the simulation's per-step table.
fn reported_nrmse(report: &str) -> Vec<f64> {
    report
        .lines()
        .filter(|l| l.split_whitespace().count() == 7)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f[0].parse::<usize>().ok()?;
            Some([f[5].parse::<f64>().ok()?, f[6].parse::<f64>().ok()?])
        })
        .flatten()
        .collect()
}

fn check(ranks: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (rsd, raw) = (dir.path().join("gs.bp"), dir.path().join("raw.bp"));
    let report = simulate(ranks, "residuum", &rsd);
    simulate(ranks, "raw", &raw);
    assert!(report.contains(&format!("{ranks} ranks")), "{report}");

    // The simulation read its file back against what it wrote: 3 steps, U and V.
    let e = reported_nrmse(&report);
    assert_eq!(e.len(), 6, "{report}");
    assert!(
        e.iter().all(|&x| x <= TARGET && x > 0.0),
        "NRMSE {e:?}\n{report}"
    );

    // The example reader, on another rank count than the writer.
    let out = run(mpirun(2).arg(example("gray_scott_reader")).arg(&rsd));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("3 steps read"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // bpls decodes every step, with one block per rank.
    let out = run(Command::new(adios2_prefix().join("bin/bpls"))
        .args(["-D", "-l"])
        .arg(&rsd)
        .env("ADIOS2_PLUGIN_PATH", plugin_dir()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let blocks = text.lines().filter(|l| l.contains("block ")).count();
    assert_eq!(blocks, 2 * 3 * ranks, "{text}");

    // Python decodes both files; the compressed one is within the target of the other.
    let script = r#"
import sys, adios2, numpy as np
with adios2.FileReader(sys.argv[1]) as a, adios2.FileReader(sys.argv[2]) as b:
    assert a.num_steps() == b.num_steps() == 3
    worst = 0.0
    for s in range(3):
        for v in ("U", "V"):
            x = a.read(v, step_selection=[s, 1]).astype(np.float64)
            y = b.read(v, step_selection=[s, 1]).astype(np.float64)
            assert x.shape == y.shape == (24, 24, 24), x.shape
            worst = max(worst, np.sqrt(np.mean((x - y) ** 2)) / (y.max() - y.min()))
print("worst", worst)
"#;
    let out = run(Command::new(python())
        .args(["-c", script])
        .args([&rsd, &raw])
        .env("ADIOS2_PLUGIN_PATH", plugin_dir()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let worst: f64 = text
        .trim()
        .strip_prefix("worst ")
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(worst <= TARGET && worst > 0.0, "Python: NRMSE {worst}");
}

#[test]
fn one_rank() {
    check(1);
}

#[test]
fn two_ranks() {
    check(2);
}

#[test]
fn four_ranks() {
    check(4);
}
