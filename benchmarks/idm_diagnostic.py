"""How well does an IDM label a demonstrator's transitions, and why not? An offline diagnostic.

Trains inverse dynamics models (plain PyTorch, the package's own networks and codec) on interaction
data and reports, for each, the mean absolute error on held-out interaction transitions and on the
demonstration pairs against the demonstrator's true actions (the file's diagnostic `actions`), plus
the label accuracy `bco run` reports (share of action components within 10% of the half-range).

It separates the two reasons an IDM can fail on a demonstration:
  - coverage: the interaction never visits the demonstrator's states (`--oracle_steps` adds
    transitions of the demonstrator's own SB3 model with Gaussian action noise, which BCO never has:
    a diagnostic upper bound, never a method);
  - fit: the model cannot represent inverse dynamics even where it has data (held-out MAE).

    python benchmarks/idm_diagnostic.py --env_id Walker2d-v5 --expert_path bco_lightning/demonstrations/Walker2d-v5.npz \
        --random_steps 500000 --oracle_model benchmarks/demonstrators/models/Walker2d-v5-sac.zip --oracle_steps 50000
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from bco_lightning.data.expert_file import load_expert_file
from bco_lightning.data.rollouts import Policy, Transitions, collect_transitions
from bco_lightning.envs import describe_env
from bco_lightning.nets import ActionCodec, InverseDynamicsNet
from bco_lightning.report import label_accuracy


def oracle_policy(model_path: str, noise: float, seed: int, low: np.ndarray, high: np.ndarray) -> Policy:
    """The demonstrator's deterministic SB3 action plus Gaussian noise (std `noise` x half-range)."""
    from stable_baselines3 import SAC

    model = SAC.load(model_path, device="cpu")
    rng = np.random.default_rng(seed)
    half = (high - low) / 2

    def act(observations: np.ndarray) -> np.ndarray:
        actions, _ = model.predict(observations, deterministic=True)
        return np.clip(actions + rng.normal(0.0, noise, actions.shape) * half, low, high).astype(np.float32)

    return act


def train_idm(
    data: Transitions, codec: ActionCodec, input_mode: str, hidden: list[int], epochs: int, seed: int, batch_size: int = 256
) -> InverseDynamicsNet:
    torch.manual_seed(seed)
    obs = torch.as_tensor(data.states)
    nxt = torch.as_tensor(data.next_states)
    act = torch.as_tensor(data.actions)
    net = InverseDynamicsNet(obs.shape[1], codec.output_dim, hidden, input_mode)  # type: ignore[arg-type]
    net.fit_normalizers(obs, nxt)
    codec.fit(act)
    target = codec.encode(act)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.0)
    n = obs.shape[0]
    for _ in range(epochs):
        order = torch.randperm(n)
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            loss = codec.loss(net(obs[rows], nxt[rows]), target[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return net


@torch.no_grad()
def label_errors(net: InverseDynamicsNet, codec: ActionCodec, obs: np.ndarray, nxt: np.ndarray, actions: np.ndarray) -> dict[str, float]:
    """The codec's MAE in the unit box and `bco run`'s label accuracy, for these transitions."""
    output = net(torch.as_tensor(obs), torch.as_tensor(nxt))
    labels = codec.decode(output).numpy()
    return {
        "mae": float(codec.error(output, torch.as_tensor(actions))),
        "accuracy": label_accuracy(labels, actions, codec),  # type: ignore[dict-item]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env_id", required=True)
    parser.add_argument("--expert_path", required=True, help="an expert state file, e.g. bco_lightning/demonstrations/<env_id>.npz")
    parser.add_argument("--random_steps", type=int, default=500_000)
    parser.add_argument("--oracle_model", default=None, help="the demonstrator's SB3 model, e.g. benchmarks/demonstrators/models/<env_id>-sac.zip")
    parser.add_argument("--oracle_steps", type=int, default=0)
    parser.add_argument("--oracle_noise", type=float, default=0.3)
    parser.add_argument("--input_modes", nargs="+", default=["delta"])
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    spec = describe_env(args.env_id)
    low, high = np.asarray(spec.action_low, dtype=np.float32), np.asarray(spec.action_high, dtype=np.float32)
    expert = load_expert_file(args.expert_path)
    if expert.actions is None:
        parser.error(f"{args.expert_path} has no 'actions': the diagnostic scores labels against them")
    pairs = expert.pair_indices()
    expert_obs, expert_next = expert.observations[pairs], expert.observations[pairs + 1]
    expert_actions = expert.actions.reshape(len(pairs), -1)

    start = time.perf_counter()
    parts = [collect_transitions(args.env_id, None, args.random_steps, args.seed, num_envs=16)]
    if args.oracle_steps:
        policy = oracle_policy(args.oracle_model, args.oracle_noise, args.seed, low, high)
        parts.append(collect_transitions(args.env_id, None, args.oracle_steps, args.seed + 1, policy, num_envs=16))
    data = Transitions.concatenate(parts)
    print(f"collected {len(data)} transitions in {time.perf_counter() - start:.0f} s", flush=True)

    rng = np.random.default_rng(args.seed)
    held_out = rng.random(len(data)) < 0.05
    train = Transitions(data.observations, data.actions[~held_out], data.obs_index[~held_out], data.next_index[~held_out])
    val = Transitions(data.observations, data.actions[held_out], data.obs_index[held_out], data.next_index[held_out])
    for mode in args.input_modes:
        start = time.perf_counter()
        codec = ActionCodec(False, len(low), low.tolist(), high.tolist())
        net = train_idm(train, codec, mode, args.hidden, args.epochs, args.seed)
        result = {
            "input_mode": mode,
            "random_steps": args.random_steps,
            "oracle_steps": args.oracle_steps,
            "held_out": label_errors(net, codec, val.states, val.next_states, val.actions),
            "demonstration": label_errors(net, codec, expert_obs, expert_next, expert_actions),
            "seconds": round(time.perf_counter() - start),
        }
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
