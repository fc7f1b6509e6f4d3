"""Compiled kernels of :func:`lightning_topo.functional.cubical_persistence`: H0 and the top dimension by union-find.

Per volume (the voxels of a ``(D, H, W)`` volume, flat in raster order, as float64):

* **One order for both passes.** The voxels equal to the volume's minimum (with ReLU maps about half of them) come
  first, in raster order, unsorted: every merge among them happens at the minimum, so the order inside the plateau
  cannot change a diagram. The others are sorted by value with an LSD radix sort of order-preserving integer keys
  (:func:`_sort_rest`) over the bits that differ between keys only, in passes of at most 11 bits: a float32 value
  stored as a float64 has 29 zero mantissa bits, so float32 data costs three passes. ``rank`` (per voxel of a
  volume padded by one layer on each axis of size >= 2, its position in that order) then tells both passes which
  neighbours are visited, without flags to reset.
* **H0** (:func:`_h0_pass`): the voxels in increasing order; each joins its already-visited face neighbours (6 in
  3-D; size-1 axes leave 4 in 2-D and 2 in 1-D) by union-find with path halving. A set's root is its oldest voxel
  (the first visited), so its value is the set's birth; when two sets meet at value ``x`` the younger root (the one
  visited later: larger birth, ties by visit order) is hooked onto the elder and the pair ``(birth, x)`` is written
  unless ``birth == x`` (the elder rule). Most voxels take a fast path first: when the sets of all visited face
  neighbours are found within two parent hops and are one set, the voxel joins it without a find (no merge).
* **The top dimension** (:func:`_dual_pass`), by Alexander duality: the H0 of the complement's *superlevel*
  filtration, 26-connected (8 in a plane), with one more node for the outside joined to every voxel on the
  boundary of the volume's non-degenerate axes and older than every voxel (the padding is that node). A
  neighbour adjacent to one already joined is skipped unread: adjacent visited voxels are in one set. Both passes
  read which face neighbours were visited as a bit mask, without branches; the dual pass then looks only at the
  other neighbours adjacent to none of the visited faces (a table per mask). The
  minimum's plateau is not visited: each set still apart from the outside then is a void filled at the minimum.
  The voxels in decreasing order; when two sets meet at value ``s`` the younger one (smaller maximum, ties by
  visit order) was a bounded component of ``{v > t}`` for ``s <= t < max``: a void (a 1-cycle in a plane) of the
  sublevel set ``{v <= t}``, the pair ``(s, max)``.

The kernels release the GIL (``nogil=True``): the caller runs chunks of a batch on a thread pool.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from lightning_topo.functional._cpu_unionfind import _ctz

__all__ = ["MAX_VOXELS", "pairs_chunk"]

MAX_VOXELS = 2**31 - 2
"""Voxels per volume the int32 union-find arrays index (one more node for the outside)."""

_SIGN = np.uint64(1) << np.uint64(63)


def _set_bits() -> tuple[np.ndarray, np.ndarray]:
    """Per 6-bit mask, the positions of its set bits (3 bits each, lowest first) and how many there are."""
    listed = np.zeros(64, dtype=np.int64)
    count = np.zeros(64, dtype=np.int64)
    for mask in range(64):
        for i in range(6):
            if mask >> i & 1:
                listed[mask] |= i << (3 * count[mask])
                count[mask] += 1
    return listed, count


_LISTED, _COUNT = _set_bits()

_UNVISITED = np.int32(2**31 - 1)
"""``parent`` of a voxel not visited yet. A root's ``parent`` is ``-(rank + 1)`` (its position in the order, which
tells its birth), any other visited voxel's its parent's index: one array read per neighbour, no ``rank`` array."""


@njit(nogil=True, cache=True, inline="always")
def _find(parent: np.ndarray, x: int) -> int:
    """The root of visited voxel ``x`` (roots have a negative ``parent``), with path halving."""
    while True:
        up = parent[x]
        if up < 0:
            return x
        grand = parent[up]
        if grand < 0:
            return up
        parent[x] = grand  # path halving
        x = grand


@njit(nogil=True, cache=True, inline="always")
def _near_root(parent: np.ndarray, nb: int, v: int) -> int:
    """``nb``'s root when it is at most two hops up, else the voxel two hops up; ``_UNVISITED`` for an unvisited
    ``nb`` (the padding, or the voxel ``v`` itself: offsets past the last face are 0). No branch on the path."""
    up = parent[nb]
    one = nb if up < 0 else up  # nb itself when a root; else its parent (or _UNVISITED)
    two = parent[one if one != _UNVISITED else v]  # parent[v] is _UNVISITED: stays so
    return one if two < 0 else two


@njit(nogil=True, cache=True, inline="always")
def _visited_or(r: int) -> int:
    """``r`` for a visited neighbour's set, -1 for an unvisited one (so ``max`` skips it)."""
    return -1 if r == _UNVISITED else r


