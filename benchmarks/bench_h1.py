"""H1 persistence pairs of ResNet18 feature maps: our compiled reduction against cripser and GUDHI.

    python benchmarks/bench_h1.py                  # layer1.0 (64x56x56), 8 volumes; about a minute on 2 cores
    python benchmarks/bench_h1.py --layer relu -n 4

Activations as in ``benchmarks/bench_layers.py`` (scikit-learn digits through a randomly initialised ResNet18). Per
volume: ``h1_pairs`` (best of 3, after a warm-up that compiles), ``cripser.computePH(maxdim=2)`` (all three
dimensions: cripser cannot compute H1 alone in 3-D, ``maxdim=1`` gives H0 and H1) and ``gudhi.CubicalComplex``
(all dimensions, first volume only); the H1 pairs with ``birth < death`` must be identical. Then the whole batch
through ``h1_pairs_batch`` on 1 and 2 threads. The machine is shared: the load averages are printed.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
from _common import cpu_model
from bench_layers import activations

from lightning_topo.functional._h1_reduction import h1_pairs, h1_pairs_batch


def _best(fn: Callable[[], object], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _sorted(pairs: np.ndarray) -> np.ndarray:
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", default="layer1.0")
    parser.add_argument("-n", type=int, default=8, help="volumes (default 8)")
    args = parser.parse_args()
    import cripser
    import gudhi

    volumes = activations(args.n)[args.layer].double().numpy()
    print(f"# {cpu_model()}, {os.cpu_count()} cores, load {os.getloadavg()}")
    print(f"# layer {args.layer} {volumes.shape[1:]}, exact zeros {(volumes == 0).mean():.2f}")
    h1_pairs(volumes[0, :4, :4, :4])  # compile (or load the cache)
    ours_t, cripser_t = [], []
    for b, volume in enumerate(volumes):
        ours = _sorted(h1_pairs(volume))
        ours_t.append(_best(lambda v=volume: h1_pairs(v)))
        cripser_t.append(_best(lambda v=volume: cripser.computePH(v, maxdim=2), 1))
        bars = cripser.computePH(volume, maxdim=2)
        want = _sorted(bars[(bars[:, 0] == 1) & (bars[:, 1] < bars[:, 2])][:, 1:3])
        same = ours.shape == want.shape and np.array_equal(ours, want)
        line = f"volume {b}: ours H1 {ours_t[-1] * 1e3:7.1f} ms, cripser H0-H2 {cripser_t[-1] * 1e3:7.1f} ms, "
        line += f"{len(ours)} H1 pairs, identical to cripser: {same}"
        if b == 0:
            start = time.perf_counter()
            complex_ = gudhi.CubicalComplex(vertices=volume)
            complex_.persistence(homology_coeff_field=2, min_persistence=-1)
            gudhi_t = time.perf_counter() - start
            g = np.asarray(complex_.persistence_intervals_in_dimension(1))
            g = _sorted(g[np.isfinite(g[:, 1]) & (g[:, 0] < g[:, 1])])
            line += f"; GUDHI all dims {gudhi_t * 1e3:.1f} ms, identical: {np.array_equal(ours, g)}"
        print(line)
        assert same
    print(f"median per volume: ours H1 {np.median(ours_t) * 1e3:.1f} ms, cripser {np.median(cripser_t) * 1e3:.1f} ms")
    for workers in (1, 2):
        t = _best(lambda w=workers: h1_pairs_batch(volumes, workers=w), 2)
        print(f"h1_pairs_batch, {workers} thread(s): {t / len(volumes) * 1e3:.1f} ms per volume (wall)")
    print(f"# load at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
