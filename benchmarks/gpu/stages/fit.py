"""The ``fit`` stage: fit time of ResNet18 with and without TopologyCallback (2 epochs on 20,000 inputs), then on
a realistic epoch (``fit_realistic``)."""

from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import Any

from stages.models import make_classifier, make_resnet18, make_trainer, synthetic_images
from stages.results import Budget, note, update_results


def timed_fit(dry: bool, callbacks: list[Any], train: Any, val: Any, **trainer_args: Any) -> float:
    """Seconds of ``trainer.fit`` of a fresh ResNet18 classifier (seed 0) with ``callbacks``."""
    import torch

    torch.manual_seed(0)
    net, _ = make_resnet18(dry)
    module = make_classifier(net)
    trainer = make_trainer(dry, callbacks, **trainer_args)
    if not dry:
        torch.cuda.synchronize()
    start = time.perf_counter()
    trainer.fit(module, train, val)
    if not dry:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def stage_fit(args: argparse.Namespace) -> None:
    """2 epochs of ResNet18 on 20,000 synthetic 3x32x32 inputs, batch 256, with and without the callback."""
    from torch.utils.data import DataLoader

    from lightning_topo import TopologyCallback

    budget = Budget(120)
    n_train, n_val, batch, per_class, max_samples = (128, 40, 64, 4, 40) if args.dry else (20000, 2000, 256, 200, 2000)
    train = DataLoader(synthetic_images(n_train, 32, seed=1), batch_size=batch, shuffle=True)
    val = DataLoader(synthetic_images(n_val, 32, seed=2), batch_size=batch)

    def fit(with_callback: bool, **trainer_args: Any) -> tuple[float, list[float]]:
        callbacks = [TopologyCallback(samples_per_class=per_class, max_samples=max_samples)] if with_callback else []
        seconds = timed_fit(args.dry, callbacks, train, val, **trainer_args)
        return seconds, list(callbacks[0].timings) if callbacks else []

    # Warm-up (CUDA context, cuDNN, CuPy kernels, one callback evaluation), not counted.
    warm, _ = fit(True, max_epochs=1, limit_train_batches=1 if args.dry else 3, limit_val_batches=1)
    runs: dict[str, list[float]] = {"without": [], "with": []}
    evaluations: list[float] = []
    order = ["without", "with"] if args.dry else ["without", "with", "with", "without", "without", "with"]
    for i, kind in enumerate(order):
        seconds, timings = fit(kind == "with", max_epochs=2)
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
            fit_setup={
                "train_inputs": n_train,
                "val_inputs": n_val,
                "batch_size": batch,
                "epochs": 2,
                "callback": f"TopologyCallback(samples_per_class={per_class}, max_samples={max_samples})",
                "warmup_seconds": warm,
            },
        )
        print(f"fit {kind} callback: {seconds:.2f} s (callback evaluations {timings})")
        if i >= 1 and budget.left() < 1.5 * seconds + 5:
            note(args.out, f"fit: {i + 1} of {len(order)} timed fits done within the stage budget")
            break
    realistic_fit(args, budget)


def realistic_fit(args: argparse.Namespace, budget: Budget) -> None:
    """``fit_realistic``: the overhead on a realistic epoch (issue 22): ResNet18, 50,000 inputs of 3x32x32, batch
    256, ``bf16-mixed``, one epoch with and without the default ``TopologyCallback()`` (200 per class)."""
    from torch.utils.data import DataLoader

    from lightning_topo import TopologyCallback

    n_train, n_val, batch = (256, 40, 64) if args.dry else (50000, 2000, 256)
    train = DataLoader(synthetic_images(n_train, 32, seed=3), batch_size=batch, shuffle=True)
    val = DataLoader(synthetic_images(n_val, 32, seed=4), batch_size=batch)
    precision = "32-true" if args.dry else "bf16-mixed"
    runs: dict[str, list[float]] = {"without": [], "with": []}
    for kind in ("without", "with", "with", "without"):
        if budget.left() < 20:
            note(args.out, "fit_realistic: stopped early for the stage budget")
            break
        callbacks = [TopologyCallback(samples_per_class=200, max_samples=2000)] if kind == "with" else []
        runs[kind].append(timed_fit(args.dry, callbacks, train, val, max_epochs=1, precision=precision))
        print(f"realistic fit {kind} callback: {runs[kind][-1]:.2f} s")
        if runs["with"] and runs["without"]:
            with_s, without_s = statistics.mean(runs["with"]), statistics.mean(runs["without"])
            update_results(
                args.out,
                fit_realistic={
                    "setup": f"ResNet18, {n_train} inputs of 3x32x32, batch {batch}, {precision}, 1 epoch; "
                    "TopologyCallback(samples_per_class=200, max_samples=2000), 11 layers",
                    "runs": runs,
                    "overhead": with_s / without_s,
                },
            )