@njit(nogil=True, cache=True, inline="always")
def _six_faces(offsets: np.ndarray, nf: int) -> tuple[int, int, int, int, int, int]:
    """The first ``nf`` (at most 6) of ``offsets``, the face neighbours, as six scalars; 0 past the last (a read of
    the voxel itself, which :func:`_visited_faces` masks out)."""
    padded = np.zeros(6, dtype=np.int64)
    for i in range(nf):
        padded[i] = offsets[i]
    return padded[0], padded[1], padded[2], padded[3], padded[4], padded[5]


@njit(nogil=True, cache=True, inline="always")
def _visited_faces(parent: np.ndarray, v: int, f0: int, f1: int, f2: int, f3: int, f4: int, f5: int, valid: int) -> int:
    """Which face neighbours of ``v`` (offsets ``f0..f5``, the bits of ``valid`` real) were visited, as bits: six
    reads and no branch (a branch per neighbour on whether it was visited mispredicts half the time)."""
    return valid & (
        int(parent[v + f0] != _UNVISITED)
        | int(parent[v + f1] != _UNVISITED) << 1
        | int(parent[v + f2] != _UNVISITED) << 2
        | int(parent[v + f3] != _UNVISITED) << 3
        | int(parent[v + f4] != _UNVISITED) << 4
        | int(parent[v + f5] != _UNVISITED) << 5
    )


@njit(nogil=True, cache=True, inline="always")
def sort_key(x: float, bits: np.uint64) -> np.uint64:
    """An unsigned key that orders like the float64 ``x`` (whose bits are ``bits``), -0.0 and 0.0 one key."""
    if x == 0.0:
        bits = np.uint64(0)
    return ~bits if bits & _SIGN else bits | _SIGN


@njit(nogil=True, cache=True)
def _reset(parent: np.ndarray, depth: int, height: int, width: int) -> None:
    """Mark every voxel of the volume (not the padding) unvisited, in raster order."""
    pd, ph, pw = int(depth > 1), int(height > 1), int(width > 1)
    hp, wp = height + 2 * ph, width + 2 * pw
    for d in range(depth):
        for h in range(height):
            base = ((d + pd) * hp + h + ph) * wp + pw
            parent[base : base + width] = _UNVISITED


@njit(nogil=True, cache=True)
def _scatter_pass(
    src: np.ndarray, dst: np.ndarray, slots: np.ndarray, shift: np.uint64, mask: np.uint64, m: int
) -> None:
    """One stable counting-sort pass of the words ``src[:m]`` into ``dst`` by their bits ``shift`` up (``mask``);
    ``slots``: each digit's first position, advanced as words are placed."""
    for j in range(m):
        word = src[j]
        c = (word >> shift) & mask
        pos = slots[c]
        slots[c] = pos + 1
        dst[pos] = word


