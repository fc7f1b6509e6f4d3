"""Connected-component counting for batches of binary 3-D volumes.

This is the one step of the cubical Betti computation that is not a plain elementwise tensor op.
It is dispatched by device, with identical results on every backend:

* ``"numba"`` (the CPU default when numba imports: ``pip install lightning-topo[fast]``; see :data:`CPU_AUTO`): our own
  compiled union-find (:mod:`lightning_topo.functional._cpu_unionfind`): one raster pass per volume, no labels, no
  stacking; it releases the GIL, so chunks of the batch run on :func:`torch.get_num_threads` threads (set it with
  :func:`torch.set_num_threads`). Compiled at first use, cached on disk after that.
* ``"cc3d"`` (the CPU default without numba): the `connected-components-3d` C++ labeller, run **once per
  batch** on all volumes stacked along the first axis with a separating slab between them, so the
  per-call overhead is paid once, not once per volume. Labels come out numbered 1..N in raster
  order, so the components of volume ``i`` occupy one contiguous label range and a running maximum
  over the slabs counts them.
* ``"scipy"``: the same stacking with :func:`scipy.ndimage.label` (kept as a reference backend).
* ``"cupy"`` (CUDA tensors only; the default there when CuPy is installed, see
  :data:`CUDA_AUTO_ORDER`): the same stacking, built with tensor ops on the GPU and labelled by
  :func:`cupyx.scipy.ndimage.label` in one call per batch. The tensors are handed to CuPy through
  DLPack (zero copy) on the caller's CUDA stream; only the number of labels and one validity flag
  reach the host.
* ``"cuda_uf"`` (CUDA tensors only; needs CuPy to compile it; the default there when CuPy is installed):
  our own union-find kernel (:mod:`lightning_topo.functional._cuda_unionfind`): every volume labelled where
  it lies, no separating slabs, no renumbering, the counts summed on the device (no host sync).
* ``"torch"`` (the default for other accelerators, and on CUDA without CuPy): pure tensor ops on the
  input's device — union-find style hooking and shortcutting (FastSV: every voxel points at a voxel
  of its own component with a smaller or equal index; each round hooks trees onto the smallest
  grand-parent label in their neighbourhood and halves the paths). Convergence is checked every few
  rounds only (:data:`TORCH_CHECK_EVERY`), so a GPU does several rounds per host sync. Exact on every
  device; on a CPU it is much slower than ``cc3d`` and is used there only when asked.

Why the ``torch`` rounds are exact: let ``f`` be the parent array. Every update is a minimum of the
current value with ``f[f[v]]`` of a voxel ``v`` of the same component, so ``f[x] <= x`` and ``f[x]``
stays in ``x``'s component. When a whole round changes nothing, ``f[u] <= f[f[u]] <= f[u]`` (every
voxel points at a root) and ``f[u] <= f[f[v]] = f[v]`` for every neighbour ``v`` (and vice versa), so
each component holds exactly one root: counting the voxels with ``f[x] == x`` counts the components,
whatever the number of rounds it took.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "BACKENDS",
    "CPU_AUTO",
    "CUDA_AUTO_ORDER",
    "CUDA_TORCH_BELOW_PIXELS",
    "CUDA_TORCH_BELOW_STACK_VOXELS",
    "TORCH_CHECK_EVERY",
    "count_components",
    "cuda_auto_labeller",
    "resolve_backend",
]

Backend = Literal["auto", "numba", "cc3d", "scipy", "torch", "cupy", "cuda_uf"]
BACKENDS: tuple[str, ...] = ("auto", "numba", "cc3d", "scipy", "torch", "cupy", "cuda_uf")

CPU_AUTO = "numba"
"""What ``backend="auto"`` uses on CPU tensors: ``"numba"`` (only when numba imports, else cc3d) or ``"cc3d"``.
With numba, :func:`lightning_topo.functional.cubical_betti` runs one fused compiled kernel per batch (masks,
Euler characteristic by popcount on bit-packed rows, b0 and b2 by union-find over runs; see
``benchmarks/bench_layers.out.txt``: several times faster than cc3d per ResNet18 volume, most on the small deep
layers). A kernel that fails under ``"auto"`` is dropped from it with a warning, and cc3d gives the same numbers."""

CUDA_AUTO_ORDER: tuple[str, ...] = ("cuda_uf", "cupy", "torch")
"""What ``backend="auto"`` uses on CUDA tensors: the first of these that is available (a labeller that fails
under ``"auto"`` is dropped from the order with a warning; the next gives the same numbers).

