#!/usr/bin/env bash
# Runs every test: installs what is missing, builds the plugin, then the whole cargo test suite
# (unit, C ABI, ADIOS2 round trips in 1 and 4 MPI ranks, bpls/Python/C++ readers, bad input).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prepare.sh
export RESIDUUM_PLUGIN_DIR="$ADIOS2_PLUGIN_PATH"
cargo fmt --all -- --check
# The API docs: no broken or private links (doc/format.md and the README point into them), also
# for a library-only user who builds them without ADIOS2.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --lib --no-default-features --quiet
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --lib --quiet
# `peers` builds SZ3 and ZFP, so the benchmark is compiled and exercised too.
cargo clippy --workspace --all-targets --features peers --quiet -- -D warnings
# The library without ADIOS2, MPI or candle, as the fuzz crate and library-only users build it,
# and with ADIOS2 but no command line: code used only by a feature must not warn there, and a
# target that needs a feature must say so in Cargo.toml.
cargo clippy --all-targets --no-default-features --quiet -- -D warnings
cargo clippy --all-targets --no-default-features --features adios --quiet -- -D warnings
# The MPI tests run the examples as programs; --all-targets alone builds them as test harnesses.
cargo build --workspace --examples
cargo test --workspace --all-targets --features peers
# The fuzz targets (their own crate): formatted, lint-clean, and each replays its seeds (every
# block kind, stream version and compression setting) once, so an API change cannot leave them
# broken unnoticed. A stable build has no coverage, so this does not fuzz (`cargo fuzz run`,
# README); -runs=0 only runs the inputs given, and any panic or timeout fails.
(cd fuzz && cargo fmt -- --check && cargo clippy --locked --release --bins --quiet -- -D warnings &&
    cargo build --locked --release --bins --quiet)
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
fuzz/target/release/seeds "$seeds/decode" "$seeds/blocks" "$seeds/roundtrip"
cp tests/golden/*.rsd "$seeds/decode/"
for target in decode blocks roundtrip; do
    fuzz/target/release/$target -runs=0 -timeout=120 -artifact_prefix="$seeds/" "$seeds/$target"
done
