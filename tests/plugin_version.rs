//! A residuum plugin from another release, loaded beside this library, is named as such by the
//! in-situ calls (so the step writer fails its steps saying so), not taken for a missing plugin
//! (which the step writer passes over: no range handed over, no reports, chains not restarted).
//! Its own test binary: no real plugin may be loaded in the process.

use residuum::adios::{FieldData, FieldSpec, StepWriter, WriteMode, WriterOptions};
use residuum::insitu::{self, RangeUsed};
use residuum::{Error, IoErrorKind};
use std::ffi::CString;
use std::process::Command;

/// A shared object named as the plugin is, exporting a hook table of version 999.
const OLD_PLUGIN: &str = r#"
#include <stdint.h>
struct hooks { uint32_t version; void *functions[6]; };
static const struct hooks table = { 999, { 0 } };
const struct hooks *residuum_plugin_hooks_v1(void) { return &table; }
"#;

fn kind(r: residuum::Result<impl std::fmt::Debug>) -> (IoErrorKind, String) {
    match r {
        Err(Error::Io(e)) => (e.kind(), e.to_string()),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn a_plugin_of_another_release_is_named_not_taken_for_a_missing_one() {
    // Before any plugin is loaded: missing.
    let (k, _) = kind(insitu::set_range("e.bp", "v", RangeUsed::Rank, 1.0));
    assert_eq!(k, IoErrorKind::NoPlugin);

    let dir = tempfile::tempdir().unwrap();
    let (src, lib) = (
        dir.path().join("old.c"),
        dir.path().join("libresiduum_plugin_old.so"),
    );
    std::fs::write(&src, OLD_PLUGIN).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(cc)
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = CString::new(lib.to_str().unwrap()).unwrap();
    // SAFETY: a plain C object without constructors; kept loaded for the process's life.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    assert!(!handle.is_null(), "dlopen of the test's old plugin failed");

    let (k, message) = kind(insitu::set_range("e.bp", "v", RangeUsed::Rank, 1.0));
    assert_eq!(k, IoErrorKind::PluginMismatch, "{message}");
    assert!(message.contains("hook version 999"), "{message}");
    assert_eq!(
        kind(insitu::take_reports(None)).0,
        IoErrorKind::PluginMismatch
    );
    assert_eq!(
        kind(insitu::restart_chains(None)).0,
        IoErrorKind::PluginMismatch
    );

    // The step writer fails the step, saying why (it wrote it, handing over no range).
    let universe = mpi::initialize_with_threading(mpi::Threading::Multiple)
        .unwrap()
        .0;
    let spec = FieldSpec {
        name: "v".into(),
        shape: vec![4],
        start: vec![0],
        count: vec![4],
        double: false,
        fill: None,
    };
    let opts = WriterOptions {
        config: None,
        io: "out".into(),
        target: dir.path().join("e.bp").to_str().unwrap().into(),
        queue: 0,
        mode: WriteMode::Sync,
        log: false,
        threads: None,
    };
    let mut w = StepWriter::open(&universe.world(), vec![spec], opts).unwrap();
    let e = w
        .write_step(vec![FieldData::F32(vec![1.0; 4])])
        .unwrap_err();
    assert!(e.to_string().contains("hook version 999"), "{e}");
    let _ = w.close();
}
