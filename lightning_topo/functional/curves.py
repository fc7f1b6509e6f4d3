"""Betti curves: the Betti numbers of a volume's sublevel sets at many thresholds at once.

For the sublevel filtration of a volume, with every cell valued at the maximum of its corner voxels:

* ``b0(t) = #{voxels <= t} - #{edges <= t of a minimum spanning forest}`` of the 6-neighbour grid graph
  (edge weight = the larger value of its two ends);
* ``b2(t)`` = bounded 26-connected components of the complement ``{v > t}``: with an "outside" vertex
  joined to every boundary voxel, ``components = #{v > t} + 1 - #{edges > t of a maximum spanning
  forest}`` of the 26-neighbour graph (edge weight = the smaller end; outside edges weigh the voxel),
  and ``b2 = components - 1``;
* ``chi(t) = V - E + S - C`` from a signed histogram of the cell values;
* ``b1 = b0 + b2 - chi``.

One spanning-forest computation per volume serves every threshold. Values are replaced by their ranks
(``numpy.unique``), so the forests (``scipy.sparse.csgraph.minimum_spanning_tree``) see positive integer
weights and every comparison is exact. These graph steps run on the CPU, one volume at a time; the
result is returned on the input's device.

When it pays: the forests cost as much as many :func:`~lightning_topo.functional.cubical.cubical_betti` calls, so
up to many thresholds the batched direct computation is faster. ``method="auto"`` computes directly up to
``DIRECT_MAX_THRESHOLDS_NUMBA`` thresholds where ``cubical_betti`` runs the fused numba kernel (CPU tensors, numba
installed), up to ``DIRECT_MAX_THRESHOLDS`` elsewhere (the cc3d path without numba, accelerators), and with the
spanning forests above (the crossovers measured here: ``benchmarks/bench_curves.py``, output in
``benchmarks/bench_curves.out.txt``). The direct computation holds at most ``DIRECT_CHUNK_VOXELS`` repeated voxels
at a time (it runs in chunks of (volume, threshold) pairs), so many thresholds do not multiply the batch's memory.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from lightning_topo.functional._checks import (
    as_device,
    check_tensor,
    check_volumes,
    exact_threshold_compare_dtype,
    float_down,
    real_thresholds,
    round_down_to_dtype,
    threshold_array,
)
from lightning_topo.functional.components import resolve_backend
from lightning_topo.functional.cubical import as_volumes_3d, cubical_betti

__all__ = ["DIRECT_CHUNK_VOXELS", "DIRECT_MAX_THRESHOLDS", "DIRECT_MAX_THRESHOLDS_NUMBA", "betti_curves"]

DIRECT_MAX_THRESHOLDS_NUMBA = 128
"""Up to this many thresholds ``method="auto"`` computes directly (batched) where ``cubical_betti`` uses the fused
numba kernel (CPU tensors, numba installed); above it, the spanning forests."""
DIRECT_MAX_THRESHOLDS = 32
"""Up to this many thresholds ``method="auto"`` computes directly (batched) where the numba kernel does not run (the
cc3d path on the CPU without numba, accelerators); above it, the spanning forests."""
DIRECT_CHUNK_VOXELS = 2**25
"""The direct computation repeats each volume once per threshold; it holds at most this many repeated voxels at once
(128 MiB of float32), in chunks of (volume, threshold) pairs (at least one pair per chunk)."""

_HALF_26 = [(dd, dh, dw) for dd in (-1, 0, 1) for dh in (-1, 0, 1) for dw in (-1, 0, 1) if (dd, dh, dw) > (0, 0, 0)]


def _one_threshold(x: numbers.Real | Tensor | np.generic) -> float:
    """One entry of a sequence of thresholds as the largest float64 ``<=`` it (a 1-element tensor as
    :func:`~lightning_topo.functional._checks.real_thresholds` takes it: an int64 beyond 2**53 is refused)."""
    if isinstance(x, Tensor):
        if x.numel() != 1:
            raise ValueError(f"`thresholds` must hold numbers, got a tensor of shape {tuple(x.shape)} among them.")
        x = real_thresholds(x.detach(), "thresholds").reshape(()).item()
    elif isinstance(x, np.generic):
        if not isinstance(x, (np.integer, np.floating)):
            raise ValueError(f"`thresholds` must hold real numbers, got {x!r} ({type(x).__name__}) among them.")
        x = x.item()  # a Python int or float: an int64 is rounded down exactly below
    return float_down(x)  # type: ignore[arg-type]


def _check_thresholds(thresholds: Tensor | Sequence[float] | float) -> Tensor:
    """The thresholds as a 1-D float64 CPU tensor (one number counts as one threshold); a 2-D tensor, a string or
    anything else is a ``ValueError`` saying what is accepted."""
    if isinstance(thresholds, numbers.Real) and not isinstance(thresholds, bool):
        thresholds = [float_down(thresholds)]
    if isinstance(thresholds, str) or not isinstance(thresholds, (Tensor, Sequence, np.ndarray)):
        raise ValueError(
            f"`thresholds` must be a sequence or 1-D tensor of numbers (the same thresholds for every volume), got "
            f"{thresholds!r}; for each volume's mean or median use cubical_betti(volumes, sublevel_thresholds(...))."
        )
    if isinstance(thresholds, Sequence):
        bad = [x for x in thresholds if not isinstance(x, (numbers.Real, Tensor, np.generic)) or isinstance(x, bool)]
        if bad:
            raise ValueError(
                f"`thresholds` must hold real numbers, got {bad[0]!r} ({type(bad[0]).__name__}) among them."
            )
        thresholds = [_one_threshold(x) for x in thresholds]  # big ints rounded down, not to nearest
    if isinstance(thresholds, np.ndarray):
        thresholds = threshold_array(thresholds, "thresholds")
    if isinstance(thresholds, Tensor):
        t = real_thresholds(thresholds.detach(), "thresholds")  # int64 beyond 2**53: refused, not rounded up
    else:
        t = torch.tensor(thresholds, dtype=torch.float64)
    if t.ndim > 1:
        raise ValueError(
            f"`thresholds` must be 1-D (T thresholds shared by every volume), got shape {tuple(t.shape)}; for "
            "thresholds of each volume call betti_curves once per volume, or cubical_betti with a (B,) threshold."
        )
    t = t.detach().to(torch.float64).reshape(-1).cpu()
    if t.numel() == 0:
        raise ValueError("`thresholds` is empty: pass at least one threshold.")
    if bool(torch.isnan(t).any()):
        raise ValueError(f"`thresholds` holds NaN at index {int(torch.nonzero(torch.isnan(t))[0])}; ±inf is allowed.")
    return t


def _pairs(index: np.ndarray, offset: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (p, p + offset) of a grid, for an offset with entries in {-1, 0, 1}."""
    src, dst = [], []
    for axis, o in enumerate(offset):
        n = index.shape[axis]
        src.append(slice(0, n - o) if o >= 0 else slice(-o, n))
        dst.append(slice(o, n) if o >= 0 else slice(0, n + o))
    return index[tuple(src)].ravel(), index[tuple(dst)].ravel()


