"""Invariances of the Omega-vs-depth curve: input resolution, training-set size and seed (Suresh et al.)

Reproduces, at toy scale, the "invariances" of Suresh, Das, Abrol & Dutta Roy (arXiv 2311.04592): for one
architecture, the curve of topological complexity Omega against depth stays about the same when the input
resolution, the amount of training data or the random seed changes.

* Architecture: ``digits_cnn((16, 32, 32))`` (:mod:`lightning_topo.models`): three [conv3x3 -> ReLU] blocks
  (2x2 max-pool after the first two), global average pooling, a linear head; 11 top-level modules, all of
  which ``analyse``'s ``layers="auto"`` watches (so the curve has 11 points, ``net.0`` ... ``net.10``).
  The third conv block is there so the curve has three conv stages; the global pooling makes the same
  net accept 8x8, 16x16 and 32x32 inputs.
* Data: scikit-learn's digits (:class:`~lightning_topo.datasets.DigitsDataModule`, split seed ``--first-seed``
  (default 0), 25 % of each class held out for validation). Bigger resolutions are the 8x8 images
  interpolated bilinearly.
* Training: Lightning ``Trainer`` on the CPU, Adam (lr 2e-3), batch 16, a fixed number of epochs (10 quick,
  30 full), one torch thread, float32. The run seed (``seed_everything``) sets the initial weights and the
  shuffling; the data split is the same for every run. (At 32x32 this small net learns slowly: with lr 5e-3 / batch 32
  it sat at chance for several epochs; lr 2e-3 / batch 16 gets all resolutions well above chance.)
* Groups (the base run, 8x8 / 100 % / seed 0, belongs to all three):
  (a) resolution: sizes 8, 16, 32 (seed 0, 100 % of the training split);
  (b) subsample: 25 %, 50 %, 100 % of the training split (``train_fraction``; 8x8, seed 0);
  (c) seed: seeds 0-2 (quick) or 0-4 (full) (8x8, 100 %).
  With ``--first-seed F`` every seed above is shifted by F (base run seed F, seed group F, F+1, ...) and the
  data split seed is F: another split and initialisation, to check that the findings do not hang on them.
  ``--threads`` and ``--precision 64`` perturb the rounding (the Trainer's ``"64-true"``).
* Topology: ``analyse(model, datamodule, progress=False)``: cubical view, threshold "mean", the default
  stratified sample of the validation split (20 digits per class, sample seed 0, the same digits in every
  run), once before training (the untrained, random-init net) and once after.
* Measure of "the curves stay the same": each curve is normalised by its maximum (Omega / max Omega); for
  every pair of runs within a group, the Pearson correlation r of the normalised curves (shape; r does not
  see the scale) and the maximum absolute difference max |a - b| over layers (shape and relative level).
  Per group: mean and min r, mean and max of max |a - b|, and the same numbers for the untrained curves of the
  group's runs (does training make curves more alike than the random init already is?).
* References (can the measure tell curves apart?): r between each trained run's curve and its own
  untrained (random-init) curve; and r between the seed group's runs and the same architecture with tanh
  instead of ReLU, trained the same way (8x8, 100 %, seed 0). Per group the verdict compares the
  within-group r with r(trained run, its own init) over the group's runs: mean above mean, and the strict
  form min above max.

Run:

    python examples/invariances.py            # full: 30 epochs, 5 seeds (10 trainings)
    python examples/invariances.py --quick    # 10 epochs, 3 seeds (8 trainings)
    python examples/invariances.py --quick --threads 2 --precision 64 --first-seed 1   # perturbed

Measured on the shared 2-core CPU (load average about 7 from other jobs): quick mode 71 s in the script,
about 85 s wall time with start-up; full mode 195 s (3.4 min wall time).

Result of the full mode (``docs/findings/invariances/``; its numbers are in the README's Findings, generated from
there): the curves stay about the same across seeds and training-set sizes (these runs share their initial
weights), but not across input resolutions: at 16x16 and 32x32 (interpolated 8x8 digits) the first layers' Omega is
low and the peak moves from the first conv block to the second. The measure's discrimination is limited: a trained
curve and its own random-init curve still correlate highly (the references in the Findings).

Writes under ``--out`` (default ``outputs/invariances``): ``results.json`` (settings, one record per run with
its validation accuracy and Omega curves with layer names, per-group correlation statistics, references, and
``environment``: versions, CPU, torch threads, date, precision, first seed) and
``omega_curves.png`` (one panel per group: normalised Omega vs depth, one line per run; a fourth panel with
the references), and prints a summary table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from _provenance import add_perturbation_args, apply_perturbation, environment
from _trainer import quiet_trainer
from lightning.pytorch import seed_everything

from lightning_topo import analyse
from lightning_topo.datasets import DigitsDataModule
from lightning_topo.models import Classifier, digits_cnn

GROUPS = ("resolution", "subsample", "seed")
VARIES = {"resolution": "size", "subsample": "train_fraction", "seed": "seed"}


def run_key(size: int, fraction: float, seed: int, activation: str) -> str:
    return f"{activation}_size{size}_frac{fraction:g}_seed{seed}"


def train_and_analyse(
    size: int, fraction: float, seed: int, activation: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Train one net with Lightning; Omega curves of its untrained and trained states on the validation split.

    ``seed`` sets the initial weights and the shuffling; the data split seed is ``args.first_seed`` (the same
    for every run of one invocation).
    """
    seed_everything(seed, verbose=False)
    model = Classifier(digits_cnn(tuple(args.channels), activation=activation), lr=args.lr)
    datamodule = DigitsDataModule(batch_size=args.batch_size, size=size, train_fraction=fraction, seed=args.first_seed)
    start = time.perf_counter()
    untrained = analyse(model, datamodule, progress=False)
    analyse_seconds = time.perf_counter() - start
    seed_everything(seed, verbose=False)  # the shuffling does not depend on whether the init was analysed
    trainer = quiet_trainer(args.epochs, args.trainer_precision, accelerator="cpu")
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    report = analyse(model, datamodule, progress=False)
    analyse_seconds += time.perf_counter() - start
    if report.layers != untrained.layers:
        raise RuntimeError(f"layers changed during training: {untrained.layers} -> {report.layers}")
    omega = report.omega.tolist()
    omega0 = untrained.omega.tolist()
    return {
        "key": run_key(size, fraction, seed, activation),
        "size": size,
        "train_fraction": fraction,
        "seed": seed,
        "activation": activation,
        "n_train": len(datamodule.train_set),
        "n_val": len(datamodule.val_set),
        "epochs": args.epochs,
        "val_acc": float(trainer.callback_metrics["val_acc"]),
        "layers": report.layers,
        "layer_types": [type(model.get_submodule(name)).__name__ for name in report.layers],
        "layer_shapes": layer_shapes(model, report.layers, size),
        "peak_layer": report.layers[max(range(len(omega)), key=omega.__getitem__)],
        "omega": omega,
        "omega_normalised": normalise(omega),
        "theta": float(report.theta),
        "decay_rate": float(report.decay_rate),
        "omega_untrained": omega0,
        "omega_untrained_normalised": normalise(omega0),
        "train_seconds": round(train_seconds, 2),
        "analyse_seconds": round(analyse_seconds, 2),
    }


