#!/usr/bin/env bash
# 2D views of fields: for every NAME_AxBx…xC.f32 in DIR, a link NAME_RxC.f32 in OUT (R the
# product of all but the last extent: its planes stacked along the rows), the same bytes read
# as one 2D array. The NGLR benchmark on 2D arrays trains and measures on them:
#   scripts/as_2d.sh ../shared/data d2 && residuum train --nglr --each-collection --data d2 --out nglr-2d
# Fails (status 1, with the reason) on a DIR without .f32 fields or a name without extents,
# rather than leaving a link a later command would misread.
set -euo pipefail
shopt -s nullglob
dir=${1:?usage: as_2d.sh DIR OUT}
out=${2:?usage: as_2d.sh DIR OUT}
fields=("$dir"/*.f32)
if ((${#fields[@]} == 0)); then
  echo "as_2d.sh: no .f32 fields in $dir" >&2
  exit 1
fi
mkdir -p "$out"
for f in "${fields[@]}"; do
  base=$(basename "$f" .f32)
  dims=${base##*_}
  if [[ $base != *_* || ! $dims =~ ^[1-9][0-9]*(x[1-9][0-9]*)+$ ]]; then
    echo "as_2d.sh: $f: name is not NAME_AxBx...xC.f32 (at least two extents)" >&2
    exit 1
  fi
  IFS=x read -ra d <<< "$dims"
  rows=1
  for e in "${d[@]:0:${#d[@]}-1}"; do rows=$((rows * e)); done
  ln -sf "$(realpath "$f")" "$out/${base%_*}_${rows}x${d[-1]}.f32"
done
echo "as_2d.sh: ${#fields[@]} fields linked in $out"
