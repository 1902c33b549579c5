"""Videos of a policy's evaluation episode: for TensorBoard (an animated GIF image summary) and files.

Rendering is headless (`rgb_array`; MuJoCo through EGL unless `MUJOCO_GL` says otherwise). Only
every k-th frame is rendered, at most `MAX_FRAMES` per episode, so that a video costs a small share
of a run even where one frame takes tens of milliseconds (software-rendered MuJoCo).
"""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bco_lightning.atomic import atomic_write
from bco_lightning.data.rollouts import Policy
from bco_lightning.errors import RenderError

if TYPE_CHECKING:
    from bco_lightning.pixels import PixelSettings

MAX_FRAMES = 100
MAX_WIDTH = 320


def record_frames(
    env_id: str, env_kwargs: dict[str, Any] | None, policy: Policy, seed: int, pixels: PixelSettings | None = None
) -> tuple[np.ndarray, float]:
    """Frames `(N, H, W, 3)` uint8 of one episode of `policy` (reset with `seed`), and their fps;
    with `pixels` the policy acts on the frame stacks it was trained on (the video stays full size)."""
    if pixels is None:
        env = make_rendering_env(env_id, env_kwargs)
    else:
        from bco_lightning.pixels import make_pixel_env

        env = make_pixel_env(env_id, env_kwargs, pixels)
    try:
        limit = env.spec.max_episode_steps if env.spec is not None and env.spec.max_episode_steps else 1000
        stride = max(1, math.ceil(limit / MAX_FRAMES))
        fps = float(env.metadata.get("render_fps") or 30) / stride
        obs, _ = env.reset(seed=seed)
        frames, step, done = [], 0, False
        while True:
            if step % stride == 0 or done:
                frames.append(_downscaled(render_frame(env, env_id)))
            if done:
                break
            observation = np.asarray(obs)[None] if pixels is not None else np.asarray(obs, dtype=np.float32)[None]
            obs, _, terminated, truncated, _ = env.step(policy(observation)[0])
            done = terminated or truncated
            step += 1
        return np.stack(frames), fps
    finally:
        env.close()


def make_rendering_env(env_id: str, env_kwargs: dict[str, Any] | None = None) -> Any:
    """`gym.make(env_id, render_mode="rgb_array")`, headless where there is no display (pygame's
    dummy video driver, MuJoCo on EGL), MuJoCo at most `MAX_WIDTH` wide; `RenderError` if it cannot."""
    import gymnasium as gym

    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame (classic control) off-screen
    size: dict[str, int] = {}
    if "mujoco" in _entry_point(env_id):
        size = {"width": MAX_WIDTH, "height": MAX_WIDTH * 3 // 4}  # render small: EGL may be software
    try:
        return gym.make(env_id, render_mode="rgb_array", **size, **(env_kwargs or {}))
    except Exception as error:
        raise RenderError(f"{env_id} cannot render rgb_array frames ({type(error).__name__}: {error})") from None


def _entry_point(env_id: str) -> str:
    """The registered entry point, or '' (e.g. a `module:Env-v0` id whose module is not imported yet)."""
    import gymnasium as gym

    try:
        return str(gym.spec(env_id).entry_point)
    except Exception:
        return ""


def render_frame(env: Any, env_id: str) -> np.ndarray:
    """The environment's current `rgb_array` frame `(H, W, 3)`; `RenderError` when it has none."""
    try:
        frame = env.render()
    except Exception as error:
        raise RenderError(f"{env_id} cannot render rgb_array frames ({type(error).__name__}: {error})") from None
    if not isinstance(frame, np.ndarray) or frame.ndim != 3:
        raise RenderError(f"{env_id} rendered {type(frame).__name__}, not an (H, W, 3) image")
    return frame


def _downscaled(frame: np.ndarray) -> np.ndarray:
    """At most `MAX_WIDTH` wide, by an integer factor: Pillow's box `reduce` took a third of the
    time of a bilinear `resize` (1.4 ms against 4.6 ms per 600x400 CartPole frame)."""
    from PIL import Image

    frame = frame.astype(np.uint8, copy=False)
    factor = math.ceil(frame.shape[1] / MAX_WIDTH)
    return frame if factor == 1 else np.asarray(Image.fromarray(frame).reduce(factor))


def gif_bytes(frames: np.ndarray, fps: float) -> bytes:
    """An animated GIF with one 256-colour palette for all frames, taken from a sample of them:
    Pillow's default (a median-cut palette per frame) took 0.7 s for 100 CartPole frames, this 0.1 s."""
    from PIL import Image

    sample = frames[:: max(1, len(frames) // 8)]
    palette = Image.fromarray(np.concatenate(list(sample), axis=0)).quantize(
        colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
    )
    images = [Image.fromarray(frame).quantize(palette=palette, dither=Image.Dither.NONE) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return buffer.getvalue()


def log_video(writer: Any, tag: str, frames: np.ndarray, fps: float, step: int) -> None:
    """Write `frames` as an animated GIF image summary, the form TensorBoard's `add_video` produces,
    without its moviepy dependency."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    height, width = frames.shape[1:3]
    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif_bytes(frames, fps))
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
    writer.flush()


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float) -> Path:
    """`.gif` with Pillow; `.mp4` (or any other ffmpeg format) with imageio's ffmpeg plugin."""
    path = Path(path)
    if path.suffix.lower() == ".gif":
        return atomic_write(path, lambda handle: handle.write(gif_bytes(frames, fps)))
    try:
        import imageio.v3 as iio
        import imageio_ffmpeg  # noqa: F401  (the ffmpeg binary the FFMPEG plugin runs)
    except ImportError:
        raise RenderError(f"writing {path.suffix} videos needs imageio with ffmpeg: pip install 'bco-lightning[video]' (or write .gif)") from None
    height, width = frames.shape[1:3]
    even = frames[:, : height - height % 2, : width - width % 2]  # H.264 needs even sizes
    data = iio.imwrite("<bytes>", even, extension=path.suffix, fps=fps, plugin="FFMPEG", macro_block_size=1)
    return atomic_write(path, lambda handle: handle.write(data))
