"""Pictures of how well the IDM infers actions, for TensorBoard.

Discrete actions: a confusion matrix (rows: true action, columns: inferred, each row normalised).
Box actions: the mean absolute error of each action dimension, in the unit box. Both are drawn for
the IDM's validation transitions and, when the expert file has its diagnostic `actions`, for the
labels it gave the demonstrations.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # headless: draw into memory, never open a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def confusion_matrix(true: np.ndarray, inferred: np.ndarray, num_actions: int) -> np.ndarray:
    """`(num_actions, num_actions)` counts: row = true action, column = inferred action."""
    counts = np.zeros((num_actions, num_actions), dtype=np.int64)
    np.add.at(counts, (true.reshape(-1).astype(np.int64), inferred.reshape(-1).astype(np.int64)), 1)
    return counts


def error_per_dimension(true: np.ndarray, inferred: np.ndarray, half_range: np.ndarray) -> np.ndarray:
    """Mean absolute error of each action dimension, as a fraction of its half-range."""
    return np.mean(np.abs(inferred - true.reshape(inferred.shape)) / half_range, axis=0)


def figure_rgb(figure: Figure) -> np.ndarray:
    """The figure as an `(H, W, 3)` uint8 image."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="raw", dpi=figure.dpi)
    width, height = figure.canvas.get_width_height()
    plt.close(figure)
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8).reshape(height, width, -1)[..., :3].copy()


def confusion_image(counts: np.ndarray, title: str) -> np.ndarray:
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(3.0, 1.2 + 0.5 * len(counts))
    figure, axes = plt.subplots(figsize=(size + 1, size), dpi=100)
    image = axes.imshow(rates, vmin=0, vmax=1, cmap="viridis")
    for (row, column), rate in np.ndenumerate(rates):
        axes.text(column, row, f"{rate:.2f}", ha="center", va="center", color="white" if rate < 0.6 else "black", fontsize=8)
    axes.set_xticks(np.arange(len(counts)))
    axes.set_yticks(np.arange(len(counts)))
    axes.set_xlabel("inferred action")
    axes.set_ylabel("true action")
    axes.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    return figure_rgb(figure)


def error_image(errors: np.ndarray, title: str) -> np.ndarray:
    figure, axes = plt.subplots(figsize=(max(4.0, 1.5 + 0.5 * len(errors)), 3), dpi=100)
    axes.bar(np.arange(len(errors)), errors)
    axes.set_xticks(np.arange(len(errors)))
    axes.set_xlabel("action dimension")
    axes.set_ylabel("mean |error| / half-range")
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    return figure_rgb(figure)


def idm_image(true: np.ndarray, inferred: np.ndarray, discrete: bool, num_actions: int, half_range: np.ndarray | None, title: str) -> np.ndarray:
    if discrete:
        return confusion_image(confusion_matrix(true, inferred, num_actions), title)
    assert half_range is not None
    return error_image(error_per_dimension(true, inferred, half_range), title)