``"cuda_uf"``, our union-find kernel, labels each volume where it lies (no stack with separating slabs, no
renumbering of labels, no host sync); CuPy's ``label`` stacks the batch, renumbers its labels in raster order
and reads the count back; the torch backend runs 8-10 rounds of some 15 element-wise kernels on 64-bit labels.
``benchmarks/gpu`` (stage ``sizes``) times all three per call at the batch sizes the callback buffers. Before
the kernel, an H200 measured (ms per b0 + b2 pair of calls, torch / cupy) at 2000 buffered 32x32-input
volumes: 64x16x16 73 / 77, 64x8x8 22 / 54, 128x4x4 18 / 50; at 224x224 inputs: 64x56x56 (batch 512) 298 / 53,
256x14x14 (1536) 214 / 307, 512x7x7 (2000) 162 / 320.
"""

CUDA_TORCH_BELOW_PIXELS = 400
"""On CUDA, ``"auto"`` uses the torch backend for volumes whose two last axes hold fewer than this many voxels
(H x W), whatever :data:`CUDA_AUTO_ORDER` says (see :func:`cuda_auto_labeller`). Measured on an H200 (ms per
volume, batches of 64, ReLU-like volumes at their mean): 512x7x7 torch 0.14 / cupy 0.59, 256x14x14 0.19 / 0.28,
128x28x28 0.34 / 0.16, 64x56x56 0.51 / 0.15: short label paths converge in few torch rounds, while CuPy pays per
voxel of the stack with its separating slabs. ``benchmarks/gpu`` (stage ``sizes``) times both backends per call
at the batch sizes the callback buffers and prints the rule its measurements suggest."""

CUDA_TORCH_BELOW_STACK_VOXELS = 0
"""On CUDA, ``"auto"`` also uses the torch backend for batches holding fewer than this many voxels in all
(B x D x H x W); 0 turns this part of the rule off (see :func:`cuda_auto_labeller`)."""


def cuda_auto_labeller(shape: tuple[int, ...]) -> str:
    """The labeller ``backend="auto"`` uses for a CUDA batch of masks of ``shape`` ``(B, D, H, W)`` when CuPy works:
    ``"torch"`` below :data:`CUDA_TORCH_BELOW_PIXELS` voxels per plane (H x W) or below
    :data:`CUDA_TORCH_BELOW_STACK_VOXELS` voxels per batch, else ``"cupy"``. The constants are the whole rule.

    Example:
        >>> cuda_auto_labeller((64, 512, 7, 7)), cuda_auto_labeller((64, 64, 56, 56))
        ('torch', 'cupy')
    """
    batch, depth, height, width = shape
    if height * width < CUDA_TORCH_BELOW_PIXELS or batch * depth * height * width < CUDA_TORCH_BELOW_STACK_VOXELS:
        return "torch"
    return "cupy"


TORCH_CHECK_EVERY: dict[str, int] = {"cpu": 1}
"""Rounds of the ``torch`` backend between convergence checks (host syncs), by device type.

Default for devices not listed: ``_DEFAULT_CHECK_EVERY``. On the CPU a check costs nothing and a
wasted round costs a full pass, so it checks every round; on an accelerator a sync stalls the queue
and extra rounds after convergence are cheap no-ops.
"""
_DEFAULT_CHECK_EVERY = 4

_MAX_STACK_VOXELS = 2**30
"""CuPy's labeller indexes with 32-bit ints: batches are split so that one stack stays below this."""


def _cupy_available() -> bool:
    """Whether CuPy with ``cupyx.scipy.ndimage`` imports and sees a CUDA device (cached)."""
    return _cupy_status()[0]


@functools.lru_cache(maxsize=1)
def _cupy_status() -> tuple[bool, str]:
    try:
        import cupy
        import cupyx.scipy.ndimage  # noqa: F401

        if not cupy.cuda.is_available():
            return False, "CuPy sees no CUDA device"
    except Exception as err:  # ImportError, or a CUDA library mismatch at import
        return False, f"{type(err).__name__}: {err}"
    return True, ""


@functools.lru_cache(maxsize=1)
def _numba_available() -> bool:
    """Whether numba imports (cached; the first call costs numba's import, about 0.2 s)."""
    try:
        import numba  # noqa: F401
    except Exception:  # ImportError, or an llvmlite / NumPy mismatch at import
        return False
    return True


