"""A real multi-process run for the DDP tests: `python tests/ddp_run.py --devices N --out DIR [--uneven]`.

Lightning's "ddp" strategy relaunches this script once per extra rank (gloo on CPU). Every rank writes
`rank{R}.json` with the topology values it logged for: validation with the cubical view, validation with
the point-cloud view, and a fit with EarlyStopping on `topology/decay_rate`.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import EarlyStopping
from torch.utils.data import DataLoader, TensorDataset

from lightning_topo import TopologyCallback, TopologyReport, analyse
from lightning_topo.datasets import load_digits_tensors
from lightning_topo.models import Classifier, digits_cnn


def loaders(uneven: bool) -> tuple[DataLoader, DataLoader]:
    x, y = load_digits_tensors()
    if uneven:
        # 21 validation inputs (< 2 ranks x batch 16); class 9 has a single input, so one rank holds it.
        per_class = [3, 3] + [2] * 7 + [1]  # 21 inputs; class 9 has one
        val_idx = torch.cat([torch.nonzero(y == c).flatten()[-n:] for c, n in enumerate(per_class)])
    else:
        val_idx = torch.arange(1280, 1797)
    train_idx = torch.arange(0, 1280)  # disjoint from every validation index above
    train = DataLoader(TensorDataset(x[train_idx], y[train_idx]), batch_size=32, shuffle=False)
    val = DataLoader(TensorDataset(x[val_idx], y[val_idx]), batch_size=16, shuffle=False)
    return train, val


def topology_values(trainer: Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("topology/")}


def report_values(report: TopologyReport) -> dict[str, float]:
    """The report's numbers under the keys the callback logs them with."""
    values = {"topology/theta": report.theta, "topology/decay_rate": report.decay_rate}
    means = report.mean_betti()
    for i, name in enumerate(report.layers):
        for k in range(means.shape[1]):
            values[f"topology/{name}/b{k}"] = float(means[i, k])
        values[f"topology/{name}/omega"] = float(report.omega[i])
    return values


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--out", required=True)
    parser.add_argument("--uneven", action="store_true")
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    common = dict(
        accelerator="cpu",
        devices=args.devices,
        strategy="ddp" if args.devices > 1 else "auto",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    train, val = loaders(args.uneven)
    out: dict[str, object] = {}
    for complex_ in ("cubical", "rips"):
        seed_everything(0)
        model = Classifier(digits_cnn())
        topo = TopologyCallback(complex=complex_, samples_per_class=8, k=5)
        trainer = Trainer(callbacks=[topo], **common)
        trainer.validate(model, val, verbose=False)
        out[f"validate_{complex_}"] = topology_values(trainer)
        out[f"timings_{complex_}"] = topo.timings
        # The same weights and sample in this one process (no sync even though a process group exists).
        report = analyse(model, val.dataset, topo.config, progress=False)
        out[f"analyse_{complex_}"] = report_values(report)
    if not args.uneven:
        seed_everything(0)
        model = Classifier(digits_cnn())
        topo = TopologyCallback(samples_per_class=8)
        stopper = EarlyStopping(monitor="topology/decay_rate", mode="max", patience=2, min_delta=5.0)
        trainer = Trainer(callbacks=[topo, stopper], max_epochs=args.epochs, **common)
        trainer.fit(model, train, val)
        out["fit_stopped_epoch"] = stopper.stopped_epoch
        out["fit_history_epochs"] = [h["epoch"] for h in topo.history]
        out["fit_values"] = topology_values(trainer)
    rank = int(os.environ.get("LOCAL_RANK", 0))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"rank{rank}.json").write_text(json.dumps(out))


if __name__ == "__main__":
    main()
