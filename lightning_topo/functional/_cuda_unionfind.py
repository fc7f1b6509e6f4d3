"""Connected components of a batch of 3-D masks on CUDA: one union-find kernel, no labels renumbered.

Used by :func:`lightning_topo.functional.components.count_components` as the ``"cuda_uf"`` backend. The kernels
are CUDA C compiled at first use by CuPy (NVRTC; CuPy caches the binary) and run on the caller's torch stream
on tensors shared through DLPack, so counting the components of a batch needs no host synchronisation:

1. ``init``: every foreground voxel is its own parent (its linear index); background voxels get -1.
2. ``merge``: every foreground voxel joins each foreground neighbour that comes before it in raster order
   within its own volume (3 of the 6 face neighbours, or 13 of the 26 neighbours), by lock-free union-find:
   the larger of two roots is pointed at the smaller with ``atomicMin`` until both finds agree (Playne and
   Hawick's union; ``parent[x] <= x`` always holds, so the parent forest never has a cycle). Finds shorten the
   paths they walk (pointer jumping with plain stores, as ECL-CC does).
3. ``compress``: every foreground voxel points at its root.
4. ``count``: a root adds one to its volume's count; with ``bounded_only``, a voxel on the volume's boundary first
   marks its root, and marked roots are not counted (the components of a complement that touch the boundary
   are not bounded: Alexander duality gives b2 from the others).

With :data:`LEAN_KERNELS` the sequence is leaner (``uf_init_runs``, ``uf_merge_table``, ``uf_mark_boundary_roots``,
``uf_count``): see there.

Volumes of a batch never touch: neighbours are taken only inside a volume, so no separating slab is needed.
Linear indices are 32-bit: a call takes at most 2**31 - 1 voxels (callers split larger batches).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["count_components_unionfind", "euler_characteristic_cuda"]

MAX_VOXELS = 2**31 - 1

_SOURCE = r"""
extern "C" {

__device__ __forceinline__ int uf_find(int* parent, int x) {
    // The root of x, shortening the path on the way (each visited non-root voxel is pointed at its grand-parent).
    // Plain stores are safe: parent values only decrease towards the root, a non-root never becomes a root again,
    // and an ancestor is in the same set; a concurrent hook that such a store overwrites is redone by the hooking
    // loop of uf_union, which continues from the value it displaced.
    int curr = parent[x];
    if (curr != x) {
        int next, prev = x;
        while (curr > (next = parent[curr])) {
            parent[prev] = next;
            prev = curr;
            curr = next;
        }
    }
    return curr;
}

__device__ void uf_union(int* parent, int a, int b) {
    while (true) {
        a = uf_find(parent, a);
        b = uf_find(parent, b);
        if (a == b) return;
        if (a < b) { int t = a; a = b; b = t; }   // a > b: hook the larger root a onto b
        int old = atomicMin(&parent[a], b);
        if (old == a) return;                    // a was still a root: hooked
        a = old;                                 // someone hooked a meanwhile: retry from there
    }
}

__global__ void uf_init(const unsigned char* mask, int* parent, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) parent[i] = mask[i] ? (int)i : -1;
}

__global__ void uf_merge(const unsigned char* mask, int* parent, long long n, int D, int H, int W, int full) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n || !mask[i]) return;
    int w = (int)(i % W);
    int h = (int)((i / W) % H);
    int d = (int)((i / ((long long)W * H)) % D);
    for (int dz = -1; dz <= 0; ++dz) {
        for (int dy = -1; dy <= 1; ++dy) {
            for (int dx = -1; dx <= 1; ++dx) {
                // Only neighbours before i in raster order: (dz, dy, dx) < (0, 0, 0) lexicographically.
                if (dz == 0 && (dy > 0 || (dy == 0 && dx >= 0))) continue;
                if (!full && (dz != 0) + (dy != 0) + (dx != 0) != 1) continue;  // 6-connectivity: faces only
                int z = d + dz, y = h + dy, x = w + dx;
                if (z < 0 || y < 0 || x < 0 || x >= W || y >= H) continue;
                long long j = i + (long long)dz * H * W + (long long)dy * W + dx;
                if (mask[j]) uf_union(parent, (int)i, (int)j);
            }
        }
    }
}