def _is_cupy_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is CuPy's out-of-memory error (by type; CuPy is imported only when it is installed)."""
    try:
        import cupy
    except ImportError:
        return False
    return isinstance(err, cupy.cuda.memory.OutOfMemoryError)


_BROKEN_AUTO: set[str] = set()
"""Backends that ``"auto"`` stopped using after they raised (with a one-time warning)."""


def resolve_backend(backend: str, device: torch.device) -> str:
    """Validate ``backend`` and map ``"auto"`` to the backend used for tensors on ``device``.

    ``"auto"`` is :data:`CPU_AUTO` on the CPU (``"numba"`` only when numba imports), the first available of
    :data:`CUDA_AUTO_ORDER` on CUDA, and ``"torch"`` on any other device. An explicit ``"cupy"`` needs CUDA
    tensors (checked when it runs).
    """
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}.")
    if backend != "auto":
        return backend
    if device.type == "cpu":
        if CPU_AUTO == "numba" and "numba" not in _BROKEN_AUTO and _numba_available():
            return "numba"
        return "cc3d"
    if device.type == "cuda":
        for name in CUDA_AUTO_ORDER:
            if name in _BROKEN_AUTO:
                continue
            if name not in ("cupy", "cuda_uf") or _cupy_available():
                return name
    return "torch"


def count_components(
    masks: Tensor, connectivity: Literal[6, 26], *, bounded_only: bool = False, backend: str = "auto"
) -> Tensor:
    """Count the connected components of each binary volume in a batch.

    Args:
        masks: boolean tensor ``(B, D, H, W)``.
        connectivity: ``6`` (voxels sharing a face) or ``26`` (sharing a face, edge or corner).
        bounded_only: count only the components that do not touch the volume's boundary (the
            bounded components of a complement, which give b2 by Alexander duality).
        backend: ``"auto"``, ``"numba"``, ``"cc3d"``, ``"scipy"``, ``"cupy"``, ``"cuda_uf"`` or ``"torch"`` (see the
            module docstring). Every backend gives the same counts.

    Returns:
        int64 tensor ``(B,)`` on the device of ``masks`` (zeros for volumes without voxels; empty for ``B = 0``).

    Raises:
        ValueError: a bad ``connectivity``, ``masks`` or ``backend``, or ``"cupy"`` on non-CUDA tensors.
        ImportError: ``"cupy"`` asked for explicitly and CuPy is not installed.

    Example:
        >>> m = torch.zeros(1, 3, 3, 3, dtype=torch.bool)
        >>> m[0, 0, 0, 0] = m[0, 2, 2, 2] = True
        >>> count_components(m, 6).tolist(), count_components(~m, 26, bounded_only=True).tolist()
        ([2], [0])
    """
    checks: list[Tensor] = []
    counts = _count_components(masks, connectivity, bounded_only, backend, checks)
    if not labels_ordered(checks):
        fall_back_or_raise(backend)
        counts = _count_torch(masks, connectivity, bounded_only)
    return counts


def labels_ordered(checks: list[Tensor]) -> bool:
    """Whether every flag of ``checks`` (from :func:`_count_components`) holds: one host sync for all of them,
    none when the list is empty."""
    return not checks or bool(torch.stack(checks).all())


def drop_from_auto(name: str, err: BaseException) -> None:
    """Stop ``backend="auto"`` from using ``name`` after it raised ``err`` (a one-time warning; the next backend gives
    the same numbers)."""
    _BROKEN_AUTO.add(name)
    warnings.warn(
        f"lightning_topo: the {name} backend failed ({type(err).__name__}: {err}); backend='auto' uses the next "
        "backend from now on (same results).",
        RuntimeWarning,
        stacklevel=3,
    )


def fall_back_or_raise(backend: str) -> None:
    """After CuPy numbered labels out of raster order: under ``"auto"`` stop using CuPy (with a warning; the
    caller recomputes with the torch backend), else raise."""
    if backend != "auto":
        raise RuntimeError(
            "count_components: the labeller did not number components in raster order; the per-volume counts "
            "would be wrong. Use backend='torch'."
        )
    _BROKEN_AUTO.add("cupy")
    warnings.warn(
        "count_components: the CuPy backend numbered components out of raster order; backend='auto' uses the torch "
        "backend on CUDA from now on (same results, slower).",
        RuntimeWarning,
        stacklevel=3,
    )


