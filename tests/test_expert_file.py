"""The expert state file: round trip, refusal of every broken variant, pairing inside episodes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bco_lightning.data.expert_file import (
    ExpertDemonstrations,
    ExpertFileError,
    check_matches_env,
    load_expert_file,
    save_expert_file,
)
from bco_lightning.envs import describe_env
from bco_lightning.pixels import PixelSettings, describe_pixel_env
from bco_lightning.resources import resolve_expert_path, shipped_configs
from helpers import BROKEN_FILES, SHIPPED_CARTPOLE, assert_names_problem


def load_for_cartpole(path: Path) -> ExpertDemonstrations:
    demos = load_expert_file(path)
    check_matches_env(demos, path, (4,), "CartPole-v1")
    return demos


def test_round_trip_keeps_every_array(tmp_path, cartpole_demos):
    path = save_expert_file(tmp_path / "sub" / "demos.npz", cartpole_demos)
    loaded = load_expert_file(path)
    np.testing.assert_array_equal(loaded.observations, cartpole_demos.observations)
    np.testing.assert_array_equal(loaded.episode_lengths, cartpole_demos.episode_lengths)
    np.testing.assert_array_equal(loaded.episode_returns, cartpole_demos.episode_returns)
    np.testing.assert_array_equal(loaded.actions, cartpole_demos.actions)
    assert loaded.env_id == "CartPole-v1"
    assert loaded.observations.dtype == np.float32
    assert loaded.num_episodes == 3
    assert loaded.num_transitions == cartpole_demos.observations.shape[0] - 3
    assert loaded.demonstrator_return == pytest.approx(500.0)
    assert [p.name for p in path.parent.iterdir()] == ["demos.npz"], "temp file left behind"


def test_minimal_file_without_optional_keys(tmp_path):
    path = tmp_path / "minimal.npz"
    np.savez(path, observations=np.random.default_rng(0).normal(size=(7, 4)), episode_lengths=np.array([3, 4]))
    demos = load_for_cartpole(path)
    assert demos.observations.dtype == np.float32
    assert demos.episode_returns is None and demos.actions is None and demos.env_id is None
    assert demos.demonstrator_return is None
    assert demos.num_transitions == 5


def test_shipped_cartpole_file_is_valid():
    demos = load_for_cartpole(SHIPPED_CARTPOLE)
    assert demos.env_id == "CartPole-v1"
    assert demos.actions is not None and demos.actions.shape == (demos.num_transitions,)


@pytest.mark.parametrize("config", list(shipped_configs().values()), ids=lambda path: path.stem)
def test_every_config_names_a_shipped_file_of_its_environment(config: Path):
    """Each shipped config's demonstrations exist, validate, come from its environment, and carry
    the returns and diagnostic actions the benchmark needs."""
    data = yaml.safe_load(config.read_text())["data"]
    path = resolve_expert_path(data["expert_path"])  # data/NAME.npz: the shipped demonstration NAME
    demos = load_expert_file(path)
    if data.get("observation") == "pixels":
        pixels = PixelSettings(data["image_size"], data["grayscale"], data["frame_stack"])
        spec = describe_pixel_env(data["env_id"], data.get("env_kwargs"), pixels)
    else:
        spec = describe_env(data["env_id"], data.get("env_kwargs"))
    check_matches_env(demos, path, spec.observation_shape, data["env_id"])
    assert demos.env_id == data["env_id"]
    # CarRacing's driver records 10 episodes of up to 1000 frames; everything else 25 or more
    assert demos.num_episodes >= (10 if data["env_id"] == "CarRacing-v3" else 25)
    assert demos.episode_returns is not None and demos.actions is not None


@pytest.mark.parametrize("kind", sorted(BROKEN_FILES))
def test_broken_file_is_refused_naming_file_and_problem(make_broken_file, kind):
    path, words = make_broken_file(kind)
    with pytest.raises(ExpertFileError) as info:
        load_for_cartpole(path)
    assert_names_problem(str(info.value), path, words)
    assert info.value.path == str(path)
    assert "\n" not in str(info.value)


def test_nonexistent_file_is_refused(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(ExpertFileError) as info:
        load_expert_file(path)
    assert_names_problem(str(info.value), path, ("not found",))


def test_directory_is_refused(tmp_path):
    with pytest.raises(ExpertFileError, match="not a file"):
        load_expert_file(tmp_path)


def test_state_vectors_with_an_extra_dimension_are_refused(tmp_path, cartpole_demos):
    """A 3-d observations array is a frame file, so float state vectors of shape (T, 4, 1) are
    refused as float frames, with the shape and a pointer to the 2-d state layout."""
    path = tmp_path / "obs41.npz"
    np.savez(path, observations=cartpole_demos.observations[:, :, None], episode_lengths=cartpole_demos.episode_lengths)
    with pytest.raises(ExpertFileError) as info:
        load_for_cartpole(path)
    assert_names_problem(str(info.value), path, ("(4, 1)", "uint8", "state vectors are 2-d"))


@pytest.mark.parametrize(
    ("arrays", "words"),
    [
        ({"episode_lengths": np.array([3.0, 4.0])}, ("episode_lengths", "integer")),
        ({"observations": np.arange(28).reshape(7, 4)}, ("observations", "float")),
        ({"env_id": np.array([1, 2])}, ("env_id", "string")),
        ({"episode_returns": np.array([1.0])}, ("episode_returns", "shape")),
        ({"episode_lengths": np.array([5, 4, -2])}, ("episode 2", "at least 2")),
    ],
    ids=["float_lengths", "int_observations", "non_string_env_id", "returns_shape", "negative_length"],
)
def test_other_format_breaks_are_refused(tmp_path, arrays, words):
    path = tmp_path / "bad.npz"
    base = {"observations": np.zeros((7, 4), np.float32), "episode_lengths": np.array([3, 4])}
    np.savez(path, **{**base, **arrays})
    with pytest.raises(ExpertFileError) as info:
        load_expert_file(path)
    assert_names_problem(str(info.value), path, words)


def test_pickled_object_array_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "pickle.npz"
    np.savez(path, observations=np.array([object()] * 8, dtype=object), episode_lengths=np.array([4, 4]))
    with pytest.raises(ExpertFileError) as info:
        load_expert_file(path)
    assert str(path) in str(info.value)


def test_save_refuses_to_overwrite(tmp_path, cartpole_demos):
    path = save_expert_file(tmp_path / "demos.npz", cartpole_demos)
    before = path.read_bytes()
    shorter = cartpole_demos.take_episodes(1)
    with pytest.raises(FileExistsError):
        save_expert_file(path, shorter)
    assert path.read_bytes() == before
    save_expert_file(path, shorter, overwrite=True)
    assert load_expert_file(path).num_episodes == 1


def test_container_refuses_inconsistent_arrays():
    with pytest.raises(ValueError, match="sum to 9"):
        ExpertDemonstrations(np.zeros((8, 4), np.float32), np.array([4, 5]))


def test_pair_indices_small_example():
    demos = ExpertDemonstrations(np.zeros((9, 2), np.float32), np.array([3, 2, 4]))
    # episodes cover rows [0,1,2], [3,4], [5,6,7,8]: rows 2, 4 and 8 are last observations
    np.testing.assert_array_equal(demos.pair_indices(), [0, 1, 3, 5, 6, 7])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=2, max_value=9), min_size=1, max_size=12))
def test_pair_indices_never_cross_episodes(lengths):
    lengths = np.array(lengths)
    episode_of_row = np.repeat(np.arange(len(lengths)), lengths)
    demos = ExpertDemonstrations(np.zeros((lengths.sum(), 3), np.float32), lengths)
    pairs = demos.pair_indices()
    assert len(pairs) == demos.num_transitions == lengths.sum() - len(lengths)
    assert np.all(episode_of_row[pairs] == episode_of_row[pairs + 1])
    assert np.all(np.diff(pairs) > 0)


def test_take_episodes_keeps_arrays_aligned(cartpole_demos):
    first_two = cartpole_demos.take_episodes(2)
    assert first_two.num_episodes == 2
    assert first_two.observations.shape[0] == int(cartpole_demos.episode_lengths[:2].sum())
    assert first_two.actions.shape[0] == first_two.num_transitions
    assert cartpole_demos.take_episodes(99).num_episodes == 3


# The pixel configs set their own budgets (fewer iterations and episodes, a CNN's learning rate).
@pytest.mark.parametrize("config", [c for c in shipped_configs().values() if not c.stem.endswith("pixels")], ids=lambda path: path.stem)
def test_every_config_is_the_defaults_plus_its_environment_and_file(config: Path):
    """The benchmark's BCO(alpha) cells are therefore also what `bco run --data.env_id ID
    --data.expert_path FILE` gives: one set of numbers answers both questions."""
    from bco_lightning.cli import run_parser

    parser = run_parser()
    from_config = parser.parse_args(["--config", str(config)]).as_dict()
    data = yaml.safe_load(config.read_text())["data"]
    flags = ["--data.env_id", data["env_id"], "--data.expert_path", data["expert_path"]]
    if data.get("env_kwargs"):
        flags += ["--data.env_kwargs", json.dumps(data["env_kwargs"])]
    from_defaults = parser.parse_args(flags).as_dict()
    from_config.pop("config", None)
    from_defaults.pop("config", None)
    assert from_config == from_defaults