__global__ void uf_compress(int* parent, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n && parent[i] >= 0) parent[i] = uf_find(parent, (int)i);
}

__global__ void uf_mark_boundary(const int* parent, unsigned char* touches, long long n, int D, int H, int W) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n || parent[i] < 0) return;
    int w = (int)(i % W);
    int h = (int)((i / W) % H);
    int d = (int)((i / ((long long)W * H)) % D);
    if (d == 0 || d == D - 1 || h == 0 || h == H - 1 || w == 0 || w == W - 1) touches[parent[i]] = 1;
}

__global__ void uf_count(const int* parent, const unsigned char* touches, long long* counts, long long n,
                         long long per_volume, int bounded_only) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n || parent[i] != (int)i) return;
    if (bounded_only && touches[i]) return;
    atomicAdd((unsigned long long*)&counts[i / per_volume], 1ULL);
}

// The lean sequence (LEAN_KERNELS): uf_init_runs, uf_merge_table, [uf_mark_boundary_roots], uf_count.

__global__ void uf_init_runs(const unsigned char* mask, int* parent, long long n, int W) {
    // As uf_init, with each foreground voxel already joined to its left neighbour (w - 1) when that one is
    // foreground: it points at the first voxel of its run along the row within its warp (found by one ballot), or,
    // when the run began before the warp, at the voxel just before the warp (foreground, in the same row).
    // parent[i] <= i still holds. blockDim.x must be a multiple of 32: a warp is 32 consecutive voxels.
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    int lane = threadIdx.x & 31;
    bool fg = i < n && mask[i];
    bool start = fg && !((int)(i % W) > 0 && mask[i - 1]);
    unsigned starts = __ballot_sync(0xffffffffu, start);  // every lane takes part, also those past n
    if (i >= n) return;
    if (!fg) { parent[i] = -1; return; }
    unsigned upto = starts & (0xffffffffu >> (31 - lane));  // the starts among lanes 0..lane
    parent[i] = upto ? (int)(i - lane + (31 - __clz(upto))) : (int)(i - lane - 1);
}

__global__ void uf_merge_table(const unsigned char* mask, int* parent, long long n, int D, int H, int W,
                               const short* reps) {
    // As uf_merge after uf_init_runs, with only the unions other unions do not imply: two earlier foreground
    // neighbours of i that are adjacent are joined by the time all unions are done (by induction over raster order,
    // an earlier voxel is joined to its earlier foreground neighbours), and the left one is joined already. So i
    // joins one neighbour per group of them, as `reps` (8192 entries: _merge_tables) says for the 13-bit code of
    // which earlier neighbours are set.
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n || !mask[i]) return;
    int w = (int)(i % W);
    int h = (int)((i / W) % H);
    int d = (int)((i / ((long long)W * H)) % D);
    long long HW = (long long)H * W;
    unsigned code = 0;
    int k = 0;
    for (int dz = -1; dz <= 0; ++dz) {
        for (int dy = -1; dy <= 1; ++dy) {
            for (int dx = -1; dx <= 1; ++dx) {
                if (dz == 0 && (dy > 0 || (dy == 0 && dx >= 0))) continue;  // the 13 before i in raster order
                int z = d + dz, y = h + dy, x = w + dx;
                if (z >= 0 && y >= 0 && y < H && x >= 0 && x < W && mask[i + dz * HW + (long long)dy * W + dx]) {
                    code |= 1u << k;
                }
                ++k;
            }
        }
    }
    unsigned chosen = (unsigned)(unsigned short)reps[code];
    while (chosen) {
        int bit = __ffs(chosen) - 1;  // bits 0-8: dz = -1, (dy, dx) row by row; bits 9-12: dz = 0, the same
        chosen &= chosen - 1;
        int r = bit < 9 ? bit : bit - 9;
        long long j = i + (bit < 9 ? -HW : 0) + (long long)(r / 3 - 1) * W + (r % 3 - 1);
        uf_union(parent, (int)i, (int)j);
    }
}

