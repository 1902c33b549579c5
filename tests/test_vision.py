"""Pixel networks (bco_lightning/vision.py): shapes, the uint8 -> [0, 1] step inside, gradients,
TorchScript, clear refusals, that the IDM sees motion between two stacks, and the throughput
benchmark's smoke mode. Tiny on purpose: 16x16 frames, stack 2, batch 8."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bco_lightning.errors import SettingError
from bco_lightning.vision import (
    FrameNormalizer,
    ImpalaCNN,
    NatureCNN,
    PixelInverseDynamicsNet,
    PixelPolicyNet,
    frame_layout,
    is_frame_shape,
    random_shift,
)
from helpers import CLI_ENV

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
STACK, SIZE, BATCH, OUT = 2, 16, 8, 4
ENCODERS = ["nature", "impala"]
FUSIONS = ["concat", "delta", "shared"]
COLOURS = {"gray": 1, "rgb": 3}


def frames(channels_per_frame: int, seed: int = 0, batch: int = BATCH) -> torch.Tensor:
    shape = (batch, STACK, SIZE, SIZE) + ((3,) if channels_per_frame == 3 else ())
    return torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def first_conv(net: nn.Module) -> nn.Conv2d:
    return next(layer for layer in net.modules() if isinstance(layer, nn.Conv2d))


@pytest.mark.parametrize("colour", COLOURS)
@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("fusion", FUSIONS)
def test_idm_output_shape_and_gradients_reach_the_first_conv(colour, encoder, fusion):
    torch.manual_seed(0)
    net = PixelInverseDynamicsNet(STACK, SIZE, COLOURS[colour], OUT, encoder=encoder, fusion=fusion)
    obs, next_obs = frames(COLOURS[colour], 0), frames(COLOURS[colour], 1)
    output = net(obs, next_obs)
    assert output.shape == (BATCH, OUT) and output.dtype == torch.float32
    assert obs.dtype == torch.uint8  # the caller's batch is left as it was
    F.cross_entropy(output, torch.arange(BATCH) % OUT).backward()
    grad = first_conv(net).weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("colour", COLOURS)
@pytest.mark.parametrize("encoder", ENCODERS)
def test_policy_output_shape_and_gradients_reach_the_first_conv(colour, encoder):
    torch.manual_seed(0)
    net = PixelPolicyNet(STACK, SIZE, COLOURS[colour], OUT, encoder=encoder)
    output = net(frames(COLOURS[colour]))
    assert output.shape == (BATCH, OUT) and output.dtype == torch.float32
    output.square().mean().backward()
    grad = first_conv(net).weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_encoders_map_float_images_to_features():
    x = torch.rand(BATCH, 4, SIZE, SIZE)
    assert NatureCNN(4, SIZE).stem == "small" and NatureCNN(4, SIZE)(x).shape == (BATCH, 512)
    assert ImpalaCNN(4, SIZE)(x).shape == (BATCH, 256)
    assert NatureCNN(4, 84).stem == "nature" and NatureCNN(4, 84)(torch.rand(2, 4, 84, 84)).shape == (2, 512)
    assert NatureCNN(4, 84).linear.in_features == 7 * 7 * 64  # the paper's 84x84 feature map, found by the dummy forward


def test_frame_normalizer_scales_and_orders_rgb_channels_frame_by_frame():
    x = frames(3)
    out = FrameNormalizer(STACK, SIZE, 3)(x)
    assert out.shape == (BATCH, 3 * STACK, SIZE, SIZE) and out.dtype == torch.float32
    for frame in range(STACK):
        for colour in range(3):
            torch.testing.assert_close(out[:, 3 * frame + colour], x[:, frame, :, :, colour].float() / 255)
    gray = frames(1)
    torch.testing.assert_close(FrameNormalizer(STACK, SIZE, 1)(gray), gray.float() / 255)
    assert float(FrameNormalizer(STACK, SIZE, 1)(torch.full((1, STACK, SIZE, SIZE), 255, dtype=torch.uint8)).max()) == 1.0


@pytest.mark.parametrize("colour", COLOURS)
def test_motion_gain_appends_the_scaled_change_between_consecutive_frames(colour):
    channels = COLOURS[colour]
    x = frames(channels)
    plain = FrameNormalizer(STACK, SIZE, channels)(x)
    normalizer = FrameNormalizer(STACK, SIZE, channels, motion_gain=12.5)
    out = normalizer(x)
    assert normalizer.out_channels == out.shape[1] == (2 * STACK - 1) * channels
    torch.testing.assert_close(out[:, : STACK * channels], plain)
    torch.testing.assert_close(out[:, STACK * channels :], 12.5 * (plain[:, channels:] - plain[:, :-channels]))
    net = PixelPolicyNet(STACK, SIZE, channels, OUT, motion_gain=12.5).eval()
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(net)(x), net(x))  # an exported policy keeps its motion channels
    with pytest.raises(SettingError, match="motion_gain needs a frame_stack of at least 2"):
        FrameNormalizer(1, SIZE, channels, motion_gain=1.0)
    with pytest.raises(SettingError, match="motion_gain must be >= 0"):
        PixelInverseDynamicsNet(STACK, SIZE, channels, OUT, motion_gain=-1.0)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_the_scale_is_inside_the_network(fusion):
    """uint8 in: the same output as the encoder and head fed frames scaled by hand."""
    torch.manual_seed(0)
    net = PixelInverseDynamicsNet(STACK, SIZE, 1, OUT, fusion=fusion).eval()
    obs, next_obs = frames(1, 0), frames(1, 1)
    first, second = obs.float() / 255, next_obs.float() / 255
    with torch.no_grad():
        if fusion == "concat":
            by_hand = net.head(net.encoder(torch.cat([first, second], dim=1)))
        elif fusion == "delta":  # the change, signed: a static background cancels
            by_hand = net.head(net.encoder(torch.cat([first, second - first], dim=1)))
        else:
            now, then = net.encoder(first), net.encoder(second)
            by_hand = net.head(torch.cat([now, then, then - now], dim=1))
        torch.testing.assert_close(net(obs, next_obs), by_hand)
    policy = PixelPolicyNet(STACK, SIZE, 3, OUT).eval()
    rgb = frames(3)
    scaled = rgb.permute(0, 1, 4, 2, 3).reshape(BATCH, 3 * STACK, SIZE, SIZE).float() / 255
    with torch.no_grad():
        torch.testing.assert_close(policy(rgb), policy.head(policy.encoder(scaled)))


@pytest.mark.parametrize("encoder", ENCODERS)
def test_networks_script_and_round_trip_through_a_torchscript_file(encoder):
    torch.manual_seed(0)
    nets = [PixelInverseDynamicsNet(STACK, SIZE, 3, OUT, encoder=encoder, fusion=fusion).eval() for fusion in FUSIONS]
    nets.append(PixelPolicyNet(STACK, SIZE, 1, OUT, encoder=encoder).eval())
    for net in nets:
        inputs = (frames(3, 0), frames(3, 1)) if isinstance(net, PixelInverseDynamicsNet) else (frames(1),)
        scripted = torch.jit.script(net)
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
        buffer.seek(0)
        loaded = torch.jit.load(buffer)
        with torch.no_grad():
            eager = net(*inputs)
            torch.testing.assert_close(scripted(*inputs), eager)
            torch.testing.assert_close(loaded(*inputs), eager)


def test_too_small_images_and_bad_settings_are_refused_in_one_line():
    with pytest.raises(SettingError, match=r"image_size 16 is too small for NatureCNN's nature stem: it needs at least 36x36") as error:
        NatureCNN(2, 16, stem="nature")
    assert "\n" not in str(error.value) and error.value.settings() == ["image_size"]
    with pytest.raises(SettingError, match=r"image_size 8 is too small .* small stem: it needs at least 9x9"):
        PixelPolicyNet(STACK, 8, 1, OUT, encoder="nature")
    assert PixelPolicyNet(STACK, 9, 1, OUT)(torch.zeros(1, STACK, 9, 9, dtype=torch.uint8)).shape == (1, OUT)  # the smallest it takes
    assert PixelPolicyNet(STACK, 4, 1, OUT, encoder="impala")(torch.zeros(1, STACK, 4, 4, dtype=torch.uint8)).shape == (1, OUT)
    with pytest.raises(SettingError, match="encoder must be one of nature, impala"):
        PixelPolicyNet(STACK, SIZE, 1, OUT, encoder="resnet")  # type: ignore[arg-type]
    with pytest.raises(SettingError, match="fusion must be one of concat, delta, shared"):
        PixelInverseDynamicsNet(STACK, SIZE, 1, OUT, fusion="sum")  # type: ignore[arg-type]
    with pytest.raises(SettingError, match="channels_per_frame must be 1"):
        PixelPolicyNet(STACK, SIZE, 2, OUT)
    with pytest.raises(SettingError, match="stack must be >= 1"):
        PixelPolicyNet(0, SIZE, 1, OUT)


def test_frames_of_the_wrong_dtype_or_shape_are_refused_eager_and_scripted():
    net = PixelPolicyNet(STACK, SIZE, 1, OUT).eval()
    scripted = torch.jit.script(net)
    for model in (net, scripted):
        with pytest.raises((ValueError, torch.jit.Error), match="must be uint8"):
            model(frames(1).float())  # already-scaled floats would be scaled twice
        with pytest.raises((ValueError, torch.jit.Error), match=r"stack=2, H=W=16"):
            model(frames(3))  # RGB into a grayscale network
        with pytest.raises((ValueError, torch.jit.Error), match=r"stack=2, H=W=16"):
            model(torch.zeros(1, STACK, 15, 15, dtype=torch.uint8))


def test_frame_shape_helpers():
    assert is_frame_shape((4, 84, 84)) and is_frame_shape((2, 64, 64, 3))
    assert not is_frame_shape((17,)) and not is_frame_shape((4, 84)) and not is_frame_shape((2, 64, 64, 4))
    assert frame_layout((4, 84, 84)) == (4, 84, 1) and frame_layout((2, 64, 64, 3)) == (2, 64, 3)
    with pytest.raises(SettingError, match="frames must be square"):
        frame_layout((2, 64, 48))
    with pytest.raises(SettingError, match="no frame stack"):
        frame_layout((17,))


MOVES = torch.tensor([[-1, 0], [1, 0], [0, -1], [0, 1]])  # up, down, left, right as (row, column) steps


def square_frames(corners: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Dim noise (0..39) with a bright 2x2 square (255) whose top-left corner is at `corners[i]`."""
    n, pixels = corners.size(0), torch.arange(SIZE)
    image = torch.randint(0, 40, (n, SIZE, SIZE), generator=generator, dtype=torch.uint8)
    rows = (pixels >= corners[:, :1]) & (pixels < corners[:, :1] + 2)
    cols = (pixels >= corners[:, 1:]) & (pixels < corners[:, 1:] + 2)
    image[rows[:, :, None] & cols[:, None, :]] = 255
    return image


