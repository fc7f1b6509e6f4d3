"""Early stopping on topology against early stopping on the validation loss (digits CNN).

    python examples/early_stopping.py            # 3 seeds, up to 40 epochs (54 s measured on 2 CPU cores)
    python examples/early_stopping.py --quick    # 1 seed, up to 15 epochs (about 20 s)
    python examples/early_stopping.py --quick --threads 1 --precision 64 --first-seed 1   # perturbed rounding/data

Three runs of the same seeded digits CNN (``digits_cnn()``, Adam 1e-2, batch 32), each with
``TopologyCallback()`` so that every run pays the same topology cost:

* ``none``: trains for ``--max-epochs`` (the reference for accuracy and time);
* ``val_loss``: Lightning's ``EarlyStopping(monitor="val_loss", patience=3)``;
* ``topology``: ``TopologyEarlyStopping(patience=3, min_delta=0, min_delta_mode="abs", ema_alpha=None)`` (the
  defaults before ``examples/stopping_rules.py`` chose new ones), i.e. stop once ``topology/decay_rate`` (the
  depth-normalised decay of Omega; higher = more simplification) has not improved for 3 evaluations.

For each: the epoch it stopped at, validation accuracy at the end, wall time and the time saved against
``none`` (after a one-epoch warm-up run that is not measured, so first-call costs do not bias the first
run). Writes ``results.json`` and ``early_stopping.png`` (validation accuracy and the decay rate per epoch,
the stopping epochs marked) under ``--out`` (default ``outputs/early_stopping``); ``results.json`` records
where its numbers came from (``environment``: versions, CPU, torch threads, date, precision, first seed).

Seed ``s`` (``--first-seed`` + 0, 1, ...) sets both the initial weights / shuffling and the train/validation
split. ``--threads`` (default: torch's default, as before), ``--precision 64`` and ``--first-seed`` perturb the
rounding and the data: whether and when the topology rule stops is a property of the trajectory, not a
guarantee, and moves with them (``tests/test_examples.py`` asserts only what the rules guarantee).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
import warnings
from pathlib import Path

import torch
from _provenance import add_perturbation_args, apply_perturbation, environment
from _trainer import quiet_trainer
from lightning.pytorch import Callback, LightningModule, Trainer, seed_everything
from lightning.pytorch.callbacks import EarlyStopping

from lightning_topo import TopologyCallback, TopologyEarlyStopping
from lightning_topo.datasets import DigitsDataModule
from lightning_topo.models import Classifier, digits_cnn

RULES = ("none", "val_loss", "topology")


class _Trace(Callback):
    """Validation accuracy per epoch (the callback metrics after each validation)."""

    def __init__(self) -> None:
        self.val_acc: list[float] = []

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking and "val_acc" in trainer.callback_metrics:
            self.val_acc.append(float(trainer.callback_metrics["val_acc"]))


def run(rule: str, seed: int, max_epochs: int, patience: int, precision: str = "32-true") -> dict:
    """One training run with the given stopping rule; ``seed`` sets the init, shuffling and data split."""
    seed_everything(seed, verbose=False)
    topo = TopologyCallback(charts=False)
    trace = _Trace()
    callbacks: list[Callback] = [topo, trace]
    stopper: EarlyStopping | None = None
    if rule == "val_loss":
        stopper = EarlyStopping(monitor="val_loss", mode="min", patience=patience)
    elif rule == "topology":
        # The rule this study measured (the defaults before examples/stopping_rules.py chose new ones).
        stopper = TopologyEarlyStopping(patience=patience, min_delta=0.0, min_delta_mode="abs", ema_alpha=None)
    if stopper is not None:
        callbacks.append(stopper)
    trainer = quiet_trainer(max_epochs, precision, callbacks=callbacks)
    start = time.perf_counter()
    trainer.fit(Classifier(digits_cnn(), lr=1e-2), datamodule=DigitsDataModule(batch_size=32, seed=seed))
    elapsed = time.perf_counter() - start
    fired = stopper is not None and stopper.stopped_epoch > 0
    return {
        "rule": rule,
        "seed": seed,
        "epochs_run": trainer.current_epoch,
        # A rule that fires at the last epoch saves nothing: "stopped early" means fewer than max_epochs.
        "stopped_early": bool(fired and trainer.current_epoch < max_epochs),
        "stopped_epoch": stopper.stopped_epoch if fired else None,
        "reason": stopper.stopping_reason_message if stopper is not None else None,
        "final_val_acc": trace.val_acc[-1],
        "best_val_acc": max(trace.val_acc),
        "val_acc": trace.val_acc,
        "decay_rate": [h["decay_rate"] for h in topo.history],
        "seconds": elapsed,
    }


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description="TopologyEarlyStopping vs EarlyStopping(val_loss) on digits")
    parser.add_argument("--quick", action="store_true", help="1 seed, at most 15 epochs")
    parser.add_argument("--seeds", type=int, default=None, help="default 3 (quick 1)")
    parser.add_argument("--max-epochs", type=int, default=None, help="default 40 (quick 15)")
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--out", default="outputs/early_stopping")
    add_perturbation_args(parser, threads=torch.get_num_threads())
    args = parser.parse_args(argv)
    precision = apply_perturbation(args)
    seeds = args.seeds or (1 if args.quick else 3)
    max_epochs = args.max_epochs or (15 if args.quick else 40)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")

    first = args.first_seed
    run("none", first, 1, args.patience, precision)  # warm-up (imports, first-call costs), not measured
    runs = [run(rule, first + s, max_epochs, args.patience, precision) for s in range(seeds) for rule in RULES]
    summary = {}
    for rule in RULES:
        mine = [r for r in runs if r["rule"] == rule]
        reference = {r["seed"]: r["seconds"] for r in runs if r["rule"] == "none"}
        summary[rule] = {
            "epochs_run_mean": statistics.fmean(r["epochs_run"] for r in mine),
            "stopped_early": sum(r["stopped_early"] for r in mine),
            "final_val_acc_mean": statistics.fmean(r["final_val_acc"] for r in mine),
            "seconds_mean": statistics.fmean(r["seconds"] for r in mine),
            "time_saved_mean": statistics.fmean(1 - r["seconds"] / reference[r["seed"]] for r in mine),
        }
    results = {
        "settings": {
            "quick": args.quick,
            "seeds": seeds,
            "first_seed": first,
            "max_epochs": max_epochs,
            "patience": args.patience,
            "precision": precision,
        },
        "runs": runs,
        "summary": summary,
        "environment": environment(precision=precision, first_seed=first),
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    _figure(runs, out / "early_stopping.png")
    print(f"{'rule':<9} {'epochs':>7} {'stopped early':>14} {'val acc':>8} {'time':>7} {'saved':>6}")
    for rule, s in summary.items():
        print(
            f"{rule:<9} {s['epochs_run_mean']:>7.1f} {s['stopped_early']:>10}/{seeds:<3} "
            f"{s['final_val_acc_mean']:>8.3f} {s['seconds_mean']:>6.1f}s "
            # A rule that never stopped saved nothing: the difference is timing noise and the callback's cost.
            + (f"{100 * s['time_saved_mean']:>5.0f}%" if s["stopped_early"] else f"{'-':>6}")
        )
    print(f"wrote {out / 'results.json'} and {out / 'early_stopping.png'}")
    return out


def _figure(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_decay) = plt.subplots(1, 2, figsize=(11, 4))
    colours = {"none": "grey", "val_loss": "tab:blue", "topology": "tab:red"}
    for r in runs:
        label = r["rule"] if r["seed"] == runs[0]["seed"] else None
        epochs = range(1, len(r["val_acc"]) + 1)
        ax_acc.plot(epochs, r["val_acc"], color=colours[r["rule"]], label=label, alpha=0.8)
        ax_decay.plot(range(1, len(r["decay_rate"]) + 1), r["decay_rate"], color=colours[r["rule"]], label=label)
        if r["stopped_early"]:
            ax_acc.axvline(len(r["val_acc"]), color=colours[r["rule"]], linestyle=":", alpha=0.6)
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy", title="accuracy (dotted: where a rule stopped)")
    ax_decay.set(xlabel="epoch", ylabel="topology/decay_rate", title="decay rate per epoch")
    for ax in (ax_acc, ax_decay):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
