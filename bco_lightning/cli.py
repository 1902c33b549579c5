"""The `bco` command: `run` (the whole pipeline), `record`, and LightningCLI's `fit/validate/test/predict`.

Every known failure (a bad expert file, a bad configuration, a misbehaving environment) ends with
one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Literal, NoReturn

import pytorch_lightning as pl
import torch
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from bco_lightning.action_model import ActionModel
from bco_lightning.atomic import atomic_write
from bco_lightning.data.datamodule import BCODataModule
from bco_lightning.callbacks import FitNormalizers
from bco_lightning.data.expert_file import save_expert_file
from bco_lightning.distributed import exit_after_error, exit_without_teardown, is_rank_zero, wait_for_launched_ranks
from bco_lightning.errors import BCOError, ConfigError, SettingError, refuse_to_overwrite
from bco_lightning.idm import IDMModule
from bco_lightning.pipeline import BCORun, RunSettings
from bco_lightning.policy import BCPolicyModule
from bco_lightning.resources import resolve_config_path

SHAPE_FIELDS = ("obs_dim", "action_dim", "discrete", "action_low", "action_high", "obs_shape")
STAGE_SUBCOMMANDS = ("fit", "validate", "test", "predict")
USAGE = """usage: bco {run,record,export,evaluate,benchmark,fit,validate,test,predict} ...

  bco run       the whole BCO(alpha) pipeline (no arguments: CartPole-v1 with data/CartPole-v1.npz)
  bco record    write an expert state file (or a Minari dataset) from a scripted demonstrator
  bco export    write a policy checkpoint as one TorchScript file (no bco_lightning needed to use it)
  bco evaluate  evaluate an exported policy on seeded episodes
  bco benchmark BCO(0), BCO(alpha) and BC on true actions over environments and seeds (report + plot)
  bco fit|validate|test|predict --model IDMModule|BCPolicyModule ...
                one stage on its own, with LightningCLI

Each takes --help, --config FILE.yaml and --print_config.
"""


def _shape(datamodule: BCODataModule, field: str) -> Any:
    return datamodule.model_shapes[field]


def _link_shapes(parser: ArgumentParser, targets: list[str]) -> None:
    """Shapes flow from the datamodule into the models once the datamodule exists."""
    for target in targets:
        for field in SHAPE_FIELDS:
            parser.link_arguments("data", f"{target}.{field}", compute_fn=partial(_shape, field=field), apply_on="instantiate")


def run_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="bco run", description="Learn a policy from state-only demonstrations with BCO(alpha).")
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML config: a file, or the name of a shipped one (cartpole.yaml, configs/pendulum.yaml)")
    parser.add_argument("--seed_everything", type=int, default=0, help="one seed for everything random")
    parser.add_argument("--resume", type=str | None, default=None, help="continue an interrupted run in its log folder (its saved config is used)")
    parser.add_argument("--overwrite", type=bool, default=False, help="replace an existing --summary_path")
    parser.add_class_arguments(RunSettings, nested_key=None, as_group=False, skip={"seed"})
    parser.add_class_arguments(BCODataModule, "data", skip={"seed"})
    parser.add_class_arguments(IDMModule, "idm")
    parser.add_class_arguments(BCPolicyModule, "policy")
    parser.add_class_arguments(pl.Trainer, "trainer", instantiate=False, fail_untyped=False, skip={"logger", "max_epochs", "enable_checkpointing", "default_root_dir"})
    # One process unless asked: `auto` would start DDP on every visible GPU.
    parser.set_defaults({"trainer.devices": 1})
    _link_shapes(parser, ["idm", "policy"])
    return parser


# What `--resume` may change: how far the run goes, and what is shown or written where. Every other
# setting made the committed units what they are, so a resumed run keeps the saved one.
RESUME_MAY_CHANGE = ("iterations", "stop_score", "iteration_patience", "summary_path", "overwrite", "quiet", "progress", "video", "torch_threads")


def _resumed_config(parser: ArgumentParser, cfg: Namespace, given: Namespace) -> Namespace:
    """The run's own saved config, with the `RESUME_MAY_CHANGE` flags given now (`given`: only the
    values the command line set); any other flag that differs from the saved value is refused."""
    config = Path(cfg.resume) / "config.yaml"
    if not config.is_file():
        raise ConfigError(f"{cfg.resume}: not a run folder to resume (no config.yaml); expected lightning_logs/<env_id>/version_N")
    saved = parser.parse_args(["--config", str(config)])
    for key, value in given.items():
        if key in ("config", "resume", *RESUME_MAY_CHANGE) or value == saved.get(key):
            continue
        raise ConfigError(
            f"--resume {cfg.resume}: --{key} {value} differs from the run's saved {saved.get(key)}; a resumed run keeps its "
            f"settings except {', '.join('--' + k for k in RESUME_MAY_CHANGE)}"
        )
    for key in RESUME_MAY_CHANGE:
        if key in given:
            saved[key] = given[key]
    saved.resume = cfg.resume
    return saved


def _save_config(parser: ArgumentParser, cfg: Namespace, run_dir: Path) -> None:
    """The run's settings as `config.yaml` in its folder: what `--resume` runs with."""
    saved = cfg.clone()
    saved.resume, saved.overwrite = None, False
    text = parser.dump(saved, skip_unset=False)  # a null that overrides a default (--stop_score null) must survive --resume
    atomic_write(run_dir / "config.yaml", lambda handle: handle.write(text.encode()))