@njit(nogil=True, cache=True)
def _sort_rest(keys: np.ndarray, idx: np.ndarray, tmp_keys: np.ndarray, tmp_idx: np.ndarray, m: int) -> np.ndarray:
    """Sort ``idx[:m]`` by ``keys[:m]`` (uint64, order-preserving) in place: a stable LSD radix sort over the bits
    that differ between keys only, in passes of at most 11 bits (the histograms of all passes in one read). Returns
    the array that holds the sorted keys (``keys`` or ``tmp_keys``).

    When those bits and the (non-negative) index of a key fit one 64-bit word (float32 values: 32 bits or fewer
    vary), the passes move that word alone: 8 bytes, not a key and an index (12)."""
    if m < 2:
        return keys
    first = keys[0]
    varying = np.uint64(0)
    top = 0
    for j in range(m):
        varying |= keys[j] ^ first
        top |= idx[j]  # negative if any is
    if varying == 0:
        return keys
    low = 0
    while not (varying >> np.uint64(low)) & np.uint64(1):
        low += 1
    high = 63
    while not (varying >> np.uint64(high)) & np.uint64(1):
        high -= 1
    nbits = high - low + 1
    passes = (nbits + 10) // 11
    bits = (nbits + passes - 1) // passes
    mask = np.uint64((1 << bits) - 1)
    counts = np.zeros((passes, 1 << bits), dtype=np.int64)
    place = 1
    while top >= 0 and (top >> place) != 0:
        place += 1
    packed = top >= 0 and nbits + place <= 64
    ulow = np.uint64(low)
    uplace = np.uint64(place)
    # The varying bits only: the digits of the last pass reach past them (passes * bits >= nbits), and a packed
    # word holds no bit above them, so the histograms must not count any either
    span = ((np.uint64(1) << np.uint64(nbits)) - np.uint64(1)) if nbits < 64 else ~np.uint64(0)
    for j in range(m):
        key = (keys[j] >> ulow) & span
        if packed:
            keys[j] = (key << uplace) | np.uint64(idx[j])  # the varying bits above the index
        for p in range(passes):
            counts[p, (key >> np.uint64(p * bits)) & mask] += 1
    for p in range(passes):
        total = 0
        for c in range(1 << bits):
            count = counts[p, c]
            counts[p, c] = total
            total += count
    if packed:
        src, dst = keys, tmp_keys
        for p in range(passes):
            _scatter_pass(src, dst, counts[p], np.uint64(place + p * bits), mask, m)
            src, dst = dst, src
        where = np.uint64((1 << place) - 1)
        # The bits outside the varying span are the first key's
        fixed = first & ~(span << ulow)
        for j in range(m):
            word = src[j]
            idx[j] = word & where
            keys[j] = fixed | ((word >> uplace) << ulow)
        return keys
    src_k, src_i, dst_k, dst_i = keys, idx, tmp_keys, tmp_idx
    for p in range(passes):
        shift = np.uint64(p * bits)
        slots = counts[p]
        for j in range(m):
            key = src_k[j]
            c = (((key >> ulow) & span) >> shift) & mask
            pos = slots[c]
            slots[c] = pos + 1
            dst_k[pos] = key
            dst_i[pos] = src_i[j]
        src_k, src_i, dst_k, dst_i = dst_k, dst_i, src_k, src_i
    if passes % 2:
        idx[:m] = src_i[:m]
    return src_k


@njit(nogil=True, cache=True, inline="always")
def _key32(bits: np.uint32, zero: bool) -> np.uint64:
    """An unsigned key (32 bits) that orders like the float32 whose bits are ``bits``, -0.0 and 0.0 one key."""
    u = np.uint64(0) if zero else np.uint64(bits)
    return (~u & np.uint64(0xFFFFFFFF)) if u & np.uint64(0x80000000) else u | np.uint64(0x80000000)


