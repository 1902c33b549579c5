"""Every seed of a run, derived from its one `seed_everything` seed in one place.

Each stream gets its own offset, so that no two draw the same episodes or permutations: the
evaluation episodes are never the selection's, a rank's rollouts never another rank's, and a unit
of work replayed after a crash re-seeds exactly as it did the first time.
"""

from __future__ import annotations

RANK_STRIDE = 100_003
"""Rank r seeds its share of rollouts and evaluation with seed + r * RANK_STRIDE; rank 0 keeps the
one-process seeds."""
UNIT_STRIDE = 7_919
POST_DEMO_OFFSET = 1_000
EVALUATION_OFFSET = 10_000
SELECTION_OFFSET = 20_000
SPLIT_OFFSET = 1
NORMALIZATION_OFFSET = 2


def for_rank(seed: int, rank: int) -> int:
    """The seed of one DDP rank's share of a rollout or evaluation."""
    return seed + RANK_STRIDE * rank


def for_unit(seed: int, unit_index: int) -> int:
    """What every RNG is seeded with before a unit of work (`idm-k` is 2k, `policy-k` is 2k + 1)."""
    return seed + UNIT_STRIDE * unit_index


def for_collection(seed: int, iteration: int) -> int:
    """The environments' seed of iteration k's interactions (k = 0: pre-demonstration)."""
    return seed + POST_DEMO_OFFSET * iteration


def for_exploration(seed: int, iteration: int) -> int:
    """The exploring policy's own sampling seed in iteration k's post-demonstration rollouts."""
    return seed + iteration


def for_evaluation(seed: int) -> int:
    """The first evaluation episode's seed (`bco evaluate --seed` gives a run's episodes back)."""
    return seed + EVALUATION_OFFSET


def for_selection(seed: int) -> int:
    """The first selection episode's seed: held out from the evaluation's."""
    return seed + SELECTION_OFFSET


def for_split(seed: int) -> int:
    """The train/validation permutation of transitions and expert pairs."""
    return seed + SPLIT_OFFSET


def for_normalization(seed: int) -> int:
    """The subset that stands in for huge data sets when normalisers are fitted."""
    return seed + NORMALIZATION_OFFSET
