"""The benchmark scripts run (CI runs the throughput benchmark's short mode) and say what they measure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CLI_ENV

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_throughput_short_mode_writes_every_table(tmp_path: Path) -> None:
    output = tmp_path / "throughput.md"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "throughput.py"), "--short", "--output", str(output)],
        cwd=tmp_path, env=CLI_ENV, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    text = output.read_text()
    for section in ("## 1. Training", "## 2. Rollouts", "## 3. End to end", "## 4. Scaling"):
        assert section in text
    training_rows = [line for line in text.splitlines() if line.startswith("| 17-dim") or line.startswith("| 4-dim")]
    assert len(training_rows) == 8  # 2 problems x 2 stages x 2 batch sizes
    assert "| CartPole-v1 |" in text and "| HalfCheetah-v5 |" in text
    assert "| 1e+05 |" in text


@pytest.mark.slow
def test_plain_bco_reference_script_learns_cartpole(tmp_path: Path) -> None:
    """The plain-PyTorch script `bco run` is timed against is a working BCO, not a strawman."""
    summary = tmp_path / "plain.json"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "plain_bco.py"), "--summary_path", str(summary)],
        cwd=tmp_path, env=CLI_ENV, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    written = json.loads(summary.read_text())
    assert written["normalized_score"] >= 0.95
    assert written["env_steps"] == 36_000 + 3 * 3_600  # the same budget as the default `bco run`
