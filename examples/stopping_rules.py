"""Which early-stopping rule earns its place? Every rule on the same recorded trajectories: 3 tasks x 10 seeds.

    python examples/stopping_rules.py            # 3 tasks x 10 seeds, to max epochs (about 6 min on 2 CPU cores)
    python examples/stopping_rules.py --quick    # 1 seed per task, a few epochs (about 25 s)
    python examples/stopping_rules.py --reuse docs/findings/stopping_rules/results.json   # rules only, no training
    python examples/stopping_rules.py --quick --precision 64 --first-seed 1   # perturbed rounding / data

Each (task, seed) is trained **once**, to ``max_epochs``, with ``TopologyCallback(charts=False)``; per epoch the
run records ``val_acc``, ``val_loss``, ``topology/decay_rate``, ``topology/theta``, ``topology/omega_last`` and
the wall time of the epoch (training, validation and the topology evaluation). Every stopping rule is then a
pure function of those series (:data:`RULES`: series -> the evaluation at which it stops), so all rules see
identical trajectories, and a rule's accuracy is ``val_acc`` at its stop (no checkpoint is restored). The
topology rules use the arithmetic of ``TopologyEarlyStopping`` (``tests/test_early_stopping.py`` checks that the
online callback stops where :func:`plateau_stop` says, on the series recorded here).

Tasks (seed ``s`` sets the initial weights, the shuffling and the data split; for D-I also the points):

* ``digits_cnn``: ``Classifier(digits_cnn(), lr=1e-2)`` on ``DigitsDataModule(batch_size=32)``, cubical view
  (``TopologyCallback()``'s defaults), as in ``examples/early_stopping.py``; 40 epochs.
* ``d1_mlp``: Naitzat's D-I, the 9 x 15 ReLU MLP (``lr=0.005``, cosine schedule over the run, gradient clipping
  1.0, batch 64, 1500 points per class), point-cloud view (``complex="rips", k=14``, 100 points per class);
  150 epochs.
* ``digits_mlp``: ``MLPClassifier(in_features=64, hidden=64, depth=3, lr=1e-3)`` on flattened digits (batch 32),
  cubical view (the callback's defaults, what a user who adds ``TopologyCallback()`` to an MLP gets); 60 epochs.

Per rule x task: mean epochs run, mean validation accuracy at the stop, accuracy lost against training to the
end (mean and worst seed), and the fraction of the run's wall time saved. Besides the topology rules: ``none``,
``EarlyStopping(val_loss)``, a fixed budget of half the epochs, and ``hindsight`` (the first epoch within 0.005
of the final accuracy: what a rule that knew the future would do). :func:`choose_default` picks the default of
``TopologyEarlyStopping`` (its docstring states the criterion); :func:`split_halves` says whether each half of
the seeds would have picked the same. Writes ``results.json`` and ``stopping_rules.png`` under ``--out``
(default ``outputs/stopping_rules``).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERIES = ("val_acc", "val_loss", "decay_rate", "theta", "omega_last", "seconds")
"""The per-epoch series recorded for every (task, seed)."""
KEYS = {
    "val_acc": "val_acc",
    "val_loss": "val_loss",
    "decay_rate": "topology/decay_rate",
    "theta": "topology/theta",
    "omega_last": "topology/omega_last",
}
"""Series name -> logged key."""

GOAL_ACC_LOSS = 0.005
"""The goal: mean final validation accuracy within this of training to the end ..."""
GOAL_EPOCH_FRACTION = 0.5
"""... in at most this fraction of the epochs, on every task."""


# ----------------------------------------------------------------------------------------------- offline rules
def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def plateau_stop(
    values: Sequence[float],
    mode: str = "max",
    patience: int = 3,
    min_delta: float = 0.0,
    relative: bool = False,
    smoothing: float | None = None,
) -> int | None:
    """The evaluation (0-based) at which ``EarlyStopping``'s plateau rule fires on ``values``, or ``None``.

    The arithmetic of ``TopologyEarlyStopping``: a non-finite value is skipped (the wait count does not move);
    with ``smoothing`` = a, the rule watches the exponential moving average ``s = a * x + (1 - a) * s_prev``
    (``s = x`` at the first finite value) instead of ``x``; a value improves when it beats the best so far by more
    than ``min_delta`` (``relative``: by more than ``min_delta * |best|``); ``patience`` evaluations in a row
    without improvement stop.

    Example:
        >>> plateau_stop([0.1, 0.3, 0.5, 0.5, 0.49, 0.6], patience=2)
        4
        >>> plateau_stop([1.0, 0.9, 0.8], mode="min", patience=1) is None
        True
    """
    sign = 1.0 if mode == "max" else -1.0
    best = -math.inf
    wait = 0
    smooth: float | None = None
    for i, x in enumerate(values):
        if not _finite(x):
            continue
        if smoothing is not None:
            smooth = x if smooth is None else smoothing * x + (1.0 - smoothing) * smooth
            x = smooth
        current = sign * x
        delta = min_delta * abs(best) if relative and math.isfinite(best) else (0.0 if relative else min_delta)
        if current - delta > best:
            best, wait = current, 0
        else:
            wait += 1
            if wait >= patience:
                return i
    return None


def floor_stop(omega_last: Sequence[float], patience: int = 3, floor: float = 1.0, tol: float = 0.05) -> int | None:
    """The evaluation at which the Betti-floor rule fires: ``omega_last <= floor + tol`` for ``patience``
    consecutive evaluations (a non-finite value is skipped, as in ``TopologyEarlyStopping``), or ``None``.

    Example:
        >>> floor_stop([4.0, 1.0, 2.0, 1.0, 1.02, 1.0], patience=3)
        5
    """
    count = 0
    for i, x in enumerate(omega_last):
        if not _finite(x):
            continue
        count = count + 1 if x <= floor + tol else 0
        if count >= patience:
            return i
    return None


def both_stop(first: Sequence[float], second: Sequence[float], patience: int, modes: tuple[str, str]) -> int | None:
    """The first evaluation at which both series have plateaued at once (each ``patience`` evaluations without
    improvement, each counted as :func:`plateau_stop` counts), or ``None``.

    Example:
        >>> both_stop([0.5, 0.4, 0.4, 0.4, 0.4], [1.0, 0.9, 0.8, 0.8, 0.8], patience=2, modes=("max", "min"))
        4
    """
    waits = [0, 0]
    bests = [-math.inf, -math.inf]
    signs = [1.0 if m == "max" else -1.0 for m in modes]
    for i, pair in enumerate(zip(first, second, strict=True)):
        for j, x in enumerate(pair):
            if not _finite(x):
                continue
            if signs[j] * x > bests[j]:
                bests[j], waits[j] = signs[j] * x, 0
            else:
                waits[j] += 1
        if min(waits) >= patience:
            return i
    return None


def first_of(*stops: int | None) -> int | None:
    """The earliest of several rules' stops (rules combined with "or", as the floor and plateau rules are)."""
    fired = [s for s in stops if s is not None]
    return min(fired) if fired else None