@njit(nogil=True, cache=True)
def _prepare(
    values: np.ndarray,
    depth: int,
    height: int,
    width: int,
    order: np.ndarray,
    ordered: np.ndarray,
    keys: np.ndarray,
    tmp_keys: np.ndarray,
    tmp_idx: np.ndarray,
    narrow: np.ndarray,
) -> tuple[float, float, int]:
    """Order the voxels of ``values`` by value: those equal to the minimum first, in raster order, then the others
    sorted. Writes ``order`` (the voxels' indices in the padded volume, in that order) and ``ordered`` (their
    values). Returns the minimum, the maximum and the number of voxels equal to the minimum.

    When every value is a float32 (float32 or half-precision input, small integers) the keys are those of the
    float32 values (``narrow``, uint32, is their scratch): at most 32 bits vary, three radix passes, not four."""
    n = values.size
    pd, ph, pw = int(depth > 1), int(height > 1), int(width > 1)
    hp, wp = height + 2 * ph, width + 2 * pw
    vmin = values[0]
    vmax = values[0]
    single = True
    as_single = narrow.view(np.float32)
    for i in range(n):
        x = values[i]
        vmin = min(vmin, x)
        vmax = max(vmax, x)
        y = np.float32(x)
        as_single[i] = y
        single &= np.float64(y) == x
    plateau = 0
    for x in values:
        if x == vmin:
            plateau += 1
    ubits = values.view(np.uint64)
    p = 0
    r = plateau
    i = 0
    for d in range(depth):
        for h in range(height):
            base = ((d + pd) * hp + h + ph) * wp + pw
            for w in range(width):
                x = values[i]
                if x == vmin:
                    order[p] = base + w
                    p += 1
                else:
                    keys[r - plateau] = _key32(narrow[i], x == 0.0) if single else sort_key(x, ubits[i])
                    order[r] = base + w
                    r += 1
                i += 1
    m = n - plateau
    done = _sort_rest(keys, order[plateau:], tmp_keys, tmp_idx, m)
    ordered[:plateau] = vmin
    if single:
        for j in range(m):
            key = done[j]
            narrow[j] = np.uint32(
                key ^ np.uint64(0x80000000) if key & np.uint64(0x80000000) else ~key & np.uint64(0xFFFFFFFF)
            )
        for j in range(m):
            ordered[plateau + j] = np.float64(as_single[j])
        return vmin, vmax, plateau
    obits = ordered.view(np.uint64)
    for j in range(m):
        key = done[j]
        obits[plateau + j] = key ^ _SIGN if key & _SIGN else ~key
    return vmin, vmax, plateau


@njit(nogil=True, cache=True)
def _offsets(depth: int, height: int, width: int, faces: bool, backward: bool) -> tuple[np.ndarray, np.ndarray]:
    """Index offsets in the padded volume of the face (6) or all (26) neighbours along the axes of size >= 2
    (faces first); with ``backward``, only those before the voxel in raster order. And per neighbour, the bit mask of
    the neighbours listed before it that are 26-adjacent to it."""
    hp, wp = height + 2 * int(height > 1), width + 2 * int(width > 1)
    out = np.empty(26, dtype=np.int64)
    steps_of = np.empty((26, 3), dtype=np.int64)
    k = 0
    for rank in range(1, 4):
        for dd in range(-1, 2):
            if dd != 0 and depth == 1:
                continue
            for dh in range(-1, 2):
                if dh != 0 and height == 1:
                    continue
                for dw in range(-1, 2):
                    if dw != 0 and width == 1:
                        continue
                    if abs(dd) + abs(dh) + abs(dw) != rank or (faces and rank > 1):
                        continue
                    off = (dd * hp + dh) * wp + dw
                    if backward and off > 0:
                        continue
                    out[k] = off
                    steps_of[k, 0] = dd
                    steps_of[k, 1] = dh
                    steps_of[k, 2] = dw
                    k += 1
    adjacent = np.zeros(k, dtype=np.int64)
    for i in range(k):
        for j in range(i):
            if (
                abs(steps_of[i, 0] - steps_of[j, 0]) <= 1
                and abs(steps_of[i, 1] - steps_of[j, 1]) <= 1
                and abs(steps_of[i, 2] - steps_of[j, 2]) <= 1
            ):
                adjacent[i] |= np.int64(1) << j
    return out[:k].copy(), adjacent


