#!/usr/bin/env bash
# The main job: a 4-rank MPI program writes a global 3D array through the residuum ADIOS2
# operator into a BP5 file, reads it back and checks it; then bpls lists the file.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prepare.sh
cargo build --release --example bp5_roundtrip
out=target/main
mkdir -p "$out"
rm -rf "$out/roundtrip.bp"
mpirun -n "${RANKS:-4}" --oversubscribe target/release/examples/bp5_roundtrip \
  --out "$out/roundtrip.bp" --shape "${SHAPE:-128x128x128}" --steps "${STEPS:-4}"
echo "bpls -l $out/roundtrip.bp:"
"$ADIOS2_DIR/bin/bpls" -l "$out/roundtrip.bp"
