#!/usr/bin/env bash
# The main job: the 3D Gray-Scott simulation on 4 MPI ranks writes U and V through the residuum
# ADIOS2 operator (NRMSE 1e-5 of the global range) into BP5, synchronously and with the async
# step writer, then again uncompressed and with no output, and
# reports per step compute time, output time, bytes and achieved NRMSE, and the comparison.
# The example reader then reads the compressed file back on 2 ranks, and bpls lists it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prepare.sh
cargo build --release --example gray_scott --example gray_scott_reader
out=target/main
mkdir -p "$out"
rm -rf "$out/gs.bp"
# Extra arguments go to the simulation (e.g. --L 128 --steps 1000 --plotgap 100).
mpirun -n "${RANKS:-4}" --oversubscribe target/release/examples/gray_scott \
  --output compare --out "$out/gs.bp" "$@"
mpirun -n 2 --oversubscribe target/release/examples/gray_scott_reader "$out/gs.bp"
echo "bpls -l $out/gs.bp:"
"$ADIOS2_DIR/bin/bpls" -l "$out/gs.bp"
