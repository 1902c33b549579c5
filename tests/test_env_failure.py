"""An environment that turns bad mid-run stops the run with one line and keeps the saved units."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from helpers import CLI_ENV, bco_console_script, stderr_lines

# A CartPole whose post-demonstration episodes of iteration 1 (reset seeds 1000..1999 when
# --seed_everything is 0) return NaN observations: the run must fail in unit collect-1 exactly.
POISONED_ENV = '''
import numpy as np
import gymnasium as gym
from gymnasium.envs.classic_control.cartpole import CartPoleEnv


class PoisonedCartPole(CartPoleEnv):
    poisoned = False

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.poisoned = 1000 <= seed < 2000
        return super().reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        if self.poisoned:
            obs = np.full_like(obs, np.nan)
        return obs, reward, terminated, truncated, info


gym.register("PoisonedCartPole-v0", entry_point=PoisonedCartPole, max_episode_steps=500)
'''


def test_nan_observations_stop_the_run_and_keep_what_was_saved(tmp_path: Path, cartpole_file: Path) -> None:
    (tmp_path / "poisoned_env.py").write_text(POISONED_ENV)
    env = {**CLI_ENV, "PYTHONPATH": os.pathsep.join([str(tmp_path), CLI_ENV.get("PYTHONPATH", "")])}
    summary = tmp_path / "summary.json"
    args = [
        "run", "--data.env_id", "poisoned_env:PoisonedCartPole-v0", "--data.expert_path", str(cartpole_file),
        "--data.pre_demo_steps", "2000", "--iterations", "2", "--stop_score", "null", "--eval_episodes", "2",
        "--idm_max_epochs", "2", "--policy_max_epochs", "2", "--summary_path", str(summary),
    ]
    result = subprocess.run([*bco_console_script(), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 1 and "non-finite" in lines[0] and "PoisonedCartPole" in lines[0], lines
    run_dir = tmp_path / "lightning_logs" / "poisoned_env:PoisonedCartPole-v0" / "version_0"
    progress = json.loads((run_dir / "state" / "progress.json").read_text())
    assert progress["completed"] == ["idm-0", "policy-0"]
    assert (run_dir / "state" / "idm.pt").exists() and (run_dir / "state" / "policy.pt").exists()
    assert not summary.exists()
