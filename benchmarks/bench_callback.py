"""Callback overhead: fit wall time with `TopologyCallback` over the same fit without it, with and without charts.

    python benchmarks/bench_callback.py            # the three cases below (about 8 minutes on 2 cores)
    python benchmarks/bench_callback.py --quick    # the digits cases, fewer and shorter runs (a smoke test, not a
                                                   # measurement); the long case only if named: --quick --case long
    python benchmarks/bench_callback.py --case digits   # or digits_all_layers, long

Three cases, each on the CPU with a `CSVLogger` (so charts are PNG files, drawn with matplotlib):

* ``digits``: the digits CNN (`lightning_topo.models.digits_cnn`) on scikit-learn's digits (1347 training, 450
  validation images), batch size 32, 3 epochs of about 0.1 s, 3 watched layers (``net.1``, ``net.4``, ``net.8``):
  the case of issue 13, where any per-epoch cost shows. Goal (issue 22, goal 4): <= 1.05x with default charts
  (and so with ``charts=False``).
* ``digits_all_layers``: the same with the callback's default layers (8 of them).
* ``long``: a wide CNN (``digits_cnn(channels=(192, 384))``, 8 watched layers) on the digits training set seen 30
  times per epoch, so that one epoch lasts >= 10 s here (the sample, and so the topology's cost, does not grow with
  the training set); 2 epochs. Goal: <= 1.03x with default charts.

Runs are interleaved (without, ``charts=False``, default charts; same seed) in one process after one untimed
warm-up of each; the figures are medians of the per-run ratios against the run without the callback just before
it. Figures are drawn on a background thread and the last ones finish after ``fit`` returns: the bench waits for
them outside the timed region and prints how long that took ("figures done after fit").
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from typing import Any

import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import ConcatDataset, DataLoader

from lightning_topo import TopologyCallback
from lightning_topo.datasets import DigitsDataModule
from lightning_topo.models import Classifier, digits_cnn

CASES: dict[str, dict[str, Any]] = {
    "digits": {
        "channels": (16, 32),
        "layers": ["net.1", "net.4", "net.8"],
        "repeat": 1,
        "epochs": 3,
        "runs": 21,  # a fit lasts 0.3 s and single ratios spread over +-5 %: many pairs for a stable median
        "goal": {"charts": 1.05, "no_charts": 1.05},  # issue 22, goal 4: charts on
    },
    "digits_all_layers": {"channels": (16, 32), "layers": "auto", "repeat": 1, "epochs": 3, "runs": 21, "goal": {}},
    "long": {
        "channels": (192, 384),
        "layers": "auto",
        "repeat": 30,
        "epochs": 2,
        "runs": 4,
        "goal": {"charts": 1.03},
    },
}
MODES = ("without", "no_charts", "charts")


class RepeatedDigits(DigitsDataModule):
    """Digits whose training set is seen ``repeat`` times per epoch (validation unchanged)."""

    def __init__(self, repeat: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repeat = repeat

    def train_dataloader(self) -> DataLoader:
        loader = super().train_dataloader()
        data = ConcatDataset([loader.dataset] * self.repeat)
        return DataLoader(data, batch_size=loader.batch_size, shuffle=True, num_workers=0)


def fit_seconds(
    case: dict[str, Any], epochs: int, mode: str, seed: int
) -> tuple[float, float, TopologyCallback | None]:
    """Seconds of ``trainer.fit``, seconds until the last figures were written after it, and the callback."""
    seed_everything(seed, verbose=False)
    callback = None
    if mode != "without":
        callback = TopologyCallback(layers=case["layers"], charts="auto" if mode == "charts" else False)
    with tempfile.TemporaryDirectory() as logs:
        trainer = Trainer(
            max_epochs=epochs,
            accelerator="cpu",
            devices=1,
            logger=CSVLogger(logs),
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            callbacks=[callback] if callback else [],
        )
        model = Classifier(digits_cnn(channels=case["channels"]))
        dm = RepeatedDigits(case["repeat"], batch_size=32) if case["repeat"] > 1 else DigitsDataModule(batch_size=32)
        start = time.perf_counter()
        trainer.fit(model, datamodule=dm)
        fit = time.perf_counter() - start
        if callback is not None:
            callback.wait_for_charts()
        drain = time.perf_counter() - start - fit
    return fit, drain, callback


def run_case(name: str, quick: bool) -> None:
    case = CASES[name]
    epochs, runs = case["epochs"], case["runs"]
    if quick:
        epochs, runs = min(epochs, 2), min(runs, 2)
    for mode in MODES:  # warm-up: imports, first-call costs
        fit_seconds(case, 1, mode, 0)
    seconds: dict[str, list[float]] = {m: [] for m in MODES}
    ratios: dict[str, list[float]] = {m: [] for m in MODES[1:]}
    drains: list[float] = []
    callback = None
    for i in range(runs):
        for mode in MODES:
            t, drain, cb = fit_seconds(case, epochs, mode, i)
            seconds[mode].append(t)
            if mode != "without":
                ratios[mode].append(t / seconds["without"][-1])
                callback = cb
            if mode == "charts":
                drains.append(drain)
    assert callback is not None
    epoch_s = statistics.median(seconds["without"]) / epochs
    print(
        f"## {name}: digits_cnn(channels={case['channels']}), training set x{case['repeat']}, {epochs} epochs, "
        f"{runs} interleaved runs, "
        f"{torch.get_num_threads()} threads, CSVLogger"
    )
    print(f"epoch without callback : {epoch_s:.2f} s (median fit {statistics.median(seconds['without']):.2f} s)")
    print(f"watched                : {len(callback.layer_names)} layers x {len(callback.sample.labels)} inputs")
    print(f"topology per evaluation: {statistics.median(callback.timings[1:] or callback.timings) * 1e3:.1f} ms")
    for mode, label in (("no_charts", "charts=False  "), ("charts", "default charts")):
        goal = case["goal"].get(mode)
        target = f"  (goal <= {goal:.2f}x)" if goal else ""
        per_run = ", ".join(f"{r:.3f}" for r in ratios[mode])
        q1, _, q3 = statistics.quantiles(ratios[mode], n=4) if len(ratios[mode]) > 1 else (0.0, 0.0, 0.0)
        spread = f" (middle half {q1:.3f}-{q3:.3f})" if len(ratios[mode]) > 1 else ""
        print(f"overhead, {label}: {statistics.median(ratios[mode]):.3f}x{target}{spread}   per run: {per_run}")
    print(f"figures done after fit : median {statistics.median(drains):.2f} s (not part of the fit time)")
    if name == "long" and epoch_s < 10 and not quick:
        print(f"note: an epoch took {epoch_s:.1f} s here, under the 10 s this case is meant to have")


def main() -> None:
    parser = argparse.ArgumentParser(description="TopologyCallback overhead")
    parser.add_argument(
        "--quick", action="store_true", help="2 runs of at most 2 epochs; with --case all, the digits cases only"
    )
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import platform

    import lightning
    from _common import cpu_model

    cpu = cpu_model()
    print(
        f"# bench_callback {time.strftime('%Y-%m-%d', time.gmtime())}: python {platform.python_version()}, "
        f"torch {torch.__version__}, lightning {lightning.__version__}, {cpu}, {os.cpu_count()} CPUs"
    )
    for name in cases_to_run(args.case, args.quick):
        run_case(name, args.quick)
    if args.quick and args.case == "all":
        print("# --quick: the long case was skipped (its epochs last >= 10 s); run it with --quick --case long")


def cases_to_run(case: str, quick: bool) -> list[str]:
    """The cases ``--case`` names; ``all`` with ``--quick`` leaves out ``long`` (a smoke test takes seconds)."""
    if case != "all":
        return [case]
    return [name for name in CASES if not (quick and name == "long")]


if __name__ == "__main__":
    main()
