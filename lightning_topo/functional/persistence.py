"""Persistence diagrams of the sublevel filtration of grey-scale volumes: where cubical diagrams are computed.

The filtration is the one :func:`~lightning_topo.functional.cubical_betti` takes one slice of: the voxels are the
vertices of a cubical complex (the V-construction) and an edge, square or cube enters at the largest value of its
corner voxels, exactly GUDHI's ``CubicalComplex(vertices=volume)`` and cripser's ``computePH``. So the number of
pairs of dimension ``k`` with ``birth <= t < death`` is ``cubical_betti(volumes, t)[:, k]`` at every finite ``t``.

:class:`PersistenceDiagrams` holds the pairs of a whole batch as three flat tensors (``pairs``, ``dims``,
``index``), as torch_geometric batches graphs: one volume's or one dimension's diagram is a boolean selection.

:func:`cubical_persistence` computes them with one of two backends. ``"numba"`` (the default): on the CPU (a CUDA
input is copied to the host and the diagrams are moved back), H0 and the top dimension (H2 of a 3-D volume, H1 of a
2-D one) by a compiled union-find over the voxels in value order
(:mod:`lightning_topo.functional._persistence_kernels`, numba: ``pip install "lightning-topo[fast]"``).
``"torch"``: H0 and the top dimension on the volumes' own device, the voxels contracted to basins by tensor
operations and a union-find over the basins on the host
(:mod:`lightning_topo.functional._contracted_persistence`). H1 of a 3-D volume comes from a boundary-matrix
reduction on the CPU (:mod:`lightning_topo.functional._h1_reduction`) with either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lightning_topo.functional._checks import (
    MissingDependencyError,
    as_device,
    as_integer,
    check_int,
    check_tensor,
    check_volumes,
)
from lightning_topo.functional._threads import cpu_workers, start_jobs
from lightning_topo.functional.cubical import as_volumes_3d

__all__ = ["PERSISTENCE_BACKENDS", "PersistenceDiagrams", "cubical_persistence"]

INSTALL_FAST = 'pip install "lightning-topo[fast]"'

PERSISTENCE_BACKENDS: tuple[str, ...] = ("auto", "numba", "torch")
"""Valid ``backend`` values of :func:`cubical_persistence`; ``"auto"`` is ``"numba"`` on every device until a GPU
measurement (``benchmarks/gpu``, stage ``persistence``) shows ``"torch"`` faster on CUDA."""


@dataclass(frozen=True, eq=False)
class PersistenceDiagrams:
    """The persistence pairs of a batch of volumes, as flat tensors on one device.

    Attributes:
        pairs: float64 ``(P, 2)``: ``[birth, death]`` per pair; ``death`` is ``+inf`` for an essential class (the
            one H0 class of a volume, born at its minimum). Pairs with ``birth == death`` are omitted.
        dims: int64 ``(P,)``: the homological dimension of each pair.
        index: int64 ``(P,)``: the volume (position in the batch) each pair belongs to.
        num_volumes: the batch size ``B`` (a volume may have no pairs in a dimension, so ``index`` alone cannot
            tell it).
        computed_dims: the dimensions that were computed (a dimension not in it has no pairs because it was not
            asked for, not because the volume has none).
        value_min: float64 ``(B,)``: each volume's smallest value (the birth of its essential class).
        value_max: float64 ``(B,)``: each volume's largest value (the end of the filtration: summaries that need a
            finite lifetime for the essential class end it here).

    Example:
        >>> d = PersistenceDiagrams(
        ...     pairs=torch.tensor([[0.0, float("inf")], [1.0, 3.0], [2.0, 4.0]], dtype=torch.float64),
        ...     dims=torch.tensor([0, 0, 1]), index=torch.tensor([0, 0, 1]), num_volumes=2,
        ...     computed_dims=(0, 1), value_min=torch.tensor([0.0, 2.0], dtype=torch.float64),
        ...     value_max=torch.tensor([3.0, 4.0], dtype=torch.float64))
        >>> d.diagram(volume=0, dim=0).tolist()
        [[0.0, inf], [1.0, 3.0]]
        >>> len(d.select(dim=1))
        1
    """

    pairs: Tensor
    dims: Tensor
    index: Tensor
    num_volumes: int
    computed_dims: tuple[int, ...]
    value_min: Tensor
    value_max: Tensor

    def __post_init__(self) -> None:
        p = self.pairs.shape[0]
        if self.pairs.ndim != 2 or self.pairs.shape[1] != 2:
            raise ValueError(f"`pairs` must have shape (P, 2), got {tuple(self.pairs.shape)}.")
        if not self.pairs.is_floating_point():
            raise ValueError(f"`pairs` must be floating point ([birth, death]), got dtype {self.pairs.dtype}.")
        for name in ("dims", "index"):
            tensor = getattr(self, name)
            if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
                raise ValueError(f"`{name}` must hold integers, got dtype {tensor.dtype}.")
            if tensor.dtype != torch.int64:  # as documented: torch reads a uint8 tensor as a mask where it indexes
                object.__setattr__(self, name, tensor.to(torch.int64))
        if isinstance(self.num_volumes, bool) or not isinstance(self.num_volumes, int) or self.num_volumes < 0:
            raise ValueError(f"`num_volumes` must be an integer >= 0, got {self.num_volumes!r}.")
        if tuple(self.computed_dims) != check_dims(self.computed_dims, "computed_dims", in_order=True) or sorted(
            self.computed_dims
        ) != list(self.computed_dims):
            raise ValueError(
                f"`computed_dims` must be distinct homological dimensions in 0..2 in increasing order, got "
                f"{self.computed_dims!r}."
            )
        if self.dims.shape != (p,) or self.index.shape != (p,):
            raise ValueError(
                f"`dims` and `index` must have shape (P,) = ({p},), got {tuple(self.dims.shape)} and "
                f"{tuple(self.index.shape)}."
            )
        if self.value_min.shape != (self.num_volumes,) or self.value_max.shape != (self.num_volumes,):
            raise ValueError(
                f"`value_min` and `value_max` must have shape (num_volumes,) = ({self.num_volumes},), got "
                f"{tuple(self.value_min.shape)} and {tuple(self.value_max.shape)}."
            )
        if p:  # every pair of a volume of the batch and of a computed dimension, and ordered (one host sync)
            computed = torch.tensor(self.computed_dims, dtype=self.dims.dtype, device=self.dims.device)
            low, high = torch.aminmax(self.index)
            fits = (low >= 0) & (high < self.num_volumes) & torch.isin(self.dims, computed).all()
            birth, death = self.pairs[:, 0], self.pairs[:, 1]
            ordered = (torch.isfinite(birth) & ~torch.isnan(death) & (birth <= death)).all()
            if not bool(fits & ordered):
                if not bool(ordered):
                    bad = int(torch.nonzero(~(torch.isfinite(birth) & ~torch.isnan(death) & (birth <= death)))[0])
                    raise ValueError(
                        f"pair {bad} of `pairs` is {self.pairs[bad].tolist()}: a pair is [birth, death] with a "
                        "finite birth <= its death (+inf for an essential class), never NaN."
                    )
                raise ValueError(
                    f"every pair must belong to a volume 0..{self.num_volumes - 1} (`index` spans "
                    f"{int(low)}..{int(high)}) and to a dimension of computed_dims={self.computed_dims} (`dims` "
                    f"holds {sorted(set(self.dims.tolist()))}): pass the `num_volumes` and `computed_dims` the "
                    "pairs were computed with."
                )

    def __len__(self) -> int:
        return int(self.pairs.shape[0])

    def __eq__(self, other: object) -> bool:
        """The same pairs, in the same order, of the same volumes and computed dims (devices may differ)."""
        if not isinstance(other, PersistenceDiagrams):
            return NotImplemented
        if (self.num_volumes, self.computed_dims) != (other.num_volumes, other.computed_dims):
            return False
        names = ("pairs", "dims", "index", "value_min", "value_max")
        return all(torch.equal(getattr(self, n).cpu(), getattr(other, n).cpu()) for n in names)

    __hash__ = None  # type: ignore[assignment]  # equal diagrams are equal by value: not hashable

    def __repr__(self) -> str:
        """A summary line (the tensors can hold millions of pairs): volumes, pairs per computed dimension, device.

        Example:
            >>> PersistenceDiagrams(torch.tensor([[0.0, float("inf")]], dtype=torch.float64), torch.tensor([0]),
            ...                     torch.tensor([0]), 1, (0, 1), torch.zeros(1, dtype=torch.float64),
            ...                     torch.ones(1, dtype=torch.float64))
            PersistenceDiagrams(num_volumes=1, pairs=1 (H0 1, H1 0), device=cpu)
        """
        per_dim = ", ".join(f"H{d} {int((self.dims == d).sum())}" for d in self.computed_dims)
        return (
            f"PersistenceDiagrams(num_volumes={self.num_volumes}, pairs={len(self)} ({per_dim}), device={self.device})"
        )

    @property
    def device(self) -> torch.device:
        """Where the tensors live."""
        return self.pairs.device

    def _mask(self, volume: int | None, dim: int | None) -> Tensor:
        keep = torch.ones(len(self), dtype=torch.bool, device=self.device)
        for name, value in (("volume", volume), ("dim", dim)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
                raise TypeError(
                    f"`{name}` must be an int or None, got {value!r}; take several with a loop or a mask on "
                    f"`.{'index' if name == 'volume' else 'dims'}`."
                )
        if volume is not None:
            if not -self.num_volumes <= volume < self.num_volumes:
                raise IndexError(f"`volume` {volume} is out of range for {self.num_volumes} volumes.")
            keep &= self.index == volume % self.num_volumes
        if dim is not None:
            if dim not in self.computed_dims:
                raise ValueError(
                    f"`dim` {dim} was not computed (computed_dims={self.computed_dims}); pass it in "
                    "`cubical_persistence(..., dims=...)`."
                )
            keep &= self.dims == dim
        return keep

    def diagram(self, volume: int | None = None, dim: int | None = None) -> Tensor:
        """The ``(n, 2)`` float64 ``[birth, death]`` pairs of one volume and/or one dimension (``None``: all)."""
        return self.pairs[self._mask(volume, dim)]

    def select(self, volume: int | None = None, dim: int | None = None) -> PersistenceDiagrams:
        """The pairs of one volume and/or one dimension, as diagrams of the same batch (``index`` unchanged)."""
        keep = self._mask(volume, dim)
        return PersistenceDiagrams(
            pairs=self.pairs[keep],
            dims=self.dims[keep],
            index=self.index[keep],
            num_volumes=self.num_volumes,
            computed_dims=self.computed_dims if dim is None else (dim,),
            value_min=self.value_min,
            value_max=self.value_max,
        )

    def to(self, device: torch.device | str) -> PersistenceDiagrams:
        """The same diagrams on ``device``."""
        return PersistenceDiagrams(
            pairs=self.pairs.to(device),
            dims=self.dims.to(device),
            index=self.index.to(device),
            num_volumes=self.num_volumes,
            computed_dims=self.computed_dims,
            value_min=self.value_min.to(device),
            value_max=self.value_max.to(device),
        )

    def as_arrays(self) -> dict[str, np.ndarray]:
        """NumPy arrays for ``np.savez`` (read back with :meth:`from_arrays`)."""
        return {
            "pairs": self.pairs.detach().cpu().numpy(),
            "dims": self.dims.detach().cpu().numpy(),
            "index": self.index.detach().cpu().numpy(),
            "num_volumes": np.asarray(self.num_volumes, dtype=np.int64),
            "computed_dims": np.asarray(self.computed_dims, dtype=np.int64),
            "value_min": self.value_min.detach().cpu().numpy(),
            "value_max": self.value_max.detach().cpu().numpy(),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> PersistenceDiagrams:
        """The diagrams :meth:`as_arrays` wrote (CPU tensors)."""
        return cls(
            pairs=torch.as_tensor(np.asarray(arrays["pairs"], dtype=np.float64)).reshape(-1, 2),
            dims=torch.as_tensor(np.asarray(arrays["dims"], dtype=np.int64)),
            index=torch.as_tensor(np.asarray(arrays["index"], dtype=np.int64)),
            num_volumes=int(arrays["num_volumes"]),
            computed_dims=tuple(int(d) for d in np.asarray(arrays["computed_dims"]).ravel()),
            value_min=torch.as_tensor(np.asarray(arrays["value_min"], dtype=np.float64)),
            value_max=torch.as_tensor(np.asarray(arrays["value_max"], dtype=np.float64)),
        )


def check_dims(
    dims: object, name: str = "dims", *, in_order: bool = False, error: type[Exception] = ValueError
) -> tuple[int, ...]:
    """``dims`` as a sorted tuple of distinct homological dimensions in 0..2; an ``error`` (``ValueError``) naming
    ``name`` and a bad one. One dimension may be given as an int, a NumPy integer or a 0-d integer tensor; a
    sequence of them (a list, tuple, array or 1-d tensor) for more; never a bool or a float.

    Args:
        dims: the dimensions.
        name: the argument's name in the message.
        in_order: keep the order given (the order of the summaries' columns) and refuse a repeated dimension,
            instead of sorting and dropping repeats.
        error: the exception raised (``ConfigError`` for a :class:`~lightning_topo.TopologyConfig` field).

    Example:
        >>> check_dims((2, 0))
        (0, 2)
        >>> check_dims(1)
        (1,)
        >>> check_dims((2, 0), in_order=True)
        (2, 0)
    """
    if as_integer(dims) is not None:  # one dimension: an int, a NumPy integer or a 0-d integer tensor
        dims = (dims,)
    if isinstance(dims, (str, bytes)) or not isinstance(dims, Iterable):
        raise error(f"`{name}` must be a tuple of homological dimensions in 0..2, e.g. (0, 1, 2), got {dims!r}.")
    items = tuple(dims)
    if not items:
        raise error(f"`{name}` is empty: pass at least one homological dimension in 0..2, e.g. {name}=(0,).")
    checked = [
        check_int(dim, name, 0, 2, why=f" (a homological dimension of a volume; in {name}={items!r})", error=error)
        for dim in items
    ]
    if not in_order:
        return tuple(sorted(set(checked)))  # type: ignore[arg-type]
    if len(set(checked)) != len(checked):
        once = tuple(dict.fromkeys(checked))
        raise error(f"`{name}` repeats a dimension: {checked}; name each once, e.g. {name}={once}.")
    return tuple(checked)  # type: ignore[arg-type]


def _kernels() -> Any:
    """The compiled kernels (a namespace of ``MAX_VOXELS`` and ``pairs_chunk``); a :class:`MissingDependencyError`
    when numba is not installed."""
    try:
        from lightning_topo.functional._persistence_kernels import MAX_VOXELS, pairs_chunk
    except ImportError as err:
        raise MissingDependencyError(
            f"cubical_persistence needs numba for its compiled union-find: {INSTALL_FAST} (or pip install numba). "
            f"Importing it failed: {err}"
        ) from err
    return SimpleNamespace(MAX_VOXELS=MAX_VOXELS, pairs_chunk=pairs_chunk)


def require_kernels() -> None:
    """Raise :class:`MissingDependencyError` now (naming the extra to install) when :func:`cubical_persistence`
    cannot run here: numba, which compiles its kernels, is missing. Callers that will compute diagrams later (the
    callback, at ``setup``) check with it before any work. Loads nothing but the kernels' module (no compilation).

    Example:
        >>> require_kernels()  # numba is installed here: nothing happens
    """
    _kernels()


_RAN: set[tuple[int, ...]] = set()
"""The ``dims`` :func:`cubical_persistence` has computed in this process (their kernels are loaded)."""


def kernels_loaded(dims: Iterable[int] = (0, 1, 2)) -> bool:
    """Whether the compiled kernels :func:`cubical_persistence` runs for ``dims`` are loaded in this process. When
    not, the first call loads them from numba's disk cache (under a second) or, the first time in an environment,
    compiles them (about 20 s for H0 and H2 and 10 s more for H1 on 2 cores). ``True`` without numba (the call then
    raises :class:`MissingDependencyError`).

    Example:
        >>> isinstance(kernels_loaded((0, 2)), bool)
        True
    """
    try:
        from lightning_topo.functional._persistence_kernels import pairs_chunk
    except ImportError:
        return True
    if check_dims(dims) in _RAN:  # the kernels these dims needed ran (3-D volumes with H1 need no pairs_chunk)
        return True
    needed = [pairs_chunk]
    if 1 in tuple(dims):
        from lightning_topo.functional._h1_reduction import _h1_kernel

        needed.append(_h1_kernel)
    return all(bool(getattr(kernel, "signatures", True)) for kernel in needed)


def _union_find_job(
    host: np.ndarray, want_h0: bool, want_top: bool, top_dim: int, workers: int
) -> tuple[tuple[Callable[[int, int], Any], int, int], Callable[[list[Any]], tuple[np.ndarray, ...]]]:
    """H0 and/or top-dimension pairs of ``host`` ``(B, D, H, W)`` float64 as a job for
    :func:`~lightning_topo.functional._threads.start_jobs`, and the function that turns the job's chunk results into
    pairs, dims, index, and each volume's minimum and maximum."""
    kernels = _kernels()
    batch, depth, height, width = host.shape
    flat = host.reshape(batch, -1)
    if want_h0 and want_top and 2 * batch <= workers:
        # At least two threads per volume: a volume's H0 and its top dimension are two tasks, on two threads. Each
        # sorts the volume (about a third of its time): more work in all, less to wait for (with fewer threads, a
        # second round of tasks would cost more than the sort saves).
        def one_dimension(lo: int, hi: int) -> list[tuple[np.ndarray, ...]]:
            return [
                kernels.pairs_chunk(flat, depth, height, width, t % 2 == 0, t % 2 == 1, top_dim, t // 2, t // 2 + 1)
                for t in range(lo, hi)  # task t: volume t // 2, H0 when t is even, the top dimension when odd
            ]

        def by_dimension(parts: list[Any]) -> tuple[np.ndarray, ...]:
            tasks = [task for part in parts for task in part]
            found = [np.concatenate([task[i] for task in tasks]) for i in range(3)]
            return (*found, *(np.concatenate([task[i] for task in tasks[::2]]) for i in (3, 4)))

        return (one_dimension, 2 * batch, 2 * batch), by_dimension
    args = (depth, height, width, want_h0, want_top, top_dim)

    def by_volumes(parts: list[Any]) -> tuple[np.ndarray, ...]:
        if len(parts) == 1:
            return parts[0]
        return tuple(np.concatenate([part[i] for part in parts]) for i in range(5))

    # More chunks than threads, so a chunk of costly volumes does not leave the other threads idle.
    return (lambda lo, hi: kernels.pairs_chunk(flat, *args, lo, hi), batch, 4 * workers), by_volumes


def cubical_persistence(
    volumes: Tensor,
    dims: Iterable[int] | int = (0, 1, 2),
    *,
    device: torch.device | str | None = None,
    workers: int | None = None,
    backend: str = "auto",
) -> PersistenceDiagrams:
    """Persistence diagrams of the sublevel filtration of each volume of a batch.

    The filtration :func:`~lightning_topo.functional.cubical_betti` takes slices of: the voxels are the vertices of
    a cubical complex and a cell enters at the largest value of its vertices (the V-construction), exactly GUDHI's
    ``CubicalComplex(vertices=volume)`` and cripser's ``computePH``. So for every finite ``t`` the number of pairs of
    dimension ``k`` with ``birth <= t < death`` is ``cubical_betti(volumes, t)[:, k]``. Pairs with
    ``birth == death`` are omitted; H0 has one essential pair per volume, ``(min, +inf)``; no other dimension has
    one (a volume is contractible). A 2-D volume has no H2, a 1-D one neither H1 nor H2.

    H0 and the top dimension (H2 of a 3-D volume, H1 of a 2-D one, by Alexander duality) come from a union-find in
    value order: over every voxel on the CPU (``backend="numba"``), or over basins the volumes' own device
    contracted them to (``backend="torch"``; the same diagrams). H1 of a 3-D volume (all sides >= 2) comes from a
    boundary-matrix reduction on the CPU, by far the costliest part: ``dims=(0, 2)`` skips it.

    Args:
        volumes: a batch ``(B, *spatial)`` with 1, 2 or 3 spatial axes; a conv-map batch ``(B, C, H, W)`` is ``B``
            volumes of shape ``(C, H, W)``, ``(B, H, W)`` is ``B`` 2-D maps and ``(B, D)`` ``B`` vectors (size-1
            axes are dropped: a ``(1, H, W)`` volume is a 2-D map). Any real dtype (integers and half precision
            included; values are compared in float64, exact for integers below 2**53); NaN or Inf is an error.
        dims: the homological dimensions to compute and return, in 0..2 (an int for one).
        device: where the returned tensors live; ``None`` means the device of ``volumes``.
        workers: threads over the volumes of the batch for the CPU kernels (they release the GIL); with two or
            more per volume, a volume's H0 and top dimension run on two of them, and the H1 reductions and the
            other dimensions share one queue (one volume's H1 and top dimension run at once). ``None`` means
            :func:`torch.get_num_threads` (not numba's: see ``cpu_workers``).
        backend: where H0 and the top dimension are computed: ``"numba"``, on the CPU by a compiled union-find over
            the voxels (a CUDA input is copied to the host); ``"torch"``, on the volumes' device (a GPU's work:
            on the CPU it is about 10x slower than ``"numba"``), their voxels contracted to basins by tensor
            operations (2**24 voxels at a time, at most 3.5 GiB), then a union-find over the basins on the host;
            ``"auto"`` (the default) is ``"numba"`` on every device for now (``PERSISTENCE_BACKENDS``). Both give
            the same diagrams.

    Returns:
        :class:`PersistenceDiagrams` of the batch: float64 ``[birth, death]`` pairs ordered by volume, then
        dimension, with ``computed_dims == tuple(sorted(set(dims)))``.

    Raises:
        ValueError: on a bad ``dims``, ``workers`` or ``backend``, a wrong number of axes, an empty batch, a
            zero-size axis or NaN/Inf values (:class:`~lightning_topo.functional.NonFiniteError`, naming the sample
            index).
        TypeError: if ``volumes`` is not a tensor.
        MissingDependencyError: numba is not installed (an ``ImportError``; ``pip install "lightning-topo[fast]"``).

    Example:
        >>> ring = torch.ones(1, 5, 5)
        >>> ring[0, 1:4, 1:4] = 0.0   # a 3x3 square of zeros ...
        >>> ring[0, 2, 2] = 0.5       # ... around a higher middle
        >>> d = cubical_persistence(ring)
        >>> d.diagram(dim=0).tolist(), d.diagram(dim=1).tolist(), d.diagram(dim=2).tolist()
        ([[0.0, inf]], [[0.0, 0.5]], [])
    """
    target = as_device(device, check_tensor(volumes, "volumes").device)
    volumes = check_volumes(volumes)
    wanted = check_dims(dims)
    if workers is not None:
        workers = check_int(workers, "workers", 1, allow_none="torch.get_num_threads()")
    if backend not in PERSISTENCE_BACKENDS:
        raise ValueError(
            f'`backend` must be one of {PERSISTENCE_BACKENDS}, got {backend!r}: "numba" computes on the CPU, '
            '"torch" on the volumes\' device.'
        )
    vols = as_volumes_3d(volumes.detach())
    batch, depth, height, width = vols.shape
    kernels = _kernels()
    if depth * height * width > kernels.MAX_VOXELS:
        raise ValueError(
            f"`volumes` has {depth * height * width} voxels per volume, more than the {kernels.MAX_VOXELS} "
            "cubical_persistence indexes: split the volumes."
        )
    if workers is None:
        workers = cpu_workers()
    spatial = sum(side >= 2 for side in (depth, height, width))
    top_dim = spatial - 1  # H2 of a 3-D volume, H1 of a 2-D one (a 1-D one: H0 only, which the H0 pass computes)
    want_h1 = spatial == 3 and 1 in wanted
    # With H1, the union-find pass of the H1 reduction gives H0 as well (it clears the H0 deaths' columns).
    want_h0 = 0 in wanted and not want_h1
    want_top = top_dim >= 1 and top_dim in wanted
    on_device = backend == "torch" and (want_h0 or want_top)
    host = None
    if not on_device or want_h1:
        host = np.ascontiguousarray(vols.to(device="cpu", dtype=torch.float64).numpy())
    # One queue of chunks for the CPU's jobs, the costly H1 reduction's first, so that threads done with one job
    # take the other's chunks (a single volume's H1 and top dimension run at once on two threads).
    jobs: list[tuple[Callable[[int, int], Any], int, int]] = []
    if want_h1:
        from lightning_topo.functional._h1_reduction import h1_job

        job, assemble_h1 = h1_job(host, 0 in wanted, workers)
        jobs.append(job)
    union_find = not on_device and (want_h0 or want_top)
    if union_find:
        job, assemble = _union_find_job(host, want_h0, want_top, top_dim, workers)
        jobs.append(job)
    running = start_jobs(jobs, workers)
    parts: list[tuple[np.ndarray, ...]] = []
    if on_device:  # while the pool reduces H1 (with one thread, after this)
        from lightning_topo.functional._contracted_persistence import contracted_pairs_batch

        try:
            *found, value_min, value_max = contracted_pairs_batch(vols, want_h0, want_top, top_dim)
        except BaseException:
            running.abandon()
            raise
        parts.append(tuple(found))
    results = running.results()
    if union_find:
        *found, value_min, value_max = assemble(results[-1])
        parts.append(tuple(found))
    elif not on_device:
        value_min, value_max = host.reshape(batch, -1).min(axis=1), host.reshape(batch, -1).max(axis=1)
    if want_h1:
        parts.append(assemble_h1(results[0]))
    if parts:
        pairs, dims_of, index = (np.concatenate([part[i] for part in parts]) for i in range(3))
    else:
        pairs, dims_of, index = np.empty((0, 2)), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    order = np.lexsort((dims_of, index))  # stable: by volume, then dimension, each kernel's order within
    if union_find or want_h1:  # the numba kernels ran (not the torch backend alone)
        _RAN.add(wanted)
    return PersistenceDiagrams(
        pairs=torch.from_numpy(np.ascontiguousarray(pairs[order])).to(target),
        dims=torch.from_numpy(np.ascontiguousarray(dims_of[order])).to(target),
        index=torch.from_numpy(np.ascontiguousarray(index[order])).to(target),
        num_volumes=batch,
        computed_dims=wanted,
        value_min=torch.from_numpy(value_min).to(target),
        value_max=torch.from_numpy(value_max).to(target),
    )
