"""Which iteration's policy a run keeps, and when the iterations stop.

The kept policy is chosen on selection episodes with their own seeds, never on the evaluation's:
choosing on the episodes that are then reported would report the luckiest iteration.
"""

from __future__ import annotations

import torch

from bco_lightning.callbacks import normalized_score
from bco_lightning.data.rollouts import EvaluationResult
from bco_lightning.policy import BCPolicyModule
from bco_lightning.run_folder import RunFolder


def replaces_kept_policy(selection_mean: float, kept_mean: float | None) -> bool:
    """The selection rule: an iteration's policy replaces the kept one if it returns at least as
    much on the selection episodes (ties go to the later iteration, which has seen more interaction)."""
    return kept_mean is None or selection_mean >= kept_mean


def out_of_patience(iteration: int, kept_iteration: int, patience: int | None) -> bool:
    """Whether an iteration patience ends the iterations after `iteration`: that many in a row have
    not replaced the policy kept from `kept_iteration`."""
    return patience is not None and iteration - kept_iteration >= patience


def reaches_stop_score(selection_mean: float, random_return: float | None, demonstrator_return: float | None, stop_score: float | None) -> bool:
    """Whether a kept policy's selection mean is good enough to end the iterations."""
    if stop_score is None:
        return False
    score = normalized_score(selection_mean, random_return, demonstrator_return)
    return score is not None and score >= stop_score


class PolicySelection:
    """Keeps the best policy so far (in memory and in `state/selected_policy.pt`) and says when to stop."""

    def __init__(self, folder: RunFolder, policy: BCPolicyModule, stop_score: float | None, patience: int | None) -> None:
        self.folder = folder
        self.policy = policy
        self.stop_score = stop_score
        self.patience = patience
        self._kept_state: dict[str, torch.Tensor] | None = None

    def consider(self, iteration: int, selection: EvaluationResult) -> None:
        """Keep this iteration's policy if `replaces_kept_policy` says so."""
        progress = self.folder.progress
        progress.selection_steps += int(selection.lengths.sum())
        progress.history[-1]["selection/return_mean"] = selection.mean_return
        if not replaces_kept_policy(selection.mean_return, progress.selection_return):
            return
        progress.selected_iteration = iteration
        progress.selection_return = selection.mean_return
        progress.selected_eval_returns = list(progress.eval_returns)
        progress.selected_eval_lengths = list(progress.eval_lengths)
        progress.selected_policy_checkpoint = progress.policy_checkpoint
        self._kept_state = {name: t.detach().clone() for name, t in self.policy.state_dict().items()}
        self.folder.save_weights(self.policy, "selected_policy")

    def stop_reason(self, iteration: int, demonstrator_return: float | None) -> str | None:
        """Why the iterations end after `iteration` ("stop_score", "iteration_patience"), or None.

        Decided from the committed progress alone, so that a resumed run stops where it would have.
        """
        progress = self.folder.progress
        kept = progress.selection_return
        if kept is not None and reaches_stop_score(kept, progress.random_return, demonstrator_return, self.stop_score):
            return "stop_score"
        if out_of_patience(iteration, progress.selected_iteration or 0, self.patience):
            return "iteration_patience"
        return None

    def load_kept_policy(self) -> None:
        """Put the kept policy's weights into the policy module (from memory, or from a resumed run's state)."""
        if self.folder.progress.selected_iteration is not None:
            self.policy.load_state_dict(self._kept_state or self.folder.load_weights("selected_policy", self.policy.device))
