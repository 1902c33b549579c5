"""The refactored loop computes what the loop before it computed, to the last bit.

`tests/reference/*.json` are the summaries of two runs made by the commit before `BCORun` was split
into its collaborators (6cbab0c, torch 2.13.0 CPU build): the default job and a 3-iteration
Pendulum run. Everything but wall times and paths must match exactly. MKL picks its matrix kernels
by CPU, and an AVX-512 machine with AMX ended the default job's policy stage at epoch 66 where the
machine that first wrote these stopped at 138, from the same code; so both the references and the
runs here use MKL's CPU-independent kernels (`MKL_CBWR=COMPATIBLE`) and torch's AVX2 ones
(`CPU_PINNED`). Regenerate a reference only for a change meant to alter results, with that
environment and the commands in `REFERENCE_RUNS`, after checking that what it must not alter did
not, and say so here.

One such change: the IDM's validation split now keeps each collection's transitions on their side
as BCO(alpha)'s interaction grows (before, a fresh permutation of the grown table put up to 82% of
the next validation set among the transitions the warm-started IDM had trained on). The Pendulum
file was regenerated with it on 2026-12-06: its iteration 0 is still 6cbab0c's to the bit (checked
below), its iterations 1 to 3 changed. The default job stops at iteration 0 and did not change.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REFERENCE_DIR = Path(__file__).parent / "reference"
REFERENCE_RUNS = {
    "default_job.json": [],
    "pendulum_3_iterations.json": ["--config", "pendulum.yaml", "--iterations", "3"],
}
# Kernels chosen by instruction set, not by the CPU the test happens to run on.
CPU_PINNED = {"OMP_NUM_THREADS": "1", "MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "avx2"}
# Wall times differ from run to run and paths from folder to folder; nothing else may.
VOLATILE_KEYS = {"wall_seconds", "wall_seconds_all_sittings", "log_dir", "idm_checkpoint", "policy_checkpoint"}


def without_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: without_volatile(item) for key, item in value.items() if key not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [without_volatile(item) for item in value]
    return value


@pytest.mark.slow
@pytest.mark.parametrize("reference", sorted(REFERENCE_RUNS))
def test_summary_is_bit_identical_to_the_reference(reference: str, tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    command = [sys.executable, "-m", "bco_lightning.cli", "run", *REFERENCE_RUNS[reference], "--summary_path", str(summary_path), "--quiet", "true"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ, **CPU_PINNED})
    assert result.returncode == 0, result.stderr[-2000:]
    expected = without_volatile(json.loads((REFERENCE_DIR / reference).read_text()))
    actual = without_volatile(json.loads(summary_path.read_text()))
    differing = [key for key in expected if expected[key] != actual.get(key)]
    assert not differing and expected == actual, f"{reference}: keys that differ: {differing}"


def test_the_comparison_notices_a_changed_bit() -> None:
    """A summary that differs in one history value, but not in wall times or paths, is caught."""
    reference = json.loads((REFERENCE_DIR / "default_job.json").read_text())
    changed = json.loads(json.dumps(reference))
    changed["wall_seconds"] += 1.0
    changed["log_dir"] = "/elsewhere"
    assert without_volatile(changed) == without_volatile(reference)
    changed["history"][0]["val/loss"] = math.nextafter(reference["history"][0]["val/loss"], math.inf)
    assert without_volatile(changed) != without_volatile(reference)


def test_the_pendulum_reference_keeps_the_original_iteration_0() -> None:
    """BCO(0) did not change when the reference was regenerated: 6cbab0c's validation losses."""
    history = json.loads((REFERENCE_DIR / "pendulum_3_iterations.json").read_text())["history"]
    assert [(entry["stage"], entry["epochs"], entry["val/loss"]) for entry in history[:2]] == [
        ("idm", 38, 0.007746648974716663),
        ("policy", 132, 0.03780907019972801),
    ]
