"""Compiled kernels of :func:`lightning_topo.functional.cubical_persistence`: H0 and the top dimension by union-find.

Per volume (the voxels of a ``(D, H, W)`` volume, flat in raster order, as float64):

* **One order for both passes.** The voxels equal to the volume's minimum (with ReLU maps about half of them) come
  first, in raster order, unsorted: every merge among them happens at the minimum, so the order inside the plateau
  cannot change a diagram. The others are sorted by value with an LSD radix sort of order-preserving integer keys
  (:func:`_sort_rest`), whose passes over digits that are equal in every key are skipped: a float32 value stored
  as a float64 has 29 zero mantissa bits, so float32 data costs about five passes.
* **H0** (:func:`_h0_pass`): the voxels in increasing order; each joins its already-visited face neighbours (6 in
  3-D; size-1 axes leave 4 in 2-D and 2 in 1-D) by union-find with path halving. A set's root is its oldest voxel
  (the first visited), so its value is the set's birth; when two sets meet at value ``x`` the younger root (the one
  visited later: larger birth, ties by visit order) is hooked onto the elder and the pair ``(birth, x)`` is written
  unless ``birth == x`` (the elder rule).
* **The top dimension** (:func:`_dual_pass`), by Alexander duality: the H0 of the complement's *superlevel*
  filtration, 26-connected (8 in a plane), with one more node for the outside joined to every voxel on the
  boundary of the volume's non-degenerate axes and older than every voxel. The voxels in decreasing order; when two
  sets meet at value ``s`` the younger one (smaller maximum, ties by visit order) was a bounded component of
  ``{v > t}`` for ``s <= t < max``: a void (a 1-cycle in a plane) of the sublevel set ``{v <= t}``, the pair
  ``(s, max)``.

The kernels release the GIL (``nogil=True``): the caller runs chunks of a batch on a thread pool.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["MAX_VOXELS", "pairs_chunk"]

MAX_VOXELS = 2**31 - 2
"""Voxels per volume the int32 union-find arrays index (one more node for the outside)."""

_SIGN = np.uint64(1) << np.uint64(63)


@njit(nogil=True, cache=True, inline="always")
def _find(parent: np.ndarray, x: int) -> int:
    while parent[x] != x:
        grand = parent[parent[x]]
        parent[x] = grand  # path halving
        x = grand
    return x


@njit(nogil=True, cache=True)
def _sort_rest(keys: np.ndarray, idx: np.ndarray, tmp_keys: np.ndarray, tmp_idx: np.ndarray, m: int) -> None:
    """Sort ``idx[:m]`` by ``keys[:m]`` (uint64, order-preserving), in place: a stable LSD radix sort with 8-bit
    digits that skips the digits every key shares."""
    if m < 2:
        return
    first = keys[0]
    varying = np.uint64(0)
    for j in range(m):
        varying |= keys[j] ^ first
    counts = np.zeros(256, dtype=np.int64)
    src_k, src_i, dst_k, dst_i = keys, idx, tmp_keys, tmp_idx
    swapped = False
    for digit in range(8):
        shift = np.uint64(8 * digit)
        if ((varying >> shift) & np.uint64(255)) == 0:
            continue
        counts[:] = 0
        for j in range(m):
            counts[(src_k[j] >> shift) & np.uint64(255)] += 1
        total = 0
        for c in range(256):
            n = counts[c]
            counts[c] = total
            total += n
        for j in range(m):
            key = src_k[j]
            c = (key >> shift) & np.uint64(255)
            pos = counts[c]
            counts[c] = pos + 1
            dst_k[pos] = key
            dst_i[pos] = src_i[j]
        src_k, src_i, dst_k, dst_i = dst_k, dst_i, src_k, src_i
        swapped = not swapped
    if swapped:
        for j in range(m):
            idx[j] = src_i[j]


@njit(nogil=True, cache=True)
def _order(
    values: np.ndarray, vmin: float, order: np.ndarray, keys: np.ndarray, tmp_keys: np.ndarray, tmp_idx: np.ndarray
) -> None:
    """``order``: the voxels in increasing value; those equal to ``vmin`` first, in raster order."""
    n = values.size
    plateau = 0
    for i in range(n):
        if values[i] == vmin:
            plateau += 1
    p = 0
    r = 0
    rest = order[plateau:]
    ubits = values.view(np.uint64)
    for i in range(n):
        x = values[i]
        if x == vmin:
            order[p] = i
            p += 1
        else:
            bits = ubits[i]  # x != vmin, so x is not -0.0 == 0.0 == vmin ...
            if x == 0.0:
                bits = np.uint64(0)  # ... but a -0.0 among +0.0 is the same value: one key for both
            keys[r] = ~bits if bits & _SIGN else bits | _SIGN
            rest[r] = i
            r += 1
    _sort_rest(keys, rest, tmp_keys, tmp_idx, r)


@njit(nogil=True, cache=True)
def _h0_pass(
    values: np.ndarray,
    order: np.ndarray,
    depth: int,
    height: int,
    width: int,
    parent: np.ndarray,
    rank: np.ndarray,
    births: np.ndarray,
    deaths: np.ndarray,
) -> int:
    """The finite H0 pairs (``birth < death``) into ``births``/``deaths``; their number."""
    n = values.size
    plane = height * width
    for i in range(n):
        parent[i] = -1
    k = 0
    for step in range(n):
        v = order[step]
        x = values[v]
        parent[v] = v
        rank[v] = step
        root = v
        d = v // plane
        rem = v - d * plane
        h = rem // width
        w = rem - h * width
        for q in range(6):
            if q == 0:
                if d == 0:
                    continue
                nb = v - plane
            elif q == 1:
                if d + 1 >= depth:
                    continue
                nb = v + plane
            elif q == 2:
                if h == 0:
                    continue
                nb = v - width
            elif q == 3:
                if h + 1 >= height:
                    continue
                nb = v + width
            elif q == 4:
                if w == 0:
                    continue
                nb = v - 1
            else:
                if w + 1 >= width:
                    continue
                nb = v + 1
            if parent[nb] < 0:
                continue
            other = _find(parent, nb)
            if other == root:
                continue
            if rank[other] < rank[root]:
                young = root
                root = other
            else:
                young = other
            parent[young] = root
            birth = values[young]
            if birth < x:
                births[k] = birth
                deaths[k] = x
                k += 1
    return k


@njit(nogil=True, cache=True)
def _dual_pass(
    values: np.ndarray,
    order: np.ndarray,
    depth: int,
    height: int,
    width: int,
    parent: np.ndarray,
    rank: np.ndarray,
    births: np.ndarray,
    deaths: np.ndarray,
) -> int:
    """The finite pairs of the top dimension (``birth < death``) into ``births``/``deaths``; their number."""
    n = values.size
    plane = height * width
    outside = n
    for i in range(n):
        parent[i] = -1
    parent[outside] = outside
    rank[outside] = -1  # older than every voxel: never dies
    k = 0
    for step in range(n):
        v = order[n - 1 - step]
        x = values[v]
        parent[v] = v
        rank[v] = step
        root = v
        d = v // plane
        rem = v - d * plane
        h = rem // width
        w = rem - h * width
        for dd in range(-1, 2):
            if d + dd < 0 or d + dd >= depth:
                continue
            for dh in range(-1, 2):
                if h + dh < 0 or h + dh >= height:
                    continue
                for dw in range(-1, 2):
                    if w + dw < 0 or w + dw >= width:
                        continue
                    nb = v + dd * plane + dh * width + dw
                    if nb == v or parent[nb] < 0:
                        continue
                    other = _find(parent, nb)
                    if other == root:
                        continue
                    if rank[other] < rank[root]:
                        young = root
                        root = other
                    else:
                        young = other
                    parent[young] = root
                    top = values[young]
                    if x < top:
                        births[k] = x
                        deaths[k] = top
                        k += 1
        # The outside is older than every voxel, so it is always a root and never dies.
        if root != outside and (
            (depth > 1 and (d == 0 or d == depth - 1))
            or (height > 1 and (h == 0 or h == height - 1))
            or (width > 1 and (w == 0 or w == width - 1))
        ):
            parent[root] = outside
            top = values[root]
            if x < top:
                births[k] = x
                deaths[k] = top
                k += 1
    return k


@njit(nogil=True, cache=True)
def pairs_chunk(
    values: np.ndarray,
    depth: int,
    height: int,
    width: int,
    want_h0: bool,
    want_top: bool,
    top_dim: int,
    start: int,
    stop: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs of volumes ``start:stop`` of ``values`` ``(B, D*H*W)`` (float64, finite): float64 ``(P, 2)``
    ``[birth, death]``, int64 dims and int64 volume index; H0 (with its essential pair ``(min, inf)``) when
    ``want_h0``, and the pairs of the top dimension ``top_dim`` (the dual pass) when ``want_top``."""
    n = depth * height * width
    order = np.empty(n, dtype=np.int32)
    keys = np.empty(n, dtype=np.uint64)
    tmp_keys = np.empty(n, dtype=np.uint64)
    tmp_idx = np.empty(n, dtype=np.int32)
    parent = np.empty(n + 1, dtype=np.int32)
    rank = np.empty(n + 1, dtype=np.int32)
    births = np.empty(n, dtype=np.float64)
    deaths = np.empty(n, dtype=np.float64)
    cap = 1024
    out = np.empty((cap, 2), dtype=np.float64)
    out_dims = np.empty(cap, dtype=np.int64)
    out_index = np.empty(cap, dtype=np.int64)
    total = 0
    for b in range(start, stop):
        vol = values[b]
        vmin = vol[0]
        for i in range(n):
            if vol[i] < vmin:
                vmin = vol[i]
        _order(vol, vmin, order, keys, tmp_keys, tmp_idx)
        for dim in range(2):
            if dim == 0:
                if not want_h0:
                    continue
                k = _h0_pass(vol, order, depth, height, width, parent, rank, births, deaths)
                births[k] = vmin
                deaths[k] = np.inf
                k += 1
                label = 0
            else:
                if not want_top:
                    continue
                k = _dual_pass(vol, order, depth, height, width, parent, rank, births, deaths)
                label = top_dim
            if total + k > cap:
                while total + k > cap:
                    cap *= 2
                grown = np.empty((cap, 2), dtype=np.float64)
                grown[:total] = out[:total]
                out = grown
                grown_dims = np.empty(cap, dtype=np.int64)
                grown_dims[:total] = out_dims[:total]
                out_dims = grown_dims
                grown_index = np.empty(cap, dtype=np.int64)
                grown_index[:total] = out_index[:total]
                out_index = grown_index
            for j in range(k):
                out[total + j, 0] = births[j]
                out[total + j, 1] = deaths[j]
                out_dims[total + j] = label
                out_index[total + j] = b
            total += k
    return out[:total].copy(), out_dims[:total].copy(), out_index[:total].copy()
