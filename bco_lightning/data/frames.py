"""Camera frames as observations: the one resize every frame goes through, and frame stacks by index.

An expert file's frames and the environment's rendered frames are compared by the networks pixel
for pixel, so both pass through `resize_frames` and nothing else: identical input frames give
identical output bytes (same Pillow version). Stacks of consecutive frames are gathered by row index
(`stack_rows`), so a datamodule never copies frames per sample.

Speed, one core (`taskset -c 1`, at `nice -n 19` beside a CI run on a 2-core machine, so a floor;
Pillow 13.0): 96x96x3 -> 64x64 gray about 24,000 frames/s (RGB out about 18,000; CartPole's
400x600x3 -> 64x64 gray about 2,600), far above a rollout's step rate. Measured with

    OMP_NUM_THREADS=1 taskset -c 1 python -c "import numpy as np, timeit; from bco_lightning.data.frames import \
resize_frames; f = np.random.default_rng(0).integers(0, 256, (2000, 96, 96, 3), dtype=np.uint8); \
print(2000 / min(timeit.repeat(lambda: resize_frames(f, 64, True), number=1, repeat=5)))"
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from bco_lightning.errors import SettingError

# Box (area averaging over the input pixels whose centres fall in each output pixel), chosen over
# Image.BILINEAR with reducing_gap=None because it keeps thin lines (a pole, a track) visible. A 1-px
# white line on black, over every position, gives an output peak of at least 128 with BOX against 85
# with BILINEAR for 96x96 -> 64x64, and at least 25 / 36 (vertical / horizontal line) against 14 / 20
# for 400x600 -> 64x64; BOX keeps the line in one output pixel where BILINEAR's wider tent smears it
# over two. On CartPole's 600x400 render the output row holding the 1-px dark track line averages
# 197 with BOX, 213 with BILINEAR (background 255). BOX is also the cheaper filter. Upscaling with BOX is
# nearest-neighbour: frames smaller than `image_size` come out blocky, not blurred.
RESAMPLE = Image.Resampling.BOX


def _check_frames(frames: np.ndarray) -> None:
    """Refuse input that is not uint8 `(N, H, W)` or `(N, H, W, 3)` frames, in one line."""
    if not isinstance(frames, np.ndarray):
        raise ValueError(f"frames must be a numpy array, got {type(frames).__name__}")
    if frames.ndim not in (3, 4):
        raise ValueError(f"frames must have shape (N, H, W) or (N, H, W, 3), got shape {frames.shape}")
    if frames.ndim == 4 and frames.shape[3] != 3:
        raise ValueError(f"frames (N, H, W, C) must have 3 channels (RGB), got {frames.shape[3]} in shape {frames.shape}")
    if frames.size == 0:
        raise ValueError(f"frames are empty (shape {frames.shape}): expected N, H and W >= 1")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 0..255, got dtype {frames.dtype}")


def resize_frames(frames: np.ndarray, image_size: int, grayscale: bool) -> np.ndarray:
    """uint8 frames `(N, H, W, 3)` or `(N, H, W)` of any size as uint8 `(N, S, S)` (grayscale) or
    `(N, S, S, 3)`, with `S = image_size`.

    The one resize for expert frames and rendered frames alike, so that both look the same to a
    network. Grayscale is Pillow's "L" conversion (ITU-R 601 luma, rounded to uint8), done before
    resizing so the result does not depend on the filter's per-channel rounding; a gray input with
    `grayscale=False` has its channel repeated. The aspect ratio is NOT kept: a non-square frame is
    stretched to a square, and the simulator's own frames go through the same distortion. The filter
    is `RESAMPLE` (box; see its comment for why).
    """
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise SettingError(f"`image_size` must be an integer >= 1, got {image_size!r}")
    _check_frames(frames)
    size = int(image_size)
    mode = "L" if grayscale else "RGB"
    out = np.empty((frames.shape[0], size, size) + (() if grayscale else (3,)), dtype=np.uint8)
    for index in range(frames.shape[0]):
        image = Image.fromarray(np.ascontiguousarray(frames[index]))
        if image.mode != mode:
            image = image.convert(mode)
        if image.size != (size, size):
            image = image.resize((size, size), resample=RESAMPLE, reducing_gap=None)
        out[index] = np.asarray(image)
    return out


def stack_rows(episode_lengths: np.ndarray, frame_stack: int) -> np.ndarray:
    """int64 `(T, frame_stack)`: for each row t of the concatenated episodes, the rows of the
    `frame_stack` frames that end at t, oldest first.

    Rows before an episode's first row are that first row repeated, so a stack never spans two
    episodes (the previous episode's last frames are not this episode's past). Indices, not frames:
    `frames[stack_rows(...)[batch]]` gathers a batch of stacks without a per-sample copy.
    """
    if isinstance(frame_stack, bool) or not isinstance(frame_stack, (int, np.integer)) or frame_stack < 1:
        raise SettingError(f"`frame_stack` must be an integer >= 1, got {frame_stack!r}")
    lengths = np.asarray(episode_lengths)
    if lengths.ndim != 1 or not (np.issubdtype(lengths.dtype, np.integer) or lengths.size == 0):
        raise ValueError(f"episode_lengths must be a 1-d integer array, got dtype {lengths.dtype} shape {lengths.shape}")
    lengths = lengths.astype(np.int64)
    if np.any(lengths < 1):
        bad = int(np.argmax(lengths < 1))
        raise ValueError(f"episode {bad} has length {int(lengths[bad])}: every episode needs at least 1 row")
    rows = np.arange(int(lengths.sum()), dtype=np.int64)
    return stack_index(rows, previous_rows(lengths), int(frame_stack))


def previous_rows(episode_lengths: np.ndarray) -> np.ndarray:
    """int64 `(T,)`: the row of each row's previous frame in its episode (itself at an episode's
    first row), for concatenated episodes; `stack_index` walks these links back."""
    lengths = np.asarray(episode_lengths, dtype=np.int64)
    previous = np.arange(int(lengths.sum()), dtype=np.int64) - 1
    previous[np.cumsum(lengths) - lengths] += 1  # an episode's first row has no past
    return previous


def stack_index(rows: np.ndarray, previous_row: np.ndarray, frame_stack: int) -> np.ndarray:
    """int64 `(len(rows), frame_stack)`: the frames ending at each of `rows`, oldest first, found by
    following `previous_row` links (each row's previous frame in its episode, itself at a start).

    The links serve any storage order: an expert file's episodes back to back, or interaction from
    several sub-environments interleaved step by step. At an episode's start the first frame
    repeats, as `stack_rows` and gymnasium's `FrameStackObservation(padding_type="reset")` do.
    """
    columns = [np.asarray(rows, dtype=np.int64)]
    for _ in range(frame_stack - 1):
        columns.append(previous_row[columns[-1]])
    return np.stack(columns[::-1], axis=1)
