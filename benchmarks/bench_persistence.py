"""Per-layer benchmark: `cubical_persistence` against cripser and GUDHI on real ResNet18 activations.

    python benchmarks/bench_persistence.py            # about 3 minutes on 2 cores
    python benchmarks/bench_persistence.py --quick    # a smoke run (two small layers, one repeat)

Activations: `bench_layers.py`'s (scikit-learn digits upsampled to 3x224x224 through a randomly initialised ResNet18,
full width 64) at `relu` (64x112x112), `layer1.0` (64x56x56), `layer2.0` (128x28x28), `layer3.0` (256x14x14) and
`layer4.0` (512x7x7); and one synthetic row, `_common.relu_like` at 64x56x56 (a blurred Gaussian field through a
ReLU: half exact zeros, about 20,000 pairs, where cripser is 4-5x slower than on the real layer1.0 maps of the same
shape, which have about 4,000).

Per layer, ms per volume: ours on a whole batch for H0 + H2 (`dims=(0, 2)`: the compiled union-find passes) and
for all three diagrams (with the H1 reduction), on 1 and on 2 threads (`workers`); against
`cripser.computePH(maxdim=2)` and GUDHI's `CubicalComplex(vertices=v).persistence()` (all three diagrams each) on a
few volumes of the same batch. Every diagram (finite pairs as sorted arrays, essential births) must equal both
peers', else the run stops. The timings are taken in rounds, ours and the peers' one after the other in each round,
and a ratio (peer / ours) is the median of the rounds' ratios: on a shared machine whose speed drifts over minutes
(cripser's time per layer1.0 volume moved 86 -> 153 ms between two runs here) a slow spell then slows both sides of a
ratio, where timing all of ours first and the peers later let it land on one side. The load averages are printed.
Then, on one thread, where H0 + H2's time goes (the sort, the H0 pass, the dual pass) and its floor: the sort plus
two sweeps that only visit the voxels in value order and read each one's 6 face neighbours (no union-find), the
memory traffic any sort-then-sweep design pays (both passes read at least the face neighbours; the dual reads up
to 26), as a bound on cripser / (H0 + H2) for such a design on this machine. Last, one evaluation's worth: a
ResNet18 sample of 200 inputs at 32x32, its 11 watched layers, timed whole.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from _common import load_averages, relu_like
from _common import provenance as common_provenance

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("relu", "layer1.0", "layer2.0", "layer3.0", "layer4.0")
QUICK_LAYERS = ("layer3.0", "layer4.0")


def timed(fn, repeats: int) -> tuple[float, object]:
    """Median wall seconds of ``repeats`` calls (after one warm-up call) and the last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _sorted(pairs: np.ndarray) -> np.ndarray:
    pairs = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def split(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Finite pairs with birth < death (sorted) and essential births (sorted) of ``(n, 2)`` pairs, where an
    essential death is +inf or cripser's DBL_MAX."""
    pairs = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
    essential = pairs[:, 1] >= np.finfo(np.float64).max
    finite = pairs[~essential]
    return _sorted(finite[finite[:, 0] < finite[:, 1]]), np.sort(pairs[essential, 0])


def cripser_diagrams(volume: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    import cripser

    bars = cripser.computePH(volume, maxdim=2)
    return {dim: split(bars[bars[:, 0] == dim][:, 1:3]) for dim in range(3)}


def gudhi_diagrams(volume: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    import gudhi

    cc = gudhi.CubicalComplex(vertices=volume)
    bars = cc.persistence()  # min_persistence=0: the pairs with birth == death are left out, as ours are
    return {dim: split(np.array([p for d, p in bars if d == dim]).reshape(-1, 2)) for dim in range(3)}


def ours_diagrams(diagrams, volume: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    return {dim: split(diagrams.diagram(volume=volume, dim=dim).numpy()) for dim in diagrams.computed_dims}


def same(a: dict, b: dict, dims) -> bool:
    return all(np.array_equal(a[d][0], b[d][0]) and np.array_equal(a[d][1], b[d][1]) for d in dims)


def provenance(threads: int) -> str:
    return common_provenance(
        ("torch", "numpy", "numba", "llvmlite", "cripser", "gudhi"),
        f"torch threads {torch.get_num_threads()}, our threads 1 and {threads} (`workers`); peers single-threaded",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two small layers, small batches, one repeat")
    args = parser.parse_args(argv)
    batch, n_peer, rounds, gudhi_rounds = (2, 1, 1, 1) if args.quick else (8, 2, 5, 2)
    layers = QUICK_LAYERS if args.quick else LAYERS
    from bench_layers import activations

    from lightning_topo.functional import cubical_persistence

    torch.set_num_threads(1)
    print(provenance(2))
    acts = activations(batch)
    volumes_of = {name: acts[name] for name in layers}
    if not args.quick:
        volumes_of["relu_like"] = relu_like(batch, (64, 56, 56), "cpu", 0)
    print(
        f"\n## ms per volume, batch of {batch}, median of {rounds} rounds (a round: ours, one call on the whole batch "
        f"per column, then cripser on {n_peer} volumes and, in the first {gudhi_rounds}, GUDHI on the same; peers: all "
        "three diagrams); ratio = peer / ours, the median of the rounds' ratios"
    )
    print(
        f"{'layer':<10} {'shape':<11} {'pairs':>6} {'H0+H2 1t':>9} {'2t':>7} {'all 1t':>8} {'2t':>8} {'cripser':>8} "
        f"{'gudhi':>8}  {'cripser/H0+H2':>13} {'cripser/all':>11} {'gudhi/all':>9}  identical"
    )
    columns = [(dims, workers) for dims in ((0, 2), (0, 1, 2)) for workers in (1, 2)]
    peers = {"cripser": cripser_diagrams, "gudhi": gudhi_diagrams}
    for name, volumes in volumes_of.items():
        host = volumes.double().numpy()
        for dims, workers in columns:  # warm-up (and the first call's compilation) outside the rounds
            full = cubical_persistence(volumes, dims, workers=workers)
        identical = True
        ms: dict[object, list[float]] = {key: [] for key in [*columns, *peers]}
        ratio: dict[tuple[str, object], list[float]] = {}
        for r in range(rounds):
            this: dict[object, float] = {}
            for dims, workers in columns:
                start = time.perf_counter()
                full = cubical_persistence(volumes, dims, workers=workers)
                this[dims, workers] = 1e3 * (time.perf_counter() - start) / batch
            for peer, diagrams_of in peers.items():
                if peer == "gudhi" and r >= gudhi_rounds:
                    continue
                start = time.perf_counter()
                found = [diagrams_of(host[i]) for i in range(n_peer)]
                this[peer] = 1e3 * (time.perf_counter() - start) / n_peer
                if r == 0:
                    identical &= all(same(ours_diagrams(full, i), found[i], (0, 1, 2)) for i in range(n_peer))
            for key, value in this.items():
                ms[key].append(value)
            for peer in (peer for peer in peers if peer in this):
                for column in columns:
                    ratio.setdefault((peer, column), []).append(this[peer] / this[column])
        med = {key: statistics.median(values) for key, values in ms.items()}
        x = {key: statistics.median(values) for key, values in ratio.items()}
        pairs = len(full.select(volume=0))
        print(
            f"{name:<10} {'x'.join(map(str, volumes.shape[1:])):<11} {pairs:>6} {med[(0, 2), 1]:7.2f}ms "
            f"{med[(0, 2), 2]:5.2f}ms {med[(0, 1, 2), 1]:6.1f}ms {med[(0, 1, 2), 2]:6.1f}ms {med['cripser']:6.0f}ms "
            f"{med['gudhi']:6.0f}ms  {x['cripser', ((0, 2), 1)]:5.1f}x/{x['cripser', ((0, 2), 2)]:5.1f}x "
            f"{x['cripser', ((0, 1, 2), 1)]:4.1f}x/{x['cripser', ((0, 1, 2), 2)]:4.1f}x "
            f"{x['gudhi', ((0, 1, 2), 1)]:8.1f}x  {'yes' if identical else 'NO'}"
        )
        if not identical:
            raise SystemExit(f"{name}: our diagrams differ from cripser's or GUDHI's")
    print(
        "\n# ratio columns: x/y = against ours on 1 / on 2 threads; 'pairs': volume 0's pairs with birth < death "
        "(all dims, the essential H0 class included)"
    )
    # One volume: with two threads its H0 and its top dimension run on one each (each sorts the volume).
    print(f"\n## one volume, H0 + H2, ms (median of {3 * rounds} calls)")
    print(f"{'layer':<10} {'1 thread':>9} {'2 threads':>10} {'speed-up':>9}")
    for name, volumes in volumes_of.items():
        one = volumes[:1]
        single, _ = timed(lambda v=one: cubical_persistence(v, (0, 2), workers=1), 3 * rounds)
        double, _ = timed(lambda v=one: cubical_persistence(v, (0, 2), workers=2), 3 * rounds)
        print(f"{name:<10} {1e3 * single:7.2f}ms {1e3 * double:8.2f}ms {single / double:8.2f}x")
    breakdown(volumes_of, rounds, 1 if args.quick else n_peer)
    if not args.quick:
        sample(cubical_persistence)
    print(f"# load average at the end: {load_averages()}")


def _floor_sweep():
    """A sweep that visits the voxels in the order of ``order`` (from ``start``), reads each one's face neighbours'
    ``parent`` and marks it visited: what a union-find pass in value order does at the least (numba, compiled on the
    first call)."""
    from numba import njit

    from lightning_topo.functional._persistence_kernels import _six_faces, _visited_faces

    @njit(nogil=True, cache=False)
    def sweep(order, start, faces, parent):
        f0, f1, f2, f3, f4, f5 = _six_faces(faces, faces.size)
        valid = (1 << faces.size) - 1
        seen = 0
        for j in range(start, order.size):
            v = order[j]
            seen += _visited_faces(parent, v, f0, f1, f2, f3, f4, f5, valid)
            parent[v] = 0
        return seen

    return sweep


def breakdown(volumes_of: dict, rounds: int, n_peer: int) -> None:
    """One thread's H0 + H2 per volume in its parts (the kernels of ``_persistence_kernels`` called directly), the
    floor of any sort-then-sweep design (the sort and two face-reading sweeps) and cripser / floor: interleaved
    rounds, medians."""
    from lightning_topo.functional import _persistence_kernels as kernels

    sweep = _floor_sweep()
    print(
        f"\n## one thread, ms per volume: H0 + H2 in its parts, and the floor of a sort-then-sweep design (the sort + "
        f"two sweeps reading the 6 face neighbours in value order, no union-find); median of {rounds} rounds, each "
        f"also timing cripser on {n_peer} volume(s)"
    )
    print(
        f"{'layer':<10} {'sort':>7} {'H0 pass':>8} {'dual':>7} {'sum':>7} {'sweep':>7} {'floor':>7} {'cripser':>8}  "
        f"{'cripser/sum':>11} {'cripser/floor':>13}"
    )
    for name, volumes in volumes_of.items():
        d, h, w = volumes.shape[1:]
        host = volumes.double().numpy()
        flat = host.reshape(len(host), -1)
        n = flat.shape[1]
        size = (d + 2 * int(d > 1)) * (h + 2 * int(h > 1)) * (w + 2 * int(w > 1))
        faces = kernels._offsets(d, h, w, True, False)[0]
        back_faces = kernels._offsets(d, h, w, True, True)[0]
        neighbours, adjacent = kernels._offsets(d, h, w, False, False)
        free = kernels._free_of_faces(neighbours.size, adjacent)
        order, ordered = np.empty(n, np.int32), np.empty(n)
        scratch = (np.empty(n, np.uint64), np.empty(n, np.uint64), np.empty(n, np.int32), np.empty(n, np.uint32))
        parent = np.full(size, kernels._UNVISITED, np.int32)
        dual_parent = np.zeros(size, np.int32)
        dual_parent[0] = -(n + 2)
        births, deaths = np.empty(n), np.empty(n)
        parts: dict[str, list[float]] = {key: [] for key in ("sort", "h0", "dual", "sweep", "cripser")}
        ratios: dict[str, list[float]] = {"sum": [], "floor": []}
        for r in range(rounds + 1):  # round 0 warms up (compiles the sweep)
            this = dict.fromkeys(parts, 0.0)
            for volume in flat:
                start = time.perf_counter()
                plateau = kernels._prepare(volume, d, h, w, order, ordered, *scratch)[2]
                this["sort"] += time.perf_counter() - start
                kernels._reset(parent, d, h, w)
                start = time.perf_counter()
                kernels._h0_pass(order, ordered, plateau, faces, back_faces, parent, births, deaths)
                this["h0"] += time.perf_counter() - start
                kernels._reset(dual_parent, d, h, w)
                start = time.perf_counter()
                kernels._dual_pass(order, ordered, plateau, neighbours, adjacent, free, dual_parent, births, deaths)
                this["dual"] += time.perf_counter() - start
                for start_at in (0, plateau):  # the H0 pass visits every voxel, the dual the others
                    kernels._reset(parent, d, h, w)
                    start = time.perf_counter()
                    sweep(order, start_at, faces, parent)
                    this["sweep"] += (time.perf_counter() - start) / 2
            this = {key: 1e3 * value / len(flat) for key, value in this.items()}
            start = time.perf_counter()
            for i in range(n_peer):
                cripser_diagrams(host[i])
            this["cripser"] = 1e3 * (time.perf_counter() - start) / n_peer
            if r == 0:
                continue
            for key, value in this.items():
                parts[key].append(value)
            ratios["sum"].append(this["cripser"] / (this["sort"] + this["h0"] + this["dual"]))
            ratios["floor"].append(this["cripser"] / (this["sort"] + 2 * this["sweep"]))
        med = {key: statistics.median(values) for key, values in parts.items()}
        print(
            f"{name:<10} {med['sort']:5.2f}ms {med['h0']:6.2f}ms {med['dual']:5.2f}ms "
            f"{med['sort'] + med['h0'] + med['dual']:5.2f}ms {med['sweep']:5.2f}ms "
            f"{med['sort'] + 2 * med['sweep']:5.2f}ms {med['cripser']:6.0f}ms  "
            f"{statistics.median(ratios['sum']):10.1f}x {statistics.median(ratios['floor']):12.1f}x"
        )
    print(
        "# 'sweep': the mean of one over every voxel (as the H0 pass) and one over the voxels above the minimum "
        "(as the dual)"
    )


def sample_layers() -> tuple[str, ...]:
    """The 11 layers ``TopologyCallback`` watches on ResNet18 by default (``layers="auto"``): the GPU stages' list."""
    from gpu.stages.models import RESNET18_224_LAYERS

    return tuple(name for name, _ in RESNET18_224_LAYERS)


def sample(cubical_persistence) -> None:
    """One evaluation's diagrams: a ResNet18 sample of 200 inputs at 32x32 (digits upsampled), its 11 default layers,
    as issue 23's GPU goal counts them, timed whole on 1 and 2 threads."""
    from bench_layers import activations

    layers = sample_layers()
    out = activations(200, size=32, layers=layers)
    shapes = ", ".join(f"{name} {'x'.join(map(str, out[name].shape[1:]))}" for name in layers)
    print(f"\n## a ResNet18 sample: 200 inputs at 32x32, 11 layers ({shapes}); seconds for all of it (best of 3)")
    print(f"{'dims':<10} {'1 thread':>9} {'2 threads':>10}")
    for dims in ((0, 2), (0, 1, 2)):
        seconds = []
        for workers in (1, 2):
            for name in layers:  # warm-up
                cubical_persistence(out[name][:2], dims, workers=workers)
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                for name in layers:
                    cubical_persistence(out[name], dims, workers=workers)
                best = min(best, time.perf_counter() - start)
            seconds.append(best)
        print(f"{'H0+H2' if dims == (0, 2) else 'all three':<10} {seconds[0]:8.2f}s {seconds[1]:9.2f}s")


if __name__ == "__main__":
    main()