def moving_square(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stacks (f0, f1) and (f1, f2) of a square at a random place: a random move before, then the
    labelled move (one pixel up, down, left or right) between s and s'."""
    actions = torch.randint(0, 4, (n,), generator=generator)
    before = torch.randint(0, 4, (n,), generator=generator)
    middle = torch.randint(1, SIZE - 2, (n, 2), generator=generator)  # both moves stay inside the frame
    f0, f1, f2 = (square_frames(corners, generator) for corners in (middle - MOVES[before], middle, middle + MOVES[actions]))
    return torch.stack([f0, f1], 1), torch.stack([f1, f2], 1), actions


def test_concat_idm_learns_which_way_a_square_moved():
    """The IDM sees motion between the stacks: four moves told apart, in a few seconds on one core."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    obs, next_obs, actions = moving_square(2048 + 512, generator)
    net = PixelInverseDynamicsNet(STACK, SIZE, 1, 4, encoder="nature", fusion="concat")
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

    def held_out_accuracy() -> float:
        with torch.no_grad():
            return float((net(obs[2048:], next_obs[2048:]).argmax(-1) == actions[2048:]).float().mean())

    start, accuracy = time.perf_counter(), 0.0
    for step in range(1, 301):
        batch = torch.randint(0, 2048, (32,), generator=generator)
        loss = F.cross_entropy(net(obs[batch], next_obs[batch]), actions[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 25 == 0:
            accuracy = held_out_accuracy()
            if accuracy >= 0.97:
                break
    seconds = time.perf_counter() - start
    assert accuracy >= 0.9, f"held-out accuracy {accuracy:.3f} after {step} steps ({seconds:.1f} s)"


def test_flop_count_of_the_benchmark_matches_the_layer_arithmetic():
    spec = importlib.util.spec_from_file_location("pixel_throughput", BENCHMARKS / "pixel_throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = NatureCNN(2, SIZE)  # small stem: 16 -> 14 -> 6 -> 4
    macs = 14 * 14 * 32 * 2 * 9 + 6 * 6 * 64 * 32 * 9 + 4 * 4 * 64 * 64 * 9 + 4 * 4 * 64 * 512
    assert module.forward_flops(net, torch.zeros(1, 2, SIZE, SIZE)) == 2 * macs
    assert module.forward_flops(net, torch.zeros(3, 2, SIZE, SIZE)) == 3 * 2 * macs


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_pixel_throughput_quick_runs(tmp_path: Path, precision: str) -> None:
    output = tmp_path / "pixel_throughput.md"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "pixel_throughput.py"), "--quick", "--precision", precision, "--output", str(output)],
        cwd=tmp_path, env=CLI_ENV, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    text = output.read_text()
    assert "## Conv peak" in text and f", {precision}, started" in text
    rows = [line for line in text.splitlines() if line.startswith(("| policy |", "| IDM |")) and "samples" not in line]
    assert len(rows) == 6 + 3  # 3 models x 2 encoders, then 3 NatureCNN / IMPALA ratios
    assert all("%" in row for row in rows[:6])


@pytest.mark.parametrize("colour", [False, True])
def test_random_shift_moves_each_sample_and_its_next_frames_by_one_offset(colour):
    """Every shifted sample is its frames translated by a whole offset of at most `pad` pixels with
    the edge repeated, and `s'` moves exactly as `s` does, so the motion between them survives."""
    torch.manual_seed(0)
    shape = (64, 2, 12, 12, 3) if colour else (64, 2, 12, 12)
    obs = torch.randint(0, 256, shape, dtype=torch.uint8)
    next_obs = torch.randint(0, 256, shape, dtype=torch.uint8)
    moved_obs, moved_next = random_shift([obs, next_obs], pad=3)
    assert moved_obs.shape == obs.shape and moved_obs.dtype == torch.uint8
    offsets = set()
    for i in range(len(obs)):
        matches = [
            (dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)
            if torch.equal(moved_obs[i], _translated(obs[i], dy, dx)) and torch.equal(moved_next[i], _translated(next_obs[i], dy, dx))
        ]
        assert len(matches) == 1, f"sample {i} is no single translation of its frames"
        offsets.add(matches[0])
    assert len(offsets) > 10  # drawn per sample, not one offset for the batch
    assert torch.equal(random_shift([obs], pad=0)[0], obs)


def _translated(frames: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """`frames` (stack, H, W[, 3]) read at (row + dy, col + dx), edges repeated: the reference shift."""
    size = frames.size(1)
    rows = (torch.arange(size) + dy).clamp(0, size - 1)
    cols = (torch.arange(size) + dx).clamp(0, size - 1)
    return frames[:, rows][:, :, cols]


def test_augment_shift_is_refused_for_state_vectors_and_moves_both_idm_inputs_together():
    from bco_lightning.idm import IDMModule

    with pytest.raises(SettingError, match="augment_shift"):
        IDMModule(obs_dim=4, action_dim=2, discrete=True, augment_shift=4)
    from bco_lightning.policy import BCPolicyModule

    for module_class in (IDMModule, BCPolicyModule):
        with pytest.raises(SettingError, match="motion_gain adds frame-difference channels: it must be 0 for state vectors"):
            module_class(obs_dim=4, action_dim=2, discrete=True, motion_gain=10.0)
    torch.manual_seed(0)
    module = IDMModule(obs_dim=0, action_dim=2, discrete=True, obs_shape=[2, 16, 16], augment_shift=4)
    frames = torch.zeros(32, 2, 16, 16, dtype=torch.uint8)
    frames[:, :, 8, 8] = 255
    batch = {"obs": frames, "next_obs": frames.clone(), "action": torch.arange(32)}
    shifted = module.shifted(batch)
    assert torch.equal(shifted["action"], batch["action"])
    assert torch.equal(shifted["obs"], shifted["next_obs"]) and not torch.equal(shifted["obs"], frames)