@njit(nogil=True, cache=True, inline="always")
def _face_count(neighbours: int) -> int:
    """Face neighbours among ``neighbours`` (26, 8, 2 or 0 in 3, 2, 1 or 0 dimensions), which ``_offsets`` lists
    first."""
    return 6 if neighbours == 26 else (4 if neighbours == 8 else neighbours)


@njit(nogil=True, cache=True)
def _free_of_faces(count: int, adjacent: np.ndarray) -> np.ndarray:
    """Per bit mask of face neighbours, the bits of the other neighbours (of ``count``, as ``_offsets`` lists them
    with their ``adjacent`` masks) adjacent to none of those faces."""
    nf = _face_count(count)
    free = np.zeros(64, dtype=np.uint64)
    for mask in range(1 << nf):
        for q in range(nf, count):
            if not adjacent[q] & mask:  # faces are listed first: bits 0..nf-1 of adjacent[q]
                free[mask] |= np.uint64(1) << np.uint64(q)
    return free


@njit(nogil=True, cache=True)
def _h0_pass(
    order: np.ndarray,
    ordered: np.ndarray,
    plateau: int,
    faces: np.ndarray,
    back_faces: np.ndarray,
    parent: np.ndarray,
    births: np.ndarray,
    deaths: np.ndarray,
) -> int:
    """The finite H0 pairs (``birth < death``) into ``births``/``deaths``; their number.

    ``parent``: every voxel and the padding unvisited (the padding stays so). Step ``j`` visits ``order[j]``; a set's
    root is the voxel of smallest rank of the set (``parent[root] = -(rank + 1)``), whose value is its birth.
    """
    n = order.size
    # The minimum's plateau, in raster order: joining each voxel with the plateau voxels before it joins every
    # adjacent pair; every merge is at the minimum (no pair). The other voxels are not visited yet.
    for j in range(plateau):
        v = order[j]
        root = v
        root_code = -(j + 1)
        parent[v] = root_code
        for off in back_faces:
            nb = v + off
            if parent[nb] == _UNVISITED:
                continue
            other = _find(parent, nb)
            if other != root:
                other_code = parent[other]
                if other_code > root_code:  # smaller rank
                    parent[root] = other
                    root = other
                    root_code = other_code
                else:
                    parent[other] = root
    # The others in value order. Which face neighbours were visited, as bits first (six reads, no branch), then a
    # loop over those only: a branch per neighbour on whether it was visited mispredicts half the time.
    k = 0
    nf = faces.size
    f0, f1, f2, f3, f4, f5 = _six_faces(faces, nf)
    valid = (1 << nf) - 1
    for j in range(plateau, n):
        v = order[j]
        # Fast path (most voxels): every visited face neighbour's set found within two hops and the same root.
        r0, r1, r2 = _near_root(parent, v + f0, v), _near_root(parent, v + f1, v), _near_root(parent, v + f2, v)
        r3, r4, r5 = _near_root(parent, v + f3, v), _near_root(parent, v + f4, v), _near_root(parent, v + f5, v)
        lo = min(min(r0, r1), min(min(r2, r3), min(r4, r5)))
        if lo == _UNVISITED:  # no visited face neighbour: a local minimum, a new set
            parent[v] = -(j + 1)
            continue
        hi = max(
            max(_visited_or(r0), _visited_or(r1)),
            max(max(_visited_or(r2), _visited_or(r3)), max(_visited_or(r4), _visited_or(r5))),
        )
        if lo == hi and parent[lo] < 0:  # one set around v: v joins it, no merge
            parent[v] = lo
            continue
        visited = _visited_faces(parent, v, f0, f1, f2, f3, f4, f5, valid)
        # v joins the set of its first visited neighbour (v is the youngest voxel: no pair) ...
        listed = _LISTED[visited]
        root = _find(parent, v + faces[listed & 7])
        parent[v] = root
        root_code = parent[root]
        x = ordered[j]
        # ... which then merges with the sets of the others
        for t in range(1, _COUNT[visited]):
            other = _find(parent, v + faces[(listed >> (3 * t)) & 7])
            if other == root:
                continue
            other_code = parent[other]
            if other_code > root_code:  # the elder (smaller birth, ties by rank) survives
                young_code = root_code
                young = root
                root = other
                root_code = other_code
            else:
                young_code = other_code
                young = other
            parent[young] = root
            birth = ordered[-young_code - 1]
            if birth < x:
                births[k] = birth
                deaths[k] = x
                k += 1
    return k


