"""Minari datasets as an expert source (`--data.expert_path minari:DATASET_ID`), and writing one.

Only local datasets are read (from `MINARI_DATASETS_PATH`, else Minari's default root): bco never
downloads. Observations are all that trains; actions are kept for the diagnostic label accuracy.
Minari is an optional extra (`pip install 'bco-lightning[minari]'`), imported only when used.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from bco_lightning.data.expert_file import ExpertDemonstrations
from bco_lightning.demonstrators import play_episodes
from bco_lightning.envs import make_env
from bco_lightning.errors import ConfigError, ExpertFileError

MINARI_PREFIX = "minari:"


def is_minari_source(expert_path: str | os.PathLike) -> bool:
    return str(expert_path).startswith(MINARI_PREFIX)


def _import_minari(source: str) -> ModuleType:
    try:
        import minari
    except ImportError:
        raise ExpertFileError(source, "reading a Minari dataset needs Minari: pip install 'bco-lightning[minari]'") from None
    return minari


def datasets_root() -> str:
    """Where Minari keeps local datasets (its own rule: `MINARI_DATASETS_PATH`, else ~/.minari/datasets)."""
    return os.environ.get("MINARI_DATASETS_PATH") or os.path.join(os.path.expanduser("~"), ".minari", "datasets")


def load_minari_expert(source: str, env_id: str) -> ExpertDemonstrations:
    """The local Minari dataset named by `source` ("minari:ID") as state-only demonstrations.

    Raises `ExpertFileError` (naming the source) when the dataset is missing, was recorded in another
    environment than `env_id`, or its observations are not a flat vector.
    """
    dataset_id = source[len(MINARI_PREFIX):]
    if not dataset_id:
        raise ExpertFileError(source, "no dataset id after 'minari:': expected minari:DATASET_ID, e.g. minari:cartpole/expert-v0")
    minari = _import_minari(source)
    try:
        dataset = minari.load_dataset(dataset_id, download=False)
    except FileNotFoundError:
        raise ExpertFileError(
            source, f"no local Minari dataset {dataset_id!r} under {datasets_root()} (bco never downloads; set MINARI_DATASETS_PATH)"
        ) from None
    except Exception as error:  # Minari raises several types for ids it cannot parse or files it cannot read
        raise ExpertFileError(source, f"not a readable Minari dataset ({type(error).__name__}: {error})") from None
    recorded_env = dataset.env_spec.id if dataset.env_spec is not None else None
    if recorded_env is not None and recorded_env != env_id:
        raise ExpertFileError(source, f"recorded in {recorded_env}, but the environment is {env_id}")
    observations, actions, lengths, returns = [], [], [], []
    for episode in dataset.iterate_episodes():
        obs = episode.observations
        if not isinstance(obs, np.ndarray) or obs.ndim != 2:
            raise ExpertFileError(source, "observations must be flat vectors (a Box space); dict, tuple and image observations are not supported")
        observations.append(obs.astype(np.float32, copy=False))
        actions.append(np.asarray(episode.actions))
        lengths.append(obs.shape[0])
        returns.append(float(np.sum(episode.rewards)))
    if not observations:
        raise ExpertFileError(source, "the dataset holds no episodes: expected at least one")
    try:
        return ExpertDemonstrations(
            observations=np.concatenate(observations),
            episode_lengths=np.asarray(lengths, dtype=np.int64),
            episode_returns=np.asarray(returns, dtype=np.float64),
            env_id=recorded_env,
            actions=np.concatenate(actions),
        )
    except ValueError as error:
        raise ExpertFileError(source, str(error)) from None


def record_minari(
    dataset_id: str,
    env_id: str,
    controller: Callable[[np.ndarray], Any],
    episodes: int,
    seed: int,
    env_kwargs: dict[str, Any] | None = None,
) -> np.ndarray:
    """Record `episodes` episodes of `controller` as the local Minari dataset `dataset_id`.

    Whole episodes go to Minari's `create_dataset_from_buffers` (its `DataCollector` would need
    jax). Minari refuses to replace an existing dataset, and so does this. Returns the returns.
    """
    minari = _import_minari(f"{MINARI_PREFIX}{dataset_id}")
    from minari.data_collector import EpisodeBuffer

    if dataset_id in minari.list_local_datasets():
        raise ConfigError(f"Minari dataset {dataset_id!r} exists under {datasets_root()}; delete it first (minari delete {dataset_id})")
    played = list(play_episodes(env_id, controller, episodes, seed, env_kwargs))
    buffers = [
        EpisodeBuffer(
            id=number, seed=episode.seed, observations=episode.observations, actions=episode.actions, rewards=episode.rewards.tolist(),
            terminations=[False] * (len(episode.rewards) - 1) + [episode.terminated],
            truncations=[False] * (len(episode.rewards) - 1) + [not episode.terminated],
        )
        for number, episode in enumerate(played)
    ]
    spec_env = make_env(env_id, env_kwargs)  # its spec carries the kwargs too (e.g. continuous=True)
    spec_env.close()
    try:
        with warnings.catch_warnings():  # Minari nags about unset author, e-mail and code link
            warnings.simplefilter("ignore", UserWarning)
            minari.create_dataset_from_buffers(
                dataset_id, buffers, env=spec_env.spec, algorithm_name="bco record (scripted controller)",
                description=f"{env_id} scripted controller, {episodes} episodes from seed {seed}",
            )
    except ValueError as error:  # e.g. an id Minari cannot parse
        raise ConfigError(f"Minari refused dataset {dataset_id!r}: {error}") from None
    return np.asarray([episode.total_reward for episode in played])
