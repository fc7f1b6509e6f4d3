"""H0 of Vietoris–Rips (Euclidean MST): `h0_persistence` (torch) against giotto-ph in the same run.

    python benchmarks/bench_h0.py [--quick]

Clouds of n standard normal points in R^64, n = 1000, 2000, 4000. giotto-ph: `ripser_parallel(maxdim=0,
n_threads=2)`. Times are medians of 3 runs; results must agree to 1e-5 relative. Peak memory: each
engine runs in a fresh subprocess that reports the increase of its peak RSS during the call.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
from _common import in_subprocess, median_time, peak_rss_mb


def _run(engine: str, n: int, repeats: int, queue: Any) -> None:
    import torch
    from gph import ripser_parallel

    from lightning_topo.functional import h0_persistence

    points = np.random.default_rng(n).standard_normal((n, 64))
    if engine == "torch":
        h0_persistence(torch.from_numpy(points[:20]))

        def call() -> np.ndarray:
            return h0_persistence(torch.from_numpy(points)).numpy()
    else:
        ripser_parallel(points[:20], maxdim=0, n_threads=2)

        def call() -> np.ndarray:
            dgm = ripser_parallel(points, maxdim=0, n_threads=2)["dgms"][0]
            return np.sort(dgm[np.isfinite(dgm[:, 1]), 1])

    before = peak_rss_mb()
    seconds, deaths = median_time(call, repeats)
    queue.put({"time": seconds, "peak": peak_rss_mb() - before, "deaths": deaths})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="H0 benchmark: torch MST vs giotto-ph")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    sizes, repeats = ((500, 1000), 1) if args.quick else ((1000, 2000, 4000), 3)
    print(
        "## H0 of Vietoris–Rips in R^64: h0_persistence (torch, CPU) vs giotto-ph ripser_parallel(maxdim=0, 2 threads)"
    )
    print(
        f"{'n':>6} {'torch':>9} {'giotto-ph':>10} {'speed-up':>9} {'max rel err':>12} "
        f"{'torch peak':>11} {'giotto peak':>12}"
    )
    for n in sizes:
        ours = in_subprocess(_run, "torch", n, repeats)
        peer = in_subprocess(_run, "giotto", n, repeats)
        err = float(np.max(np.abs(ours["deaths"] - peer["deaths"]) / peer["deaths"]))
        if err > 1e-5:
            raise SystemExit(f"H0 deaths differ from giotto-ph at n={n}: max relative error {err:.2e}")
        print(
            f"{n:>6} {ours['time']:>8.3f}s {peer['time']:>9.3f}s {peer['time'] / ours['time']:>8.2f}x {err:>12.1e} "
            f"{ours['peak']:>9.0f}MB {peer['peak']:>10.0f}MB"
        )


if __name__ == "__main__":
    main()
