"""End-to-end BCO runs on real environments: they learn, and leave a summary, checkpoints and logs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from bco_lightning.callbacks import normalized_score
from bco_lightning.cli import main
from bco_lightning.data.datamodule import BCODataModule
from bco_lightning.data.expert_file import save_expert_file
from bco_lightning.data.rollouts import evaluate_policy
from bco_lightning.demonstrators import pendulum_controller, record_episodes
from bco_lightning.idm import IDMModule
from bco_lightning import seeds
from bco_lightning.pipeline import BCORun, RunSettings
from bco_lightning.policy import BCPolicyModule
from helpers import SHIPPED_CARTPOLE, exported_return_in_fresh_process, run_bco

SUMMARY_KEYS = {
    "env_id",
    "eval_return_mean",
    "eval_return_std",
    "eval_episodes",
    "demonstrator_return",
    "random_return",
    "normalized_score",
    "env_steps",
    "idm_label_accuracy",
    "wall_seconds",
    "log_dir",
    "idm_checkpoint",
    "policy_checkpoint",
    "world_size",
}


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in every TensorBoard event file under `run_dir`, as tag -> [(step, value)]."""
    found: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(run_dir.rglob("events.out.tfevents*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            found.setdefault(tag, []).extend((e.step, e.value) for e in accumulator.Scalars(tag))
    return found


def make_run(data: BCODataModule, log_root: Path, **settings) -> BCORun:
    pl.seed_everything(0, verbose=False)
    shapes = data.model_shapes
    return BCORun(
        data,
        IDMModule(**shapes),
        BCPolicyModule(**shapes),
        RunSettings(seed=0, log_root=str(log_root), **settings),
        {"accelerator": "cpu", "devices": 1},
    )


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    """BCO(0) on CartPole with the shipped demonstrations and a small exploration budget."""
    root = tmp_path_factory.mktemp("cartpole")
    data = BCODataModule(env_id="CartPole-v1", expert_path=str(SHIPPED_CARTPOLE), pre_demo_steps=5000, seed=0)
    run = make_run(
        data, root / "logs", alpha=0.0, iterations=0, eval_episodes=5, idm_max_epochs=20, policy_max_epochs=50,
        summary_path=str(root / "copy" / "summary.json"),
    )
    summary = run.run()
    return run, summary, root


def test_cartpole_learns(cartpole_run):
    _, summary, _ = cartpole_run
    assert summary["normalized_score"] >= 0.95, summary
    assert summary["eval_return_mean"] >= 475
    assert summary["eval_episodes"] == 5
    assert summary["demonstrator_return"] == pytest.approx(500.0)
    assert summary["random_return"] < 60
    expected = (summary["eval_return_mean"] - summary["random_return"]) / (summary["demonstrator_return"] - summary["random_return"])
    assert summary["normalized_score"] == pytest.approx(expected)
    assert summary["env_steps"] == 5000  # BCO(0): pre-demonstration interaction only
    # the selection episodes (5 of at least 475 steps) are counted apart from the training budget
    assert summary["selected_iteration"] == 0 and summary["selection_steps"] >= 5 * 475
    assert summary["idm_label_accuracy"] >= 0.95  # the shipped file has the true actions
    # BCO(0): the one policy's labels are the final IDM's, so the history agrees with the summary
    [policy_entry] = [h for h in summary["history"] if h["stage"] == "policy"]
    assert policy_entry["idm_label_accuracy"] == summary["idm_label_accuracy"]
    assert summary["world_size"] == 1


def test_summary_json_has_contract_keys(cartpole_run):
    run, summary, root = cartpole_run
    run_dir = Path(summary["log_dir"])
    assert run_dir == run.run_dir.resolve() and run_dir.is_relative_to(root)
    written = json.loads((run_dir / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(written), SUMMARY_KEYS - set(written)
    assert written["env_id"] == "CartPole-v1"
    assert written["eval_return_mean"] == pytest.approx(summary["eval_return_mean"])
    assert written["wall_seconds"] > 0
    assert json.loads((root / "copy" / "summary.json").read_text()) == written


def test_checkpoints_load_with_normalisers(cartpole_run):
    run, summary, _ = cartpole_run
    idm_path, policy_path = Path(summary["idm_checkpoint"]), Path(summary["policy_checkpoint"])
    assert idm_path.is_file() and policy_path.is_file()
    assert idm_path.is_relative_to(summary["log_dir"]) and policy_path.is_relative_to(summary["log_dir"])

    idm = IDMModule.load_from_checkpoint(idm_path, map_location="cpu")
    policy = BCPolicyModule.load_from_checkpoint(policy_path, map_location="cpu")
    for loaded, trained in ((idm, run.idm), (policy, run.policy)):
        normalizer = loaded.net.obs_normalizer
        assert bool(normalizer.fitted)
        assert normalizer.mean.abs().max() > 1e-3, "normaliser mean is still the default 0"
        assert not torch.allclose(normalizer.std, torch.ones_like(normalizer.std))
        torch.testing.assert_close(normalizer.mean, trained.net.obs_normalizer.mean.cpu())
        torch.testing.assert_close(normalizer.std, trained.net.obs_normalizer.std.cpu())
    assert idm.hparams.obs_dim == 4 and idm.hparams.discrete is True
    torch.testing.assert_close(idm.net.second_normalizer.mean, run.idm.net.second_normalizer.mean.cpu())

    # the reloaded policy plays as well as the evaluated one, on episodes it was not evaluated on
    result = evaluate_policy("CartPole-v1", None, policy.as_policy(), episodes=3, seed=777, num_envs=3)
    assert result.mean_return >= 475

    # the reloaded IDM labels the expert file like the run did
    expert = run.data.expert
    labels = idm.label(expert.observations, expert.pair_indices())
    assert np.mean(labels == expert.actions) == pytest.approx(summary["idm_label_accuracy"], abs=1e-6)


def test_tensorboard_has_eval_and_training_curves(cartpole_run):
    _, summary, _ = cartpole_run
    found = scalars(Path(summary["log_dir"]))
    assert "eval/return_mean" in found, sorted(found)
    ((step, value),) = found["eval/return_mean"]
    assert step == 0
    assert value == pytest.approx(summary["eval_return_mean"], rel=1e-5)
    assert "val/loss" in found and "val/accuracy" in found
    assert "eval/normalized_score" in found


def test_iterations_stop_once_the_kept_policy_scores_the_stop_score(tmp_path):
    """BCO(alpha) spends no more interaction once the selection episodes show the demonstrator's level."""
    data = BCODataModule(env_id="CartPole-v1", expert_path=str(SHIPPED_CARTPOLE), pre_demo_steps=5000, seed=0)
    run = make_run(data, tmp_path / "logs", alpha=0.1, iterations=3, stop_score=0.9, eval_episodes=5, idm_max_epochs=20, policy_max_epochs=50, video=False)
    summary = run.run()
    policies = [h for h in summary["history"] if h["stage"] == "policy" and "selection/return_mean" in h]
    selection_scores = [normalized_score(h["selection/return_mean"], summary["random_return"], summary["demonstrator_return"]) for h in policies]
    # it ran exactly up to the first iteration whose policy reached 0.9, and stopped before the last
    assert selection_scores[-1] >= 0.9 and all(score < 0.9 for score in selection_scores[:-1])
    assert summary["iterations_run"] == policies[-1]["iteration"] < summary["iterations"] == 3
    assert summary["history"][-1]["iteration"] == summary["iterations_run"]
    assert summary["env_steps"] == 5000 + summary["iterations_run"] * 500
    assert summary["normalized_score"] >= 0.9


def test_bco_alpha_counts_post_demonstration_steps(tmp_path):
    summary_path = tmp_path / "summary.json"
    main([
        "run",
        "--data.expert_path", str(SHIPPED_CARTPOLE),
        "--data.pre_demo_steps", "2000",
        "--data.num_envs", "4",
        "--alpha", "0.1",
        "--iterations", "1",
        "--stop_score", "null",
        "--eval_episodes", "2",
        "--idm_max_epochs", "5",
        "--policy_max_epochs", "10",
        "--log_root", str(tmp_path / "logs"),
        "--summary_path", str(summary_path),
        "--trainer.accelerator", "cpu",
    ])
    summary = json.loads(summary_path.read_text())
    assert summary["env_steps"] == 2000 + round(0.1 * 2000)
    assert SUMMARY_KEYS <= set(summary)
    assert summary["eval_episodes"] == 2
    run_dir = Path(summary["log_dir"])
    assert run_dir.is_relative_to(tmp_path / "logs")
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    # the final checkpoints are the second iteration's, and both iterations were evaluated
    assert Path(summary["idm_checkpoint"]).is_file() and Path(summary["policy_checkpoint"]).is_file()
    assert summary["idm_checkpoint"] != summary["policy_checkpoint"]
    steps = sorted(step for step, _ in scalars(run_dir)["eval/return_mean"])
    assert steps == [0, 1]


@pytest.mark.slow
def test_pendulum_continuous_run_learns(tmp_path):
    """Box actions: record 10 scripted Pendulum episodes and run `bco run`'s defaults on them."""
    demos = record_episodes("Pendulum-v1", pendulum_controller, episodes=10, seed=0)
    path = save_expert_file(tmp_path / "pendulum.npz", demos)
    data = BCODataModule(env_id="Pendulum-v1", expert_path=str(path), seed=0)
    summary = make_run(data, tmp_path / "logs").run()
    assert summary["idm_label_accuracy"] is not None and summary["idm_label_accuracy"] > 0.9
    stages = [(h["stage"], h["epochs"]) for h in summary.get("history", [])]
    assert summary["normalized_score"] >= 0.9, (
        f"normalized_score {summary['normalized_score']:.3f}: return {summary['eval_return_mean']:.1f}, "
        f"demonstrator {summary['demonstrator_return']:.1f}, random {summary['random_return']:.1f}; epochs per stage {stages}"
    )


def test_exported_policy_scores_the_summary_return_in_a_fresh_process(cartpole_run, tmp_path):
    """`bco export`, then torch.jit.load without bco_lightning, on the run's evaluation seeds."""
    _, summary, _ = cartpole_run
    exported = tmp_path / "policy.pt"
    result = run_bco(["export", "--checkpoint", summary["policy_checkpoint"], "--output", str(exported)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    fresh = exported_return_in_fresh_process(exported, summary["eval_episodes"], seeds.for_evaluation(0))
    assert fresh == pytest.approx(summary["eval_return_mean"], rel=0.01)
    video = tmp_path / "episode.mp4"
    evaluated = run_bco(
        ["evaluate", "--policy", str(exported), "--data.env_id", "CartPole-v1", "--episodes", str(summary["eval_episodes"]), "--video", str(video)],
        cwd=tmp_path,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert evaluated.stderr == ""
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])["eval_return_mean"] == pytest.approx(summary["eval_return_mean"], rel=0.01)
    assert video.read_bytes()[4:8] == b"ftyp" and video.stat().st_size > 1000
    again = run_bco(["evaluate", "--policy", str(exported), "--data.env_id", "CartPole-v1", "--video", str(video)], cwd=tmp_path)
    assert again.returncode == 2 and "exists" in again.stderr


def test_evaluate_refuses_a_policy_for_other_observations(cartpole_run, tmp_path):
    _, summary, _ = cartpole_run
    exported = tmp_path / "policy.pt"
    assert run_bco(["export", "--checkpoint", summary["policy_checkpoint"], "--output", str(exported)], cwd=tmp_path).returncode == 0
    result = run_bco(["evaluate", "--policy", str(exported), "--data.env_id", "Pendulum-v1"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"bco evaluate: error: {exported}: the policy takes 4-dim observations, but Pendulum-v1 gives 3-dim ones"


def test_event_files_hold_the_video_the_idm_images_and_the_hparams(cartpole_run):
    """TensorBoard shows an evaluation episode, the IDM's confusion matrices and the run's settings
    with its final metrics."""
    _, summary, _ = cartpole_run
    images, hparams, scalars, video = set(), set(), {}, None
    for events in Path(summary["log_dir"]).glob("events.out.tfevents*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        images |= set(accumulator.Tags()["images"])
        hparams |= set(accumulator.PluginTagToContent("hparams"))
        scalars.update({tag: accumulator.Scalars(tag)[-1].value for tag in accumulator.Tags()["scalars"]})
        for tag in accumulator.Tags()["images"]:
            image = accumulator.Images(tag)[-1]
            if tag == "eval/video":
                video = accumulator.Images(tag)
                continue
            assert image.width >= 150 and image.height >= 150 and image.encoded_image_string[:4] == b"\x89PNG"
    assert images == {"eval/video", "idm/validation_transitions", "idm/expert_labels_vs_true_actions"}
    assert [event.step for event in video] == [0]  # one per trained policy: BCO(0) trains one
    gif = Image.open(io.BytesIO(video[0].encoded_image_string))
    assert gif.format == "GIF" and gif.n_frames >= 20, gif.n_frames  # up to 101: Pillow merges identical frames
    assert gif.size == (300, 200)  # CartPole's 600x400 frames halved: at most video.MAX_WIDTH wide
    assert "_hparams_/experiment" in hparams and "_hparams_/session_start_info" in hparams
    assert scalars["hparams/normalized_score"] == pytest.approx(summary["normalized_score"])
    assert scalars["hparams/idm_label_accuracy"] == pytest.approx(summary["idm_label_accuracy"])


def test_quiet_run_prints_nothing_and_progress_shows_bars(tmp_path):
    """`--quiet true` leaves stdout and stderr empty; `--progress true` shows the rollout and
    training bars (off by default when stderr is not a terminal, as here).

    The quiet run is `python -m bco_lightning.cli`: as `__main__`, the CLI sees Python's default
    DeprecationWarnings (jsonargparse's `dump(skip_none=...)` printed one there)."""
    args = ["run", "--data.pre_demo_steps", "2000", "--iterations", "0", "--idm_max_epochs", "2", "--policy_max_epochs", "2", "--eval_episodes", "2", "--video", "false"]
    quiet = run_bco([*args, "--quiet", "true", "--summary_path", str(tmp_path / "quiet.json")], cwd=tmp_path, launcher="module")
    assert quiet.returncode == 0, quiet.stderr
    assert (quiet.stdout, quiet.stderr) == ("", "")
    default = run_bco([*args, "--summary_path", str(tmp_path / "default.json")], cwd=tmp_path)
    assert default.returncode == 0 and default.stderr == ""
    assert default.stdout.startswith("CartPole-v1: return ")
    loud = run_bco([*args, "--progress", "true", "--summary_path", str(tmp_path / "loud.json")], cwd=tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert "collect 2,000 steps" in loud.stderr
    assert "Epoch 1" in loud.stdout  # Lightning's tqdm bars write to stdout


def test_the_bco_program_exits_with_every_event_and_file_on_disk(tmp_path):
    """`bco` ends without Python's teardown (`os._exit`); the run's TensorBoard writers are closed
    before, so the evaluation scalars, IDM images and hparams written last are all in the files."""
    args = ["run", "--data.pre_demo_steps", "2000", "--iterations", "0", "--idm_max_epochs", "2", "--policy_max_epochs", "2", "--eval_episodes", "2", "--video", "false"]
    result = run_bco([*args, "--summary_path", str(tmp_path / "summary.json")], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    run_dir = Path(summary["log_dir"])
    assert json.loads((run_dir / "summary.json").read_text()) == summary

    def tags(folder: Path, kind: str) -> set[str]:
        found: set[str] = set()
        for events in folder.glob("events.out.tfevents*"):
            accumulator = EventAccumulator(str(events))
            accumulator.Reload()
            found |= set(accumulator.Tags()[kind]) if kind != "hparams" else set(accumulator.PluginTagToContent("hparams"))
        return found

    assert {"eval/normalized_score", "eval/return_mean"} <= tags(run_dir / "eval", "scalars")
    assert tags(run_dir, "images") == {"idm/validation_transitions", "idm/expert_labels_vs_true_actions"}
    assert "_hparams_/experiment" in tags(run_dir, "hparams")
    assert "hparams/normalized_score" in tags(run_dir, "scalars")


def test_runs_started_together_get_distinct_run_folders(tmp_path):
    """Two `bco run`s started at once in one log root once shared a folder (Lightning counts
    versions by listing); the folder is now claimed with an atomic mkdir."""
    from concurrent.futures import ThreadPoolExecutor

    from bco_lightning.run_folder import claim_run_dir

    (tmp_path / "CartPole-v1" / "version_3").mkdir(parents=True)
    with ThreadPoolExecutor(8) as pool:
        claimed = list(pool.map(lambda _: claim_run_dir(tmp_path / "CartPole-v1"), range(8)))
    assert sorted(claimed, key=lambda p: int(p.name[8:])) == [tmp_path / "CartPole-v1" / f"version_{n}" for n in range(4, 12)]


def test_post_demonstration_noise_follows_the_idm_error(tmp_path):
    """`--noise_per_idm_error`: iteration 1 explores with std = factor x iteration 0's IDM error
    (above the fixed 0.1), and the collected actions really spread that far around the policy's."""
    demos = record_episodes("Pendulum-v1", pendulum_controller, episodes=3, seed=0)
    data = BCODataModule(env_id="Pendulum-v1", expert_path=str(save_expert_file(tmp_path / "p.npz", demos)), pre_demo_steps=2000, seed=0)
    run = make_run(
        data, tmp_path / "logs", alpha=1.0, iterations=1, stop_score=None, noise_per_idm_error=15.0,
        eval_episodes=1, idm_max_epochs=3, policy_max_epochs=3, video=False, select_best=False,
    )
    summary = run.run()
    idm_stages = [h for h in summary["history"] if h["stage"] == "idm"]
    expected = 15.0 * idm_stages[0]["val/mae"]
    assert "exploration_noise" not in idm_stages[0]
    assert expected > 0.2 and idm_stages[1]["exploration_noise"] == pytest.approx(expected)
    assert scalars(Path(summary["log_dir"]))["rollout/exploration_noise"] == [(1, pytest.approx(expected))]

    iteration0 = BCPolicyModule.load_from_checkpoint(Path(summary["log_dir"]) / "checkpoints" / "policy-iter0.ckpt", map_location="cpu")
    post = data.interaction
    post_obs, post_actions = post.observations[post.obs_index[2000:]], post.actions[2000:]
    mean_actions = iteration0.as_policy(deterministic=True)(post_obs)
    residual = (post_actions - mean_actions) / iteration0.codec.half_range.numpy()  # unit box; clipping at +-1 narrows it
    assert 0.6 * min(expected, 1.0) < residual.std() < 1.05 * expected


def test_idm_fine_tunes_validate_every_finetune_steps_per_validation(tmp_path, pendulum_file):
    """`--finetune_steps_per_validation 16`: the first IDM still validates by epochs (3 validations of
    two 71-step epochs), while the fine-tune validates every 16 steps and its cap of 3 counts those."""
    data = BCODataModule(env_id="Pendulum-v1", expert_path=str(pendulum_file), pre_demo_steps=20_000, seed=0)
    summary = make_run(
        data, tmp_path / "logs", iterations=1, stop_score=None, eval_episodes=2, idm_max_epochs=3, policy_max_epochs=2,
        finetune_steps_per_validation=16, video=False,
    ).run()
    idm = {h["iteration"]: h for h in summary["history"] if h["stage"] == "idm"}
    assert idm[0]["optimizer_steps"] == 3 * 2 * 71  # 18,000 training transitions in batches of 256
    assert idm[1]["optimizer_steps"] == 3 * 16
    validations = {
        iteration: [step for step, _ in scalars(Path(summary["log_dir"]) / f"iter{iteration}" / "idm")["val/loss"]] for iteration in (0, 1)
    }
    # logged at the Lightning step (8 batches each): every 2 of them in the fine-tune, every 18 (2 epochs) before
    assert validations == {0: [17, 35, 53], 1: [1, 3, 5]}
