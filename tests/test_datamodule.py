"""`BCODataModule`: collection, splits, batches, shapes for the models, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from bco_lightning.callbacks import FitNormalizers
from bco_lightning.data.datamodule import BatchLoader, BCODataModule, ExampleTable
from bco_lightning.data.rollouts import collect_transitions
from bco_lightning.errors import ConfigError, ExpertFileError
from bco_lightning.idm import IDMModule
from bco_lightning.policy import BCPolicyModule
from bco_lightning.run_folder import RunFolder


def quiet_trainer(tmp_path, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kwargs,
        callbacks=[FitNormalizers()],
    )


def flat(loader) -> list[dict[str, torch.Tensor]]:
    """The loader's batches, taken out of their groups (`batches_per_step`)."""
    return [batch for item in loader for batch in (item if isinstance(item, list) else [item])]


def all_batches(loader) -> dict[str, torch.Tensor]:
    batches = flat(loader)
    return {key: torch.cat([b[key] for b in batches]) for key in batches[0]}


def rows(tensors: dict[str, torch.Tensor]) -> set[bytes]:
    """Each transition as bytes, to compare splits as sets."""
    flat = torch.cat([tensors[k].reshape(len(tensors[k]), -1).double() for k in sorted(tensors)], dim=1)
    return {row.numpy().tobytes() for row in flat}


@pytest.fixture
def cartpole_data(cartpole_file) -> BCODataModule:
    data = BCODataModule(env_id="CartPole-v1", expert_path=str(cartpole_file), pre_demo_steps=2000, num_envs=4, seed=0)
    data.setup("fit")
    return data


def test_idm_splits_are_disjoint_and_cover_all_transitions(cartpole_data):
    assert len(cartpole_data.interaction) == 2000
    train = all_batches(cartpole_data.train_dataloader())
    val = all_batches(cartpole_data.val_dataloader())
    assert len(train["obs"]) == 1800 and len(val["obs"]) == 200
    train_rows, val_rows = rows(train), rows(val)
    assert len(train_rows) == 1800 and len(val_rows) == 200  # no transition served twice
    assert not train_rows & val_rows
    everything = {
        "obs": torch.from_numpy(cartpole_data.interaction.states),
        "next_obs": torch.from_numpy(cartpole_data.interaction.next_states),
        "action": torch.from_numpy(cartpole_data.interaction.actions),
    }
    assert train_rows | val_rows == rows(everything)
    # the split is fixed: a second call serves the same validation transitions
    assert rows(all_batches(cartpole_data.val_dataloader())) == val_rows


def test_a_transition_keeps_its_side_as_the_interaction_grows(cartpole_data):
    """BCO(alpha) appends a collection every iteration: the IDM's validation transitions of the
    earlier ones stay held out (its warm start never trained on them), the new collection gives
    its own 10%, and none of the earlier training transitions is held out now."""
    before_train = rows(all_batches(cartpole_data.train_dataloader()))
    before_val = rows(all_batches(cartpole_data.val_dataloader()))
    more = collect_transitions("CartPole-v1", None, 500, seed=1, num_envs=4)
    cartpole_data.add_interaction(more)
    assert cartpole_data.collection_sizes == [2000, 500]
    after_train = rows(all_batches(cartpole_data.train_dataloader()))
    after_val = rows(all_batches(cartpole_data.val_dataloader()))
    assert len(after_val) == 250 and before_val < after_val
    assert before_train < after_train and not after_train & after_val
    assert cartpole_data.num_train_samples() == len(after_train) == 2250


def test_interaction_given_without_its_collections_is_refused(cartpole_data):
    cartpole_data.interaction = collect_transitions("CartPole-v1", None, 100, seed=1, num_envs=4)
    with pytest.raises(RuntimeError, match="collections add up to 2000"):
        cartpole_data.train_dataloader()
    with pytest.raises(ValueError, match="do not add up to the 100 transitions"):
        cartpole_data.restore_interaction(cartpole_data.interaction, [60, 50])
    cartpole_data.restore_interaction(cartpole_data.interaction, [60, 40])
    assert len(all_batches(cartpole_data.val_dataloader())["obs"]) == 6 + 4


