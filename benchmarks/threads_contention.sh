#!/usr/bin/env bash
# The default job with `--torch_threads auto` against `--torch_threads 1` where the cores are not
# free: (a) beside a Python busy loop on another core, interleaved; (b) two default jobs at once
# (seeds 0 and 1), both auto, then both on 1 thread. Whole-process wall times; the idle-machine
# figures are in benchmarks/throughput.md (end to end). Used for the 2026-11-28 README figures:
#   bash benchmarks/threads_contention.sh .venv/bin/bco 2
set -euo pipefail
bco=${1:-bco} repeats=${2:-2}
work=$(mktemp -d)
timed() {  # label seed threads
  start=$(date +%s.%N)
  "$bco" run --seed_everything "$2" --torch_threads "$3" --quiet true --summary_path "$work/$1-$2-$3-$RANDOM.json" --log_root "$work/logs" > /dev/null 2>&1
  end=$(date +%s.%N)
  python3 -c "print(f'$1, seed $2, --torch_threads $3: {$end - $start:.1f} s')"
}
python3 -c "while True: pass" & busy=$!
trap 'kill $busy 2>/dev/null || true; rm -rf "$work"' EXIT
for r in $(seq "$repeats"); do
  for threads in auto 1; do timed "beside a busy core" 0 "$threads"; done
done
kill $busy
for threads in auto 1; do
  timed "two jobs at once" 0 "$threads" & timed "two jobs at once" 1 "$threads" & wait
done
