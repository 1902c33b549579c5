"""`BCODataModule`: interaction transitions for the IDM, labelled expert states for the policy.

All data lives in memory as tensors and is served in whole batches by index (no per-sample
`__getitem__` and collate), which keeps small-MLP training at the speed of the model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from bco_lightning.data.expert_file import ExpertDemonstrations, check_matches_env, load_expert_file
from bco_lightning.data.rollouts import Transitions, collect_transitions
from bco_lightning.envs import ConfigError, EnvSpec, describe_env

Stage = Literal["idm", "policy"]
REPO_DATA = Path(__file__).resolve().parents[2] / "data"


def resolve_expert_path(expert_path: str) -> Path:
    """A relative path is read from the working directory, else from the repository's `data/`."""
    path = Path(expert_path)
    if not path.is_absolute() and not path.exists() and path.parts and path.parts[0] == "data":
        shipped = REPO_DATA.joinpath(*path.parts[1:])
        if shipped.exists():
            return shipped
    return path


class TensorDictDataset(Dataset):
    """Named tensors of equal length, indexed by a whole batch of indices at once."""

    def __init__(self, **tensors: Tensor) -> None:
        lengths = {name: len(t) for name, t in tensors.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"tensors must have equal lengths, got {lengths}")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, index: Tensor) -> dict[str, Tensor]:
        return {name: t[index] for name, t in self.tensors.items()}


