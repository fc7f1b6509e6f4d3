"""Per-layer benchmark: `cubical_betti` against cripser on real ResNet18 activations, and thread scaling.

    python benchmarks/bench_layers.py                 # about 3 minutes on 2 cores
    python benchmarks/bench_layers.py --quick         # a smoke run

Activations: scikit-learn digits upsampled to 3x224x224 (standardised) through a randomly initialised ResNet18
(torchvision's layout, `tests/models.py`, full width 64) at the layers `relu` (stem, 64x112x112), `layer1.0`
(64x56x56), `layer2.0` (128x28x28), `layer3.0` (256x14x14) and `layer4.0` (512x7x7). Threshold rule "mean" (the
callback's default). Per layer: ours on a whole batch (median of repeats, per volume) against
`cripser.computePH(maxdim=2)` on a few volumes of the same batch (bars with birth <= t < death), whose Betti
numbers must be identical. Thread scaling: the same batch split into chunks over a thread pool of 1 and 2
workers (torch's thread count set to match), which shows whether the labeller releases the GIL.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from _common import cpu_model, cripser_betti, median_time, package_versions, tests_resnet18

LAYERS = ("relu", "layer1.0", "layer2.0", "layer3.0", "layer4.0")


def activations(n: int) -> dict[str, torch.Tensor]:
    """The watched layers' outputs for ``n`` digits at 224x224 (float32)."""
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    net = tests_resnet18(64).eval()
    images = torch.tensor(load_digits().images[:n], dtype=torch.float32)[:, None] / 16.0
    x = torch.nn.functional.interpolate(images, size=(224, 224), mode="bilinear", align_corners=False)
    x = ((x - x.mean()) / x.std()).repeat(1, 3, 1, 1)
    out: dict[str, torch.Tensor] = {}
    hooks = [
        net.get_submodule(name).register_forward_hook(lambda m, a, o, name=name: out.__setitem__(name, o.clone()))
        for name in LAYERS
    ]
    with torch.no_grad():
        net(x)
    for hook in hooks:
        hook.remove()
    return out


def ours(volumes: torch.Tensor, workers: int = 1) -> torch.Tensor:
    """Betti numbers at the "mean" rule; with ``workers > 1`` the batch is split over a thread pool."""
    from lightning_topo.functional import cubical_betti, sublevel_thresholds

    def one(v: torch.Tensor) -> torch.Tensor:
        return cubical_betti(v, sublevel_thresholds(v, "mean"))

    if workers == 1:
        return one(volumes)
    with ThreadPoolExecutor(workers) as pool:
        return torch.cat(list(pool.map(one, volumes.chunk(workers))))


def provenance() -> str:
    names = ("torch", "numpy", "scipy", "connected-components-3d", "cripser")
    found = package_versions(names)
    versions = [f"{name} {found.get(name, '-')}" for name in names]
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (
        f"# {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}, python "
        f"{platform.python_version()}, {', '.join(versions)}\n# CPU: {cpu_model()}, {os.cpu_count()} cores "
        f"(load average {', '.join(f'{x:.1f}' for x in load)} at the start; shared machine, timings are noisy), "
        f"torch threads {torch.get_num_threads()}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small batches, one repeat")
    args = parser.parse_args(argv)
    batch, n_cripser, repeats = (4, 1, 1) if args.quick else (32, 3, 5)
    print(provenance())
    acts = activations(batch)
    print(f"## per volume, batch of {batch} (ours: median of {repeats}; cripser: mean over {n_cripser} volumes)")
    print(f"{'layer':<9} {'shape':<12} {'ours':>9} {'cripser':>10} {'ratio':>7}  identical  mean (b0, b1, b2)")
    for name in LAYERS:
        volumes = acts[name]
        ours(volumes[:2])  # warm-up
        seconds, betti = median_time(lambda v=volumes: ours(v), repeats)
        thresholds = volumes.reshape(batch, -1).mean(dim=1, dtype=torch.float64)
        start = time.perf_counter()
        peer = [cripser_betti(volumes[i].numpy(), float(thresholds[i])) for i in range(n_cripser)]
        peer_s = (time.perf_counter() - start) / n_cripser
        same = betti[:n_cripser].tolist() == peer
        per_volume = seconds / batch
        print(
            f"{name:<9} {'x'.join(map(str, volumes.shape[1:])):<12} {1e3 * per_volume:7.3f}ms {1e3 * peer_s:8.1f}ms "
            f"{peer_s / per_volume:6.1f}x  {'yes' if same else 'NO':<9}  "
            f"{np.round(betti.double().mean(dim=0).numpy(), 1).tolist()}"
        )
        if not same:
            raise SystemExit(f"{name}: ours {betti[:n_cripser].tolist()} != cripser {peer}")
    print(f"\n## thread scaling: the batch of {batch} split over a thread pool (ms per volume)")
    print(f"{'layer':<9} {'1 worker':>9} {'2 workers':>10} {'speed-up':>9}")
    threads = torch.get_num_threads()
    for name in LAYERS:
        volumes = acts[name]
        cells = []
        for workers in (1, 2):
            torch.set_num_threads(workers)
            seconds, betti = median_time(lambda v=volumes, w=workers: ours(v, w), repeats)
            cells.append(seconds)
            assert torch.equal(betti, ours(volumes)), name
        print(f"{name:<9} {1e3 * cells[0] / batch:7.3f}ms {1e3 * cells[1] / batch:8.3f}ms {cells[0] / cells[1]:8.2f}x")
    torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