PATIENCES = (3, 5, 10, 15, 20, 30)
"""The patiences tried for each topology signal."""


@dataclass(frozen=True)
class Rule:
    """A stopping rule: ``stop(series)`` is the 0-based evaluation at which it stops, ``None`` = never.

    ``family``: ``"reference"`` (none, a fixed budget, ``EarlyStopping(val_loss)``), ``"hindsight"`` (not causal),
    ``"topology"`` (topology keys only: the candidates for ``TopologyEarlyStopping``'s default) or
    ``"topology+val_loss"``. ``callback``: the ``TopologyEarlyStopping`` arguments that would run it online
    (:func:`missing_features` says which of them the callback lacks); ``None`` for the other families.
    """

    name: str
    description: str
    family: str
    stop: Callable[[dict[str, list[float]]], int | None]
    callback: dict[str, Any] | None = None


def _plateau(
    name: str,
    key: str,
    mode: str,
    p: int,
    note: str = "",
    min_delta: float = 0.0,
    relative: bool = False,
    smoothing: float | None = None,
) -> Rule:
    """A plateau rule on ``key`` and the ``TopologyEarlyStopping`` arguments that run it (all of them spelled out:
    the callback's defaults are themselves a rule of the study)."""
    args = {
        "monitor": f"topology/{key}",
        "mode": mode,
        "patience": p,
        "min_delta": min_delta,
        "min_delta_mode": "rel" if relative else "abs",
        "ema_alpha": smoothing,
    }
    return Rule(
        name,
        f"{key} plateau (mode {mode}), patience {p}{note}",
        "topology",
        lambda s: plateau_stop(s[key], mode, p, min_delta, relative, smoothing),
        args,
    )


