"""The H1 persistence pairs of 3-D cubical volumes: a compiled coboundary reduction with clearing.

Used by :func:`lightning_topo.functional.persistence.cubical_persistence` for the H1 diagram of genuinely 3-D
volumes (H0 and the top dimension have union-find shortcuts; H1 in 3-D has none). The filtration is the sublevel
filtration of the V-construction: the voxels are the vertices and an edge, square or cube enters at the largest
value of its corner voxels, exactly GUDHI's ``CubicalComplex(vertices=volume)`` and cripser's ``computePH``.

The algorithm (persistent cohomology with clearing, the scheme of Ripser and CubicalRipser, written anew):

* **A total order.** The voxels are ranked by a stable argsort of their values; a cell enters with its corner of
  highest rank, and cells are ordered by (that rank, dimension, a fixed index). Faces come before cofaces and the
  order refines the values, so the pairs with ``birth < death`` are GUDHI's; ties of equal values only change the
  zero-persistence pairs, which are dropped.
* **Clearing.** One union-find pass over the edges in that order marks the edges that join two components (the
  H0 deaths): their coboundary columns reduce to zero, so they are skipped.
* **Reduction.** The other edges are visited in decreasing order; the coboundary of an edge (at most four squares)
  is reduced modulo 2 by adding the reduced columns of later edges that own its pivot (its earliest square). An
  edge whose pivot is free is paired at once (the apparent and emergent pairs: almost all edges of a feature map,
  and the whole plateau of exact zeros a ReLU leaves); its column is not stored, since it is recomputed from the
  volume when needed. Only columns that needed additions are stored, in one growing pool.

A square is keyed by ``rank(its top corner) * 3N + orientation * N + anchor`` (``N`` voxels), so comparing keys
compares filtration order. In a box H1 has no essential class: a column that reduces to zero is a bug, raised as
:class:`RuntimeError`.

The kernel is compiled by numba (``pip install "lightning-topo[fast]"``) at first use, cached on disk, and releases
the GIL: the volumes of a batch run on a thread pool.
"""

from __future__ import annotations

import itertools
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from lightning_topo.functional._checks import MissingDependencyError, NonFiniteError

try:
    from numba import njit
except ImportError:  # pragma: no cover - exercised where numba is absent; the functions then raise
    _HAVE_NUMBA = False

    def njit(*args: Any, **kwargs: Any) -> Any:
        """Stand-in for ``numba.njit`` when numba is absent (the kernels are never run then)."""
        return lambda func: func

else:
    _HAVE_NUMBA = True

__all__ = ["h1_pairs", "h1_pairs_batch"]

MAX_VOXELS = 2**31 - 1
"""Voxels per volume the kernel indexes (square keys ``< 3 * N**2`` must fit in int64)."""


@njit(nogil=True, cache=True, inline="always")
def _grow(buf: np.ndarray, need: int) -> np.ndarray:
    """``buf``, or a copy at least twice as long when it holds fewer than ``need`` entries."""
    if need <= buf.shape[0]:
        return buf
    out = np.empty(max(need, 2 * buf.shape[0]), dtype=buf.dtype)
    out[: buf.shape[0]] = buf
    return out


