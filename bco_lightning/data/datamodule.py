"""`BCODataModule`: interaction transitions for the IDM, labelled expert states for the policy.

All data lives in memory as tensors and is served in whole batches by index (no per-sample
`__getitem__` and collate), which keeps small-MLP training at the speed of the model.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor

from bco_lightning.data.expert_file import ExpertDemonstrations, check_matches_env, load_expert_file
from bco_lightning.data.frames import previous_rows, resize_frames, stack_index
from bco_lightning.data.minari_source import is_minari_source, load_minari_expert
from bco_lightning.data.rollouts import Policy, RandomPlay, Transitions, collect_transitions
from bco_lightning import seeds
from bco_lightning.distributed import gather_shares, share
from bco_lightning.envs import EnvSpec, describe_env
from bco_lightning.errors import ExpertFileError, SettingError
from bco_lightning.pixels import PixelSettings, describe_pixel_env
from bco_lightning.resources import resolve_expert_path

Stage = Literal["idm", "policy"]
Observation = Literal["state", "pixels"]
PolicyFactory = Callable[[int], Policy]
"""Makes the exploration policy of one rank (its argument), e.g. with a rank-specific seed."""
MAX_NORMALIZATION_SAMPLES = 1_000_000
DEFAULT_PIXEL_PRE_DEMO_STEPS = 50_000


@dataclass(frozen=True)
class ExampleTable:
    """Training examples over states stored once, fetched a whole batch of rows at a time.

    Example i is `obs = states[obs_index[i]]`, with `next_obs = states[next_index[i]]` (IDM) and
    `action = actions[i]` when given. Pairs are gathered per batch, never copied up front. With
    `stacks` (frames: `(M, frame_stack)` rows of the frames that end at each stored row, from
    `stack_index`), `obs` is the stack `states[stacks[obs_index[i]]]`, `(frame_stack, H, W[, 3])`.
    """

    states: Tensor
    obs_index: Tensor
    next_index: Tensor | None = None
    actions: Tensor | None = None
    stacks: Tensor | None = None

    def __post_init__(self) -> None:
        for name in ("next_index", "actions"):
            value = getattr(self, name)
            if value is not None and len(value) != len(self.obs_index):
                raise ValueError(f"{name} has {len(value)} rows, obs_index {len(self.obs_index)}")

    def __len__(self) -> int:
        return len(self.obs_index)

    def _observations(self, stored_rows: Tensor) -> Tensor:
        return self.states[stored_rows if self.stacks is None else self.stacks[stored_rows]]

    def batch(self, rows: Tensor) -> dict[str, Tensor]:
        batch = {"obs": self._observations(self.obs_index[rows])}
        if self.next_index is not None:
            batch["next_obs"] = self._observations(self.next_index[rows])
        if self.actions is not None:
            batch["action"] = self.actions[rows]
        return batch


DEFAULT_BATCHES_PER_STEP = 8
"""Training batches per Lightning step in `bco run` (see `BCODataModule`'s `batches_per_step`)."""


class BatchLoader:
    """Batches of an `ExampleTable`, for Lightning (which takes any sized iterable as a loader).

    Shuffled: a fresh seeded permutation of `rows` each epoch, the same on every rank, cut into
    `world_size` equal shards so that no example is seen twice in an epoch and every rank takes the
    same number of steps (up to `world_size - 1` examples sit out each epoch, different ones each
    time). In order: rank r takes every `world_size`-th row, all rows covered.

    A torch `DataLoader` with a per-sample `Dataset` would collate each example in Python; even a
    batch sampler adds work per batch that a small MLP's step notices, so batches are one index.

    With `group` > 1 each item is a list of up to `group` consecutive batches, which the modules
    take as one Lightning step with one optimiser step per batch (see `ActionModel.training_step`).
    """

    def __init__(
        self,
        table: ExampleTable,
        rows: Tensor,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        group: int = 1,
    ) -> None:
        self.table = table
        self.rows = rows
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.group = group
        self.generator = torch.Generator().manual_seed(seed)

    def shard_size(self) -> int:
        if self.shuffle:
            return len(self.rows) // self.world_size
        return len(range(self.rank, len(self.rows), self.world_size))

    def __len__(self) -> int:
        batches = -(-self.shard_size() // self.batch_size)
        return -(-batches // self.group)

    def epoch_rows(self) -> Tensor:
        """This rank's rows for the next epoch, in the order they are served."""
        if not self.shuffle:
            return self.rows[self.rank :: self.world_size]
        order = self.rows[torch.randperm(len(self.rows), generator=self.generator)]
        return order[: self.shard_size() * self.world_size][self.rank :: self.world_size]

    def __iter__(self) -> Iterator[dict[str, Tensor] | list[dict[str, Tensor]]]:
        batch_rows = self.epoch_rows().split(self.batch_size)
        if self.group == 1:
            for rows in batch_rows:
                yield self.table.batch(rows)
            return
        for start in range(0, len(batch_rows), self.group):
            yield [self.table.batch(rows) for rows in batch_rows[start : start + self.group]]


def default_pre_demo_steps(spec: EnvSpec) -> int:
    """Random-exploration budget that grows with the square of the dimensions the IDM must untangle.

    The state-action volume to cover grows faster than its dimension: at 5000 x (obs + action dim)
    HalfCheetah's IDM labelled 87.5% of the demonstrations right and the policy scored 0.59; at
    500k steps, 93.9% and 0.96 (seed 0 each).
    """
    if spec.obs_shape is not None:
        return DEFAULT_PIXEL_PRE_DEMO_STEPS  # frames: the pixel count says nothing about the state
    return int(np.clip(1000 * (spec.obs_dim + spec.action_dim) ** 2, 20_000, 500_000))


def lookahead_rows(rows: np.ndarray, previous_row: np.ndarray, steps: int) -> np.ndarray:
    """The row `steps` frames after each of `rows` in its episode, or the episode's last row where
    it ends sooner, by inverting the `previous_row` links."""
    following = np.arange(len(previous_row), dtype=np.int64)
    has_past = previous_row != following
    following[previous_row[has_past]] = np.flatnonzero(has_past)
    rows = np.asarray(rows, dtype=np.int64)
    for _ in range(steps):
        rows = following[rows]
    return rows


class BCODataModule(pl.LightningDataModule):
    """Owns every piece of data of a BCO run: rollouts, the expert file, splits and labels.

    Args:
        env_id: gymnasium environment id.
        env_kwargs: keyword arguments for `gymnasium.make`, e.g. `{"continuous": true}`.
        expert_path: expert state file (`.npz`, see the README for the format), or
            `minari:DATASET_ID` for a local Minari dataset.
        pre_demo_steps: pre-demonstration interactions `|I_pre|`; None scales them with the
            observation and action dimensions: 1000 x (obs dim + action dim)^2, 20k to 500k
            (50k for pixels).
        random_play: how the pre-demonstration interaction plays (`RandomPlay`): by default
            uniform random actions, as in BCO; sticky actions (`repeat`) and narrower `low`/`high`
            bounds or `probabilities` make random play go where a demonstrator goes (a car that drives);
            `zero_probability` holds a Box dimension at 0 part of the time (a released pedal).
        observation: "state" learns from the environment's state vectors; "pixels" from its camera:
            the rendered `rgb_array` frame (an image observation such as CarRacing's as it is),
            resized to `image_size` and stacked over `frame_stack` frames, and the expert file
            must hold frames (of any size: they are resized the same way).
        image_size: pixels only: frames are resized to this many pixels square.
        grayscale: pixels only: one luma channel instead of RGB.
        frame_stack: pixels only: an observation is the last this many frames, so that motion is visible.
        idm_lookahead: pixels only: the IDM's second stack ends this many frames after `s_t`
            (1: `s' = stack_{t+1}`). A simulator that integrates with explicit Euler, as
            CartPole-v1 does, moves by an action only in the frame after next: its config uses 2.
        expert_skip_frames: drop the first this many observations of every expert episode (a
            recording's start screen, CarRacing's zoom-in); the policy never sees them.
        num_envs: sub-environments stepped together during collection and evaluation.
        async_envs: step each sub-environment in a worker process (gymnasium's `AsyncVectorEnv`):
            the same transitions and returns, faster where a step costs more than a process hop
            (CarRacing's rendering) on a machine with a core per sub-environment to spare.
        val_fraction: share of transitions (IDM) and expert pairs (policy) held out for validation,
            drawn from each collection of transitions on its own, so that a transition keeps its
            side as BCO(alpha)'s interaction grows.
        batch_size: training batch size of both stages (one optimiser step per batch).
        batches_per_step: training batches that one Lightning step takes, with one optimiser
            step each. Lightning's fixed cost per step (0.2 to 0.5 ms on a laptop-class CPU) is
            15 to 25% of a batch-256 step of these small MLPs; 8 batches share it. The
            optimisation is the same for any value.
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
        random_play: RandomPlay | None = None,
        num_envs: int = 16,
        async_envs: bool = False,
        val_fraction: float = 0.1,
        batch_size: int = 256,
        batches_per_step: int = DEFAULT_BATCHES_PER_STEP,
        max_expert_episodes: int | None = None,
        idm_checkpoint: str | None = None,
        observation: Observation = "state",
        image_size: int = 64,
        grayscale: bool = True,
        frame_stack: int = 2,
        idm_lookahead: int = 1,
        expert_skip_frames: int = 0,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        at_least_one = {"pre_demo_steps": pre_demo_steps, "batch_size": batch_size, "num_envs": num_envs}
        at_least_one |= {"batches_per_step": batches_per_step, "max_expert_episodes": max_expert_episodes}
        at_least_one |= {"image_size": image_size, "frame_stack": frame_stack, "idm_lookahead": idm_lookahead}
        for name, value in at_least_one.items():
            if value is not None and value < 1:
                raise SettingError(f"`{name}` must be >= 1, got {value}", owner="BCODataModule")
        if not 0.0 < val_fraction < 1.0:
            raise SettingError(f"`val_fraction` must be in (0, 1), got {val_fraction}", owner="BCODataModule")
        if observation not in ("state", "pixels"):
            raise SettingError(f"`observation` must be state or pixels, got {observation!r}", owner="BCODataModule")
        if expert_skip_frames < 0:
            raise SettingError(f"`expert_skip_frames` must be >= 0, got {expert_skip_frames}", owner="BCODataModule")
        if observation == "state" and idm_lookahead != 1:
            raise SettingError(f"`idm_lookahead` {idm_lookahead} needs `observation` pixels (state vectors hold velocities)", owner="BCODataModule")
        self.save_hyperparameters()
        # as plain data: a checkpoint must load with torch.load(weights_only=True), which refuses classes
        self.hparams["random_play"] = None if random_play is None else asdict(random_play)
        self.env_id = env_id
        self.env_kwargs = env_kwargs or {}
        self.expert_path: Path | str = expert_path if is_minari_source(expert_path) else resolve_expert_path(expert_path)
        self.num_envs = num_envs
        self.async_envs = async_envs
        self.val_fraction = val_fraction
        self.batch_size = batch_size
        self.batches_per_step = batches_per_step
        self.max_expert_episodes = max_expert_episodes
        self.idm_checkpoint = idm_checkpoint
        self.seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) if seed is None else seed
        self.pixels = PixelSettings(image_size, grayscale, frame_stack) if observation == "pixels" else None
        self.idm_lookahead = idm_lookahead
        self.expert_skip_frames = expert_skip_frames
        if self.pixels is None:
            self.spec: EnvSpec = describe_env(env_id, self.env_kwargs)
        else:
            self.spec = describe_pixel_env(env_id, self.env_kwargs, self.pixels)
        self.pre_demo_steps = pre_demo_steps or default_pre_demo_steps(self.spec)
        self.random_play = random_play or RandomPlay()
        self.random_play.check(self.spec)
        # Which model the next fit trains, so which data it serves: whoever drives the fit sets it
        # (`BCORun`, `bco fit`, or a user's own loop), to a model's `data_stage`.
        self.stage: Stage = "idm"
        self.interaction: Transitions | None = None
        # Transitions per collection, in the order `interaction` holds them: the split keeps each
        # collection's rows on their side as later collections are appended (`_split`).
        self.collection_sizes: list[int] = []
        self.expert_labels: np.ndarray | None = None
        self.pending_collection: tuple[int, int, PolicyFactory | None] | None = None
        self._stack_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # see `_stacks_of`
        self.show_progress = False  # `bco run` turns on the collection progress bar

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
            "obs_shape": list(spec.obs_shape) if spec.obs_shape is not None else None,
        }

    @cached_property
    def expert(self) -> ExpertDemonstrations:
        """The validated expert file (raises `ExpertFileError` naming the file and the problem)."""
        if is_minari_source(self.expert_path):
            demos = load_minari_expert(self.expert_path, self.env_id)
        else:
            demos = load_expert_file(self.expert_path)
        check_matches_env(demos, self.expert_path, self.spec.observation_shape, self.env_id)
        if self.max_expert_episodes is not None:
            demos = demos.take_episodes(self.max_expert_episodes)
        if self.expert_skip_frames:
            try:
                demos = demos.skip_first(self.expert_skip_frames)
            except ValueError as error:
                raise ExpertFileError(self.expert_path, f"with `expert_skip_frames` {self.expert_skip_frames}: {error}") from None
        return demos

    @cached_property
    def expert_observations(self) -> np.ndarray:
        """The expert's observations as the networks see them: its state vectors, or its frames
        resized once to `image_size` (one row per frame; stacks are gathered by index)."""
        if self.pixels is None:
            return self.expert.observations
        return resize_frames(self.expert.observations, self.pixels.image_size, self.pixels.grayscale)

    @cached_property
    def _expert_previous_rows(self) -> np.ndarray:
        return previous_rows(self.expert.episode_lengths)

    @cached_property
    def expert_pairs(self) -> np.ndarray:
        return self.expert.pair_indices()

    def add_interaction(self, transitions: Transitions) -> None:
        """Append one collection of transitions: the validation split draws from it on its own,
        so the transitions already held keep their sides (train or validation)."""
        self.interaction = transitions if self.interaction is None else Transitions.concatenate([self.interaction, transitions])
        self.collection_sizes.append(len(transitions))

    def restore_interaction(self, transitions: Transitions, collection_sizes: list[int]) -> None:
        """Hold `transitions` made of the collections `collection_sizes` (a resumed run's)."""
        if sum(collection_sizes) != len(transitions) or min(collection_sizes, default=1) < 0:
            raise ValueError(f"collection sizes {collection_sizes} do not add up to the {len(transitions)} transitions")
        self.interaction, self.collection_sizes = transitions, list(collection_sizes)

    def request_collection(self, steps: int, seed: int, policy: PolicyFactory | None = None) -> None:
        """Collect `steps` interactions when the next IDM stage sets up (inside the Trainer, where
        every DDP process exists): `policy(rank)` explores, None is uniform random."""
        self.pending_collection = (steps, seed, policy)

    def _collect(self, steps: int, seed: int, policy: PolicyFactory | None) -> None:
        """Every rank collects its share with its own seeds; all ranks get all shares, in rank order."""
        rank, world_size = self._rank()

        def my_share() -> Transitions:
            explore = None if policy is None else policy(rank)
            rank_seed = seeds.for_rank(seed, rank)
            bar = f"collect {steps:,} steps" if self.show_progress and rank == 0 else None
            return collect_transitions(
                self.env_id, self.env_kwargs, share(steps, rank, world_size), rank_seed, explore, self.num_envs, bar, self.pixels, self.random_play, self.async_envs
            )

        self.add_interaction(Transitions.concatenate(gather_shares(my_share, world_size)))

    def setup(self, stage: str) -> None:
        self.expert  # fail early on a bad file
        model_stage = getattr(self.trainer.lightning_module, "data_stage", None) if self.trainer is not None else None
        if model_stage is not None and model_stage != self.stage:
            # Never serve one model the other's data: refuse, rather than guess for the caller.
            raise SettingError(
                f"the datamodule serves {self.stage!r} data but the model trains on {model_stage!r} data: "
                f"set the datamodule's `stage` to {model_stage!r} before this fit",
                owner="BCODataModule",
            )
        if self.stage == "idm" and self.interaction is None and self.pending_collection is None:
            self.request_collection(self.pre_demo_steps, self.seed)
        if self.stage == "idm" and self.pending_collection is not None:
            steps, seed, policy = self.pending_collection
            self._collect(steps, seed, policy)
            self.pending_collection = None
        if self.stage == "policy" and self.expert_labels is None:
            self._label_from_checkpoint()

    def _label_from_checkpoint(self) -> None:
        if self.idm_checkpoint is None:
            raise SettingError(
                "the policy stage needs labelled expert states: set `idm_checkpoint` to an IDM checkpoint "
                "(or run the whole pipeline with `bco run`)",
                owner="BCODataModule",
            )
        from bco_lightning.idm import IDMModule

        idm = IDMModule.load_from_checkpoint(self.idm_checkpoint, map_location="cpu")
        self.expert_labels = self.label_expert(idm, self.batch_size * 16)

    def label_expert(self, idm: Any, batch_size: int = 4096) -> np.ndarray:
        """The IDM's most likely action for every expert pair, in time order (`expert_pairs`)."""
        if self.pixels is None:
            return idm.label(self.expert.observations, self.expert_pairs, batch_size)
        return idm.label_table(self._expert_pair_table(), batch_size)

    # Splits -----------------------------------------------------------------------------------
    def _num_val(self, size: int) -> int:
        return max(1, int(round(size * self.val_fraction))) if size else 0

    def _split(self, block_sizes: list[int]) -> tuple[Tensor, Tensor]:
        """Train and validation rows of a table made of consecutive blocks (the interaction's
        collections; the expert pairs are one block). Each block is split on its own, by the next
        permutation of one seeded generator, so appending a block moves no row to the other side:
        redrawing the split of the grown table put 82% of BCO(alpha)'s next validation set among
        the transitions the warm-started IDM had trained on. One block is split as it always was."""
        generator = torch.Generator().manual_seed(seeds.for_split(self.seed))
        train, val, offset = [], [], 0
        for size in block_sizes:
            order = torch.randperm(size, generator=generator) + offset
            num_val = self._num_val(size)
            train.append(order[num_val:])
            val.append(order[:num_val])
            offset += size
        return torch.cat(train), torch.cat(val)

    def _interaction_blocks(self) -> list[int]:
        assert self.interaction is not None
        if sum(self.collection_sizes) != len(self.interaction):
            raise RuntimeError(
                f"the interaction holds {len(self.interaction)} transitions but its collections add up to "
                f"{sum(self.collection_sizes)}: give transitions with add_interaction() or restore_interaction()"
            )
        return self.collection_sizes

    def _stage_blocks(self) -> list[int]:
        return self._interaction_blocks() if self.stage == "idm" else [len(self.expert_pairs)]

    def _interaction_table(self) -> ExampleTable:
        if self.interaction is None:
            raise RuntimeError("no interaction transitions yet: call setup() first")
        interaction = self.interaction
        if self.pixels is None:
            return ExampleTable(
                torch.from_numpy(interaction.observations),
                torch.from_numpy(interaction.obs_index),
                torch.from_numpy(interaction.next_index),
                torch.from_numpy(interaction.actions),
            )
        return self._frame_table(interaction.observations, interaction.previous_row, interaction.obs_index, interaction.actions)

    def _frame_table(self, frames: np.ndarray, previous_row: np.ndarray | None, obs_index: np.ndarray, actions: np.ndarray | None) -> ExampleTable:
        """Examples over frames stored once: stack rows by index, `s'` `idm_lookahead` frames on."""
        assert self.pixels is not None and previous_row is not None
        stacks = self._stacks_of(previous_row)
        next_index = lookahead_rows(obs_index, previous_row, self.idm_lookahead)
        return ExampleTable(
            torch.from_numpy(frames),
            torch.from_numpy(np.asarray(obs_index, dtype=np.int64)),
            torch.from_numpy(next_index),
            None if actions is None else torch.from_numpy(actions),
            torch.from_numpy(stacks),
        )

    def _stacks_of(self, previous_row: np.ndarray) -> np.ndarray:
        """`stack_index` of every stored frame, built once per frame store (train, validation,
        normalisation and labelling all ask): the expert's, and the latest interaction's, which
        is a new array whenever the interaction grows."""
        assert self.pixels is not None
        store = "expert" if previous_row is self._expert_previous_rows else "interaction"
        cached = self._stack_cache.get(store)
        if cached is None or cached[0] is not previous_row:
            cached = (previous_row, stack_index(np.arange(len(previous_row)), previous_row, self.pixels.frame_stack))
            self._stack_cache[store] = cached
        return cached[1]

    def _expert_pair_table(self, labelled: bool = False) -> ExampleTable:
        """Expert pairs `(s_t, s_{t+1})` inside episodes, in time order; with the IDM's labels."""
        if labelled and self.expert_labels is None:
            raise RuntimeError("the expert states are not labelled yet")
        if self.pixels is not None:
            labels_array = self.expert_labels if labelled else None
            return self._frame_table(self.expert_observations, self._expert_previous_rows, self.expert_pairs, labels_array)
        pairs = torch.from_numpy(self.expert_pairs)
        labels = torch.from_numpy(self.expert_labels) if labelled else None
        return ExampleTable(torch.from_numpy(self.expert.observations), pairs, pairs + 1, labels)

    def _stage_table(self) -> ExampleTable:
        return self._interaction_table() if self.stage == "idm" else self._expert_pair_table(labelled=True)

    def normalization_tensors(self, max_samples: int = MAX_NORMALIZATION_SAMPLES) -> dict[str, Tensor]:
        """Statistics sources for the input and target normalisers of the current stage.

        States (`obs`, `next_obs`) are every pair the run has seen, interaction and expert: expert
        states alone can be nearly constant (a controller holding an equilibrium), and standardising
        with their tiny spread would blow up the small deviations met at evaluation time. `action`
        holds the current stage's training labels. Beyond `max_samples` rows, a seeded random
        subset stands in for each, so that memory stays bounded on huge interaction sets.
        """
        generator = torch.Generator().manual_seed(seeds.for_normalization(self.seed))

        def at_most(rows: Tensor, count: int) -> Tensor:
            return rows if len(rows) <= count else rows[torch.randperm(len(rows), generator=generator)[:count]]

        if self.pixels is not None:
            # Frames need no statistics (the networks scale them by 1/255): only the labels do.
            table = self._stage_table()
            train, _ = self._split(self._stage_blocks())
            assert table.actions is not None
            return {"action": table.actions[at_most(train, max_samples)]}

        tables = [self._expert_pair_table()]
        if self.interaction is not None:
            tables.append(self._interaction_table())
        total = sum(len(table) for table in tables)
        parts = [table.batch(at_most(torch.arange(len(table)), max(1, max_samples * len(table) // total))) for table in tables]
        tensors = {key: torch.cat([part[key] for part in parts]) for key in ("obs", "next_obs")}
        table = self._stage_table()
        train, _ = self._split(self._stage_blocks())
        assert table.actions is not None
        tensors["action"] = table.actions[at_most(train, max_samples)]
        return tensors

    def idm_validation_transitions(self) -> dict[str, Tensor]:
        """The IDM's held-out transitions `obs`, `next_obs`, `action` (for diagnostics)."""
        table = self._interaction_table()
        _, val = self._split(self._interaction_blocks())
        return table.batch(val)

    def num_train_samples(self) -> int:
        """Size of the current stage's training split (all ranks together), counting a requested
        collection that the stage's setup has yet to make."""
        if self.stage == "policy":
            blocks = [len(self.expert_pairs)]
        else:
            blocks = list(self.collection_sizes) + ([self.pending_collection[0]] if self.pending_collection else [])
        return sum(size - self._num_val(size) for size in blocks)

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> BatchLoader:
        table = self._stage_table()
        train, _ = self._split(self._stage_blocks())
        rank, world_size = self._rank()
        return BatchLoader(table, train, self.batch_size, True, self.seed, rank, world_size, self.batches_per_step)

    def val_dataloader(self) -> BatchLoader:
        table = self._stage_table()
        _, val = self._split(self._stage_blocks())
        rank, world_size = self._rank()
        return BatchLoader(table, val, self.batch_size * 16, False, rank=rank, world_size=world_size)

    def test_dataloader(self) -> BatchLoader:
        return self.val_dataloader()

    def predict_dataloader(self) -> BatchLoader:
        """Expert pairs `(s_t, s_{t+1})` in time order, for labelling with the IDM."""
        table = self._expert_pair_table()
        return BatchLoader(table, torch.arange(len(table)), self.batch_size * 16, False)