def test_the_run_folder_keeps_the_collections_across_a_resume(tmp_path):
    folder = RunFolder(tmp_path, "CartPole-v1")
    transitions = collect_transitions("CartPole-v1", None, 30, seed=0, num_envs=2)
    folder.save_interaction(transitions, [20, 10])
    folder.progress.completed.append("idm-1")  # as after a committed unit
    saved = folder.saved_interaction()
    assert saved is not None and saved[1] == [20, 10]
    np.testing.assert_array_equal(saved[0].actions, transitions.actions)
    # a folder from before the sizes were kept: its transitions are one collection
    arrays = dict(np.load(folder.state_dir / "interaction.npz"))
    del arrays["collection_sizes"]
    np.savez(folder.state_dir / "interaction.npz", **arrays)
    assert folder.saved_interaction()[1] == [30]


def test_train_batches_have_model_shapes(cartpole_data):
    loader = cartpole_data.train_dataloader()
    batches = flat(loader)
    assert len(batches) == int(np.ceil(1800 / 256))
    assert len(list(loader)) == len(loader) == int(np.ceil(len(batches) / cartpole_data.batches_per_step))
    first = batches[0]
    assert set(first) == {"obs", "next_obs", "action"}
    assert first["obs"].shape == (256, 4) and first["obs"].dtype == torch.float32
    assert first["next_obs"].shape == (256, 4)
    assert first["action"].shape == (256,) and first["action"].dtype == torch.int64
    assert batches[-1]["obs"].shape == (1800 - 256 * 7, 4)
    # a fresh permutation each epoch
    assert not torch.equal(first["obs"], flat(loader)[0]["obs"])


def test_predict_pairs_stay_inside_expert_episodes(cartpole_data, cartpole_demos):
    pairs = all_batches(cartpole_data.predict_dataloader())
    assert len(pairs["obs"]) == cartpole_demos.num_transitions
    # consecutive expert states of one episode: the kinematic CartPole step holds exactly
    obs, next_obs = pairs["obs"].double(), pairs["next_obs"].double()
    error = (next_obs[:, 0] - (obs[:, 0] + 0.02 * obs[:, 1])).abs()
    assert error.max() < 1e-4


def test_model_shapes_discrete(cartpole_file):
    data = BCODataModule(env_id="CartPole-v1", expert_path=str(cartpole_file), pre_demo_steps=10)
    assert data.model_shapes == {"obs_dim": 4, "action_dim": 2, "discrete": True, "action_low": None, "action_high": None, "obs_shape": None}


def test_model_shapes_continuous(pendulum_file):
    data = BCODataModule(env_id="Pendulum-v1", expert_path=str(pendulum_file), pre_demo_steps=10)
    assert data.model_shapes == {"obs_dim": 3, "action_dim": 1, "discrete": False, "action_low": [-2.0], "action_high": [2.0], "obs_shape": None}
    # the shapes build working models
    idm = IDMModule(**data.model_shapes, hidden_sizes=[8])
    assert idm({"obs": torch.zeros(2, 3), "next_obs": torch.zeros(2, 3)}).shape == (2, 1)


def test_continuous_batches(pendulum_file):
    data = BCODataModule(env_id="Pendulum-v1", expert_path=str(pendulum_file), pre_demo_steps=500, num_envs=2, batch_size=64)
    data.setup("fit")
    batch = flat(data.train_dataloader())[0]
    assert batch["obs"].shape == (64, 3) and batch["action"].shape == (64, 1)
    assert batch["action"].dtype == torch.float32


