"""Reducing each watched layer's output inside its forward hook: what a view needs, and nothing more.

* cubical view: the output of one input is a volume — ``(C, H, W)``, ``(H, W)`` or ``(D,)``; the hook turns
  the batch into per-input Betti numbers ``(B, 3)`` (:func:`~lightning_topo.functional.cubical_betti`) on the
  compute device, so no raw activation outlives its batch; with ``TopologyConfig.persistence`` set, also into
  the batch's persistence diagrams (``cubical_persistence``, kept on the CPU) and their per-input summaries
  ``(B, S)`` (:func:`~lightning_topo.functional.persistence_summaries`, at the same thresholds);
* point-cloud view: the hook turns the batch into pooled, flattened embeddings ``(B, d)``.

Token outputs ``(B, T, D)`` of transformers are read by :mod:`lightning_topo.capture.tokens`: a vision
transformer's patch tokens as the volume ``(D, h, w)``, a text sequence as ``(D, T)``, and for the point-cloud
view the mean token; the model's :class:`~lightning_topo.capture.tokens.TokenLayout` is found once per pass.

A layer whose output cannot be read this way (NaN or Inf values, a non-real dtype, an empty output, more than
three axes per input) is *skipped with a reason*, never guessed at: its values are NaN and the reason is
reported (``problems``).
"""

from __future__ import annotations

import dataclasses
import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from lightning_topo.capture.hooks import ActivationCapture, model_device, run_on_sample
from lightning_topo.capture.sampling import REAL_INT_DTYPES
from lightning_topo.capture.tokens import (
    TokenLayout,
    cubical_volumes,
    embedding_dtype,
    masked_sequence_volumes,
    pool_tokens,
    sequence_mask,
    token_layout,
)
from lightning_topo.config import TopologyConfig
from lightning_topo.functional import NonFiniteError, cubical_betti, persistence_summaries, sublevel_thresholds
from lightning_topo.functional._threads import cpu_workers, thread_workers
from lightning_topo.functional.persistence import PersistenceDiagrams

__all__ = [
    "ACCELERATOR_BUFFER_BYTES",
    "CPU_BUFFER_BYTES",
    "CUDA_OVERLAP",
    "CUDA_OVERLAP_BYTES",
    "OVERLAP_BYTES",
    "LayerValues",
    "PendingCapture",
    "capture_layers",
    "cat_diagrams",
    "pooled_embedding",
    "start_capture",
]

ACCELERATOR_BUFFER_BYTES = 256 * 2**20
"""On an accelerator, a layer's activations are gathered over forward batches up to this many bytes and reduced
in one call: on a GPU the cost of a small batch is launches and host syncs, not voxels (measured on an H200: one
evaluation of ResNet18 on 2000 inputs of 3x32x32 spent ~1.2 s in 88 reductions of 256 inputs). On the CPU each
batch is reduced at once (its cost is per voxel, and memory stays bounded by one batch)."""
CPU_BUFFER_BYTES = 0
"""The same budget on the CPU: 0, reduce every batch at once."""

OVERLAP_BYTES = 256 * 2**20
"""With ``TopologyConfig.overlap`` on the CPU, the hooks hand each batch's volumes (a copy) to a background thread
and go on; at most this many bytes of them wait there: past it, the hook waits for the oldest batch first. A
single batch larger than this is computed inside its hook (no copy), as without ``overlap``."""

CUDA_OVERLAP = False
"""Whether ``TopologyConfig.overlap`` also applies when the reduction runs on CUDA: each flushed buffer's Betti
numbers are then computed by the background thread on a side CUDA stream (which waits for an event recorded on the
capturing stream; the volumes are marked in use there with ``record_stream``; the thread synchronises that stream
before handing the values back, and the reading stream marks them in use too), while the training thread goes on.
**Off until measured on a GPU:** ``benchmarks/gpu/run.sh`` times evaluations and fits with it on and off, and
``tests/test_cuda.py`` checks the values are the same either way."""

CUDA_OVERLAP_BYTES = 2**30
""":data:`OVERLAP_BYTES` for CUDA volumes (with :data:`CUDA_OVERLAP`): a flushed buffer holds up to
:data:`ACCELERATOR_BUFFER_BYTES`, so the bound is larger; GPU memory held by waiting volumes stays under it."""

