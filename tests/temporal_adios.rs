//! Temporal prediction through the plugin (`temporal=K`), with examples/temporal_steps: BP5 and
//! SST on 1, 2 and 4 ranks, 100 steps read back within the bound and bit for bit as the writer
//! reconstructed them (by hash), from Rust, bpls and Python; random access; a late SST reader; a
//! killed writer.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const K: usize = 10;

/// An ADIOS2 configuration with IO "writer" on `engine` (its parameters `engine_params`) whose
/// U has the residuum operator with abs=1e-3 and temporal=K.
fn config(dir: &Path, engine: &str, engine_params: &str) -> PathBuf {
    let xml = format!(
        "<?xml version=\"1.0\"?><adios-config><io name=\"writer\"><engine type=\"{engine}\">\
         {engine_params}</engine><variable name=\"U\"><operation type=\"plugin\">\
         <parameter key=\"PluginName\" value=\"residuum\"/>\
         <parameter key=\"PluginLibrary\" value=\"residuum_plugin\"/>\
         <parameter key=\"abs\" value=\"1e-3\"/><parameter key=\"temporal\" value=\"{K}\"/>\
         </operation></variable></io></adios-config>"
    );
    let p = dir.join(format!("{engine}.xml"));
    std::fs::write(&p, xml).unwrap();
    p
}

/// Writes `steps` steps of U from `ranks` ranks to the BP5 file `out`.
fn write_bp5(dir: &Path, out: &Path, ranks: usize, steps: usize) {
    let cfg = config(dir, "BP5", "");
    let text = stdout_of(
        steps_cmd(ranks, "write", out)
            .args(["--config", cfg.to_str().unwrap()])
            .args(["--steps", &steps.to_string()]),
    );
    assert!(text.contains(&format!("wrote {steps} steps")), "{text}");
}

/// examples/temporal_steps `cmd` on `ranks` ranks for the file or stream `out`.
fn steps_cmd(ranks: usize, cmd: &str, out: &Path) -> Command {
    let mut c = mpirun(ranks);
    c.arg(example("temporal_steps"))
        .args([cmd, "--out", out.to_str().unwrap()]);
    c
}

#[test]
fn bp5_steps_read_back_as_written_on_1_2_4_ranks() {
    let dir = tempfile::tempdir().unwrap();
    for ranks in [1, 2, 4] {
        let out = dir.path().join(format!("r{ranks}.bp"));
        write_bp5(dir.path(), &out, ranks, 100);
        // Read by as many ranks (each its block: the writer's hashes are per block).
        let text = stdout_of(&mut steps_cmd(ranks, "read", &out));
        assert!(
            text.contains(&format!("read 100 steps on {ranks} ranks: 100 decoded")),
            "{text}"
        );
    }
}

#[test]
fn bpls_and_python_read_every_step_as_rust_does() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("one.bp");
    write_bp5(dir.path(), &out, 1, 30);
    let rust = dir.path().join("rust.raw");
    stdout_of(steps_cmd(1, "read", &out).args(["--raw", rust.to_str().unwrap()]));
    let rust = std::fs::read(rust).unwrap();
    assert_eq!(rust.len(), 30 * 24 * 20 * 16 * 4);
    // Python, step by step.
    let py = dir.path().join("py.raw");
    let script = r#"
import sys, adios2
out = open(sys.argv[2], "wb")
with adios2.FileReader(sys.argv[1]) as f:
    for s in range(f.num_steps()):
        out.write(f.read("U", step_selection=[s, 1]).tobytes())
"#;
    stdout_of(
        Command::new(python())
            .args(["-c", script])
            .arg(&out)
            .arg(&py)
            .env("ADIOS2_PLUGIN_PATH", plugin_dir()),
    );
    assert!(
        std::fs::read(&py).unwrap() == rust,
        "Python read other values"
    );
    // bpls over all steps at once, its reader on one thread (several threads decode the steps of
    // one read in any order; a step whose predecessor is not yet decoded is refused).
    let text = stdout_of(
        Command::new(adios2_prefix().join("bin/bpls"))
            .args(["-P", "Threads=1", "-d", "-y", "-f", "%.9g"])
            .arg(&out)
            .arg("U")
            .env("ADIOS2_PLUGIN_PATH", plugin_dir()),
    );
    let vals: Vec<u8> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with(';'))
        .flat_map(str::split_whitespace)
        .flat_map(|t| {
            t.parse::<f32>()
                .unwrap_or_else(|_| panic!("{t}"))
                .to_le_bytes()
        })
        .collect();
    // NaN prints as nan: compare bits of the finite values and NaN-ness of the rest.
    assert_eq!(vals.len(), rust.len());
    for (i, (g, w)) in vals.chunks(4).zip(rust.chunks(4)).enumerate() {
        let (g, w) = (
            f32::from_le_bytes(g.try_into().unwrap()),
            f32::from_le_bytes(w.try_into().unwrap()),
        );
        assert!(
            g.to_bits() == w.to_bits() || g.is_nan() && w.is_nan(),
            "value {i}: {g} vs {w}"
        );
    }
}

