#!/usr/bin/env bash
# The step writer's cost, by rank placement: Gray-Scott with the comparison of the main job
# (no output, uncompressed, residuum synchronous and async; medians of REPEAT interleaved runs)
# for 1 rank with 2 cores, 1 rank with 1 core and 2 ranks with 1 core each, at L = 96 and 128,
# output every 10 and 20 steps. Prints a Markdown table of wall time over no output (for async
# with its 95 % bootstrap interval) and which writer the default picks there. Needs 2 cores;
# takes about 20 minutes with the defaults.
# STEPS (200), REPEAT (5), SIZES ("96 128"), GAPS ("10 20") and PLACES (placements as named in
# the table, separated by ";") change the grid.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prepare.sh
cargo build --release --example gray_scott
out=target/writer-bench
mkdir -p "$out"
steps=${STEPS:-200}
declare -A places=(
  ["1 rank, 2 cores"]="-n 1 --map-by slot:PE=2 --bind-to core"
  ["1 rank, 1 core"]="-n 1 --bind-to core"
  ["2 ranks, 1 core each"]="-n 2 --bind-to core"
)
echo "| placement | L | output every | no output s | uncompressed | residuum sync | residuum async | async, paired | async: computing / handing over / close | default writer |"
echo "|---|---|---|---|---|---|---|---|---|---|"
# Stops the table with the reason and the log's end, rather than a row of blanks or nothing.
fail() {
  echo "writer_bench.sh: $2; the end of $1:" >&2
  tail -n 20 "$1" >&2
  exit 1
}
IFS=';' read -ra chosen <<< "${PLACES:-1 rank, 2 cores;1 rank, 1 core;2 ranks, 1 core each}"
for place in "${chosen[@]}"; do
  [[ -n ${places[$place]+set} ]] || { echo "writer_bench.sh: unknown placement '$place'" >&2; exit 1; }
  for l in ${SIZES:-96 128}; do
    for gap in ${GAPS:-10 20}; do
      log="$out/$(echo "$place" | tr -c 'a-z0-9' '_')-L$l-g$gap.log"
      # shellcheck disable=SC2086
      mpirun ${places[$place]} target/release/examples/gray_scott --output compare \
        --repeat "${REPEAT:-5}" --no-verify --L "$l" --steps "$steps" --plotgap "$gap" \
        --out "$out/gs.bp" > "$log" 2>&1 || fail "$log" "the run ($place, L $l, every $gap) failed"
      # A row is only as good as its lines: a log without one of them stops the table.
      for label in 'no output' 'uncompressed BP5' 'residuum BP5, synchronous' 'residuum BP5, async writer'; do
        grep -qE "^  $label .*overhead vs" "$log" || fail "$log" "no '$label' line"
      done
      grep -qE "^  residuum BP5, async writer +computing" "$log" || fail "$log" "no async cost line"
      pick() { grep -E "^  $1 .*overhead vs" "$log" | sed -E 's/.*overhead vs no output *([-+0-9.]+%).*/\1/'; }
      none=$(grep -E "^  no output .*overhead vs" "$log" | awk '{print $3}')
      # The median of each round's async run over its no-output run, with the lowest and highest.
      paired() { grep -E "^  $1 .*overhead vs" "$log" | sed -E 's/.* paired *([-+0-9.]+%) \(([^)]*)\).*/\1 (\2)/'; }
      # Where the async writer's cost goes (medians over runs, % of no output's median).
      parts() { grep -E "^  $1 +computing" "$log" | sed -E 's/.*computing *([-+0-9.]+%).*handing over *([0-9.]+%) *close *([0-9.]+%).*/\1 \/ \2 \/ \3/'; }
      # The async overhead's 95 % bootstrap interval (examples/common/compare.rs).
      interval() { grep -E "^  $1 .*overhead vs" "$log" | sed -E 's/.*overhead vs no output *[-+0-9.]+% \[([^]]*)\].*/\1/'; }
      spread() { grep -E "^  $1 .*overhead vs" "$log" | sed -E 's/.*\(([0-9.]+\.\.[0-9.]+)\).*/\1/'; }
      default=$(grep -q "default writer here is the async" "$log" && echo async || echo sync)
      echo "| $place | $l | $gap | $none ($(spread 'no output')) | $(pick 'uncompressed BP5') | $(pick 'residuum BP5, synchronous') ($(spread 'residuum BP5, synchronous')) | $(pick 'residuum BP5, async writer') [$(interval 'residuum BP5, async writer')] ($(spread 'residuum BP5, async writer')) | $(paired 'residuum BP5, async writer') | $(parts 'residuum BP5, async writer') | $default |"
    done
  done
done
