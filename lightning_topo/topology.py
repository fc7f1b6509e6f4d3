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
    "LayerTopology",
    "TopologyConfig",
    "TopologyResult",
    "evaluate_topology",
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
            return volumes.reshape(volumes.shape[0], -1).double().mean(dim=1)
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
        if out.is_floating_point() and not bool(torch.isfinite(out).all()):
            self.problems[name] = "NaN or Inf in its activations"
            return None
        if self.config.complex == "cubical":
            volumes = _first_axes_as_batch(out)
            return cubical_betti(volumes, self.config.thresholds_for(volumes))
        return _pooled_embedding(out, self.config.pool_size)


def _per_class_mean(values: Tensor, labels: Tensor, classes: Sequence[int]) -> Tensor:
    rows = []
    for c in classes:
        chosen = values[labels == c]
        rows.append(chosen.double().mean(dim=0) if len(chosen) else torch.full(values.shape[1:], math.nan))
    return torch.stack(rows).double()


def _class_rips(points: Tensor, config: TopologyConfig) -> Tensor:
    from lightning_topo.rips import rips_betti

    k = min(config.k, points.shape[0] - 1)
    kwargs: dict[str, Any] = {"k": k} if config.metric == "knn_hops" else {}
    return rips_betti(points, config.scale, maxdim=config.maxdim, metric=config.metric, **kwargs).double()


def _summarise(
    name: str, reduced: list[Tensor], labels: Tensor, classes: list[int], config: TopologyConfig, warnings: list[str]
) -> LayerTopology:
    dims = config.betti_dims
    nan_row = torch.full((len(classes), dims), math.nan, dtype=torch.float64)
    values = torch.cat([r.cpu() for r in reduced]) if reduced else None
    if values is None or values.shape[0] != labels.shape[0]:
        return LayerTopology(name, nan_row, math.nan, problem="no output captured for every sampled input")
    if config.complex == "cubical":
        per_class = _per_class_mean(values, labels, classes)
        return LayerTopology(name, per_class, float(per_class.sum(dim=1).mean()), per_input=values)
    rows = []
    for c in classes:
        cloud = values[labels == c]
        if cloud.shape[0] < 2:
            warnings.append(
                f"class {c} has {cloud.shape[0]} sampled input(s) at layer '{name}': a point cloud needs at least "
                "2, so the class is skipped for the point-cloud view (raise `samples_per_class`)."
            )
            rows.append(torch.full((dims,), math.nan, dtype=torch.float64))
        else:
            rows.append(_class_rips(cloud, config))
    per_class = torch.stack(rows)
    finite = per_class[~torch.isnan(per_class).any(dim=1)]
    om = float(finite.sum(dim=1).mean()) if len(finite) else math.nan
    return LayerTopology(name, per_class, om)


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
    """Layerwise topology of ``model`` on a sample (one pass; hooks removed afterwards).

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
        A :class:`TopologyResult`; layers with NaN/Inf activations or unusable outputs are NaN and
        named in ``LayerTopology.problem``.
    """
    reducer = _Reducer(config)
    labels = labels.cpu().long()
    classes = sorted(int(c) for c in torch.unique(labels))
    with ActivationCapture(model, layer_names, reducer, output_fn=output_fn) as capture:
        run_on_sample(model, inputs, batch_size=batch_size, device=device, forward_fn=forward_fn)
    warnings: list[str] = []
    layers = []
    for name in layer_names:
        reduced = [r for r in capture.results.get(name, []) if r is not None]
        problem = reducer.problems.get(name) or capture.skipped.get(name)
        if problem is not None:
            dims = config.betti_dims
            nan_row = torch.full((len(classes), dims), math.nan, dtype=torch.float64)
            layers.append(LayerTopology(name, nan_row, math.nan, problem=str(problem)))
            warnings.append(f"layer '{name}': {problem}; its values are NaN for this evaluation.")
            continue
        layers.append(_summarise(name, reduced, labels, classes, config, warnings))
    th, decay, why = _decays(torch.tensor([layer.omega for layer in layers], dtype=torch.float64))
    if why is not None:
        warnings.append(why)
    return TopologyResult(layers=layers, classes=classes, theta=th, decay_rate=decay, warnings=warnings)
