"""Running a model on a sample and measuring its layers: :func:`evaluate_topology`, the one implementation behind
:class:`~lightning_topo.callbacks.TopologyCallback` and :func:`~lightning_topo.analysis.analyse`.

It drives the model (capture, ``lightning_topo.capture``) and feeds the states of a
:class:`~lightning_topo.metrics.LayerwiseTopology` (a torchmetrics ``Metric`` never drives a model). Under DDP an
exception while one rank captures (a failing ``forward_fn`` or ``output_fn``, CuPy's ordering check, out of memory)
reaches every rank before the metric's sync, as a :class:`TopologyEvaluationError` (:func:`ranks_fail_together`):
no rank waits in the gather for a rank that left.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from lightning_topo.capture import PendingCapture, start_capture
from lightning_topo.config import TopologyConfig
from lightning_topo.functional.persistence import PersistenceDiagrams
from lightning_topo.metrics import LayerwiseTopology, TopologyResult

__all__ = [
    "PendingEvaluation",
    "TopologyEvaluationError",
    "evaluate_topology",
    "ranks_fail_together",
    "start_evaluation",
]


class TopologyEvaluationError(RuntimeError):
    """A topology evaluation failed on some DDP rank; raised on every rank, so that none waits for the others.

    On a rank that failed, the original exception is chained (``__cause__``); the other ranks name the failed
    rank(s) and their errors in the message.

    Attributes:
        failed_ranks: the ranks (in the process group) whose evaluation raised, sorted.
        errors: ``{rank: "Type: message"}`` of each failed rank's exception.

    Example:
        >>> err = TopologyEvaluationError({1: "RuntimeError: out of memory"})
        >>> err.failed_ranks
        (1,)
        >>> print(err)
        the topology evaluation failed on rank 1 (RuntimeError: out of memory); every rank raises this error ...
    """

    def __init__(self, errors: dict[int, str]) -> None:
        self.errors = dict(sorted(errors.items()))
        self.failed_ranks = tuple(self.errors)
        where = ", ".join(f"rank {rank} ({text})" for rank, text in self.errors.items())
        super().__init__(
            f"the topology evaluation failed on {where}; every rank raises this error instead of waiting for the "
            "failed rank's metric states (on a failed rank the original exception is chained as __cause__)."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.errors,)


def _describe(err: BaseException, limit: int = 500) -> str:
    text = f"{type(err).__name__}: {err}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _exchange_failure(
    err: BaseException | None, world_size: int, device: torch.device | str | None, group: Any
) -> None:
    """One ``all_reduce`` of a per-rank failure flag; if any rank failed, every rank raises (after one more
    collective, on that path only, that gathers the failed ranks' error texts)."""
    flags = torch.zeros(world_size, dtype=torch.int32, device=device)
    if err is not None:
        flags[dist.get_rank(group)] = 1
    dist.all_reduce(flags, group=group)
    if not bool(flags.any()):
        return
    texts: list[str | None] = [None] * world_size
    dist.all_gather_object(texts, None if err is None else _describe(err), group=group)
    failed = torch.nonzero(flags.cpu()).flatten().tolist()
    errors = {rank: texts[rank] or "an exception" for rank in failed}
    raise TopologyEvaluationError(errors) from err


def _synced_world_size(sync: bool, group: Any) -> int:
    return dist.get_world_size(group) if sync and dist.is_available() and dist.is_initialized() else 1


@contextmanager
def ranks_fail_together(
    device: torch.device | str | None = None, *, sync: bool = True, group: Any = None
) -> Iterator[None]:
    """Under DDP, an exception in the block on any rank is raised on every rank as :class:`TopologyEvaluationError`.

    Wrap the per-rank work that comes before a collective (the metric's gather): each rank that leaves the block,
    normally or with an exception, takes part in one ``all_reduce`` of a failure flag (``world_size`` int32 on
    ``device``: the process group's device, where the metric's states live); when some rank failed, every rank
    raises, so none is left blocked in a collective the failed rank never joins. Without a process group, with
    ``sync=False`` or a world of one process, the block runs as it is and its exceptions propagate unchanged.
    Only ``Exception`` is exchanged: ``KeyboardInterrupt`` / ``SystemExit`` end the process as they would anyway.
    A :class:`TopologyEvaluationError` from a nested block passes through (every rank already raised it).

    Example:
        >>> with ranks_fail_together():  # no process group: nothing is exchanged
        ...     pass
    """
    world_size = _synced_world_size(sync, group)
    if world_size < 2:
        yield
        return
    try:
        yield
    except TopologyEvaluationError:
        raise
    except Exception as err:
        _exchange_failure(err, world_size, device, group)
        raise  # not reached: the exchange raises when this rank failed
    _exchange_failure(None, world_size, device, group)


def reusable_metric(
    metric: LayerwiseTopology | None,
    layer_names: Sequence[str],
    classes: Sequence[int],
    config: TopologyConfig,
    *,
    metric_device: torch.device | str | None = None,
    sync: bool = True,
    reset: bool = True,
) -> LayerwiseTopology:
    """``metric`` reset, when it was built for exactly these layers, classes, config, device and ``sync``; else a
    new :class:`LayerwiseTopology` for them (on ``metric_device``). ``reset=False`` returns that metric as it is
    (for a caller that hands it to :func:`evaluate_topology`, which resets it)."""
    device = torch.device(metric_device) if metric_device is not None else torch.device("cpu")
    if (
        metric is not None
        and metric.config is config
        and metric.layer_names == list(layer_names)
        and metric.classes == [int(c) for c in classes]
        and metric.sync_on_compute == sync
        and metric.problem.device == device
    ):
        if reset:
            metric.reset()
        return metric
    fresh = LayerwiseTopology(layer_names, classes, config, sync_on_compute=sync)
    return fresh.to(metric_device) if metric_device is not None else fresh


def evaluate_topology(
    model: Any,
    inputs: Tensor,
    labels: Tensor,
    layer_names: Sequence[str],
    config: TopologyConfig | None = None,
    *,
    classes: Sequence[int] | None = None,
    positions: Tensor | None = None,
    layer_by_layer: bool = False,
    metric_device: torch.device | str | None = None,
    sync: bool = True,
    on_batch: Any = None,
    metric: LayerwiseTopology | None = None,
    token_mask: Tensor | None = None,
) -> TopologyResult:
    """Layerwise topology of ``model`` on sampled ``inputs``: capture, feed a :class:`LayerwiseTopology`, compute.

    The one implementation behind :class:`~lightning_topo.callbacks.TopologyCallback` and
    :func:`~lightning_topo.analysis.analyse`. Under DDP each process passes its share of the sample
    (``positions`` in the whole sample) and the metric's states are combined across processes.

    Args:
        model: the network (a LightningModule is run through ``forward``); the forward pass runs where it lives.
        inputs: ``(n, ...)`` sampled inputs.
        labels: ``(n,)`` their integer labels.
        layer_names: watched layers, in depth (execution) order.
        config: the view and settings (default: :class:`~lightning_topo.config.TopologyConfig` defaults).
        classes: the classes of the whole sample (default: those in ``labels``).
        positions: ``(n,)`` positions of the inputs in the whole sample (default ``0..n-1``).
        layer_by_layer: one forward pass per layer, holding one layer's values at a time (point-cloud view).
        metric_device: where the metric's states live (the process group's device under DDP; default CPU).
        sync: combine the states across processes when ``torch.distributed`` is initialised (the callback's
            sharded sample); ``False`` when every process holds the whole sample (``analyse``).
        on_batch: called with the number of inputs after each forward batch (a progress bar).
        metric: a :class:`LayerwiseTopology` to reuse (reset here first) instead of building one, when it was built
            for the same layers, classes, config, device and ``sync`` (see :func:`reusable_metric`); the callback
            keeps one across evaluations, since building one costs milliseconds.
        token_mask: ``(n, T)`` bool, ``True`` at the real tokens of padded token inputs (the sample's
            :attr:`~lightning_topo.capture.FixedSample.token_mask`): the padded positions are left out of the text
            sequences ``(B, T, D)`` the layers output (their volumes and token means); ``None``: every position.

    Returns:
        A :class:`TopologyResult`; for the cubical view each layer's ``per_input`` holds this process's
        per-input Betti numbers; with ``config.persistence`` set, its ``persistence`` the per-class means of the
        summaries (combined over processes), ``per_input_persistence`` and ``diagrams`` this process's.

    Raises:
        TopologyEvaluationError: when states are synchronised (``sync=True``, ``torch.distributed`` initialised,
            more than one process) and capturing or feeding the metric raised on any rank: on every rank, before
            the gather (:func:`ranks_fail_together`, one tiny ``all_reduce`` per evaluation). Such an exception
            is an internal failure (a bug in ``forward_fn`` / ``output_fn``, CuPy's ordering check, out of
            memory), not bad input: a single process raises it too, so a DDP run raises it as well, on every rank
            and naming the failed rank, instead of hanging in the gather or turning it into NaN values that would
            differ from the single-process run and hide the bug behind one rank's warning. Bad input (a layer
            that cannot be computed) is not an exception: it is a ``problem`` and NaN on every rank. Without
            sync, the original exception propagates unchanged.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU())
        >>> r = evaluate_topology(net, torch.randn(30, 3), torch.arange(30) % 2, ["1", "3"],
        ...                       TopologyConfig(complex="rips", k=5))
        >>> [layer.name for layer in r.layers], tuple(r.layers[0].betti.shape)
        (['1', '3'], (2, 2))
    """
    return start_evaluation(
        model,
        inputs,
        labels,
        layer_names,
        config,
        classes=classes,
        positions=positions,
        layer_by_layer=layer_by_layer,
        metric_device=metric_device,
        sync=sync,
        on_batch=on_batch,
        metric=metric,
        token_mask=token_mask,
    ).result()


class PendingEvaluation:
    """An evaluation whose forward pass has run and whose Betti numbers may still be being computed in the
    background (``TopologyConfig.overlap``); :meth:`result` feeds the metric and computes it. From
    :func:`start_evaluation`."""

    def __init__(
        self,
        metric: LayerwiseTopology,
        config: TopologyConfig,
        labels: Tensor,
        positions: Tensor | None,
        sync: bool,
    ) -> None:
        self.metric = metric
        self._config = config
        self._labels = labels
        self._positions = positions
        self._sync = sync
        self._captures: list[PendingCapture] = []
        self._error: Exception | None = None  # a capture that raised under DDP: raised in `result`, on every rank
        self._per_input: dict[str, Tensor] = {}
        self._persistence: dict[str, Tensor] = {}
        self._diagrams: dict[str, PersistenceDiagrams] = {}

    def _feed(self, pending: PendingCapture) -> None:
        cfg, metric, labels, positions = self._config, self.metric, self._labels, self._positions
        captured = pending.result()
        for name in pending.layer_names:
            if name in captured.problems:
                metric.update(name, problem=captured.problems[name])
                continue
            if name not in captured.values:
                continue
            values = captured.values[name]
            summaries = captured.persistence.get(name)
            metric.update(name, values, labels, positions, persistence=summaries, constant=captured.constant.get(name))
            if cfg.complex == "cubical":
                self._per_input[name] = values.cpu()
            if summaries is not None:
                self._persistence[name] = summaries.cpu()
                self._diagrams[name] = captured.diagrams[name]

    def cancel(self) -> None:
        """Drop the background work not yet started (the evaluation is abandoned)."""
        for pending in self._captures:
            pending.cancel()
        self._captures = []

    def result(self) -> TopologyResult:
        """Wait for the Betti numbers, feed the metric and compute it (under DDP, with the other ranks)."""
        metric = self.metric
        with ranks_fail_together(metric.problem.device, sync=self._sync, group=metric.process_group):
            if self._error is not None:
                raise self._error
            while self._captures:
                self._feed(self._captures.pop(0))
        result = metric.result()  # compute(), without torchmetrics' wrapper when no state is synchronised
        for layer in result.layers:
            layer.per_input = self._per_input.get(layer.name)
            layer.per_input_persistence = self._persistence.get(layer.name)
            layer.diagrams = self._diagrams.get(layer.name)
        return result


def start_evaluation(
    model: Any,
    inputs: Tensor,
    labels: Tensor,
    layer_names: Sequence[str],
    config: TopologyConfig | None = None,
    *,
    classes: Sequence[int] | None = None,
    positions: Tensor | None = None,
    layer_by_layer: bool = False,
    metric_device: torch.device | str | None = None,
    sync: bool = True,
    on_batch: Any = None,
    metric: LayerwiseTopology | None = None,
    token_mask: Tensor | None = None,
) -> PendingEvaluation:
    """The first half of :func:`evaluate_topology` (same arguments): the forward pass over the sample. With
    ``config.overlap`` on the CPU the Betti numbers are then still being computed on a background thread;
    :meth:`PendingEvaluation.result` waits for them and returns what :func:`evaluate_topology` returns, the same
    numbers. The callback starts an evaluation at the first validation batch and reads it at the end of
    validation, so that the Betti numbers are computed while Lightning's validation loop runs.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
        >>> pending = start_evaluation(net, torch.randn(6, 1, 8, 8), torch.arange(6) % 2, ["1"])
        >>> tuple(pending.result().layers[0].betti.shape)  # per class: b0, b1, b2
        (2, 3)
    """
    cfg = config if config is not None else TopologyConfig()
    classes = sorted(int(c) for c in torch.unique(labels)) if classes is None else list(classes)
    metric = reusable_metric(metric, layer_names, classes, cfg, metric_device=metric_device, sync=sync)
    pending = PendingEvaluation(metric, cfg, labels, positions, sync)
    # Layer by layer (to hold one layer's values at a time) each pass is read before the next; the last is
    # left to `result`.
    groups = [[name] for name in layer_names] if layer_by_layer else [list(layer_names)]
    try:
        for i, group in enumerate(groups):
            pending._captures.append(start_capture(model, inputs, group, cfg, on_batch=on_batch, token_mask=token_mask))
            if i < len(groups) - 1:
                pending._feed(pending._captures.pop())
    except Exception as err:
        pending.cancel()
        # A rank that raises here would never join the gather in `compute`: under DDP every rank learns of it in
        # `result` first (see `ranks_fail_together`); a single process raises it now.
        if _synced_world_size(sync, metric.process_group) < 2:
            raise
        pending._error = err
    return pending