__global__ void euler_count(const unsigned char* mask, long long* counts, long long n, long long per_volume, int D,
                            int H, int W) {
    // The Euler characteristic V - E + S - C of each volume's complex in one pass: a voxel counts the cells whose
    // lowest corner it is (all their corners set). A warp adds its lanes' terms when they all lie in one volume
    // (else each lane adds its own), and thread 0 adds the warps' sums, one atomic per volume the block meets.
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    long long vol = i < n ? i / per_volume : -1;
    int term = 0;
    if (i < n && mask[i]) {
        int w = (int)(i % W);
        int h = (int)((i / W) % H);
        int d = (int)((i / ((long long)W * H)) % D);
        long long HW = (long long)H * W;
        bool pw = w + 1 < W && mask[i + 1];
        bool ph = h + 1 < H && mask[i + W];
        bool pd = d + 1 < D && mask[i + HW];
        bool phw = pw && ph && mask[i + W + 1];
        bool pdw = pw && pd && mask[i + HW + 1];
        bool pdh = ph && pd && mask[i + HW + W];
        bool cube = phw && pdw && pdh && mask[i + HW + W + 1];
        term = 1 - ((int)pw + (int)ph + (int)pd) + ((int)phw + (int)pdw + (int)pdh) - (int)cube;
    }
    __shared__ long long warp_sum[32];
    __shared__ long long warp_vol[32];
    long long first = __shfl_sync(0xffffffffu, vol, 0);
    long long last = __shfl_sync(0xffffffffu, vol, 31);
    bool uniform = first == last && first >= 0;
    if (uniform) {
        for (int offset = 16; offset > 0; offset >>= 1) term += __shfl_down_sync(0xffffffffu, term, offset);
    } else if (vol >= 0 && term != 0) {
        atomicAdd((unsigned long long*)&counts[vol], (unsigned long long)(long long)term);
    }
    if (lane == 0) {
        warp_sum[warp] = uniform ? (long long)term : 0;
        warp_vol[warp] = uniform ? first : -1;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        long long current = -1, sum = 0;
        for (int k = 0; k < (int)(blockDim.x >> 5); ++k) {
            if (warp_vol[k] != current) {
                if (current >= 0 && sum != 0) atomicAdd((unsigned long long*)&counts[current], (unsigned long long)sum);
                current = warp_vol[k];
                sum = 0;
            }
            sum += warp_sum[k];
        }
        if (current >= 0 && sum != 0) atomicAdd((unsigned long long*)&counts[current], (unsigned long long)sum);
    }
}

