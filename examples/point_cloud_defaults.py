"""The point-cloud view at its defaults: what it says on Naitzat's D-I and on scikit-learn's digits.

The README's "k and the sample size" paragraph quotes these numbers; they are written here, not by hand.

* Inputs (``input``): Naitzat et al.'s D-I validation split (:class:`~lightning_topo.datasets.NaitzatDataModule`,
  standardised, data seeds ``--first-seed`` ... ``+ seeds - 1``) seen through an identity layer by
  ``analyse(complex="rips")`` at the defaults (300 inputs per class, ``k="auto"``, 2.5 hops, the callback's sample):
  the Betti numbers (b0, b1) of each class's cloud, known to be (9, 0) for class a (nine disks) and (1, 9) for
  class b (a disk with nine holes). The same with ``k=14`` (Naitzat et al.'s value) on the same sample.
* D-I MLP (``d1_mlp``): ``MLPClassifier(2, hidden 15, depth 9, relu, lr 0.005, cosine schedule)`` on D-I
  (batch 256, gradient clipping 1.0, data seed ``--first-seed``), the recipe of ``configs/d1_relu.yaml`` but
  ``--mlp-epochs`` 150 epochs, not 60 (60 left it at 0.93 validation accuracy here, 150 at 0.999); the
  point-cloud view at the defaults before (random init) and after training: each layer's (b0, b1) per class, the
  first layer from which every class is (1, 0), the decay rate.
* Digits CNN (``digits_cnn``): ``Classifier(digits_cnn())`` on the digits (batch 64, lr 0.01,
  ``--cnn-epochs`` epochs); the point-cloud view at the defaults before and after training: the sample per class
  (the validation split holds about 45 digits per class), the ``k`` it gives, each layer's mean (b0, b1) over
  classes, the decay rate.

Run (one torch thread by default; times on 2 CPU cores, idle / busy with other work):

    python examples/point_cloud_defaults.py --out docs/findings/point_cloud_defaults   # full: 3 seeds (~25 s / ~80 s)
    python examples/point_cloud_defaults.py --quick                                    # 1 seed (~10 s / ~20 s)

Writes ``results.json`` under ``--out`` (default ``outputs/point_cloud_defaults``): the settings, the numbers
above and ``environment`` (versions, CPU, threads, date); ``examples/make_findings.py`` turns the committed full
run into the README's Findings. Also ``betti_vs_depth.png`` (needs matplotlib; without it the run says so and
writes the JSON only): the MLP's and the CNN's mean b0 and b1 per layer, before (dashed) and after (solid) training.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

from _provenance import add_perturbation_args, apply_perturbation, environment
from _trainer import quiet_trainer
from lightning.pytorch import LightningDataModule, LightningModule, seed_everything
from torch import nn

from lightning_topo import TopologyReport, analyse
from lightning_topo.config import auto_k
from lightning_topo.datasets import DigitsDataModule, NaitzatDataModule
from lightning_topo.models import Classifier, MLPClassifier, digits_cnn

KNOWN_D1 = {0: [9, 0], 1: [1, 9]}
"""D-I's Betti numbers (b0, b1) per class: class a is nine disks, class b a disk with nine holes."""


def _per_class(report: TopologyReport, layer: int) -> dict[str, list[int]]:
    """``{class: [b0, b1]}`` of one layer (a class's Betti numbers are integers: one cloud per class)."""
    return {str(c): [round(v) for v in report.betti[layer, i].tolist()] for i, c in enumerate(report.classes)}


def _counts(report: TopologyReport) -> dict[str, int]:
    return {str(c): int((report.labels == c).sum()) for c in report.classes}


def inputs(seed: int) -> dict[str, Any]:
    """The Betti numbers of D-I's validation clouds at the defaults and at k = 14 (the same sample)."""
    datamodule = NaitzatDataModule("d1", seed=seed)
    identity = nn.Sequential(nn.Identity())
    auto = analyse(identity, datamodule, complex="rips", layers=["0"], progress=False)
    fixed = analyse(identity, datamodule, complex="rips", layers=["0"], k=14, progress=False)
    counts = _counts(auto)
    return {
        "seed": seed,
        "per_class": counts,
        "k_auto": {c: auto_k(n) for c, n in counts.items()},
        "auto": _per_class(auto, 0),
        "k14": _per_class(fixed, 0),
    }