_NON_FINITE = "NaN or Inf in its activations"


class _SummaryOverflow(ArithmeticError):
    """A layer's persistence summaries overflow float64 on finite activations (a total persistence beyond
    1.8e308: lifetimes that span most of the float64 range); ``problem`` is the layer's problem."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


_BACKGROUND: list[ThreadPoolExecutor] = []  # the one thread that reduces batches while the forward pass goes on
_SIDE_STREAMS: dict[torch.device, torch.cuda.Stream] = {}  # per CUDA device, the background thread's stream


def _forget_background_after_fork() -> None:
    """In a process made by ``fork`` (``ddp_fork`` / ``ddp_notebook`` after an evaluation in the parent): the
    parent's executor counts a thread that is not here and would never run a job (the evaluation hung)."""
    _BACKGROUND.clear()
    _SIDE_STREAMS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_background_after_fork)


def _background() -> ThreadPoolExecutor:
    # One thread, so batches are reduced in the order they were captured. Not the kernels' own pool
    # (`functional._threads`): a job here fans out over that pool and waits for it.
    if not _BACKGROUND:
        _BACKGROUND.append(ThreadPoolExecutor(1, thread_name_prefix="lightning-topo-reduce"))
    return _BACKGROUND[0]


def _side_stream(device: torch.device) -> torch.cuda.Stream:
    """The stream the background thread reduces CUDA volumes of ``device`` on (one per device, made once)."""
    if device not in _SIDE_STREAMS:
        _SIDE_STREAMS[device] = torch.cuda.Stream(device=device)
    return _SIDE_STREAMS[device]


def _overlap_bytes(volumes: Tensor) -> int:
    return CUDA_OVERLAP_BYTES if volumes.is_cuda else OVERLAP_BYTES


def pooled_embedding(out: Tensor, pool_size: int | None) -> Tensor:
    """A batch of layer outputs as flat embeddings ``(B, d)``; conv maps ``(B, C, H, W)`` larger than
    ``pool_size`` are first average-pooled to ``(C, min(H, pool_size), min(W, pool_size))`` (``None``: flattened as
    they are; a smaller map is never pooled *up*, which would repeat each value and scale the distances).

    float64 outputs stay float64 (a float64 model's cloud whose spread is small beside its offset, or whose values
    pass float32's range), integer outputs become float64 (exact to 2**53), others float32
    (:func:`~lightning_topo.capture.tokens.embedding_dtype`).

    Always a new tensor, never a view of ``out``: the embeddings outlive the hook, and a later in-place op
    (``ReLU(inplace=True)`` after the watched layer) would otherwise change them.
    """
    dtype = embedding_dtype(out)
    if out.ndim == 4 and pool_size is not None and (out.shape[2] > pool_size or out.shape[3] > pool_size):
        size = (min(out.shape[2], pool_size), min(out.shape[3], pool_size))
        out = nn.functional.adaptive_avg_pool2d(out.to(dtype), size)
    flat = out.reshape(out.shape[0], -1)
    embedding = flat.to(dtype)
    if embedding.untyped_storage().data_ptr() == out.untyped_storage().data_ptr():
        embedding = embedding.clone()
    return embedding


class _Job:
    """One batch's reduction for the background thread: its arguments until it starts, then its future."""

    __slots__ = ("args", "future", "size")

    def __init__(self, volumes: Tensor, thresholds: Tensor | float) -> None:
        # The kernels' thread count is read here, on the hook's thread (see `functional._threads.thread_workers`).
        # CUDA volumes: the side stream waits for what the capturing stream has queued so far (their values), and
        # the caching allocator must not hand their memory out again before the side stream is done with it.
        event = None
        if volumes.is_cuda:
            side = _side_stream(volumes.device)
            for tensor in (volumes, thresholds):
                if isinstance(tensor, Tensor) and tensor.is_cuda:
                    tensor.record_stream(side)
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(volumes.device))
        self.args: tuple[Tensor, Tensor | float, int, torch.cuda.Event | None] | None = (
            volumes,
            thresholds,
            cpu_workers(),
            event,
        )
        self.future: Future | None = None
        self.size = volumes.numel() * volumes.element_size()

    def done(self) -> bool:
        return self.future is not None and self.future.done()

    @classmethod
    def finished(cls, fn: Callable[..., object], volumes: Tensor, thresholds: Tensor | float) -> _Job:
        """A job computed on this thread, read in capture order like the others (its errors raised when read)."""
        job = cls.__new__(cls)
        job.args, job.size, job.future = None, 0, Future()
        try:
            job.future.set_result(fn(volumes, thresholds))
        except Exception as err:
            job.future.set_exception(err)
        return job


