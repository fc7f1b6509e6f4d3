"""The H1 persistence pairs of 3-D cubical volumes: a compiled coboundary reduction with clearing.

Used by :func:`lightning_topo.functional.persistence.cubical_persistence` for the H1 diagram of genuinely 3-D
volumes (H0 and the top dimension have union-find shortcuts; H1 in 3-D has none). The filtration is the sublevel
filtration of the V-construction: the voxels are the vertices and an edge, square or cube enters at the largest
value of its corner voxels, exactly GUDHI's ``CubicalComplex(vertices=volume)`` and cripser's ``computePH``.

The algorithm (persistent cohomology with clearing and apparent pairs, the scheme of Ripser and CubicalRipser,
written anew):

* **A total order.** The voxels are ranked by value (a radix sort, :func:`_value_order`), ties in raster order
  (but see *Ties*). A cell is ordered by the rank of its highest corner, then the rank of its second-highest
  corner, then dimension, then a fixed slot index (a lexicographic refinement of the lower-star order). Faces come
  before cofaces and the order refines the values, so the pairs with ``birth < death`` are GUDHI's. The second
  rank matters for speed only: on a ResNet feature map it made 4x fewer columns need a reduction than ordering by
  the highest corner alone.
* **Clearing.** One union-find pass over the edges in that order marks the edges that join two components (the
  H0 deaths): their coboundary columns reduce to zero, so they are skipped. With the elder rule the same pass
  gives the H0 pairs, which :func:`~lightning_topo.functional.cubical_persistence` takes from it with H1. The
  pass visits voxels, not edges (:func:`_h0_clearing`): at a voxel with one earlier neighbour, or all of them in one
  set, only the edge to the earliest one joins anything, so most voxels are hooked without sorting their edges or
  finding each neighbour's root (1.1-1.3x on the whole kernel for ResNet18 maps).
* **Apparent pairs.** One pass in memory order pairs every edge ``e`` whose earliest coface ``s`` has ``e`` as its
  latest face (about 85 % of the other edges of a feature map, the whole ReLU plateau of exact zeros among them):
  such pairs are persistence pairs (of zero persistence: both enter at the value of ``e``'s top corner), and
  ``e``'s column is never stored (it is recomputed from the volume). The test reads each rank once
  (:func:`_apparent_coface`).
* **Reduction.** The remaining edges are sorted and visited in decreasing order; the coboundary of an edge (at most
  four squares) is reduced modulo 2 by adding the column that owns its pivot (its earliest square) until the pivot
  is free. Only columns that needed additions are stored, in one growing pool.
* **Ties.** Voxels of equal value may enter in any order (only pairs with ``birth == death`` change). Raster order
  suits most feature maps, but on the large plateau of exact zeros of a ReLU over a smooth field it makes cocycles
  that span the plateau and a reduction 10-15x costlier. So the reduction runs under a work budget
  (:data:`WORK_BUDGET` entries read per voxel, 2-5x what ResNet feature maps need) and past it starts again with
  the plateau scattered in 4x4x4 bricks (:func:`_scatter_plateau`).

Slots: an edge is ``3 * anchor + direction`` and a square ``3 * anchor + normal`` (the anchor is its lowest-index
voxel), so the cells of one voxel share cache lines. In a box H1 has no essential class: a column that reduces to
zero is a bug, raised as :class:`RuntimeError`.

The kernel is compiled by numba (``pip install "lightning-topo[fast]"``) at first use, cached on disk, and releases
the GIL: the volumes of a batch run on a thread pool.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from lightning_topo.functional._checks import MissingDependencyError, NonFiniteError
from lightning_topo.functional._threads import cpu_workers, start_jobs

try:
    from numba import njit
except ImportError:  # pragma: no cover - exercised where numba is absent; the functions then raise
    _HAVE_NUMBA = False

    def njit(*args: Any, **kwargs: Any) -> Any:
        """Stand-in for ``numba.njit`` when numba is absent (the kernels are never run then)."""
        return lambda func: func

else:
    _HAVE_NUMBA = True
    from lightning_topo.functional._persistence_kernels import _sort_rest, sort_key

__all__ = ["h1_pairs", "h1_pairs_batch"]

MAX_VOXELS = (2**31 - 1) // 3
"""Voxels per volume the kernel indexes (the int32 owner array holds edge slots ``3 * voxel + direction``)."""


@njit(nogil=True, cache=True, inline="always")
def _grow(buf: np.ndarray, need: int) -> np.ndarray:
    """``buf``, or a copy at least twice as long when it holds fewer than ``need`` entries."""
    if need <= buf.shape[0]:
        return buf
    out = np.empty(max(need, 2 * buf.shape[0]), dtype=buf.dtype)
    out[: buf.shape[0]] = buf
    return out


@njit(nogil=True, cache=True, inline="always")
def _square_key(p: int, q: int, r: int, t: int, n: int) -> int:
    """``rank(top corner) * n + rank(second corner)`` of a square whose corner ranks are ``p, q, r, t``."""
    pq_hi = max(p, q)
    rt_hi = max(r, t)
    second = max(min(pq_hi, rt_hi), max(min(p, q), min(r, t)))
    return max(pq_hi, rt_hi) * n + second


@njit(nogil=True, cache=True, inline="always")
def _coboundary(
    edge: int, rank: np.ndarray, flags: np.ndarray, stride: np.ndarray, n: int, keys: np.ndarray, slots: np.ndarray
) -> int:
    """Write the squares containing edge slot ``edge`` (``3 * anchor + direction``), sorted by filtration order, into
    ``keys`` (``rank(top) * n + rank(second)``) and ``slots`` (``3 * anchor + normal``); return how many (0 to 4)."""
    a = edge // 3
    k = edge - 3 * a
    b = a + stride[k]
    ra = rank[a]
    rb = rank[b]
    f = flags[a]
    count = 0
    for o in range(3):
        if o == k:
            continue
        m = 3 - k - o  # the square of normal o is spanned by directions k and m
        s = stride[m]
        if f & (2 << (2 * m)):  # a has a neighbour at +m
            keys[count] = _square_key(ra, rb, rank[a + s], rank[b + s], n)
            slots[count] = 3 * a + o
            count += 1
        if f & (1 << (2 * m)):  # a has a neighbour at -m
            keys[count] = _square_key(ra, rb, rank[a - s], rank[b - s], n)
            slots[count] = 3 * (a - s) + o
            count += 1
    for i in range(1, count):  # insertion sort by (key, slot) of at most four squares
        x = keys[i]
        y = slots[i]
        j = i - 1
        while j >= 0 and (keys[j] > x or (keys[j] == x and slots[j] > y)):
            keys[j + 1] = keys[j]
            slots[j + 1] = slots[j]
            j -= 1
        keys[j + 1] = x
        slots[j + 1] = y
    return count


@njit(nogil=True, cache=True, inline="always")
def _apparent_coface(edge: int, rank: np.ndarray, flags: np.ndarray, stride: np.ndarray, n: int) -> tuple[int, bool]:
    """The slot of the earliest square containing edge slot ``edge`` (by key, then slot, as :func:`_coboundary`
    sorts them; -1 when there is none), and whether ``edge`` is that square's latest face (an apparent pair), from
    the ranks read once: the latest face of a square is one of the two edges at its top corner, the one whose other
    end ranks higher. So ``edge = (a, b)`` is it when the square's top is ``a`` or ``b`` and the square's other
    neighbour of that top ranks below the edge's other end. (Birth and death are both the top's value: no pair.)"""
    a = edge // 3
    k = edge - 3 * a
    b = a + stride[k]
    ra = rank[a]
    rb = rank[b]
    f = flags[a]
    best_key = -1
    best_slot = -1
    best_c = 0
    best_d = 0
    for o in range(3):
        if o == k:
            continue
        m = 3 - k - o
        s = stride[m]
        if f & (2 << (2 * m)):
            rc = rank[a + s]
            rd = rank[b + s]
            key = _square_key(ra, rb, rc, rd, n)
            slot = 3 * a + o
            if best_key < 0 or key < best_key or (key == best_key and slot < best_slot):
                best_key = key
                best_slot = slot
                best_c = rc
                best_d = rd
        if f & (1 << (2 * m)):
            rc = rank[a - s]
            rd = rank[b - s]
            key = _square_key(ra, rb, rc, rd, n)
            slot = 3 * (a - s) + o
            if best_key < 0 or key < best_key or (key == best_key and slot < best_slot):
                best_key = key
                best_slot = slot
                best_c = rc
                best_d = rd
    if best_slot < 0:
        return -1, False
    if ra > rb:  # a is the edge's top: the square's top too, and its other edge at a ends lower than b
        return best_slot, best_c < ra and best_d < ra and best_c < rb
    return best_slot, best_c < rb and best_d < rb and best_d < ra


@njit(nogil=True, cache=True, inline="always")
def _edge_key(p: int, q: int, n: int) -> int:
    """``rank(top end) * n + rank(lower end)`` of an edge whose end ranks are ``p, q``."""
    return max(p, q) * n + min(p, q)


@njit(nogil=True, cache=True, inline="always")
def _find(parent: np.ndarray, x: int) -> int:
    while parent[x] != x:
        grand = parent[parent[x]]
        parent[x] = grand  # path halving
        x = grand
    return x


@njit(nogil=True, cache=True, inline="always")
def _edges_at(
    v: int,
    rank: np.ndarray,
    flags: np.ndarray,
    stride: np.ndarray,
    slots: np.ndarray,
    lower: np.ndarray,
    ends: np.ndarray,
) -> int:
    """Write the edges whose top vertex is ``v`` (to its neighbours of lower rank) into ``slots``, sorted by the rank
    of the other end (their filtration order), which goes into ``lower``, and that end into ``ends``; return how
    many (0 to 6)."""
    rv = rank[v]
    f = flags[v]
    count = 0
    for k in range(3):
        s = stride[k]
        if f & (1 << (2 * k)):
            r = rank[v - s]
            if r < rv:
                slots[count] = 3 * (v - s) + k
                lower[count] = r
                ends[count] = v - s
                count += 1
        if f & (2 << (2 * k)):
            r = rank[v + s]
            if r < rv:
                slots[count] = 3 * v + k
                lower[count] = r
                ends[count] = v + s
                count += 1
    for i in range(1, count):
        x = slots[i]
        y = lower[i]
        z = ends[i]
        j = i - 1
        while j >= 0 and lower[j] > y:
            slots[j + 1] = slots[j]
            lower[j + 1] = lower[j]
            ends[j + 1] = ends[j]
            j -= 1
        slots[j + 1] = x
        lower[j + 1] = y
        ends[j + 1] = z
    return count


@njit(nogil=True, cache=True)
def _h0_clearing(
    order: np.ndarray,
    rank: np.ndarray,
    flags: np.ndarray,
    stride: np.ndarray,
    ordered: np.ndarray,
    state: np.ndarray,
    want_h0: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """H0 by union-find in the filtration order: marks ``state[e] = 1`` for the edges ``e`` that join two components
    (the H0 deaths, whose H1 columns are cleared), and with ``want_h0`` returns the finite H0 pairs with
    ``birth < death`` (births, deaths; empty arrays without).

    At voxel ``v`` (step ``i``) the edges to its earlier face neighbours enter in the rank order of those neighbours,
    so the edge that joins each set met there is the one to that set's earliest neighbour of ``v``. A root is its
    set's eldest voxel (the younger root is hooked onto the elder): the merges are the H0 pairs (the elder rule),
    ``(value of the younger root, value of v)``. Most voxels take a shortcut: with one earlier neighbour, or all of
    them in one set (found within two parent hops, else by finds), only the edge to the earliest neighbour joins
    anything (it ends ``v``'s own class: no pair), and ``v`` is hooked without sorting its edges."""
    n = order.size
    sd = stride[0]
    sh = stride[1]
    sw = stride[2]
    parent = np.empty(n, dtype=np.int32)
    h0_births = np.empty(256 if want_h0 else 0, dtype=np.float64)
    h0_deaths = np.empty(256 if want_h0 else 0, dtype=np.float64)
    h0 = 0
    edges = np.empty(6, dtype=np.int64)
    lower = np.empty(6, dtype=np.int64)
    ends = np.empty(6, dtype=np.int64)
    for i in range(n):
        v = order[i]
        f = flags[v]
        # the ranks of the six face neighbours (n where there is none: never earlier)
        r0 = rank[v - sd] if f & 1 else n
        r1 = rank[v + sd] if f & 2 else n
        r2 = rank[v - sh] if f & 4 else n
        r3 = rank[v + sh] if f & 8 else n
        r4 = rank[v - sw] if f & 16 else n
        r5 = rank[v + sw] if f & 32 else n
        earlier = int(r0 < i) + int(r1 < i) + int(r2 < i) + int(r3 < i) + int(r4 < i) + int(r5 < i)
        if earlier == 0:  # a local minimum: a new set
            parent[v] = v
            continue
        first = min(min(min(r0, r1), min(r2, r3)), min(r4, r5))
        # the earliest neighbour u and the edge (v, u): slot 3 * (its lower-index end) + direction
        if first == r0:
            u = v - sd
            e = 3 * u
        elif first == r1:
            u = v + sd
            e = 3 * v
        elif first == r2:
            u = v - sh
            e = 3 * u + 1
        elif first == r3:
            u = v + sh
            e = 3 * v + 1
        elif first == r4:
            u = v - sw
            e = 3 * u + 2
        else:
            u = v + sw
            e = 3 * v + 2
        if earlier == 1:  # v joins u's set
            parent[v] = u
            state[e] = 1
            continue
        # v's earlier neighbours all in u's set? Their roots within two parent hops first, then by finds.
        g = parent[parent[u]]
        if parent[g] == g and not (
            (r0 < i and parent[parent[v - sd]] != g)
            or (r1 < i and parent[parent[v + sd]] != g)
            or (r2 < i and parent[parent[v - sh]] != g)
            or (r3 < i and parent[parent[v + sh]] != g)
            or (r4 < i and parent[parent[v - sw]] != g)
            or (r5 < i and parent[parent[v + sw]] != g)
        ):
            parent[v] = g
            state[e] = 1
            continue
        root = _find(parent, u)
        if not (
            (r0 < i and _find(parent, v - sd) != root)
            or (r1 < i and _find(parent, v + sd) != root)
            or (r2 < i and _find(parent, v - sh) != root)
            or (r3 < i and _find(parent, v + sh) != root)
            or (r4 < i and _find(parent, v - sw) != root)
            or (r5 < i and _find(parent, v + sw) != root)
        ):
            parent[v] = root
            state[e] = 1
            continue
        # Several sets meet at v: its edges in filtration order, the elder rule
        parent[v] = v
        root = v  # the root of v's set: v is the youngest voxel yet, so each merge it takes part in keeps the other
        root_rank = i
        count = _edges_at(v, rank, flags, stride, edges, lower, ends)
        for j in range(count):
            other = _find(parent, ends[j])
            if other == root:
                continue
            other_rank = rank[other]
            if other_rank < root_rank:  # hook the younger root onto the older
                young = root
                root = other
                root_rank = other_rank
            else:
                young = other
            parent[young] = root
            state[edges[j]] = 1
            if want_h0 and young != v:  # v itself was born now: no pair
                birth = ordered[rank[young]]
                if birth < ordered[i]:
                    if h0 == h0_births.shape[0]:
                        h0_births = _grow(h0_births, h0 + 1)
                        h0_deaths = _grow(h0_deaths, h0 + 1)
                    h0_births[h0] = birth
                    h0_deaths[h0] = ordered[i]
                    h0 += 1
    return h0_births[:h0].copy(), h0_deaths[:h0].copy()


@njit(nogil=True, cache=True)
def _h1_kernel(
    values: np.ndarray, order: np.ndarray, depth: int, height: int, width: int, want_h0: bool, budget: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    """The finite H1 pairs with ``birth < death`` of one flat volume ``values`` (``depth * height * width``) whose
    voxels sorted by value are ``order`` (ties in any order): float64 births and deaths; with ``want_h0`` the finite
    H0 pairs with ``birth < death`` (births, deaths; empty arrays without); and ``True``. Or, when the column
    additions read more than ``budget`` entries (``budget >= 0``), empty arrays and ``False`` (see :func:`_one`)."""
    n = depth * height * width
    stride = np.array([height * width, width, 1], dtype=np.int64)
    rank = np.empty(n, dtype=np.int32)
    ordered = np.empty(n, dtype=np.float64)  # values in filtration order: ordered[r] is the value of rank r
    for i in range(n):
        rank[order[i]] = i
        ordered[i] = values[order[i]]
    # flags[v]: bit 2k set when v has a neighbour at -k, bit 2k + 1 when it has one at +k
    flags = np.empty(n, dtype=np.uint8)
    i = 0
    for d in range(depth):
        fd = (1 if d > 0 else 0) | (2 if d + 1 < depth else 0)
        for h in range(height):
            fh = fd | (4 if h > 0 else 0) | (8 if h + 1 < height else 0)
            for w in range(width):
                flags[i] = fh | (16 if w > 0 else 0) | (32 if w + 1 < width else 0)
                i += 1
    # The filtration: a cell's key is (rank of its top vertex, rank of its second vertex), then dimension, then slot
    # (a lexicographic refinement of the lower-star order; it makes most pairs apparent). H0 by union-find in that
    # order: the edges that join two components die in H0, and their H1 columns are cleared.
    state = np.zeros(3 * n, dtype=np.uint8)  # 1: cleared (an H0 death), 2: in an apparent pair
    h0_births, h0_deaths = _h0_clearing(order, rank, flags, stride, ordered, state, want_h0)

    # Apparent pairs, found locally in memory order: (e, s) with s the earliest coface of e and e the latest face of
    # s are persistence pairs, and e's column is not stored (it is recomputed from the volume when needed).
    owner = np.full(3 * n, -1, dtype=np.int32)  # square slot -> the column with that pivot: edge slot, or -2 - stored
    births = np.empty(256, dtype=np.float64)
    deaths = np.empty(256, dtype=np.float64)
    pairs = 0
    keys = np.empty(64, dtype=np.int64)  # a coboundary, sorted by (key, slot)
    slots = np.empty(64, dtype=np.int64)
    todo_keys = np.empty(1024, dtype=np.int64)  # the other edges: keys and slots, sorted below
    todo_edges = np.empty(1024, dtype=np.int64)
    todo = 0
    for v in range(n):
        f = flags[v]
        for k in range(3):
            if not f & (2 << (2 * k)):
                continue
            e = 3 * v + k
            if state[e]:
                continue
            first, apparent = _apparent_coface(e, rank, flags, stride, n)
            if apparent:  # a pair of zero persistence: nothing to write
                state[e] = 2
                owner[first] = e
            else:
                if todo == todo_keys.shape[0]:
                    todo_keys = _grow(todo_keys, todo + 1)
                    todo_edges = _grow(todo_edges, todo + 1)
                todo_keys[todo] = _edge_key(rank[v], rank[v + stride[k]], n)
                todo_edges[todo] = e
                todo += 1

    # The other edges, sorted by filtration order (their keys are distinct and >= 0: a radix sort).
    todo_order = np.arange(todo).astype(np.int32)
    _sort_rest(todo_keys[:todo].view(np.uint64), todo_order, np.empty(todo, np.uint64), np.empty(todo, np.int32), todo)
    todo_edges = todo_edges[todo_order]

    # Reduce their coboundaries in decreasing filtration order. The working column is kept in *decreasing* order,
    # its pivot last: the pivot cancels by a decrement, and a short column added (an apparent one, at most 3 entries
    # past its pivot) is inserted entry by entry from the end, where its entries mostly land (on ResNet maps about
    # 12 of 50 entries are below one), instead of merging the whole column.
    colptr = np.zeros(64, dtype=np.int64)  # stored column c is pool_*[colptr[c]:colptr[c + 1]] (increasing)
    stored = 0
    pool_keys = np.empty(1024, dtype=np.int64)
    pool_slots = np.empty(1024, dtype=np.int64)
    wk = np.empty(64, dtype=np.int64)  # the working column, decreasing by (key, slot)
    ws = np.empty(64, dtype=np.int64)
    wk2 = np.empty(64, dtype=np.int64)
    ws2 = np.empty(64, dtype=np.int64)
    add_keys = np.empty(4, dtype=np.int64)
    add_slots = np.empty(4, dtype=np.int64)
    work = 0  # entries read by the column additions, against the budget
    for t in range(todo - 1, -1, -1):
        e = todo_edges[t]
        size = _coboundary(e, rank, flags, stride, n, keys, slots)
        if size == 0:
            raise RuntimeError("h1_pairs: an edge without cofaces was not cleared (an essential H1 class).")
        pivot = slots[0]
        death_key = keys[0]
        if owner[pivot] != -1:
            # Reduce: add the column owning the pivot until the pivot is free.
            for i in range(size):
                wk[i] = keys[size - 1 - i]
                ws[i] = slots[size - 1 - i]
            while True:
                o = owner[pivot]
                if o >= 0:  # an apparent column, recomputed from the volume
                    src_keys = add_keys
                    src_slots = add_slots
                    lo = 0
                    hi = _coboundary(o, rank, flags, stride, n, add_keys, add_slots)
                else:
                    src_keys = pool_keys
                    src_slots = pool_slots
                    lo = colptr[-2 - o]
                    hi = colptr[-1 - o]
                work += size + hi - lo
                if budget >= 0 and work > budget:
                    return births[:0].copy(), deaths[:0].copy(), h0_births[:0].copy(), h0_deaths[:0].copy(), False
                if wk.shape[0] < size + hi - lo:
                    wk = _grow(wk, size + hi - lo)
                    ws = _grow(ws, size + hi - lo)
                size -= 1  # both columns start with the pivot: it cancels
                if hi - lo <= 8:
                    for q in range(lo + 1, hi):  # insert, or cancel, each entry, looking from the end
                        y = src_keys[q]
                        z = src_slots[q]
                        i = size - 1
                        while i >= 0 and (wk[i] < y or (wk[i] == y and ws[i] < z)):
                            i -= 1
                        if i >= 0 and wk[i] == y and ws[i] == z:
                            for j in range(i, size - 1):
                                wk[j] = wk[j + 1]
                                ws[j] = ws[j + 1]
                            size -= 1
                        else:
                            for j in range(size, i + 1, -1):
                                wk[j] = wk[j - 1]
                                ws[j] = ws[j - 1]
                            wk[i + 1] = y
                            ws[i + 1] = z
                            size += 1
                else:
                    # symmetric difference of the two columns, both walked from their largest entry, into wk2
                    if wk2.shape[0] < wk.shape[0]:
                        wk2 = np.empty(wk.shape[0], dtype=np.int64)
                        ws2 = np.empty(wk.shape[0], dtype=np.int64)
                    p = 0
                    q = hi - 1
                    r = 0
                    while p < size and q > lo:
                        x = wk[p]
                        y = src_keys[q]
                        if x > y or (x == y and ws[p] > src_slots[q]):
                            wk2[r] = x
                            ws2[r] = ws[p]
                            p += 1
                            r += 1
                        elif x < y or ws[p] < src_slots[q]:
                            wk2[r] = y
                            ws2[r] = src_slots[q]
                            q -= 1
                            r += 1
                        else:
                            p += 1
                            q -= 1
                    while p < size:
                        wk2[r] = wk[p]
                        ws2[r] = ws[p]
                        p += 1
                        r += 1
                    while q > lo:
                        wk2[r] = src_keys[q]
                        ws2[r] = src_slots[q]
                        q -= 1
                        r += 1
                    wk, wk2 = wk2, wk
                    ws, ws2 = ws2, ws
                    size = r
                if size == 0:
                    raise RuntimeError("h1_pairs: a coboundary column reduced to zero (an essential H1 class).")
                pivot = ws[size - 1]
                if owner[pivot] == -1:
                    break
            # store the reduced column (it was not the coboundary of one edge), increasing
            base = colptr[stored]
            if pool_keys.shape[0] < base + size:
                pool_keys = _grow(pool_keys, base + size)
                pool_slots = _grow(pool_slots, base + size)
            for i in range(size):
                pool_keys[base + i] = wk[size - 1 - i]
                pool_slots[base + i] = ws[size - 1 - i]
            if colptr.shape[0] < stored + 2:
                colptr = _grow(colptr, stored + 2)
            colptr[stored + 1] = base + size
            owner[pivot] = -2 - stored
            stored += 1
            death_key = wk[size - 1]
        else:
            owner[pivot] = e
        a = e // 3
        birth = values[a] if rank[a] > rank[a + stride[e - 3 * a]] else values[a + stride[e - 3 * a]]
        death = ordered[death_key // n]
        if birth < death:
            if pairs == births.shape[0]:
                births = _grow(births, pairs + 1)
                deaths = _grow(deaths, pairs + 1)
            births[pairs] = birth
            deaths[pairs] = death
            pairs += 1
    return births[:pairs].copy(), deaths[:pairs].copy(), h0_births, h0_deaths, True


def _require_numba() -> None:
    if not _HAVE_NUMBA:
        raise MissingDependencyError(
            "The H1 persistence diagram of 3-D volumes needs numba, which is not installed: "
            'pip install "lightning-topo[fast]".'
        )


@njit(nogil=True, cache=True)
def _value_order(values: np.ndarray) -> np.ndarray:
    """The indices of ``values`` (flat, finite float64) sorted by value, ties in index order: ``np.argsort(values,
    kind="stable")``, by a radix sort of order-preserving integer keys (-0.0 and 0.0 share one key)."""
    n = values.size
    bits = values.view(np.uint64)
    keys = np.empty(n, dtype=np.uint64)
    for i in range(n):
        keys[i] = sort_key(values[i], bits[i])
    order = np.arange(n).astype(np.int32)
    _sort_rest(keys, order, np.empty(n, dtype=np.uint64), np.empty(n, dtype=np.int32), n)
    return order


@njit(nogil=True, cache=True)
def _scatter_plateau(values: np.ndarray, order: np.ndarray, depth: int, height: int, width: int) -> np.ndarray:
    """``order`` (voxels by value) with the voxels equal to the minimum, which come first, reordered: 4x4x4 bricks
    in a fixed pseudo-random order (a hash of the brick's index), raster order inside a brick."""
    vmin = values[order[0]]
    m = 0
    while m < order.size and values[order[m]] == vmin:
        m += 1
    bh = (height + 3) // 4
    bw = (width + 3) // 4
    keys = np.empty(m, dtype=np.uint64)
    for j in range(m):
        v = order[j]
        d = v // (height * width)
        h = (v // width) % height
        w = v % width
        # splitmix64's finaliser of the brick's index: a bijection of 64-bit words, so the top 58 bits of bricks'
        # hashes differ but for a chance collision (then the bricks' voxels interleave: still a valid order)
        z = np.uint64(((d >> 2) * bh + (h >> 2)) * bw + (w >> 2)) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
        keys[j] = (z & ~np.uint64(63)) | np.uint64((d & 3) << 4 | (h & 3) << 2 | (w & 3))
    out = order.copy()
    head = out[:m]
    _sort_rest(keys, head, np.empty(m, dtype=np.uint64), np.empty(m, dtype=np.int32), m)
    return out


WORK_BUDGET = 100
"""Entries the column additions of :func:`_h1_kernel` may read per voxel before :func:`_one` starts again with the
minimum's plateau reordered (:func:`_scatter_plateau`)."""


def _one(
    volume: np.ndarray, want_h0: bool = False, budget: int = WORK_BUDGET
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """H1 births and deaths of one C-contiguous float64 ``(D, H, W)`` volume, and with ``want_h0`` its finite H0
    births and deaths (empty arrays without).

    The voxels equal to one value may enter in any order: only pairs with ``birth == death`` depend on it. Ties by
    raster order keep memory access local and suit most feature maps, but on large smooth plateaus (the exact zeros
    of a ReLU over a smooth field) they make cocycles that span the plateau, and the reduction 10-15x costlier than
    with the plateau scattered in bricks. So the reduction runs with raster ties under a budget of ``budget`` entries
    read per voxel (``< 0``: none), and past it starts again with the plateau scattered (no budget then)."""
    depth, height, width = volume.shape
    flat = volume.reshape(-1)
    order = _value_order(flat)
    *found, complete = _h1_kernel(flat, order, depth, height, width, want_h0, budget * flat.size if budget >= 0 else -1)
    if not complete:
        order = _scatter_plateau(flat, order, depth, height, width)
        *found, complete = _h1_kernel(flat, order, depth, height, width, want_h0, -1)
    return tuple(found)


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
    births, deaths, _, _ = _one(volume)
    return np.stack([births, deaths], axis=1)


def h1_pairs_batch(values: np.ndarray, workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The finite H1 persistence pairs of every volume of a batch, as :func:`h1_pairs` gives them per volume.

    Args:
        values: float ``(B, D, H, W)`` array (every size >= 1; converted to C-contiguous float64), finite.
        workers: threads the volumes are spread over (the kernel releases the GIL); ``None``:
            :func:`torch.get_num_threads`, at most ``B``.

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
    if workers is None:
        workers = cpu_workers()
    pairs, _, index = h0_h1_pairs_batch(values, workers, want_h0=False)
    return pairs, index


def h0_h1_pairs_batch(values: np.ndarray, workers: int, *, want_h0: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The H1 pairs of every volume of a checked batch ``values`` (C-contiguous float64 ``(B, D, H, W)``, finite) and
    with ``want_h0`` their H0 pairs as well, essential ``(min, inf)`` included, from the union-find pass the H1
    reduction runs anyway (it clears the H0 deaths' columns): ``(pairs, dims, index)``, float64 ``(P, 2)``, int64
    ``(P,)`` (0 or 1) and int64 ``(P,)`` (the volume), by volume then dimension."""
    job, assemble = h1_job(values, want_h0, workers)
    return assemble(start_jobs([job], workers).results()[0])


def h1_job(
    values: np.ndarray, want_h0: bool, workers: int
) -> tuple[
    tuple[Callable[[int, int], list[tuple[np.ndarray, ...]]], int, int],
    Callable[[list[list[tuple[np.ndarray, ...]]]], tuple[np.ndarray, np.ndarray, np.ndarray]],
]:
    """The H1 reduction of a checked batch as a job for :func:`~lightning_topo.functional._threads.start_jobs`:
    chunks of consecutive volumes, each thread running its own sorts and kernels without the GIL (four chunks per
    thread, so one costly volume does not leave the other threads idle); and the function that turns the job's chunk
    results into the ``(pairs, dims, index)`` of :func:`h0_h1_pairs_batch`."""

    def chunk(lo: int, hi: int) -> list[tuple[np.ndarray, ...]]:
        return [_one(values[b], want_h0) for b in range(lo, hi)]

    return (chunk, values.shape[0], 4 * workers), lambda parts: _assemble(values, parts, want_h0)


def _assemble(
    values: np.ndarray, parts: list[list[tuple[np.ndarray, ...]]], want_h0: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pairs, dims, index)`` from the chunks' results of :func:`h1_job`."""
    results = [r for part in parts for r in part]
    births: list[np.ndarray] = []
    deaths: list[np.ndarray] = []
    dims: list[np.ndarray] = []
    index: list[np.ndarray] = []
    for b, (h1_births, h1_deaths, h0_births, h0_deaths) in enumerate(results):
        count = len(h1_births)
        if want_h0:
            births += [h0_births, np.array([values[b].min()])]
            deaths += [h0_deaths, np.array([np.inf])]
            dims.append(np.zeros(len(h0_births) + 1, dtype=np.int64))
            count += len(h0_births) + 1
        births.append(h1_births)
        deaths.append(h1_deaths)
        dims.append(np.ones(len(h1_births), dtype=np.int64))
        index.append(np.full(count, b, dtype=np.int64))
    if not births:
        empty = np.empty(0, dtype=np.int64)
        return np.empty((0, 2), dtype=np.float64), empty, empty
    pairs = np.stack([np.concatenate(births), np.concatenate(deaths)], axis=1)
    return pairs, np.concatenate(dims), np.concatenate(index)