def with_shipped_configs(argv: list[str]) -> list[str]:
    """`--config NAME.yaml` names a shipped config when no such local file exists."""
    resolved = list(argv)
    for i, arg in enumerate(resolved):
        if arg == "--config" and i + 1 < len(resolved):
            resolved[i + 1] = str(resolve_config_path(resolved[i + 1]))
        elif arg.startswith("--config="):
            resolved[i] = "--config=" + str(resolve_config_path(arg[len("--config="):]))
    return resolved


def run_command(argv: list[str]) -> dict[str, Any]:
    parser = run_parser()
    argv = with_shipped_configs(argv)
    cfg = parser.parse_args(argv)
    if cfg.resume is not None:
        cfg = _resumed_config(parser, cfg, parser.parse_args(argv, defaults=False))
    if cfg.summary_path:
        refuse_to_overwrite(cfg.summary_path, cfg.overwrite)
    settings = RunSettings(seed=cfg.seed_everything, **{k: cfg[k] for k in RunSettings.__dataclass_fields__ if k != "seed"})
    torch.set_num_threads(1 if settings.torch_threads == "auto" else settings.torch_threads)  # "auto" tunes only training
    pl.seed_everything(cfg.seed_everything, workers=True, verbose=False)
    init = parser.instantiate(cfg)
    init.data.seed = cfg.seed_everything
    trainer_kwargs = init.trainer.as_dict() if isinstance(init.trainer, Namespace) else dict(init.trainer)
    init.data.expert  # refuse a bad expert file before a run folder is made
    run = BCORun(init.data, init.idm, init.policy, settings, trainer_kwargs, run_dir=cfg.resume)
    if is_rank_zero():
        _save_config(parser, cfg, run.run_dir)  # on --resume, with the new --iterations or --stop_score
    summary = run.run()
    score = summary["normalized_score"]
    if is_rank_zero() and not settings.quiet:
        print(
            f"{summary['env_id']}: return {summary['eval_return_mean']:.1f} +- {summary['eval_return_std']:.1f} "
            f"over {summary['eval_episodes']} episodes, normalized score "
            f"{'n/a' if score is None else f'{score:.3f}'}, {summary['env_steps']} env steps, "
            f"{summary['wall_seconds']:.1f} s; run folder {summary['log_dir']}"
        )
    return summary