def _fit(model: LightningModule, datamodule: LightningDataModule, epochs: int, args: argparse.Namespace) -> float:
    """Train ``model``; its last validation accuracy."""
    trainer = quiet_trainer(epochs, args.trainer_precision, accelerator="cpu", gradient_clip_val=args.clip)
    trainer.fit(model, datamodule=datamodule)
    return float(trainer.callback_metrics["val_acc"])


def _settled(report: TopologyReport) -> int | None:
    """The first layer (1-based) from which every class is one component without a hole, or ``None``."""
    ones = [all(b == [1, 0] for b in _per_class(report, i).values()) for i in range(len(report.layers))]
    for i in range(len(ones)):
        if all(ones[i:]):
            return i + 1
    return None


def _model_record(untrained: TopologyReport, trained: TopologyReport, val_acc: float) -> dict[str, Any]:
    if trained.layers != untrained.layers:
        raise RuntimeError(f"layers changed during training: {untrained.layers} -> {trained.layers}")
    return {
        "layers": trained.layers,
        "per_class": _counts(trained),
        "k_auto": {c: auto_k(n) for c, n in _counts(trained).items()},
        "val_acc": val_acc,
        "trained": {
            "betti": [_per_class(trained, i) for i in range(len(trained.layers))],
            "mean_betti": trained.mean_betti().tolist(),
            "decay_rate": trained.decay_rate,
            "settled_from": _settled(trained),
        },
        "untrained": {
            "betti": [_per_class(untrained, i) for i in range(len(untrained.layers))],
            "mean_betti": untrained.mean_betti().tolist(),
            "decay_rate": untrained.decay_rate,
            "settled_from": _settled(untrained),
        },
    }


def d1_mlp(args: argparse.Namespace) -> dict[str, Any]:
    """``configs/d1_relu.yaml``'s MLP on D-I, measured at the point-cloud defaults before and after training."""
    seed_everything(args.first_seed, verbose=False)
    model = MLPClassifier(in_features=2, hidden=15, depth=9, num_classes=2, lr=0.005, schedule="cosine")
    datamodule = NaitzatDataModule("d1", batch_size=256, seed=args.first_seed)
    untrained = analyse(model, datamodule, complex="rips", progress=False)
    seed_everything(args.first_seed, verbose=False)
    val_acc = _fit(model, datamodule, args.mlp_epochs, args)
    trained = analyse(model, datamodule, complex="rips", progress=False)
    return {"epochs": args.mlp_epochs, **_model_record(untrained, trained, val_acc)}


def digits(args: argparse.Namespace) -> dict[str, Any]:
    """``digits_cnn()`` on the digits, measured at the point-cloud defaults before and after training."""
    seed_everything(args.first_seed, verbose=False)
    model = Classifier(digits_cnn(), lr=0.01)
    datamodule = DigitsDataModule(batch_size=64, seed=args.first_seed)
    untrained = analyse(model, datamodule, complex="rips", progress=False)
    seed_everything(args.first_seed, verbose=False)
    val_acc = _fit(model, datamodule, args.cnn_epochs, args)
    trained = analyse(model, datamodule, complex="rips", progress=False)
    return {"epochs": args.cnn_epochs, **_model_record(untrained, trained, val_acc)}


def _pairs(betti: dict[str, list[int]]) -> str:
    return ", ".join(f"({b[0]}, {b[1]})" for b in betti.values())


def settled_text(settled_from: int | None, depth: int) -> str:
    """Where every class becomes (1, 0) for good: ``"from layer 3 of 9"``, or ``"never (9 layers)"``."""
    return f"from layer {settled_from} of {depth}" if settled_from is not None else f"never ({depth} layers)"


