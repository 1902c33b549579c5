#!/usr/bin/env bash
# The CarRacing benchmark cells on one lent GPU machine (16 cores, one GPU), all at once: BCO(0) and BC
# on the true actions, continuous and discrete, seeds 0-2, each through `bco run` with the shipped
# config; then a bf16-mixed pixel run and the pixel pipeline's --device cuda figures if time is left.
# Not part of CI. Every cell is stopped at DEADLINE seconds so that what finished comes back.
#
# Usage: OUT=results_dir bash benchmarks/carracing_gpu.sh
#   (python3 must see torch with CUDA, pytorch_lightning, gymnasium[box2d], pygame and jsonargparse;
#   the repo root goes on PYTHONPATH). ACCEL=cpu EXTRA="..." runs the same cells tiny, to try the script.
#   SEEDS, CONFIGS and METHODS (bco0, bc) pick fewer cells: a BCO(0) cell's 16 CarRacing workers take
#   a 16-core machine's CPU during collection, so 13 runs at once finished none (carracing_gpu.md).
#   BF16_CHECK=0 skips the bf16-mixed run; PIPELINE=0 skips the pixel pipeline figures (for several
#   copies of this script side by side, each with its own OUT).
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" SDL_VIDEODRIVER=dummy OMP_NUM_THREADS=1
OUT=${OUT:-carracing_gpu}; ACCEL=${ACCEL:-gpu}; DEADLINE=${DEADLINE:-520}; EXTRA=${EXTRA:-}; SEEDS=${SEEDS:-0 1 2}
CONFIGS=${CONFIGS:-carracing-pixels carracing-discrete-pixels}; METHODS=${METHODS:-bco0 bc}; BF16_CHECK=${BF16_CHECK:-1}; PIPELINE=${PIPELINE:-1}
runs="$OUT/runs"; mkdir -p "$runs"
start=$(date +%s)
left() { echo $((DEADLINE - ($(date +%s) - start))); }
nvidia-smi -L 2>/dev/null; nproc --all
python3 -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, 'lightning', pl.__version__, 'cuda', torch.cuda.is_available())"

cell() {  # cell NAME ARGS...: one `bco run` in the background, its summary at $runs/NAME.json
    local name=$1; shift
    timeout "$(left)" python3 -m bco_lightning.cli run "$@" --torch_threads 1 --data.async_envs true \
        --trainer.accelerator "$ACCEL" --log_root "$runs/$name" --summary_path "$runs/$name.json" --quiet true $EXTRA \
        > "$runs/$name.log" 2>&1 &
}
for seed in $SEEDS; do
    for config in $CONFIGS; do
        case " $METHODS " in *" bco0 "*)
            cell "$config-bco0-s$seed" --config "$config.yaml" --seed_everything "$seed" --iterations 0 --idm_max_epochs 50;; esac
        case " $METHODS " in *" bc "*)
            cell "$config-bc-s$seed" --config "$config.yaml" --seed_everything "$seed" --iterations 0 --labels true_actions;; esac
    done
done
# bf16-mixed must train a pixel run on a GPU: a small discrete CarRacing BCO(0)
[ "$BF16_CHECK" = 0 ] || cell bf16-check --config carracing-discrete-pixels.yaml --iterations 0 --data.pre_demo_steps 5000 --idm_max_epochs 5 \
    --policy_max_epochs 5 --eval_episodes 2 --trainer.precision bf16-mixed
wait
echo "cells done after $(($(date +%s) - start)) s"

if [ "$ACCEL" = gpu ] && [ "$PIPELINE" != 0 ] && [ "$(left)" -gt 60 ]; then
    for precision in 32-true bf16-mixed; do
        timeout "$(left)" python3 benchmarks/pixel_pipeline.py --no-memory --repeats 2 --device cuda --precision "$precision" \
            --output "$OUT/pixel_pipeline_cuda_$precision.md" > "$OUT/pixel_pipeline_$precision.log" 2>&1
        echo "pixel_pipeline $precision rc=$?"
    done
fi

python3 - "$runs" <<'PY'
import json, pathlib, sys
runs = pathlib.Path(sys.argv[1])
for log in sorted(runs.glob("*.log")):
    summary = log.with_suffix(".json")
    if summary.exists():
        s = json.loads(summary.read_text())
        label = "-" if s["idm_label_accuracy"] is None else f"{s['idm_label_accuracy']:.3f}"
        print(f"{log.stem:36s} score {s['normalized_score']:.3f} return {s['eval_return_mean']:7.1f} +- {s['eval_return_std']:5.1f} "
              f"labels {label} steps {s['env_steps']} wall {s['wall_seconds']:.0f} s")
    else:
        tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        print(f"{log.stem:36s} no summary: {tail[0][:150]}")
PY
# what comes back: summaries, logs and the run folders' small files (no frames, no weights)
tar -czf "$OUT/carracing_gpu.tar.gz" -C "$OUT" --exclude='*.npz' --exclude='*.npy' --exclude='*.pt' --exclude='*.ckpt' runs
rm -rf "$runs"
ls -la "$OUT"