class _Reducer:
    """Called by the hooks: one layer's output batch -> per-input Betti numbers or pooled embeddings.

    With ``overlap`` (cubical view, reduced on the CPU, or on CUDA with :data:`CUDA_OVERLAP`) a batch's Betti numbers
    are computed on a background thread and the hook returns a :class:`_Job`; :meth:`resolve` reads it, in capture
    order.
    """

    def __init__(
        self,
        config: TopologyConfig,
        device: torch.device,
        buffer_bytes: int = 0,
        layout: TokenLayout | None = None,
        *,
        overlap: bool = False,
        token_mask: Tensor | None = None,
    ) -> None:
        self.config = config
        # The sample's padding mask (N, T) and, per layer, how many of the sample's inputs it has seen.
        self.token_mask = None if token_mask is None else token_mask.detach().cpu() != 0
        self._seen: dict[str, int] = {}
        self.device = device
        self.buffer_bytes = buffer_bytes
        self.layout = layout if layout is not None else TokenLayout()
        self.overlap = overlap
        self.problems: dict[str, str] = {}
        self._pending: dict[str, list[Tensor]] = {}
        # Per pending batch, its thresholds where given (a padded sequence's), else None
        self._pending_thresholds: dict[str, list[Tensor | float | None]] = {}
        self._jobs: deque[_Job] = deque()  # background jobs held or not known to be done
        # With `config.persistence`: per layer, one (summaries, diagrams) per reduced batch, in the order of the
        # Betti numbers returned (the hooks append those to `ActivationCapture.results`).
        self.persistence: dict[str, list[tuple[Tensor, PersistenceDiagrams]]] = {}
        # Cubical view: per layer, per reduced batch, how many of its volumes hold one value (a 0-d tensor on the
        # compute device, read once in PendingCapture._collect).
        self.constant: dict[str, list[Tensor]] = {}

    def _batch_mask(self, name: str, out: Tensor) -> Tensor | None:
        """The padding mask of the inputs of this batch of ``name`` (the sample's, in the order run)."""
        if self.token_mask is None or out.ndim == 0:
            return None
        start = self._seen.get(name, 0)
        self._seen[name] = start + int(out.shape[0])
        return sequence_mask(out, self.layout, self.token_mask[start : start + int(out.shape[0])])

    def __call__(self, name: str, out: Tensor) -> Tensor | _Job | None:
        mask = self._batch_mask(name, out)
        if name in self.problems:
            return None
        if not (out.is_floating_point() or out.dtype in REAL_INT_DTYPES):
            self.problems[name] = f"its output has dtype {out.dtype}; a real-valued tensor is needed"
            return None
        if out.ndim == 0 or out.numel() == 0 or out.shape[0] == 0:
            self.problems[name] = f"its output has shape {tuple(out.shape)}; expected (batch, ...) with data"
            return None
        # A copy from an accelerator to the CPU is awaited: a non-blocking one lands in pinned memory later, and
        # the CPU kernels would read it before it is there.
        to_host = self.device.type == "cpu" and out.device.type != "cpu"
        moved = out.to(self.device, non_blocking=not to_host)
        if self.config.complex == "cubical":
            if out.ndim > 4:
                self.problems[name] = (
                    f"its output has shape {tuple(out.shape)}: {out.ndim - 1} axes per input, and the cubical view "
                    "reads one input as a volume of at most 3 axes (C, H, W); pass `output_fn=` to pick a 3-D view "
                    "(e.g. one channel of a Conv3d output) or watch another layer"
                )
                return None
            volumes = cubical_volumes(moved, self.layout)
            thresholds: Tensor | float | None = None
            if mask is not None:  # a new tensor: the padded positions left out
                volumes, thresholds = masked_sequence_volumes(volumes, mask.to(volumes.device), self.config.threshold)
            if not self.buffer_bytes:
                return self._betti(name, volumes, out, thresholds)
            # Keep a copy: a later in-place op (ReLU(inplace=True)) may overwrite the layer's output.
            pending = self._pending.setdefault(name, [])
            pending.append(volumes.clone() if moved is out and mask is None else volumes)
            self._pending_thresholds.setdefault(name, []).append(thresholds)
            if sum(v.numel() * v.element_size() for v in pending) >= self.buffer_bytes:
                return self.flush(name)
            return None
        finite = torch.isfinite(moved) if moved.is_floating_point() else None
        if finite is not None and mask is not None:  # padded positions are left out: their values do not count
            finite = finite | ~mask.to(finite.device).reshape(*mask.shape, *([1] * (moved.ndim - 2)))
        if finite is not None and not bool(finite.all()):
            self.problems[name] = _NON_FINITE
            return None
        pooled = pool_tokens(moved, self.layout, mask)
        return pooled_embedding(moved if pooled is None else pooled, self.config.pool_size)

    def _betti(
        self, name: str, volumes: Tensor, out: Tensor | None = None, thresholds: Tensor | float | None = None
    ) -> Tensor | _Job | None:
        try:  # cubical_betti checks finiteness itself (one pass over the activations, not two)
            if thresholds is None:
                thresholds = sublevel_thresholds(volumes, self.config.threshold)
            low, high = torch.aminmax(volumes.reshape(volumes.shape[0], -1), dim=1)
            self.constant.setdefault(name, []).append((low == high).sum())
            if self.overlap:
                if volumes.numel() * volumes.element_size() > _overlap_bytes(volumes):
                    # Computed now, on this thread: a copy of a batch this large would cost more than it saves.
                    return _Job.finished(self._reduce, volumes, thresholds)
                if out is not None and volumes.untyped_storage().data_ptr() == out.untyped_storage().data_ptr():
                    volumes = volumes.clone()  # it outlives the hook: a later in-place op may overwrite the output
                return self._submit(volumes, thresholds)
            betti, extra = self._reduce(volumes, thresholds)
        except NonFiniteError:
            self.problems[name] = _NON_FINITE
            return None
        except _SummaryOverflow as err:
            self.problems[name] = err.problem
            return None
        if extra is not None:
            self.persistence.setdefault(name, []).append(extra)
        return betti

    def _reduce(
        self, volumes: Tensor, thresholds: Tensor | float
    ) -> tuple[Tensor, tuple[Tensor, PersistenceDiagrams] | None]:
        """The batch's Betti numbers, and with ``config.persistence`` its summaries and diagrams."""
        betti = cubical_betti(volumes, thresholds)
        extra = self._diagrams(volumes, thresholds) if self.config.persistence is not None else None
        return betti, extra

    def _reduce_in_background(
        self, volumes: Tensor, thresholds: Tensor | float, workers: int, event: torch.cuda.Event | None
    ) -> tuple[Tensor, tuple[Tensor, PersistenceDiagrams] | None]:
        with torch.inference_mode(), thread_workers(workers):  # as inside the hook (grad mode is per thread)
            if event is None:
                return self._reduce(volumes, thresholds)
            # CUDA: this thread's device and stream are its own (both are per thread in torch).
            side = _side_stream(volumes.device)
            with torch.cuda.device(volumes.device), torch.cuda.stream(side):
                side.wait_event(event)
                out = self._reduce(volumes, thresholds)
                side.synchronize()  # the values are there before the training thread reads them
            return out

    def _submit(self, volumes: Tensor, thresholds: Tensor | float) -> _Job:
        """Hold the batch for the background thread: jobs start at :meth:`release` (after the forward pass, so
        that it does not share the cores with them), or now when more than :data:`OVERLAP_BYTES` are waiting."""
        job = _Job(volumes, thresholds)
        self._jobs.append(job)
        while self._jobs and self._jobs[0].done():
            self._jobs.popleft()
        bound = _overlap_bytes(volumes)
        if sum(j.size for j in self._jobs) > bound:
            self.release()
            while len(self._jobs) > 1 and sum(j.size for j in self._jobs) > bound:
                wait([self._jobs.popleft().future])
        return job

    def release(self) -> None:
        """Start the held jobs on the background thread, in capture order."""
        for job in self._jobs:
            if job.future is None:
                job.future = _background().submit(self._reduce_in_background, *job.args)
                job.args = None

    def resolve(self, name: str, value: Tensor | _Job | None) -> Tensor | None:
        """A hook's value, with a background job's Betti numbers waited for (call in capture order)."""
        if not isinstance(value, _Job):
            return value
        if value.future is None:
            self.release()
        try:
            betti, extra = value.future.result()
        except NonFiniteError:
            self.problems.setdefault(name, _NON_FINITE)
            return None
        except _SummaryOverflow as err:
            self.problems.setdefault(name, err.problem)
            return None
        if name in self.problems:
            return None
        for tensor in (betti, None if extra is None else extra[0]):
            if tensor is not None and tensor.is_cuda:  # made on the side stream, read on this thread's
                tensor.record_stream(torch.cuda.current_stream(tensor.device))
        if extra is not None:
            self.persistence.setdefault(name, []).append(extra)
        return betti

    def cancel(self) -> None:
        """Drop the background jobs not yet started (a forward pass that raised)."""
        while self._jobs:
            job = self._jobs.popleft()
            job.args = None
            if job.future is not None:
                job.future.cancel()

    def _diagrams(self, volumes: Tensor, thresholds: Tensor | float) -> tuple[Tensor, PersistenceDiagrams]:
        """The batch's persistence summaries ``(B, S)`` (on the compute device) and diagrams (on the CPU)."""
        from lightning_topo.functional import cubical_persistence  # the engine of functional/persistence.py

        cfg = self.config
        diagrams = cubical_persistence(volumes, dims=cfg.persistence_dims)
        summaries = persistence_summaries(
            diagrams, thresholds, cfg.persistence or (), cfg.min_persistence, cfg.persistence_dims
        )
        if not bool(torch.isfinite(summaries).all()):  # finite volumes: only a sum beyond float64 (total persistence)
            keys = cfg.persistence_keys
            bad = [keys[j] for j in (~torch.isfinite(summaries)).any(dim=0).nonzero().flatten().tolist()]
            span = float((diagrams.value_max.double() - diagrams.value_min.double()).max())
            raise _SummaryOverflow(
                f"its persistence summaries {bad} overflow float64 (activations spanning {span:.3g}: the lifetimes "
                "sum beyond 1.8e308)"
            )
        return summaries, diagrams.to("cpu")

    def flush(self, name: str) -> Tensor | _Job | None:
        """Reduce the activations of ``name`` gathered so far (``None`` when there are none)."""
        pending = self._pending.pop(name, [])
        given = self._pending_thresholds.pop(name, [])
        if not pending or name in self.problems:
            return None
        thresholds: Tensor | float | None = None
        if any(t is not None for t in given):  # a padded sequence's batches: those of the others computed here
            rule = self.config.threshold
            each = [sublevel_thresholds(v, rule) if t is None else t for v, t in zip(pending, given, strict=True)]
            numbers = [float(t) for t in each if not isinstance(t, Tensor)]
            if len(numbers) < len(each) or len(set(numbers)) > 1:
                # one per volume (a number, a rule's statistic or a callable's number, as each batch gave it)
                thresholds = torch.cat(
                    [
                        torch.as_tensor(t, dtype=torch.float64, device=v.device).reshape(-1).expand(len(v))
                        for v, t in zip(pending, each, strict=True)
                    ]
                )
            else:
                thresholds = each[0]  # the one number of every batch
        return self._betti(name, torch.cat(pending) if len(pending) > 1 else pending[0], None, thresholds)


