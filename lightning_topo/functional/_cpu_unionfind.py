"""Connected components of a batch of 3-D masks on the CPU: one compiled union-find pass, no labels, no stacking.

Used by :func:`lightning_topo.functional.components.count_components` as the ``"numba"`` backend (the CPU default
when numba is installed: ``pip install lightning-topo[fast]``). The kernel is compiled by numba at first use
(``cache=True``: later processes load the machine code from ``__pycache__``) and releases the GIL, so the volumes
of a batch are counted in chunks on a thread pool of :func:`numba.get_num_threads` workers.

Per volume, one raster scan, as in the CUDA kernel (:mod:`lightning_topo.functional._cuda_unionfind`), but
sequential, so no atomics: every foreground voxel joins its foreground neighbours that come before it in raster
order (3 of the 6 face neighbours, or 13 of the 26) by union-find with path halving, the larger root hooked onto
the smaller. The number of components is the number of foreground voxels minus the number of successful unions,
so no pass over the roots is needed. Fewer neighbours are looked at when one is foreground: a voxel first joins
the set of a foreground neighbour ``a`` (a union, without a find) and then only the backward neighbours that are
not adjacent to ``a`` (those that are, are in ``a``'s set already, since every pair of adjacent foreground voxels
before the current one is). With 26-connectivity the voxel behind (``d - 1``) is adjacent to all 13, the one to
the left to all but 4, the one above to all but 3.

With ``bounded_only``, one extra node stands for the outside: every foreground voxel on the volume's boundary
joins it, and the outside's set is not counted (the components of a complement that touch the boundary are not
bounded; Alexander duality gives b2 from the others). The count formula stays "nodes minus unions", minus one.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

__all__ = ["count_chunk", "count_components_numba"]

MAX_VOXELS = 2**31 - 2
"""Voxels per volume the int32 parent array indexes (one more node for the outside)."""


@njit(nogil=True, cache=True, inline="always")
def _find(parent: np.ndarray, x: int) -> int:
    while parent[x] != x:
        grand = parent[parent[x]]
        parent[x] = grand  # path halving
        x = grand
    return x


@njit(nogil=True, cache=True, inline="always")
def _union(parent: np.ndarray, a: int, b: int) -> int:
    """Join the sets of ``a`` and ``b``; 1 if they were different sets, else 0."""
    a = _find(parent, a)
    b = _find(parent, b)
    if a == b:
        return 0
    if a < b:
        parent[b] = a
    else:
        parent[a] = b
    return 1


@njit(nogil=True, cache=True)
def _count6(m: np.ndarray, parent: np.ndarray, depth: int, height: int, width: int, bounded: bool) -> int:
    plane = height * width
    outside = depth * plane
    parent[outside] = outside
    nodes = 0
    unions = 0
    i = -1
    for d in range(depth):
        for h in range(height):
            for w in range(width):
                i += 1
                if not m[i]:
                    continue
                nodes += 1
                left = w > 0 and m[i - 1]
                up = h > 0 and m[i - width]
                back = d > 0 and m[i - plane]
                # Two foreground neighbours are in one set already when the voxel diagonal to both (the corner of
                # their square away from this voxel) is foreground: then no union is needed.
                if left:
                    parent[i] = parent[i - 1]
                    unions += 1
                    if up and not m[i - width - 1]:
                        unions += _union(parent, i, i - width)
                    if back and not m[i - plane - 1] and not (up and m[i - plane - width]):
                        unions += _union(parent, i, i - plane)
                elif up:
                    parent[i] = parent[i - width]
                    unions += 1
                    if back and not m[i - plane - width]:
                        unions += _union(parent, i, i - plane)
                elif back:
                    parent[i] = parent[i - plane]
                    unions += 1
                else:
                    parent[i] = i
                if bounded and (d == 0 or h == 0 or w == 0 or d == depth - 1 or h == height - 1 or w == width - 1):
                    unions += _union(parent, i, outside)
    return nodes - unions


@njit(nogil=True, cache=True)
def _count26(m: np.ndarray, parent: np.ndarray, depth: int, height: int, width: int, bounded: bool) -> int:
    plane = height * width
    outside = depth * plane
    parent[outside] = outside
    nodes = 0
    unions = 0
    i = -1
    for d in range(depth):
        for h in range(height):
            for w in range(width):
                i += 1
                if not m[i]:
                    continue
                nodes += 1
                if d > 0 and m[i - plane]:
                    # Behind: adjacent to all 13 backward neighbours, which are in its set already.
                    parent[i] = parent[i - plane]
                    unions += 1
                elif w > 0 and m[i - 1]:
                    # Left: adjacent to all backward neighbours but the four at w + 1.
                    parent[i] = parent[i - 1]
                    unions += 1
                    if w + 1 < width:
                        if h > 0 and m[i - width + 1]:
                            unions += _union(parent, i, i - width + 1)
                        if d > 0:
                            for dh in range(-1, 2):
                                if 0 <= h + dh < height and m[i - plane + dh * width + 1]:
                                    unions += _union(parent, i, i - plane + dh * width + 1)
                elif h > 0 and m[i - width]:
                    # Above: adjacent to all backward neighbours but the three at h + 1 behind.
                    parent[i] = parent[i - width]
                    unions += 1
                    if d > 0 and h + 1 < height:
                        for dw in range(-1, 2):
                            if 0 <= w + dw < width and m[i - plane + width + dw]:
                                unions += _union(parent, i, i - plane + width + dw)
                else:
                    parent[i] = i
                    # The remaining backward neighbours: (h - 1, w +- 1) in this plane, the 8 behind but (h, w).
                    if h > 0:
                        if w > 0 and m[i - width - 1]:
                            unions += _union(parent, i, i - width - 1)
                        if w + 1 < width and m[i - width + 1]:
                            unions += _union(parent, i, i - width + 1)
                    if d > 0:
                        for dh in range(-1, 2):
                            if 0 <= h + dh < height:
                                for dw in range(-1, 2):
                                    if 0 <= w + dw < width and m[i - plane + dh * width + dw]:
                                        unions += _union(parent, i, i - plane + dh * width + dw)
                if bounded and (d == 0 or h == 0 or w == 0 or d == depth - 1 or h == height - 1 or w == width - 1):
                    unions += _union(parent, i, outside)
    return nodes - unions


@njit(nogil=True, cache=True)
def count_chunk(
    masks: np.ndarray,
    depth: int,
    height: int,
    width: int,
    connectivity: int,
    bounded: bool,
    start: int,
    stop: int,
    out: np.ndarray,
) -> None:
    """Count the components of the volumes ``start:stop`` of ``masks`` ``(B, D*H*W)`` (uint8) into ``out``."""
    parent = np.empty(depth * height * width + 1, dtype=np.int32)
    for b in range(start, stop):
        if connectivity == 6:
            out[b] = _count6(masks[b], parent, depth, height, width, bounded)
        else:
            out[b] = _count26(masks[b], parent, depth, height, width, bounded)


_POOL: list = []  # [ThreadPoolExecutor, workers], created at the first batch counted on more than one thread


def _pool(workers: int) -> ThreadPoolExecutor:
    if not _POOL or _POOL[1] < workers:
        if _POOL:
            _POOL[0].shutdown(wait=False)
        _POOL[:] = [ThreadPoolExecutor(workers, thread_name_prefix="lightning-topo-uf"), workers]
    return _POOL[0]


def count_components_numba(masks: np.ndarray, connectivity: int, bounded_only: bool) -> np.ndarray:
    """The number of components (``bounded_only``: bounded components) of each volume of a bool or uint8 array
    ``(B, D, H, W)``, as int64 ``(B,)``. Chunks of the batch run on :func:`numba.get_num_threads` threads."""
    import numba

    batch, depth, height, width = masks.shape
    if depth * height * width > MAX_VOXELS:
        raise ValueError(f"count_components_numba: volumes of {depth * height * width} voxels exceed {MAX_VOXELS}.")
    flat = np.ascontiguousarray(masks).view(np.uint8).reshape(batch, -1)
    out = np.zeros(batch, dtype=np.int64)
    workers = min(batch, numba.get_num_threads())
    if workers <= 1:
        count_chunk(flat, depth, height, width, connectivity, bounded_only, 0, batch, out)
        return out
    bounds = np.linspace(0, batch, workers + 1).astype(np.int64)
    futures = [
        _pool(workers).submit(count_chunk, flat, depth, height, width, connectivity, bounded_only, lo, hi, out)
        for lo, hi in itertools.pairwise(bounds.tolist())
    ]
    for future in futures:
        future.result()
    return out
