//! The plugin through ADIOS2 in this process (serial): round trip, and bad input — bad operator
//! parameters, a plugin that cannot be found, an unsupported element type, corrupted blocks —
//! each gives a clear error and loses nothing else.

mod common;

use common::*;
use residuum::adios::{Adios, AdiosError, Element, OpenMode, StepStatus};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// ADIOS2 state, the environment and fd 2 are process-wide: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    std::env::set_var("ADIOS2_PLUGIN_PATH", plugin_dir());
    g
}

/// Runs `f` with file descriptor 2 redirected to a file; returns f's result and what it wrote.
fn capture_stderr<R>(f: impl FnOnce() -> R) -> (R, String) {
    let mut tmp = tempfile::tempfile().unwrap();
    // SAFETY: plain descriptor juggling on valid descriptors; restored before returning.
    let saved = unsafe {
        let saved = libc::dup(2);
        libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&tmp), 2);
        saved
    };
    let r = f();
    // SAFETY: restores the descriptor saved above.
    unsafe {
        libc::dup2(saved, 2);
        libc::close(saved);
    }
    let mut s = String::new();
    tmp.seek(SeekFrom::Start(0)).unwrap();
    tmp.read_to_string(&mut s).unwrap();
    (r, s)
}

const SHAPE: [usize; 3] = [17, 9, 5];

fn values(step: usize) -> Vec<f64> {
    field::block(step, &[0; 3], &SHAPE)
}

/// Writes `steps` steps of U (f32) and T (f64) with the given operator parameters.
fn write_file(dir: &Path, params: &[(&str, &str)], steps: usize) -> PathBuf {
    let xml = write_xml(dir, &["U", "T"], params);
    let adios = Adios::serial(Some(&xml)).unwrap();
    let io = adios.declare_io("writer").unwrap();
    let u = io
        .define_variable::<f32>("U", &SHAPE, &[0; 3], &SHAPE)
        .unwrap();
    let t = io
        .define_variable::<f64>("T", &SHAPE, &[0; 3], &SHAPE)
        .unwrap();
    let file = dir.join("out.bp");
    let mut w = io.open(file.to_str().unwrap(), OpenMode::Write).unwrap();
    for s in 0..steps {
        let v = values(s);
        w.begin_step(-1.0).unwrap();
        w.put(&u, &v.iter().map(|&x| x as f32).collect::<Vec<_>>())
            .unwrap();
        w.put(&t, &v).unwrap();
        w.end_step().unwrap();
    }
    w.close().unwrap();
    file
}

/// Reads T of every step with a reader that has no operator settings.
fn read_t(file: &Path) -> Result<Vec<Vec<f64>>, AdiosError> {
    read_var::<f64>(file, "T")
}

/// Reads `name` of every step, as f64, with a reader that has no operator settings.
fn read_var<T: Element + Into<f64>>(file: &Path, name: &str) -> Result<Vec<Vec<f64>>, AdiosError> {
    let adios = Adios::serial(None)?;
    let io = adios.declare_io("reader")?;
    let mut r = io.open(file.to_str().unwrap(), OpenMode::Read)?;
    let mut steps = Vec::new();
    while r.begin_step(-1.0)? == StepStatus::Ok {
        let mut t = io.inquire_variable::<T>(name)?;
        t.set_selection(&[0; 3], &SHAPE)?;
        let v = r.get(&t);
        r.end_step()?;
        steps.push(v?.into_iter().map(Into::into).collect());
    }
    r.close()?;
    Ok(steps)
}

/// Step `s` of `name` as written: T's values, U's rounded to f32.
fn written(name: &str, s: usize) -> Vec<f64> {
    match name {
        "U" => values(s).into_iter().map(|v| v as f32 as f64).collect(),
        _ => values(s),
    }
}

fn data_file(bp: &Path) -> PathBuf {
    bp.join("data.0")
}

#[test]
fn serial_round_trip_is_bit_exact_and_really_compressed() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), &[("mode", "lossless")], 3);
    let data = std::fs::read(data_file(&file)).unwrap();
    // Two variables x three steps, each block a residuum stream.
    assert_eq!(data.windows(4).filter(|w| w == b"RSDM").count(), 6);
    for (name, steps) in [
        ("T", read_t(&file).unwrap()),
        ("U", read_var::<f32>(&file, "U").unwrap()),
    ] {
        assert_eq!(steps.len(), 3);
        for (s, got) in steps.iter().enumerate() {
            assert!(
                got.iter()
                    .zip(written(name, s))
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{name}, step {s}"
            );
        }
    }
}

