//! Finds ADIOS2 (>= 2.12, with MPI) and generates bindings to its C API.
//!
//! Search order: `ADIOS2_DIR` (an install prefix or its `lib/cmake/adios2` directory), then the
//! cache that `scripts/setup.sh` builds (`$RESIDUUM_CACHE`, else `$XDG_CACHE_HOME/residuum` or
//! `~/.cache/residuum`, subdirectory `adios2-2.12.1-mpi`). The library directory is exported as
//! `DEP_ADIOS2_C_LIBDIR` so dependents can embed an rpath.

use std::env;
use std::path::{Path, PathBuf};

const CACHE_SUBDIR: &str = "adios2-2.12.1-mpi";

fn prefix_from_dir(dir: &Path) -> PathBuf {
    // Accept <prefix>/lib*/cmake/adios2 as well as <prefix>.
    if dir.ends_with("cmake/adios2") {
        if let Some(p) = dir.parent().and_then(Path::parent).and_then(Path::parent) {
            return p.to_path_buf();
        }
    }
    dir.to_path_buf()
}

fn cache_prefix() -> Option<PathBuf> {
    let root = env::var_os("RESIDUUM_CACHE")
        .map(PathBuf::from)
        .or_else(|| env::var_os("XDG_CACHE_HOME").map(|x| PathBuf::from(x).join("residuum")))
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/residuum")))?;
    Some(root.join(CACHE_SUBDIR))
}

fn main() {
    for v in ["ADIOS2_DIR", "RESIDUUM_CACHE", "XDG_CACHE_HOME", "HOME"] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    println!("cargo:rerun-if-changed=wrapper.h");

    let candidates: Vec<PathBuf> = env::var_os("ADIOS2_DIR")
        .map(|d| prefix_from_dir(Path::new(&d)))
        .into_iter()
        .chain(cache_prefix())
        .collect();
    let found = candidates.iter().find_map(|p| {
        ["lib", "lib64"]
            .iter()
            .map(|l| p.join(l))
            .find(|l| l.join("libadios2_c_mpi.so").exists())
            .map(|l| (p.clone(), l))
    });
    let Some((prefix, libdir)) = found else {
        panic!(
            "ADIOS2 >= 2.12 with MPI not found (looked in: {}). Run scripts/setup.sh, which builds \
             it into a cache, or set ADIOS2_DIR to an ADIOS2 install prefix.",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let include = prefix.join("include");
    println!(
        "cargo:rerun-if-changed={}",
        include.join("adios2_c.h").display()
    );

    println!("cargo:rustc-link-search=native={}", libdir.display());
    println!("cargo:rustc-link-lib=dylib=adios2_c_mpi");
    println!("cargo:rustc-link-lib=dylib=adios2_c");
    println!("cargo:libdir={}", libdir.display());
    println!("cargo:prefix={}", prefix.display());

    let mpi = build_probe_mpi::probe().unwrap_or_else(|e| {
        panic!("MPI not found ({e:?}); install libopenmpi-dev (scripts/setup.sh does)")
    });
    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_arg(format!("-I{}", include.display()))
        .clang_arg("-DADIOS2_USE_MPI=1")
        .allowlist_function("adios2_.*")
        .allowlist_type("adios2_.*")
        .allowlist_var("adios2_.*")
        // Use rsmpi's MPI_Comm so communicators pass without casts.
        .blocklist_type("MPI_Comm")
        .raw_line("pub use mpi_sys::MPI_Comm;")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for p in &mpi.include_paths {
        builder = builder.clang_arg(format!("-I{}", p.display()));
    }
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs");
    builder
        .generate()
        .expect("bindgen failed on adios2_c.h")
        .write_to_file(&out)
        .expect("cannot write bindings");
}