def test_expert_obs_shape_mismatch_is_refused_before_any_rollout(pendulum_file):
    data = BCODataModule(env_id="CartPole-v1", expert_path=str(pendulum_file), pre_demo_steps=2000)
    with pytest.raises(ExpertFileError) as info:
        data.setup("fit")
    assert str(pendulum_file) in str(info.value)
    assert "(3,)" in str(info.value) and "(4,)" in str(info.value)
    assert data.interaction is None


def test_policy_stage_without_labels_or_idm_checkpoint_is_a_config_error(tmp_path, cartpole_file):
    data = BCODataModule(env_id="CartPole-v1", expert_path=str(cartpole_file), pre_demo_steps=200)
    policy = BCPolicyModule(**data.model_shapes, hidden_sizes=[8])
    data.stage = "policy"
    with pytest.raises(ConfigError, match="idm_checkpoint"):
        quiet_trainer(tmp_path, max_epochs=1).fit(policy, datamodule=data)


def test_a_model_is_never_served_the_other_stages_data(tmp_path, cartpole_file):
    """The datamodule is told its stage; fitting a policy on a datamodule left at "idm" is refused."""
    data = BCODataModule(env_id="CartPole-v1", expert_path=str(cartpole_file), pre_demo_steps=200)
    policy = BCPolicyModule(**data.model_shapes, hidden_sizes=[8])
    with pytest.raises(ConfigError, match="serves 'idm' data but the model trains on 'policy' data"):
        quiet_trainer(tmp_path, max_epochs=1).fit(policy, datamodule=data)


def test_fitting_without_normalisers_is_refused(tmp_path, cartpole_file):
    data = BCODataModule(env_id="CartPole-v1", expert_path=str(cartpole_file), pre_demo_steps=200)
    idm = IDMModule(**data.model_shapes, hidden_sizes=[8])
    bare = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False, max_epochs=1, default_root_dir=tmp_path)
    with pytest.raises(ConfigError, match="normalisers are not fitted: add the FitNormalizers"):
        bare.fit(idm, datamodule=data)


@pytest.mark.parametrize(
    "kwargs",
    [{"pre_demo_steps": 0}, {"val_fraction": 1.0}, {"val_fraction": 0.0}, {"batch_size": 0}, {"max_expert_episodes": 0}],
)
def test_bad_settings_are_config_errors(cartpole_file, kwargs):
    with pytest.raises(ConfigError):
        BCODataModule(expert_path=str(cartpole_file), **kwargs)


def test_unknown_env_is_a_config_error(cartpole_file):
    with pytest.raises(ConfigError, match="NoSuchEnv-v0"):
        BCODataModule(env_id="NoSuchEnv-v0", expert_path=str(cartpole_file))


def test_max_expert_episodes(cartpole_file):
    data = BCODataModule(expert_path=str(cartpole_file), pre_demo_steps=10, max_expert_episodes=2)
    assert data.expert.num_episodes == 2


def test_shipped_file_is_the_default_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = BCODataModule(pre_demo_steps=10)
    assert data.expert.env_id == "CartPole-v1"


def test_idm_checkpoint_labels_the_expert_states(tmp_path, cartpole_file, cartpole_demos):
    """The policy stage on its own: an IDM checkpoint labels the expert file (most likely action)."""
    pl.seed_everything(0, verbose=False)
    data = BCODataModule(env_id="CartPole-v1", expert_path=str(cartpole_file), pre_demo_steps=2000, num_envs=4, seed=0)
    idm = IDMModule(**data.model_shapes, hidden_sizes=[64, 64], lr=3e-3)
    trainer = quiet_trainer(tmp_path, max_epochs=5, enable_checkpointing=False)
    trainer.fit(idm, datamodule=data)
    checkpoint = tmp_path / "idm.ckpt"
    trainer.save_checkpoint(checkpoint)

    policy_data = BCODataModule(env_id="CartPole-v1", expert_path=str(cartpole_file), idm_checkpoint=str(checkpoint), seed=0)
    policy = BCPolicyModule(**policy_data.model_shapes, hidden_sizes=[32])
    policy_data.stage = "policy"
    quiet_trainer(tmp_path, max_epochs=1, enable_checkpointing=False).fit(policy, datamodule=policy_data)
    labels = policy_data.expert_labels
    assert labels.shape == (cartpole_demos.num_transitions,)
    assert policy_data.interaction is None  # the policy stage needs no rollouts
    # the labels are the demonstrator's actions (diagnostics only: they were never trained on)
    assert np.mean(labels == cartpole_demos.actions) > 0.95
    # the policy trained on them: its batches are expert states with those labels
    batch = flat(policy_data.train_dataloader())[0]
    assert set(batch) >= {"obs", "action"} and batch["obs"].shape[1] == 4