def _rules() -> dict[str, Rule]:
    rules = [
        Rule("none", "train to max_epochs", "reference", lambda s: None),
        Rule(
            "half_budget",
            "a fixed budget: stop after half of max_epochs (the goal's time bound; uses no signal)",
            "reference",
            lambda s: math.ceil(len(s["val_acc"]) / 2) - 1,
        ),
        Rule(
            "hindsight",
            "not a rule: the first epoch whose val_acc is within 0.005 of the last (needs the future)",
            "hindsight",
            lambda s: next(i for i, a in enumerate(s["val_acc"]) if a >= s["val_acc"][-1] - GOAL_ACC_LOSS),
        ),
    ]
    for p in (3, 5, 10, 20):
        rules.append(
            Rule(
                f"val_loss_p{p}",
                f"EarlyStopping(val_loss, patience {p})",
                "reference",
                lambda s, p=p: plateau_stop(s["val_loss"], "min", p),
            )
        )
    for p in PATIENCES:
        rules.append(
            _plateau(f"decay_p{p}", "decay_rate", "max", p, " (the default before this study)" if p == 3 else "")
        )
    for a in (0.3, 0.5):
        for d in (0.01, 0.05):
            for p in PATIENCES:
                rules.append(
                    _plateau(
                        f"decay_ema{a}_rel{d}_p{p}",
                        "decay_rate",
                        "max",
                        p,
                        f", EMA alpha {a}, relative min_delta {d}",
                        min_delta=d,
                        relative=True,
                        smoothing=a,
                    )
                )
    for p in PATIENCES:
        rules.append(_plateau(f"omega_last_p{p}", "omega_last", "min", p))
    for p in PATIENCES:
        rules.append(_plateau(f"theta_p{p}", "theta", "min", p))
    for p in (3, 5, 10):
        rules.append(
            Rule(
                f"floor_p{p}",
                f"Betti floor alone: omega_last <= 1.05 for {p} evaluations",
                "topology",
                lambda s, p=p: floor_stop(s["omega_last"], p),
                {"floor_patience": p, "plateau": False},
            )
        )
    rules.append(
        Rule(
            "decay_p3+floor_p3",
            "TopologyEarlyStopping(patience=3, floor_patience=3): plateau or floor",
            "topology",
            lambda s: first_of(plateau_stop(s["decay_rate"], "max", 3), floor_stop(s["omega_last"], 3)),
            {**(_plateau("", "decay_rate", "max", 3).callback or {}), "floor_patience": 3},
        )
    )
    for p in (3, 5, 10, 20):
        rules.append(
            Rule(
                f"decay_and_val_loss_p{p}",
                f"decay_rate and val_loss have both not improved for {p} evaluations",
                "topology+val_loss",
                lambda s, p=p: both_stop(s["decay_rate"], s["val_loss"], p, ("max", "min")),
                {"patience": p, "also_monitor": "val_loss", "also_mode": "min"},
            )
        )
    return {r.name: r for r in rules}


RULES = _rules()
"""Every rule of the study, by name."""


def missing_features(rule: Rule) -> list[str]:
    """The arguments of ``rule.callback`` that ``TopologyEarlyStopping`` does not take (``[]``: it runs as is)."""
    import inspect

    from lightning_topo import TopologyEarlyStopping

    accepted = set(inspect.signature(TopologyEarlyStopping.__init__).parameters)
    return sorted(set(rule.callback or {}) - accepted)


def stop_epochs(rule: Rule, series: dict[str, list[float]]) -> int:
    """Epochs a run lasts under ``rule``: the stop evaluation + 1, or all the recorded epochs if it never fires."""
    fired = rule.stop(series)
    n = len(series["val_acc"])
    return n if fired is None else min(n, fired + 1)


# ----------------------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class Task:
    name: str
    description: str
    max_epochs: int
    quick_epochs: int


