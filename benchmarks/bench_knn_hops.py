"""Point-cloud view at scale: ``rips_betti(metric="knn_hops")`` against Euclidean Rips on the same points.

    python benchmarks/bench_knn_hops.py                 # 10,000 and 50,000 points (a few minutes on 2 cores)
    python benchmarks/bench_knn_hops.py --sizes 2000    # a smoke run

Points: uniform in the unit square (seeded). Ours: ``rips_betti(points, 2.5, maxdim=1, metric="knn_hops", k=14)``
(Naitzat's D-I settings): the k-NN graph found a block of rows at a time, a breadth-first search of depth
ceil(2.5) = 3 on the sparse graph, giotto-ph on the sparse hop matrix. Peer: giotto-ph's
``ripser_parallel(points, maxdim=1, thresh=r)`` (Euclidean Rips straight from the points), with r the mean
distance to the 14th nearest neighbour, the Euclidean scale of one hop. Both use 2 threads. Each measurement
runs in a fresh subprocess and reports its wall time and its peak resident memory (``ru_maxrss``) above the
peak after the points were made, so the numbers do not leak into each other. The goals (issue "Topology signals
you can act on"): 10,000 points in at most 3x the Euclidean time and under 1 GB; 50,000 points feasible.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np


def _points(n: int) -> np.ndarray:
    return np.random.default_rng(n).random((n, 2))


def _measure(kind: str, n: int) -> dict[str, Any]:
    """Run one measurement in this process (called in a subprocess): seconds and peak RSS growth (bytes)."""
    import torch

    torch.set_num_threads(2)
    points = _points(n)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if kind == "knn_hops":
        from lightning_topo.functional import rips_betti

        betti = rips_betti(torch.from_numpy(points), 2.5, maxdim=1, metric="knn_hops", k=14, n_threads=2).tolist()
    else:
        from gph import ripser_parallel
        from scipy.spatial import cKDTree

        r = float(cKDTree(points).query(points, k=15)[0][:, 14].mean())
        dgms = ripser_parallel(points, maxdim=1, thresh=r, n_threads=2)["dgms"]
        betti = [int(((d[:, 0] <= r) & (d[:, 1] > r)).sum()) for d in dgms]
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "peak_bytes": (peak - base) * 1024, "betti": betti}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--one", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(_measure(args.one[0], int(args.one[1]))))
        return {}
    rows: dict[str, Any] = {}
    for n in args.sizes:
        row = {}
        for kind in ("euclidean", "knn_hops"):
            out = subprocess.run(
                [sys.executable, __file__, "--one", kind, str(n)], capture_output=True, text=True, check=True
            ).stdout
            row[kind] = json.loads(out.strip().splitlines()[-1])
        row["time_ratio"] = row["knn_hops"]["seconds"] / row["euclidean"]["seconds"]
        rows[str(n)] = row
        print(
            f"{n:>7} points: knn_hops {row['knn_hops']['seconds']:7.2f} s, "
            f"{row['knn_hops']['peak_bytes'] / 2**20:7.0f} MiB peak, betti {row['knn_hops']['betti']} | "
            f"Euclidean Rips {row['euclidean']['seconds']:6.2f} s, {row['euclidean']['peak_bytes'] / 2**20:6.0f} MiB "
            f"| time ratio {row['time_ratio']:.2f}x",
            flush=True,
        )
    return rows


if __name__ == "__main__":
    main()
