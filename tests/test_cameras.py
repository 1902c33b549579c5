"""The CartPole camera: gymnasium's picture, with the sub-pixel motion a real camera would show."""

from __future__ import annotations

import numpy as np
import pytest

from bco_lightning.cameras import cartpole_frame
from bco_lightning.pixels import make_camera_env
from bco_lightning.video import make_rendering_env


@pytest.mark.parametrize("state", [(0.0, 0.0, 0.0, 0.0), (0.7, 0.0, 0.15, 0.0), (-2.3, 0.0, -0.2, 0.0), (0.3, 0.0, 1.4, 0.0)])
def test_the_camera_draws_gymnasiums_scene(state) -> None:
    """Same size, layout and colours as gymnasium's render: only edge pixels differ, by their shading."""
    env = make_rendering_env("CartPole-v1")
    try:
        env.reset(seed=0)
        env.unwrapped.state = np.array(state)
        reference = env.render().astype(np.int64)
    finally:
        env.close()
    frame = cartpole_frame(np.array(state))
    assert frame.shape == reference.shape == (400, 600, 3) and frame.dtype == np.uint8
    difference = np.abs(frame - reference)
    assert difference.mean() < 0.5
    assert (difference.max(axis=2) > 60).mean() < 0.005  # edge pixels, not a shape in another place
    assert (frame < 128).sum() == pytest.approx((reference < 128).sum(), rel=0.1)  # pygame fills polygons a little wider


def test_motion_under_a_pixel_shows_in_the_frame() -> None:
    """Moving the cart by 1 mm (an eighth of a pixel), or tilting the pole by 0.5 mrad (its tip moves a
    sixteenth of a pixel), changes the frame, and the cart's shading moves its centre by that eighth."""
    still = np.array([0.1, 0.0, 0.02, 0.0])
    for moved in (still + [0.001, 0, 0, 0], still + [0, 0, 0.0005, 0]):
        assert np.abs(cartpole_frame(still).astype(np.int64) - cartpole_frame(moved)).max() >= 5
    cart_rows = slice(300, 314)  # y from 86 to 99: the cart under the track, nothing else

    def cart_centre(x: float) -> float:
        darkness = 255.0 - cartpole_frame(np.array([x, 0.0, 0.0, 0.0]))[cart_rows, :, 0]
        return float((darkness.sum(axis=0) * (np.arange(600) + 0.5)).sum() / darkness.sum())

    assert cart_centre(0.101) - cart_centre(0.1) == pytest.approx(0.125, abs=0.02)


def test_pixel_cartpole_films_through_the_camera() -> None:
    env = make_camera_env("CartPole-v1")
    try:
        env.reset(seed=3)
        env.step(1)
        np.testing.assert_array_equal(env.render(), cartpole_frame(env.unwrapped.state))
    finally:
        env.close()
