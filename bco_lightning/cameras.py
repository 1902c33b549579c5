"""Cameras that film a simulator the way a real camera would, where its own `render()` does not.

A real camera integrates light over each pixel, so an edge that moves by a tenth of a pixel changes
that pixel's brightness. pygame's CartPole render snaps every vertex to whole pixels: at its native
600x400, 51% of the scripted controller's consecutive frames are byte-identical
(`benchmarks/pixel_visibility.md`), so neither an IDM nor a policy can see what the controller
reacts to. `cartpole_frame` draws the same scene, with the same geometry and colours, with each
pixel's brightness set by how much of it a shape covers.
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np

WIDTH, HEIGHT = 600, 400  # CartPole-v1's render size
CART_COLOR = np.array([0.0, 0.0, 0.0], dtype=np.float32)
POLE_COLOR = np.array([202.0, 152.0, 101.0], dtype=np.float32)
AXLE_COLOR = np.array([129.0, 132.0, 203.0], dtype=np.float32)
CART_WIDTH, CART_HEIGHT, POLE_WIDTH = 50.0, 30.0, 10.0
TRACK_Y = 100.0  # the cart's middle and the track, in pixels above the bottom edge


def _interval_coverage(low: float, high: float, start: int, stop: int) -> np.ndarray:
    """How much of each unit pixel [i, i + 1), i in [start, stop), lies inside [low, high]."""
    edges = np.arange(start, stop, dtype=np.float64)
    return np.clip(np.minimum(edges + 1, high) - np.maximum(edges, low), 0.0, 1.0)


def _box(low: float, high: float, size: int) -> tuple[int, int]:
    """The whole pixels [start, stop) that [low, high] touches, within [0, size)."""
    return max(int(np.floor(low)) - 1, 0), min(int(np.ceil(high)) + 1, size)


def _paint(image: np.ndarray, x: tuple[int, int], y: tuple[int, int], coverage: np.ndarray, color: np.ndarray) -> None:
    """Blend `color` over the pixels x[0]..x[1], y[0]..y[1] (y up from the bottom edge) by `coverage` (y, x)."""
    rows = slice(HEIGHT - y[1], HEIGHT - y[0])  # row r holds y in [H-1-r, H-r)
    patch = image[rows, x[0] : x[1]].astype(np.float32)
    patch += coverage[::-1, :, None] * (color - patch)
    image[rows, x[0] : x[1]] = np.rint(patch)


def cartpole_frame(state: np.ndarray, x_threshold: float = 2.4, pole_half_length: float = 0.5) -> np.ndarray:
    """CartPole's `rgb_array` frame (400, 600, 3) uint8 for `state` (x, x_dot, theta, theta_dot):
    gymnasium's layout (a 50x30 cart on the track 100 px above the bottom, a 10 px pole from the
    axle, the axle's disc), each pixel shaded by the share of it that each shape covers."""
    scale = WIDTH / (2 * x_threshold)
    cart_x, theta = float(state[0]) * scale + WIDTH / 2, float(state[2])
    image = np.full((HEIGHT, WIDTH, 3), 255, dtype=np.uint8)
    left, right, bottom, top = cart_x - CART_WIDTH / 2, cart_x + CART_WIDTH / 2, TRACK_Y - CART_HEIGHT / 2, TRACK_Y + CART_HEIGHT / 2
    x, y = _box(left, right, WIDTH), _box(bottom, top, HEIGHT)
    if x[0] < x[1]:
        _paint(image, x, y, np.outer(_interval_coverage(bottom, top, *y), _interval_coverage(left, right, *x)), CART_COLOR)
    # the pole and the axle, by the distance of each pixel centre to the shape
    axle_x, axle_y = cart_x, TRACK_Y + CART_HEIGHT / 4
    pole_length = scale * 2 * pole_half_length
    tip_x, tip_y = axle_x + np.sin(theta) * pole_length, axle_y + np.cos(theta) * pole_length
    x = _box(min(axle_x, tip_x) - POLE_WIDTH, max(axle_x, tip_x) + POLE_WIDTH, WIDTH)
    y = _box(min(axle_y, tip_y) - POLE_WIDTH, max(axle_y, tip_y) + POLE_WIDTH, HEIGHT)
    if x[0] >= x[1] or y[0] >= y[1]:
        return _with_track(image)
    dx = np.arange(*x)[None, :] + 0.5 - axle_x
    dy = np.arange(*y)[:, None] + 0.5 - axle_y
    across = dx * np.cos(theta) - dy * np.sin(theta)  # the pole points along (sin theta, cos theta)
    along = dx * np.sin(theta) + dy * np.cos(theta)
    outside_across = np.abs(across) - POLE_WIDTH / 2
    outside_along = np.abs(along - (pole_length / 2 - POLE_WIDTH / 2)) - pole_length / 2
    distance = np.hypot(np.maximum(outside_across, 0), np.maximum(outside_along, 0)) + np.minimum(
        np.maximum(outside_across, outside_along), 0
    )
    _paint(image, x, y, np.clip(0.5 - distance, 0.0, 1.0), POLE_COLOR)
    _paint(image, x, y, np.clip(0.5 - (np.hypot(dx, dy) - POLE_WIDTH / 2), 0.0, 1.0), AXLE_COLOR)
    return _with_track(image)


def _with_track(image: np.ndarray) -> np.ndarray:
    image[HEIGHT - 1 - int(TRACK_Y)] = 0  # the track: one black row, drawn last as gymnasium does
    return image


class Camera(gym.Wrapper):
    """`render()` returns `draw(env.unwrapped)` instead of the simulator's own frame."""

    def __init__(self, env: gym.Env, draw: Callable[[Any], np.ndarray]) -> None:
        super().__init__(env)
        self.draw = draw

    def render(self) -> np.ndarray:
        return self.draw(self.env.unwrapped)


CAMERAS: dict[str, Callable[[Any], np.ndarray]] = {
    "CartPole-v1": lambda env: cartpole_frame(env.state, env.x_threshold, env.length),
}
"""Simulators filmed by a camera of ours (`Camera`), by gymnasium id."""