@njit(nogil=True, cache=True, inline="always")
def _coboundary(
    edge: int,
    rank: np.ndarray,
    n: int,
    size: np.ndarray,
    stride: np.ndarray,
    out: np.ndarray,
) -> int:
    """Write the sorted keys of the squares containing edge slot ``edge`` (``direction * n + anchor``) into ``out``;
    return how many (0 to 4)."""
    k = edge // n
    a = edge - k * n
    b = a + stride[k]
    top = max(rank[a], rank[b])
    three_n = 3 * n
    count = 0
    for o in range(3):
        if o == k:
            continue
        m = 3 - k - o  # the square of normal o is spanned by k and m
        cm = (a // stride[m]) % size[m]
        if cm + 1 < size[m]:
            s = stride[m]
            r = max(top, max(rank[a + s], rank[b + s]))
            out[count] = r * three_n + o * n + a
            count += 1
        if cm > 0:
            s = stride[m]
            r = max(top, max(rank[a - s], rank[b - s]))
            out[count] = r * three_n + o * n + a - s
            count += 1
    # insertion sort of at most four keys
    for i in range(1, count):
        x = out[i]
        j = i - 1
        while j >= 0 and out[j] > x:
            out[j + 1] = out[j]
            j -= 1
        out[j + 1] = x
    return count


@njit(nogil=True, cache=True, inline="always")
def _find(parent: np.ndarray, x: int) -> int:
    while parent[x] != x:
        grand = parent[parent[x]]
        parent[x] = grand  # path halving
        x = grand
    return x


@njit(nogil=True, cache=True, inline="always")
def _edges_at(v: int, rank: np.ndarray, n: int, size: np.ndarray, stride: np.ndarray, out: np.ndarray) -> int:
    """Write the slots of the edges whose top vertex is ``v`` (its neighbours of lower rank), sorted increasing,
    into ``out``; return how many (0 to 6)."""
    rv = rank[v]
    count = 0
    for k in range(3):
        s = stride[k]
        c = (v // s) % size[k]
        if c > 0 and rank[v - s] < rv:
            out[count] = k * n + v - s
            count += 1
        if c + 1 < size[k] and rank[v + s] < rv:
            out[count] = k * n + v
            count += 1
    for i in range(1, count):
        x = out[i]
        j = i - 1
        while j >= 0 and out[j] > x:
            out[j + 1] = out[j]
            j -= 1
        out[j + 1] = x
    return count


@njit(nogil=True, cache=True)
def _h1_kernel(
    values: np.ndarray, order: np.ndarray, depth: int, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """The finite H1 pairs with ``birth < death`` of one flat volume ``values`` (``depth * height * width``) whose
    voxels sorted by value are ``order``: float64 births and deaths."""
    n = depth * height * width
    size = np.array([depth, height, width], dtype=np.int64)
    stride = np.array([height * width, width, 1], dtype=np.int64)
    three_n = 3 * n
    rank = np.empty(n, dtype=np.int64)
    for i in range(n):
        rank[order[i]] = i
    edges = np.empty(6, dtype=np.int64)

    # H0 by union-find in filtration order: the edges that join two components are cleared.
    cleared = np.zeros(three_n, dtype=np.bool_)
    parent = np.empty(n, dtype=np.int64)
    for i in range(n):
        v = order[i]
        parent[v] = v
        count = _edges_at(v, rank, n, size, stride, edges)
        for j in range(count):
            e = edges[j]
            k = e // n
            a = e - k * n
            ra = _find(parent, a)
            rb = _find(parent, a + stride[k])
            if ra != rb:
                # hook the root entered later onto the earlier one (any union is correct; this keeps trees shallow)
                if rank[ra] < rank[rb]:
                    parent[rb] = ra
                else:
                    parent[ra] = rb
                cleared[e] = True

    # H1 by reducing the coboundaries of the other edges, in decreasing filtration order.
    owner = np.full(three_n, -1, dtype=np.int64)  # square slot -> the edge slot whose reduced column has it as pivot
    start = np.full(three_n, -1, dtype=np.int64)  # edge slot -> offset of its stored reduced column in pool (or -1)
    length = np.zeros(three_n, dtype=np.int64)
    pool = np.empty(1024, dtype=np.int64)
    used = 0
    work = np.empty(64, dtype=np.int64)
    other = np.empty(64, dtype=np.int64)
    column = np.empty(4, dtype=np.int64)
    births = np.empty(256, dtype=np.float64)
    deaths = np.empty(256, dtype=np.float64)
    pairs = 0
    for i in range(n - 1, -1, -1):
        v = order[i]
        count = _edges_at(v, rank, n, size, stride, edges)
        for j in range(count - 1, -1, -1):
            e = edges[j]
            if cleared[e]:
                continue
            size_work = _coboundary(e, rank, n, size, stride, column)
            if size_work == 0:
                raise RuntimeError("h1_pairs: an edge without cofaces was not cleared (an essential H1 class).")
            pivot = column[0]
            slot = pivot % three_n
            if owner[slot] >= 0:
                # Reduce: add the column owning the pivot until the pivot is free.
                work = _grow(work, size_work)
                work[:size_work] = column[:size_work]
                while True:
                    o = owner[slot]
                    if start[o] >= 0:
                        add = pool[start[o] : start[o] + length[o]]
                    else:
                        c = _coboundary(o, rank, n, size, stride, column)
                        add = column[:c]
                    # symmetric difference of the sorted work and add, into other (both start with the pivot)
                    other = _grow(other, size_work + add.shape[0])
                    p = 1
                    q = 1
                    r = 0
                    while p < size_work and q < add.shape[0]:
                        x = work[p]
                        y = add[q]
                        if x < y:
                            other[r] = x
                            p += 1
                            r += 1
                        elif y < x:
                            other[r] = y
                            q += 1
                            r += 1
                        else:
                            p += 1
                            q += 1
                    while p < size_work:
                        other[r] = work[p]
                        p += 1
                        r += 1
                    while q < add.shape[0]:
                        other[r] = add[q]
                        q += 1
                        r += 1
                    work, other = other, work
                    size_work = r
                    if size_work == 0:
                        raise RuntimeError("h1_pairs: a coboundary column reduced to zero (an essential H1 class).")
                    pivot = work[0]
                    slot = pivot % three_n
                    if owner[slot] < 0:
                        break
                pool = _grow(pool, used + size_work)
                pool[used : used + size_work] = work[:size_work]
                start[e] = used
                length[e] = size_work
                used += size_work
            owner[slot] = e
            birth = values[v]
            death = values[order[pivot // three_n]]
            if birth < death:
                if pairs == births.shape[0]:
                    births = _grow(births, pairs + 1)
                    deaths = _grow(deaths, pairs + 1)
                births[pairs] = birth
                deaths[pairs] = death
                pairs += 1
    return births[:pairs].copy(), deaths[:pairs].copy()


def _require_numba() -> None:
    if not _HAVE_NUMBA:
        raise MissingDependencyError(
            "The H1 persistence diagram of 3-D volumes needs numba, which is not installed: "
            'pip install "lightning-topo[fast]".'
        )


def _one(volume: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Births and deaths of one C-contiguous float64 ``(D, H, W)`` volume."""
    depth, height, width = volume.shape
    flat = volume.reshape(-1)
    order = np.argsort(flat, kind="stable")
    return _h1_kernel(flat, order, depth, height, width)


def _check_values(values: object, ndim: int, name: str) -> np.ndarray:
    if not isinstance(values, np.ndarray):
        raise TypeError(f"`{name}` must be a numpy.ndarray, got {type(values).__name__}.")
    if values.ndim != ndim or any(s < 1 for s in values.shape):
        shape = "(B, D, H, W)" if ndim == 4 else "(D, H, W)"
        raise ValueError(f"`{name}` must have shape {shape} with every size >= 1, got {values.shape}.")
    if math.prod(values.shape[-3:]) > MAX_VOXELS:
        raise ValueError(
            f"`{name}`: volumes of {math.prod(values.shape[-3:])} voxels exceed the {MAX_VOXELS} the kernel indexes."
        )
    values = np.ascontiguousarray(values, dtype=np.float64)
    finite = np.isfinite(values.reshape(values.shape[0], -1) if ndim == 4 else values.reshape(1, -1)).all(axis=1)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise NonFiniteError(
            f"`{name}` holds NaN or Inf (volume {bad}): the filtration needs finite values; replace or drop them.",
            bad,
        )
    return values


def h1_pairs(volume: np.ndarray) -> np.ndarray:
    """The finite H1 persistence pairs of one volume's sublevel filtration (V-construction), as GUDHI's
    ``CubicalComplex(vertices=volume)`` gives them, zero-persistence pairs omitted.

    Args:
        volume: float ``(D, H, W)`` array (every size >= 1; converted to C-contiguous float64), finite.

    Returns:
        float64 ``(P, 2)``: ``[birth, death]`` per pair, ``birth < death``, in no particular order.

    Raises:
        MissingDependencyError: numba is not installed (``pip install "lightning-topo[fast]"``).
        TypeError: ``volume`` is not a numpy array.
        ValueError: ``volume`` is not 3-D or has an empty axis; :class:`NonFiniteError` if it holds NaN or Inf.

    Example:
        >>> ring = np.zeros((1, 3, 3)); ring[0, 1, 1] = 5.0
        >>> h1_pairs(ring).tolist()
        [[0.0, 5.0]]
    """
    _require_numba()
    volume = _check_values(volume, 3, "volume")
    births, deaths = _one(volume)
    return np.stack([births, deaths], axis=1)


_POOL: list = []  # [ThreadPoolExecutor, workers], created at the first batch run on more than one thread


def _pool(workers: int) -> ThreadPoolExecutor:
    if not _POOL or _POOL[1] < workers:
        if _POOL:
            _POOL[0].shutdown(wait=False)
        _POOL[:] = [ThreadPoolExecutor(workers, thread_name_prefix="lightning-topo-h1"), workers]
    return _POOL[0]


def h1_pairs_batch(values: np.ndarray, workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The finite H1 persistence pairs of every volume of a batch, as :func:`h1_pairs` gives them per volume.

    Args:
        values: float ``(B, D, H, W)`` array (every size >= 1; converted to C-contiguous float64), finite.
        workers: threads the volumes are spread over (the kernel releases the GIL); ``None``:
            :func:`numba.get_num_threads`, at most ``B``.

    Returns:
        ``(pairs, index)``: float64 ``(P, 2)`` ``[birth, death]`` with ``birth < death``, and int64 ``(P,)``: the
        volume each pair belongs to (volume 0's pairs first, then volume 1's, ...).

    Raises:
        MissingDependencyError: numba is not installed (``pip install "lightning-topo[fast]"``).
        TypeError: ``values`` is not a numpy array.
        ValueError: ``values`` is not 4-D or has an empty axis, or ``workers`` is not an integer >= 1;
            :class:`NonFiniteError` if a volume holds NaN or Inf.

    Example:
        >>> rings = np.zeros((2, 1, 3, 3)); rings[1, 0, 1, 1] = 5.0
        >>> pairs, index = h1_pairs_batch(rings, workers=1)
        >>> pairs.tolist(), index.tolist()
        ([[0.0, 5.0]], [1])
    """
    _require_numba()
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"`workers` must be an integer >= 1 or None, got {workers!r}.")
    values = _check_values(values, 4, "values")
    batch = values.shape[0]
    if workers is None:
        import numba

        workers = numba.get_num_threads()
    workers = min(workers, batch)
    if workers <= 1:
        results = [_one(v) for v in values]
    else:
        # Chunks of consecutive volumes per thread: each thread runs its own argsort and kernel without the GIL.
        bounds = np.linspace(0, batch, workers + 1).astype(np.int64).tolist()

        def chunk(lo: int, hi: int) -> list[tuple[np.ndarray, np.ndarray]]:
            return [_one(values[b]) for b in range(lo, hi)]

        futures = [_pool(workers).submit(chunk, lo, hi) for lo, hi in itertools.pairwise(bounds)]
        results = [r for f in futures for r in f.result()]
    counts = np.array([len(b) for b, _ in results], dtype=np.int64)
    pairs = np.empty((int(counts.sum()), 2), dtype=np.float64)
    if len(pairs):
        pairs[:, 0] = np.concatenate([b for b, _ in results])
        pairs[:, 1] = np.concatenate([d for _, d in results])
    index = np.repeat(np.arange(batch, dtype=np.int64), counts)
    return pairs, index
