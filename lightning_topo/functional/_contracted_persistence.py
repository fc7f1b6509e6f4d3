"""H0 and the top dimension of :func:`~lightning_topo.functional.cubical_persistence` on the volumes' own device
(``backend="torch"``): the voxels contracted to basins by tensor operations, then a union-find over the basins.

Per batch of volumes ``(B, D, H, W)`` (float64 values; the axes of size >= 2 are the volume's axes):

1. **One total order.** Each voxel's rank in its volume, values first, ties by raster position (a stable sort):
   every comparison below is between ranks, so no two voxels tie.
2. **Basins.** H0: each voxel points to its face neighbour of lowest rank when that is below its own, else to
   itself (a local minimum); pointer jumping (``ptr = ptr[ptr]`` until nothing changes) takes every voxel to the
   minimum its steepest descent ends at. A voxel is joined to its basin's minimum through voxels of lower rank, so
   at every step of the filtration the sublevel set's components are those of the basins present, joined by the
   edges present between them. The top dimension by duality (as the CPU kernel): the steepest *ascent* among all 26
   neighbours (8 in a plane), with one node per volume for the outside, the neighbour of highest rank of every voxel
   on the boundary of the volume's axes.
3. **The contracted graph.** An edge between two basins for each pair of neighbouring voxels in different basins,
   entering at the larger rank of the two (H0) or the smaller (the dual, in decreasing order); of the edges between
   two basins only the first to enter counts (the others join what is joined already).
4. **The elder rule on the host.** The edges in the order they enter, over the basins only (a compiled union-find,
   :func:`lightning_topo.functional._persistence_kernels.contracted_pairs`): when two sets meet, the younger (later
   minimum; for the dual, smaller maximum, the outside eldest of all) dies there, a pair unless its birth equals its
   death.

Steps 1-3 are element-wise kernels, sorts and gathers over the whole batch (a GPU's work); step 4 sees a few basins
per feature, not every voxel. The diagrams are those of the compiled CPU passes, pair for pair (the tests hold both
to GUDHI's)."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import Tensor

__all__ = ["CHUNK_VOXELS", "contracted_pairs_batch"]

CHUNK_VOXELS = 2**24
"""Voxels of a batch handled at once; a larger batch is cut into chunks of whole volumes. The peak memory is that of
16 (ResNet18 feature maps) to 29 (ReLU noise) int64 arrays of the chunk's size (measured on the CPU): 2-3.5 GiB."""


def _steps(axes: tuple[bool, bool, bool], faces: bool) -> list[tuple[int, int, int]]:
    """The neighbour steps along the axes marked ``True`` (size >= 2): the face steps or all of them (26 in 3-D)."""
    out = []
    for step in itertools.product((-1, 0, 1), repeat=3):
        if step == (0, 0, 0) or any(s != 0 and not axis for s, axis in zip(step, axes, strict=True)):
            continue
        if faces and sum(map(abs, step)) != 1:
            continue
        out.append(step)
    return out


