"""The ``fit`` stage: fit time of ResNet18 with and without TopologyCallback (2 epochs on 20,000 inputs), then on
a realistic epoch (``fit_realistic``).

Where the time goes (issue 22, goal 1): every fit also carries an :class:`EpochClock` (the seconds of each epoch,
training and validation, the device synchronised at the boundaries: the same cost with and without the callback),
so the overhead of a later epoch (``fit_overhead_steady``: the sample is picked and the layers ordered in the first
one) is apart from the whole fit's; and the callback's hooks are timed on the training thread
(``fit_hook_seconds``: wall seconds per hook and fit, the device not synchronised, so a hook that only launches work
looks cheap and the wait lands in a later one)."""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import time
from collections import defaultdict
from typing import Any

from stages.labelling import LEAN, labeller, lean_measurable
from stages.models import make_classifier, make_resnet18, make_trainer, synthetic_images
from stages.results import Budget, note, update_results


def epoch_clock(dry: bool) -> Any:
    """A Callback noting the time (device synchronised) at each training epoch's start and at the fit's end:
    ``.epochs()`` gives each epoch's seconds, its validation included."""
    import torch
    from lightning.pytorch import Callback

    class EpochClock(Callback):
        def __init__(self) -> None:
            self.marks: list[float] = []

        def _mark(self) -> None:
            if not dry:
                torch.cuda.synchronize()
            self.marks.append(time.perf_counter())

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self._mark()

        def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
            self._mark()

        def epochs(self) -> list[float]:
            return [b - a for a, b in zip(self.marks, self.marks[1:], strict=False)]

    return EpochClock()


HOOKS = (
    "setup",
    "on_fit_start",
    "on_sanity_check_start",
    "on_validation_start",
    "on_validation_epoch_start",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_validation_epoch_end",
    "on_validation_end",
    "on_train_epoch_start",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_train_epoch_end",
    "on_fit_end",
    "teardown",
)


