"""The IDM pictures show the numbers they are drawn from."""

from __future__ import annotations

import numpy as np

from bco_lightning.diagnostics import VIRIDIS, confusion_matrix, error_image, error_per_dimension, idm_image


def test_confusion_matrix_counts_true_rows_and_inferred_columns():
    counts = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 2, 0]), 3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_a_perfect_idm_is_a_bright_diagonal_on_a_dark_matrix():
    """Rates of 1 take viridis' yellow, rates of 0 its dark purple: a 3x3 matrix of a perfect IDM
    has exactly three yellow cells, and they lie on a diagonal."""
    actions = np.repeat(np.arange(3), 50)
    image = idm_image(actions, actions, discrete=True, num_actions=3, half_range=None, title="perfect")
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    yellow = np.all(np.abs(image.astype(np.int64) - VIRIDIS[-1]) <= 2, axis=-1)
    dark = np.all(np.abs(image.astype(np.int64) - VIRIDIS[0]) <= 2, axis=-1)
    assert 1.5 < dark.sum() / yellow.sum() < 2.5  # six dark cells, three bright ones (each less its text)
    # the bright cells run from top left to bottom right (three cells on a diagonal: correlation 8/9)
    rows, columns = np.nonzero(yellow)
    assert np.corrcoef(rows, columns)[0, 1] > 0.8


def test_error_bars_grow_with_each_dimensions_error():
    true = np.zeros((100, 3))
    inferred = np.tile([0.1, 0.4, 0.2], (100, 1))
    errors = error_per_dimension(true, inferred, half_range=np.array([1.0, 1.0, 2.0]))
    assert np.allclose(errors, [0.1, 0.4, 0.1])  # dimension 2 has twice the range
    image = error_image(errors, "bars")
    bar = np.all(image == (31, 119, 180), axis=-1)
    columns = np.nonzero(bar.any(axis=0))[0]
    # three bars, separated by gaps; the middle one four times as tall as the others
    groups = np.split(columns, np.nonzero(np.diff(columns) > 1)[0] + 1)
    assert len(groups) == 3
    tallest = [max(int(bar[:, c].sum()) for c in group) for group in groups]
    assert abs(tallest[1] / tallest[0] - 4) < 0.2 and abs(tallest[0] - tallest[2]) <= 1
