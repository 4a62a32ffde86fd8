#!/usr/bin/env bash
# 2D views of fields: for every NAME_AxBx…xC.f32 in DIR, a link NAME_RxC.f32 in OUT (R the
# product of all but the last extent: its planes stacked along the rows), the same bytes read
# as one 2D array. The NGLR benchmark on 2D arrays trains and measures on them:
#   scripts/as_2d.sh ../shared/data d2 && residuum train --nglr --each-collection --data d2 --out nglr-2d
set -euo pipefail
dir=${1:?usage: as_2d.sh DIR OUT}
out=${2:?usage: as_2d.sh DIR OUT}
mkdir -p "$out"
for f in "$dir"/*.f32; do
  base=$(basename "$f" .f32)
  IFS=x read -ra d <<< "${base##*_}"
  rows=1
  for e in "${d[@]:0:${#d[@]}-1}"; do rows=$((rows * e)); done
  ln -sf "$(realpath "$f")" "$out/${base%_*}_${rows}x${d[-1]}.f32"
done