def layer_shapes(model: torch.nn.Module, layers: list[str], size: int) -> list[list[int]]:
    """Output shape (without the batch axis) of each watched layer for one ``size`` x ``size`` input."""
    shapes: dict[str, list[int]] = {}
    hooks = [
        model.get_submodule(name).register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, list(out.shape[1:]))
        )
        for name in layers
    ]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, size, size, dtype=next(model.parameters()).dtype))
    finally:
        for hook in hooks:
            hook.remove()
    return [shapes[name] for name in layers]


def normalise(curve: list[float]) -> list[float]:
    top = max(curve)
    return [v / top for v in curve] if top > 0 else [math.nan for _ in curve]


def pearson(a: list[float], b: list[float]) -> float:
    """Pearson correlation of two curves (NaN when either is constant or not finite)."""
    x = torch.tensor(a, dtype=torch.float64)
    y = torch.tensor(b, dtype=torch.float64)
    x, y = x - x.mean(), y - y.mean()
    denom = float(x.norm() * y.norm())
    if not math.isfinite(denom) or denom == 0.0:
        return math.nan
    return max(-1.0, min(1.0, float((x * y).sum()) / denom))


def compare(a: list[float], b: list[float]) -> dict[str, float]:
    """Pearson r and max absolute difference of two normalised curves."""
    return {"pearson_r": pearson(a, b), "max_abs_diff": max(abs(u - v) for u, v in zip(a, b, strict=True))}


