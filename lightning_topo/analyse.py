"""`analyse`: the layerwise topology of any model on a data set, without training.

The same sampling (:mod:`lightning_topo.sampling`), capture (:mod:`lightning_topo.capture`) and summaries
(:mod:`lightning_topo.topology`) as :class:`~lightning_topo.callback.TopologyCallback`: for the same weights
and data, ``analyse`` gives the numbers the callback logs.

Memory: each layer's output is reduced inside its forward hook, batch by batch, so raw activations never
outlive their batch. The cubical view keeps 3 numbers per input and layer and needs one pass over the sample;
the point-cloud view needs each layer's whole (pooled) cloud, so by default it streams **layer by layer**
(one pass per layer; only one layer's cloud is held at a time).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from lightning_topo.capture import model_device
from lightning_topo.layers import resolve_layers
from lightning_topo.report import TopologyReport
from lightning_topo.sampling import FixedSample, build_sample
from lightning_topo.topology import (
    LayerTopology,
    TopologyConfig,
    TopologyResult,
    capture_layers,
    combine_layers,
    summarise_layers,
)

__all__ = ["analyse", "default_device", "sample_from"]


def default_device(model: nn.Module | None = None) -> torch.device:
    """The model's device when it is on an accelerator; else CUDA when present; else the CPU."""
    if model is not None and model_device(model).type != "cpu":
        return model_device(model)
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def _loader_of(data: Any) -> DataLoader | Dataset:
    if isinstance(data, LightningDataModule):
        data.prepare_data()
        data.setup("validate")
        loader = data.val_dataloader()
        if isinstance(loader, (list, tuple)):
            if not loader:
                raise ValueError(f"{type(data).__name__}.val_dataloader() returned no dataloader.")
            loader = loader[0]
        return loader
    if isinstance(data, (DataLoader, Dataset)):
        return data
    raise TypeError(
        f"`data` must be a DataLoader, a map-style Dataset of (input, label) items or a LightningDataModule "
        f"(its validation split), got {type(data).__name__}."
    )


def sample_from(
    data: DataLoader | Dataset | LightningDataModule,
    *,
    samples_per_class: int | None = 20,
    max_samples: int = 200,
    seed: int = 0,
    input_fn: Callable[[Any], Tensor] | None = None,
    target_fn: Callable[[Any], Any] | None = None,
) -> FixedSample:
    """The fixed sample ``analyse`` uses: the callback's seeded, stratified choice over ``data``."""
    return build_sample(
        _loader_of(data),
        samples_per_class=samples_per_class,
        max_samples=max_samples,
        seed=seed,
        input_fn=input_fn,
        target_fn=target_fn,
    )