#[test]
fn lossy_targets_hold_through_adios2() {
    let _g = lock();
    // NGLR forced through the operator's parameters: every stream carries the network (the
    // header's flag bit 1), and a reader without parameters decodes it.
    for (params, check) in [
        (vec![("mode", "nrmse"), ("target", "1e-5")], "nrmse"),
        (vec![("abs", "1e-3"), ("block", "4x9x5")], "abs"),
        (
            vec![("nrmse", "1e-5"), ("residual", "nglr"), ("nglr", NGLR_NET)],
            "nrmse",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(dir.path(), &params, 2);
        let data = std::fs::read(data_file(&file)).unwrap();
        assert_eq!(data.windows(4).filter(|w| w == b"RSDM").count(), 4);
        if params.contains(&("residual", "nglr")) {
            // Magic, version (6 or later with NGLR), dtype, target kind, ndims, then the flags.
            let nglr = data
                .windows(10)
                .filter(|w| w[..4] == *b"RSDM" && w[4] >= 6 && w[9] & 2 != 0)
                .count();
            assert_eq!(nglr, 4, "streams with the NGLR network");
        }
        for (name, steps) in [
            ("T", read_t(&file).unwrap()),
            ("U", read_var::<f32>(&file, "U").unwrap()),
        ] {
            assert_eq!(steps.len(), 2, "{name}");
            for (s, got) in steps.iter().enumerate() {
                let want = written(name, s);
                let (lo, hi) = want
                    .iter()
                    .fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
                let err: Vec<f64> = got.iter().zip(&want).map(|(a, b)| a - b).collect();
                if check == "nrmse" {
                    // One ADIOS2 block per step here, in default-sized residuum blocks: the
                    // whole step's RMS error is within the target of its range.
                    let rms = (err.iter().map(|e| e * e).sum::<f64>() / err.len() as f64).sqrt();
                    assert!(rms <= 1e-5 * (hi - lo), "{name}, step {s}: RMS {rms}");
                    assert!(rms > 0.0, "{name}: lossy mode stored the data exactly");
                } else {
                    assert!(
                        err.iter().all(|e| e.abs() <= 1e-3),
                        "{name}, step {s}: abs bound violated"
                    );
                }
            }
        }
    }
}

#[test]
fn bad_operator_parameters_are_refused_before_anything_is_written() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    for (params, expect) in [
        (
            ("colour", "red"),
            "unknown parameter 'colour'; accepted: mode, target",
        ),
        (
            ("mode", "fast"),
            "parameter 'mode' has bad value 'fast': supported modes: lossless",
        ),
        (("level", "99"), "parameter 'level' has bad value '99'"),
    ] {
        let xml = write_xml(dir.path(), &["U"], &[params]);
        let e = Adios::serial(Some(&xml)).err().expect("must be refused");
        assert!(matches!(e, AdiosError::Operator { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("variable 'U'") && msg.contains(expect),
            "{msg}"
        );
    }
}

#[test]
fn unsupported_element_type_is_refused_at_definition() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    let xml = write_xml(dir.path(), &["I"], &[]);
    let adios = Adios::serial(Some(&xml)).unwrap();
    let io = adios.declare_io("writer").unwrap();
    let e = io
        .define_variable::<i32>("I", &[3], &[0], &[3])
        .err()
        .expect("must be refused");
    assert!(matches!(e, AdiosError::UnsupportedType { .. }), "{e}");
    assert!(e.to_string().contains("'I' has type int32_t"), "{e}");
    // Other types and variables are unaffected.
    io.define_variable::<i32>("J", &[3], &[0], &[3]).unwrap();
}

/// Where no Rust check runs (C++, Python, Fortran hosts), the plugin itself declines bad
/// parameters and unsupported types with a message, ADIOS2 stores the data uncompressed, and
/// nothing crashes or is lost.
#[test]
fn plugin_in_a_python_host_declines_bad_parameters_and_types_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let xml = write_xml(dir.path(), &["U"], &[("colour", "red")]);
    let xml = std::fs::read_to_string(&xml).unwrap().replace(
        "</io><io name=\"reader\">",
        "<variable name=\"I\"><operation type=\"plugin\"><parameter key=\"PluginName\" value=\"residuum\"/>\
         <parameter key=\"PluginLibrary\" value=\"residuum_plugin\"/></operation></variable></io><io name=\"reader\">",
    );
    let cfg = dir.path().join("host.xml");
    std::fs::write(&cfg, xml).unwrap();
    let script = r#"
import sys, numpy as np
from adios2 import bindings as b, FileReader
adios = b.ADIOS(sys.argv[1])
io = adios.DeclareIO("writer")
u = np.arange(6, dtype=np.float32) / 3; i = np.arange(5, dtype=np.int32) * 7
vu = io.DefineVariable("U", u, [6], [0], [6], True)
vi = io.DefineVariable("I", i, [5], [0], [5], True)
e = io.Open(sys.argv[2], b.Mode.Write)
e.BeginStep(); e.Put(vu, u, b.Mode.Sync); e.Put(vi, i, b.Mode.Sync); e.EndStep(); e.Close()
with FileReader(sys.argv[2]) as f:
    assert (f.read("U") == u).all() and (f.read("I") == i).all()
print("read back")
"#;
    let out = run(Command::new(python())
        .args(["-c", script])
        .arg(&cfg)
        .arg(dir.path().join("host.bp"))
        .env("ADIOS2_PLUGIN_PATH", plugin_dir()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("read back"));
    assert!(
        err.contains("residuum operator parameters: unknown parameter 'colour'"),
        "{err}"
    );
    assert!(
        err.contains("element type int32_t is not supported"),
        "{err}"
    );
    assert!(err.contains("stores this variable uncompressed"), "{err}");
}

#[test]
fn missing_plugin_says_which_path_to_set() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), &[], 1);
    let empty = tempfile::tempdir().unwrap();
    std::env::set_var("ADIOS2_PLUGIN_PATH", empty.path());
    // Writing: caught before ADIOS2 would abort while attaching the operation.
    let xml = write_xml(dir.path(), &["U"], &[]);
    let e = Adios::serial(Some(&xml)).err().expect("must fail");
    let msg = e.to_string();
    assert!(matches!(e, AdiosError::PluginNotFound { .. }), "{msg}");
    assert!(
        msg.contains("residuum_plugin") && msg.contains("ADIOS2_PLUGIN_PATH"),
        "{msg}"
    );
    // Reading, in a fresh process (this one has the plugin loaded already): an error, and
    // ADIOS2 names the variable to set.
    let out = run(Command::new(adios2_prefix().join("bin/bpls"))
        .args(["-d"])
        .arg(&file)
        .arg("T")
        .env("ADIOS2_PLUGIN_PATH", empty.path()));
    // bpls prints ADIOS2's messages on stdout.
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("residuum_plugin could not be loaded") && text.contains("ADIOS2_PLUGIN_PATH"),
        "{text}"
    );
}

