"""The point-cloud view (Naitzat, Zhitnikov, Lim, JMLR 2020): Vietoris–Rips Betti numbers of a cloud.

* :func:`h0_persistence` — the H0 death times of the Rips filtration: the edge weights of a minimum
  spanning tree, by Prim's algorithm with tensor ops (one masked row-minimum update per vertex; no host
  synchronisation, so the same code runs on CUDA).
* :func:`knn_graph`, :func:`knn_hop_matrix`, :func:`knn_hop_distances` — Naitzat's metric: hop counts on the
  symmetrised k-NN graph, by a breadth-first search of bounded depth on the sparse graph (SciPy sparse
  products; neighbours found a block of rows at a time), so memory grows with the pairs within reach, never
  with n x n.
* :func:`rips_betti` — Betti numbers of the Rips complex at one scale. Euclidean: H0 from the torch MST, H1 and
  above from giotto-ph's ``ripser_parallel`` on the dense distances. k-NN hops: b0 = components of the pairs
  within the scale, H1 and above from ``ripser_parallel`` on the sparse hop matrix (absent pairs never enter
  the complex at this scale).

Distances are computed in float64 (exact enough that the MST matches giotto-ph to 1e-5 relative even
for close points, where a float32 ``|x|^2 + |y|^2 - 2xy`` would cancel badly).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lightning_topo.functional._checks import (
    _WIDE_INTEGERS,
    FLOAT8,
    as_device,
    beyond_exact,
    check_finite_per_sample,
    check_int,
    check_tensor,
    float_down,
    real_thresholds,
)
from lightning_topo.functional._threads import cpu_workers

__all__ = [
    "METRICS",
    "h0_persistence",
    "h0_persistence_from_distances",
    "knn_graph",
    "knn_hop_distances",
    "knn_hop_matrix",
    "rips_betti",
]

METRICS = ("euclidean", "knn_hops")


def _check_points(points: object, name: str = "points", minimum: int = 2) -> Tensor:
    points = check_tensor(points, name)
    if points.ndim != 2:
        raise ValueError(f"`{name}` must have shape (n, d), got shape {tuple(points.shape)}.")
    if points.shape[0] < minimum:
        need = "at least 2 (each point needs a nearest neighbour)" if minimum == 2 else f"at least {minimum}"
        raise ValueError(f"`{name}` has {points.shape[0]} point(s); this needs {need}.")
    if points.shape[1] == 0:
        raise ValueError(f"`{name}` has dimension d = 0; points need at least one coordinate.")
    if points.is_complex() or points.dtype == torch.bool:
        raise ValueError(f"`{name}` has dtype {points.dtype}; accepted are real floating point and integer dtypes.")
    if points.dtype in FLOAT8:
        points = points.to(torch.float32)
    if points.dtype in _WIDE_INTEGERS and bool(beyond_exact(points).any()):
        raise ValueError(
            f"`{name}` (dtype {points.dtype}) has coordinates beyond ±2**53: distances are computed in float64, "
            f"where such integers round and distinct points can coincide. Subtract a reference point first "
            f"(`{name} - {name}[0]`) so the coordinates fit, or convert to float64 yourself if rounding is acceptable."
        )
    check_finite_per_sample(points, name, "point")
    return points.detach()  # the distances are not differentiated (an embedding with grad is read as it is)


_SQUARES_SAFE = 2.0**450
"""Coordinates whose magnitudes lie in ``[1 / _SQUARES_SAFE, _SQUARES_SAFE]`` (or are 0) have differences whose
squares neither overflow nor underflow in float64 (a nonzero difference is at least 2**-53 of its coordinates);
beyond, distances are computed one pair at a time with its own scale (:func:`_scaled_distances`)."""

_SCALED_BLOCK = 2**22
"""Entries of the ``(rows, n, d)`` differences :func:`_scaled_distances` holds at once (32 MiB of float64)."""


def _squares_safe(x: Tensor) -> bool:
    """Whether ``torch.cdist`` computes the distances of ``x`` (float64) without overflow or underflow."""
    magnitude = x.abs()
    tiny = torch.where(magnitude > 0, magnitude, torch.full_like(magnitude, math.inf)).amin()
    return bool((magnitude.amax() <= _SQUARES_SAFE) & (tiny >= 1 / _SQUARES_SAFE))


def _scaled_distances(a: Tensor, b: Tensor) -> Tensor:
    """Euclidean distances ``(len(a), len(b))`` of float64 points of any magnitude: each pair's differences are
    divided by their largest before squaring (as ``math.hypot``), so nothing overflows or underflows that the
    distance itself does not (a distance beyond float64's range is ``inf``)."""
    n, d = b.shape
    rows = max(1, _SCALED_BLOCK // (n * d))
    blocks = []
    for start in range(0, a.shape[0], rows):
        diff = (a[start : start + rows, None, :] - b[None, :, :]).abs()
        largest = diff.amax(dim=-1)
        scale = torch.where((largest > 0) & torch.isfinite(largest), largest, torch.ones_like(largest))
        norm = scale * torch.linalg.vector_norm(diff / scale.unsqueeze(-1), dim=-1)
        blocks.append(torch.where(torch.isfinite(largest), norm, largest))
    return torch.cat(blocks)


def _pairwise(a: Tensor, b: Tensor, safe: bool) -> Tensor:
    """Exact-enough float64 Euclidean distances between the rows of ``a`` and ``b`` (float64)."""
    if safe:
        return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")
    return _scaled_distances(a, b)


def _distances(points: Tensor) -> Tensor:
    x = points.to(torch.float64)
    return _pairwise(x, x, _squares_safe(x))


def h0_persistence_from_distances(dist: Tensor) -> Tensor:
    """The ``n - 1`` minimum-spanning-tree edge weights of a symmetric distance matrix, ascending.

    Prim's algorithm: each step takes the closest vertex outside the tree and lowers the other vertices'
    distance-to-tree with its row — ``n - 1`` steps of O(n) tensor work.
    """
    n = dist.shape[0]
    inf = torch.tensor(math.inf, dtype=dist.dtype, device=dist.device)
    largest = torch.finfo(dist.dtype).max
    # An infinite distance (beyond the dtype's range) enters the tree as the largest finite value, so the vertices
    # outside the tree (never above it) always come before those inside (at inf); it leaves as inf again.
    dist = dist.clamp(max=largest)
    in_tree = torch.zeros(n, dtype=torch.bool, device=dist.device)
    in_tree[0] = True
    best = dist[0].clone()
    best[0] = inf
    deaths = torch.empty(n - 1, dtype=dist.dtype, device=dist.device)
    for i in range(n - 1):
        j = torch.argmin(best)
        deaths[i] = best[j]
        in_tree[j] = True
        best = torch.where(in_tree, inf, torch.minimum(best, dist[j]))
    deaths = torch.where(deaths == largest, inf, deaths)
    return torch.sort(deaths).values


def h0_persistence(points: Tensor, *, device: torch.device | str | None = None) -> Tensor:
    """The finite H0 death times of the Vietoris–Rips filtration of a point cloud, ascending.

    They are the edge lengths of a Euclidean minimum spanning tree (every component is born at 0).
    Duplicate points give deaths of 0, which ripser and giotto-ph leave out of their diagrams.

    Args:
        points: ``(n, d)`` with n >= 1; any real dtype; NaN/Inf is an error naming the point index.
        device: where to compute (default: the device of ``points``).

    Returns:
        float64 tensor ``(n - 1,)`` on ``device`` (empty for one point).

    Example:
        >>> h0_persistence(torch.tensor([[0.0], [1.0], [3.0]])).tolist()
        [1.0, 2.0]
    """
    points = _check_points(points, minimum=1)
    target = as_device(device, points.device)
    return h0_persistence_from_distances(_distances(points.to(target)))


_DENSE_KNN_ROWS = 1024
"""Rows of the distance matrix computed at once when finding nearest neighbours (bounds memory at
``_DENSE_KNN_ROWS x n`` float64; each row is the same exact pairwise computation at any block size)."""


def _check_knn_args(n: int, k: object, max_hops: object) -> tuple[int, int]:
    """``k`` and ``max_hops`` as Python ints, checked."""
    checked_k = check_int(k, "k", 1, n - 1, bounds=f"in [1, n - 1] = [1, {n - 1}] for {n} points")
    return checked_k, check_int(max_hops, "max_hops", 1)  # type: ignore[return-value]


def knn_graph(points: Tensor, k: int, *, device: torch.device | str | None = None) -> Any:
    """The symmetrised k-nearest-neighbour graph as a SciPy CSR boolean adjacency matrix ``(n, n)``.

    ``i`` and ``j`` are joined when either is among the other's ``k`` nearest (Euclidean) neighbours. **Ties:**
    every point at the distance of ``i``'s ``k``-th nearest neighbour is a neighbour of ``i`` (so ``i`` has more
    than ``k`` where distances tie: equally spaced or duplicated points, quantised data). The graph is then the
    same for any order of the points; a rule that kept exactly ``k`` would pick among the tied points by their
    order. Distances are exact float64 per pair, computed a block of rows at a time, so memory is
    O(edges + block x n), never an n x n matrix.

    Example:
        >>> knn_graph(torch.tensor([[0.0], [1.0], [3.0]]), k=1).toarray().astype(int).tolist()
        [[0, 1, 0], [1, 0, 1], [0, 1, 0]]
    """
    from scipy import sparse

    points = _check_points(points)
    n = points.shape[0]
    k, _ = _check_knn_args(n, k, 1)
    x = points.to(as_device(device, points.device), torch.float64)
    safe = _squares_safe(x)
    rows_of, cols_of = [], []
    for start in range(0, n, _DENSE_KNN_ROWS):
        block = _pairwise(x[start : start + _DENSE_KNN_ROWS], x, safe)
        rows = torch.arange(start, start + block.shape[0], device=block.device)
        block[rows - start, rows] = math.inf
        kth = torch.topk(block, k, dim=1, largest=False).values[:, -1:]  # the k-th distance: unique, whatever ties
        row, col = torch.nonzero(block <= kth, as_tuple=True)
        rows_of.append((row + start).cpu())
        cols_of.append(col.cpu())
    row, col = torch.cat(rows_of).numpy(), torch.cat(cols_of).numpy()
    graph = sparse.csr_matrix((np.ones(len(row), dtype=bool), (row, col)), shape=(n, n))
    return (graph + graph.T).astype(bool)


def knn_hop_matrix(points: Tensor, k: int, *, max_hops: int = 10, device: torch.device | str | None = None) -> Any:
    """Hop distances up to ``max_hops`` on the k-NN graph, as a SciPy CSR matrix (absent = farther or apart).

    A breadth-first search of depth ``max_hops`` from every point at once (sparse boolean matrix products): memory
    grows with the pairs within ``max_hops`` hops, never with n x n. :func:`rips_betti` uses it with
    ``max_hops = floor(scale)`` (hop counts are integers), which is exact at that scale.

    Example:
        >>> knn_hop_matrix(torch.tensor([[0.0], [1.0], [2.0], [10.0]]), k=1, max_hops=2).toarray().tolist()[0]
        [0.0, 1.0, 2.0, 0.0]
    """
    from scipy import sparse

    points = _check_points(points)
    n = points.shape[0]
    k, max_hops = _check_knn_args(n, k, max_hops)
    adjacency = knn_graph(points, k, device=device)
    step = adjacency.astype(np.int32)
    reached = (adjacency + sparse.identity(n, dtype=bool, format="csr")).astype(bool)
    hops = adjacency.astype(np.float64)
    frontier = step
    for h in range(2, max_hops + 1):
        candidates = (frontier @ step).astype(bool)
        new = (candidates.astype(np.int8) - candidates.multiply(reached).astype(np.int8)).astype(bool)
        new.eliminate_zeros()
        if new.nnz == 0:
            break
        hops = hops + new.astype(np.float64) * float(h)
        reached = (reached + new).astype(bool)
        frontier = new.astype(np.int32)
    return hops.tocsr()


def knn_hop_distances(
    points: Tensor, k: int, *, max_hops: int = 10, device: torch.device | str | None = None
) -> Tensor:
    """Hop distances on the unweighted, symmetrised k-nearest-neighbour graph (Naitzat et al.'s metric).

    ``i`` and ``j`` are joined when either is among the other's ``k`` nearest neighbours (ties: every point at the
    ``k``-th distance, as in :func:`knn_graph`). Pairs more than
    ``max_hops`` apart, or in different components, get the finite "far" value ``max_hops + 1``, so they
    never join a Rips complex at a scale <= ``max_hops`` (:func:`rips_betti` never joins them, at any scale).
    This dense form is for inspection and small clouds;
    :func:`rips_betti` works on the sparse :func:`knn_hop_matrix` and never builds it.

    Args:
        points: ``(n, d)`` cloud, n >= 2.
        k: neighbours per point, ``1 <= k <= n - 1``.
        max_hops: hop counts beyond this are set to ``max_hops + 1``.
        device: where the nearest neighbours are found (default: the device of ``points``).

    Returns:
        float64 ``(n, n)`` symmetric matrix with zero diagonal, on ``device``.

    Example:
        >>> knn_hop_distances(torch.tensor([[0.0], [1.0], [2.0], [10.0]]), k=1).tolist()[0]
        [0.0, 1.0, 2.0, 3.0]
    """
    points = _check_points(points)
    k, max_hops = _check_knn_args(points.shape[0], k, max_hops)
    target = as_device(device, points.device)
    hops = knn_hop_matrix(points, k, max_hops=max_hops, device=target).tocoo()
    n = points.shape[0]
    dense = torch.full((n, n), float(max_hops + 1), dtype=torch.float64)
    dense[torch.from_numpy(hops.row).long(), torch.from_numpy(hops.col).long()] = torch.from_numpy(hops.data)
    dense.fill_diagonal_(0.0)
    return dense.to(target)


def _components_within(hops: Any, scale: float) -> int:
    """b0 of the Rips complex at ``scale`` on sparse hop distances: components of the pairs ``<= scale``."""
    from scipy.sparse.csgraph import connected_components

    within = hops.copy()
    within.data = (within.data <= scale).astype(np.int8)
    within.eliminate_zeros()
    return int(connected_components(within, directed=False)[0])


def _float32_unit(dist: Tensor) -> float:
    """A power of two to divide float64 distances by before giotto-ph reads them in float32 (exact, and so the same
    order and ties): 1 unless the largest finite distance lies beyond 2**±100, where float32 would overflow or lose
    the smallest ones; then it brings the largest to [0.5, 1)."""
    largest = float(dist.amax())
    if not math.isfinite(largest):
        finite = dist[torch.isfinite(dist)]
        largest = float(finite.amax()) if finite.numel() else 0.0
    if largest == 0.0 or 2.0**-100 <= largest <= 2.0**100:
        return 1.0
    return math.ldexp(1.0, math.frexp(largest)[1])


def rips_betti(
    points: Tensor,
    scale: float,
    maxdim: int = 1,
    metric: str = "euclidean",
    k: int | None = None,
    *,
    n_threads: int = -1,
    device: torch.device | str | None = None,
    max_hops: int = 10,
) -> Tensor:
    """Betti numbers ``(b0, ..., b_maxdim)`` of the Vietoris–Rips complex of a cloud at ``scale``.

    The complex has an edge wherever the distance is ``<= scale``; a persistence bar counts when
    ``birth <= scale < death``. b0 comes from the torch minimum spanning tree (``1 + #{deaths > scale}``);
    b1 and above from giotto-ph ``ripser_parallel(metric="precomputed", thresh=scale)`` on the CPU.

    Args:
        points: ``(n, d)`` cloud, no NaN/Inf; n >= 1 (n >= 2 for ``"knn_hops"``). An embedding that requires grad
            is read as it is (nothing here is differentiated).
        scale: the Rips scale, >= 0 (in hops for ``metric="knn_hops"``; Naitzat et al. use 2.5). At 0 only
            coincident points are joined (none under "knn_hops": hops are >= 1); a sweep of scales may start there.
        maxdim: highest homology dimension (>= 0).
        metric: ``"euclidean"`` or ``"knn_hops"`` (hop distance on the k-NN graph; needs ``k``; ties at the
            ``k``-th distance as in :func:`knn_graph`, so the numbers do not depend on the order of the points).
        k: neighbours for ``"knn_hops"`` (Naitzat et al.: 14 for D-I, 35 for D-II and D-III).
        n_threads: giotto-ph threads, >= 1, or -1 for :func:`torch.get_num_threads` (the thread count of the
            rest of the engine).
        device: where distances and H0 are computed (default: the device of ``points``).
        max_hops: ``"knn_hops"``: pairs more than this many hops apart (or in different components of the graph)
            are far: never joined, at any scale (Naitzat et al. use 10; so scales above it add nothing).

    Returns:
        int64 tensor ``(maxdim + 1,)`` on ``device``.

    Raises:
        ValueError: bad shape, no point, NaN/Inf (naming the point), scale < 0, unknown metric, missing or
            out-of-range ``k`` (or ``k`` given with ``metric="euclidean"``), negative ``maxdim``, bad ``n_threads``.

    Example:
        >>> angles = torch.linspace(0, 2 * math.pi, 41)[:-1]
        >>> circle = torch.stack([angles.cos(), angles.sin()], dim=1)
        >>> rips_betti(circle, scale=0.3).tolist()
        [1, 1]
    """
    points = _check_points(points, minimum=1 if metric == "euclidean" else 2)
    if isinstance(scale, np.ndarray) and scale.ndim == 0 and np.issubdtype(scale.dtype, np.number):
        scale = scale.item()  # a 0-d array, as NumPy's reductions give
    if isinstance(scale, Tensor) and scale.numel() == 1 and not scale.is_complex() and scale.dtype != torch.bool:
        scale = real_thresholds(scale.detach(), "scale").reshape(()).item()  # a 0-d tensor, as computed scales are
    # float_down: a distance (float64) is <= an int or fraction exactly when it is <= the largest float64 below it
    value = float_down(scale) if isinstance(scale, numbers.Real) and not isinstance(scale, bool) else math.nan
    if not (math.isfinite(value) and value >= 0):
        shown = repr(scale) if len(repr(scale)) <= 40 else f"{repr(scale)[:37]}..."
        raise ValueError(f"`scale` must be a finite number >= 0, got {shown}.")
    scale = value
    maxdim = check_int(maxdim, "maxdim", 0)
    threads = check_int(n_threads, "n_threads", -1, bounds=">= 1, or -1 (torch.get_num_threads())")
    if threads == 0:
        raise ValueError("`n_threads` must be >= 1, or -1 (torch.get_num_threads()), got 0.")
    threads = cpu_workers() if threads == -1 else threads
    if metric not in METRICS:
        raise ValueError(f"`metric` must be one of {METRICS}, got {metric!r}.")
    if metric == "euclidean" and k is not None:
        raise ValueError(
            f"`k={k!r}` is for metric='knn_hops' (the k-NN hop distance); with metric='euclidean' (the default here) "
            "it would be ignored: pass metric='knn_hops' or leave `k` out."
        )
    target = as_device(device, points.device)
    if metric == "knn_hops":
        if k is None:
            raise ValueError("`k` is required for metric='knn_hops' (Naitzat et al. use k=14 for D-I).")
        k, max_hops = _check_knn_args(points.shape[0], k, max_hops)
        # Hops beyond the scale (or beyond max_hops: far) never enter the complex: a breadth-first search of depth
        # floor(scale) (hop counts are integers) on the sparse k-NN graph gives every pair that can (exact at this
        # scale); no n x n matrix.
        hops = knn_hop_matrix(points, k, max_hops=max(1, min(math.floor(scale), max_hops)), device=target)
        betti = [_components_within(hops, scale)]
        complex_input: Any = hops.tocoo()
        scale_in_units = scale
    else:
        dist = _distances(points.to(target))
        deaths = h0_persistence_from_distances(dist)
        betti = [1 + int((deaths > scale).sum())]
        unit = _float32_unit(dist)
        complex_input = (dist / unit).cpu().numpy()
        scale_in_units = scale / unit
    if maxdim >= 1:
        from gph import ripser_parallel

        diagrams = ripser_parallel(
            complex_input, metric="precomputed", maxdim=maxdim, thresh=float(scale_in_units), n_threads=threads
        )["dgms"]
        for dim in range(1, maxdim + 1):
            bars = torch.from_numpy(diagrams[dim])
            alive = (
                (bars[:, 0] <= scale_in_units) & (bars[:, 1] > scale_in_units)
                if len(bars)
                else torch.zeros(0, dtype=torch.bool)
            )
            betti.append(int(alive.sum()))
    return torch.tensor(betti, dtype=torch.int64, device=target)
