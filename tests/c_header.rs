//! The committed C header must be exactly what cbindgen generates from src/ffi/.
//! Regenerate with `RESIDUUM_BLESS=1 cargo test --test c_header`.

use std::path::Path;

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
    if std::env::var_os("RESIDUUM_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
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