def figure(results: dict[str, Any], path: Path) -> bool:
    """``betti_vs_depth.png``: for the D-I MLP and the digits CNN, the mean b0 and b1 over classes per layer, before
    (dashed) and after (solid) training. False (nothing written) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (key, title) in zip(axes, (("d1_mlp", "D-I MLP"), ("digits_cnn", "digits CNN")), strict=True):
        r = results[key]
        depth = range(1, len(r["layers"]) + 1)
        for state, style in (("trained", "-"), ("untrained", "--")):
            mean = r[state]["mean_betti"]
            for dim, colour in ((0, "tab:blue"), (1, "tab:red")):
                ax.plot(depth, [row[dim] for row in mean], style, color=colour, marker="o", label=f"b{dim}, {state}")
        settled = settled_text(r["trained"]["settled_from"], len(depth))
        heading = f"{title}: val_acc {r['val_acc']:.3f}\ntrained: every class (1, 0) {settled}"
        ax.set(xlabel="layer (depth)", ylabel="mean over classes", title=heading)
        ax.set_xticks(list(depth))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle('analyse(complex="rips") at the defaults: Betti numbers per layer before and after training')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description="The point-cloud view at its defaults on D-I and the digits")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 seed, 5 MLP / 3 CNN epochs (~10 s on 2 idle cores, ~20 s busy; full: ~25 s / ~80 s)",
    )
    parser.add_argument("--seeds", type=int, default=None, help="D-I data seeds for the inputs (3; 1 with --quick)")
    parser.add_argument("--mlp-epochs", type=int, default=None, help="D-I MLP epochs (150; 5 with --quick)")
    parser.add_argument("--cnn-epochs", type=int, default=None, help="digits CNN epochs (20; 3 with --quick)")
    parser.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping")
    parser.add_argument("--out", default="outputs/point_cloud_defaults", help="output folder")
    add_perturbation_args(parser)
    args = parser.parse_args(argv)
    args.seeds = args.seeds or (1 if args.quick else 3)
    args.mlp_epochs = args.mlp_epochs or (5 if args.quick else 150)
    args.cnn_epochs = args.cnn_epochs or (3 if args.quick else 20)
    args.trainer_precision = apply_perturbation(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("results.json", "betti_vs_depth.png"):
        (out / stale).unlink(missing_ok=True)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*number of training batches.*")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)

    start = time.perf_counter()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    results: dict[str, Any] = {
        "config": {
            "quick": args.quick,
            "seeds": list(seeds),
            "mlp_epochs": args.mlp_epochs,
            "cnn_epochs": args.cnn_epochs,
            "clip": args.clip,
            "known_d1": KNOWN_D1,
        },
        "inputs": [inputs(seed) for seed in seeds],
    }
    for row in results["inputs"]:
        print(
            f"D-I inputs, seed {row['seed']}: k auto {row['k_auto']} -> {_pairs(row['auto'])}; "
            f"k 14 -> {_pairs(row['k14'])}"
        )
    results["d1_mlp"] = d1_mlp(args)
    results["digits_cnn"] = digits(args)
    for key in ("d1_mlp", "digits_cnn"):
        r = results[key]
        print(
            f"{key}: val_acc {r['val_acc']:.3f}, decay rate {r['trained']['decay_rate']:.3f} "
            f"(untrained {r['untrained']['decay_rate']:.3f}), all classes (1, 0) "
            f"{settled_text(r['trained']['settled_from'], len(r['layers']))}"
        )
    results["runtime_seconds"] = time.perf_counter() - start
    results["environment"] = environment(precision=args.trainer_precision, first_seed=args.first_seed)
    path = out / "results.json"
    path.write_text(json.dumps(results, indent=1, allow_nan=False) + "\n")
    png = out / "betti_vs_depth.png"
    if figure(results, png):
        print(f"wrote {path} and {png} ({results['runtime_seconds']:.0f} s)")
    else:
        print(f"wrote {path} ({results['runtime_seconds']:.0f} s); no {png.name}: it needs matplotlib")
    return path


if __name__ == "__main__":
    main()