class BatchIndexSampler(Sampler[Tensor]):
    """Yields index tensors of whole batches: a fresh seeded permutation each epoch, or in order."""

    def __init__(self, size: int, batch_size: int, shuffle: bool, seed: int = 0) -> None:
        self.size = size
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return (self.size + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[Tensor]:
        order = torch.randperm(self.size, generator=self.generator) if self.shuffle else torch.arange(self.size)
        yield from order.split(self.batch_size)


def batch_loader(dataset: TensorDictDataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    sampler = BatchIndexSampler(len(dataset), batch_size, shuffle, seed)
    # batch_size=None: each sampled index tensor is one batch, fetched by a single tensor index.
    return DataLoader(dataset, sampler=sampler, batch_size=None)


def default_pre_demo_steps(spec: EnvSpec) -> int:
    """Random-exploration budget that grows with the dimensions the IDM must untangle."""
    return int(np.clip(5000 * (spec.obs_dim + spec.action_dim), 20_000, 500_000))


class BCODataModule(pl.LightningDataModule):
    """Owns every piece of data of a BCO run: rollouts, the expert file, splits and labels.

    Args:
        env_id: gymnasium environment id.
        env_kwargs: keyword arguments for `gymnasium.make`, e.g. `{"continuous": true}`.
        expert_path: expert state file (`.npz`, see the README for the format).
        pre_demo_steps: pre-demonstration interactions `|I_pre|`; None scales them with the
            observation and action dimensions (5000 per dimension, 20k to 500k).
        num_envs: sub-environments stepped together during collection and evaluation.
        val_fraction: share of transitions (IDM) and expert pairs (policy) held out for validation.
        batch_size: training batch size of both stages.
        max_expert_episodes: use only the first N expert episodes (None: all).
        idm_checkpoint: IDM checkpoint that labels the expert states when the policy stage is
            trained on its own (`bco fit --model BCPolicyModule`).
        seed: seed of rollouts and splits; None takes the one given to `seed_everything`.
    """

    def __init__(
        self,
        env_id: str = "CartPole-v1",
        env_kwargs: dict[str, Any] | None = None,
        expert_path: str = "data/CartPole-v1.npz",
        pre_demo_steps: int | None = None,
        num_envs: int = 8,
        val_fraction: float = 0.1,
        batch_size: int = 256,
        max_expert_episodes: int | None = None,
        idm_checkpoint: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if pre_demo_steps is not None and pre_demo_steps < 1:
            raise ConfigError(f"--data.pre_demo_steps must be >= 1, got {pre_demo_steps}")
        if not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"--data.val_fraction must be in (0, 1), got {val_fraction}")
        if batch_size < 1 or num_envs < 1:
            raise ConfigError(f"--data.batch_size and --data.num_envs must be >= 1, got {batch_size}, {num_envs}")
        if max_expert_episodes is not None and max_expert_episodes < 1:
            raise ConfigError(f"--data.max_expert_episodes must be >= 1, got {max_expert_episodes}")
        self.save_hyperparameters()
        self.env_id = env_id
        self.env_kwargs = env_kwargs or {}
        self.expert_path = resolve_expert_path(expert_path)
        self.num_envs = num_envs
        self.val_fraction = val_fraction
        self.batch_size = batch_size
        self.max_expert_episodes = max_expert_episodes
        self.idm_checkpoint = idm_checkpoint
        self.seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) if seed is None else seed
        self.spec: EnvSpec = describe_env(env_id, self.env_kwargs)
        self.pre_demo_steps = pre_demo_steps or default_pre_demo_steps(self.spec)
        self.stage: Stage = "idm"
        self.interaction: Transitions | None = None
        self.expert_labels: np.ndarray | None = None

    # Shapes for the models, linked with `link_arguments(..., apply_on="instantiate")`.
    @property
    def model_shapes(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "obs_dim": spec.obs_dim,
            "action_dim": spec.action_dim,
            "discrete": spec.discrete,
            "action_low": list(spec.action_low) if spec.action_low else None,
            "action_high": list(spec.action_high) if spec.action_high else None,
        }

    @cached_property
    def expert(self) -> ExpertDemonstrations:
        """The validated expert file (raises `ExpertFileError` naming the file and the problem)."""
        demos = load_expert_file(self.expert_path)
        check_matches_env(demos, self.expert_path, (self.spec.obs_dim,), self.env_id)
        if self.max_expert_episodes is not None:
            demos = demos.take_episodes(self.max_expert_episodes)
        return demos

    @cached_property
    def expert_pairs(self) -> np.ndarray:
        return self.expert.pair_indices()

    def add_interaction(self, transitions: Transitions) -> None:
        self.interaction = transitions if self.interaction is None else Transitions.concatenate([self.interaction, transitions])

    def collect_pre_demonstration(self) -> int:
        """Uniform-random interaction `I_pre`; returns the number of environment steps taken."""
        self.add_interaction(
            collect_transitions(self.env_id, self.env_kwargs, self.pre_demo_steps, self.seed, num_envs=self.num_envs)
        )
        return self.pre_demo_steps

    def setup(self, stage: str) -> None:
        self.expert  # fail early on a bad file
        if self.trainer is not None:
            self.stage = getattr(self.trainer.lightning_module, "data_stage", self.stage)
        if self.stage == "idm" and self.interaction is None:
            self.collect_pre_demonstration()
        if self.stage == "policy" and self.expert_labels is None:
            self._label_from_checkpoint()

    def _label_from_checkpoint(self) -> None:
        if self.idm_checkpoint is None:
            raise ConfigError(
                "the policy stage needs labelled expert states: pass --data.idm_checkpoint IDM.ckpt "
                "(or run the whole pipeline with `bco run`)"
            )
        from bco_lightning.idm import IDMModule

        idm = IDMModule.load_from_checkpoint(self.idm_checkpoint, map_location="cpu")
        self.expert_labels = idm.label(self.expert.observations, self.expert_pairs, self.batch_size * 16)

    # Splits -----------------------------------------------------------------------------------
    def _num_val(self, size: int) -> int:
        return max(1, int(round(size * self.val_fraction)))

    def _split(self, size: int) -> tuple[Tensor, Tensor]:
        order = torch.randperm(size, generator=torch.Generator().manual_seed(self.seed + 1))
        num_val = self._num_val(size)
        return order[num_val:], order[:num_val]

    def _idm_tensors(self) -> dict[str, Tensor]:
        if self.interaction is None:
            raise RuntimeError("no interaction transitions yet: call setup() or collect_pre_demonstration()")
        return {
            "obs": torch.from_numpy(self.interaction.observations),
            "next_obs": torch.from_numpy(self.interaction.next_observations),
            "action": torch.from_numpy(self.interaction.actions),
        }

    def _expert_pair_tensors(self) -> dict[str, Tensor]:
        """Expert pairs `(s_t, s_{t+1})` inside episodes, in time order."""
        obs = torch.from_numpy(self.expert.observations)
        pairs = torch.from_numpy(self.expert_pairs)
        return {"obs": obs[pairs], "next_obs": obs[pairs + 1]}

    def _policy_tensors(self) -> dict[str, Tensor]:
        if self.expert_labels is None:
            raise RuntimeError("the expert states are not labelled yet")
        return {
            "obs": torch.from_numpy(self.expert.observations[self.expert_pairs]),
            "action": torch.from_numpy(self.expert_labels),
        }

    def _split_tensors(self, part: Literal["train", "val"]) -> dict[str, Tensor]:
        tensors = self._idm_tensors() if self.stage == "idm" else self._policy_tensors()
        size = len(next(iter(tensors.values())))
        train, val = self._split(size)
        index = train if part == "train" else val
        return {name: t[index] for name, t in tensors.items()}

    def normalization_tensors(self) -> dict[str, Tensor]:
        """Statistics sources for the input and target normalisers of the current stage.

        States (`obs`, `next_obs`) are every pair the run has seen, interaction and expert: expert
        states alone can be nearly constant (a controller holding an equilibrium), and standardising
        with their tiny spread would blow up the small deviations met at evaluation time. `action`
        holds the current stage's training labels.
        """
        parts = [self._expert_pair_tensors()]
        if self.interaction is not None:
            parts.append(self._idm_tensors())
        tensors = {key: torch.cat([part[key] for part in parts]) for key in ("obs", "next_obs")}
        tensors["action"] = self._split_tensors("train")["action"]
        return tensors

    def num_train_samples(self) -> int:
        """Size of the current stage's training split."""
        size = len(self.expert_pairs) if self.stage == "policy" else len(self.interaction or ())
        return size - self._num_val(size)

    def train_dataloader(self) -> DataLoader:
        return batch_loader(TensorDictDataset(**self._split_tensors("train")), self.batch_size, True, self.seed)

    def val_dataloader(self) -> DataLoader:
        return batch_loader(TensorDictDataset(**self._split_tensors("val")), self.batch_size * 16, False)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        """Expert pairs `(s_t, s_{t+1})` in time order, for labelling with the IDM."""
        return batch_loader(TensorDictDataset(**self._expert_pair_tensors()), self.batch_size * 16, False)
