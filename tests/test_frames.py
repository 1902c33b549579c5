"""Frames as observations: the one resize, frame stacks by index, and the expert-file frame contract."""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from bco_lightning.data.expert_file import ExpertDemonstrations, load_expert_file, save_expert_file
from bco_lightning.data.frames import RESAMPLE, resize_frames, stack_rows
from bco_lightning.errors import ExpertFileError, SettingError
from helpers import assert_names_problem


def random_frames(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def cartpole_frames(steps: int) -> np.ndarray:
    """`steps + 1` real 400x600x3 frames rendered by CartPole (pygame, no display needed)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env = gym.make("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=0)
    frames = [env.render()]
    for step in range(steps):
        env.step(step % 2)
        frames.append(env.render())
    env.close()
    return np.stack(frames)


# ---- resize_frames --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 96, 96, 3), (2, 400, 600, 3), (2, 600, 400, 3), (4, 17, 5), (1, 64, 64, 3), (2, 8, 8)])
@pytest.mark.parametrize("grayscale", [True, False])
def test_resize_gives_uint8_squares_of_any_input_shape(shape, grayscale):
    out = resize_frames(random_frames(shape), 64, grayscale)
    assert out.dtype == np.uint8
    assert out.shape == ((shape[0], 64, 64) if grayscale else (shape[0], 64, 64, 3))


def test_gray_is_pillow_luma_taken_before_the_resize():
    frames = random_frames((2, 40, 70, 3))
    expected = [
        np.asarray(Image.fromarray(frame).convert("L").resize((32, 32), resample=RESAMPLE, reducing_gap=None))
        for frame in frames
    ]
    np.testing.assert_array_equal(resize_frames(frames, 32, grayscale=True), np.stack(expected))


def test_gray_input_to_rgb_repeats_the_channel():
    out = resize_frames(random_frames((2, 30, 20)), 16, grayscale=False)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 0], out[..., 2])
    np.testing.assert_array_equal(out[..., 0], resize_frames(random_frames((2, 30, 20)), 16, grayscale=True))


def test_same_frame_gives_same_bytes_alone_in_a_batch_or_as_a_view():
    frames = random_frames((5, 96, 96, 3))
    batch = resize_frames(frames, 64, True)
    alone = resize_frames(frames[2:3].copy(), 64, True)
    assert alone.tobytes() == batch[2:3].tobytes()
    fortran = np.asfortranarray(frames)
    assert resize_frames(fortran, 64, True).tobytes() == batch.tobytes()


def test_rendered_cartpole_frame_resizes_to_identical_bytes_twice():
    frame = cartpole_frames(0)
    assert frame.shape == (1, 400, 600, 3) and frame.dtype == np.uint8
    for grayscale in (True, False):
        first, second = resize_frames(frame, 64, grayscale), resize_frames(frame.copy(), 64, grayscale)
        assert first.tobytes() == second.tobytes()


def test_frame_file_round_trip_then_resize_equals_direct_resize(tmp_path):
    frames = cartpole_frames(5)
    demos = ExpertDemonstrations(frames, np.array([3, 3]), env_id="CartPole-v1")
    path = save_expert_file(tmp_path / "frames.npz", demos)
    loaded = load_expert_file(path)
    assert loaded.observations.dtype == np.uint8 and loaded.is_frames
    for grayscale in (True, False):
        assert resize_frames(loaded.observations, 64, grayscale).tobytes() == resize_frames(frames, 64, grayscale).tobytes()


@pytest.mark.parametrize(("shape", "vertical"), [((400, 600), True), ((400, 600), False), ((96, 96), True)])
def test_a_one_pixel_line_stays_visible_at_every_position(shape, vertical):
    """The filter's reason to be chosen: a 1-px line (a pole, a track) survives the downscale."""
    positions = shape[1] if vertical else shape[0]
    frames = np.zeros((positions, *shape), np.uint8)
    for position in range(positions):
        if vertical:
            frames[position, :, position] = 255
        else:
            frames[position, position, :] = 255
    peaks = resize_frames(frames, 64, True).reshape(positions, -1).max(axis=1)
    # the box filter's floor (1 / the scale factor, in 0..255); bilinear falls to 14 / 20 / 85
    assert peaks.min() >= {(400, 600, True): 25, (400, 600, False): 36, (96, 96, True): 128}[(*shape, vertical)]


@pytest.mark.parametrize(
    ("frames", "words"),
    [
        (np.zeros((2, 8, 8, 3), np.float32), ("uint8", "float32")),
        (np.zeros((2, 8, 8), np.int64), ("uint8", "int64")),
        (np.zeros((8, 8), np.uint8), ("shape", "(8, 8)")),
        (np.zeros((2, 8, 8, 3, 1), np.uint8), ("shape",)),
        (np.zeros((2, 8, 8, 4), np.uint8), ("3 channels", "4")),
        (np.zeros((2, 8, 8, 1), np.uint8), ("3 channels", "1")),
        (np.zeros((2, 0, 8), np.uint8), ("empty",)),
        (np.zeros((0, 8, 8, 3), np.uint8), ("empty",)),
        ([[[0]]], ("numpy array",)),
    ],
    ids=["float", "int64", "2d", "5d", "4_channels", "1_channel", "zero_height", "no_frames", "list"],
)
def test_resize_refuses_bad_frames_in_one_line(frames, words):
    with pytest.raises(ValueError) as info:
        resize_frames(frames, 64, True)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("image_size", [0, -3, True, 2.5])
def test_resize_refuses_a_bad_image_size_as_a_setting(image_size):
    with pytest.raises(SettingError) as info:
        resize_frames(random_frames((1, 8, 8)), image_size, True)
    assert info.value.settings() == ["image_size"]


# ---- stack_rows -----------------------------------------------------------------------------------


def test_stack_rows_small_example():
    rows = stack_rows(np.array([3, 2]), 2)
    assert rows.dtype == np.int64
    np.testing.assert_array_equal(rows, [[0, 0], [0, 1], [1, 2], [3, 3], [3, 4]])


def test_stack_rows_of_one_is_every_row_and_longer_stacks_repeat_the_first():
    np.testing.assert_array_equal(stack_rows(np.array([2, 3]), 1), [[0], [1], [2], [3], [4]])
    np.testing.assert_array_equal(stack_rows(np.array([2]), 4), [[0, 0, 0, 0], [0, 0, 0, 1]])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=10), st.integers(min_value=1, max_value=6))