TASKS = (
    Task("digits_cnn", "Classifier(digits_cnn(), lr=1e-2), digits, batch 32, cubical view", 40, 6),
    Task(
        "d1_mlp",
        "MLPClassifier(2, hidden 15, depth 9, relu, lr 0.005, cosine), D-I 1500/class, batch 64, clip 1.0, rips k=14",
        150,
        8,
    ),
    Task("digits_mlp", "MLPClassifier(64, hidden 64, depth 3, lr 1e-3), flattened digits, batch 32, cubical", 60, 6),
)


def _build(task: str, seed: int, quick: bool) -> tuple[Any, Any, Any, dict[str, Any]]:
    """Model, datamodule, topology callback and extra Trainer arguments of one task."""
    from lightning_topo import TopologyCallback
    from lightning_topo.datasets import DigitsDataModule, NaitzatDataModule
    from lightning_topo.models import Classifier, MLPClassifier, digits_cnn

    if task == "digits_cnn":
        return (
            Classifier(digits_cnn(), lr=1e-2),
            DigitsDataModule(batch_size=32, seed=seed),
            TopologyCallback(charts=False),
            {},
        )
    if task == "d1_mlp":
        model = MLPClassifier(
            in_features=2, hidden=15, depth=9, num_classes=2, activation="relu", lr=0.005, schedule="cosine"
        )
        data = NaitzatDataModule("d1", n_per_class=600 if quick else 1500, batch_size=64, seed=seed)
        topo = TopologyCallback(complex="rips", k=14, samples_per_class=100, max_samples=200, charts=False)
        return model, data, topo, {"gradient_clip_val": 1.0}
    if task == "digits_mlp":
        model = MLPClassifier(in_features=64, hidden=64, depth=3, num_classes=10, lr=1e-3)
        return model, DigitsDataModule(batch_size=32, flatten=True, seed=seed), TopologyCallback(charts=False), {}
    raise ValueError(f"unknown task {task!r}")


def record(task: str, seed: int, max_epochs: int, quick: bool, precision: str = "32-true") -> dict[str, Any]:
    """Train ``task`` with ``seed`` to ``max_epochs`` (no stopping rule); the per-epoch series of :data:`SERIES`."""
    from _trainer import quiet_trainer
    from lightning.pytorch import Callback, Trainer, seed_everything

    class _Recorder(Callback):
        def __init__(self) -> None:
            self.series: dict[str, list[float]] = {k: [] for k in SERIES}
            self._start = 0.0

        def on_train_epoch_start(self, trainer: Trainer, pl_module: Any) -> None:
            self._start = time.perf_counter()

        def on_train_epoch_end(self, trainer: Trainer, pl_module: Any) -> None:
            # Validation (and the topology evaluation) ran before this hook: the epoch's whole cost.
            self.series["seconds"].append(time.perf_counter() - self._start)
            metrics = trainer.callback_metrics
            for name, key in KEYS.items():
                self.series[name].append(float(metrics[key]) if key in metrics else math.nan)

    seed_everything(seed, verbose=False)
    model, data, topo, extra = _build(task, seed, quick)
    recorder = _Recorder()
    trainer = quiet_trainer(max_epochs, precision, accelerator="cpu", callbacks=[topo, recorder], **extra)
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    return {"task": task, "seed": seed, "seconds_total": time.perf_counter() - start, **recorder.series}


