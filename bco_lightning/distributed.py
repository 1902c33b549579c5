"""Sharing work between the processes of a DDP run without hangs.

Rollouts and evaluation episodes are split across ranks, each rank works on its share with its own
seeds, and the shares are gathered in rank order so that every rank holds the same result. A rank
whose share fails still takes part in the gather, so the others learn of the failure and all raise
the same error instead of waiting forever for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch.distributed as dist

T = TypeVar("T")
RANK_SEED_STRIDE = 100_003
"""Rank r seeds its share of rollouts with seed + r * RANK_SEED_STRIDE; rank 0 keeps the 1-process seeds."""


def share(total: int, rank: int, world_size: int) -> int:
    """Rank `rank`'s part of `total` items: equal parts, the remainder to the lowest ranks."""
    return total // world_size + int(rank < total % world_size)


def gather_shares(work: Callable[[], T], world_size: int) -> list[T]:
    """Run `work` on every rank and return all ranks' results in rank order (on every rank).

    An exception on any rank is re-raised on every rank: the same exception, so that each process
    ends with the error that a 1-process run would have given.
    """
    if world_size == 1 or not dist.is_available() or not dist.is_initialized():
        return [work()]
    result: T | None = None
    error: BaseException | None = None
    try:
        result = work()
    except Exception as caught:  # shared below, so that no rank waits for a result that never comes
        error = caught
    gathered: list = [None] * world_size
    dist.all_gather_object(gathered, (result, error))
    if error is not None:
        raise error
    failures = [failure for _, failure in gathered if failure is not None]
    if failures:
        raise failures[0]
    return [part for part, _ in gathered]


def is_rank_zero() -> bool:
    """True in the process that writes files: global rank 0, known from the launcher's environment
    even before the Trainer sets up the process group."""
    from pytorch_lightning.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0
