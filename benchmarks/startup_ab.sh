#!/usr/bin/env bash
# Two installs of `bco` timed on the default job, interleaved so that both see the same machine:
# whole-process wall time and the part outside the pipeline (process wall - the summary's
# wall_seconds, i.e. imports, argument parsing and exit). Used for the 2026-11-27 start-up/exit change:
#   git worktree add --detach /tmp/old 9d962b4 && python3 -m venv /tmp/venv-old && /tmp/venv-old/bin/pip install torch==2.13.0 -e /tmp/old
#   bash benchmarks/startup_ab.sh /tmp/venv-old/bin/bco .venv/bin/bco 5 2
set -euo pipefail
old=$1 new=$2 repeats=${3:-5} seed=${4:-2}
work=$(mktemp -d)
for r in $(seq "$repeats"); do
  for name in old new; do
    bco=$old; [ "$name" = new ] && bco=$new
    start=$(date +%s.%N)
    "$bco" run --seed_everything "$seed" --summary_path "$work/$name-$r.json" --log_root "$work/logs-$name" > /dev/null 2>&1
    end=$(date +%s.%N)
    python3 -c "import json; w=json.load(open('$work/$name-$r.json'))['wall_seconds']; t=$end-$start; print(f'$name repeat $r: {t:.1f} s, outside the pipeline {t-w:.1f} s')"
  done
done
rm -rf "$work"
