#!/usr/bin/env bash
# One-shot CUDA check on a GPU machine (not part of CI): the default job and a continuous-action job
# on one GPU, the same jobs on that machine's CPU for comparison, export of a GPU-trained policy
# evaluated on the CPU in a fresh process, and the training-throughput section on CUDA.
# Usage: OUT=results_dir bash benchmarks/cuda_check.sh   (python3 must see torch with CUDA,
# pytorch_lightning, gymnasium[mujoco] and jsonargparse; the repo root goes on PYTHONPATH)
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-cuda_check}; mkdir -p "$OUT"
bco() { python3 -m bco_lightning.cli "$@"; }
nvidia-smi -L
python3 -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, 'lightning', pl.__version__, 'cuda', torch.cuda.is_available())"
timed() { local name=$1; shift; local start=$(date +%s.%N); "$@" > "$OUT/$name.log" 2>&1; local rc=$?; echo "$name rc=$rc wall=$(python3 -c "print(round($(date +%s.%N) - $start, 1))") s"; tail -2 "$OUT/$name.log"; }
timed cartpole_gpu bco run --seed_everything 0 --trainer.accelerator gpu --summary_path "$OUT/cartpole_gpu.json"
timed cartpole_cpu bco run --seed_everything 0 --trainer.accelerator cpu --summary_path "$OUT/cartpole_cpu.json"
# mixed precision goes through Lightning's gradient scaler inside the modules' manual optimisation
timed cartpole_gpu_16mixed bco run --seed_everything 0 --trainer.accelerator gpu --trainer.precision 16-mixed --summary_path "$OUT/cartpole_gpu_16mixed.json"
timed pendulum_gpu bco run --config pendulum.yaml --seed_everything 0 --trainer.accelerator gpu --summary_path "$OUT/pendulum_gpu.json"
checkpoint=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['policy_checkpoint'])" "$OUT/pendulum_gpu.json")
timed export bco export --checkpoint "$checkpoint" --output "$OUT/pendulum_policy.pt"
timed evaluate env CUDA_VISIBLE_DEVICES= python3 -m bco_lightning.cli evaluate --policy "$OUT/pendulum_policy.pt" --data.env_id Pendulum-v1 --episodes 10 --seed 0
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
for name in ("cartpole_gpu", "cartpole_cpu", "cartpole_gpu_16mixed", "pendulum_gpu"):
    try:
        s = json.load(open(f"{out}/{name}.json"))
        print(name, "score", round(s["normalized_score"], 3), "return", round(s["eval_return_mean"], 1), "wall", round(s["wall_seconds"], 1))
    except Exception as error:
        print(name, "no summary:", error)
PY
if [ -z "${SKIP_THROUGHPUT:-}" ]; then  # SKIP_THROUGHPUT=1: the jobs only
    timed throughput_cuda python3 benchmarks/throughput.py --device cuda --sections training ${THROUGHPUT_ARGS:-} --output "$OUT/throughput_cuda.md"
    cat "$OUT/throughput_cuda.md"
fi