def test_no_stack_mixes_episodes(lengths, frame_stack):
    lengths = np.array(lengths)
    episode_of_row = np.repeat(np.arange(len(lengths)), lengths)
    first_row = np.repeat(np.cumsum(lengths) - lengths, lengths)
    rows = stack_rows(lengths, frame_stack)
    assert rows.shape == (lengths.sum(), frame_stack) and rows.dtype == np.int64
    assert np.all(episode_of_row[rows] == episode_of_row[:, None])  # never spans two episodes
    np.testing.assert_array_equal(rows[:, -1], np.arange(lengths.sum()))  # ends at t
    assert np.all(np.diff(rows, axis=1) >= 0) and np.all(np.diff(rows, axis=1) <= 1)  # oldest first, consecutive
    expected = np.maximum(np.arange(lengths.sum())[:, None] - np.arange(frame_stack - 1, -1, -1), first_row[:, None])
    np.testing.assert_array_equal(rows, expected)


def test_stack_rows_gathers_frames_without_copying_per_sample():
    frames = random_frames((5, 4, 4))
    stacks = frames[stack_rows(np.array([3, 2]), 2)]
    assert stacks.shape == (5, 2, 4, 4)
    np.testing.assert_array_equal(stacks[3, 0], frames[3])  # episode 2's first frame repeats
    np.testing.assert_array_equal(stacks[2], frames[1:3])


@pytest.mark.parametrize(
    ("lengths", "frame_stack", "error"),
    [
        (np.array([3, 0]), 2, ValueError),
        (np.array([3, -1]), 2, ValueError),
        (np.array([3.0]), 2, ValueError),
        (np.array([[3]]), 2, ValueError),
        (np.array([3]), 0, SettingError),
        (np.array([3]), True, SettingError),
    ],
    ids=["zero_length", "negative_length", "float_lengths", "2d_lengths", "zero_stack", "bool_stack"],
)
def test_stack_rows_refuses_bad_input(lengths, frame_stack, error):
    with pytest.raises(error):
        stack_rows(lengths, frame_stack)


# ---- the expert-file frame contract ---------------------------------------------------------------


