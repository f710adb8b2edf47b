#!/usr/bin/env bash
# The quickstart sweep side by side, one after the other: an earlier commit REV (checked out in a temporary git
# worktree, run with this venv) and the working tree. Prints each one's wall time, its trial counts and best trial,
# and the share of its trials' wall time spent outside their train loops (issue 16's goal: at most 15%).
#   bash benchmarks/compare_quickstart.sh REV
set -u
cd "$(dirname "$0")/.."
REPO=$PWD
REV=${1:?usage: compare_quickstart.sh REV}
BASE=$(mktemp -d)
OUT=$(mktemp -d)
git worktree add -q "$BASE/tree" "$REV"
trap 'git -C "$REPO" worktree remove --force "$BASE/tree"; rm -rf "$BASE"' EXIT
export PATH="$REPO/.venv/bin:$PATH"
for which in "$REV" working-tree; do
  SRC=$([ "$which" = "$REV" ] && echo "$BASE/tree" || echo "$REPO")
  start=$(date +%s)
  # PYTHONPATH first: the venv's editable install of gansweep would otherwise win (Ray's workers inherit it).
  (cd "$SRC" && PYTHONPATH="$SRC/platform" python -m gansweep.cli sweep search_spaces/quickstart.yaml \
      --output "$OUT/$which" > "$OUT/$which.log" 2>&1)
  echo "$which: exit $?, $(( $(date +%s) - start )) s"
  grep -a "sweep done\|\[gansweep\] best trial" "$OUT/$which.log"
  python - "$OUT/$which" <<'PY'
import sys
from gansweep.sweep.sweep_dir import read_trials
trials = read_trials(sys.argv[1])
wall = sum(t["wall_s"] for t in trials)
loop = sum(t["metrics"]["train_loop_s"] for t in trials)
print(f"trial walls {wall:.0f} s, in train loops {loop:.0f} s: {100 * (wall - loop) / wall:.0f}% outside the loops "
      f"({(wall - loop) / len(trials):.1f} s a trial; each finished trial's full evaluation included)")
PY
done
echo "logs and sweep directories: $OUT"