# ----------------------------------------------------------------------------------------------- evaluation
def evaluate(runs: list[dict[str, Any]], rules: dict[str, Rule] = RULES) -> dict[str, dict[str, dict[str, Any]]]:
    """Per rule, per task (over the given runs): epochs run, validation accuracy at the stop, accuracy lost
    against training to the end (mean and worst seed), fraction of the epochs run and of the wall time saved."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    order = [t.name for t in TASKS]
    tasks = sorted({r["task"] for r in runs}, key=lambda t: order.index(t) if t in order else len(order))
    for name, rule in rules.items():
        summary[name] = {}
        for task in tasks:
            per_seed = []
            for r in (r for r in runs if r["task"] == task):
                n = stop_epochs(rule, r)
                acc = r["val_acc"][n - 1]
                per_seed.append(
                    {
                        "seed": r["seed"],
                        "epochs": n,
                        "val_acc": acc,
                        "acc_lost": r["val_acc"][-1] - acc,
                        "time_saved": 1.0 - sum(r["seconds"][:n]) / sum(r["seconds"]),
                        "epoch_fraction": n / len(r["val_acc"]),
                    }
                )
            summary[name][task] = {
                "epochs_mean": statistics.fmean(p["epochs"] for p in per_seed),
                "max_epochs": len(next(r for r in runs if r["task"] == task)["val_acc"]),
                "stopped_early": sum(p["epoch_fraction"] < 1 for p in per_seed),
                "val_acc_mean": statistics.fmean(p["val_acc"] for p in per_seed),
                "acc_lost_mean": statistics.fmean(p["acc_lost"] for p in per_seed),
                "acc_lost_worst": max(p["acc_lost"] for p in per_seed),
                "time_saved_mean": statistics.fmean(p["time_saved"] for p in per_seed),
                "epoch_fraction_mean": statistics.fmean(p["epoch_fraction"] for p in per_seed),
                "per_seed": {key: [p[key] for p in per_seed] for key in per_seed[0]},  # columns
            }
    return summary


def meets_goal(per_task: dict[str, dict[str, Any]]) -> bool:
    """The issue's goal on every task: mean accuracy lost <= 0.005 in at most half the epochs (mean)."""
    return all(
        t["acc_lost_mean"] <= GOAL_ACC_LOSS and t["epoch_fraction_mean"] <= GOAL_EPOCH_FRACTION
        for t in per_task.values()
    )


def _time_saved(per_task: dict[str, dict[str, Any]]) -> float:
    return statistics.fmean(t["time_saved_mean"] for t in per_task.values())


def _worst_loss(per_task: dict[str, dict[str, Any]]) -> float:
    return max(t["acc_lost_mean"] for t in per_task.values())


def choose_default(summary: dict[str, dict[str, dict[str, Any]]], rules: dict[str, Rule] = RULES) -> dict[str, Any]:
    """The rule to make ``TopologyEarlyStopping``'s default, and why.

    Candidates: the ``"topology"`` rules (they need only what ``TopologyCallback`` logs; a default that also
    needs ``val_loss`` would fail for every module that logs its loss under another name). "Best":

    1. if candidates meet the goal on every task (mean accuracy lost <= 0.005 in at most half the epochs), the
       one of them that saves the most wall time (mean over tasks);
    2. otherwise, among the candidates that keep the goal's time bound on every task (mean epochs <= half of
       max_epochs), the smallest worst-task mean accuracy lost; ties: the most time saved. Keeping the accuracy
       bound instead and maximising the time saved (``accuracy_first`` in the result) rewards the rules that
       hardly ever stop: "never stop" keeps every accuracy.
    3. if no candidate keeps the time bound either, the smallest worst-task mean accuracy lost.
    """
    candidates = [n for n, r in rules.items() if r.family == "topology"]
    goal = [n for n in candidates if meets_goal(summary[n])]
    halving = [
        n for n in candidates if all(t["epoch_fraction_mean"] <= GOAL_EPOCH_FRACTION for t in summary[n].values())
    ]
    if goal:
        best = max(goal, key=lambda n: _time_saved(summary[n]))
        why = "meets the goal on every task; the most time saved among the rules that do"
    elif halving:
        best = min(halving, key=lambda n: (_worst_loss(summary[n]), -_time_saved(summary[n])))
        why = (
            "no topology rule meets the goal; among those that stop within half the epochs on every task, the "
            "smallest worst-task accuracy lost"
        )
    else:
        best = min(candidates, key=lambda n: (_worst_loss(summary[n]), -_time_saved(summary[n])))
        why = "no topology rule meets the goal or halves the epochs on every task; the smallest worst-task loss"
    safe = [n for n in candidates if _worst_loss(summary[n]) <= GOAL_ACC_LOSS and _time_saved(summary[n]) > 0]
    accuracy_first = (
        max(safe, key=lambda n: _time_saved(summary[n]))
        if safe
        else min(candidates, key=lambda n: (_worst_loss(summary[n]), -_time_saved(summary[n])))
    )
    return {
        "rule": best,
        "description": rules[best].description,
        "callback_arguments": rules[best].callback,
        "needs_new_features": missing_features(rules[best]),
        "goal_met": bool(goal),
        "rules_meeting_goal": goal,
        "why": why,
        "time_saved_mean_over_tasks": _time_saved(summary[best]),
        "worst_task_acc_lost": _worst_loss(summary[best]),
        "accuracy_first": {
            "rule": accuracy_first,
            "time_saved_mean_over_tasks": _time_saved(summary[accuracy_first]),
            "worst_task_acc_lost": _worst_loss(summary[accuracy_first]),
        },
        "criterion": " ".join(choose_default.__doc__.split("\n\n", 1)[1].split()).replace("``", "`"),
    }