@njit(nogil=True, cache=True)
def _dual_pass(
    order: np.ndarray,
    ordered: np.ndarray,
    plateau: int,
    neighbours: np.ndarray,
    adjacent: np.ndarray,
    free: np.ndarray,
    parent: np.ndarray,
    births: np.ndarray,
    deaths: np.ndarray,
) -> int:
    """The finite pairs of the top dimension (``birth < death``) into ``births``/``deaths``; their number.

    Steps ``j = n - 1, ..., 0``. ``parent``: every voxel unvisited; the padding is the outside, visited from the
    start and the eldest set (every padding voxel's parent is the padding voxel 0, a root of rank ``n + 1``). A set's
    root is the voxel of largest rank of the set (``parent[root] = -(rank + 1)``), whose value is the set's maximum.
    """
    n = order.size
    k = 0
    nf = _face_count(neighbours.size)
    f0, f1, f2, f3, f4, f5 = _six_faces(neighbours, nf)
    valid = (1 << nf) - 1
    for j in range(n - 1, plateau - 1, -1):
        v = order[j]
        x = ordered[j]
        root = v
        root_code = -(j + 1)
        parent[v] = root_code
        # Which faces were visited, read without branches; then the visited faces and the other neighbours
        # adjacent to none of them (``free``): a neighbour adjacent to a visited voxel is in its set if visited.
        faces = _visited_faces(parent, v, f0, f1, f2, f3, f4, f5, valid)
        seen = np.int64(0)  # the visited neighbours looked at, as bits
        look = np.uint64(faces) | free[faces]
        while look != 0:
            q = np.int64(_ctz(look))
            look &= look - np.uint64(1)
            # Two adjacent visited voxels are in one set (the later joined the earlier): a neighbour adjacent to
            # one seen visited is in its set if visited at all, so it need not even be looked at.
            if adjacent[q] & seen:
                continue
            nb = v + neighbours[q]
            if q >= nf and parent[nb] == _UNVISITED:
                continue
            seen |= np.int64(1) << q
            other = _find(parent, nb)
            if other == root:
                continue
            other_code = parent[other]
            if other_code < root_code:  # the elder (larger maximum, ties by rank) survives
                young_code = root_code
                young = root
                root = other
                root_code = other_code
            else:
                young_code = other_code
                young = other
            parent[young] = root
            top = ordered[-young_code - 1]
            if x < top:
                births[k] = x
                deaths[k] = top
                k += 1
    # The minimum's plateau enters last, all at the minimum: every component of {v > min} that does not touch the
    # outside (a root other than the padding's) is a void filled then.
    if plateau > 0:
        vmin = ordered[0]
        for j in range(plateau, n):
            if parent[order[j]] < 0:
                births[k] = vmin
                deaths[k] = ordered[j]
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
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The pairs of volumes ``start:stop`` of ``values`` ``(B, D*H*W)`` (float64, finite): float64 ``(P, 2)``
    ``[birth, death]``, int64 dims and int64 volume index; H0 (with its essential pair ``(min, inf)``) when
    ``want_h0``, and the pairs of the top dimension ``top_dim`` (the dual pass) when ``want_top``. And each
    volume's minimum and maximum (float64 ``(stop - start,)``)."""
    n = depth * height * width
    size = (depth + 2 * int(depth > 1)) * (height + 2 * int(height > 1)) * (width + 2 * int(width > 1))
    faces = _offsets(depth, height, width, True, False)[0]
    back_faces = _offsets(depth, height, width, True, True)[0]
    neighbours, adjacent = _offsets(depth, height, width, False, False)
    free = _free_of_faces(neighbours.size, adjacent)
    parent = np.full(size, _UNVISITED, dtype=np.int32)  # H0: the padding stays unvisited
    dual_parent = np.zeros(size, dtype=np.int32)  # the dual pass: the padding's parent is the padding voxel 0
    if size > n:
        dual_parent[0] = -(n + 2)  # the outside: a root of rank n + 1, older than every voxel
    order = np.empty(n, dtype=np.int32)
    ordered = np.empty(n, dtype=np.float64)
    keys = np.empty(n, dtype=np.uint64)
    tmp_keys = np.empty(n, dtype=np.uint64)
    tmp_idx = np.empty(n, dtype=np.int32)
    narrow = np.empty(n, dtype=np.uint32)
    births = np.empty(n, dtype=np.float64)
    deaths = np.empty(n, dtype=np.float64)
    lows = np.empty(stop - start, dtype=np.float64)
    highs = np.empty(stop - start, dtype=np.float64)
    cap = 1024
    out = np.empty((cap, 2), dtype=np.float64)
    out_dims = np.empty(cap, dtype=np.int64)
    out_index = np.empty(cap, dtype=np.int64)
    total = 0
    for b in range(start, stop):
        vmin, vmax, plateau = _prepare(values[b], depth, height, width, order, ordered, keys, tmp_keys, tmp_idx, narrow)
        lows[b - start] = vmin
        highs[b - start] = vmax
        for dim in range(2):
            if dim == 0:
                if not want_h0:
                    continue
                _reset(parent, depth, height, width)
                k = _h0_pass(order, ordered, plateau, faces, back_faces, parent, births, deaths)
                births[k] = vmin
                deaths[k] = np.inf
                k += 1
                label = 0
            else:
                if not want_top:
                    continue
                _reset(dual_parent, depth, height, width)
                k = _dual_pass(order, ordered, plateau, neighbours, adjacent, free, dual_parent, births, deaths)
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
    return out[:total].copy(), out_dims[:total].copy(), out_index[:total].copy(), lows, highs