def record_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="bco record", description="Record a scripted demonstrator's episodes as an expert state file.")
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("--env_id", type=str, default="CartPole-v1", help="gymnasium environment id")
    parser.add_argument("--env_kwargs", type=dict[str, Any] | None, default=None, help="keyword arguments for gymnasium.make")
    parser.add_argument("--episodes", type=int, default=25, help="episodes to record")
    parser.add_argument("--seed", type=int, default=0, help="episode i resets with seed + i")
    parser.add_argument("--model", type=str | None, default=None, help="a Stable-Baselines3 model zip to record instead of the scripted controller (sb3 extra)")
    parser.add_argument("--algo", type=str, default="sac", help="the model's SB3 algorithm: sac, td3, ppo, a2c, ddpg or dqn")
    parser.add_argument("--output", type=str, required=True, help="the .npz file to write, or the Minari dataset id with --format minari")
    parser.add_argument("--format", type=Literal["npz", "minari"], default="npz", help="an expert state file, or a local Minari dataset (needs the minari extra)")
    parser.add_argument("--overwrite", type=bool, default=False, help="replace an existing .npz file (Minari datasets are never replaced)")
    parser.add_argument("--observation", type=Literal["state", "pixels"], default="state", help="state vectors, or the camera frames the environment renders (uint8; the controller still acts on the state)")
    parser.add_argument("--image_size", type=int, default=64, help="with --observation pixels: frames are resized to this square size")
    parser.add_argument("--grayscale", type=bool, default=False, help="with --observation pixels: one channel instead of RGB")
    parser.add_argument("--kick_every", type=int, default=0, help="kick the simulator after every this many actions, so the recording shows recoveries (0: never)")
    parser.add_argument("--kick_size", type=list[float] | None, default=None, help="with --kick_every: the largest uniform change added to each component of env.unwrapped.state, e.g. [0, 0.4, 0, 0.6] for CartPole's velocities")
    return parser


def record_command(argv: list[str]) -> None:
    from bco_lightning.demonstrators import FrameRecording, KickedController, record_episodes, sb3_controller, scripted_controller

    cfg = record_parser().parse_args(argv)
    frames = FrameRecording(cfg.image_size, cfg.grayscale) if cfg.observation == "pixels" else None
    if frames is not None and cfg.format == "minari":
        raise SettingError("`observation` pixels writes .npz frame files; Minari recordings of frames are not supported yet")
    controller = sb3_controller(cfg.model, cfg.algo) if cfg.model else scripted_controller(cfg.env_id, cfg.env_kwargs)
    if cfg.kick_every or cfg.kick_size is not None:
        if cfg.format == "minari":
            raise SettingError("`kick_every` records .npz files; Minari recordings with kicks are not supported")
        if cfg.kick_size is None:
            raise SettingError("`kick_every` needs `kick_size`: the largest kick to each state component, e.g. [0, 0.4, 0, 0.6]")
        controller = KickedController(controller, cfg.kick_every, cfg.kick_size, cfg.seed)
    if cfg.format == "minari":
        from bco_lightning.data.minari_source import record_minari

        returns = record_minari(cfg.output, cfg.env_id, controller, cfg.episodes, cfg.seed, cfg.env_kwargs)
        print(f"minari:{cfg.output}: {len(returns)} episodes of {cfg.env_id}, return {returns.mean():.1f} +- {returns.std():.1f}")
        return
    output = Path(cfg.output)
    refuse_to_overwrite(output, cfg.overwrite)
    demos = record_episodes(cfg.env_id, controller, cfg.episodes, cfg.seed, cfg.env_kwargs, frames)
    save_expert_file(output, demos, overwrite=cfg.overwrite)
    returns = demos.episode_returns
    assert returns is not None
    kind = f", frames {'x'.join(map(str, demos.obs_shape))} uint8" if frames is not None else ""
    print(
        f"{output}: {demos.num_episodes} episodes of {cfg.env_id}, {demos.num_transitions} transitions{kind}, "
        f"return {returns.mean():.1f} +- {returns.std():.1f}"
    )


