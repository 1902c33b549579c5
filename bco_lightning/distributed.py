"""Sharing work between the processes of a DDP run without hangs.

Rollouts and evaluation episodes are split across ranks, each rank works on its share with its own
seeds, and the shares are gathered in rank order so that every rank holds the same result. A rank
whose share fails still takes part in the gather, so the others learn of the failure and all raise
the same error instead of waiting forever for it.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import torch.distributed as dist

T = TypeVar("T")
_launched: list[list[subprocess.Popen]] = []


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


def track_launched_processes(trainer: Any) -> None:
    """Remember the DDP processes that this Trainer's launcher starts, so that an error exit can
    wait for them instead of leaving them to print after the command has returned."""
    procs = getattr(trainer.strategy.launcher, "procs", None)
    if isinstance(procs, list) and not any(procs is known for known in _launched):
        _launched.append(procs)


def wait_for_launched_ranks(timeout: float = 30.0) -> None:
    """Wait for the DDP processes this process launched (killing any still running after `timeout` s)."""
    for proc in (proc for procs in _launched for proc in procs):
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


def exit_without_teardown(status: int) -> NoReturn:
    """End the process now: flush the standard streams, run the atexit handlers (logging, worker
    processes), then `os._exit`.

    This skips Python's final teardown, which frees every loaded module's objects one by one: with
    torch and Lightning loaded that takes over a second (1.2 s on a 2-core machine) and leaves
    nothing behind that the operating system does not clean up anyway. It also skips the C++
    destructors of a gloo/NCCL process group, which can abort with "terminate called without an
    active exception". Callers close their files (and TensorBoard writers) first.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(status)


def exit_after_error(message: str, status: int = 2) -> NoReturn:
    """End this process after a known error that every rank met (DDP shares rollout failures, and
    files and configuration are the same on every rank): rank 0 prints the one line and waits for
    the processes it launched; the other ranks leave silently.

    A rank 0 without launched ranks raises `SystemExit` (callers in the same process, such as tests,
    see the status); launched ranks and a rank 0 that launched them leave without teardown.
    """
    if is_rank_zero():
        print(message, file=sys.stderr)
        wait_for_launched_ranks()
        if not any(_launched):
            sys.exit(status)
    exit_without_teardown(status)