def _count_components(
    masks: Tensor, connectivity: int, bounded_only: bool, backend: str, checks: list[Tensor]
) -> Tensor:
    """:func:`count_components`, with the stacked CUDA path's validity flags appended to ``checks`` (0-d bool
    tensors on the device) instead of checked at once, so a caller pays one host sync for several calls."""
    if connectivity not in (6, 26):
        raise ValueError(f"`connectivity` must be 6 or 26, got {connectivity!r}.")
    if masks.ndim != 4 or masks.dtype != torch.bool:
        raise ValueError(f"`masks` must be a bool tensor (B, D, H, W), got {masks.dtype} {tuple(masks.shape)}.")
    name = resolve_backend(backend, masks.device)
    if masks.numel() == 0:  # no volume, or volumes without voxels: no component (no labeller is asked)
        return torch.zeros(masks.shape[0], dtype=torch.int64, device=masks.device)
    if backend == "auto" and name == "cupy":
        name = cuda_auto_labeller(tuple(masks.shape))
    if name == "torch":
        return _count_torch(masks, connectivity, bounded_only)
    if name == "cuda_uf":
        from lightning_topo.functional._cuda_unionfind import count_components_unionfind

        if backend != "auto":
            return count_components_unionfind(masks, connectivity, bounded_only)
        try:
            return count_components_unionfind(masks, connectivity, bounded_only)
        except Exception as err:  # the kernel does not compile here: the other labellers give the same numbers
            if isinstance(err, torch.cuda.OutOfMemoryError) or _is_cupy_out_of_memory(err):
                raise
            _BROKEN_AUTO.add("cuda_uf")
            warnings.warn(
                f"count_components: the CUDA union-find kernel failed ({type(err).__name__}: {err}); "
                "backend='auto' uses the next labeller from now on (same results).",
                RuntimeWarning,
                stacklevel=3,
            )
            return _count_components(masks, connectivity, bounded_only, backend, checks)
    if name == "cupy":
        if backend != "auto":
            return _count_stacked_torch(masks, connectivity, bounded_only, _label_cupy, checks)
        try:
            return _count_stacked_torch(masks, connectivity, bounded_only, _label_cupy, checks)
        except Exception as err:  # a broken CuPy install: the torch rounds give the same numbers
            if isinstance(err, torch.cuda.OutOfMemoryError) or _is_cupy_out_of_memory(err):
                raise  # not CuPy's fault, and the torch rounds need more memory still
            _BROKEN_AUTO.add("cupy")
            warnings.warn(
                f"count_components: the CuPy backend failed ({type(err).__name__}: {err}); backend='auto' "
                "uses the torch backend on CUDA from now on (same results, slower).",
                RuntimeWarning,
                stacklevel=3,
            )
            return _count_torch(masks, connectivity, bounded_only)
    if name == "numba":
        if backend != "auto":
            return _count_numba(masks, connectivity, bounded_only)
        try:
            return _count_numba(masks, connectivity, bounded_only)
        except Exception as err:  # numba imports but cannot compile here: cc3d gives the same numbers
            if isinstance(err, MemoryError):
                raise
            _BROKEN_AUTO.add("numba")
            warnings.warn(
                f"count_components: the numba union-find failed ({type(err).__name__}: {err}); backend='auto' uses "
                "cc3d on the CPU from now on (same results).",
                RuntimeWarning,
                stacklevel=3,
            )
            name = "cc3d"
    counts = _count_stacked_numpy(masks.cpu().numpy(), connectivity, bounded_only, name)
    return torch.from_numpy(counts).to(masks.device)


def _count_numba(masks: Tensor, connectivity: int, bounded_only: bool) -> Tensor:
    try:
        from lightning_topo.functional._cpu_unionfind import count_components_numba
    except ImportError as err:
        raise ImportError("backend='numba' needs numba: pip install 'lightning-topo[fast]' (or numba).") from err
    counts = count_components_numba(masks.detach().cpu().numpy(), connectivity, bounded_only)
    return torch.from_numpy(counts).to(masks.device)


# --------------------------------------------------------------------------------------------
# CPU: one labelling call over the whole batch
# --------------------------------------------------------------------------------------------
def _label_numpy(stack: np.ndarray, connectivity: int, backend: str) -> np.ndarray:
    if backend == "cc3d":
        import cc3d

        if sum(side > 1 for side in stack.shape) <= 1:
            # On a line 26 and 6 mean the same two neighbours; cc3d 4.1 undercounts the labels a line needs with
            # connectivity 26 and raises ("maximum length exception") when every other voxel is set
            connectivity = 6
        return cc3d.connected_components(stack, connectivity=connectivity)
    from scipy import ndimage

    structure = ndimage.generate_binary_structure(3, 1 if connectivity == 6 else 3)
    labels, _ = ndimage.label(stack, structure=structure)
    return labels


