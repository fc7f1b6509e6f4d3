"""Engine benchmark: lightning-topo against the peers measured in the same run.

    python benchmarks/bench_engine.py            # full run (about 2 minutes on 2 cores)
    python benchmarks/bench_engine.py --quick    # a smoke run

1. Cubical Betti numbers (b0, b1, b2) at threshold 0 of batches of 64 ReLU-like volumes shaped
   (64, 56, 56) and (256, 14, 14) (ResNet layer sizes): `cubical_betti` on the whole batch against
   `cripser.computePH(maxdim=2)` (the engine of Suresh et al.) one volume at a time, counting bars
   with birth <= 0 < death. cripser is timed on a subset of the batch (it takes up to ~1.5 s a volume)
   and the results on that subset must be identical. Three kinds of volume, because cripser's time
   depends strongly on how many critical cells a volume has:
     - relu-iid:     max(N(0, 1), 0), independent voxels (the worst case for both engines);
     - relu-smooth:  max(g, 0) with g Gaussian noise smoothed over H and W (sigma 1) but independent
                     across channels, as conv maps are;
     - cnn-digits:   real activations: scikit-learn digits upsampled to the layer size, through one
                     randomly initialised 3x3 conv layer + ReLU.
2. H0 of Vietoris–Rips (Euclidean MST) in R^64: `h0_persistence` against giotto-ph
   `ripser_parallel(maxdim=0, n_threads=2)`, from `benchmarks/bench_h0.py`.

Peak memory: the volumes are generated once and saved to a temporary .npy file; each measurement
runs in a fresh subprocess that loads them and reports the increase of its peak resident set size
(ru_maxrss) over its peak just before the measured call (so the input itself is not counted).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np
from _common import cripser_betti, in_subprocess, median_time, peak_rss_mb

SHAPES = [(64, 56, 56), (256, 14, 14)]
KINDS = ["relu-iid", "relu-smooth", "cnn-digits"]


def make_volumes(kind: str, shape: tuple[int, int, int], batch: int, seed: int = 0) -> np.ndarray:
    """A batch of ReLU-like float32 volumes of the given kind (see the module docstring)."""
    rng = np.random.default_rng(seed)
    if kind == "relu-iid":
        return np.maximum(rng.standard_normal((batch, *shape)), 0).astype(np.float32)
    if kind == "relu-smooth":
        from scipy.ndimage import gaussian_filter

        noise = rng.standard_normal((batch, *shape))
        return np.maximum(gaussian_filter(noise, sigma=(0, 0, 1, 1)), 0).astype(np.float32)
    if kind == "cnn-digits":
        import torch
        from sklearn.datasets import load_digits

        torch.manual_seed(seed)
        images = torch.tensor(load_digits().images[:batch], dtype=torch.float32)[:, None] / 16.0
        size = shape[1:]
        x = torch.nn.functional.interpolate(images, size=size, mode="bilinear", align_corners=False)
        conv = torch.nn.Conv2d(1, shape[0], 3, padding=1)
        with torch.no_grad():
            return torch.relu(conv(x)).numpy().astype(np.float32)
    raise ValueError(f"unknown kind {kind!r}; valid: {KINDS}")


def _measure_ours(path: str, repeats: int, queue: Any) -> None:
    import torch

    from lightning_topo.functional import cubical_betti

    vols = torch.from_numpy(np.load(path))
    cubical_betti(vols[:2], 0.0)  # warm-up (imports, first-call costs)
    before = peak_rss_mb()
    seconds, betti = median_time(lambda: cubical_betti(vols, 0.0), repeats)
    queue.put({"time": seconds, "peak_mb": peak_rss_mb() - before, "betti": betti.tolist()})


def _measure_cripser(path: str, subset: int, queue: Any) -> None:
    import cripser

    vols = np.load(path)[:subset].astype(np.float64)
    cripser.computePH(vols[0][:4, :4, :4], maxdim=2)  # warm-up
    before = peak_rss_mb()
    start = time.perf_counter()
    betti = [cripser_betti(vol, 0.0) for vol in vols]
    queue.put({"time": (time.perf_counter() - start) / len(vols), "peak_mb": peak_rss_mb() - before, "betti": betti})


def bench_cubical(batch: int, subset: int, repeats: int) -> list[dict[str, Any]]:
    import tempfile

    rows = []
    for shape in SHAPES:
        for kind in KINDS:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "volumes.npy")
                np.save(path, make_volumes(kind, shape, batch))
                ours = in_subprocess(_measure_ours, path, repeats)
                peer = in_subprocess(_measure_cripser, path, subset)
            same = ours["betti"][:subset] == peer["betti"]
            per_volume = ours["time"] / batch
            rows.append(
                {
                    "shape": "x".join(map(str, shape)),
                    "kind": kind,
                    "ours_ms": per_volume * 1e3,
                    "cripser_ms": peer["time"] * 1e3,
                    "speedup": peer["time"] / per_volume,
                    "identical": same,
                    "ours_peak_mb": ours["peak_mb"],
                    "cripser_peak_mb": peer["peak_mb"],
                    "mean_betti": np.mean(np.array(ours["betti"]), axis=0).round(1).tolist(),
                }
            )
            if not same:
                raise SystemExit(f"results differ from cripser on {shape} {kind}: {ours['betti'][:subset]} vs {peer}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="lightning-topo engine benchmark")
    parser.add_argument("--quick", action="store_true", help="small batch, few repeats")
    args = parser.parse_args()
    batch, subset, repeats = (8, 2, 1) if args.quick else (64, 4, 3)

    print(f"# lightning-topo engine benchmark ({os.cpu_count()} cores, python {sys.version.split()[0]})")
    print(f"## cubical Betti numbers at threshold 0, batches of {batch} volumes (cripser on {subset} of them)")
    print(
        f"{'shape':<10} {'volumes':<12} {'ours/vol':>10} {'cripser/vol':>12} {'speed-up':>9} {'same':>5} "
        f"{'ours peak':>10} {'cripser peak':>13}  mean (b0,b1,b2)"
    )
    for r in bench_cubical(batch, subset, repeats):
        print(
            f"{r['shape']:<10} {r['kind']:<12} {r['ours_ms']:>8.2f}ms {r['cripser_ms']:>10.1f}ms "
            f"{r['speedup']:>8.0f}x {'yes' if r['identical'] else 'NO':>5} {r['ours_peak_mb']:>8.0f}MB "
            f"{r['cripser_peak_mb']:>11.0f}MB  {r['mean_betti']}"
        )

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        import bench_h0
    except ImportError:  # pragma: no cover - the H0 benchmark lives beside this file
        print("(benchmarks/bench_h0.py not found: H0 section skipped)")
        return
    print()
    bench_h0.main(["--quick"] if args.quick else [])


if __name__ == "__main__":
    main()
