"""BCO(0) on Pendulum-v1 with the Python API and plain Lightning Trainers.

    python examples/python_api.py [--seed 0]

The four steps of the algorithm, one Trainer each where something is learnt: random interaction
teaches the inverse dynamics model (IDM) which action explains each state change, the IDM labels
the expert's state pairs, the policy clones the labelled states, and the policy is evaluated in
the environment. Prints the normalised score: 0 is a uniform random policy, 1 the demonstrator.
`bco run --config pendulum.yaml --iterations 0` runs the same algorithm with the package's own
stopping and selection rules.
"""

from __future__ import annotations

import argparse

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EarlyStopping

from bco_lightning import BCODataModule, BCPolicyModule, EnvEvaluationCallback, FitNormalizers, IDMModule


def trainer(*callbacks: pl.Callback) -> pl.Trainer:
    """A plain Trainer that validates every 5 epochs (these epochs are short: 20 to 80 optimiser
    steps) and stops once the validation loss has not improved for 5 validations in a row."""
    return pl.Trainer(
        max_epochs=500,
        check_val_every_n_epoch=5,
        callbacks=[FitNormalizers(), EarlyStopping(monitor="val/loss", patience=5), *callbacks],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def main(seed: int = 0) -> float:
    pl.seed_everything(seed, workers=True, verbose=False)
    # The shipped demonstrations: 25 episodes of a scripted swing-up controller, states only.
    data = BCODataModule(env_id="Pendulum-v1", expert_path="data/Pendulum-v1.npz", pre_demo_steps=20_000, seed=seed)
    idm = IDMModule(**data.model_shapes, hidden_sizes=[256, 256])
    policy = BCPolicyModule(**data.model_shapes, hidden_sizes=[256, 256])

    # 1-2. Uniform random interaction (collected when the IDM's fit sets up) teaches p(a | s, s').
    data.stage = "idm"
    trainer().fit(idm, datamodule=data)

    # 3. Label every expert pair (s_t, s_t+1) with the IDM's most likely action.
    data.expert_labels = idm.label(data.expert.observations, data.expert_pairs)

    # 4. Clone the labelled states into pi(a | s); 5. evaluate it on 30 seeded episodes when fit ends.
    evaluation = EnvEvaluationCallback("Pendulum-v1", episodes=30, num_envs=30, demonstrator_return=data.expert.demonstrator_return)
    data.stage = "policy"
    trainer(evaluation).fit(policy, datamodule=data)

    metrics = evaluation.metrics()
    print(
        f"Pendulum-v1 BCO(0): return {metrics['eval/return_mean']:.1f} (random {evaluation.random_return:.1f}, "
        f"demonstrator {data.expert.demonstrator_return:.1f}), normalized score {metrics['eval/normalized_score']:.3f}"
    )
    return metrics["eval/normalized_score"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    main(parser.parse_args().seed)
