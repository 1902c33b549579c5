"""Convolutional networks for pixel observations: frame normaliser, encoders, pixel IDM and policy.

Plain `nn.Module`s, like `bco_lightning.nets`: nothing here knows about Lightning or chooses
between pixels and state vectors (beyond `is_frame_shape`); wiring them into `IDMModule` and
`BCPolicyModule` is a later change.

Observations are uint8 stacks of the last `stack` frames, `(B, stack, H, W)` (grayscale) or
`(B, stack, H, W, 3)` (RGB), square (`H == W == image_size`). Each network starts with a
`FrameNormalizer`, so the /255 scale travels inside checkpoints and TorchScript exports, and a
dataset stays uint8: conversion to float happens per batch, inside `forward`. Every module here
is scriptable with `torch.jit.script`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bco_lightning.errors import SettingError
from bco_lightning.nets import mlp

EncoderName = Literal["nature", "impala"]
Fusion = Literal["concat", "delta", "shared"]
NatureStem = Literal["auto", "nature", "small"]

ENCODERS = ("nature", "impala")
FUSIONS = ("concat", "delta", "shared")
# The Nature DQN stem, (out_channels, kernel, stride) per conv: needs at least 36x36 pixels.
NATURE_STEM = ((32, 8, 4), (64, 4, 2), (64, 3, 1))
# The stem NatureCNN uses below 36x36 (a 16x16 frame would vanish in the 8x8 stride-4 conv):
# the same widths with 3x3 kernels and one stride-2 conv, valid from 9x9 up (16 -> 14 -> 6 -> 4).
SMALL_STEM = ((32, 3, 1), (64, 3, 2), (64, 3, 1))
NATURE_MIN_SIZE = 36


def is_frame_shape(obs_shape: tuple[int, ...]) -> bool:
    """Whether one observation's shape is a frame stack: `(stack, H, W)` or `(stack, H, W, 3)`.

    State vectors are 1-D, so the number of dimensions alone tells the two apart; whether the
    frames are square and large enough is for the networks (`frame_layout`) to check.
    """
    return len(obs_shape) == 3 or (len(obs_shape) == 4 and obs_shape[-1] == 3)


def frame_layout(obs_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """`(stack, image_size, channels_per_frame)` of a frame-stack observation shape, or a `SettingError`."""
    if not is_frame_shape(obs_shape):
        raise SettingError(f"`obs_shape` {tuple(obs_shape)} is no frame stack: expected (stack, H, W) or (stack, H, W, 3)")
    stack, height, width = obs_shape[:3]
    if height != width:
        raise SettingError(f"frames must be square, got `obs_shape` {tuple(obs_shape)} with H={height} != W={width}")
    return stack, height, 3 if len(obs_shape) == 4 else 1


def conv_output_size(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    """Side of a conv's (or pool's) output on a `size` x `size` input; < 1 means the input is too small."""
    return (size + 2 * padding - kernel) // stride + 1


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise SettingError(f"`{name}` must be >= 1, got {value}")


class FrameNormalizer(nn.Module):
    """uint8 frame stacks to float `(B, stack * channels_per_frame, H, W)` in [0, 1].

    RGB stacks put each frame's three channels side by side (frame 0's R, G, B, then frame 1's),
    so a conv sees colour and time on one axis, as in Atari agents. The scale is a constant of the
    module, not a preprocessing step, so an exported network takes the environment's frames as is.

    `motion_gain` > 0 appends the change between consecutive frames of the stack, times that gain,
    as `(stack - 1) * channels_per_frame` more channels. A motion of a fraction of a pixel changes
    a frame by a few gray levels; with Adam, the first conv's weights would have to grow by the
    inverse of that before it counts, so the gain gives it the scale of a whole frame at once.
    """

    def __init__(self, stack: int, image_size: int, channels_per_frame: int = 1, motion_gain: float = 0.0) -> None:
        super().__init__()
        if channels_per_frame not in (1, 3):
            raise SettingError(f"`channels_per_frame` must be 1 (grayscale) or 3 (RGB), got {channels_per_frame}")
        _check_positive(stack=stack, image_size=image_size)
        if not motion_gain >= 0.0:
            raise SettingError(f"`motion_gain` must be >= 0 (0: no motion channels), got {motion_gain}")
        if motion_gain > 0.0 and stack < 2:
            raise SettingError(f"`motion_gain` needs a `frame_stack` of at least 2 (motion is a change between frames), got {stack}")
        self.stack = stack
        self.image_size = image_size
        self.channels_per_frame = channels_per_frame
        self.scale = 1.0 / 255.0
        self.motion_gain = float(motion_gain)

    @property
    def out_channels(self) -> int:
        frames = self.stack * self.channels_per_frame
        return frames + (frames - self.channels_per_frame if self.motion_gain > 0.0 else 0)

    def forward(self, frames: Tensor) -> Tensor:
        if frames.dtype != torch.uint8:
            raise ValueError("frames must be uint8 (0..255): the network scales them to [0, 1] itself")
        expected = 4 if self.channels_per_frame == 1 else 5
        if frames.dim() != expected or frames.size(1) != self.stack or frames.size(2) != self.image_size or frames.size(3) != self.image_size:
            raise ValueError(
                "frames must be (B, stack, H, W) (grayscale) or (B, stack, H, W, 3) (RGB) with stack="
                + str(self.stack) + ", H=W=" + str(self.image_size) + ", channels_per_frame=" + str(self.channels_per_frame)
                + "; got " + str(frames.shape)
            )
        if self.channels_per_frame == 3:
            if frames.size(4) != 3:
                raise ValueError("RGB frames must end in 3 channels, got " + str(frames.shape))
            # (B, stack, H, W, 3) -> (B, stack, 3, H, W) -> (B, 3 * stack, H, W)
            frames = frames.permute(0, 1, 4, 2, 3).reshape(frames.size(0), self.stack * 3, self.image_size, self.image_size)
        scaled = frames.float() * self.scale
        if self.motion_gain == 0.0:
            return scaled
        step = self.channels_per_frame
        motion = (scaled[:, step:] - scaled[:, :-step]) * self.motion_gain
        return torch.cat([scaled, motion], dim=1)


def random_shift(stacks: Sequence[Tensor], pad: int) -> list[Tensor]:
    """Shift each sample's frames by a random whole number of pixels, up to `pad` either way on
    each axis, repeating the edge pixels into the gap (DrQ's pad-and-crop, Kostrikov et al. 2021).

    `stacks` are uint8 `(B, stack, H, W[, 3])` of one batch (an IDM's `s` and `s'`): sample i of
    every stack moves by the same offset, so the motion between them is kept. The draw uses
    torch's global RNG, which each unit of work seeds (`seeds.for_unit`).
    """
    first = stacks[0]
    batch, size, device = first.size(0), first.size(2), first.device
    offsets = torch.randint(-pad, pad + 1, (2, batch, 1), device=device)
    positions = torch.arange(size, device=device)
    rows = (positions + offsets[0]).clamp_(0, size - 1)[:, :, None]  # (B, H, 1)
    cols = (positions + offsets[1]).clamp_(0, size - 1)[:, None, :]  # (B, 1, W)
    samples = torch.arange(batch, device=device)[:, None, None]
    # (B, stack, H, W[, 3]) -> (B, H, W, stack[, 3]), gather pixels, and back
    return [stack.movedim(1, 3)[samples, rows, cols].movedim(3, 1) for stack in stacks]


def _flattened_size(body: nn.Module, in_channels: int, image_size: int) -> int:
    """Features a conv body yields per sample, from one dummy forward (no hand-kept arithmetic)."""
    with torch.no_grad():
        return int(body(torch.zeros(1, in_channels, image_size, image_size)).numel())


class NatureCNN(nn.Module):
    """The DQN encoder (Mnih et al. 2015): three convs, then a linear layer to `features` (512).

    The Nature stem (32 8x8/4, 64 4x4/2, 64 3x3/1) needs frames of at least 36x36. With
    `stem="auto"` smaller frames get `SMALL_STEM` (32 3x3/1, 64 3x3/2, 64 3x3/1, valid from 9x9);
    `stem="nature"` insists on the original and refuses smaller frames. A frame too small for the
    chosen stem is a `SettingError` naming `image_size`, before any layer is built.
    """

    def __init__(self, in_channels: int, image_size: int, features: int = 512, stem: NatureStem = "auto") -> None:
        super().__init__()
        _check_positive(in_channels=in_channels, image_size=image_size, features=features)
        if stem not in ("auto", "nature", "small"):
            raise SettingError(f"`stem` must be 'auto', 'nature' or 'small', got {stem!r}")
        if stem == "auto":
            stem = "nature" if image_size >= NATURE_MIN_SIZE else "small"
        self.stem = stem
        layers = NATURE_STEM if stem == "nature" else SMALL_STEM
        size = image_size
        for _, kernel, stride in layers:
            size = conv_output_size(size, kernel, stride)
        if size < 1:
            smallest = NATURE_MIN_SIZE if stem == "nature" else 9
            raise SettingError(f"`image_size` {image_size} is too small for NatureCNN's {stem} stem: it needs at least {smallest}x{smallest} frames")
        convs: list[nn.Module] = []
        channels = in_channels
        for out_channels, kernel, stride in layers:
            convs += [nn.Conv2d(channels, out_channels, kernel, stride), nn.ReLU()]
            channels = out_channels
        convs.append(nn.Flatten())
        self.convs = nn.Sequential(*convs)
        self.linear = nn.Linear(_flattened_size(self.convs, in_channels, image_size), features)
        self.features = features

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.linear(self.convs(x)))


class ResidualBlock(nn.Module):
    """IMPALA's pre-activation residual block: x + conv(relu(conv(relu(x)))), 3x3, same size."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv1(F.relu(self.conv0(F.relu(x))))


class ImpalaStage(nn.Module):
    """conv 3x3, max-pool 3x3 stride 2 (halves the side), two residual blocks."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.block0 = ResidualBlock(out_channels)
        self.block1 = ResidualBlock(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.block1(self.block0(self.pool(self.conv(x))))


class ImpalaCNN(nn.Module):
    """The IMPALA encoder (Espeholt et al. 2018): residual stages, then a linear layer to `features` (256).

    Padded convs and pools that round up keep every side >= 1, so any frame size works; each
    stage halves the side (64 -> 32 -> 16 -> 8 with three stages).
    """

    def __init__(self, in_channels: int, image_size: int, channels: Sequence[int] = (16, 32, 32), features: int = 256) -> None:
        super().__init__()
        _check_positive(in_channels=in_channels, image_size=image_size, features=features)
        if not channels or any(width < 1 for width in channels):
            raise SettingError(f"`channels` must be one or more widths >= 1, got {list(channels)}")
        stages: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            stages.append(ImpalaStage(previous, width))
            previous = width
        self.stages = nn.Sequential(*stages, nn.ReLU(), nn.Flatten())
        self.linear = nn.Linear(_flattened_size(self.stages, in_channels, image_size), features)
        self.features = features

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.linear(self.stages(x)))


def make_encoder(name: str, in_channels: int, image_size: int) -> NatureCNN | ImpalaCNN:
    """An encoder by name, with its paper's defaults (NatureCNN: 512 features, ImpalaCNN: 256)."""
    if name == "nature":
        return NatureCNN(in_channels, image_size)
    if name == "impala":
        return ImpalaCNN(in_channels, image_size)
    raise SettingError(f"`encoder` must be one of {', '.join(ENCODERS)}, got {name!r}")


class PixelInverseDynamicsNet(nn.Module):
    """`p(a | s, s')` on two frame stacks; `forward(obs, next_obs)` gives `(B, output_dim)` logits or means.

    `fusion="concat"` stacks s and s' on the channel axis into one encoder, so the first conv
    already sees pixel differences (how most IDMs, VPT's among them, take their frames).
    `fusion="delta"` feeds s and the signed change s' - s instead: the same channels, but a static
    background cancels in the second half, so a shift of a fraction of a pixel (an action seen at
    64x64) is the whole of those channels rather than a small change on top of a bright frame (the
    state IDM's `input_mode="delta"`, on pixels).
    `fusion="shared"` encodes s and s' separately with one encoder (one batched call) and feeds
    `[f, f', f' - f]` to an MLP head: motion has to survive the encoder's pooling, but the
    encoder is the policy's, so its weights could later be shared with it.

    `head_hidden_sizes`: hidden widths of the head. None picks `()` for "concat" and "delta" (the encoder's
    last layer is already a hidden layer) and `(256,)` for "shared" (a linear map of `f' - f`
    adds nothing over `f` and `f'`; a hidden layer lets the difference count).
    """

    def __init__(
        self,
        stack: int,
        image_size: int,
        channels_per_frame: int,
        output_dim: int,
        encoder: EncoderName = "nature",
        fusion: Fusion = "concat",
        head_hidden_sizes: Sequence[int] | None = None,
        motion_gain: float = 0.0,
    ) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise SettingError(f"`fusion` must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        _check_positive(output_dim=output_dim)
        self.fusion = fusion
        self.frames = FrameNormalizer(stack, image_size, channels_per_frame, motion_gain)
        in_channels = self.frames.out_channels * (1 if fusion == "shared" else 2)
        self.encoder = make_encoder(encoder, in_channels, image_size)
        if head_hidden_sizes is None:
            head_hidden_sizes = (256,) if fusion == "shared" else ()
        head_in = self.encoder.features * (3 if fusion == "shared" else 1)
        self.head = mlp(head_in, output_dim, list(head_hidden_sizes))

    def forward(self, obs: Tensor, next_obs: Tensor) -> Tensor:
        first, second = self.frames(obs), self.frames(next_obs)
        if self.fusion == "concat":
            return self.head(self.encoder(torch.cat([first, second], dim=1)))
        if self.fusion == "delta":
            return self.head(self.encoder(torch.cat([first, second - first], dim=1)))
        features = self.encoder(torch.cat([first, second], dim=0))
        now, then = features.split(first.size(0), dim=0)
        return self.head(torch.cat([now, then, then - now], dim=1))


class PixelPolicyNet(nn.Module):
    """`pi(a | s)` on one frame stack; `forward(obs)` gives `(B, output_dim)` logits or means."""

    def __init__(
        self, stack: int, image_size: int, channels_per_frame: int, output_dim: int, encoder: EncoderName = "nature", motion_gain: float = 0.0
    ) -> None:
        super().__init__()
        _check_positive(output_dim=output_dim)
        self.frames = FrameNormalizer(stack, image_size, channels_per_frame, motion_gain)
        self.encoder = make_encoder(encoder, self.frames.out_channels, image_size)
        self.head = nn.Linear(self.encoder.features, output_dim)

    def forward(self, obs: Tensor) -> Tensor:
        return self.head(self.encoder(self.frames(obs)))