class _Progress:
    def __init__(self, total: int, enabled: bool, desc: str) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="input", leave=False, dynamic_ncols=True)

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def describe(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextmanager
def _on_device(model: nn.Module, device: torch.device):  # type: ignore[no-untyped-def]
    """Move the model to ``device`` for the analysis and back afterwards."""
    before = model_device(model)
    if before != device:
        model.to(device)
    try:
        yield
    finally:
        if before != device:
            model.to(before)


def _run(
    model: nn.Module,
    sample: FixedSample,
    layer_names: list[str],
    config: TopologyConfig,
    *,
    layer_by_layer: bool,
    batch_size: int,
    device: torch.device,
    forward_fn: Callable[[nn.Module, Tensor], Any] | None,
    output_fn: Callable[[Any], Tensor] | None,
    progress: bool,
) -> TopologyResult:
    n = len(sample.labels)
    positions = torch.arange(n)
    groups = [[name] for name in layer_names] if layer_by_layer else [layer_names]
    bar = _Progress(n * len(groups), progress, f"analyse ({config.complex})")
    per_layer: list[LayerTopology] = []
    messages: list[str] = []
    try:
        for group in groups:
            bar.describe(group[0] if len(group) == 1 else f"{len(group)} layers")
            values, problems = capture_layers(
                model,
                sample.inputs,
                group,
                config,
                batch_size=batch_size,
                device=device,
                forward_fn=forward_fn,
                output_fn=output_fn,
                on_batch=bar,
            )
            layers, _, view_warnings = summarise_layers(
                values, problems, group, sample.labels, positions, config, device="cpu"
            )
            per_layer += layers
            messages += [w for w in view_warnings if w not in messages]
    finally:
        bar.close()
    return combine_layers(per_layer, list(sample.classes), messages)


def analyse(
    model: nn.Module,
    data: DataLoader | Dataset | LightningDataModule,
    *,
    layers: str | Sequence[str] | Callable[[str, nn.Module], bool] = "auto",
    complex: Literal["cubical", "rips"] = "cubical",
    threshold: float | str | Callable[[Tensor], Tensor | float] = "mean",
    scale: float = 2.5,
    metric: Literal["knn_hops", "euclidean"] = "knn_hops",
    k: int = 14,
    maxdim: int = 1,
    pool_size: int | None = 4,
    samples_per_class: int | None = 20,
    max_samples: int = 200,
    seed: int = 0,
    batch_size: int = 256,
    max_layers: int = 32,
    layer_by_layer: bool | None = None,
    device: torch.device | str | None = None,
    input_fn: Callable[[Any], Tensor] | None = None,
    target_fn: Callable[[Any], Any] | None = None,
    output_fn: Callable[[Any], Tensor] | None = None,
    forward_fn: Callable[[nn.Module, Tensor], Any] | None = None,
    progress: bool = True,
    name: str = "",
) -> TopologyReport:
    """Layerwise Betti numbers, Omega and the decay rates of ``model`` on a fixed sample of ``data``.

    Args:
        model: any ``nn.Module`` or ``LightningModule`` (run through ``forward``); it is put in eval mode for
            the analysis and its training flags and device are restored afterwards.
        data: a ``DataLoader``, a map-style ``Dataset`` of ``(input, label)`` items, or a ``LightningDataModule``
            (its validation split).
        layers, complex, threshold, scale, metric, k, maxdim, pool_size, samples_per_class, max_samples, seed,
            batch_size, max_layers, input_fn, target_fn, output_fn, forward_fn: as for
            :class:`~lightning_topo.callback.TopologyCallback` (same defaults, same sample, same numbers).
        layer_by_layer: one forward pass per layer, holding one layer's reduced values at a time (default:
            True for ``"rips"``, whose clouds are large; False for ``"cubical"``, one pass for all layers).
        device: where the forward pass and the cubical computation run (default: the model's accelerator,
            else CUDA when present, else the CPU).
        progress: show a progress bar (tqdm) over the inputs processed.
        name: a name stored in the report (e.g. the checkpoint).

    Returns:
        A :class:`~lightning_topo.report.TopologyReport`.

    Raises:
        MisconfigurationException: an unknown layer name (with close matches).
        ValueError / TypeError: bad arguments or data, naming the value and the fix.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU())
        >>> data = TensorDataset(torch.randn(40, 3), torch.arange(40) % 2)
        >>> report = analyse(net, data, complex="rips", k=5, progress=False)
        >>> report.layers, tuple(report.betti.shape)
        (['1', '3'], (2, 2, 2))
    """
    config = TopologyConfig(
        complex=complex, threshold=threshold, scale=scale, metric=metric, k=k, maxdim=maxdim, pool_size=pool_size
    )
    for arg, value in (("batch_size", batch_size), ("max_samples", max_samples), ("max_layers", max_layers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{arg}` must be an integer >= 1, got {value!r}.")
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module (or LightningModule), got {type(model).__name__}.")
    layer_names = resolve_layers(model, layers, max_layers=max_layers)
    if not layer_names:
        raise ValueError("no layer to analyse; pass `layers=[...]` with names from `model.named_modules()`.")
    sample = sample_from(
        data,
        samples_per_class=samples_per_class,
        max_samples=max_samples,
        seed=seed,
        input_fn=input_fn,
        target_fn=target_fn,
    )
    target = torch.device(device) if device is not None else default_device(model)
    if layer_by_layer is None:
        layer_by_layer = config.complex == "rips"
    with _on_device(model, target):
        result = _run(
            model,
            sample,
            layer_names,
            config,
            layer_by_layer=layer_by_layer,
            batch_size=batch_size,
            device=target,
            forward_fn=forward_fn,
            output_fn=output_fn,
            progress=progress,
        )
    for message in result.warnings:
        warnings.warn(f"analyse: {message}", UserWarning, stacklevel=2)
    dims = config.betti_dims
    per_input = None
    if config.complex == "cubical":
        nan_rows = torch.full((len(sample.labels), dims), float("nan"), dtype=torch.float64)
        per_input = torch.stack(
            [nan_rows if layer.per_input is None else layer.per_input.to(torch.float64) for layer in result.layers]
        )
    settings = {
        "complex": config.complex,
        "threshold": config.threshold if isinstance(config.threshold, (str, int, float)) else repr(config.threshold),
        "scale": float(config.scale),
        "metric": config.metric,
        "k": config.k,
        "maxdim": config.maxdim,
        "pool_size": config.pool_size,
        "samples_per_class": samples_per_class,
        "max_samples": max_samples,
        "seed": seed,
    }
    return TopologyReport(
        layers=[layer.name for layer in result.layers],
        classes=list(result.classes),
        betti=torch.stack([layer.betti.to(torch.float64) for layer in result.layers]),
        omega=result.omega,
        theta=result.theta,
        decay_rate=result.decay_rate,
        labels=sample.labels.clone(),
        indices=sample.indices.clone(),
        per_input=per_input,
        problems={layer.name: layer.problem for layer in result.layers if layer.problem is not None},
        config=settings,
        warnings=list(result.warnings),
        name=name,
    )