def _slices(step: tuple[int, int, int], shape: tuple[int, int, int]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """The voxels that have a neighbour at ``step`` inside the volume, and those neighbours, as slices of a
    ``(B, D, H, W)`` tensor."""
    here: list[slice] = [slice(None)]
    there: list[slice] = [slice(None)]
    for s, size in zip(step, shape, strict=True):
        here.append(slice(0, size - 1) if s == 1 else slice(1, size) if s == -1 else slice(None))
        there.append(slice(1, size) if s == 1 else slice(0, size - 1) if s == -1 else slice(None))
    return tuple(here), tuple(there)


def _basins(rank: Tensor, steps: list[tuple[int, int, int]], ascent: bool, boundary: Tensor | None) -> Tensor:
    """Per voxel of ``rank`` ``(B, D, H, W)``, the node its steepest descent (or ``ascent``) ends at, as a global
    index: ``b * N + i`` for voxel ``i`` of volume ``b``, ``B * N + b`` for volume ``b``'s outside (``boundary``:
    the voxels next to it). Returns ``(B * N + B,)`` int64: each node's root (the outside nodes are their own)."""
    batch = rank.shape[0]
    n = rank[0].numel()
    shape = tuple(rank.shape[1:])
    ident = torch.arange(batch * n, device=rank.device, dtype=torch.int64).view(rank.shape)
    best = rank.clone()
    target = ident.clone()
    for step in steps:
        here, there = _slices(step, shape)  # type: ignore[arg-type]
        other = rank[there]
        mine = best[here]
        better = other > mine if ascent else other < mine
        best[here] = torch.where(better, other, mine)
        target[here] = torch.where(better, ident[there], target[here])
    ptr = torch.empty(batch * n + batch, device=rank.device, dtype=torch.int64)
    ptr[batch * n :] = torch.arange(batch * n, batch * n + batch, device=rank.device)
    if boundary is not None:  # the outside is above every voxel: the boundary's steepest ascent
        outside = (torch.arange(batch, device=rank.device) + batch * n).view(batch, 1, 1, 1).expand_as(target)
        target = torch.where(boundary, outside, target)
    ptr[: batch * n] = target.reshape(-1)
    while True:
        jumped = ptr[ptr]
        if torch.equal(jumped, ptr):
            return ptr
        ptr = jumped


def _first_per_pair(key: Tensor, enters: Tensor, ascent: bool) -> tuple[Tensor, Tensor]:
    """Of edges with the same ``key`` (a pair of basins), the rank the first to enter enters at: the distinct keys
    (sorted) and that rank (the largest for the dual's decreasing order)."""
    pair, inverse = torch.unique(key, return_inverse=True)
    first = torch.zeros(pair.numel(), dtype=torch.int64, device=key.device).scatter_reduce(
        0, inverse, enters, "amax" if ascent else "amin", include_self=False
    )
    return pair, first


def _contracted_edges(
    rank: Tensor, sorted_values: Tensor, root: Tensor, steps: list[tuple[int, int, int]], ascent: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """The edges between basins (``root``, per node), one per pair of basins, in the order they enter: both ends
    (global node indices) and the value they enter at (``sorted_values`` ``(B, N)``: each volume's values in rank
    order)."""
    shape = tuple(rank.shape[1:])
    n = rank[0].numel()
    nodes = root.numel()
    roots = root[: rank.numel()].view(rank.shape)
    keys, ranks = [], []
    for step in steps:
        if step <= (0, 0, 0):  # each pair of neighbours once
            continue
        here, there = _slices(step, shape)  # type: ignore[arg-type]
        a, b = roots[here], roots[there]
        apart = a != b
        # The pair of basins as one key (the smaller node first) and the rank the edge enters at, reduced to one
        # edge per pair direction by direction: a noise-like map has several such edges per voxel in all
        key = (torch.minimum(a, b) * nodes + torch.maximum(a, b))[apart]
        enters = (torch.minimum(rank[here], rank[there]) if ascent else torch.maximum(rank[here], rank[there]))[apart]
        pair, first = _first_per_pair(key, enters, ascent)
        keys.append(pair)
        ranks.append(first)
    if not keys:  # a single voxel: no neighbours
        empty = torch.empty(0, dtype=torch.int64, device=rank.device)
        return empty, empty, torch.empty(0, dtype=torch.float64, device=rank.device)
    pair, first = _first_per_pair(torch.cat(keys), torch.cat(ranks), ascent)
    # In the order they enter, volume by volume (edges of different volumes never meet; this order makes the
    # pairs' order that of each volume alone, however the batch is chunked). The smaller end of an edge is a voxel
    # (at most one end is an outside node, numbered after every voxel): its volume.
    volume = (pair // nodes) // n
    order = torch.argsort(volume * n + (n - 1 - first if ascent else first), stable=True)
    pair, first, volume = pair[order], first[order], volume[order]
    return pair // nodes, pair % nodes, sorted_values.reshape(-1)[volume * n + first]


def _pairs(
    values: Tensor, sorted_values: Tensor, rank: Tensor, axes: tuple[bool, bool, bool], dual: bool
) -> tuple[np.ndarray, ...]:
    """H0 (``dual=False``) or the top dimension's pairs of a chunk: births, deaths, volume index (NumPy)."""
    from lightning_topo.functional._persistence_kernels import contracted_pairs

    batch = rank.shape[0]
    n = rank[0].numel()
    boundary = None
    if dual:
        boundary = torch.zeros(rank.shape, dtype=torch.bool, device=rank.device)
        for axis, present in enumerate(axes, start=1):
            if present:
                boundary.narrow(axis, 0, 1).fill_(True)
                boundary.narrow(axis, rank.shape[axis] - 1, 1).fill_(True)
    steps = _steps(axes, faces=not dual)
    root = _basins(rank, steps, dual, boundary)
    a, b, enters_at = _contracted_edges(rank, sorted_values, root, steps, dual)
    # The basins' roots, numbered 0..K-1: each root's age (smaller: elder) and birth (H0: its minimum) or top
    # (the dual: its maximum); the outside nodes are the eldest of all and never die.
    is_root = root == torch.arange(root.numel(), device=root.device)
    number = torch.cumsum(is_root, 0) - 1
    nodes = torch.nonzero(is_root).squeeze(1)
    voxel = nodes.clamp(max=batch * n - 1)
    flat_rank, flat_values = rank.reshape(-1), values.reshape(-1)
    outside = nodes >= batch * n
    age = torch.where(outside, -n - 1, -flat_rank[voxel] if dual else flat_rank[voxel])
    node_value = torch.where(outside, torch.inf, flat_values[voxel])
    volume = torch.where(outside, nodes - batch * n, voxel // n)
    births, deaths, index = contracted_pairs(
        number[a].cpu().numpy(),
        number[b].cpu().numpy(),
        enters_at.cpu().numpy(),
        age.cpu().numpy(),
        node_value.cpu().numpy(),
        volume.cpu().numpy(),
    )
    return births, deaths, index


def contracted_pairs_batch(
    volumes: Tensor, want_h0: bool, want_top: bool, top_dim: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """H0 (with each volume's essential pair ``(min, inf)``) and/or top-dimension pairs of ``volumes``
    ``(B, D, H, W)`` (any real dtype, finite, on any device), computed there: pairs ``(P, 2)`` float64, dims and
    volume index (int64), and each volume's minimum and maximum (NumPy, as the CPU kernels return them)."""
    batch, depth, height, width = volumes.shape
    n = depth * height * width
    axes = (depth > 1, height > 1, width > 1)
    per_chunk = max(1, CHUNK_VOXELS // n)
    births, deaths, dims, index, lows, highs = [], [], [], [], [], []
    for start in range(0, batch, per_chunk):
        # float64 (integers below 2**53 exactly); + 0.0 makes -0.0 a 0.0, as the CPU kernels' keys do
        chunk = volumes[start : start + per_chunk].to(torch.float64) + 0.0
        size = chunk.shape[0]
        flat = chunk.reshape(size, n)
        sorted_values, order = torch.sort(flat, dim=1, stable=True)
        low, high = sorted_values[:, 0], sorted_values[:, -1]  # each volume's minimum and maximum
        rank = torch.empty_like(order).scatter_(1, order, torch.arange(n, device=flat.device).expand(size, n))
        rank = rank.view(chunk.shape)
        lows.append(low.cpu().numpy())
        highs.append(high.cpu().numpy())
        if want_h0:
            b, d, i = _pairs(chunk, sorted_values, rank, axes, dual=False)
            births += [b, lows[-1]]
            deaths += [d, np.full(size, np.inf)]
            index += [i + start, np.arange(start, start + size, dtype=np.int64)]
            dims += [np.zeros(len(b) + size, dtype=np.int64)]
        if want_top:
            b, d, i = _pairs(chunk, sorted_values, rank, axes, dual=True)
            births.append(b)
            deaths.append(d)
            index.append(i + start)
            dims.append(np.full(len(b), top_dim, dtype=np.int64))
    if births:
        pairs = np.stack([np.concatenate(births), np.concatenate(deaths)], axis=1)
        return pairs, np.concatenate(dims), np.concatenate(index), np.concatenate(lows), np.concatenate(highs)
    empty = np.empty(0, dtype=np.int64)
    return np.empty((0, 2)), empty, empty, np.concatenate(lows), np.concatenate(highs)
