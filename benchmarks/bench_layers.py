"""Per-layer benchmark: `cubical_betti` against cripser on real ResNet18 activations, per backend and thread count.

    python benchmarks/bench_layers.py                 # about 3 minutes on 2 cores
    python benchmarks/bench_layers.py --quick         # a smoke run

Activations: scikit-learn digits upsampled to 3x224x224 (standardised) through a randomly initialised ResNet18
(torchvision's layout, `tests/models.py`, full width 64) at the layers `relu` (stem, 64x112x112), `layer1.0`
(64x56x56), `layer2.0` (128x28x28), `layer3.0` (256x14x14) and `layer4.0` (512x7x7). Threshold rule "mean" (the
callback's default). Per layer: ours on a whole batch (median of repeats, per volume) with the CPU backends
`numba` (the default when numba is installed: one fused compiled call per batch computes the masks, the Euler
characteristic and both labellings, on 1 and on 2 threads: `torch.set_num_threads`) and `cc3d` (the fallback without
numba: torch masks, NumPy Euler characteristic, cc3d labelling), against `cripser.computePH(maxdim=2)` on a few
volumes of the same batch (bars with birth <= t < death), whose Betti numbers must be identical; every backend must
give the same numbers on the whole batch. torch runs on one thread throughout (the "mean" thresholds, and the cc3d
path's masks), so the thread columns measure the fused kernel alone. Goal (issue 22): every layer >= 50x cripser per
volume. Thread scaling of cc3d: the batch split over a Python thread pool of 1 and 2 workers, which shows that cc3d
holds the GIL. The machine is shared: the CPU seconds of the process (not only the
wall clock) are printed, as are the load averages.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from _common import cripser_betti, load_averages
from _common import provenance as common_provenance

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("relu", "layer1.0", "layer2.0", "layer3.0", "layer4.0")


def activations(n: int, size: int = 224, layers: tuple[str, ...] = LAYERS) -> dict[str, torch.Tensor]:
    """The outputs of ``layers`` (default: this benchmark's five) for ``n`` digits upsampled to ``size`` x ``size``
    (float32)."""
    sys.path.insert(0, str(REPO / "tests"))
    from models import resnet18
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    net = resnet18(width=64).eval()
    images = torch.tensor(load_digits().images[:n], dtype=torch.float32)[:, None] / 16.0
    x = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    x = ((x - x.mean()) / x.std()).repeat(1, 3, 1, 1)
    out: dict[str, torch.Tensor] = {}
    hooks = [
        net.get_submodule(name).register_forward_hook(lambda m, a, o, name=name: out.__setitem__(name, o.clone()))
        for name in layers
    ]
    with torch.no_grad():
        net(x)
    for hook in hooks:
        hook.remove()
    return out


def ours(volumes: torch.Tensor, backend: str = "auto", workers: int = 1) -> torch.Tensor:
    """Betti numbers at the "mean" rule; with ``workers > 1`` the batch is split over a Python thread pool."""
    from lightning_topo.functional import cubical_betti, sublevel_thresholds

    def one(v: torch.Tensor) -> torch.Tensor:
        return cubical_betti(v, sublevel_thresholds(v, "mean"), backend=backend)

    if workers == 1:
        return one(volumes)
    with ThreadPoolExecutor(workers) as pool:
        return torch.cat(list(pool.map(one, volumes.chunk(workers))))


def set_numba_threads(n: int) -> None:
    """Threads of the compiled kernels: they follow torch's thread count (``functional._threads.cpu_workers``)."""
    torch.set_num_threads(n)


def timed(fn, repeats: int) -> tuple[float, object]:
    """Median wall seconds of ``repeats`` calls (after one warm-up call) and the last result."""
    fn()
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def cpu_timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall and median process-CPU seconds of ``repeats`` calls."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def provenance() -> str:
    names = ("torch", "numpy", "scipy", "connected-components-3d", "numba", "llvmlite", "cripser")
    return common_provenance(names, f"torch threads {torch.get_num_threads()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small batches, one repeat")
    args = parser.parse_args(argv)
    batch, n_cripser, repeats = (4, 1, 1) if args.quick else (32, 3, 7)
    from lightning_topo.functional.components import resolve_backend

    torch.set_num_threads(1)
    print(provenance())
    print(f"# backend='auto' on the CPU: {resolve_backend('auto', torch.device('cpu'))}")
    acts = activations(batch)
    cells = [("numba", 1), ("numba", 2), ("cc3d", 1)]
    print(
        f"\n## ms per volume, batch of {batch} (ours: median of {repeats} calls on the whole batch; cripser: mean over "
        f"{n_cripser} volumes); ratio = cripser / ours"
    )
    print(
        f"{'layer':<9} {'shape':<12} {'numba 1t':>9} {'numba 2t':>9} {'cc3d':>8} {'cripser':>9} "
        f"{'ratio 1t':>8} {'ratio 2t':>8} {'cc3d':>6}  identical  mean (b0, b1, b2)"
    )
    goal_rows: list[tuple[str, float, float]] = []
    for name in LAYERS:
        volumes = acts[name]
        seconds, results = {}, {}
        for backend, threads in cells:
            set_numba_threads(threads)
            seconds[backend, threads], results[backend, threads] = timed(
                lambda v=volumes, b=backend: ours(v, b), repeats
            )
        betti = results["numba", 1]
        same_backends = all(torch.equal(r, betti) for r in results.values())
        thresholds = volumes.reshape(batch, -1).mean(dim=1, dtype=torch.float64)
        start = time.perf_counter()
        peer = [cripser_betti(volumes[i].numpy(), float(thresholds[i])) for i in range(n_cripser)]
        peer_s = (time.perf_counter() - start) / n_cripser
        same = same_backends and betti[:n_cripser].tolist() == peer
        ms = {k: 1e3 * v / batch for k, v in seconds.items()}
        print(
            f"{name:<9} {'x'.join(map(str, volumes.shape[1:])):<12} {ms['numba', 1]:7.3f}ms {ms['numba', 2]:7.3f}ms "
            f"{ms['cc3d', 1]:6.3f}ms {1e3 * peer_s:7.1f}ms {1e3 * peer_s / ms['numba', 1]:7.1f}x "
            f"{1e3 * peer_s / ms['numba', 2]:7.1f}x {1e3 * peer_s / ms['cc3d', 1]:5.1f}x  "
            f"{'yes' if same else 'NO':<9}  "
            f"{np.round(betti.double().mean(dim=0).numpy(), 1).tolist()}"
        )
        goal_rows.append((name, 1e3 * peer_s / ms["numba", 1], 1e3 * peer_s / ms["numba", 2]))
        if not same:
            raise SystemExit(f"{name}: backends or cripser differ: ours {betti[:n_cripser].tolist()}, cripser {peer}")

    print("\n## goal: >= 50x cripser per volume at every layer (numba, fused)")
    for name, one, two in goal_rows:
        print(
            f"{name:<9} 1 thread {one:6.1f}x {'met' if one >= 50 else 'NOT met':<8} 2 threads {two:6.1f}x "
            f"{'met' if two >= 50 else 'NOT met'}"
        )

    print(
        f"\n## thread scaling, batch of {batch}: wall ms per volume (process CPU ms per volume), median of {repeats}; "
        "numba: torch.set_num_threads; cc3d: a Python thread pool over chunks"
    )
    print(
        f"{'layer':<9} {'numba 1t':>16} {'numba 2t':>16} {'speed-up':>8} {'cc3d 1w':>16} {'cc3d 2w':>16} "
        f"{'speed-up':>8}"
    )
    for name in LAYERS:
        volumes = acts[name]
        row = []
        for backend, threads, workers in (("numba", 1, 1), ("numba", 2, 1), ("cc3d", 1, 1), ("cc3d", 1, 2)):
            set_numba_threads(threads)
            ours(volumes, backend, workers)  # warm-up
            row.append(cpu_timed(lambda v=volumes, b=backend, w=workers: ours(v, b, w), repeats))
        text = [f"{1e3 * w / batch:7.3f} ({1e3 * c / batch:6.3f})" for w, c in row]
        print(
            f"{name:<9} {text[0]:>16} {text[1]:>16} {row[0][0] / row[1][0]:7.2f}x {text[2]:>16} {text[3]:>16} "
            f"{row[2][0] / row[3][0]:7.2f}x"
        )
    print(f"\n# load average at the end: {load_averages()}")


if __name__ == "__main__":
    main()