def _count_stacked_numpy(masks: np.ndarray, connectivity: int, bounded_only: bool, backend: str) -> np.ndarray:
    batch, depth, height, width = masks.shape
    slab = depth + 1
    if bounded_only:
        # Every volume sits in an "outside" frame: a True slab before it and a True rim in H and W.
        # All components touching a boundary merge with the frame, which is label 1 (it holds the
        # first voxel of the raster scan); the bounded ones keep labels inside their slab's range.
        stack = np.ones((batch * slab + 1, height + 2, width + 2), dtype=bool)
        view = stack[:-1].reshape(batch, slab, height + 2, width + 2)
        view[:, 1:, 1:-1, 1:-1] = masks
        first_label = 1
    else:
        stack = np.zeros((batch * slab, height, width), dtype=bool)
        stack.reshape(batch, slab, height, width)[:, :depth] = masks
        first_label = 0
    labels = _label_numpy(stack, connectivity, backend)
    per_slab = labels[: batch * slab].reshape(batch, -1).max(axis=1).astype(np.int64)
    running = np.maximum.accumulate(np.concatenate([[first_label], per_slab]))
    return np.diff(running)


# --------------------------------------------------------------------------------------------
# CUDA: the same stacking as tensor ops, labelled by CuPy through DLPack
# --------------------------------------------------------------------------------------------
Labeller = Callable[[Tensor, int, Tensor], int]
"""``labeller(stack_uint8, connectivity, out_int32) -> number of labels``: labels ``stack`` into ``out``
(0 = background, components numbered 1..N in raster order of their first voxel, as scipy does)."""


def _label_cupy(stack: Tensor, connectivity: int, out: Tensor) -> int:
    """Label a uint8 CUDA tensor into the int32 tensor ``out`` with :func:`cupyx.scipy.ndimage.label`.

    Both tensors are shared with CuPy through DLPack (no copy), and CuPy runs on the caller's current
    torch stream, so no extra synchronisation is needed. CuPy numbers the components in raster order
    of their first voxel (its union-find links every root to the smaller index; the roots are then
    sorted), as scipy does; :func:`_count_stacked_torch` checks that property on every call.
    """
    if stack.device.type != "cuda":
        raise ValueError(f"backend='cupy' needs CUDA tensors, got a tensor on {stack.device}.")
    try:
        import cupy
        from cupyx.scipy import ndimage
    except ImportError as err:
        raise ImportError(
            "backend='cupy' needs CuPy: pip install cupy-cuda12x (or cupy-cuda13x, matching torch.version.cuda)."
        ) from err
    structure = np.ones((3, 3, 3), dtype=bool) if connectivity == 26 else None  # None: the 6-neighbourhood
    with cupy.cuda.Device(stack.device.index):
        pointer = torch.cuda.current_stream(stack.device).cuda_stream
        stream: Any = cupy.cuda.Stream.null if pointer == 0 else cupy.cuda.ExternalStream(pointer)
        with stream:
            return int(ndimage.label(cupy.from_dlpack(stack), structure=structure, output=cupy.from_dlpack(out)))


