#!/usr/bin/env bash
# The main job: the 3D Gray-Scott simulation writes U and V through the residuum ADIOS2 operator
# (NRMSE 1e-5 of the global range) into BP5 and compares, over interleaved repeated runs, no
# output, uncompressed output, and residuum with the synchronous and the async step writer:
# medians of the wall time with their spread, per step compute and output time, bytes and
# achieved NRMSE, and a PNG of per-step times (target/main/step_times.png). One more
# configuration writes synchronously with temporal prediction (temporal=$TEMPORAL, default 10;
# 0: none), and the report compares its bytes with those of spatial coding.
# Ranks are placed for the machine it runs on: each rank gets two cores where there are enough
# (one simulates, the other compresses: the default, async writer hides the compression),
# otherwise one core each (the default writer then writes synchronously), and the job says so.
# The example reader then reads the compressed file back on 2 ranks, and bpls lists it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prepare.sh
cargo build --release --example gray_scott --example gray_scott_reader
out=target/main
mkdir -p "$out"
rm -rf "$out/gs.bp"
cores=$(nproc)
ranks=${RANKS:-$((cores >= 2 ? cores / 2 : 1))}
if [ "$cores" -ge $((2 * ranks)) ]; then
  place=(--map-by slot:PE=2 --bind-to core)
  echo "main job: $ranks rank(s) of 2 cores each on this $cores-core machine (mpirun --map-by slot:PE=2):"
  echo "  each rank simulates on one core while its writer compresses on the other"
else
  place=(--oversubscribe)
  echo "main job: $ranks rank(s) on $cores core(s): no core to spare per rank, so the default"
  echo "  writer writes synchronously (the async row shows what forcing it would cost)"
fi
# Extra arguments go to the simulation (e.g. --L 128 --steps 1000 --plotgap 100); without any,
# 96^3 for 400 steps, output every 20 (long enough that opening and closing files do not
# dominate the comparison).
[ $# -gt 0 ] || set -- --L 96 --steps 400 --plotgap 20
mpirun -n "$ranks" "${place[@]}" target/release/examples/gray_scott \
  --output compare --repeat "${REPEAT:-5}" --plot "$out/step_times.png" --out "$out/gs.bp" \
  --temporal "${TEMPORAL:-10}" "$@"
mpirun -n 2 --oversubscribe target/release/examples/gray_scott_reader "$out/gs.bp"
echo "bpls -l $out/gs.bp:"
"$ADIOS2_DIR/bin/bpls" -l "$out/gs.bp"