def time_hooks(callback: Any) -> dict[str, float]:
    """Wrap ``callback``'s hooks (instance attributes: Lightning looks them up by name) to add up the wall seconds
    spent in each on the calling thread; returns the dict they add to."""
    spent: dict[str, float] = defaultdict(float)
    for name in HOOKS:
        hook = getattr(callback, name, None)
        if hook is None:
            continue

        def timed(*args: Any, _hook: Any = hook, _name: str = name, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _hook(*args, **kwargs)
            finally:
                spent[_name] += time.perf_counter() - start

        setattr(callback, name, timed)
    return spent


def timed_fit(
    dry: bool, callbacks: list[Any], train: Any, val: Any, epochs: list[float] | None = None, **trainer_args: Any
) -> float:
    """Seconds of ``trainer.fit`` of a fresh ResNet18 classifier (seed 0) with ``callbacks``; each epoch's seconds
    are appended to ``epochs`` when given."""
    import torch

    torch.manual_seed(0)
    net, _ = make_resnet18(dry)
    module = make_classifier(net)
    clock = epoch_clock(dry)
    trainer = make_trainer(dry, [*callbacks, clock], **trainer_args)
    if not dry:
        torch.cuda.synchronize()
    start = time.perf_counter()
    trainer.fit(module, train, val)
    if not dry:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if epochs is not None:
        epochs += clock.epochs()
    return seconds


def mean_hook_seconds(hooks: list[dict[str, float]]) -> dict[str, float]:
    """Per hook, the mean over fits of the seconds spent in it (empty without fits)."""
    return {name: statistics.mean(h.get(name, 0.0) for h in hooks) for name in HOOKS} if hooks else {}


def steady_overhead(epochs: dict[str, list[list[float]]]) -> float | None:
    """Mean seconds of the epochs after the first, with the callback / without it (None when either is missing)."""
    later = {kind: [s for fit in fits for s in fit[1:]] for kind, fits in epochs.items()}
    if not later.get("with") or not later.get("without"):
        return None
    return statistics.mean(later["with"]) / statistics.mean(later["without"])


def stage_fit(args: argparse.Namespace) -> None:
    """2 epochs of ResNet18 on 20,000 synthetic 3x32x32 inputs, batch 256, with and without the callback."""
    from torch.utils.data import DataLoader

    from lightning_topo import TopologyCallback
    from lightning_topo.capture import reduce as reduce_module

    budget = Budget(120)
    n_train, n_val, batch, per_class, max_samples = (128, 40, 64, 4, 40) if args.dry else (20000, 2000, 256, 200, 2000)
    train = DataLoader(synthetic_images(n_train, 32, seed=1), batch_size=batch, shuffle=True)
    val = DataLoader(synthetic_images(n_val, 32, seed=2), batch_size=batch)

    def fit(
        with_callback: bool,
        epochs: list[float] | None = None,
        hooks: list[dict[str, float]] | None = None,
        side_stream: bool = False,
        lean: bool = False,
        **kw: Any,
    ) -> tuple[float, list[float]]:
        callbacks = [TopologyCallback(samples_per_class=per_class, max_samples=max_samples)] if with_callback else []
        spent = time_hooks(callbacks[0]) if callbacks else {}
        reduce_module.CUDA_OVERLAP = side_stream
        try:
            with labeller(LEAN) if lean else contextlib.nullcontext():  # else the kernels as configured
                seconds = timed_fit(args.dry, callbacks, train, val, epochs, **kw)
        finally:
            reduce_module.CUDA_OVERLAP = False
        if hooks is not None and callbacks:
            hooks.append(dict(spent))
        return seconds, list(callbacks[0].timings) if callbacks else []

    # Warm-up (CUDA context, cuDNN, CuPy kernels, one callback evaluation), not counted.
    warm, _ = fit(True, max_epochs=1, limit_train_batches=1 if args.dry else 3, limit_val_batches=1)
    runs: dict[str, list[float]] = {"without": [], "with": []}
    epochs: dict[str, list[list[float]]] = {"without": [], "with": []}
    hooks: list[dict[str, float]] = []
    evaluations: list[float] = []
    order = ["without", "with"] if args.dry else ["without", "with", "with", "without", "without", "with"]
    for i, kind in enumerate(order):
        epochs[kind].append([])
        seconds, timings = fit(kind == "with", epochs[kind][-1], hooks, max_epochs=2)
        runs[kind].append(seconds)
        evaluations += timings
        with_s, without_s = statistics.mean(runs["with"] or [math.nan]), statistics.mean(runs["without"] or [math.nan])
        update_results(
            args.out,
            fit_seconds_with_callback=None if math.isnan(with_s) else with_s,
            fit_seconds_without_callback=None if math.isnan(without_s) else without_s,
            fit_overhead=None if math.isnan(with_s * without_s) else with_s / without_s,
            fit_runs=runs,
            fit_callback_evaluation_seconds=evaluations,
            fit_epoch_seconds=epochs,
            fit_overhead_steady=steady_overhead(epochs),
            fit_hook_seconds=mean_hook_seconds(hooks),
            fit_setup={
                "train_inputs": n_train,
                "val_inputs": n_val,
                "batch_size": batch,
                "epochs": 2,
                "callback": f"TopologyCallback(samples_per_class={per_class}, max_samples={max_samples})",
                "warmup_seconds": warm,
            },
        )
        print(f"fit {kind} callback: {seconds:.2f} s, epochs {epochs[kind][-1]} (callback evaluations {timings})")
        if i >= 1 and budget.left() < 1.5 * seconds + 5:
            note(args.out, f"fit: {i + 1} of {len(order)} timed fits done within the stage budget")
            break
    side_stream_fits(args, budget, fit, runs, epochs)
    realistic_fit(args, budget)
    lean_fits(args, budget, fit, runs, epochs)


def lean_fits(
    args: argparse.Namespace,
    budget: Budget,
    fit: Any,
    runs: dict[str, list[float]],
    epochs: dict[str, list[list[float]]],
) -> None:
    """``fit_lean``: the same fit with the lean union-find kernels (``_cuda_unionfind.LEAN_KERNELS``), alone and with
    the side stream, against the ``without`` fits above (CUDA with CuPy only)."""
    if not runs["without"] or not lean_measurable(args.dry):
        return
    lean: dict[str, Any] = {}
    for name, side_stream in (("lean", False), ("lean_side_stream", True)):
        if budget.left() < 20:
            note(args.out, f"fit_lean: {name} not run, for the stage budget")
            break
        fit_epochs: list[float] = []
        seconds, timings = fit(True, fit_epochs, side_stream=side_stream, lean=True, max_epochs=2)
        lean[name] = {
            "seconds": seconds,
            "epoch_seconds": fit_epochs,
            "evaluations": timings,
            "overhead": seconds / statistics.mean(runs["without"]),
            "overhead_steady": steady_overhead({"with": [fit_epochs], "without": epochs["without"]}),
        }
        print(f"fit with callback, {name}: {seconds:.2f} s, epochs {fit_epochs} ({timings})")
        update_results(args.out, fit_lean=lean)


def side_stream_fits(
    args: argparse.Namespace,
    budget: Budget,
    fit: Any,
    runs: dict[str, list[float]],
    epochs: dict[str, list[list[float]]],
) -> None:
    """``fit_side_stream``: the same fit with ``capture.reduce.CUDA_OVERLAP`` on (each layer's Betti numbers on a
    side stream, by the background thread, while Lightning validates), against the ``without`` fits above."""
    if not runs["without"]:
        return
    side: dict[str, Any] = {"runs": [], "epoch_seconds": [], "evaluations": []}
    hooks: list[dict[str, float]] = []
    for _ in range(1 if args.dry else 2):
        if budget.left() < 30:
            note(args.out, "fit_side_stream: stopped early for the stage budget")
            break
        side["epoch_seconds"].append([])
        seconds, timings = fit(True, side["epoch_seconds"][-1], hooks, side_stream=True, max_epochs=2)
        side["runs"].append(seconds)
        side["evaluations"] += timings
        print(f"fit with callback, side stream: {seconds:.2f} s, epochs {side['epoch_seconds'][-1]} ({timings})")
    if side["runs"]:
        side["overhead"] = statistics.mean(side["runs"]) / statistics.mean(runs["without"])
        side["overhead_steady"] = steady_overhead({"with": side["epoch_seconds"], "without": epochs["without"]})
        side["hook_seconds"] = mean_hook_seconds(hooks)
        update_results(args.out, fit_side_stream=side)


def realistic_fit(args: argparse.Namespace, budget: Budget) -> None:
    """``fit_realistic``: the overhead on a realistic epoch (issue 22): ResNet18, 50,000 inputs of 3x32x32, batch
    256, ``bf16-mixed``, two epochs with and without the default ``TopologyCallback()`` (200 per class): the whole
    fit's overhead and the second epoch's (``overhead_steady``)."""
    from torch.utils.data import DataLoader

    from lightning_topo import TopologyCallback

    n_train, n_val, batch = (256, 40, 64) if args.dry else (50000, 2000, 256)
    train = DataLoader(synthetic_images(n_train, 32, seed=3), batch_size=batch, shuffle=True)
    val = DataLoader(synthetic_images(n_val, 32, seed=4), batch_size=batch)
    precision = "32-true" if args.dry else "bf16-mixed"
    runs: dict[str, list[float]] = {"without": [], "with": []}
    epochs: dict[str, list[list[float]]] = {"without": [], "with": []}
    for kind in ("without", "with", "with", "without"):
        if budget.left() < 30:
            note(args.out, "fit_realistic: stopped early for the stage budget")
            break
        callbacks = [TopologyCallback(samples_per_class=200, max_samples=2000)] if kind == "with" else []
        epochs[kind].append([])
        runs[kind].append(
            timed_fit(args.dry, callbacks, train, val, epochs[kind][-1], max_epochs=2, precision=precision)
        )
        print(f"realistic fit {kind} callback: {runs[kind][-1]:.2f} s, epochs {epochs[kind][-1]}")
        if runs["with"] and runs["without"]:
            with_s, without_s = statistics.mean(runs["with"]), statistics.mean(runs["without"])
            update_results(
                args.out,
                fit_realistic={
                    "setup": f"ResNet18, {n_train} inputs of 3x32x32, batch {batch}, {precision}, 2 epochs; "
                    "TopologyCallback(samples_per_class=200, max_samples=2000), 11 layers",
                    "runs": runs,
                    "epoch_seconds": epochs,
                    "overhead": with_s / without_s,
                    "overhead_steady": steady_overhead(epochs),
                },
            )