@pytest.mark.parametrize("frame_shape", [(16, 16), (16, 16, 3), (12, 20, 3)], ids=["gray", "rgb", "non_square"])
def test_valid_frame_file_round_trips_as_uint8(tmp_path, frame_shape):
    frames = random_frames((7, *frame_shape))
    demos = ExpertDemonstrations(frames, np.array([3, 4]), np.array([1.0, 2.0]), "CartPole-v1", np.zeros(5, np.int64))
    path = save_expert_file(tmp_path / "frames.npz", demos)
    loaded = load_expert_file(path)
    assert loaded.observations.dtype == np.uint8
    np.testing.assert_array_equal(loaded.observations, frames)
    assert loaded.is_frames and loaded.obs_shape == frame_shape
    assert loaded.num_transitions == 5 and loaded.env_id == "CartPole-v1"
    np.testing.assert_array_equal(loaded.pair_indices(), [0, 1, 3, 4, 5])
    first = loaded.take_episodes(1)
    assert first.is_frames and first.observations.shape == (3, *frame_shape)


def test_state_file_is_not_frames(cartpole_demos):
    assert not cartpole_demos.is_frames and cartpole_demos.obs_shape == (4,)


def test_frames_are_kept_as_given_and_loaded_as_uint8(tmp_path):
    """No float copy anywhere: the container keeps the array it is given, the loader keeps uint8."""
    frames = random_frames((6, 16, 16, 3))
    assert ExpertDemonstrations(frames, np.array([2, 4])).observations is frames
    path = tmp_path / "frames.npz"
    np.savez(path, observations=frames, episode_lengths=np.array([2, 4]))
    assert load_expert_file(path).observations.dtype == np.uint8


BAD_FRAME_FILES = {
    "float_out_of_range": (
        {"observations": np.linspace(-3.2, 412.0, 6 * 16 * 16, dtype=np.float32).reshape(6, 16, 16)},
        ("float32 frames", "[-3.2, 412.0]", "out of 0..255", "uint8"),
    ),
    "float_in_range": (
        {"observations": np.full((6, 16, 16, 3), 0.5, np.float64)},
        ("float64 frames", "[0.5, 0.5]", "must be uint8"),
    ),
    "float_nan": (
        {"observations": np.full((6, 16, 16), np.nan, np.float32)},
        ("float32 frames", "nan", "uint8"),
    ),
    "int64_frames": (
        {"observations": np.zeros((6, 16, 16), np.int64)},
        ("int64 frames", "uint8"),
    ),
    "uint8_2d_is_a_state_file": (
        {"observations": np.zeros((6, 16), np.uint8)},
        ("must be a float array", "uint8"),
    ),
    "one_frame_episode": (
        {"observations": np.zeros((6, 16, 16), np.uint8), "episode_lengths": np.array([5, 1])},
        ("episode 1", "1 observation", "at least 2"),
    ),
    "zero_size_frames": (
        {"observations": np.zeros((6, 0, 16), np.uint8)},
        ("(0, 16)", "height and width", ">= 1"),
    ),
    "four_channels": (
        {"observations": np.zeros((6, 16, 16, 4), np.uint8)},
        ("(16, 16, 4)", "4 channels", "(T, H, W, 3)"),
    ),
    "five_dims": (
        {"observations": np.zeros((6, 4, 16, 16, 3), np.uint8)},
        ("5 dimensions", "(T, H, W)"),
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_FRAME_FILES))
def test_bad_frame_file_is_refused_naming_file_and_problem(tmp_path: Path, kind):
    arrays, words = BAD_FRAME_FILES[kind]
    path = tmp_path / f"bad_{kind}.npz"
    np.savez(path, **{"episode_lengths": np.array([2, 4]), **arrays})
    with pytest.raises(ExpertFileError) as info:
        load_expert_file(path)
    assert_names_problem(str(info.value), path, words)
    assert info.value.path == str(path)
    assert "\n" not in str(info.value)


def test_container_refuses_float_frames_too():
    with pytest.raises(ValueError, match="must be uint8"):
        ExpertDemonstrations(np.zeros((4, 8, 8), np.float32), np.array([2, 2]))


def test_stack_index_over_previous_row_links_equals_stack_rows():
    """The link walk gathers the same stacks as `stack_rows` for episodes stored back to back."""
    from bco_lightning.data.frames import previous_rows, stack_index

    lengths = np.array([3, 1, 5, 2])
    for frame_stack in (1, 2, 4):
        rows = np.arange(int(lengths.sum()))
        np.testing.assert_array_equal(stack_index(rows, previous_rows(lengths), frame_stack), stack_rows(lengths, frame_stack))