@njit(nogil=True, cache=True)
def contracted_pairs(
    ends_a: np.ndarray,
    ends_b: np.ndarray,
    enters_at: np.ndarray,
    age: np.ndarray,
    node_value: np.ndarray,
    volume: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The elder rule over a contracted graph (``backend="torch"``, :mod:`._contracted_persistence`): nodes
    ``0..K-1`` with an ``age`` (smaller: elder; ages of one volume are distinct), a ``node_value`` (a basin's birth,
    or for the dual its maximum) and a ``volume``; edges ``ends_a[j]``-``ends_b[j]`` in the order they enter, at
    ``enters_at[j]``. When an edge joins two sets, the younger root dies: the pair ``(min, max)`` of its value and
    the edge's, unless they are equal. Returns births, deaths and volume index (float64, float64, int64)."""
    parent = np.full(age.size, -1, dtype=np.int64)  # roots negative, as `_find` reads them
    m = ends_a.size
    births = np.empty(m, dtype=np.float64)
    deaths = np.empty(m, dtype=np.float64)
    index = np.empty(m, dtype=np.int64)
    out = 0
    for j in range(m):
        ra = _find(parent, ends_a[j])
        rb = _find(parent, ends_b[j])
        if ra == rb:
            continue
        young, elder = (rb, ra) if age[ra] < age[rb] else (ra, rb)
        parent[young] = elder
        x = enters_at[j]
        y = node_value[young]
        if x != y:
            births[out] = min(x, y)
            deaths[out] = max(x, y)
            index[out] = volume[young]
            out += 1
    return births[:out].copy(), deaths[:out].copy(), index[:out].copy()
