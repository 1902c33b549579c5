"""Plain networks: normaliser, action codec, and that the IDM / policy nets can learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bco_lightning.idm import IDMModule
from bco_lightning.nets import ActionCodec, InverseDynamicsNet, Normalizer, PolicyNet, mlp
from bco_lightning.policy import BCPolicyModule

LOW, HIGH = [-2.0, 0.0], [2.0, 1.0]


def test_normalizer_standardises_and_keeps_constant_dims_finite():
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(5000, 3, generator=generator) * torch.tensor([3.0, 0.01, 50.0]) + torch.tensor([5.0, -2.0, 100.0])
    data = torch.cat([data, torch.full((5000, 1), 7.0)], dim=1)  # a constant dimension
    normalizer = Normalizer(4)
    assert not bool(normalizer.fitted)
    normalizer.fit(data)
    out = normalizer(data)
    assert bool(normalizer.fitted)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[:, :3].mean(0), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[:, :3].std(0, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    assert torch.all(out[:, 3] == 0)
    assert normalizer.std[3] == 1.0


def test_unfitted_normalizer_is_identity():
    x = torch.randn(4, 3)
    torch.testing.assert_close(Normalizer(3)(x), x)


@pytest.mark.parametrize("fitted", [False, True], ids=["unfitted", "fitted_to_labels"])
def test_box_codec_round_trip(fitted):
    codec = ActionCodec(False, 2, LOW, HIGH)
    g = torch.Generator().manual_seed(0)
    actions = torch.rand(1000, 2, generator=g) * torch.tensor([4.0, 1.0]) + torch.tensor([-2.0, 0.0])
    if fitted:
        codec.fit(actions[:500] * 0.1)  # labels that use a sliver of the bounds
    target = codec.encode(actions)
    assert target.shape == (1000, 2) and torch.isfinite(target).all()
    # a network output equal to the encoded target decodes back to the action
    torch.testing.assert_close(codec.decode(target), actions, atol=1e-4, rtol=0)
    # the bounds themselves are reachable
    bounds = torch.tensor([LOW, HIGH])
    torch.testing.assert_close(codec.decode(codec.encode(bounds)), bounds, atol=1e-5, rtol=0)


def test_box_codec_clamps_out_of_bounds_actions():
    codec = ActionCodec(False, 2, LOW, HIGH)
    decoded = codec.decode(codec.encode(torch.tensor([[-10.0, 5.0]])))
    torch.testing.assert_close(decoded, torch.tensor([[-2.0, 1.0]]))


@settings(max_examples=100, deadline=None)
@given(arrays(np.float32, (7, 2), elements=st.floats(-1e6, 1e6, width=32)))
def test_box_decode_and_sample_stay_within_bounds(raw):
    codec = ActionCodec(False, 2, LOW, HIGH)
    codec.fit(torch.tensor([[0.1, 0.5], [0.2, 0.52], [0.15, 0.51]]))  # a narrow label spread
    output = torch.from_numpy(raw)
    low, high = torch.tensor(LOW), torch.tensor(HIGH)
    for action in (codec.decode(output), codec.sample(output, noise_std=5.0, generator=torch.Generator().manual_seed(0))):
        assert torch.isfinite(action).all()
        assert torch.all(action >= low) and torch.all(action <= high)


def test_discrete_codec_decodes_argmax_and_samples_valid_classes():
    codec = ActionCodec(True, 3)
    logits = torch.tensor([[0.1, 2.0, -1.0], [5.0, 4.0, 3.0], [-3.0, -2.0, -1.0]])
    torch.testing.assert_close(codec.decode(logits), torch.tensor([1, 0, 2]))
    assert codec.encode(torch.tensor([2, 0])).dtype == torch.int64
    samples = codec.sample(torch.randn(200, 3), 0.0, torch.Generator().manual_seed(0))
    assert samples.shape == (200,) and samples.min() >= 0 and samples.max() <= 2
    # a confident softmax is sampled (almost) always at its argmax
    confident = codec.sample(torch.tensor([[0.0, 30.0, 0.0]] * 50), 0.0, torch.Generator().manual_seed(0))
    assert torch.all(confident == 1)


def test_continuous_codec_needs_bounds():
    with pytest.raises(ValueError, match="action_low"):
        ActionCodec(False, 2)


def _synthetic_dynamics(discrete: bool, n: int = 4096, seed: int = 0):
    """s' = s + B a + small noise, on states with a large offset and scale (normalisers matter)."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, 4, generator=g) * torch.tensor([10.0, 0.1, 1.0, 3.0]) + 50.0
    if discrete:
        actions = torch.randint(0, 3, (n,), generator=g)
        effect = torch.tensor([[-0.1, 0.0, 0.05, 0.0], [0.0, 0.0, 0.0, 0.0], [0.1, 0.0, -0.05, 0.0]])[actions]
    else:
        actions = torch.rand(n, 2, generator=g) * torch.tensor([4.0, 1.0]) + torch.tensor([-2.0, 0.0])
        effect = actions @ torch.tensor([[0.05, 0.0, 0.01, 0.0], [0.0, 0.02, 0.0, -0.1]])
    next_obs = obs + effect + 1e-4 * torch.randn(n, 4, generator=g)
    return obs, actions, next_obs


