"""Pictures of how well the IDM infers actions, for TensorBoard.

Discrete actions: a confusion matrix (rows: true action, columns: inferred, each row normalised).
Box actions: the mean absolute error of each action dimension, in the unit box. Both are drawn for
the IDM's validation transitions and, when the expert file has its diagnostic `actions`, for the
labels it gave the demonstrations.

Drawn with Pillow, not matplotlib: these two small charts need boxes and text only, and with
matplotlib installed every `import pytorch_lightning` also imports it (torchmetrics' plotting),
which cost `bco run` about half a second before any work.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_SIZE = 12
MARGIN = 8
# A few stops of matplotlib's viridis, interpolated linearly: dark for 0, yellow for 1.
VIRIDIS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)
BAR_COLOR = (31, 119, 180)


def confusion_matrix(true: np.ndarray, inferred: np.ndarray, num_actions: int) -> np.ndarray:
    """`(num_actions, num_actions)` counts: row = true action, column = inferred action."""
    counts = np.zeros((num_actions, num_actions), dtype=np.int64)
    np.add.at(counts, (true.reshape(-1).astype(np.int64), inferred.reshape(-1).astype(np.int64)), 1)
    return counts


def error_per_dimension(true: np.ndarray, inferred: np.ndarray, half_range: np.ndarray) -> np.ndarray:
    """Mean absolute error of each action dimension, as a fraction of its half-range."""
    return np.mean(np.abs(inferred - true.reshape(inferred.shape)) / half_range, axis=0)


def viridis(value: float) -> tuple[int, int, int]:
    """The colour of `value` in [0, 1]."""
    position = float(np.clip(value, 0.0, 1.0)) * (len(VIRIDIS) - 1)
    low = min(int(position), len(VIRIDIS) - 2)
    color = VIRIDIS[low] + (position - low) * (VIRIDIS[low + 1] - VIRIDIS[low])
    return (int(round(color[0])), int(round(color[1])), int(round(color[2])))


def _canvas(width: int, height: int, lines: list[str]) -> tuple[Image.Image, ImageDraw.ImageDraw, ImageFont.FreeTypeFont | ImageFont.ImageFont, int]:
    """A white image with `lines` of text at the top; returns it, its pen, the font and the y below the text."""
    font = ImageFont.load_default(size=FONT_SIZE)
    line_height = FONT_SIZE + 4
    width = max(width, MARGIN * 3 + max(int(font.getlength(line)) for line in lines))
    image = Image.new("RGB", (width, height + len(lines) * line_height), "white")
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        draw.text((MARGIN, MARGIN // 2 + row * line_height), line, fill="black", font=font)
    return image, draw, font, len(lines) * line_height


def confusion_image(counts: np.ndarray, title: str) -> np.ndarray:
    """The row-normalised confusion matrix as an `(H, W, 3)` uint8 image, each cell with its rate."""
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n = len(counts)
    cell = max(24, 48 - 2 * n)
    label_width = 3 * FONT_SIZE
    grid = n * cell
    image, draw, font, top = _canvas(label_width + grid + 2 * MARGIN, label_width + grid + MARGIN, [title, "rows: true action, columns: inferred action"])
    left, top = label_width, top + label_width
    for index in range(n):
        center = index * cell + cell // 2
        draw.text((left + center, top - MARGIN), str(index), fill="black", font=font, anchor="md")
        draw.text((left - MARGIN, top + center), str(index), fill="black", font=font, anchor="rm")
    for (row, column), rate in np.ndenumerate(rates):
        x, y = left + column * cell, top + row * cell
        draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=viridis(rate))
        if cell >= 28:
            text_color = "white" if rate < 0.6 else "black"
            draw.text((x + cell // 2, y + cell // 2), f"{rate:.2f}", fill=text_color, font=font, anchor="mm")
    return np.asarray(image)


def error_image(errors: np.ndarray, title: str) -> np.ndarray:
    """A bar per action dimension (its mean absolute error over the half-range) as an `(H, W, 3)` uint8 image."""
    bar, gap, plot_height = 28, 10, 120
    scale = plot_height / max(float(errors.max(initial=0.0)), 1e-12)
    width = MARGIN * 2 + len(errors) * (bar + gap)
    image, draw, font, top = _canvas(width, plot_height + 3 * FONT_SIZE + MARGIN, [title, "mean |error| / half-range, per action dimension"])
    baseline = top + FONT_SIZE + 4 + plot_height
    for index, error in enumerate(errors):
        x, bar_top = MARGIN + index * (bar + gap), baseline - round(float(error) * scale)
        draw.rectangle((x, bar_top, x + bar - 1, baseline), fill=BAR_COLOR)
        draw.text((x + bar // 2, bar_top - 2), f"{error:.3f}", fill="black", font=font, anchor="md")
        draw.text((x + bar // 2, baseline + 4), str(index), fill="black", font=font, anchor="ma")
    draw.line((MARGIN, baseline, width - MARGIN, baseline), fill="black")
    return np.asarray(image)


def idm_image(true: np.ndarray, inferred: np.ndarray, discrete: bool, num_actions: int, half_range: np.ndarray | None, title: str) -> np.ndarray:
    if discrete:
        return confusion_image(confusion_matrix(true, inferred, num_actions), title)
    assert half_range is not None
    return error_image(error_per_dimension(true, inferred, half_range), title)