def split_halves(runs: list[dict[str, Any]], chosen: str) -> dict[str, Any] | None:
    """How stable the choice is: the rule :func:`choose_default` picks on each half of the seeds (first / second
    half of every task's seeds), and the chosen rule's worst-task loss and time saved on each half."""
    seeds = sorted({r["seed"] for r in runs})
    if len(seeds) < 2:
        return None
    halves = {"first": seeds[: (len(seeds) + 1) // 2], "second": seeds[(len(seeds) + 1) // 2 :]}
    out: dict[str, Any] = {}
    for name, mine in halves.items():
        summary = evaluate([r for r in runs if r["seed"] in mine])
        out[name] = {
            "seeds": mine,
            "choice": choose_default(summary)["rule"],
            "chosen_rule_worst_task_acc_lost": _worst_loss(summary[chosen]),
            "chosen_rule_time_saved_mean_over_tasks": _time_saved(summary[chosen]),
        }
    return out


# ----------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> Path:
    import torch
    from _provenance import add_perturbation_args, apply_perturbation, environment

    parser = argparse.ArgumentParser(description="Stopping rules on recorded trajectories: 3 tasks x 10 seeds")
    parser.add_argument("--quick", action="store_true", help="1 seed per task, a few epochs")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per task (default 10, quick 1)")
    parser.add_argument("--out", default="outputs/stopping_rules")
    parser.add_argument(
        "--reuse", default=None, help="re-evaluate the runs recorded in this results.json (no training)"
    )
    add_perturbation_args(parser, threads=1)
    args = parser.parse_args(argv)
    out = Path(args.out)
    start = time.perf_counter()
    if args.reuse:
        old = json.loads(Path(args.reuse).read_text())
        runs, settings, env, runtime = old["runs"], old["settings"], old["environment"], old["runtime_seconds"]
    else:
        precision = apply_perturbation(args)
        seeds = args.seeds or (1 if args.quick else 10)
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        runs = []
        for task in TASKS:
            epochs = task.quick_epochs if args.quick else task.max_epochs
            for s in range(seeds):
                run = record(task.name, args.first_seed + s, epochs, args.quick, precision)
                print(
                    f"{task.name} seed {run['seed']}: {epochs} epochs in {run['seconds_total']:.1f} s, final val acc "
                    f"{run['val_acc'][-1]:.3f}",
                    flush=True,
                )
                runs.append(run)
        settings = {
            "quick": args.quick,
            "seeds": seeds,
            "first_seed": args.first_seed,
            "precision": precision,
            "torch_threads": torch.get_num_threads(),
            "tasks": {
                t.name: {"description": t.description, "max_epochs": t.quick_epochs if args.quick else t.max_epochs}
                for t in TASKS
            },
            "goal": {"acc_lost_mean_at_most": GOAL_ACC_LOSS, "epoch_fraction_at_most": GOAL_EPOCH_FRACTION},
        }
        env = environment(precision=precision, first_seed=args.first_seed)
        runtime = time.perf_counter() - start
    summary = evaluate(runs)
    default = choose_default(summary)
    default["split_halves"] = split_halves(runs, default["rule"])
    results = {
        "settings": settings,
        "rules": {
            n: {
                "description": r.description,
                "family": r.family,
                "callback": r.callback,
                "missing": missing_features(r),
            }
            for n, r in RULES.items()
        },
        "runs": runs,
        "summary": summary,
        "default": default,
        "runtime_seconds": runtime,
        "environment": env,
    }
    if out.exists() and not args.reuse:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(compact_json(results))
    _figure(runs, summary, default["rule"], out / "stopping_rules.png")
    _print(summary, default)
    trained = (
        f"the recorded runs of {args.reuse} ({runtime:.0f} s of training then)"
        if args.reuse
        else f"{runtime:.0f} s of training"
    )
    print(f"wrote {out / 'results.json'} and {out / 'stopping_rules.png'} ({trained})")
    return out


def compact_json(data: Any) -> str:
    """``json.dumps(data, indent=1)`` with every list of numbers on one line (the series are long)."""
    text = json.dumps(data, indent=1)
    return re.sub(
        r"\[([^\[\]{}\"]*)\]", lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text
    )


def _print(summary: dict[str, Any], default: dict[str, Any]) -> None:
    tasks = list(next(iter(summary.values())))
    print(f"{'rule':<26}" + "".join(f"{t:>29}" for t in tasks))
    print(f"{'':<26}" + "".join(f"{'epochs   acc   lost saved':>29}" for _ in tasks))
    for name, per_task in summary.items():
        cells = "".join(
            f"{t['epochs_mean']:>9.1f} {t['val_acc_mean']:>6.3f} {t['acc_lost_mean']:>+6.3f} "
            f"{100 * t['time_saved_mean']:>5.0f}%"
            for t in per_task.values()
        )
        print(f"{name:<26}{cells}")
    print(f"default: {default['rule']} ({default['why']}); accuracy-first: {default['accuracy_first']['rule']}")
    for half, h in (default["split_halves"] or {}).items():
        print(
            f"{half} half of the seeds {h['seeds']}: would choose {h['choice']}; {default['rule']} loses at most "
            f"{h['chosen_rule_worst_task_acc_lost']:+.3f} and saves "
            f"{100 * h['chosen_rule_time_saved_mean_over_tasks']:.0f}%"
        )


def _figure(runs: list[dict[str, Any]], summary: dict[str, Any], chosen: str, path: Path) -> None:
    """Per task: val accuracy and decay rate per epoch (the first seed dark) with the stops of a few rules, and
    every rule's accuracy lost against time saved."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(next(iter(summary.values())))
    shown = {"none": "grey", "half_budget": "tab:orange", "val_loss_p3": "tab:blue", "decay_p3": "tab:red"}
    shown[chosen] = "tab:green"
    fig, axes = plt.subplots(3, len(tasks), figsize=(5.2 * len(tasks), 11), squeeze=False)
    for col, task in enumerate(tasks):
        mine = [r for r in runs if r["task"] == task]
        first = mine[0]
        ax_acc, ax_decay, ax_rules = axes[0][col], axes[1][col], axes[2][col]
        for r in mine:
            epochs = range(1, len(r["val_acc"]) + 1)
            alpha = 0.9 if r is first else 0.2
            ax_acc.plot(epochs, r["val_acc"], color="black", alpha=alpha, lw=1)
            ax_decay.plot(epochs, r["decay_rate"], color="black", alpha=alpha, lw=1)
        for name, colour in shown.items():
            n = stop_epochs(RULES[name], first)
            for ax, key in ((ax_acc, "val_acc"), (ax_decay, "decay_rate")):
                ax.plot([n], [first[key][n - 1]], "o", color=colour, ms=8, label=name, alpha=0.85)
        ax_acc.set(title=f"{task}: val accuracy (seed {first['seed']} dark; dots: stops)", xlabel="epoch")
        ax_acc.set_ylim(max(0.0, min(min(r["val_acc"]) for r in mine) - 0.02), 1.005)
        ax_decay.set(title=f"{task}: topology/decay_rate", xlabel="epoch")
        for name, per_task in summary.items():
            t = per_task[task]
            family = RULES[name].family
            colour = shown.get(name, {"topology": "tab:purple", "hindsight": "black"}.get(family, "tab:cyan"))
            x, y = 100 * t["time_saved_mean"], t["acc_lost_mean"]
            ax_rules.scatter(x, y, color=colour, s=45 if name in shown else 12, zorder=3 if name in shown else 2)
            if name in shown or family == "hindsight":
                ax_rules.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax_rules.axhline(GOAL_ACC_LOSS, color="tab:green", ls=":", lw=1)
        ax_rules.axvline(100 * (1 - GOAL_EPOCH_FRACTION), color="tab:green", ls=":", lw=1)
        ax_rules.set_yscale("symlog", linthresh=0.01)
        ax_rules.set(
            title=f"{task}: every rule (purple: topology, cyan: val_loss)",
            xlabel="wall time saved (%)",
            ylabel="val accuracy lost (mean)",
        )
        for ax in (ax_acc, ax_decay, ax_rules):
            ax.grid(alpha=0.3)
        ax_acc.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