def _count_stacked_torch(
    masks: Tensor, connectivity: int, bounded_only: bool, labeller: Labeller, checks: list[Tensor]
) -> Tensor:
    """The CPU path's stacking and running-maximum count, as tensor ops on the masks' device.

    Batches whose stack would exceed ``_MAX_STACK_VOXELS`` are labelled in several calls. The flag saying that
    the labels came in raster order (so the counts are right) is appended to ``checks``, not synced here.
    """
    batch, depth, height, width = masks.shape
    frame = 2 if bounded_only else 0
    per_volume = (depth + 1) * (height + frame) * (width + frame)
    step = max(1, _MAX_STACK_VOXELS // per_volume)
    if batch > step:
        parts = [masks[i : i + step] for i in range(0, batch, step)]
        return torch.cat([_count_stacked_torch(p, connectivity, bounded_only, labeller, checks) for p in parts])
    slab = depth + 1
    if bounded_only:
        # As on the CPU: a True slab before each volume, a True rim in H and W, one True slab at the end.
        stack = torch.ones((batch * slab + 1, height + 2, width + 2), dtype=torch.uint8, device=masks.device)
        stack[:-1].view(batch, slab, height + 2, width + 2)[:, 1:, 1:-1, 1:-1] = masks
        first_label = 1
    else:
        stack = torch.zeros((batch * slab, height, width), dtype=torch.uint8, device=masks.device)
        stack.view(batch, slab, height, width)[:, :depth] = masks
        first_label = 0
    labels = torch.empty(stack.shape, dtype=torch.int32, device=masks.device)
    n_labels = labeller(stack, connectivity, labels)
    per_slab = labels[: batch * slab].reshape(batch, -1)
    top = per_slab.amax(dim=1).to(torch.int64)
    start = torch.full((1,), first_label, dtype=torch.int64, device=masks.device)
    running = torch.cummax(torch.cat([start, top]), dim=0).values
    counts = running.diff()
    # The counts are right only if the labels of each slab are one contiguous range right after the
    # previous slab's (and the frame is label 1): check it. A slab that adds no label must hold none
    # besides the frame; one that adds some must start at the previous running maximum + 1.
    none = torch.iinfo(torch.int32).max
    low = torch.where(per_slab > first_label, per_slab, none).amin(dim=1).to(torch.int64)
    ordered = torch.where(counts > 0, low == running[:-1] + 1, low == none).all()
    ordered &= running[-1] == max(n_labels, first_label)
    if bounded_only:
        ordered &= labels.view(-1)[0] == 1
    checks.append(ordered)
    return counts


# --------------------------------------------------------------------------------------------
# Any device: hooking and shortcutting (pure tensor ops)
# --------------------------------------------------------------------------------------------
def _neighbourhood_min(labels: Tensor, connectivity: int) -> Tensor:
    """Minimum of each voxel's label and its neighbours' labels (no wrap-around at the edges)."""
    if connectivity == 26:
        # The 3x3x3 box minimum is separable: three 1-D minima of width 3.
        out = labels
        for axis in (1, 2, 3):
            out = _min3(out, axis)
        return out
    out = labels.clone()
    for axis in (1, 2, 3):
        n = labels.shape[axis]
        if n > 1:
            lo, hi = labels.narrow(axis, 0, n - 1), labels.narrow(axis, 1, n - 1)
            head, tail = out.narrow(axis, 1, n - 1), out.narrow(axis, 0, n - 1)
            torch.minimum(head, lo, out=head)
            torch.minimum(tail, hi, out=tail)
    return out


def _min3(x: Tensor, axis: int) -> Tensor:
    n = x.shape[axis]
    if n == 1:
        return x
    out = x.clone()
    head, tail = out.narrow(axis, 1, n - 1), out.narrow(axis, 0, n - 1)
    torch.minimum(head, x.narrow(axis, 0, n - 1), out=head)
    torch.minimum(tail, x.narrow(axis, 1, n - 1), out=tail)
    return out


def _count_torch(masks: Tensor, connectivity: int, bounded_only: bool) -> Tensor:
    if bounded_only:
        batch, depth, height, width = masks.shape
        framed = torch.ones((batch, depth + 2, height + 2, width + 2), dtype=torch.bool, device=masks.device)
        framed[:, 1:-1, 1:-1, 1:-1] = masks
        # The frame is one component (connected under 6- and 26-connectivity) holding every
        # boundary-touching component: subtract it.
        return _count_torch(framed, connectivity, bounded_only=False) - 1
    batch = masks.shape[0]
    total = masks.numel()
    mask = masks.reshape(-1)
    index = torch.arange(total, device=masks.device, dtype=torch.int64)
    big = total  # larger than every index: "no label" (a Python int: no host-to-device copy)
    parent = index.clone()  # every voxel its own root; background voxels stay that way
    check_every = TORCH_CHECK_EVERY.get(masks.device.type, _DEFAULT_CHECK_EVERY)
    while True:
        for _ in range(check_every):
            previous = parent
            grand = parent[parent]
            # Smallest grand-parent label over each foreground voxel's neighbourhood (itself included).
            hood = _neighbourhood_min(torch.where(mask, grand, big).view(masks.shape), connectivity).reshape(-1)
            hood = torch.where(mask, hood, big)
            # Hook each voxel's tree root onto it (f[f[u]] = min(f[f[u]], hood[u])) ...
            parent = previous.scatter_reduce(0, previous, hood, reduce="amin")
            # ... and the voxel itself (aggressive hooking; hood <= grand also halves the path).
            torch.minimum(parent, hood, out=parent)
        if torch.equal(parent, previous):
            break
    roots = mask & (parent == index)
    return roots.view(batch, -1).sum(dim=1)
