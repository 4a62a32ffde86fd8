//! Helpers shared by the tests: where the plugin, ADIOS2's tools and the examples are, the
//! real fields, the committed NGLR network, bit-exact comparison.
#![allow(dead_code)]

pub mod check;
pub mod field;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding libresiduum_plugin.so (built by scripts/build.sh).
pub fn plugin_dir() -> PathBuf {
    let dir = std::env::var_os("RESIDUUM_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/residuum-install/lib/residuum/adios2-plugins"));
    assert!(
        dir.join("libresiduum_plugin.so").is_file(),
        "the ADIOS2 plugin is not built in {}: run scripts/test.sh (or scripts/build.sh)",
        dir.display()
    );
    dir
}

/// The ADIOS2 install this crate was built against.
#[cfg(feature = "adios")]
pub fn adios2_prefix() -> PathBuf {
    PathBuf::from(env!("RESIDUUM_ADIOS2_PREFIX"))
}

/// A binary cargo built next to this test (examples live in target/<profile>/examples).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        p.is_file(),
        "{} not built (cargo test builds examples)",
        p.display()
    );
    p
}

/// Writes an ADIOS2 XML file: IO "writer" (BP5) whose variables each get the residuum operator
/// with `params` (key, value) besides PluginName/PluginLibrary, and IO "reader" (BP5).
pub fn write_xml(dir: &Path, vars: &[&str], params: &[(&str, &str)]) -> PathBuf {
    let mut ops = String::new();
    for v in vars {
        ops += &format!(
            "<variable name=\"{v}\"><operation type=\"plugin\">\
             <parameter key=\"PluginName\" value=\"residuum\"/>\
             <parameter key=\"PluginLibrary\" value=\"residuum_plugin\"/>"
        );
        for (k, val) in params {
            ops += &format!("<parameter key=\"{k}\" value=\"{val}\"/>");
        }
        ops += "</operation></variable>";
    }
    let xml = format!(
        "<?xml version=\"1.0\"?><adios-config><io name=\"writer\"><engine type=\"BP5\"/>{ops}</io>\
         <io name=\"reader\"><engine type=\"BP5\"/></io></adios-config>"
    );
    let p = dir.join("adios2.xml");
    std::fs::write(&p, xml).unwrap();
    p
}

/// The venv Python with the PyPI adios2 wheel (made by scripts/setup.sh).
pub fn python() -> PathBuf {
    let p = std::env::var_os("RESIDUUM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var("HOME").unwrap();
            PathBuf::from(home).join(".cache/residuum/venv-adios2-2.12.1.1001/bin/python")
        });
    assert!(p.is_file(), "{} missing: run scripts/setup.sh", p.display());
    p
}

pub fn data_dir() -> PathBuf {
    std::env::var_os("RESIDUUM_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data")))
}

/// Real fields: (name, shape, values) from `../shared/data` (shape from the file name).
pub fn real_fields() -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let dir = data_dir();
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "f32") {
            continue;
        }
        let stem = p.file_stem().unwrap().to_string_lossy().to_string();
        let dims: Vec<usize> = stem
            .rsplit('_')
            .next()
            .unwrap()
            .split('x')
            .map(|d| d.parse().unwrap())
            .collect();
        let bytes = std::fs::read(&p).unwrap();
        let vals: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(vals.len(), dims.iter().product::<usize>(), "{stem}");
        out.push((stem, dims, vals));
    }
    assert!(
        out.len() >= 5,
        "expected the shared data files in {}",
        dir.display()
    );
    out
}

/// Runs a command, returning its output; panics with stderr if it fails to start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command that must succeed (else panics with its output); returns its stdout.
pub fn stdout_of(cmd: &mut Command) -> String {
    let o = run(cmd);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{cmd:?}: {text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    text
}

/// mpirun with the flags a container or laptop needs (oversubscription, root allowed).
pub fn mpirun(n: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["-n", &n.to_string(), "--oversubscribe"])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("ADIOS2_PLUGIN_PATH", plugin_dir());
    c
}

/// All values a BP5 file written by examples/bp5_roundtrip should hold: for each step,
/// U (as f32) then T, C order.
pub fn expected_raw(shape: [usize; 3], steps: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for s in 0..steps {
        let v = field::block(s, &[0; 3], &shape);
        out.extend(v.iter().flat_map(|&x| (x as f32).to_le_bytes()));
        out.extend(v.iter().flat_map(|&x| x.to_le_bytes()));
    }
    out
}

/// The committed NGLR network the tests use.
pub const NGLR_NET: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/nglr_net.safetensors"
);

/// A lossless codec.
pub fn lossless() -> residuum::Codec {
    residuum::Codec::from_pairs([("mode", "lossless")]).unwrap()
}

/// `a` and `b` hold the same bits, element by element (compared as stored, not through f64:
/// widening an f32 quiets a signalling NaN).
pub fn assert_bits_eq<T: residuum::Float + std::fmt::Debug>(a: &[T], b: &[T]) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let same = bytemuck::bytes_of(x) == bytemuck::bytes_of(y);
        assert!(same, "element {i}: {x:?} != {y:?}");
    }
}

/// The golden stream `NAME.rsd` in `dir`. With `RESIDUUM_BLESS=1` a missing one is first
/// written from `make` (the stream and its decoded bytes), with the xxh3 of those bytes in
/// `NAME.xxh3`; a committed one is never rewritten.
pub fn golden(dir: &Path, name: &str, make: impl FnOnce() -> (Vec<u8>, Vec<u8>)) -> Vec<u8> {
    let rsd = dir.join(format!("{name}.rsd"));
    if std::env::var_os("RESIDUUM_BLESS").is_some() && !rsd.exists() {
        let (stream, out) = make();
        std::fs::write(&rsd, stream).unwrap();
        let h = xxhash_rust::xxh3::xxh3_64(&out);
        std::fs::write(dir.join(format!("{name}.xxh3")), format!("{h:016x}\n")).unwrap();
    }
    std::fs::read(&rsd).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Asserts that `out`, the decoded bytes of the golden stream `name`, still hash to the
/// committed `NAME.xxh3`.
pub fn assert_golden_output(dir: &Path, name: &str, out: &[u8]) {
    let want = std::fs::read_to_string(dir.join(format!("{name}.xxh3"))).unwrap();
    assert_eq!(
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(out)),
        want.trim(),
        "{name}: decoded output changed"
    );
}
