"""BCO(0)'s last two steps from a saved pixel IDM: label the expert frames, clone them, evaluate.

    python benchmarks/bco0_from_idm.py IDM.ckpt          # discrete CarRacing-v3, as run on 2026-12-03

For an IDM whose `bco run` was stopped by hand (a CarRacing IDM trains for hours on 2 CPU cores):
its best checkpoint so far (`checkpoints/idm-iter0.ckpt`) answers whether those labels make a policy
that drives. The policy stage is a plain Trainer with the public API (validation every 5 epochs,
patience 5), not `bco run`'s stopping and selection, so its score is a separate figure from a
`bco run` cell's.
"""

from __future__ import annotations

import argparse
import json
import time

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping

from bco_lightning import BCODataModule, BCPolicyModule, EnvEvaluationCallback, FitNormalizers, IDMModule
from bco_lightning.report import label_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("idm_checkpoint")
    parser.add_argument("--env_id", default="CarRacing-v3")
    parser.add_argument("--env_kwargs", type=json.loads, default={"continuous": False})
    parser.add_argument("--expert_path", default="bco_lightning/demonstrations/CarRacing-v3-discrete-pixels.npz")
    parser.add_argument("--grayscale", action="store_true")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pl.seed_everything(args.seed, workers=True, verbose=False)
    start = time.perf_counter()
    data = BCODataModule(args.env_id, args.env_kwargs, expert_path=args.expert_path, observation="pixels", grayscale=args.grayscale, seed=args.seed)
    # weights_only=False: checkpoints written before random_play was saved as plain data hold a pickled class
    idm = IDMModule.load_from_checkpoint(args.idm_checkpoint, map_location="cpu", weights_only=False).eval()
    data.expert_labels = data.label_expert(idm)
    print("label accuracy", label_accuracy(data.expert_labels, data.expert.actions, idm.codec), flush=True)
    policy = BCPolicyModule(**data.model_shapes, encoder="nature", lr=3e-4)
    evaluation = EnvEvaluationCallback(
        args.env_id, args.env_kwargs, episodes=args.episodes, num_envs=args.episodes, seed=12345,
        demonstrator_return=data.expert.demonstrator_return, pixels=data.pixels,
    )
    data.stage = "policy"
    trainer = pl.Trainer(
        max_epochs=300,
        check_val_every_n_epoch=5,
        callbacks=[FitNormalizers(), EarlyStopping(monitor="val/loss", patience=5), evaluation],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(policy, datamodule=data)
    metrics = {key: round(value, 3) for key, value in evaluation.metrics().items()}
    print(metrics, "random", evaluation.random_return, "epochs", trainer.current_epoch, "wall", round(time.perf_counter() - start), flush=True)


if __name__ == "__main__":
    main()
