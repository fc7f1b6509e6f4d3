"""Betti curves: spanning forests (`method="forest"`) against T batched direct computations.

    python benchmarks/bench_curves.py

Prints both times for T = 8, 32, 128 thresholds on ReLU volumes; the crossover sets
`lightning_topo.functional.curves.DIRECT_MAX_THRESHOLDS`.
"""

from __future__ import annotations

import time

import torch

from lightning_topo.functional import betti_curves


def main() -> None:
    print(f"{'volumes':<18} {'T':>4} {'forest':>9} {'direct':>9}")
    for shape, batch in [((64, 56, 56), 2), ((16, 28, 28), 8)]:
        x = torch.relu(torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0)))
        betti_curves(x[:1, :4, :4, :4], [0.0, 1.0], method="forest")
        for t in (8, 32, 128):
            ts = torch.linspace(-0.1, 2.0, t)
            start = time.perf_counter()
            forest = betti_curves(x, ts, method="forest")
            t_forest = time.perf_counter() - start
            start = time.perf_counter()
            direct = betti_curves(x, ts, method="direct")
            t_direct = time.perf_counter() - start
            assert torch.equal(forest, direct)
            label = f"{batch}x" + "x".join(map(str, shape))
            print(f"{label:<18} {t:>4} {t_forest:>8.3f}s {t_direct:>8.3f}s")


if __name__ == "__main__":
    main()
