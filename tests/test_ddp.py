"""DDP on CPU (gloo): `bco run` with 2 processes learns like 1 process, with the same budgets."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers import CLI_ENV, SHIPPED_CARTPOLE, bco_console_script, run_bco, stderr_lines


def small_run(summary: Path, *extra: str) -> list[str]:
    # Epoch caps below the patience and no loss threshold: both runs train for exactly the caps.
    return [
        "run", "--data.expert_path", str(SHIPPED_CARTPOLE), "--data.pre_demo_steps", "6000",
        "--iterations", "1", "--alpha", "0.1", "--eval_episodes", "6",
        "--idm_max_epochs", "3", "--policy_max_epochs", "4", "--patience", "10", "--stopping_threshold", "0",
        "--trainer.accelerator", "cpu", "--summary_path", str(summary), *extra,
    ]


@pytest.mark.slow
def test_two_process_ddp_run_matches_one_process_budgets(tmp_path: Path) -> None:
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    for folder in ("single", "ddp"):
        (tmp_path / folder).mkdir()
    result = run_bco(small_run(one), cwd=tmp_path / "single")
    assert result.returncode == 0, result.stderr
    result = run_bco(small_run(two, "--trainer.strategy", "ddp", "--trainer.devices", "2"), cwd=tmp_path / "ddp", timeout=600)
    assert result.returncode == 0, result.stderr
    single, ddp = json.loads(one.read_text()), json.loads(two.read_text())

    assert ddp["world_size"] == 2 and single["world_size"] == 1
    assert ddp["normalized_score"] >= 0.95, ddp
    # both stop at the same iteration (--stop_score 1.0: every rank decides from the gathered selection episodes)
    assert ddp["iterations_run"] == single["iterations_run"]
    assert ddp["env_steps"] == single["env_steps"] == 6000 + 600 * single["iterations_run"]
    assert ddp["eval_episodes"] == single["eval_episodes"] == 6  # split across ranks, then gathered

    def epochs(summary: dict) -> list:
        return [(h["stage"], h.get("epochs")) for h in summary["history"]]

    # the IDM always trains; a policy stage may be skipped when its labels did not change
    assert [e for e in epochs(ddp) if e[0] == "idm"] == [e for e in epochs(single) if e[0] == "idm"]
    trained = [(a, b) for a, b in zip(epochs(ddp), epochs(single)) if a[1] is not None and b[1] is not None]
    assert trained and all(a == b for a, b in trained)

    # rank 0 alone wrote: one run folder, with its config and state
    run_dirs = list((tmp_path / "ddp" / "lightning_logs" / "CartPole-v1").iterdir())
    assert [d.name for d in run_dirs] == ["version_0"]
    assert (run_dirs[0] / "config.yaml").is_file() and (run_dirs[0] / "summary.json").is_file()
    assert result.stdout.count("normalized score") == 1


RANK_ONE_FAILS = '''
import os
import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv


class RankOneFails(CartPoleEnv):
    """CartPole that returns NaN observations in the DDP process of local rank 1 only."""

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        if os.environ.get("LOCAL_RANK") == "1":
            obs = np.full_like(obs, np.nan)
        return obs, reward, terminated, truncated, info


gym.register("RankOneFails-v0", entry_point=RankOneFails, max_episode_steps=500)
'''


@pytest.mark.slow
def test_a_failing_rank_ends_the_run_with_its_error_instead_of_a_hang(tmp_path: Path) -> None:
    (tmp_path / "rank_one_fails.py").write_text(RANK_ONE_FAILS)
    env = {**CLI_ENV, "PYTHONPATH": os.pathsep.join([str(tmp_path), CLI_ENV.get("PYTHONPATH", "")])}
    summary = tmp_path / "summary.json"
    args = small_run(summary, "--data.env_id", "rank_one_fails:RankOneFails-v0", "--trainer.strategy", "ddp", "--trainer.devices", "2")
    result = subprocess.run([*bco_console_script(), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    # one line, printed once by rank 0; the launched rank has ended before the command returns
    # and leaves no C++ teardown message ("terminate called ...") behind
    assert stderr_lines(result) == [
        "bco run: error: rank_one_fails:RankOneFails-v0 returned a non-finite observation (NaN or inf) during a rollout"
    ]
    assert not summary.exists()
