"""Training throughput of the pixel networks (`bco_lightning/vision.py`), measured in one process.

    python benchmarks/pixel_throughput.py                       # full CPU run, writes benchmarks/pixel_throughput.md
    python benchmarks/pixel_throughput.py --quick --output X.md # smoke mode (a few seconds): tiny batches, 1 thread
    python benchmarks/pixel_throughput.py --device cpu --precision bf16 --quick   # the bf16 autocast code path on a CPU
    python benchmarks/pixel_throughput.py --device cuda --precision bf16 --threads 1 --output benchmarks/pixel_throughput_cuda.md

Each row: samples/s of forward + backward + AdamW step (cross-entropy on 6 discrete actions) for
the policy (one stack of `--stack` frames) and the IDM (two stacks: "concat" and "shared"
fusion), with the NatureCNN and IMPALA encoders, at each batch size and torch thread count. The
batches are uint8 frames, as a dataset would hold them: the uint8 -> float conversion (and, on
CUDA, the host-to-device copy) is inside each timed step. A row's figure is the batch size over
the median of its steps' times (after warm-up steps), since this machine's speed drifts.

Share of peak: each model's training FLOPs per sample are counted analytically from its layers'
shapes (`forward_flops`: 2 x multiply-adds of every Conv2d and Linear on one sample; training
counts 3x forward, the usual convention for backward = 2x forward); times samples/s, that is
its achieved GFLOP/s, shown as a share of the device's measured conv peak: one `conv2d` forward
(64 -> 64 channels, 3x3, 32x32, padded) at batch 256 and at batch 16, timed, FLOPs counted the
same way, at the same thread count and precision; the better batch is the peak (on this CPU the
batch of 256 is partly memory-bound).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bco_lightning.atomic import atomic_write
from bco_lightning.vision import ENCODERS, PixelInverseDynamicsNet, PixelPolicyNet

ROOT = Path(__file__).resolve().parents[1]
ACTIONS = 6  # a typical Atari action set's size
MODELS = (("policy", None), ("idm", "concat"), ("idm", "shared"))
# The peak conv at 256 images (64 MiB of input and as much output) and at 16 (4 MiB, cache-sized):
# on this machine the large batch is partly memory-bound (about 105 against 195 GFLOP/s on one
# thread), so the peak is the better of the two.
PEAK_BATCHES = (256, 16)


def forward_flops(module: nn.Module, *inputs: Tensor) -> int:
    """FLOPs of one forward call on `inputs`, counted from the layer shapes: 2 x multiply-adds of
    every Conv2d (output elements x in_channels / groups x kernel area) and Linear (output rows x
    in_features x out_features). Element-wise ops, pooling and the bias adds are left out: they
    are a few per output element against hundreds of multiply-adds."""
    total = 0

    def count(layer: nn.Module, _args: Any, output: Tensor) -> None:
        nonlocal total
        if isinstance(layer, nn.Conv2d):
            kernel = layer.kernel_size[0] * layer.kernel_size[1]
            total += 2 * output.numel() * (layer.in_channels // layer.groups) * kernel
        elif isinstance(layer, nn.Linear):
            total += 2 * output.numel() * layer.in_features

    handles = [layer.register_forward_hook(count) for layer in module.modules() if isinstance(layer, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return total


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def autocast(device: str, precision: str) -> torch.autocast:
    return torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16")


def conv_peak_flops(device: str, precision: str, batch: int, repeats: int) -> float:
    """FLOP/s of the best of `repeats` timed calls of one large conv2d forward (the practical conv peak)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 64, 32, 32, generator=generator).to(device)
    weight = torch.randn(64, 64, 3, 3, generator=generator).to(device)
    flops = 2 * batch * 64 * 32 * 32 * 64 * 9
    best = float("inf")
    with torch.no_grad(), autocast(device, precision):
        F.conv2d(x, weight, padding=1)  # warm-up: algorithm choice, allocations
        synchronize(device)
        for _ in range(repeats):
            start = time.perf_counter()
            F.conv2d(x, weight, padding=1)
            synchronize(device)
            best = min(best, time.perf_counter() - start)
    return flops / best


def make_model(stage: str, fusion: str | None, encoder: str, stack: int, image_size: int) -> nn.Module:
    torch.manual_seed(0)
    if stage == "policy":
        return PixelPolicyNet(stack, image_size, 1, ACTIONS, encoder=encoder)
    return PixelInverseDynamicsNet(stack, image_size, 1, ACTIONS, encoder=encoder, fusion=fusion or "concat")


