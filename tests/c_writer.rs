//! The C API's step writer, from a C program on 2 MPI ranks (examples/c/insitu_writer.c, built
//! by scripts/build.sh against the installed CMake package), handing steps over by copy and by
//! lending them: every step's statistics come back through the API, both ranks resolved the
//! bound against the same global range, and the file holds the fields within the target.

mod common;

use common::*;
use std::collections::HashMap;
use std::process::Command;

#[test]
fn c_program_writes_through_the_step_writer() {
    check(&[], "auto");
}

/// Async (forced: each rank owns one core here), so that the writer's filler thread copies.
#[test]
fn c_program_lends_steps_to_the_step_writer() {
    check(&["lend"], "async");
}

/// Runs the program for 3 steps with `extra` arguments and the writer mode `mode`
/// (RESIDUUM_WRITER), and checks what it reports and wrote.
fn check(extra: &[&str], mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.bp");
    let out = run(mpirun(2)
        .arg(root().join("target/c-writer/insitu_writer"))
        .arg(root().join("examples/gray_scott.xml"))
        .arg(&file)
        .arg("3")
        .args(extra)
        .env("RESIDUUM_WRITER", mode));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // "rank R step S field F bytes IN -> OUT nrmse E range_kind K range X"
    let mut ranges: HashMap<(String, String), Vec<String>> = HashMap::new();
    let mut lines = 0;
    for l in text.lines().filter(|l| l.starts_with("rank ")) {
        let w: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(w.len(), 16, "{l}");
        let (bytes_in, bytes_out): (u64, u64) = (w[7].parse().unwrap(), w[9].parse().unwrap());
        let nrmse: f64 = w[11].parse().unwrap();
        assert!(bytes_out > 0 && bytes_out < bytes_in, "{l}");
        assert!(nrmse > 0.0 && nrmse <= 1e-5, "{l}");
        assert_eq!(w[13], "3", "not the global range: {l}");
        ranges
            .entry((w[3].to_string(), w[5].to_string()))
            .or_default()
            .push(w[15].to_string());
        lines += 1;
    }
    assert_eq!(lines, 2 * 3 * 2, "{text}");
    for (key, r) in &ranges {
        assert!(r.len() == 2 && r[0] == r[1], "{key:?}: ranks used {r:?}");
    }

    // The file decodes in Python, within the target of the fields the program computed.
    let script = r#"
import sys, adios2, numpy as np
L = 32
x, y, z = np.meshgrid(*(np.arange(L) / L,) * 3, indexing="ij")
with adios2.FileReader(sys.argv[1]) as f:
    assert f.num_steps() == 3
    worst = 0.0
    for t in range(3):
        u = np.sin(6.283 * (x + 0.1 * t)) * np.cos(3.1 * y) + z
        v = np.exp(-20.0 * ((x - 0.5) ** 2 + (y - 0.5) ** 2 + (z - 0.3 - 0.05 * t) ** 2))
        for name, want in (("U", u), ("V", v)):
            want = want.astype(np.float32).astype(np.float64)
            got = f.read(name, step_selection=[t, 1]).astype(np.float64)
            worst = max(worst, np.sqrt(np.mean((got - want) ** 2)) / (want.max() - want.min()))
print("worst", worst)
"#;
    let out = run(Command::new(python())
        .args(["-c", script])
        .arg(&file)
        .env("ADIOS2_PLUGIN_PATH", plugin_dir()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let worst: f64 = text.trim().strip_prefix("worst ").unwrap().parse().unwrap();
    assert!(worst > 0.0 && worst <= 1e-5, "NRMSE {worst}");
}