def _forest_weights(n_vertices: int, a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weights (positive integers) of a minimum spanning forest of the graph (a, b, w)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    graph = coo_matrix((w.astype(np.float64), (a, b)), shape=(n_vertices, n_vertices)).tocsr()
    return minimum_spanning_tree(graph).data.astype(np.int64)


def _count_below(ranks: np.ndarray, levels: np.ndarray, n_levels: int) -> np.ndarray:
    """For each level L: how many entries of ``ranks`` are < L."""
    cum = np.concatenate([[0], np.cumsum(np.bincount(ranks, minlength=n_levels))])
    return cum[levels]


def _curves_one(volume: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    uniq, inverse = np.unique(volume, return_inverse=True)
    rank = inverse.reshape(volume.shape).astype(np.int64)
    n_levels = len(uniq)
    levels = np.searchsorted(uniq, thresholds, side="right")  # number of distinct values <= t
    index = np.arange(volume.size).reshape(volume.shape)
    flat = rank.ravel()

    # chi(t): a cell is present when its value (max of its corners) is <= t.
    chi = _euler_curve(rank, levels, n_levels)

    # b0: minimum spanning forest of the 6-neighbour graph, edge weight = max rank of its ends.
    a_all, b_all, w_all = [], [], []
    for axis in range(3):
        if volume.shape[axis] > 1:
            offset = tuple(1 if i == axis else 0 for i in range(3))
            a, b = _pairs(index, offset)  # type: ignore[arg-type]
            a_all.append(a)
            b_all.append(b)
            w_all.append(np.maximum(flat[a], flat[b]))
    below = _count_below(flat, levels, n_levels)
    if a_all:
        forest = _forest_weights(volume.size, np.concatenate(a_all), np.concatenate(b_all), np.concatenate(w_all) + 1)
        b0 = below - _count_below(forest - 1, levels, n_levels)
    else:
        b0 = below

    # b2: maximum spanning forest of the complement's 26-neighbour graph plus an outside vertex.
    if min(volume.shape) >= 3:
        a_all, b_all, w_all = [], [], []
        for offset in _HALF_26:
            a, b = _pairs(index, offset)
            a_all.append(a)
            b_all.append(b)
            w_all.append(np.minimum(flat[a], flat[b]))
        boundary = np.ones(volume.shape, dtype=bool)
        boundary[1:-1, 1:-1, 1:-1] = False
        edge_voxels = index[boundary]
        a_all.append(edge_voxels)
        b_all.append(np.full(edge_voxels.size, volume.size))
        w_all.append(flat[edge_voxels])
        # Maximum spanning forest = minimum spanning forest of (n_levels - rank), all >= 1.
        forest = n_levels - _forest_weights(
            volume.size + 1, np.concatenate(a_all), np.concatenate(b_all), n_levels - np.concatenate(w_all)
        )
        present = volume.size - below  # voxels with value > t
        kept = forest.size - _count_below(forest, levels, n_levels)  # forest edges with rank >= L
        b2 = present + 1 - kept - 1
    else:
        b2 = np.zeros_like(b0)
    b1 = b0 + b2 - chi
    return np.stack([b0, b1, b2], axis=1)


def _euler_curve(rank: np.ndarray, levels: np.ndarray, n_levels: int) -> np.ndarray:
    """chi(t) at every level: signed counts of vertices, edges, squares and cubes by cell value."""
    signed = np.bincount(rank.ravel(), minlength=n_levels).astype(np.int64)
    sign = -1
    current = [rank]  # cells of the current dimension, as arrays of max-corner ranks, one per orientation
    seen: set[tuple[int, ...]] = set()
    orient: list[tuple[int, ...]] = [()]
    for _dim in (1, 2, 3):
        nxt, nxt_orient = [], []
        for cells, axes in zip(current, orient, strict=False):
            for axis in range(3):
                if (axes and axis <= max(axes)) or cells.shape[axis] < 2:
                    continue
                key = (*axes, axis)
                if key in seen:
                    continue
                seen.add(key)
                lo = np.take(cells, range(cells.shape[axis] - 1), axis=axis)
                hi = np.take(cells, range(1, cells.shape[axis]), axis=axis)
                merged = np.maximum(lo, hi)
                nxt.append(merged)
                nxt_orient.append(key)
                signed += sign * np.bincount(merged.ravel(), minlength=n_levels)
        current, orient = nxt, nxt_orient
        sign = -sign
    cum = np.concatenate([[0], np.cumsum(signed)])
    return cum[levels]


def betti_curves(
    volumes: Tensor,
    thresholds: Tensor | Sequence[float],
    *,
    device: torch.device | str | None = None,
    method: str = "auto",
) -> Tensor:
    """Betti numbers ``(b0, b1, b2)`` of ``{v <= t}`` for every volume and every threshold ``t``.

    Exactly ``cubical_betti(volumes, t)`` for each ``t`` (so equal to GUDHI's bars with
    ``birth <= t < death``), computed from one pair of spanning forests per volume.

    Args:
        volumes: a batch ``(B, *spatial)`` with 1, 2 or 3 spatial axes (as for ``cubical_betti``).
        thresholds: ``T`` thresholds in any order (±inf allowed, NaN not); results follow this order.
        device: where the result lives (default: the device of ``volumes``).
        method: ``"auto"`` (direct up to ``DIRECT_MAX_THRESHOLDS_NUMBA`` thresholds with the numba kernel, up to
            ``DIRECT_MAX_THRESHOLDS`` without it; forests above), ``"forest"`` or ``"direct"`` (batched
            ``cubical_betti`` over all B x T pairs, in chunks of at most ``DIRECT_CHUNK_VOXELS`` voxels).

    Returns:
        int64 tensor ``(B, T, 3)``.

    Raises:
        ValueError: bad volumes (as ``cubical_betti``), empty or NaN thresholds, unknown method.

    Example:
        >>> v = torch.tensor([[0.0, 2.0, 1.0, 3.0, 0.0]])
        >>> betti_curves(v, [-1.0, 0.0, 1.0, 2.0, 3.0], method="forest")[0, :, 0].tolist()
        [0, 2, 3, 2, 1]
    """
    volumes = check_volumes(check_tensor(volumes, "volumes"))
    t = _check_thresholds(thresholds)
    if method not in ("auto", "forest", "direct"):
        raise ValueError(f"`method` must be one of ('auto', 'forest', 'direct'), got {method!r}.")
    target = as_device(device, volumes.device)
    if method == "direct" or (method == "auto" and t.numel() <= direct_max_thresholds(target)):
        return _direct(volumes.to(target), t.to(target))
    dtype = exact_threshold_compare_dtype(volumes.dtype)
    vols = as_volumes_3d(volumes.detach().to(dtype)).cpu().to(torch.float64).numpy()
    # Round thresholds down to the comparison dtype, as `cubical_betti` does, so ties behave the same.
    tt = round_down_to_dtype(t, dtype).to(torch.float64).numpy()
    curves = np.stack([_curves_one(vol, tt) for vol in vols])
    return torch.from_numpy(curves).to(torch.int64).to(target)


def direct_max_thresholds(device: torch.device) -> int:
    """The most thresholds ``method="auto"`` computes directly on ``device``: ``DIRECT_MAX_THRESHOLDS_NUMBA`` where
    ``cubical_betti`` runs the fused numba kernel (the CPU with numba), else ``DIRECT_MAX_THRESHOLDS``."""
    fused = device.type == "cpu" and resolve_backend("auto", device) == "numba"
    return DIRECT_MAX_THRESHOLDS_NUMBA if fused else DIRECT_MAX_THRESHOLDS


def _direct(volumes: Tensor, t: Tensor) -> Tensor:
    """``cubical_betti`` of every (volume, threshold) pair as ``(B, T, 3)``, batched in chunks that repeat at most
    ``DIRECT_CHUNK_VOXELS`` voxels (whole volumes; at least one pair per chunk)."""
    batch, n = volumes.shape[0], t.numel()
    pairs = max(1, DIRECT_CHUNK_VOXELS // max(1, volumes[0].numel()))  # (volume, threshold) pairs per chunk
    per_volume = min(n, pairs)  # thresholds per chunk
    volumes_per_chunk = max(1, pairs // per_volume)
    out = torch.empty(batch, n, 3, dtype=torch.int64, device=volumes.device)
    for v in range(0, batch, volumes_per_chunk):
        vols = volumes[v : v + volumes_per_chunk]
        for i in range(0, n, per_volume):
            ts = t[i : i + per_volume]
            betti = cubical_betti(vols.repeat_interleave(ts.numel(), dim=0), ts.repeat(vols.shape[0]))
            out[v : v + vols.shape[0], i : i + ts.numel()] = betti.reshape(vols.shape[0], ts.numel(), 3)
    return out