class StageCLI(LightningCLI):
    """LightningCLI for one stage: `--model IDMModule` or `--model BCPolicyModule` with `BCODataModule`."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        _link_shapes(parser, ["model.init_args"])

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        self.datamodule.stage = self.model.data_stage  # the datamodule serves the chosen model's data


def stage_command(argv: list[str]) -> None:
    StageCLI(
        ActionModel,
        BCODataModule,
        subclass_mode_model=True,
        args=argv,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"callbacks": [FitNormalizers()]},
        auto_configure_optimizers=False,
        seed_everything_default=0,
    )


def export_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="bco export", description="Write a policy checkpoint as one TorchScript file (normaliser and action decoding inside).")
    parser.add_argument("--checkpoint", type=str, required=True, help="a BCPolicyModule checkpoint (checkpoints/policy-iterK.ckpt)")
    parser.add_argument("--output", type=str, required=True, help="the TorchScript file to write")
    parser.add_argument("--overwrite", type=bool, default=False, help="replace an existing output file")
    return parser


def export_command(argv: list[str]) -> None:
    from bco_lightning.export import export_policy

    cfg = export_parser().parse_args(argv)
    path = export_policy(cfg.checkpoint, cfg.output, cfg.overwrite)
    print(f"{path}: TorchScript policy; load it with torch.jit.load and call it on float32 observations (B, obs_dim), or uint8 frame stacks (B, stack, H, W[, 3]) for a pixel policy")


def evaluate_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="bco evaluate", description="Evaluate an exported policy on seeded episodes.")
    parser.add_argument("--policy", type=str, required=True, help="a file written by `bco export`")
    parser.add_argument("--data.env_id", type=str, required=True, help="gymnasium environment id")
    parser.add_argument("--data.env_kwargs", type=dict[str, Any] | None, default=None, help="keyword arguments for gymnasium.make")
    parser.add_argument("--data.async_envs", type=bool, default=False, help="step each episode's env in a worker process (the same returns; faster for slow renderers such as CarRacing)")
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes")
    parser.add_argument("--seed", type=int, default=0, help="the run's --seed_everything: the same seed gives the run's evaluation episodes")
    parser.add_argument("--video", type=str | None, default=None, help="also write the first evaluation episode as a video (.mp4 needs the video extra; .gif does not)")
    parser.add_argument("--overwrite", type=bool, default=False, help="replace an existing --video file")
    return parser


def evaluate_command(argv: list[str]) -> dict[str, Any]:
    import json

    from bco_lightning import seeds
    from bco_lightning.data.rollouts import evaluate_policy
    from bco_lightning.envs import describe_env
    from bco_lightning.export import exported_observation_shape, load_exported
    from bco_lightning.pixels import describe_pixel_env, pixel_settings_for

    cfg = evaluate_parser().parse_args(argv)
    if cfg.episodes < 1:
        raise SettingError(f"`episodes` must be >= 1, got {cfg.episodes}")
    if cfg.video:
        refuse_to_overwrite(cfg.video, cfg.overwrite)
    env_id, env_kwargs = cfg.data.env_id, cfg.data.env_kwargs
    # A pixel policy's observation shape says how its frames were made: the same pixel environment plays it.
    pixels = pixel_settings_for(exported_observation_shape(cfg.policy))
    # refuse an unknown or unsupported environment in one line
    spec = describe_env(env_id, env_kwargs) if pixels is None else describe_pixel_env(env_id, env_kwargs, pixels)
    policy = load_exported(cfg.policy, spec.observation_shape, env_id)
    result = evaluate_policy(
        env_id, env_kwargs, policy, cfg.episodes, seeds.for_evaluation(cfg.seed), min(cfg.episodes, 32), pixels, cfg.data.async_envs
    )
    metrics = {
        "env_id": env_id,
        "eval_return_mean": result.mean_return,
        "eval_return_std": result.std_return,
        "eval_episodes": int(len(result.returns)),
        "eval_episode_length": float(result.lengths.mean()),
    }
    if cfg.video:
        from bco_lightning.video import record_frames, write_video

        frames, fps = record_frames(env_id, env_kwargs, policy, seeds.for_evaluation(cfg.seed), pixels)
        metrics["video"] = str(write_video(cfg.video, frames, fps))
    print(json.dumps(metrics))
    return metrics


def benchmark_command(argv: list[str]) -> None:
    from bco_lightning.benchmark import benchmark_command as command

    command(argv)


def benchmark_parser() -> ArgumentParser:
    from bco_lightning.benchmark import benchmark_parser as parser

    return parser()


PARSERS: dict[str, Callable[[], ArgumentParser]] = {
    "run": run_parser,
    "record": record_parser,
    "export": export_parser,
    "evaluate": evaluate_parser,
    "benchmark": benchmark_parser,
}
# The command-line group of each class whose arguments a `SettingError` can name.
GROUP_OF_OWNER = {"BCODataModule": "data", "IDMModule": "idm", "BCPolicyModule": "policy", "Trainer": "trainer"}
STAGE_GROUP_OF_OWNER = {**GROUP_OF_OWNER, "IDMModule": "model", "BCPolicyModule": "model"}
FLAG_OF_SETTING = {"seed": "seed_everything"}  # RunSettings.seed is `bco run --seed_everything`


def flag_namer(command: str, owner: str | None) -> Callable[[str], str]:
    """Names a setting as the flag that sets it in `bco COMMAND` (`batch_size` -> `--data.batch_size`)."""
    if command in STAGE_SUBCOMMANDS:
        group = STAGE_GROUP_OF_OWNER.get(owner or "")
        return lambda name: f"--{group}.{name}" if group else f"--{name}"
    dests = [action.dest for action in PARSERS[command]()._actions]
    group = GROUP_OF_OWNER.get(owner or "")

    def flag(name: str) -> str:
        name = FLAG_OF_SETTING.get(name, name) if command == "run" else name
        candidates = [dest for dest in dests if dest == name or dest.endswith(f".{name}")]
        for preferred in (f"{group}.{name}", name):
            if preferred in candidates:
                return f"--{preferred}"
        return f"--{candidates[0] if candidates else name}"

    return flag


def error_line(command: str, error: Exception) -> str:
    """The one line `bco COMMAND` prints for a known failure, with settings named as its flags."""
    message = error.describe(flag_namer(command, error.owner)) if isinstance(error, SettingError) else str(error)
    return f"bco {command}: error: {message}"


COMMANDS: dict[str, Callable[[list[str]], Any]] = {
    "run": run_command,
    "record": record_command,
    "export": export_command,
    "evaluate": evaluate_command,
    "benchmark": benchmark_command,
}


def quiet_console() -> None:
    """Keep the console to what a user acts on: Lightning's banners and known-harmless warnings go,
    and so do gymnasium's passive-checker warnings (a bad observation is reported as an error)."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*LightningCLI's args parameter.*")
    # ActionModel overrides `transfer_batch_to_device` on purpose (flat dicts of tensors).
    warnings.filterwarnings("ignore", message=r".*overridden `transfer_batch_to_device` in `LightningModule`.*")
    warnings.filterwarnings("ignore", module=r"gymnasium\.utils\.passive_env_checker")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return
    command, rest = argv[0], argv[1:]
    quiet_console()
    if command not in COMMANDS and command not in STAGE_SUBCOMMANDS:
        print(f"bco: error: unknown command {command!r}\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    try:
        if command in STAGE_SUBCOMMANDS:
            stage_command(argv)
        else:
            COMMANDS[command](rest)
    except (BCOError, FileExistsError, MisconfigurationException) as error:
        exit_after_error(error_line(command, error))


def console_main() -> NoReturn:
    """The `bco` program: `main`, then an exit without Python's module teardown (over a second once
    torch and Lightning are loaded); rank 0 first waits for the DDP ranks it launched."""
    try:
        main()
        sys.stdout.flush()
    except BrokenPipeError:
        # Whoever read stdout left early (`bco --help | head -1`): end quietly, with the status a
        # shell gives a process that SIGPIPE ended (128 + 13), instead of a traceback.
        os._exit(141)
    if is_rank_zero():
        wait_for_launched_ranks()
    exit_without_teardown(0)


if __name__ == "__main__":
    console_main()
