"""Quickstart: the digits CNN trained with `TopologyCallback()`, Betti curves per epoch and the decay rate.

    python examples/quickstart.py            # 15 epochs (13-16 s with --threads 1 on a busy 2-core CPU)
    python examples/quickstart.py --quick    # 3 epochs
    python examples/quickstart.py --wandb    # also log to Weights & Biases (offline run under outputs/)
    python examples/quickstart.py --quick --threads 1 --precision 64 --first-seed 1   # perturbed rounding/data

Writes under ``outputs/quickstart/``: ``metrics.csv`` (every logged scalar, from the CSVLogger), the
figures ``betti_vs_depth.png`` / ``omega_history.png`` / ``decay.png`` (under the logger's ``topology/``
folder; drawn in the background, the script waits for them), ``history.json`` (the callback's per-epoch,
per-layer, per-class records) and ``environment.json`` (where the numbers came from: versions, CPU, torch
threads, date, precision, seed).

``--first-seed`` (alias ``--seed``, default 0) sets the initial weights, the shuffling and the data split;
``--threads`` (default: torch's default) and ``--precision 64`` (the Trainer's ``"64-true"``) change the rounding.
"""

from __future__ import annotations

import argparse
import json
import shutil
import warnings
from pathlib import Path

import torch
from _provenance import add_perturbation_args, apply_perturbation, environment
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.loggers import CSVLogger

from lightning_topo import TopologyCallback
from lightning_topo.datasets import DigitsDataModule
from lightning_topo.models import Classifier, digits_cnn


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description="TopologyCallback on the digits CNN")
    parser.add_argument("--quick", action="store_true", help="3 epochs")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--wandb", action="store_true", help="also log to W&B (offline)")
    parser.add_argument("--out", default="outputs/quickstart")
    add_perturbation_args(parser, threads=torch.get_num_threads())
    parser.add_argument("--seed", dest="first_seed", type=int, default=argparse.SUPPRESS, help="same as --first-seed")
    args = parser.parse_args(argv)
    precision = apply_perturbation(args)
    epochs = args.epochs or (3 if args.quick else 15)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")

    seed_everything(args.first_seed)
    loggers = [CSVLogger(out, name="", version="")]
    if args.wandb:
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(WandbLogger(save_dir=str(out), offline=True, project="lightning-topo-quickstart"))
    # A float64 model (--precision 64) needs the callback's float32 sample cast; the default needs nothing.
    topo = TopologyCallback()
    trainer = Trainer(
        max_epochs=epochs,
        callbacks=[topo],
        logger=loggers,
        accelerator="auto",
        devices=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=10,
        precision=precision,
    )
    datamodule = DigitsDataModule(batch_size=32, seed=args.first_seed)
    trainer.fit(Classifier(digits_cnn(), lr=0.01), datamodule=datamodule)
    topo.wait_for_charts()  # figures are drawn off the training thread; the last ones finish after fit returns
    (out / "history.json").write_text(json.dumps(topo.history, indent=1))
    env = environment(precision=precision, first_seed=args.first_seed, epochs=epochs)
    (out / "environment.json").write_text(json.dumps(env, indent=1))
    first, last = topo.history[0], topo.history[-1]
    deepest = topo.layer_names[-1]
    print(f"watched layers: {', '.join(topo.layer_names)}")
    print(f"val_acc after {epochs} epochs: {float(trainer.callback_metrics['val_acc']):.3f}")
    print(
        f"Omega at the deepest layer ({deepest}): epoch 0 {first['layers'][deepest]['omega']:.2f} -> "
        f"epoch {last['epoch']} {last['layers'][deepest]['omega']:.2f}"
    )
    print(f"decay_rate: epoch 0 {first['decay_rate']:+.3f} -> epoch {last['epoch']} {last['decay_rate']:+.3f}")
    print(f"outputs: {out}/metrics.csv, {out}/history.json, {out}/environment.json, figures in {out}/topology/")
    return out


if __name__ == "__main__":
    main()