def stats(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    rs = [p["pearson_r"] for p in pairs]
    diffs = [p["max_abs_diff"] for p in pairs]
    return {
        "n_pairs": len(pairs),
        "mean_r": statistics.fmean(rs),
        "min_r": min(rs),
        "max_r": max(rs),
        "mean_max_abs_diff": statistics.fmean(diffs),
        "max_max_abs_diff": max(diffs),
    }


def group_stats(runs: list[dict[str, Any]], curve: str) -> dict[str, Any]:
    pairs = [{"a": a["key"], "b": b["key"], **compare(a[curve], b[curve])} for a, b in itertools.combinations(runs, 2)]
    return {**stats(pairs), "pairs": pairs}


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    first = next(iter(runs.values()))
    depth = list(range(len(first["layers"])))
    names = zip(first["layers"], first["layer_types"], strict=True)
    ticks = [f"{name.removeprefix('net.')} {kind}" for name, kind in names]
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.8), sharey=True)
    for ax, group in zip(axes, GROUPS, strict=False):
        g = results["groups"][group]
        for key, label in zip(g["runs"], g["labels"], strict=True):
            r = runs[key]
            ax.plot(depth, r["omega_normalised"], marker="o", label=f"{label} (acc {r['val_acc']:.2f})")
        s = g["trained"]
        init = g["trained_vs_own_init"]["mean_r"]
        ax.set_title(
            f"{group}: mean r {s['mean_r']:.2f}, min r {s['min_r']:.2f}\n"
            f"(untrained curves mean r {g['untrained']['mean_r']:.2f}; r to own init {init:.2f})",
            fontsize=10,
        )
        ax.legend(fontsize=8)
    ref = results["references"]
    base = runs[ref["base_run"]]
    ax = axes[3]
    ax.plot(depth, base["omega_normalised"], marker="o", color="k", label="base run, trained")
    ax.plot(depth, base["omega_untrained_normalised"], marker="s", ls="--", color="grey", label="base run, untrained")
    if ref.get("tanh_run"):
        tanh = runs[ref["tanh_run"]]
        ax.plot(depth, tanh["omega_normalised"], marker="^", color="tab:red", label="tanh net, trained")
    ax.set_title(
        f"references: r(trained, own init) mean {ref['trained_vs_untrained']['mean_r']:.2f}"
        + (f"\nr(seed group, tanh net) mean {ref['relu_vs_tanh']['mean_r']:.2f}" if ref.get("relu_vs_tanh") else ""),
        fontsize=10,
    )
    ax.legend(fontsize=8)
    for ax in axes:
        ax.set_xticks(depth)
        ax.set_xticklabels(ticks, rotation=60, ha="right", fontsize=7)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Omega / max Omega")
    s = results["settings"]
    fig.suptitle(
        f"digits_cnn{tuple(s['channels'])}, {s['epochs']} epochs; cubical view, threshold '{s['threshold']}', "
        f"{s['samples_per_class']} validation digits per class"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description="Omega-vs-depth invariances (resolution, data size, seed)")
    parser.add_argument("--quick", action="store_true", help="10 epochs, 3 seeds (about 1.5 min)")
    parser.add_argument("--epochs", type=int, default=None, help="default 30; 10 with --quick")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds of group (c); default 5, 3 quick")
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32, 32])
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--no-tanh", action="store_true", help="skip the tanh reference net")
    parser.add_argument("--out", default="outputs/invariances")
    add_perturbation_args(parser, threads=1)  # 1 thread is fastest on a busy 2-core box
    args = parser.parse_args(argv)
    args.trainer_precision = apply_perturbation(args)
    args.epochs = args.epochs or (10 if args.quick else 30)
    args.seeds = args.seeds or (3 if args.quick else 5)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("results.json", "omega_curves.png"):
        (out / stale).unlink(missing_ok=True)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*number of training batches.*")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)

    started = time.perf_counter()
    seeds = [args.first_seed + s for s in range(args.seeds)]
    base_size, base_fraction, base_seed = 8, 1.0, seeds[0]
    members = {
        "resolution": [(s, base_fraction, base_seed) for s in args.sizes],
        "subsample": [(base_size, f, base_seed) for f in args.fractions],
        "seed": [(base_size, base_fraction, s) for s in seeds],
    }
    wanted = [(s, f, seed, "relu") for group in GROUPS for (s, f, seed) in members[group]]
    if not args.no_tanh:
        wanted.append((base_size, base_fraction, base_seed, "tanh"))
    runs: dict[str, dict[str, Any]] = {}
    for size, fraction, seed, activation in wanted:
        key = run_key(size, fraction, seed, activation)
        if key in runs:
            continue
        r = train_and_analyse(size, fraction, seed, activation, args)
        runs[key] = r
        print(
            f"{key:28s} val_acc {r['val_acc']:.3f}  train {r['train_seconds']:5.1f} s  "
            f"Omega {' '.join(f'{v:5.2f}' for v in r['omega'])}",
            flush=True,
        )

    groups: dict[str, Any] = {}
    for group in GROUPS:
        keys = [run_key(s, f, seed, "relu") for (s, f, seed) in members[group]]
        chosen = [runs[k] for k in keys]
        groups[group] = {
            "varies": VARIES[group],
            "runs": keys,
            "labels": [f"{VARIES[group]} {r[VARIES[group]]:g}" for r in chosen],
            "trained": group_stats(chosen, "omega_normalised"),
            "untrained": group_stats(chosen, "omega_untrained_normalised"),
        }
    relu = [r for r in runs.values() if r["activation"] == "relu"]
    base_key = run_key(base_size, base_fraction, base_seed, "relu")
    own_init = {
        r["key"]: {
            "a": r["key"],
            "b": "its own untrained init",
            **compare(r["omega_normalised"], r["omega_untrained_normalised"]),
        }
        for r in relu
    }
    references: dict[str, Any] = {
        "base_run": base_key,
        "trained_vs_untrained": {**stats(list(own_init.values())), "pairs": list(own_init.values())},
    }
    if not args.no_tanh:
        # Same input (8x8, 100 %): the seed group's runs against the tanh net; only the activation differs.
        tanh_key = run_key(base_size, base_fraction, base_seed, "tanh")
        tanh = runs[tanh_key]
        vs_tanh = [
            {"a": k, "b": tanh_key, **compare(runs[k]["omega_normalised"], tanh["omega_normalised"])}
            for k in groups["seed"]["runs"]
        ]
        references.update(tanh_run=tanh_key, relu_vs_tanh={**stats(vs_tanh), "pairs": vs_tanh})
    for group in GROUPS:
        g = groups[group]
        init = stats([own_init[k] for k in g["runs"]])
        g["trained_vs_own_init"] = init
        g["verdict"] = {
            "mean_r_above_own_init_mean_r": g["trained"]["mean_r"] > init["mean_r"],
            "min_r_above_own_init_max_r": g["trained"]["min_r"] > init["max_r"],
            "trained_more_alike_than_untrained": g["trained"]["mean_r"] > g["untrained"]["mean_r"],
        }

    elapsed = time.perf_counter() - started
    results = {
        "settings": {
            "paper": "Suresh, Das, Abrol, Dutta Roy, arXiv 2311.04592 (invariances of the Omega-vs-depth curve)",
            "mode": "quick" if args.quick else "full",
            "architecture": f"digits_cnn({tuple(args.channels)}) (ReLU; the reference net uses tanh)",
            "channels": args.channels,
            "epochs": args.epochs,
            "optimiser": f"Adam lr {args.lr}, batch {args.batch_size}",
            "data": f"scikit-learn digits, DigitsDataModule(split seed {args.first_seed}, val_fraction 0.25)",
            "sizes": args.sizes,
            "train_fractions": args.fractions,
            "seeds": seeds,
            "first_seed": args.first_seed,
            "precision": args.trainer_precision,
            "base_run": base_key,
            "analyse": "analyse(model, datamodule, progress=False) on the validation split",
            "complex": "cubical",
            "threshold": "mean",
            "samples_per_class": 20,
            "layers": "auto (every top-level module of the CNN)",
            "measure": (
                "per pair of runs in a group: Pearson r of the curves normalised by their max (Omega / max Omega)"
                " and the max absolute difference of the normalised curves; per group mean and min r"
            ),
            "verdict": (
                "per group: within-group mean r > mean r(trained run, its own init) over the group's runs; the"
                " strict form: within-group min r > max r(trained run, its own init); and whether the trained"
                " curves are more alike than the same runs' untrained curves"
            ),
            "torch_threads": args.threads,
        },
        "runs": runs,
        "groups": groups,
        "references": references,
        "runtime_seconds": round(elapsed, 1),
        "environment": environment(precision=args.trainer_precision, first_seed=args.first_seed),
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    plot(results, out / "omega_curves.png")

    print(
        f"\n{'run':28s} {'val_acc':>7s} {'n_train':>7s}  normalised Omega per layer "
        f"({', '.join(relu[0]['layers'])})  peak layer (its output shape)"
    )
    for r in runs.values():
        peak_shape = r["layer_shapes"][r["layers"].index(r["peak_layer"])]
        print(
            f"{r['key']:28s} {r['val_acc']:7.3f} {r['n_train']:7d}  "
            f"{' '.join(f'{v:4.2f}' for v in r['omega_normalised'])}  {r['peak_layer']} {tuple(peak_shape)}"
        )
    print(
        f"\n{'group':11s} {'pairs':>5s} {'mean r':>7s} {'min r':>7s} {'max|d|':>7s} | untrained {'mean r':>6s} "
        f"{'min r':>6s} | r(trained, own init) {'mean':>6s} {'max':>6s}"
    )
    for group in GROUPS:
        g = groups[group]
        t, u, i = g["trained"], g["untrained"], g["trained_vs_own_init"]
        print(
            f"{group:11s} {t['n_pairs']:5d} {t['mean_r']:7.3f} {t['min_r']:7.3f} {t['max_max_abs_diff']:7.3f} | "
            f"{'':9s} {u['mean_r']:6.3f} {u['min_r']:6.3f} | {'':20s} {i['mean_r']:6.3f} {i['max_r']:6.3f}"
        )
    for group in GROUPS:
        v = groups[group]["verdict"]
        print(
            f"{group}: within-group mean r {'>' if v['mean_r_above_own_init_mean_r'] else '<='} mean r to own init; "
            f"min r {'>' if v['min_r_above_own_init_max_r'] else '<='} max r to own init; trained curves "
            f"{'more' if v['trained_more_alike_than_untrained'] else 'not more'} alike than untrained ones"
        )
    tv = references["trained_vs_untrained"]
    print(
        f"reference, every trained run vs its own init: mean r {tv['mean_r']:.3f} "
        f"(min {tv['min_r']:.3f}, max {tv['max_r']:.3f})"
    )
    if "relu_vs_tanh" in references:
        rt = references["relu_vs_tanh"]
        print(
            f"reference, seed-group runs vs the tanh net (same input): mean r {rt['mean_r']:.3f} "
            f"(min {rt['min_r']:.3f}, max {rt['max_r']:.3f})"
        )
    print(f"runtime {elapsed:.0f} s; outputs: {out}/results.json, {out}/omega_curves.png")
    return out


if __name__ == "__main__":
    main()
