//! Embeds an rpath to ADIOS2's library directory in residuum's binaries, examples and tests, so
//! they run without LD_LIBRARY_PATH.

fn main() {
    if let Ok(libdir) = std::env::var("DEP_ADIOS2_C_LIBDIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{libdir}");
        println!("cargo:rustc-env=RESIDUUM_ADIOS2_LIBDIR={libdir}");
    }
    if let Ok(prefix) = std::env::var("DEP_ADIOS2_C_PREFIX") {
        println!("cargo:rustc-env=RESIDUUM_ADIOS2_PREFIX={prefix}");
    }
}
