"""Fuzzing the expert-file loader: whatever the bytes, the answer is a valid container or the
documented `ExpertFileError`, never another exception, a hang or unbounded memory."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bco_lightning.data.expert_file import ExpertDemonstrations, load_expert_file
from bco_lightning.errors import ExpertFileError

KEYS = ["observations", "episode_lengths", "episode_returns", "env_id", "actions", "other"]
DTYPES = st.sampled_from([np.float32, np.float64, np.int64, np.int8, np.uint8, np.bool_, np.complex64, "U3", "S2"])
ARRAYS = hnp.arrays(dtype=DTYPES, shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def load_bytes(payload: bytes) -> ExpertDemonstrations | None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.npz"
        path.write_bytes(payload)
        try:
            return load_expert_file(path)
        except ExpertFileError as error:
            assert str(path) in str(error) and "\n" not in str(error)
            return None


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS), ARRAYS, max_size=6), st.floats(0.0, 1.0))
def test_random_arrays_and_truncations(arrays: dict[str, np.ndarray], cut: float) -> None:
    payload = npz_bytes(arrays)
    load_bytes(payload)
    load_bytes(payload[: int(len(payload) * cut)])


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes(payload: bytes) -> None:
    assert load_bytes(payload) is None


@FUZZ
@given(
    st.integers(1, 4),
    st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=4),
)
def test_absurd_episode_lengths(obs_dim: int, lengths: list[int]) -> None:
    observations = np.zeros((10, obs_dim), dtype=np.float32)
    result = load_bytes(npz_bytes({"observations": observations, "episode_lengths": np.array(lengths, dtype=np.int64)}))
    assert result is None or (sorted(lengths) == sorted(result.episode_lengths.tolist()) and sum(lengths) == 10)


def test_header_promising_terabytes_is_refused_without_allocating(tmp_path: Path) -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 4)})
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("observations.npy", header.getvalue() + bytes(64))
        archive.writestr("episode_lengths.npy", npz_member(np.array([2])))
    try:
        load_expert_file(path)
    except ExpertFileError as error:
        assert "truncated" in str(error)
    else:
        raise AssertionError("a header promising terabytes was accepted")


def npz_member(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
