"""The expert state file (`.npz`): its format, its validation, and writing it atomically.

The format is a contract (see docs/file-format.md): all episodes' observations concatenated in time
order, with `episode_lengths` counting observations (first and last included) per episode. The
observations are float state vectors `(T, obs_dim)` or uint8 camera frames `(T, H, W)` /
`(T, H, W, 3)` (a frame file; see bco_lightning/data/frames.py for how frames are resized).
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bco_lightning.atomic import atomic_write
from bco_lightning.errors import ExpertFileError, refuse_to_overwrite

REQUIRED_KEYS = ("observations", "episode_lengths")
OPTIONAL_KEYS = ("episode_returns", "env_id", "actions")
# A zip member larger than this is refused before it is read, so that a corrupt or hostile header
# cannot make the loader allocate without bound.
MAX_MEMBER_BYTES = 4 * 1024**3


@dataclass(frozen=True)
class ExpertDemonstrations:
    """State-only demonstrations, validated on construction.

    Attributes:
        observations: every episode's observations back to back: `(T, obs_dim)` float32 state
            vectors, or `(T, H, W)` / `(T, H, W, 3)` uint8 frames (never copied to float here).
        episode_lengths: `(E,)` int64, observations per episode, each >= 2, summing to T.
        episode_returns: `(E,)` float64 demonstrator returns, or None.
        env_id: the gymnasium id the file was recorded in, or None.
        actions: `(T - E, *action_shape)` true actions (diagnostics only, never trained on), or None.
    """

    observations: np.ndarray
    episode_lengths: np.ndarray
    episode_returns: np.ndarray | None = None
    env_id: str | None = None
    actions: np.ndarray | None = None

    def __post_init__(self) -> None:
        problems = _format_problems(self)
        if problems:
            raise ValueError(problems)

    @property
    def num_episodes(self) -> int:
        return int(self.episode_lengths.shape[0])

    @property
    def num_transitions(self) -> int:
        return int(self.observations.shape[0] - self.num_episodes)

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return tuple(self.observations.shape[1:])

    @property
    def is_frames(self) -> bool:
        """True for a frame file (uint8 `(T, H, W)` or `(T, H, W, 3)`), False for state vectors."""
        return self.observations.ndim >= 3

    @property
    def demonstrator_return(self) -> float | None:
        return None if self.episode_returns is None else float(np.mean(self.episode_returns))

    def pair_indices(self) -> np.ndarray:
        """Index `t` of every pair `(s_t, s_{t+1})` that lies inside one episode, in time order.

        An episode's last observation is never paired with the next episode's first.
        """
        last = np.cumsum(self.episode_lengths) - 1
        is_last = np.zeros(self.observations.shape[0], dtype=bool)
        is_last[last] = True
        return np.flatnonzero(~is_last)

    def take_episodes(self, count: int) -> ExpertDemonstrations:
        """The first `count` episodes, as a new container (for demonstration-count sweeps)."""
        count = min(count, self.num_episodes)
        stop = int(self.episode_lengths[:count].sum())
        return ExpertDemonstrations(
            observations=self.observations[:stop],
            episode_lengths=self.episode_lengths[:count],
            episode_returns=None if self.episode_returns is None else self.episode_returns[:count],
            env_id=self.env_id,
            actions=None if self.actions is None else self.actions[: stop - count],
        )

    def skip_first(self, frames: int) -> ExpertDemonstrations:
        """Every episode without its first `frames` observations (a start screen, a camera's zoom-in),
        as a new container; an episode left with fewer than 2 is refused (`ValueError`)."""
        if frames == 0:
            return self
        starts = np.cumsum(self.episode_lengths) - self.episode_lengths
        short = np.flatnonzero(self.episode_lengths - frames < 2)
        if short.size:
            bad = int(short[0])
            raise ValueError(
                f"episode {bad} has {int(self.episode_lengths[bad])} observations: skipping its first {frames} "
                "leaves fewer than the 2 a pair needs"
            )
        keep = np.concatenate([np.arange(start + frames, start + length) for start, length in zip(starts, self.episode_lengths)])
        actions = None
        if self.actions is not None:
            action_starts = starts - np.arange(self.num_episodes)  # an episode of n observations has n - 1 actions
            actions = self.actions[
                np.concatenate([np.arange(start + frames, start + length - 1) for start, length in zip(action_starts, self.episode_lengths)])
            ]
        return ExpertDemonstrations(self.observations[keep], self.episode_lengths - frames, self.episode_returns, self.env_id, actions)


def _format_problems(demos: ExpertDemonstrations) -> str:
    """The first way `demos` breaks the format, as a phrase; '' when it is valid."""
    obs, lengths = demos.observations, demos.episode_lengths
    if obs.ndim < 2:
        return f"'observations' must have shape (T, *obs_shape), got shape {obs.shape}"
    if obs.ndim > 4:
        return (
            f"'observations' has {obs.ndim} dimensions (shape {obs.shape}): expected (T, obs_dim) "
            "state vectors or (T, H, W) / (T, H, W, 3) frames"
        )
    if obs.shape[0] == 0:
        return "'observations' is empty: expected at least one episode of 2 or more observations"
    if obs.ndim >= 3:
        problem = _frame_problems(obs)
        if problem:
            return problem
    elif not np.issubdtype(obs.dtype, np.floating):
        return f"'observations' must be a float array, got dtype {obs.dtype}"
    elif not np.all(np.isfinite(obs)):
        bad = int(np.argmax(~np.isfinite(obs).reshape(obs.shape[0], -1).all(axis=1)))
        return f"'observations' holds NaN or inf (first at row {bad}): expected finite values"
    if lengths.ndim != 1 or lengths.shape[0] == 0:
        return f"'episode_lengths' must be a non-empty 1-d array, got shape {lengths.shape}"
    if not np.issubdtype(lengths.dtype, np.integer):
        return f"'episode_lengths' must be integers, got dtype {lengths.dtype}"
    if np.any(lengths < 2):
        bad = int(np.argmax(lengths < 2))
        return (
            f"episode {bad} has {int(lengths[bad])} observation(s) in 'episode_lengths': "
            "each episode needs at least 2 (first and last included)"
        )
    if np.any(lengths > obs.shape[0]):
        bad = int(np.argmax(lengths > obs.shape[0]))
        return (
            f"episode {bad} claims {int(lengths[bad])} observations in 'episode_lengths' but "
            f"'observations' has only {obs.shape[0]} rows"
        )
    total = int(lengths.astype(np.int64).sum())
    if total != obs.shape[0]:
        return (
            f"'episode_lengths' sum to {total} but 'observations' has {obs.shape[0]} rows: "
            "they must be equal"
        )
    num_episodes = lengths.shape[0]
    if demos.episode_returns is not None:
        returns = demos.episode_returns
        if returns.shape != (num_episodes,):
            return f"'episode_returns' must have shape ({num_episodes},), got {returns.shape}"
        if not np.issubdtype(returns.dtype, np.number) or not np.all(np.isfinite(returns)):
            return "'episode_returns' must hold finite numbers"
    if demos.actions is not None:
        actions = demos.actions
        expected = obs.shape[0] - num_episodes
        if actions.ndim < 1 or actions.shape[0] != expected:
            return (
                f"'actions' must have {expected} rows (one per transition, T - E), "
                f"got shape {actions.shape}"
            )
        if not np.issubdtype(actions.dtype, np.number):
            return f"'actions' must be numeric, got dtype {actions.dtype}"
        if np.issubdtype(actions.dtype, np.floating) and not np.all(np.isfinite(actions)):
            return "'actions' holds NaN or inf: expected finite values"
    return ""


def _frame_problems(obs: np.ndarray) -> str:
    """How frame observations (ndim 3 or 4, T >= 1) break the frame contract, as a phrase; ''."""
    frame_shape = tuple(obs.shape[1:])
    if obs.shape[1] == 0 or obs.shape[2] == 0:
        return f"'observations' are frames of shape {frame_shape}: frame height and width must be >= 1"
    if obs.ndim == 4 and obs.shape[3] != 3:
        return (
            f"'observations' are frames of shape {frame_shape} with {obs.shape[3]} channels: "
            "expected (T, H, W) gray or (T, H, W, 3) RGB frames"
        )
    if obs.dtype == np.uint8:
        return ""
    found = f"{obs.dtype} frames of shape {frame_shape}"
    if np.issubdtype(obs.dtype, np.floating) and not np.all(np.isfinite(obs)):
        found += " holding NaN or inf"
    elif np.issubdtype(obs.dtype, np.floating) or np.issubdtype(obs.dtype, np.integer):
        low, high = obs.min(), obs.max()
        found += f" with values in [{str(low)}, {str(high)}]"
        if low < 0 or high > 255:
            found += ", out of 0..255"
    return (
        f"'observations' are {found}; expected uint8 frames 0..255 (frames must be uint8; "
        "state vectors are 2-d, (T, obs_dim))"
    )


def _read_member(archive: zipfile.ZipFile, name: str) -> np.ndarray:
    """One `.npy` member, refusing any whose header promises more data than the member holds.

    numpy allocates what the header says before reading, so a corrupt header could otherwise ask
    for terabytes; memory stays bounded by the member's real size.
    """
    info = archive.getinfo(name)
    if info.file_size > MAX_MEMBER_BYTES:
        raise ValueError(f"member {name!r} claims {info.file_size} bytes, over the {MAX_MEMBER_BYTES}-byte limit")
    with archive.open(info) as member:
        data = member.read()
    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
    if dtype.hasobject:
        raise ValueError(f"member {name!r} holds Python objects; expected numeric or string arrays")
    expected = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    available = len(data) - stream.tell()
    if expected > available:
        raise ValueError(f"member {name!r} is truncated: its header promises {expected} bytes, it holds {available}")
    stream.seek(0)
    return np.lib.format.read_array(stream, allow_pickle=False)


def load_expert_file(path: str | os.PathLike) -> ExpertDemonstrations:
    """Read and validate an expert state file; any problem raises `ExpertFileError`."""
    path = Path(path)
    if not path.exists():
        raise ExpertFileError(path, "file not found")
    if not path.is_file():
        raise ExpertFileError(path, "not a file")
    try:
        with zipfile.ZipFile(path) as archive:
            names = {n[: -len(".npy")] if n.endswith(".npy") else n: n for n in archive.namelist()}
            missing = [key for key in REQUIRED_KEYS if key not in names]
            if missing:
                present = ", ".join(sorted(names)) or "none"
                raise ExpertFileError(
                    path,
                    f"missing required key(s) {', '.join(missing)} (keys present: {present}); "
                    "expected 'observations' and 'episode_lengths'",
                )
            arrays = {
                key: _read_member(archive, names[key])
                for key in REQUIRED_KEYS + OPTIONAL_KEYS
                if key in names
            }
    except ExpertFileError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
        raise ExpertFileError(
            path, f"not a readable .npz file ({type(error).__name__}: {error})"
        ) from None
    except Exception as error:  # numpy raises a zoo of types on corrupt headers
        raise ExpertFileError(
            path, f"not a readable .npz file ({type(error).__name__}: {error})"
        ) from None

    env_id = arrays.get("env_id")
    if env_id is not None:
        if env_id.ndim != 0 or env_id.dtype.kind not in "US":
            raise ExpertFileError(path, f"'env_id' must be a 0-d string, got {env_id.dtype} {env_id.shape}")
        env_id = str(env_id)
    observations = arrays["observations"]
    # State vectors train as float32. Frames (ndim >= 3) are never cast: uint8 stays uint8 (no float
    # copy), and a float frame array is refused below naming the dtype the file really holds.
    if observations.ndim <= 2 and np.issubdtype(observations.dtype, np.floating):
        observations = observations.astype(np.float32, copy=False)
    try:
        return ExpertDemonstrations(
            observations=observations,
            episode_lengths=arrays["episode_lengths"],
            episode_returns=arrays.get("episode_returns"),
            env_id=env_id,
            actions=arrays.get("actions"),
        )
    except ValueError as error:
        raise ExpertFileError(path, str(error)) from None


def check_matches_env(demos: ExpertDemonstrations, path: str | os.PathLike, obs_shape: tuple[int, ...], env_id: str) -> None:
    """Refuse a file whose observations cannot come from the environment `env_id`.

    `obs_shape` is one observation of the environment as the networks see it: `(obs_dim,)` for
    state vectors, `(frame_stack, H, W[, 3])` for frames. A frame file may hold frames of any size
    (they are resized on loading), so only grayscale-or-RGB and being frames at all are compared.
    """
    learns_frames = len(obs_shape) > 1
    if demos.is_frames and not learns_frames:
        raise ExpertFileError(
            path,
            f"holds camera frames {demos.obs_shape}, but {env_id} is learnt from its state vectors {tuple(obs_shape)}: "
            "learn from the frames with --data.observation pixels",
        )
    if learns_frames and not demos.is_frames:
        raise ExpertFileError(
            path,
            f"holds state vectors {demos.obs_shape}, but --data.observation pixels learns {env_id} from camera frames: "
            "give a file of uint8 frames (bco record --observation pixels writes one), or use --data.observation state",
        )
    if learns_frames:
        return
    if demos.obs_shape != tuple(obs_shape):
        raise ExpertFileError(
            path,
            f"observation shape {demos.obs_shape} does not match {env_id}'s observation shape {tuple(obs_shape)}",
        )


def save_expert_file(path: str | os.PathLike, demos: ExpertDemonstrations, overwrite: bool = False) -> Path:
    """Write `demos` to `path` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    refuse_to_overwrite(path, overwrite)
    arrays: dict[str, np.ndarray] = {
        "observations": demos.observations,
        "episode_lengths": demos.episode_lengths.astype(np.int64),
    }
    if demos.episode_returns is not None:
        arrays["episode_returns"] = demos.episode_returns.astype(np.float64)
    if demos.env_id is not None:
        arrays["env_id"] = np.array(demos.env_id)
    if demos.actions is not None:
        arrays["actions"] = demos.actions
    atomic_write(path, lambda handle: np.savez_compressed(handle, **arrays))
    return path
