"""Layerwise topology of a model on a fixed sample: one pass, reduced in the hooks, summarised.

This is the one implementation behind :class:`~lightning_topo.callback.TopologyCallback` (every
validation epoch) and the one-off analysis API. It

1. runs the sample through the model once (eval mode, ``torch.inference_mode``, batch by batch) with
   forward hooks on the watched layers (:mod:`lightning_topo.capture`);
2. reduces each layer's output *inside the hook* to what the view needs, so no raw activation outlives
   its batch: per-input Betti numbers for the cubical view, a pooled embedding for the point-cloud view;
3. summarises per layer and per class: mean Betti numbers, Omega, and the decay rates over depth.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from lightning_topo.capture import ActivationCapture, run_on_sample
from lightning_topo.complexity import normalised_decay, theta
from lightning_topo.cubical import cubical_betti

__all__ = [
    "COMPLEXES",
    "METRICS",
    "THRESHOLDS",
    "Collective",
    "LayerTopology",
    "TopologyConfig",
    "TopologyResult",
    "capture_layers",
    "combine_layers",
    "evaluate_topology",
    "summarise_layers",
    "summarise_topology",
]

COMPLEXES = ("cubical", "rips")
THRESHOLDS = ("mean", "median")
METRICS = ("knn_hops", "euclidean")

ThresholdSpec = float | str | Callable[[Tensor], Tensor | float]


@dataclass(frozen=True)
class TopologyConfig:
    """What to compute on each watched layer (validated on construction).

    Args:
        complex: ``"cubical"`` (each input's activation is a grey-scale volume; Suresh et al.) or
            ``"rips"`` (per class, the sample's embeddings form a point cloud; Naitzat et al.).
        threshold: cubical view: the sublevel threshold. ``"mean"`` (default) uses each volume's own
            mean value; ``"median"`` each volume's lower median; a number is an absolute threshold;
            a callable maps a batch of volumes ``(B, ...)`` to a ``(B,)`` tensor (or a number).
        scale: point-cloud view: the Vietoris–Rips scale (default 2.5 hops, Naitzat's value).
        metric: point-cloud view: ``"knn_hops"`` (default; hop distance on the k-NN graph, scale-free)
            or ``"euclidean"``.
        k: neighbours of the k-NN graph for ``"knn_hops"`` (default 14, Naitzat's D-I value; capped
            at the class size minus one).
        maxdim: highest homology dimension of the point-cloud view (cubical always gives b0, b1, b2).
        pool_size: point-cloud view: conv maps ``(C, H, W)`` are average-pooled to
            ``(C, pool_size, pool_size)`` and flattened (bounded dimension; ``None`` flattens as is).
    """

    complex: Literal["cubical", "rips"] = "cubical"
    threshold: ThresholdSpec = "mean"
    scale: float = 2.5
    metric: Literal["knn_hops", "euclidean"] = "knn_hops"
    k: int = 14
    maxdim: int = 1
    pool_size: int | None = 4

    def __post_init__(self) -> None:
        if self.complex not in COMPLEXES:
            raise ValueError(f"`complex` must be one of {COMPLEXES}, got {self.complex!r}.")
        t = self.threshold
        if isinstance(t, str):
            if t not in THRESHOLDS:
                raise ValueError(f"`threshold` must be one of {THRESHOLDS}, a number or a callable, got {t!r}.")
        elif isinstance(t, bool) or not (isinstance(t, (int, float)) or callable(t)):
            raise ValueError(f"`threshold` must be one of {THRESHOLDS}, a number or a callable, got {t!r}.")
        elif isinstance(t, (int, float)) and math.isnan(t):
            raise ValueError("`threshold` is NaN; pass a real number, 'mean', 'median' or a callable.")
        if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"`scale` must be a finite number > 0, got {self.scale!r}.")
        if self.metric not in METRICS:
            raise ValueError(f"`metric` must be one of {METRICS}, got {self.metric!r}.")
        if not (isinstance(self.k, int) and self.k >= 1):
            raise ValueError(f"`k` must be an integer >= 1, got {self.k!r}.")
        if not (isinstance(self.maxdim, int) and 0 <= self.maxdim <= 2):
            raise ValueError(f"`maxdim` must be 0, 1 or 2, got {self.maxdim!r}.")
        if self.pool_size is not None and not (isinstance(self.pool_size, int) and self.pool_size >= 1):
            raise ValueError(f"`pool_size` must be None or an integer >= 1, got {self.pool_size!r}.")

    @property
    def betti_dims(self) -> int:
        """How many Betti numbers each layer reports (3 for cubical, maxdim + 1 for Rips)."""
        return 3 if self.complex == "cubical" else self.maxdim + 1

    def thresholds_for(self, volumes: Tensor) -> Tensor | float:
        """The sublevel threshold of each volume of a batch ``(B, ...)``."""
        t = self.threshold
        if t == "mean":
            return volumes.reshape(volumes.shape[0], -1).mean(dim=1, dtype=torch.float64)
        if t == "median":
            return volumes.reshape(volumes.shape[0], -1).median(dim=1).values
        if callable(t):
            return t(volumes)
        return float(t)


@dataclass
class LayerTopology:
    """Topology of one layer on the sample.

    ``betti``: ``(C, K)`` mean Betti numbers per class (NaN for a class that could not be computed);
    ``per_input``: ``(N, K)`` Betti numbers per sampled input (cubical view; ``None`` for Rips);
    ``omega``: Omega (per class, then over classes); ``problem``: why the layer is NaN, if it is.
    """

    name: str
    betti: Tensor
    omega: float
    per_input: Tensor | None = None
    problem: str | None = None


@dataclass
class TopologyResult:
    """Layerwise topology of a model on a sample, in depth order."""

    layers: list[LayerTopology]
    classes: list[int]
    theta: float
    decay_rate: float
    warnings: list[str] = field(default_factory=list)

    @property
    def omega(self) -> Tensor:
        """``(L,)`` float64 Omega per layer."""
        return torch.tensor([layer.omega for layer in self.layers], dtype=torch.float64)


def _first_axes_as_batch(out: Tensor) -> Tensor:
    """A layer output ``(b, ...)`` as a batch of volumes with 1–3 spatial axes."""
    if out.ndim == 1:
        return out.unsqueeze(1)
    if out.ndim > 4:
        return out.reshape(*out.shape[:3], -1)
    return out


def _pooled_embedding(out: Tensor, pool_size: int | None) -> Tensor:
    if out.ndim == 4 and pool_size is not None:
        out = nn.functional.adaptive_avg_pool2d(out.float(), pool_size)
    return out.reshape(out.shape[0], -1).float()


class _Reducer:
    """Reduces each captured layer output to per-input Betti numbers or pooled embeddings."""

    def __init__(self, config: TopologyConfig) -> None:
        self.config = config
        self.problems: dict[str, str] = {}

    def __call__(self, name: str, out: Tensor) -> Tensor | None:
        if name in self.problems:
            return None
        if not (out.is_floating_point() or out.dtype in (torch.int8, torch.int16, torch.int32, torch.int64)):
            self.problems[name] = f"layer output has dtype {out.dtype}; a real-valued tensor is needed"
            return None
        if out.ndim == 0 or out.numel() == 0 or out.shape[0] == 0:
            self.problems[name] = f"layer output has shape {tuple(out.shape)}; expected (batch, ...) with data"
            return None
        if self.config.complex == "cubical":
            volumes = _first_axes_as_batch(out)
            try:  # cubical_betti checks finiteness itself (one pass over the activations, not two)
                return cubical_betti(volumes, self.config.thresholds_for(volumes))
            except ValueError as err:
                if "NaN or Inf" not in str(err):
                    raise
                self.problems[name] = "NaN or Inf in its activations"
                return None
        if out.is_floating_point() and not bool(torch.isfinite(out).all()):
            self.problems[name] = "NaN or Inf in its activations"
            return None
        return _pooled_embedding(out, self.config.pool_size)


class Collective:
    """The collectives the summary needs; this base class is the single-process (world size 1) version.

    ``TopologyCallback`` passes one backed by the Lightning strategy (``all_reduce`` / ``all_gather``
    across ranks); every rank must call the same collectives in the same order, which the summary does
    whatever data a rank holds (none included).
    """

    world_size: int = 1
    rank: int = 0

    def all_reduce_sum(self, tensor: Tensor) -> Tensor:
        """Elementwise sum over ranks."""
        return tensor

    def all_gather(self, tensor: Tensor) -> Tensor:
        """Stack of every rank's tensor (same shape on every rank): ``(world_size, *tensor.shape)``."""
        return tensor.unsqueeze(0)


def capture_layers(
    model: nn.Module,
    inputs: Tensor,
    layer_names: Sequence[str],
    config: TopologyConfig,
    *,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    forward_fn: Callable[[nn.Module, Tensor], Any] | None = None,
    output_fn: Callable[[Any], Tensor] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[dict[str, Tensor | None], dict[str, str]]:
    """One pass of ``inputs`` through ``model``; each watched layer reduced inside its hook.

    Returns ``values`` (per layer: per-input Betti numbers ``(n, 3)`` for the cubical view, pooled
    embeddings ``(n, d)`` for Rips, on the compute device; ``None`` for a layer with a problem) and
    ``problems`` (layer -> why it has no values). ``on_batch(n)`` is called after each forward batch.
    """
    reducer = _Reducer(config)
    with ActivationCapture(model, layer_names, reducer, output_fn=output_fn) as capture:
        if len(inputs):
            run_on_sample(model, inputs, batch_size=batch_size, device=device, forward_fn=forward_fn, on_batch=on_batch)
    values: dict[str, Tensor | None] = {}
    problems: dict[str, str] = {}
    for name in layer_names:
        problem = reducer.problems.get(name) or capture.skipped.get(name)
        reduced = [r for r in capture.results.get(name, []) if r is not None]
        if problem is None and len(inputs) and sum(len(r) for r in reduced) != len(inputs):
            problem = "no output captured for every sampled input (is the layer used in forward?)"
        if problem is not None:
            problems[name] = problem
            values[name] = None
        else:
            values[name] = torch.cat(reduced) if reduced else None
    return values, problems


def _class_rips(points: Tensor, config: TopologyConfig) -> Tensor:
    from lightning_topo.rips import rips_betti

    k = min(config.k, points.shape[0] - 1)
    kwargs: dict[str, Any] = {"k": k} if config.metric == "knn_hops" else {}
    return rips_betti(points, config.scale, maxdim=config.maxdim, metric=config.metric, **kwargs).double().cpu()


def _cubical_layers(
    names: Sequence[str],
    values: dict[str, Tensor | None],
    problems: dict[str, str],
    labels: Tensor,
    classes: list[int],
    comm: Collective,
    device: torch.device,
) -> list[LayerTopology]:
    n_layers, n_classes = len(names), len(classes)
    # (L, C, 4): per-class sums of b0, b1, b2 and the count; plus one problem flag per layer.
    stats = torch.zeros(n_layers, n_classes, 4, dtype=torch.float64, device=device)
    flags = torch.zeros(n_layers, dtype=torch.float64, device=device)
    class_index = {c: i for i, c in enumerate(classes)}
    idx = torch.tensor([class_index[int(c)] for c in labels], dtype=torch.long, device=device)
    for i, name in enumerate(names):
        betti = values.get(name)
        if name in problems:
            flags[i] = 1.0
        elif betti is not None and len(betti):
            stats[i, :, :3].index_add_(0, idx, betti.to(device, torch.float64))
            stats[i, :, 3].index_add_(0, idx, torch.ones(len(idx), dtype=torch.float64, device=device))
    stats = comm.all_reduce_sum(stats).cpu()
    flags = comm.all_reduce_sum(flags).cpu()
    layers = []
    for i, name in enumerate(names):
        if flags[i] > 0:
            why = problems.get(name, "a problem on another rank (see its warning)")
            layers.append(
                LayerTopology(name, torch.full((n_classes, 3), math.nan, dtype=torch.float64), math.nan, problem=why)
            )
            continue
        counts = stats[i, :, 3]
        per_class = stats[i, :, :3] / counts.unsqueeze(1)  # NaN for a class with no input
        present = counts > 0
        om = float(per_class[present].sum(dim=1).mean()) if bool(present.any()) else math.nan
        local = values.get(name)
        layers.append(LayerTopology(name, per_class, om, per_input=None if local is None else local.cpu()))
    return layers


def _rips_layers(
    names: Sequence[str],
    values: dict[str, Tensor | None],
    problems: dict[str, str],
    positions: Tensor,
    all_labels: Tensor,
    classes: list[int],
    config: TopologyConfig,
    comm: Collective,
    device: torch.device,
    warnings: list[str],
) -> list[LayerTopology]:
    dims = config.betti_dims
    n_layers, n_classes = len(names), len(classes)
    clouds: dict[str, Tensor | None] = {}
    for name in names:
        local = values.get(name)
        n_local = 0 if local is None else local.shape[0]
        width = 0 if local is None else local.shape[1]
        meta = comm.all_gather(
            torch.tensor([n_local, width, float(name in problems)], dtype=torch.float64, device=device)
        ).cpu()
        if meta[:, 2].sum() > 0:
            clouds[name] = None
            continue
        n_max, d = int(meta[:, 0].max()), int(meta[:, 1].max())
        padded = torch.zeros(n_max, d, dtype=torch.float32, device=device)
        where = torch.full((n_max,), -1, dtype=torch.long, device=device)
        if local is not None and n_local:
            padded[:n_local] = local.to(device, torch.float32)
            where[:n_local] = positions.to(device)
        points = comm.all_gather(padded).reshape(-1, d).cpu()
        pos = comm.all_gather(where).reshape(-1).cpu()
        full = torch.empty(len(all_labels), d, dtype=torch.float32)
        full[pos[pos >= 0]] = points[pos >= 0]
        clouds[name] = full
    # Split the (layer, class) jobs over ranks; sum-reduce the results (with a "computed" mask).
    results = torch.zeros(n_layers, n_classes, dims, dtype=torch.float64, device=device)
    done = torch.zeros(n_layers, n_classes, dtype=torch.float64, device=device)
    sizes = {c: int((all_labels == c).sum()) for c in classes}
    for job in range(n_layers * n_classes):
        i, j = divmod(job, n_classes)
        cloud = clouds[names[i]]
        if job % comm.world_size != comm.rank or cloud is None or sizes[classes[j]] < 2:
            continue
        results[i, j] = _class_rips(cloud[all_labels == classes[j]], config).to(device)
        done[i, j] = 1.0
    results = comm.all_reduce_sum(results).cpu()
    done = comm.all_reduce_sum(done).cpu()
    for c in classes:
        if sizes[c] < 2:
            warnings.append(
                f"class {c} has {sizes[c]} sampled input(s): a point cloud needs at least 2, so the class is "
                "skipped for the point-cloud view (raise `samples_per_class`)."
            )
    layers = []
    for i, name in enumerate(names):
        if clouds[name] is None:
            why = problems.get(name, "a problem on another rank (see its warning)")
            layers.append(
                LayerTopology(name, torch.full((n_classes, dims), math.nan, dtype=torch.float64), math.nan, problem=why)
            )
            continue
        per_class = torch.where(done[i].bool().unsqueeze(1), results[i], torch.full_like(results[i], math.nan))
        finite = per_class[done[i].bool()]
        om = float(finite.sum(dim=1).mean()) if len(finite) else math.nan
        layers.append(LayerTopology(name, per_class, om))
    return layers


def summarise_layers(
    values: dict[str, Tensor | None],
    problems: dict[str, str],
    layer_names: Sequence[str],
    all_labels: Tensor,
    positions: Tensor,
    config: TopologyConfig,
    comm: Collective | None = None,
    device: torch.device | str = "cpu",
) -> tuple[list[LayerTopology], list[int], list[str]]:
    """Per-layer, per-class summaries of captured values, reduced over ranks by ``comm``.

    Returns the layers (in the order of ``layer_names``), the sample's classes and the view's warnings
    (e.g. a class too small for a point cloud); :func:`combine_layers` adds the decay over depth.

    Args:
        values, problems: from :func:`capture_layers` on this rank's inputs.
        layer_names: watched layers in depth order.
        all_labels: ``(N,)`` labels of the whole sample (every rank has them).
        positions: ``(n,)`` positions of this rank's inputs in the sample.
        config: the view.
        comm: the collectives (default: one process).
        device: where collective tensors live (the device the process group uses).
    """
    comm = comm or Collective()
    device = torch.device(device)
    all_labels = all_labels.cpu().long()
    positions = positions.cpu().long()
    classes = sorted(int(c) for c in torch.unique(all_labels))
    warnings: list[str] = []
    if config.complex == "cubical":
        layers = _cubical_layers(layer_names, values, problems, all_labels[positions], classes, comm, device)
    else:
        layers = _rips_layers(
            layer_names, values, problems, positions, all_labels, classes, config, comm, device, warnings
        )
    return layers, classes, warnings


def summarise_topology(
    values: dict[str, Tensor | None],
    problems: dict[str, str],
    layer_names: Sequence[str],
    all_labels: Tensor,
    positions: Tensor,
    config: TopologyConfig,
    comm: Collective | None = None,
    device: torch.device | str = "cpu",
) -> TopologyResult:
    """Per-layer, per-class summaries of captured values, reduced over ranks by ``comm``, with the decay
    over depth (:func:`summarise_layers` then :func:`combine_layers`; arguments as there)."""
    layers, classes, warnings = summarise_layers(
        values, problems, layer_names, all_labels, positions, config, comm=comm, device=device
    )
    return combine_layers(layers, classes, warnings)


def combine_layers(
    layers: Sequence[LayerTopology], classes: list[int], warnings: list[str] | None = None
) -> TopologyResult:
    """A :class:`TopologyResult` from per-layer summaries in depth order: adds theta and the decay rate.

    Used when layers are summarised one at a time (``analyse`` streams the point-cloud view layer by layer).
    """
    warnings = list(warnings or [])
    for layer in layers:
        if layer.problem is not None:
            warnings.append(f"layer '{layer.name}': {layer.problem}; its values are NaN for this evaluation.")
    th, decay, why = _decays(torch.tensor([layer.omega for layer in layers], dtype=torch.float64))
    if why is not None:
        warnings.append(why)
    return TopologyResult(layers=list(layers), classes=classes, theta=th, decay_rate=decay, warnings=warnings)


def _decays(omegas: Tensor) -> tuple[float, float, str | None]:
    if omegas.numel() < 2:
        return math.nan, math.nan, f"the decay over depth needs at least 2 layers, {omegas.numel()} watched"
    if not bool(torch.isfinite(omegas).all()):
        return math.nan, math.nan, "theta and the decay rate are NaN because a layer's Omega is NaN"
    if bool((omegas == 0).all()):
        return math.nan, math.nan, "Omega is 0 at every layer (threshold below every activation?): decay undefined"
    return float(theta(omegas)), float(normalised_decay(omegas)), None


def evaluate_topology(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    layer_names: Sequence[str],
    config: TopologyConfig,
    *,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    forward_fn: Callable[[nn.Module, Tensor], Any] | None = None,
    output_fn: Callable[[Any], Tensor] | None = None,
) -> TopologyResult:
    """Layerwise topology of ``model`` on a sample, in one process (one pass; hooks removed afterwards).

    Args:
        model: the network (any ``nn.Module``; a LightningModule is called through ``forward``).
        inputs: ``(N, ...)`` sampled inputs (any device; moved batch by batch to ``device``).
        labels: ``(N,)`` integer class labels (all zeros when unlabeled).
        layer_names: watched layers, names from ``model.named_modules()``, in depth order.
        config: what to compute (:class:`TopologyConfig`).
        batch_size: inputs per forward pass.
        device: where the forward pass and the cubical computation run (default: the model's device).
        forward_fn: ``forward_fn(model, batch)``; default ``model(batch)``.
        output_fn: picks the tensor from a layer's output when it is not a tensor.

    Returns:
        A :class:`TopologyResult`; layers with NaN/Inf activations or unusable outputs are NaN and named
        in ``LayerTopology.problem``.
    """
    values, problems = capture_layers(
        model,
        inputs,
        layer_names,
        config,
        batch_size=batch_size,
        device=device,
        forward_fn=forward_fn,
        output_fn=output_fn,
    )
    return summarise_topology(values, problems, layer_names, labels, torch.arange(len(labels)), config)