@dataclass
class LayerValues:
    """What one pass over a sample captured.

    Attributes:
        values: ``{layer: tensor}`` — cubical: ``(n, 3)`` int64 Betti numbers; point cloud: ``(n, d)`` float32
            embeddings; on the compute device. Layers with a problem are absent.
        problems: ``{layer: why}`` for the layers that could not be reduced.
        persistence: cubical view with ``config.persistence`` set: ``{layer: (n, S)}`` float64 persistence
            summaries per input (columns ``config.persistence_keys``), on the compute device; else empty.
        diagrams: the same layers' persistence diagrams of the ``n`` inputs (on the CPU); else empty.
        constant: cubical view: ``{layer: count}`` of the inputs whose volume holds one value (a dead ReLU's zeros:
            b = (1, 0, 0) at every threshold at or above it, whatever the input).
    """

    values: dict[str, Tensor]
    problems: dict[str, str]
    persistence: dict[str, Tensor] = field(default_factory=dict)
    diagrams: dict[str, PersistenceDiagrams] = field(default_factory=dict)
    constant: dict[str, int] = field(default_factory=dict)


def cat_diagrams(parts: Sequence[PersistenceDiagrams]) -> PersistenceDiagrams:
    """The diagrams of consecutive batches as the diagrams of one batch (``index`` offset by the volumes before).

    Example:
        >>> one = PersistenceDiagrams(torch.tensor([[0.0, 1.0]], dtype=torch.float64), torch.tensor([0]),
        ...                           torch.tensor([0]), 1, (0,), torch.zeros(1, dtype=torch.float64),
        ...                           torch.ones(1, dtype=torch.float64))
        >>> both = cat_diagrams([one, one])
        >>> both.index.tolist(), both.num_volumes
        ([0, 1], 2)
    """
    if not parts:
        raise ValueError("cat_diagrams needs at least one PersistenceDiagrams.")
    if len(parts) == 1:
        return parts[0]
    dims = {p.computed_dims for p in parts}
    if len(dims) > 1:
        raise ValueError(f"the diagrams to concatenate were computed for different dims: {sorted(dims)}.")
    offsets = torch.tensor([0] + [p.num_volumes for p in parts[:-1]]).cumsum(0).tolist()
    return PersistenceDiagrams(
        pairs=torch.cat([p.pairs for p in parts]),
        dims=torch.cat([p.dims for p in parts]),
        index=torch.cat([p.index + offset for p, offset in zip(parts, offsets, strict=True)]),
        num_volumes=sum(p.num_volumes for p in parts),
        computed_dims=parts[0].computed_dims,
        value_min=torch.cat([p.value_min for p in parts]),
        value_max=torch.cat([p.value_max for p in parts]),
    )


