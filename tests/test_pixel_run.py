"""Learning from camera frames end to end, on tiny 16x16 frames: the datamodule's tables, the
convolutional models, `bco run`, export and `bco evaluate`, resume after a kill, and DDP."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bco_lightning import BCODataModule, BCPolicyModule, IDMModule
from bco_lightning.data.frames import resize_frames
from bco_lightning.data.datamodule import lookahead_rows
from bco_lightning.errors import ExpertFileError, SettingError
from bco_lightning.vision import PixelInverseDynamicsNet, PixelPolicyNet
from helpers import (
    CLI_ENV, SHIPPED_CARTPOLE, SHIPPED_DEMONSTRATIONS, assert_one_line_error, bco_console_script, killed_run_folders, run_bco, run_reference, stable,
)

CARTPOLE_FRAMES = SHIPPED_DEMONSTRATIONS / "CartPole-v1-pixels.npz"
PENDULUM_FRAMES = SHIPPED_DEMONSTRATIONS / "Pendulum-v1-pixels.npz"


def pixel_data(**overrides) -> BCODataModule:
    settings = dict(
        env_id="CartPole-v1", expert_path=str(CARTPOLE_FRAMES), observation="pixels", image_size=16, frame_stack=2,
        idm_lookahead=2, pre_demo_steps=200, num_envs=4, max_expert_episodes=2, seed=0,
    )
    return BCODataModule(**(settings | overrides))


def tiny_pixel_run(summary: Path, *extra: str) -> list[str]:
    return [
        "run", "--data.observation", "pixels", "--data.expert_path", str(CARTPOLE_FRAMES), "--data.image_size", "16",
        "--data.idm_lookahead", "2", "--data.max_expert_episodes", "2", "--data.pre_demo_steps", "1200", "--data.num_envs", "4",
        "--iterations", "1", "--stop_score", "null", "--eval_episodes", "2", "--idm_max_epochs", "2", "--policy_max_epochs", "2",
        "--min_steps_per_validation", "20", "--video", "false", "--seed_everything", "1", "--summary_path", str(summary), *extra,
    ]


def test_lookahead_follows_each_episode_and_stops_at_its_last_row() -> None:
    # two interleaved sub-envs: rows 0,2,4 are one episode, rows 1,3 another, row 5 starts a third
    previous = np.array([0, 1, 0, 1, 2, 5])
    assert lookahead_rows(np.array([0, 1, 2, 4]), previous, 1).tolist() == [2, 3, 4, 4]
    assert lookahead_rows(np.array([0, 1, 2, 5]), previous, 2).tolist() == [4, 3, 4, 5]


def test_the_datamodule_serves_uint8_stacks_resized_like_the_environments_frames() -> None:
    data = pixel_data()
    assert data.model_shapes["obs_shape"] == [2, 16, 16]
    expert_frames = data.expert_observations
    raw = data.expert.observations
    assert expert_frames.dtype == np.uint8 and expert_frames.shape == (len(raw), 16, 16)
    assert np.array_equal(expert_frames[:5], resize_frames(raw[:5], 16, True))  # the one resize
    first_length = int(data.expert.episode_lengths[0])

    data.setup("fit")  # collects the requested interaction (no Trainer: one process)
    batch = next(iter(data.train_dataloader()))
    batch = batch[0] if isinstance(batch, list) else batch
    assert batch["obs"].dtype == torch.uint8 and batch["obs"].shape[1:] == (2, 16, 16)
    assert batch["next_obs"].shape == batch["obs"].shape and batch["action"].dtype == torch.int64

    table = data._expert_pair_table()
    start = table.batch(torch.tensor([0]))
    # an episode's first stack repeats its first frame; s' ends idm_lookahead = 2 frames on
    assert torch.equal(start["obs"][0, 0], start["obs"][0, 1])
    assert torch.equal(start["next_obs"][0], torch.from_numpy(expert_frames[[1, 2]]))
    end = table.batch(torch.tensor([first_length - 2]))  # the episode's last pair: s' stops at its last frame
    assert torch.equal(end["next_obs"][0], torch.from_numpy(expert_frames[[first_length - 2, first_length - 1]]))
    # no statistics of frames: only the labels' are needed
    assert set(data.normalization_tensors()) == {"action"}


def test_pixel_settings_and_files_are_checked() -> None:
    with pytest.raises(ExpertFileError, match="holds state vectors"):
        pixel_data(expert_path=str(SHIPPED_CARTPOLE)).expert
    with pytest.raises(ExpertFileError, match="--data.observation pixels"):
        BCODataModule(expert_path=str(CARTPOLE_FRAMES)).expert
    with pytest.raises(SettingError, match="idm_lookahead"):
        BCODataModule(idm_lookahead=2)
    with pytest.raises(ExpertFileError, match="leaves fewer"):
        pixel_data(expert_skip_frames=500).expert
    skipped = pixel_data(expert_skip_frames=50)
    assert skipped.expert.episode_lengths.tolist() == [451, 451]
    assert np.array_equal(skipped.expert.observations[0], pixel_data().expert.observations[50])


def test_frame_shapes_build_convolutional_models_whose_labels_cover_every_pair() -> None:
    data = pixel_data()
    idm, policy = IDMModule(**data.model_shapes), BCPolicyModule(**data.model_shapes)
    assert isinstance(idm.net, PixelInverseDynamicsNet) and isinstance(policy.net, PixelPolicyNet)
    assert idm.normalizers_fitted()  # Discrete actions, frames scaled inside: nothing to fit
    labels = data.label_expert(idm, batch_size=64)
    assert labels.shape == (len(data.expert_pairs),) and labels.dtype == np.int64
    stacks = np.zeros((3, 2, 16, 16), dtype=np.uint8)
    assert policy.as_policy()(stacks).shape == (3,)

    box = pixel_data(env_id="Pendulum-v1", expert_path=str(PENDULUM_FRAMES), idm_lookahead=1, grayscale=False)
    assert box.model_shapes["obs_shape"] == [2, 16, 16, 3]
    box_idm = IDMModule(**box.model_shapes)
    assert not box_idm.normalizers_fitted()  # Box labels need their statistics
    box.setup("fit")
    box_idm.fit_normalizers(box.normalization_tensors())
    assert box_idm.normalizers_fitted()


def test_a_pixel_run_exports_a_policy_that_bco_evaluate_replays(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    result = run_bco(tiny_pixel_run(summary_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(summary_path.read_text())
    assert summary["iterations_run"] == 1 and summary["env_steps"] == 1200 + 120
    assert summary["idm_label_accuracy"] is not None
    run_dir = Path(summary["log_dir"])
    assert list(run_dir.glob("events.out.tfevents.*")) and list((run_dir / "eval").glob("events.out.tfevents.*"))

    exported = tmp_path / "policy.pt"
    result = run_bco(["export", "--checkpoint", summary["policy_checkpoint"], "--output", str(exported)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    module = torch.jit.load(str(exported))
    assert list(module.obs_shape) == [2, 16, 16]
    stacks = torch.randint(0, 256, (5, 2, 16, 16), dtype=torch.uint8)
    policy = BCPolicyModule.load_from_checkpoint(summary["policy_checkpoint"], map_location="cpu")
    assert torch.equal(module(stacks), torch.from_numpy(policy.as_policy()(stacks.numpy())))
    with pytest.raises(torch.jit.Error, match="uint8"):
        module(stacks.float())

    # the same seed and episodes: the run's own evaluation of the kept policy, replayed from the file
    evaluate = ["evaluate", "--policy", str(exported), "--data.env_id", "CartPole-v1", "--episodes", "2", "--seed", "1"]
    for workers in ("false", "true"):  # worker processes step the same episodes
        result = run_bco([*evaluate, "--data.async_envs", workers], cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["eval_return_mean"] == summary["eval_return_mean"]


def test_a_state_file_for_a_pixel_run_is_refused_in_one_line(tmp_path: Path) -> None:
    result = run_bco(["run", "--data.observation", "pixels", "--data.image_size", "16"], cwd=tmp_path)
    assert_one_line_error(result, "holds state vectors", "bco record --observation pixels")
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.slow
def test_a_killed_pixel_run_resumes_to_the_uninterrupted_summary(tmp_path: Path) -> None:
    reference = tmp_path / "reference.json"
    duration = run_reference(tiny_pixel_run(reference), tmp_path)
    workdir, run_dir = killed_run_folders(tmp_path)
    summary = tmp_path / "resumed.json"
    process = subprocess.Popen([*bco_console_script(), *tiny_pixel_run(summary)], cwd=workdir, env=CLI_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = run_dir / "state" / "progress.json"
    deadline = time.perf_counter() + duration
    while process.poll() is None and time.perf_counter() < deadline:  # after the first unit, mid-run
        if progress.exists() and "idm-0" in json.loads(progress.read_text())["completed"]:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    result = run_bco(["run", "--resume", str(run_dir)], cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert stable(summary) == stable(reference)


@pytest.mark.slow
def test_a_two_process_ddp_pixel_run_gathers_every_rank(tmp_path: Path) -> None:
    summary_path = tmp_path / "ddp.json"
    args = tiny_pixel_run(summary_path, "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu")
    result = run_bco(args, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads(summary_path.read_text())
    assert summary["world_size"] == 2
    assert summary["env_steps"] == 1200 + 120 and summary["eval_episodes"] == 2
    assert result.stdout.count("normalized score") == 1


@pytest.mark.slow
def test_pixel_cartpole_cloned_from_the_shipped_kicked_frames_balances_the_pole(tmp_path: Path) -> None:
    """Pixel CartPole's 0.9 target with the shipped config, on the frames alone (64x64 gray, no
    states): BC on the true actions of the kicked recording. On the 2-core development machine
    seeds 0-2 all scored 1.013 (500 steps every episode) in 21 to 32 minutes at one thread each, and
    this test's run (seed 0, two threads, CI alone) 1.000 in 11 minutes; from the undisturbed
    recording the same networks dropped the pole (0.038)."""
    summary_path = tmp_path / "summary.json"
    args = ["run", "--config", "cartpole-pixels.yaml", "--labels", "true_actions", "--iterations", "0", "--torch_threads", "2",
            "--video", "false", "--quiet", "true", "--summary_path", str(summary_path)]
    result = run_bco(args, cwd=tmp_path, timeout=3600)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(summary_path.read_text())
    assert summary["expert_episodes"] == 200 and summary["labels"] == "true_actions"
    assert summary["normalized_score"] >= 0.9, summary