#[test]
fn random_access_errors_through_adios2_and_decodes_through_residuum() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("one.bp");
    write_bp5(dir.path(), &out, 1, 30);
    let text = stdout_of(steps_cmd(1, "random", &out).args(["--step", "17"]));
    assert!(
        text.contains("plain get of step 17: refused, keyframe Some(7) steps back")
            && text.contains("get_step 17: within the bound and as written"),
        "{text}"
    );
    let text = stdout_of(steps_cmd(1, "random", &out).args(["--step", "20"]));
    assert!(text.contains("step 20: decoded (a keyframe)"), "{text}");
    // Python asking for a predicted step alone: an error naming the keyframe, no values.
    let script = r#"
import sys, adios2
with adios2.FileReader(sys.argv[1]) as f:
    f.read("U", step_selection=[17, 1])
"#;
    let o = run(Command::new(python())
        .args(["-c", script])
        .arg(&out)
        .env("ADIOS2_PLUGIN_PATH", plugin_dir()));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "read a predicted step alone");
    assert!(
        err.contains("step 17") && err.contains("from step 10, its keyframe"),
        "{err}"
    );
}

#[test]
fn sst_streams_on_1_2_4_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "SST", "");
    for ranks in [1, 2, 4] {
        let name = dir.path().join(format!("s{ranks}"));
        let mut writer = steps_cmd(ranks, "write", &name)
            .args(["--config", cfg.to_str().unwrap(), "--steps", "40"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let text = stdout_of(steps_cmd(ranks, "read", &name).args(["--engine", "SST"]));
        assert!(writer.wait().unwrap().success());
        assert!(
            text.contains(&format!("read 40 steps on {ranks} ranks: 40 decoded")),
            "{text}"
        );
    }
}

#[test]
fn a_late_sst_reader_starts_at_a_keyframe() {
    let dir = tempfile::tempdir().unwrap();
    // The writer does not wait for readers, and takes 50 ms a step: a reader started a second
    // later joins in the middle of a chain.
    let cfg = config(
        dir.path(),
        "SST",
        "<parameter key=\"RendezvousReaderCount\" value=\"0\"/>",
    );
    let name = dir.path().join("late");
    let steps = 160;
    let mut writer = steps_cmd(1, "write", &name)
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "--steps",
            &steps.to_string(),
        ])
        .args(["--delay-ms", "50"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The reader starts once the writer has passed its second keyframe (the writer's hash file
    // holds a line a step), so it cannot join at step 0 however slowly mpirun starts; the
    // writer's remaining ~7 s leave it time to connect.
    let hashes = PathBuf::from(format!("{}.hash.0", name.display()));
    while std::fs::read_to_string(&hashes).map_or(0, |t| t.lines().count()) <= K + 2 {
        assert!(
            writer.try_wait().unwrap().is_none(),
            "the writer ended early"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let text = stdout_of(steps_cmd(1, "read", &name).args(["--engine", "SST", "--late"]));
    assert!(writer.wait().unwrap().success());
    // "(first F), S skipped before it": F is a keyframe, everything after it decoded (the
    // program fails on a later undecodable step).
    let first: usize = text
        .split("(first ")
        .nth(1)
        .and_then(|t| t.split(')').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(first % K, 0, "{text}");
    assert!(first > K && first < steps, "{text}");
}

#[test]
fn a_killed_writer_leaves_every_completed_step_decodable() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "BP5", "");
    let out = dir.path().join("killed.bp");
    let o = run(steps_cmd(2, "write", &out)
        .args(["--config", cfg.to_str().unwrap(), "--steps", "40"])
        .args(["--abort-after", "25"]));
    assert!(!o.status.success(), "the writer was to abort");
    // The file stays marked as being written: the reader stops where no step comes for 2 s.
    let text = stdout_of(steps_cmd(2, "read", &out).args(["--timeout", "2"]));
    assert!(
        text.contains("read 25 steps on 2 ranks: 25 decoded"),
        "{text}"
    );
    // And step 23 alone, from its keyframe (1 rank reads the whole array; the writer's hashes
    // are per block, so only the bound is checked here).
    let text = stdout_of(steps_cmd(1, "random", &out).args(["--step", "23"]));
    assert!(text.contains("get_step 23: within the bound"), "{text}");
}

/// A local array's blocks have no place in a global array: known by their counts alone, the
/// two blocks a step made one chain, each predicted from the block written before it, and a
/// reader of block 0 alone failed at step 1 (its reference, block 1 of step 0, never read).
/// They are coded without temporal prediction, and the log says so.
#[test]
fn local_array_blocks_read_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let xml = write_xml(dir.path(), &["L"], &[("abs", "1e-3"), ("temporal", "4")]);
    let script = r#"
import sys, numpy as np
from adios2 import bindings as b
adios = b.ADIOS(sys.argv[1])
n = 4096
def block(step, k):
    x = np.arange(n, dtype=np.float64)
    return (np.sin(x * 0.01 + k) * 10 + step * 0.01).astype(np.float32)
io = adios.DeclareIO("writer")
v = io.DefineVariable("L", block(0, 0), [], [], [n], True)
e = io.Open(sys.argv[2], b.Mode.Write)
for step in range(4):
    e.BeginStep()
    for k in range(2):
        e.Put(v, block(step, k), b.Mode.Sync)
    e.EndStep()
e.Close()
rio = adios.DeclareIO("reader")
r = rio.Open(sys.argv[2], b.Mode.Read)
step = 0
while r.BeginStep() == b.StepStatus.OK:
    rv = rio.InquireVariable("L")
    rv.SetBlockSelection(0)
    out = np.zeros(n, dtype=np.float32)
    r.Get(rv, out, b.Mode.Sync)
    assert np.abs(out - block(step, 0)).max() <= 1e-3 * (1 + 1e-6), step
    r.EndStep()
    step += 1
r.Close()
assert step == 4, step
print("read block 0 of 4 steps")
"#;
    let out = run(Command::new(python())
        .args(["-c", script])
        .arg(&xml)
        .arg(dir.path().join("local.bp"))
        .env("ADIOS2_PLUGIN_PATH", plugin_dir()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("read block 0 of 4 steps"));
    assert!(err.contains("coded without temporal prediction"), "{err}");
}

/// BP4 (and BP3) give operators no variable name, by which chains are kept: U and V of one box
/// made one chain, each predicted from the other's step, and a reader of U alone failed. With
/// them blocks are coded without temporal prediction, and the log says why.
#[test]
fn temporal_prediction_needs_an_engine_that_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import sys, numpy as np
from adios2 import bindings as b
adios = b.ADIOS(sys.argv[1])
io = adios.DeclareIO("writer")
u = np.sin(np.arange(4096) * 0.01).astype(np.float32)
vu = io.DefineVariable("U", u, [4096], [0], [4096], True)
vv = io.DefineVariable("V", u, [4096], [0], [4096], True)
e = io.Open(sys.argv[2], b.Mode.Write)
for step in range(4):
    # V close to U: each would be predicted from the other's step
    e.BeginStep(); e.Put(vu, u + 0.01 * step, b.Mode.Sync); e.Put(vv, u + 0.01 * step + 0.002, b.Mode.Sync); e.EndStep()
e.Close()
rio = adios.DeclareIO("reader")
r = rio.Open(sys.argv[2], b.Mode.Read)
step = 0
while r.BeginStep() == b.StepStatus.OK:
    out = np.zeros(4096, dtype=np.float32)
    r.Get(rio.InquireVariable("U"), out, b.Mode.Sync)
    assert np.abs(out - (u + 0.01 * step)).max() <= 1e-3 * (1 + 1e-6), step
    r.EndStep()
    step += 1
r.Close()
assert step == 4, step
print("read U alone")
"#;
    let xml = write_xml(
        dir.path(),
        &["U", "V"],
        &[("abs", "1e-3"), ("temporal", "4")],
    );
    let text = std::fs::read_to_string(&xml)
        .unwrap()
        .replace("<engine type=\"BP5\"/>", "<engine type=\"BP4\"/>");
    std::fs::write(&xml, text).unwrap();
    let out = run(Command::new(python())
        .args(["-c", script])
        .arg(&xml)
        .arg(dir.path().join("bp4.bp"))
        .env("ADIOS2_PLUGIN_PATH", plugin_dir()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("read U alone"));
    assert!(err.contains("no variable names (BP4"), "{err}");
}
