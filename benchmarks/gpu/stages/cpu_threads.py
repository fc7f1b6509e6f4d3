"""The ``cpu_threads`` stage: the CPU engine on every core of the GPU machine's host (issue 22, goal 3; issue 23).

The machine that runs CI has 2 cores; the GPU machine's host has 16. On ``bench_layers.py``'s activations (scikit-learn
digits upsampled to 3x224x224 through a randomly initialised ResNet18 of full width, 5 layers), per layer and thread
count (1, 2, 4, ... up to the host's cores; ``torch.set_num_threads``, which the compiled kernels follow):

* ``cubical_betti`` at the "mean" rule (the callback's default) on a batch of volumes, ms per volume;
* ``cubical_persistence`` H0 + H2 (``dims=(0, 2)``) and all three dimensions on the same batch, ms per volume;
* cripser's full ``computePH(maxdim=2)`` per volume on a few of the same volumes (one thread: cripser has no other),
  whose Betti numbers and diagrams must equal ours.

Fields: ``cpu_thread_scaling`` (``threads``, ``batch``, per layer the ms per volume of each measure and thread count,
cripser's ms and the ratios) and ``cpu_thread_scaling_identical``.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from stages.results import Budget, note, update_results

LAYERS = ("relu", "layer1.0", "layer2.0", "layer3.0", "layer4.0")


def thread_counts(dry: bool) -> list[int]:
    """1, 2, 4, ... up to the host's cores (and the cores themselves); 1 and 2 in --dry."""
    cores = os.cpu_count() or 1
    if dry:
        return [1, 2] if cores >= 2 else [1]
    counts = [1]
    while counts[-1] * 2 <= cores:
        counts.append(counts[-1] * 2)
    if counts[-1] != cores:
        counts.append(cores)
    return counts


def stage_cpu_threads(args: argparse.Namespace) -> None:
    """Per layer and thread count: Betti numbers and persistence diagrams per volume, against cripser."""
    import numpy as np
    import torch
    from _common import cripser_betti
    from bench_layers import activations
    from bench_persistence import cripser_diagrams, ours_diagrams, same
    from bench_persistence import timed as median_seconds  # median of repeats after one warm-up call

    from lightning_topo.functional import cubical_betti, cubical_persistence, sublevel_thresholds

    budget = Budget(110)
    threads = thread_counts(args.dry)
    batch, n_peer, repeats = (4, 1, 1) if args.dry else (32, 2, 3)
    layers = ("layer3.0", "layer4.0") if args.dry else LAYERS
    torch.set_num_threads(max(threads))
    acts = activations(batch)
    table: dict[str, Any] = {}
    identical = True
    update_results(args.out, cpu_thread_scaling={"threads": threads, "batch": batch, "layers": {}})
    for name in layers:
        if budget.left() < 15:
            note(args.out, f"cpu_threads: stopped before layer {name}, out of time")
            break
        volumes = acts[name]
        thresholds = sublevel_thresholds(volumes, "mean")
        row: dict[str, Any] = {"shape": list(volumes.shape[1:]), "betti_ms": {}, "h0h2_ms": {}, "all_ms": {}}
        betti = diagrams = None
        for t in threads:
            torch.set_num_threads(t)
            seconds, betti = median_seconds(lambda v=volumes, th=thresholds: cubical_betti(v, th), repeats)
            row["betti_ms"][t] = 1e3 * seconds / batch
            seconds, _ = median_seconds(lambda v=volumes: cubical_persistence(v, dims=(0, 2)), repeats)
            row["h0h2_ms"][t] = 1e3 * seconds / batch
            if budget.left() > (10 if args.dry else 40):  # the H1 reduction costs most
                seconds, diagrams = median_seconds(lambda v=volumes: cubical_persistence(v), 1)
                row["all_ms"][t] = 1e3 * seconds / batch
        host = volumes[:n_peer].double().numpy()
        start = time.perf_counter()
        peer = [cripser_diagrams(host[i]) for i in range(n_peer)]
        cripser_ms = 1e3 * (time.perf_counter() - start) / n_peer
        same_betti = betti[:n_peer].tolist() == [cripser_betti(host[i], float(thresholds[i])) for i in range(n_peer)]
        same_diagrams = diagrams is None or all(
            same(ours_diagrams(diagrams, i), peer[i], (0, 1, 2)) for i in range(n_peer)
        )
        identical &= same_betti and same_diagrams
        row.update(
            cripser_ms=cripser_ms,
            identical=same_betti and same_diagrams,
            ratio_betti={t: cripser_ms / ms for t, ms in row["betti_ms"].items()},
            ratio_h0h2={t: cripser_ms / ms for t, ms in row["h0h2_ms"].items()},
            ratio_all={t: cripser_ms / ms for t, ms in row["all_ms"].items()},
            mean_betti=np.round(betti.double().mean(dim=0).numpy(), 1).tolist(),
        )
        table[name] = row
        update_results(args.out, cpu_thread_scaling={"layers": table}, cpu_thread_scaling_identical=identical)
        cells = " ".join(
            f"{t}t {row['betti_ms'][t]:.2f}/{row['h0h2_ms'][t]:.2f}/{row['all_ms'].get(t, float('nan')):.1f}"
            for t in threads
        )
        print(
            f"{name} {tuple(volumes.shape[1:])}: ms per volume betti/H0+H2/all {cells}; cripser {cripser_ms:.0f} ms; "
            f"identical {row['identical']}"
        )
    torch.set_num_threads(max(threads))