/// Damages the `nth` residuum stream in the file at `offset` bytes from its start.
fn damage(file: &Path, nth: usize, offset: usize, xor: u8) {
    let path = data_file(file);
    let mut data = std::fs::read(&path).unwrap();
    let starts: Vec<usize> = data
        .windows(4)
        .enumerate()
        .filter(|(_, w)| w == b"RSDM")
        .map(|(i, _)| i)
        .collect();
    data[starts[nth] + offset] ^= xor;
    std::fs::write(&path, data).unwrap();
}

#[test]
fn corrupted_blocks_fail_the_read_never_silently() {
    let _g = lock();
    for (what, offset, expect) in [
        ("payload", 200, "checksum mismatch in block 0"),
        ("magic", 0, "not a residuum stream"),
        ("shape", 30, "checksum mismatch in header"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(dir.path(), &[], 2);
        // Streams are in write order: U0, T0, U1, T1. Damage T of step 1.
        damage(&file, 3, offset, 0x5a);
        let (r, err) = capture_stderr(|| read_t(&file));
        assert!(r.is_err(), "{what}: damaged data was returned");
        assert!(
            err.contains(expect) && err.contains("variable 'T'"),
            "{what}: {err}"
        );
        // The undamaged step still reads.
        let (r0, _) = capture_stderr(|| {
            let adios = Adios::serial(None).unwrap();
            let io = adios.declare_io("reader").unwrap();
            let mut r = io.open(file.to_str().unwrap(), OpenMode::Read).unwrap();
            r.begin_step(-1.0).unwrap();
            let mut t = io.inquire_variable::<f64>("T").unwrap();
            t.set_selection(&[0; 3], &SHAPE).unwrap();
            r.get(&t)
        });
        assert!(r0.unwrap() == values(0), "{what}: step 0 damaged too");
    }
}

/// A file written again under its name, through ADIOS2 directly with `temporal=K` (a checkpoint
/// rewritten in place), reads back once the application restarts its chains before opening it
/// (`residuum_restart_chains`, as the step writer does itself); without that call its first
/// step is predicted from the overwritten file's and cannot be read.
#[test]
fn a_file_written_again_under_its_name_reads_back_once_its_chains_restart() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    let xml = write_xml(dir.path(), &["T"], &[("nrmse", "1e-5"), ("temporal", "8")]);
    let file = dir.path().join("checkpoint.bp");
    let adios = Adios::serial(Some(&xml)).unwrap();
    let io = adios.declare_io("writer").unwrap();
    let t = io
        .define_variable::<f64>("T", &SHAPE, &[0; 3], &SHAPE)
        .unwrap();
    let write = |step: usize| {
        let mut w = io.open(file.to_str().unwrap(), OpenMode::Write).unwrap();
        w.begin_step(-1.0).unwrap();
        w.put(&t, &values(step)).unwrap();
        w.end_step().unwrap();
        w.close().unwrap();
    };
    write(0);
    write(1);
    let (read, said) = capture_stderr(|| read_t(&file));
    read.expect_err("a step predicted from an overwritten file");
    assert!(said.contains("is predicted from step 0"), "{said}");
    let name = std::ffi::CString::new(file.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated string.
    let restarted = unsafe { residuum::ffi::insitu::residuum_restart_chains(name.as_ptr()) };
    assert_eq!(restarted, residuum::ffi::RESIDUUM_OK);
    write(2);
    let steps = read_t(&file).unwrap();
    let (want, got) = (values(2), &steps[0]);
    let range = common::check::range(&want);
    let rms = (want
        .iter()
        .zip(got)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        / want.len() as f64)
        .sqrt();
    assert!(
        steps.len() == 1 && rms <= 1e-5 * range,
        "{rms} over {range}"
    );
}