@pytest.mark.parametrize("size, world_size", [(1000, 2), (1001, 2), (1000, 3)])
def test_epoch_shards_are_disjoint_and_cover_the_data(size, world_size):
    """DDP: each rank trains on its own shard; an epoch serves no example twice across ranks."""
    table = ExampleTable(torch.arange(size, dtype=torch.float32)[:, None], torch.arange(size), actions=torch.arange(size))
    rows = torch.arange(size)
    loaders = [BatchLoader(table, rows, 64, shuffle=True, seed=5, rank=r, world_size=world_size) for r in range(world_size)]
    for epoch in range(2):
        shards = [torch.cat([b["action"] for b in loader]) for loader in loaders]
        assert len({len(loader) for loader in loaders}) == 1  # every rank takes the same number of steps
        served = torch.cat(shards)
        assert len(served.unique()) == len(served)  # disjoint
        assert size - world_size < len(served) <= size  # all but fewer than world_size examples
        if epoch == 0:
            first = served
    assert not torch.equal(first, served)  # a fresh permutation each epoch
    # in order (validation, prediction): every row exactly once across ranks
    ordered = [BatchLoader(table, rows, 64, shuffle=False, rank=r, world_size=world_size) for r in range(world_size)]
    assert torch.cat([b["action"] for loader in ordered for b in loader]).sort().values.tolist() == list(range(size))


@pytest.mark.parametrize("group", [3, 8])
def test_grouped_batches_are_the_same_batches_and_train_the_same_weights(cartpole_file, tmp_path, group):
    """`batches_per_step` changes how many optimiser steps share one Lightning step, nothing else."""
    table = ExampleTable(torch.arange(1000, dtype=torch.float32)[:, None], torch.arange(1000), actions=torch.arange(1000))
    single = BatchLoader(table, torch.arange(1000), 64, shuffle=True, seed=5)
    grouped = BatchLoader(table, torch.arange(1000), 64, shuffle=True, seed=5, group=group)
    assert len(grouped) == -(-len(single) // group)
    assert [b["action"].tolist() for b in flat(grouped)] == [b["action"].tolist() for b in single]

    weights, steps = [], []
    for batches_per_step in (1, group):
        data = BCODataModule(
            env_id="CartPole-v1", expert_path=str(cartpole_file), pre_demo_steps=2000, num_envs=4, seed=0, batch_size=64,
            batches_per_step=batches_per_step,
        )
        torch.manual_seed(0)
        idm = IDMModule(**data.model_shapes)
        trainer = quiet_trainer(tmp_path, max_epochs=2, enable_checkpointing=False)
        trainer.fit(idm, datamodule=data)
        weights.append(idm.state_dict())
        steps.append(trainer.global_step)
    assert steps[0] == steps[1] == 2 * int(np.ceil(1800 / 64))  # global_step counts optimiser steps
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])


def test_batches_gather_pairs_from_states_stored_once(cartpole_data):
    """No copy of s and s' up front: the loader's table shares the rollout's observation memory."""
    loader = cartpole_data.train_dataloader()
    assert loader.table.states.data_ptr() == cartpole_data.interaction.observations.ctypes.data
