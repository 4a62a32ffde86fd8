//! The committed C header must be exactly what cbindgen generates from src/ffi/, and a C
//! program must be able to use what it documents. Regenerate with
//! `RESIDUUM_BLESS=1 cargo test --test c_header`.

use std::path::Path;
use std::process::Command;

#[test]
fn committed_header_matches_the_rust_abi() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen failed")
        .write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();
    let path = root.join("include/residuum.h");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated && std::env::var_os("RESIDUUM_BLESS").is_some() {
        // Written, and still failed: a run with the variable set (a CI that exports it)
        // cannot pass on a stale header.
        std::fs::write(&path, &generated).unwrap();
        panic!("include/residuum.h regenerated; run again without RESIDUUM_BLESS");
    }
    assert!(
        committed == generated,
        "include/residuum.h is stale; regenerate with RESIDUUM_BLESS=1 cargo test --test c_header"
    );
    for f in [
        "residuum_codec_new",
        "residuum_compress",
        "residuum_decompress",
        "residuum_stream_info",
        "residuum_max_compressed_size",
        "residuum_last_error",
    ] {
        assert!(generated.contains(f), "{f} missing from the header");
    }
}

/// Every constant the API documents is in the header, with the `RESIDUUM_` prefix that keeps it
/// clear of the application's names, and a C program using them compiles, with and without
/// the step writer's part. cbindgen leaves out, without a word, a constant it cannot evaluate
/// (the range kinds were `RangeUsed::Rank as c_int`), and writes every other public constant
/// of the crate it parses.
#[test]
fn a_c_program_uses_the_documented_constants() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = std::fs::read_to_string(root.join("include/residuum.h")).unwrap();
    let defines: Vec<&str> = header
        .lines()
        .filter_map(|l| l.strip_prefix("#define "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let foreign: Vec<_> = defines
        .iter()
        .filter(|d| !d.starts_with("RESIDUUM_"))
        .collect();
    assert!(foreign.is_empty(), "macros without the prefix: {foreign:?}");
    let ranges = ["NONE", "BLOCK", "RANK", "GLOBAL", "FIXED"];
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("uses.c");
    let mut uses = String::from("#include <residuum.h>\nint main(void) {\n  int n = 0;\n");
    for (code, kind) in ranges.iter().enumerate() {
        assert!(
            defines.contains(&format!("RESIDUUM_RANGE_{kind}").as_str()),
            "RESIDUUM_RANGE_{kind} missing from the header"
        );
        // The codes the Rust side reads (`RangeUsed`), checked at compile time.
        uses += &format!(
            "  _Static_assert(RESIDUUM_RANGE_{kind} == {code}, \"{kind}\");\n  n += RESIDUUM_RANGE_{kind};\n"
        );
    }
    uses += "  return n + (int)residuum_set_range(\"e\", \"v\", RESIDUUM_RANGE_GLOBAL, 1.0);\n}\n";
    std::fs::write(&program, uses).unwrap();
    for writer in [false, true] {
        let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
        cc.args(["-std=c11", "-Wall", "-Werror", "-fsyntax-only", "-I"])
            .arg(root.join("include"))
            .arg(&program);
        if writer {
            // The writer's part names no MPI type (communicators pass as Fortran handles).
            cc.arg("-DRESIDUUM_WRITER");
        }
        let out = cc.output().expect("a C compiler (cc, or $CC)");
        assert!(
            out.status.success(),
            "RESIDUUM_WRITER {writer}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