@pytest.mark.parametrize("discrete", [True, False], ids=["discrete", "continuous"])
def test_inverse_dynamics_net_learns_synthetic_dynamics(discrete):
    torch.manual_seed(0)
    obs, actions, next_obs = _synthetic_dynamics(discrete)
    codec = ActionCodec(True, 3) if discrete else ActionCodec(False, 2, LOW, HIGH)
    net = InverseDynamicsNet(4, codec.output_dim, [64, 64], input_mode="delta")
    net.fit_normalizers(obs[:3500], next_obs[:3500])
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    target = codec.encode(actions)
    with torch.no_grad():
        initial = codec.loss(net(obs[3500:], next_obs[3500:]), target[3500:]).item()
    g = torch.Generator().manual_seed(1)
    for _ in range(300):
        batch = torch.randint(0, 3500, (256,), generator=g)
        loss = codec.loss(net(obs[batch], next_obs[batch]), target[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        output = net(obs[3500:], next_obs[3500:])
        final = codec.loss(output, target[3500:]).item()
        decoded = codec.decode(output)
    assert final < 0.1 * initial, (initial, final)
    if discrete:
        assert (decoded == actions[3500:]).float().mean() > 0.95
    else:
        assert (decoded - actions[3500:]).abs().mean() < 0.05 * 4


def test_policy_net_learns_a_state_feedback_rule():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(4096, 4, generator=g) * 0.1
    actions = (obs[:, 2] + 0.5 * obs[:, 3] > 0).long()
    net = PolicyNet(4, 2, [64, 64])
    net.obs_normalizer.fit(obs)
    codec = ActionCodec(True, 2)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for step in range(300):
        batch = torch.randint(0, 4096, (256,), generator=g)
        loss = codec.loss(net(obs[batch]), actions[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-20:]) < 0.3 * np.mean(losses[:5])
    with torch.no_grad():
        assert (codec.decode(net(obs)) == actions).float().mean() > 0.95


@pytest.mark.parametrize("input_mode", ["delta", "next"])
def test_idm_input_modes(input_mode):
    net = InverseDynamicsNet(3, 2, [8], input_mode=input_mode)
    obs, next_obs = torch.ones(5, 3), torch.full((5, 3), 3.0)
    expected = next_obs - obs if input_mode == "delta" else next_obs
    torch.testing.assert_close(net.second_input(obs, next_obs), expected)
    assert net(obs, next_obs).shape == (5, 2)


def test_normaliser_statistics_travel_in_state_dict():
    net = InverseDynamicsNet(4, 2, [16])
    obs = torch.randn(100, 4) + 3.0
    net.fit_normalizers(obs, obs + 0.5 * torch.randn(100, 4))
    state = net.state_dict()
    for key in ("obs_normalizer.mean", "obs_normalizer.std", "obs_normalizer.fitted", "second_normalizer.mean", "second_normalizer.std"):
        assert key in state, key
    fresh = InverseDynamicsNet(4, 2, [16])
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.obs_normalizer.mean, net.obs_normalizer.mean)
    assert bool(fresh.obs_normalizer.fitted)
    x = torch.randn(6, 4)
    torch.testing.assert_close(fresh(x, x + 1), net(x, x + 1))


def test_lightning_modules_expose_normalisers_and_codec_in_state_dict():
    idm = IDMModule(obs_dim=3, action_dim=1, discrete=False, action_low=[-2.0], action_high=[2.0], hidden_sizes=[8])
    policy = BCPolicyModule(obs_dim=3, action_dim=1, discrete=False, action_low=[-2.0], action_high=[2.0], hidden_sizes=[8])
    assert {"net.obs_normalizer.mean", "net.second_normalizer.std", "codec.center", "codec.half_range"} <= set(idm.state_dict())
    assert {"net.obs_normalizer.mean", "net.obs_normalizer.std", "codec.half_range"} <= set(policy.state_dict())
    assert idm.hparams.action_high == [2.0] and policy.hparams.discrete is False


def test_mlp_shapes():
    net = mlp(5, 3, [7, 11])
    assert net(torch.zeros(2, 5)).shape == (2, 3)
    assert [m.out_features for m in net if isinstance(m, torch.nn.Linear)] == [7, 11, 3]
