"""Vector-env collection and evaluation on real gymnasium environments."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from bco_lightning.errors import RolloutError
from bco_lightning.data.rollouts import RandomPlay, Transitions, collect_transitions, evaluate_policy
from bco_lightning.demonstrators import cartpole_controller
from helpers import assert_workers_change_nothing

TAU = 0.02  # CartPole's Euler step: x' = x + tau * x_dot, theta' = theta + tau * theta_dot


def cartpole_successor_error(obs: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
    """How far each `s'` is from the kinematic one-step successor of `s` (0 up to float32 rounding).

    A reset observation is drawn independently of the last state, so a pair that spans two
    episodes misses by about the size of the state itself.
    """
    x, x_dot, theta, theta_dot = obs.astype(np.float64).T
    predicted = np.stack([x + TAU * x_dot, theta + TAU * theta_dot], axis=1)
    return np.abs(next_obs[:, [0, 2]] - predicted).max(axis=1)


def naive_transitions(num_steps: int, seed: int, num_envs: int = 4) -> tuple[np.ndarray, np.ndarray, int]:
    """Keep every consecutive pair a next-step-autoreset vector env returns (the known pitfall)."""
    envs = gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="sync")
    envs.action_space.seed(seed)
    obs, _ = envs.reset(seed=seed)
    obs_parts, next_parts, episode_ends = [], [], 0
    while sum(len(p) for p in obs_parts) < num_steps:
        next_obs, _, terminated, truncated, _ = envs.step(envs.action_space.sample())
        obs_parts.append(obs)
        next_parts.append(next_obs)
        episode_ends += int(np.sum(terminated | truncated))
        obs = next_obs
    envs.close()
    return np.concatenate(obs_parts)[:num_steps], np.concatenate(next_parts)[:num_steps], episode_ends


def test_collect_returns_exactly_n_transitions_with_shapes():
    transitions = collect_transitions("CartPole-v1", None, 1001, seed=0, num_envs=4)
    assert isinstance(transitions, Transitions)
    assert len(transitions) == 1001
    assert transitions.states.shape == (1001, 4) and transitions.states.dtype == np.float32
    assert transitions.next_states.shape == (1001, 4) and transitions.next_states.dtype == np.float32
    # each observation is stored once: s' of one step is s of the next, not a second copy. The
    # extra rows are the episodes' last observations (random episodes last about 22 steps).
    assert len(transitions.observations) < 1.1 * 1001
    assert np.isin(transitions.next_index, transitions.obs_index).mean() > 0.9
    assert transitions.actions.shape == (1001,) and transitions.actions.dtype == np.int64
    assert set(np.unique(transitions.actions)) == {0, 1}


def test_collect_continuous_actions_within_bounds():
    transitions = collect_transitions("Pendulum-v1", None, 300, seed=1, num_envs=3)
    assert transitions.states.shape == (300, 3)
    assert transitions.actions.shape == (300, 1) and transitions.actions.dtype == np.float32
    assert np.all(np.abs(transitions.actions) <= 2.0)


def test_successor_check_catches_pairs_across_episodes():
    """The check used below is strong enough: it flags the reset pairs a naive loop keeps."""
    obs, next_obs, episode_ends = naive_transitions(1000, seed=0)
    assert episode_ends >= 20  # random CartPole episodes last about 20 steps
    error = cartpole_successor_error(obs, next_obs)
    bad = error > 1e-4
    # Every bad pair goes to a reset state, and there is one per finished episode that was stepped past.
    assert np.all(np.abs(next_obs[bad]) <= 0.05)
    assert episode_ends - 4 <= bad.sum() <= episode_ends


def test_no_transition_spans_two_episodes():
    transitions = collect_transitions("CartPole-v1", None, 2000, seed=0, num_envs=4)
    error = cartpole_successor_error(transitions.states, transitions.next_states)
    assert error.max() < 1e-4, f"{int(np.sum(error >= 1e-4))} transitions are not one-step successors"
    # Episodes do end in this data: terminal states (|theta| > 12 deg or |x| > 2.4) are kept as s'.
    terminal = (np.abs(transitions.next_states[:, 2]) > 0.2095) | (np.abs(transitions.next_states[:, 0]) > 2.4)
    assert terminal.sum() >= 50
    # ... and never used as s, since their successor would be a reset state.
    starts_terminal = (np.abs(transitions.states[:, 2]) > 0.2095) | (np.abs(transitions.states[:, 0]) > 2.4)
    assert not starts_terminal.any()


def test_policy_is_called_on_batches_and_its_actions_are_recorded():
    calls = []

    def always_right(observations: np.ndarray) -> np.ndarray:
        calls.append(observations.shape)
        return np.ones(observations.shape[0], dtype=np.int64)

    transitions = collect_transitions("CartPole-v1", None, 200, seed=0, policy=always_right, num_envs=5)
    assert set(calls) == {(5, 4)}
    assert np.all(transitions.actions == 1)
    # pushing right accelerates the cart rightwards at every step
    assert np.all(transitions.next_states[:, 1] > transitions.states[:, 1])


def test_random_play_holds_each_action_for_repeat_steps():
    transitions = collect_transitions("CartPole-v1", None, 600, seed=0, num_envs=3, random_play=RandomPlay(repeat=5))
    # Steps are stored step-major (sub-env e of step t at row t * 3 + e), and every sub-env changes
    # its action only at steps 0, 5, 10, ...: the step of each transition is its row // 3.
    step = transitions.obs_index // 3
    for env in range(3):
        mine = transitions.obs_index % 3 == env
        # consecutive steps only: the step after an episode's end is not a transition
        consecutive = np.diff(step[mine]) == 1
        changes = np.flatnonzero(consecutive & (np.diff(transitions.actions[mine]) != 0)) + 1
        assert len(changes) > 10  # it does change (about half of the 40 blocks), at block boundaries only
        assert np.all(step[mine][changes] % 5 == 0)


def test_random_play_samples_within_its_bounds_and_probabilities():
    play = RandomPlay(low=[0.5], high=[1.5])
    box = collect_transitions("Pendulum-v1", None, 400, seed=0, num_envs=4, random_play=play).actions
    assert box.min() >= 0.5 and box.max() <= 1.5 and box.max() - box.min() > 0.9
    play = RandomPlay(low=[0.5], high=[1.5], zero_probability=[0.7])  # a pedal released 70% of the time
    pedal = collect_transitions("Pendulum-v1", None, 2000, seed=0, num_envs=4, random_play=play).actions
    assert 0.65 < np.mean(pedal == 0) < 0.75
    assert pedal[pedal != 0].min() >= 0.5 and pedal.max() <= 1.5
    play = RandomPlay(probabilities=[0.0999999, 0.9])  # a sum off by rounding, as a YAML file may hold
    discrete = collect_transitions("CartPole-v1", None, 2000, seed=0, num_envs=4, random_play=play).actions
    assert 0.85 < np.mean(discrete == 1) < 0.95
    # the uniform default is the action space's own seeded stream, as before this option existed
    default = collect_transitions("CartPole-v1", None, 500, seed=3, num_envs=4, random_play=RandomPlay())
    np.testing.assert_array_equal(default.actions, collect_transitions("CartPole-v1", None, 500, seed=3, num_envs=4).actions)


def test_seeded_collection_is_reproducible():
    first = collect_transitions("CartPole-v1", None, 500, seed=3, num_envs=4)
    second = collect_transitions("CartPole-v1", None, 500, seed=3, num_envs=4)
    other = collect_transitions("CartPole-v1", None, 500, seed=4, num_envs=4)
    np.testing.assert_array_equal(first.observations, second.observations)
    np.testing.assert_array_equal(first.actions, second.actions)
    np.testing.assert_array_equal(first.next_states, second.next_states)
    assert not np.array_equal(first.observations, other.observations)


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1"])
def test_worker_processes_give_the_same_state_transitions_and_returns(env_id):
    """Pendulum's sub-envs move into workers; CartPole keeps gymnasium's one-numpy-call vector env."""
    assert_workers_change_nothing(env_id, None, steps=300, episodes=3)


def test_non_finite_observation_is_a_rollout_error():
    def nan_policy(observations: np.ndarray) -> np.ndarray:
        return np.full((observations.shape[0], 1), np.nan, dtype=np.float32)

    with pytest.raises(RolloutError, match="Pendulum-v1"):
        collect_transitions("Pendulum-v1", None, 20, seed=0, policy=nan_policy, num_envs=2)


@pytest.mark.parametrize(("episodes", "num_envs"), [(10, 4), (3, 8), (8, 8), (1, 4)])
def test_evaluate_runs_exactly_the_requested_episodes(episodes, num_envs):
    result = evaluate_policy("CartPole-v1", None, None, episodes=episodes, seed=0, num_envs=num_envs)
    assert result.returns.shape == (episodes,)
    assert result.lengths.shape == (episodes,)
    # CartPole pays 1 per step: each return is its episode's length, so no step was miscounted
    np.testing.assert_array_equal(result.returns, result.lengths)
    assert np.all(result.lengths >= 8)


def test_random_policy_return_on_cartpole_is_low():
    result = evaluate_policy("CartPole-v1", None, None, episodes=20, seed=0, num_envs=4)
    assert result.mean_return < 60
    assert result.std_return > 0


def test_demonstrator_gets_exactly_the_time_limit():
    def controller(observations: np.ndarray) -> np.ndarray:
        return np.array([cartpole_controller(o) for o in observations])

    result = evaluate_policy("CartPole-v1", None, controller, episodes=5, seed=0, num_envs=2)
    np.testing.assert_array_equal(result.returns, [500.0] * 5)
    np.testing.assert_array_equal(result.lengths, [500] * 5)
    assert result.std_return == 0.0


def test_evaluation_is_reproducible():
    first = evaluate_policy("CartPole-v1", None, None, episodes=6, seed=11, num_envs=4)
    second = evaluate_policy("CartPole-v1", None, None, episodes=6, seed=11, num_envs=4)
    np.testing.assert_array_equal(first.returns, second.returns)


def test_evaluation_quota_is_not_biased_toward_short_episodes():
    """Sub-env 0 dies fast (pushed one way), sub-env 1 survives long: each must get its quota.

    A count of the first N episodes to finish would be nearly all short ones.
    """

    def split_policy(observations: np.ndarray) -> np.ndarray:
        balanced = np.array([cartpole_controller(o) for o in observations])
        balanced[0] = 0
        return balanced

    result = evaluate_policy("CartPole-v1", None, split_policy, episodes=6, seed=0, num_envs=2)
    # results come in sub-env order: 3 short episodes from sub-env 0, then 3 full ones from sub-env 1
    assert np.all(result.lengths[:3] < 50)
    np.testing.assert_array_equal(result.lengths[3:], [500, 500, 500])


def test_selection_plays_its_own_number_of_episodes_on_its_own_seeds():
    """`--selection_episodes`: more selection than evaluation episodes; the selection's first
    episodes are those a 2-episode selection plays, and none repeats an evaluation episode."""
    from bco_lightning.callbacks import EnvEvaluationCallback

    class StateDependentPolicy:
        """Pushes toward where the pole leans, late: episode lengths vary with the start state."""

        def as_policy(self):
            return lambda obs: (obs[:, 2] + 0.2 * obs[:, 3] > 0.02).astype(np.int64)

    many = EnvEvaluationCallback("CartPole-v1", episodes=2, seed=10, num_envs=2, random_return=0.0, selection_seed=20, selection_episodes=6)
    few = EnvEvaluationCallback("CartPole-v1", episodes=2, seed=10, num_envs=2, random_return=0.0, selection_seed=20)
    many.evaluate(StateDependentPolicy())
    few.evaluate(StateDependentPolicy())
    assert len(many.result.returns) == len(few.result.returns) == 2
    assert len(many.selection_result.returns) == 6 and len(few.selection_result.returns) == 2
    np.testing.assert_array_equal(many.result.returns, few.result.returns)
    first_per_sub_env = many.selection_result.returns[[0, 3]]  # sub-env order: 3 episodes each
    np.testing.assert_array_equal(first_per_sub_env, few.selection_result.returns)
    assert len(set(many.selection_result.returns)) > 1, "the policy should give returns that tell seeds apart"
    assert not np.array_equal(many.result.returns, few.selection_result.returns)