class PendingCapture:
    """A pass over a sample whose forward pass has run and whose Betti numbers may still be being computed on the
    background thread (``TopologyConfig.overlap``); :meth:`result` waits for them. From :func:`start_capture`."""

    def __init__(self, reducer: _Reducer, capture: ActivationCapture, layer_names: Sequence[str], n: int) -> None:
        self._reducer = reducer
        self._capture = capture
        self.layer_names = list(layer_names)
        self._n = n
        self._result: LayerValues | None = None

    def cancel(self) -> None:
        """Drop the background work not yet started (the values are not wanted any more)."""
        self._reducer.cancel()

    def result(self) -> LayerValues:
        """The captured values (waits for the background thread; raises what a reduction raised)."""
        if self._result is None:
            try:
                self._result = self._collect()
            except BaseException:
                self.cancel()
                raise
        return self._result

    def _collect(self) -> LayerValues:
        reducer, capture, n = self._reducer, self._capture, self._n
        values: dict[str, Tensor] = {}
        problems: dict[str, str] = {}
        persistence: dict[str, Tensor] = {}
        diagrams: dict[str, PersistenceDiagrams] = {}
        for name in self.layer_names:
            resolved = [reducer.resolve(name, r) for r in capture.results.get(name, [])]
            reduced = [r for r in resolved if r is not None]
            problem = reducer.problems.get(name) or capture.skipped.get(name)
            captured = sum(len(r) for r in reduced)
            if problem is None and n and captured != n:
                problem = (
                    "the forward pass never ran it"
                    if captured == 0
                    else f"it produced outputs for {captured} of the {n} sampled inputs (does it run on "
                    "every input? a module that runs more than once per forward pass is one layer per call: "
                    f"'{name}', '{name}#2', ...; or is its output's first axis not the batch? a sequence-first "
                    "layer, such as nn.LSTM or nn.TransformerEncoderLayer without batch_first=True, puts the batch "
                    "on axis 1: watch a module that returns batch-first outputs, or leave it out)"
                )
            if problem is not None:
                problems[name] = problem
            elif reduced:
                values[name] = torch.cat(reduced)
                parts = reducer.persistence.get(name)
                if parts:
                    persistence[name] = torch.cat([summaries for summaries, _ in parts])
                    diagrams[name] = cat_diagrams([d for _, d in parts])
        counted = [name for name in self.layer_names if name in values and reducer.constant.get(name)]
        totals = torch.stack([torch.stack(reducer.constant[name]).sum() for name in counted]) if counted else None
        constant = dict(zip(counted, totals.tolist(), strict=True)) if totals is not None else {}  # one sync
        return LayerValues(values, problems, persistence, diagrams, constant)


