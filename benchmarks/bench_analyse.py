"""`analyse` on a ResNet18-equivalent against the seed paper's pipeline, measured in the same run.

    python benchmarks/bench_analyse.py            # 512 inputs, full width (about 5 minutes on 2 cores)
    python benchmarks/bench_analyse.py --quick    # a smoke run (64 inputs, width 16)

Workload: a torchvision-layout ResNet18 (``tests/models.py``, width 64 = torchvision's, randomly initialised,
eval mode) on 512 inputs of 3 x 64 x 64 (scikit-learn digits upsampled, grey replicated to RGB, 10 classes);
all 11 layers of the paper (``conv1``, ``bn1``, ``relu``, the 8 residual blocks); cubical Betti numbers
b0, b1, b2 of each input's activation volume at its own mean value (``threshold="mean"``).

* **ours**: ``lightning_topo.analysis.analyse(model, data, samples_per_class=None, max_samples=512)``, one call,
  progress bar off: forward passes in batches, every layer reduced inside its hook.
* **seed pipeline** (Suresh et al.'s released approach): one input and one layer at a time: a forward pass
  of the input with hooks storing the layer activations as NumPy arrays, then ``cripser.computePH(maxdim=2)``
  of each volume and bar counting at the threshold. It is timed on a subset of the inputs (``--subset``,
  default 16) and **scaled linearly to 512**; its Betti numbers on the subset must equal ours.

Peak memory: each side runs in a fresh subprocess that reports the increase of its peak resident set size
(``ru_maxrss``) over its peak just before the measured call (the model and the inputs are not counted).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from _common import cripser_betti, in_subprocess, peak_rss_mb, tests_resnet18

LAYERS = ["conv1", "bn1", "relu"] + [f"layer{i}.{j}" for i in range(1, 5) for j in (0, 1)]


def _setup(n: int, width: int, size: int) -> tuple[Any, Any, Any]:
    import torch

    from lightning_topo.datasets import load_digits_tensors

    torch.manual_seed(0)
    x, y = load_digits_tensors(size=size)
    x, y = x[:n].repeat(1, 3, 1, 1).contiguous(), y[:n]
    model = tests_resnet18(width).eval()
    return model, x, y


def _ours(n: int, width: int, size: int, queue: Any) -> None:
    import torch
    from torch.utils.data import TensorDataset

    from lightning_topo import analyse

    torch.set_num_threads(2)
    model, x, y = _setup(n, width, size)
    data = TensorDataset(x, y)
    analyse(model, TensorDataset(x[:8], y[:8]), samples_per_class=None, max_samples=8, progress=False)  # warm-up
    base = peak_rss_mb()
    start = time.perf_counter()
    report = analyse(model, data, samples_per_class=None, max_samples=n, batch_size=64, progress=False)
    elapsed = time.perf_counter() - start
    assert report.layers == LAYERS, report.layers
    # Back to dataset order for the comparison with the seed pipeline.
    order = torch.argsort(report.indices)
    per_input = report.per_input[:, order].to(torch.int64).numpy()
    queue.put({"time": elapsed, "peak_mb": peak_rss_mb() - base, "per_input": per_input, "theta": report.theta})


def _seed_pipeline(n: int, width: int, size: int, subset: int, queue: Any) -> None:
    import torch

    torch.set_num_threads(2)
    model, x, _ = _setup(n, width, size)
    modules = dict(model.named_modules())
    captured: dict[str, np.ndarray] = {}
    hooks = [
        modules[name].register_forward_hook(
            lambda _m, _a, out, name=name: captured.__setitem__(name, out.detach().numpy().copy())
        )
        for name in LAYERS
    ]
    cripser_betti(np.zeros((4, 4, 4)), 0.0)  # warm-up
    base = peak_rss_mb()
    betti = np.zeros((len(LAYERS), subset, 3), dtype=np.int64)
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(subset):  # one input at a time
            model(x[i : i + 1])
            for li, name in enumerate(LAYERS):  # one layer at a time
                volume = captured[name][0].astype(np.float64)
                betti[li, i] = cripser_betti(volume, float(volume.mean()))
    elapsed = time.perf_counter() - start
    for h in hooks:
        h.remove()
    queue.put({"time": elapsed, "peak_mb": peak_rss_mb() - base, "betti": betti})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 inputs, width 16, subset 4")
    parser.add_argument("--inputs", type=int, default=512)
    parser.add_argument("--width", type=int, default=64, help="ResNet base width (torchvision: 64)")
    parser.add_argument("--size", type=int, default=64, help="input side")
    parser.add_argument("--subset", type=int, default=16, help="inputs the seed pipeline is timed on")
    args = parser.parse_args()
    if args.quick:
        args.inputs, args.width, args.subset = 64, 16, 4
    print(
        f"## analyse: ResNet18-equivalent (width {args.width}), {args.inputs} inputs of 3x{args.size}x{args.size}, "
        f"{len(LAYERS)} layers, cubical b0-b2 at each volume's mean"
    )
    ours = in_subprocess(_ours, args.inputs, args.width, args.size)
    seed = in_subprocess(_seed_pipeline, args.inputs, args.width, args.size, args.subset)
    same = np.array_equal(ours["per_input"][:, : args.subset], seed["betti"])
    seed_scaled = seed["time"] / args.subset * args.inputs
    print(f"{'':<28} {'wall time':>12} {'peak memory':>12}")
    print(f"{'ours (analyse, one call)':<28} {ours['time']:>10.1f} s {ours['peak_mb']:>9.0f} MB")
    print(
        f"{'seed pipeline (cripser)':<28} {seed_scaled:>10.1f} s {seed['peak_mb']:>9.0f} MB   "
        f"(measured {seed['time']:.1f} s on {args.subset} inputs, scaled x{args.inputs / args.subset:.0f})"
    )
    print(f"speed-up: {seed_scaled / ours['time']:.0f}x   identical Betti numbers on the subset: {same}")
    print(f"per input: ours {ours['time'] / args.inputs * 1e3:.1f} ms, seed {seed['time'] / args.subset * 1e3:.0f} ms")
    if not same:
        raise SystemExit("results differ from the seed pipeline")


if __name__ == "__main__":
    main()
