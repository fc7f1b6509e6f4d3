"""Callback overhead: fit wall time with `TopologyCallback()` at defaults over the same fit without it.

    python benchmarks/bench_callback.py            # 7 paired runs of 5 epochs (about 1-2 minutes on 2 cores)
    python benchmarks/bench_callback.py --quick    # 2 paired runs of 2 epochs

The digits CNN (`lightning_topo.models.digits_cnn`) on scikit-learn's digits (1347 training, 450
validation images), batch size 32, CPU. Runs are paired (without, then with, same seed) in one
process, after one untimed warm-up pair; the figure is the median of the per-pair ratios. Topology is
computed every epoch on the callback's default sample (20 per class = 200 validation inputs, 9 layers).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
from lightning.pytorch import Trainer, seed_everything

from lightning_topo import TopologyCallback
from lightning_topo.datasets import DigitsDataModule
from lightning_topo.models import Classifier, digits_cnn


def fit_seconds(epochs: int, with_topology: bool, seed: int) -> tuple[float, TopologyCallback | None]:
    seed_everything(seed, verbose=False)
    callback = TopologyCallback() if with_topology else None
    trainer = Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[callback] if callback else [],
    )
    model = Classifier(digits_cnn())
    dm = DigitsDataModule(batch_size=32)
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    return time.perf_counter() - start, callback


def main() -> None:
    parser = argparse.ArgumentParser(description="TopologyCallback overhead on the digits CNN")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    pairs, epochs = (2, 2) if args.quick else (7, 5)
    warnings.filterwarnings("ignore")
    fit_seconds(1, False, 0)  # warm-up: imports, first-call costs
    fit_seconds(1, True, 0)
    without, with_, ratios = [], [], []
    callback = None
    for i in range(pairs):
        t0, _ = fit_seconds(epochs, False, i)
        t1, callback = fit_seconds(epochs, True, i)
        without.append(t0)
        with_.append(t1)
        ratios.append(t1 / t0)
    print(
        f"# TopologyCallback overhead: digits CNN, {epochs} epochs, {pairs} paired runs, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"fit without callback : median {statistics.median(without):.2f} s")
    print(f"fit with callback    : median {statistics.median(with_):.2f} s")
    assert callback is not None
    n_inputs, n_layers = len(callback.sample.labels), len(callback.layer_names)
    print(f"topology per epoch   : {n_layers} layers x {n_inputs} inputs, cubical, threshold='mean'")
    steady = statistics.median(callback.timings[1:] or callback.timings)
    print(f"topology per evaluation (steady state, callback.timings): {steady * 1e3:.1f} ms")
    print(f"ratio (median of paired ratios): {statistics.median(ratios):.3f}x  (target <= 1.10x)")
    print("per-pair ratios: " + ", ".join(f"{r:.3f}" for r in ratios))


if __name__ == "__main__":
    main()