__global__ void uf_mark_boundary_roots(int* parent, unsigned char* touches, long long n, int D, int H, int W) {
    // As uf_mark_boundary without uf_compress: a voxel on the boundary finds its root (the merge is complete)
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n || parent[i] < 0) return;
    int w = (int)(i % W);
    int h = (int)((i / W) % H);
    int d = (int)((i / ((long long)W * H)) % D);
    if (d == 0 || d == D - 1 || h == 0 || h == H - 1 || w == 0 || w == W - 1) touches[uf_find(parent, (int)i)] = 1;
}

}
"""

_THREADS = 256  # a multiple of 32: uf_init_runs takes a warp for 32 consecutive voxels

LEAN_KERNELS = False
"""Count with the lean sequence (``uf_init_runs``, ``uf_merge_table``, ``uf_mark_boundary_roots``, ``uf_count``)
instead of ``uf_init``, ``uf_merge``, ``uf_compress``, ``uf_mark_boundary``, ``uf_count``: left neighbours joined by
a warp ballot, one union per group of earlier neighbours joined through each other (a table, :func:`_merge_tables`;
on ReLU-like 64x56x56 and 64x112x112 maps at their mean, counted on the CPU: 0.25 unions per foreground voxel
instead of 2.25 with 6-connectivity, 0.47 instead of 5.3 with 26), and no compression pass (roots are counted as
they are; only boundary voxels find theirs); and :func:`~lightning_topo.functional.cubical.euler_characteristic` of
CUDA masks in one kernel (``euler_count``), not eight shifted ANDs and counts. The same numbers; off until a GPU run
measures it (``benchmarks/gpu``: stages ``ccl``, ``sizes`` and ``eval`` time both)."""


@functools.lru_cache(maxsize=1)
def _merge_tables() -> dict[int, np.ndarray]:
    """For ``uf_merge_table``, per connectivity (6, 26): for each 13-bit code of which of a voxel's 13 earlier
    neighbours are set (in the kernel's order: dz, dy, dx each from -1 up, (dz, dy, dx) < (0, 0, 0)), the bits of
    those it joins: one per group of set ones joined through set ones among them (26: adjacent; 6: sharing a
    face), none for the left neighbour's group (joined by ``uf_init_runs``); with 6-connectivity only groups that
    hold one of its face neighbours, and one of those (above or behind). int16 ``(8192,)``."""
    offsets = [(dz, dy, dx) for dz in (-1, 0) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dz, dy, dx) < (0, 0, 0)]
    present = (np.arange(1 << 13)[:, None] >> np.arange(13)) & 1 == 1
    left, up, back = offsets.index((0, 0, -1)), offsets.index((0, -1, 0)), offsets.index((-1, 0, 0))
    tables = {}
    for connectivity, reach in ((6, 1), (26, 3)):
        pairs = [
            (a, b)
            for a in range(13)
            for b in range(a + 1, 13)
            if max(abs(p - q) for p, q in zip(offsets[a], offsets[b], strict=True)) <= 1
            and sum(abs(p - q) for p, q in zip(offsets[a], offsets[b], strict=True)) <= reach
        ]
        label = np.where(present, np.arange(13), 13)  # each group's smallest position, by 13 rounds of relaxing
        for _ in range(13):
            for a, b in pairs:
                both = present[:, a] & present[:, b]
                low = np.minimum(label[:, a], label[:, b])
                label[both, a] = low[both]
                label[both, b] = low[both]
        apart = ~present[:, [left]] | (label != label[:, [left]])  # not in the left neighbour's group
        if connectivity == 26:
            chosen = present & (label == np.arange(13)) & apart
        else:
            chosen = np.zeros_like(present)
            chosen[:, back] = present[:, back] & apart[:, back]
            chosen[:, up] = present[:, up] & apart[:, up] & ~(chosen[:, back] & (label[:, up] == label[:, back]))
        tables[connectivity] = (chosen * (1 << np.arange(13))).sum(axis=1).astype(np.int16)
    return tables


_DEVICE_TABLES: dict[tuple[int, str], Tensor] = {}


def _device_table(connectivity: int, device: torch.device) -> Tensor:
    """:func:`_merge_tables`' table for ``connectivity`` on ``device`` (copied there once)."""
    key = (connectivity, str(device))
    if key not in _DEVICE_TABLES:
        _DEVICE_TABLES[key] = torch.from_numpy(_merge_tables()[connectivity]).to(device)
    return _DEVICE_TABLES[key]


@contextmanager
def _torch_stream(device: torch.device) -> Iterator[None]:
    """CuPy's launches go to torch's current stream on ``device`` meanwhile (no synchronisation between them)."""
    import cupy

    with cupy.cuda.Device(device.index):
        pointer = torch.cuda.current_stream(device).cuda_stream
        stream: Any = cupy.cuda.Stream.null if pointer == 0 else cupy.cuda.ExternalStream(pointer)
        with stream:
            yield


@functools.lru_cache(maxsize=1)
def _kernels() -> dict[str, Any]:
    import cupy

    module = cupy.RawModule(code=_SOURCE, options=("-std=c++14",))
    names = ("uf_init", "uf_merge", "uf_compress", "uf_mark_boundary", "uf_count")
    names += ("uf_init_runs", "uf_merge_table", "uf_mark_boundary_roots", "euler_count")
    return {name: module.get_function(name) for name in names}


def count_components_unionfind(masks: Tensor, connectivity: int, bounded_only: bool) -> Tensor:
    """Components per volume of a CUDA bool batch ``(B, D, H, W)``: int64 ``(B,)`` on its device, no host sync.

    ``bounded_only`` counts only the components that do not touch the volume's boundary.
    """
    if masks.device.type != "cuda":
        raise ValueError(f"backend='cuda_uf' needs CUDA tensors, got a tensor on {masks.device}.")
    import cupy

    batch, depth, height, width = masks.shape
    per_volume = depth * height * width
    if batch == 0 or per_volume == 0:
        return torch.zeros(batch, dtype=torch.int64, device=masks.device)
    step = max(1, MAX_VOXELS // per_volume)
    if per_volume > MAX_VOXELS:
        raise ValueError(f"backend='cuda_uf' takes volumes of fewer than 2**31 voxels, got {tuple(masks.shape)}.")
    if batch > step:
        parts = [masks[i : i + step] for i in range(0, batch, step)]
        return torch.cat([count_components_unionfind(p, connectivity, bounded_only) for p in parts])
    kernels = _kernels()
    mask = masks.contiguous().view(torch.uint8).reshape(-1)
    n = mask.numel()
    parent = torch.empty(n, dtype=torch.int32, device=masks.device)
    touches = torch.zeros(n if bounded_only else 1, dtype=torch.uint8, device=masks.device)
    counts = torch.zeros(batch, dtype=torch.int64, device=masks.device)
    blocks = ((n + _THREADS - 1) // _THREADS,)
    threads = (_THREADS,)
    c = {name: cupy.from_dlpack(t) for name, t in (("mask", mask), ("parent", parent), ("touches", touches))}
    c["counts"] = cupy.from_dlpack(counts)
    n64 = np.int64(n)
    shape = (np.int32(depth), np.int32(height), np.int32(width))
    with _torch_stream(masks.device):
        if LEAN_KERNELS:
            kernels["uf_init_runs"](blocks, threads, (c["mask"], c["parent"], n64, shape[2]))
            reps = cupy.from_dlpack(_device_table(connectivity, masks.device))
            kernels["uf_merge_table"](blocks, threads, (c["mask"], c["parent"], n64, *shape, reps))
            if bounded_only:
                kernels["uf_mark_boundary_roots"](blocks, threads, (c["parent"], c["touches"], n64, *shape))
        else:
            kernels["uf_init"](blocks, threads, (c["mask"], c["parent"], n64))
            full = np.int32(1 if connectivity == 26 else 0)
            kernels["uf_merge"](blocks, threads, (c["mask"], c["parent"], n64, *shape, full))
            kernels["uf_compress"](blocks, threads, (c["parent"], n64))
            if bounded_only:
                kernels["uf_mark_boundary"](blocks, threads, (c["parent"], c["touches"], n64, *shape))
        args = (c["parent"], c["touches"], c["counts"], n64, np.int64(per_volume), np.int32(bounded_only))
        kernels["uf_count"](blocks, threads, args)
    return counts


def euler_characteristic_cuda(masks: Tensor) -> Tensor:
    """Euler characteristic ``V - E + S - C`` of each mask of a CUDA bool batch ``(B, D, H, W)`` (the complex of
    :func:`~lightning_topo.functional.cubical.euler_characteristic`) in one pass: int64 ``(B,)``, no host sync."""
    if masks.device.type != "cuda":
        raise ValueError(f"euler_characteristic_cuda needs CUDA tensors, got a tensor on {masks.device}.")
    import cupy

    batch, depth, height, width = masks.shape
    counts = torch.zeros(batch, dtype=torch.int64, device=masks.device)
    if batch == 0 or depth * height * width == 0:
        return counts
    mask = masks.contiguous().view(torch.uint8).reshape(-1)
    n = mask.numel()
    args = (cupy.from_dlpack(mask), cupy.from_dlpack(counts), np.int64(n), np.int64(depth * height * width))
    with _torch_stream(masks.device):
        blocks = ((n + _THREADS - 1) // _THREADS,)
        _kernels()["euler_count"](blocks, (_THREADS,), (*args, np.int32(depth), np.int32(height), np.int32(width)))
    return counts