def start_capture(
    model: nn.Module,
    inputs: Tensor,
    layer_names: Sequence[str],
    config: TopologyConfig,
    *,
    on_batch: Callable[[int], None] | None = None,
    token_mask: Tensor | None = None,
) -> PendingCapture:
    """The forward pass of :func:`capture_layers`; with ``config.overlap`` (cubical view, reduced on the CPU) the
    Betti numbers of each batch are computed on a background thread, while the forward pass goes on and after it
    returns, until :meth:`PendingCapture.result` is called. The values are the same either way.

    The jobs start when the forward pass is over (or earlier, when more than :data:`OVERLAP_BYTES` of copied
    activations wait) and use :func:`torch.get_num_threads` threads, as inside the hooks (leaving a core to a
    callback's validation loop was slower: persistence diagrams of the digits CNN took 36 ms per evaluation on one
    of 2 cores against 22 ms on both)."""
    device = config.torch_device or model_device(model)
    budget = CPU_BUFFER_BYTES if device.type == "cpu" else ACCELERATOR_BUFFER_BYTES
    on = device.type == "cpu" or (device.type == "cuda" and CUDA_OVERLAP)
    overlap = config.overlap and config.complex == "cubical" and on
    if token_mask is not None and (token_mask.ndim != 2 or token_mask.shape[0] != len(inputs)):
        raise ValueError(
            f"`token_mask` must be (n, T) for the {len(inputs)} inputs (True or 1 at a real token), got shape "
            f"{tuple(token_mask.shape)}."
        )
    layout = token_layout(model, inputs)
    if token_mask is not None:  # a text model's outputs of the inputs' length T are token sequences
        layout = dataclasses.replace(layout, length=int(token_mask.shape[1]))
    reducer = _Reducer(config, device, budget, layout, overlap=overlap, token_mask=token_mask)
    try:
        with ActivationCapture(model, layer_names, reducer, output_fn=config.output_fn) as capture:
            if len(inputs):
                run_on_sample(
                    model,
                    inputs,
                    batch_size=config.batch_size,
                    forward_fn=config.forward_fn,
                    on_batch=on_batch,
                    on_batch_start=capture.start_pass,
                )
        for name in layer_names:
            capture.results.setdefault(name, []).append(reducer.flush(name))
        reducer.release()
    except BaseException:
        reducer.cancel()
        raise
    return PendingCapture(reducer, capture, layer_names, len(inputs))


def capture_layers(
    model: nn.Module,
    inputs: Tensor,
    layer_names: Sequence[str],
    config: TopologyConfig,
    *,
    on_batch: Callable[[int], None] | None = None,
    token_mask: Tensor | None = None,
) -> LayerValues:
    """One pass of ``inputs`` through ``model``, each watched layer reduced inside its hook.

    The forward pass runs where the model lives (inputs are moved there batch by batch); the reduction runs on
    ``config.device`` (default: the model's device). On an accelerator the cubical view gathers each layer's
    activations over batches (up to :data:`ACCELERATOR_BUFFER_BYTES`) and reduces them in one call. On the CPU,
    with ``config.overlap`` (the default), a batch's Betti numbers are computed on a background thread while the
    forward pass goes on (:func:`start_capture`). ``on_batch(n)`` is called after each forward batch.
    ``token_mask`` ``(n, T)`` bool (:attr:`~lightning_topo.capture.FixedSample.token_mask`): the padded positions
    of token inputs, left out of the text sequences ``(B, T, D)`` the layers output (their volumes and means).
    """
    return start_capture(model, inputs, layer_names, config, on_batch=on_batch, token_mask=token_mask).result()
