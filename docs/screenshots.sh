#!/usr/bin/env bash
# Retakes docs/tensorboard_*.png from a run folder with TensorBoard and headless Chromium
# (Debian: apt-get install chromium). Usage: bash docs/screenshots.sh lightning_logs
set -eu
logdir=${1:-lightning_logs}
out=$(cd "$(dirname "$0")" && pwd)
tensorboard --logdir "$logdir" --port 6006 > /dev/null 2>&1 &
board=$!
trap 'kill $board' EXIT
sleep 8
shoot() {  # shoot NAME URL_FRAGMENT
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
        --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)" --hide-scrollbars \
        --window-size=1400,1000 --virtual-time-budget=20000 --screenshot="$out/tensorboard_$1.png" "http://localhost:6006/#$2"
}
shoot scalars 'scalars&tagFilter=eval%2F(return_mean|normalized_score)|loss'
shoot images images
shoot hparams hparams