def frame_batches(stage: str, batch: int, stack: int, image_size: int, count: int, pin: bool) -> list[tuple[list[Tensor], Tensor]]:
    """`count` batches of random uint8 grayscale stacks (one per input) and action labels."""
    generator = torch.Generator().manual_seed(1)
    inputs = 1 if stage == "policy" else 2
    batches = []
    for _ in range(count):
        frames = [torch.randint(0, 256, (batch, stack, image_size, image_size), generator=generator, dtype=torch.uint8) for _ in range(inputs)]
        labels = torch.randint(0, ACTIONS, (batch,), generator=generator)
        if pin:
            frames, labels = [f.pin_memory() for f in frames], labels.pin_memory()
        batches.append((frames, labels))
    return batches


def step_times(
    model: nn.Module, batches: list[tuple[list[Tensor], Tensor]], device: str, precision: str, warmup: int, min_steps: int, min_seconds: float
) -> tuple[list[float], float]:
    """Seconds of each timed training step (after `warmup` untimed ones): at least `min_steps`, and
    more until `min_seconds` have passed; and the process's CPU seconds over those steps' wall
    seconds (about the thread count on a quiet CPU machine, less where other work takes cores)."""
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times: list[float] = []
    started, step, cpu_started = time.perf_counter(), 0, time.process_time()
    while step < warmup or len(times) < min_steps or time.perf_counter() - started < min_seconds:
        frames, labels = batches[step % len(batches)]
        start = time.perf_counter()
        frames = [f.to(device, non_blocking=True) for f in frames]
        labels = labels.to(device, non_blocking=True)
        with autocast(device, precision):
            loss = F.cross_entropy(model(*frames), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        synchronize(device)
        if step >= warmup:
            times.append(time.perf_counter() - start)
        else:
            started, cpu_started = time.perf_counter(), time.process_time()
        step += 1
    return times, (time.process_time() - cpu_started) / (time.perf_counter() - started)


def measure(args: argparse.Namespace) -> tuple[dict[int, float], list[dict[str, Any]]]:
    peaks: dict[int, dict[int, float]] = {}
    rows: list[dict[str, Any]] = []
    peak_batches, peak_repeats = ((16,), 2) if args.quick else (PEAK_BATCHES, 3)  # --quick: the small batch only

    def conv_peaks() -> dict[int, float]:
        return {batch: conv_peak_flops(args.device, args.precision, batch, peak_repeats) for batch in peak_batches}

    for threads in args.threads:
        torch.set_num_threads(threads)
        before = conv_peaks()
        print(f"{threads} thread(s): conv peak " + ", ".join(f"batch {b}: {f / 1e9:,.1f}" for b, f in before.items()) + " GFLOP/s", flush=True)
        for batch in args.batch_sizes:
            for stage, fusion in MODELS:
                for encoder in ENCODERS:
                    model = make_model(stage, fusion, encoder, args.stack, args.image_size)
                    batches = frame_batches(stage, batch, args.stack, args.image_size, 2 if args.quick else 4, pin=args.device == "cuda")
                    one = [frames[:1] for frames in batches[0][0]]
                    flops = 3 * forward_flops(model, *one)
                    times, cores = step_times(model, batches, args.device, args.precision, args.warmup, args.min_steps, args.min_seconds)
                    samples = batch / statistics.median(times)
                    rows.append({
                        "model": "IDM" if stage == "idm" else "policy", "fusion": fusion or "-", "encoder": encoder,
                        "batch": batch, "threads": threads, "samples": samples, "steps": len(times),
                        "spread": (batch / max(times), batch / min(times)), "train_flops": flops, "cores": cores,
                        "params": sum(p.numel() for p in model.parameters()),
                    })
                    print(f"{threads} thread(s) batch {batch} {stage} {fusion or ''} {encoder}: {samples:,.0f} samples/s over {len(times)} steps, {cores:.2f} cores busy", flush=True)
        after = conv_peaks()
        peaks[threads] = {batch: max(before[batch], after[batch]) for batch in peak_batches}
    for row in rows:
        row["gflops"] = row["samples"] * row["train_flops"] / 1e9
        row["share"] = row["samples"] * row["train_flops"] / max(peaks[row["threads"]].values())
    return peaks, rows


def machine(device: str) -> str:
    gpu = f", GPU {torch.cuda.get_device_name()}" if device == "cuda" else ", no GPU used"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores{gpu}, torch {torch.__version__}"


def load() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def report(args: argparse.Namespace, peaks: dict[int, dict[int, float]], rows: list[dict[str, Any]], loads: tuple[str, str], started: str, seconds: float) -> str:
    command = " ".join(["python benchmarks/pixel_throughput.py", *sys.argv[1:]])
    lines = [
        "# Pixel networks: training throughput",
        "",
        f"`{command}` on {machine(args.device)}, {args.precision}, started {started}, took {seconds:.0f} s.",
        f"Load average (1, 5, 15 min) before: {loads[0]}; after: {loads[1]}.",
        f"Frames: {args.image_size}x{args.image_size} grayscale uint8, stack {args.stack} (the IDM takes two stacks); "
        f"{ACTIONS} discrete actions; AdamW; each figure is the batch over the median step time of at least "
        f"{args.min_steps} steps and {args.min_seconds:g} s, after {args.warmup} warm-up step(s).",
        "",
        "## Conv peak",
        "",
        "One `conv2d` forward, 64 -> 64 channels, 3x3, 32x32, padded, at each batch below (only 16 in `--quick`): the best of"
        " the timed calls (3, or 2 in `--quick`) before and after each thread count's rows. The peak is the better batch; shares below are of it.",
        "",
    ]
    batches = list(next(iter(peaks.values())))
    lines += [
        "| torch threads | " + " | ".join(f"batch {b} GFLOP/s" for b in batches) + " | peak GFLOP/s |",
        "|---:|" + "---:|" * (len(batches) + 1),
    ]
    for threads, by_batch in peaks.items():
        lines.append(f"| {threads} | " + " | ".join(f"{by_batch[b] / 1e9:,.1f}" for b in batches) + f" | {max(by_batch.values()) / 1e9:,.1f} |")
    lines += [
        "",
        "## Training steps",
        "",
        "Training FLOPs per sample: 3 x the forward's (Conv2d and Linear multiply-adds x 2, from the layer shapes).",
        "Range: samples/s of the slowest and the fastest timed step. Cores busy: this process's CPU seconds over the",
        "timed steps' wall seconds, about the thread count when nothing else wants the cores (a check on contention).",
        "",
        "| model | fusion | encoder | parameters | training MFLOP / sample | batch | threads | samples/s | range | GFLOP/s | share of conv peak | cores busy |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['fusion']} | {r['encoder']} | {r['params']:,} | {r['train_flops'] / 1e6:,.1f} | {r['batch']} | "
            f"{r['threads']} | {r['samples']:,.0f} | {r['spread'][0]:,.0f} to {r['spread'][1]:,.0f} | {r['gflops']:,.1f} | {r['share']:.0%} | {r['cores']:.2f} |"
        )
    lines += ["", "## NatureCNN / IMPALA, samples/s", "", "| model | fusion | batch | threads | NatureCNN / IMPALA |", "|---|---|---:|---:|---:|"]
    index = {(r["model"], r["fusion"], r["batch"], r["threads"], r["encoder"]): r["samples"] for r in rows}
    for r in rows:
        if r["encoder"] == "nature":
            impala = index.get((r["model"], r["fusion"], r["batch"], r["threads"], "impala"))
            if impala:
                lines.append(f"| {r['model']} | {r['fusion']} | {r['batch']} | {r['threads']} | {r['samples'] / impala:.1f} |")
    return "\n".join(lines) + "\n"


def positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke mode, a few seconds: batch 8, 1 thread, 1 timed step per row; writes only --output")
    parser.add_argument("--output", help="where the report goes (default benchmarks/pixel_throughput.md, none with --quick)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: torch.autocast to bfloat16 on the device")
    parser.add_argument("--threads", type=positive(int), nargs="+", help="torch thread counts (default 1 2; --quick 1)")
    parser.add_argument("--batch-sizes", type=positive(int), nargs="+", help="default 256 64; --quick 8")
    parser.add_argument("--image-size", type=positive(int), default=64)
    parser.add_argument("--stack", type=positive(int), default=2)
    parser.add_argument("--min-steps", type=positive(int), help="timed steps per row at least (default 3; --quick 1)")
    parser.add_argument("--min-seconds", type=float, help="timed seconds per row at least (default 2; --quick 0)")
    parser.add_argument("--warmup", type=int, help="untimed steps per row first (default 1)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    args.threads = args.threads or ([1] if args.quick else [1, 2])
    args.batch_sizes = args.batch_sizes or ([8] if args.quick else [256, 64])
    args.min_steps = args.min_steps or (1 if args.quick else 3)
    args.min_seconds = args.min_seconds if args.min_seconds is not None else (0.0 if args.quick else 2.0)
    args.warmup = args.warmup if args.warmup is not None else 1
    output = args.output or (None if args.quick else str(ROOT / "benchmarks" / "pixel_throughput.md"))
    started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    load_before, start = load(), time.perf_counter()
    peaks, rows = measure(args)
    text = report(args, peaks, rows, (load_before, load()), started, time.perf_counter() - start)
    if output:
        atomic_write(Path(output), lambda handle: handle.write(text.encode()))
    print(text)


if __name__ == "__main__":
    main()
