"""`analyse`: the layerwise topology of any model on a data set, without training.

The same configuration (:class:`~lightning_topo.config.TopologyConfig`), sampling and capture
(:mod:`lightning_topo.capture`) and metric (:class:`~lightning_topo.metrics.LayerwiseTopology`) as
:class:`~lightning_topo.callbacks.TopologyCallback`: for the same weights and data, ``analyse`` gives the
numbers the callback logs.

Memory: each layer's output is reduced inside its forward hook, batch by batch, so raw activations never
outlive their batch. The cubical view keeps 3 numbers per input and layer and needs one pass over the sample;
the point-cloud view needs each layer's whole (pooled) cloud, so by default it streams **layer by layer**
(one pass per layer; only one layer's cloud is held at a time).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import torch
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.utilities import move_data_to_device
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lightning_topo.analysis.evaluate import evaluate_topology
from lightning_topo.analysis.report import TopologyReport
from lightning_topo.capture import (
    FixedSample,
    SampleError,
    build_sample,
    model_device,
    resolve_layers,
    thinned_note,
    watched_layers,
)
from lightning_topo.config import ConfigError, TopologyConfig
from lightning_topo.metrics import TopologyResult

__all__ = ["BatchHookError", "analyse", "default_device", "sample_from", "validation_batch_fn"]


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
    if isinstance(data, list) and data:  # a list of items is a map-style dataset to DataLoader too
        return data  # type: ignore[return-value]
    raise TypeError(
        f"`data` must be a DataLoader, a map-style Dataset (or a non-empty list) of (input, label) items or a "
        f"LightningDataModule (its validation split), got {type(data).__name__}."
    )


def sample_from(
    data: DataLoader | Dataset | LightningDataModule,
    config: TopologyConfig | None = None,
    model: nn.Module | None = None,
) -> FixedSample:
    """The fixed sample ``analyse`` uses: the callback's seeded, stratified choice over ``data``.

    Args:
        data: as :func:`analyse` takes it.
        config: the sampling fields (``samples_per_class``, ``max_samples``, ``seed``, ``input_fn``,
            ``target_fn``); default ``TopologyConfig()``.
        model: the model it is for: where it is a ``LightningModule`` (or ``data`` a ``LightningDataModule``) that
            overrides ``on_before_batch_transfer`` / ``on_after_batch_transfer``, the sample's inputs are the
            batch those hooks make, as validation feeds the model (:func:`validation_batch_fn`).
    """
    cfg = config if config is not None else TopologyConfig()
    device = model_device(model) if model is not None else torch.device("cpu")
    datamodule = data if isinstance(data, LightningDataModule) else None
    loader = _loader_of(data)
    kwargs: dict[str, Any] = dict(
        samples_per_class=cfg.per_class_cap,
        max_samples=cfg.total_cap,
        seed=cfg.seed,
        input_fn=cfg.input_fn,
        target_fn=cfg.target_fn,
    )
    try:
        return build_sample(loader, batch_fn=validation_batch_fn(model, datamodule, device), **kwargs)
    except BatchHookError as err:
        if _attached(err.owner):
            raise
        # Outside a fit, a hook may need the Trainer it is written for (Lightning's own example augments
        # `if self.trainer.training`): the sample is then the batch without the hooks, said.
        warnings.warn(
            f"{err} {type(err.owner).__name__} is not attached to a Trainer, which the hook may need; the sample is "
            "taken without the batch-transfer hooks. If they change the inputs (a normalisation), pass `input_fn=` "
            "doing it.",
            UserWarning,
            stacklevel=3,
        )
        return build_sample(loader, **kwargs)


class BatchHookError(SampleError):
    """A batch-transfer hook raised on the sample's batch (``owner``: the module or data module whose hook it is)."""

    def __init__(self, message: str, owner: Any) -> None:
        super().__init__(message)
        self.owner = owner


def _attached(owner: Any) -> bool:
    """Whether a LightningModule or LightningDataModule is attached to a Trainer (a module's ``trainer`` property
    raises otherwise; a data module's is ``None``)."""
    try:
        return owner.trainer is not None
    except RuntimeError:
        return False


_BATCH_HOOKS = ("on_before_batch_transfer", "transfer_batch_to_device", "on_after_batch_transfer")
"""Lightning's hooks on every batch before ``validation_step`` sees it, in the order it calls them."""


def validation_batch_fn(
    model: nn.Module | None, datamodule: LightningDataModule | None, device: torch.device
) -> Callable[[Any], Any] | None:
    """What Lightning does to each validation batch before the model sees it, as a function of a batch:
    ``on_before_batch_transfer``, ``transfer_batch_to_device`` (to ``device``) and ``on_after_batch_transfer``
    with ``dataloader_idx=0``, each the ``datamodule``'s where it overrides the hook, else the
    ``LightningModule``'s (Lightning's own choice); under ``torch.no_grad``. ``None`` where neither overrides
    ``on_before_batch_transfer`` or ``on_after_batch_transfer`` (the batch is the collated items: nothing to do).
    A hook that raises is a :class:`BatchHookError` (a :class:`~lightning_topo.capture.SampleError`) naming it.
    The function's ``owners`` attribute holds the objects whose hooks it calls.

    Example:
        >>> class Scaled(LightningModule):
        ...     def on_after_batch_transfer(self, batch, dataloader_idx):
        ...         return [batch[0] / 255, batch[1]]
        >>> fn = validation_batch_fn(Scaled(), None, torch.device("cpu"))
        >>> fn([torch.tensor([255.0]), torch.tensor([1])])[0].tolist()
        [1.0]
        >>> validation_batch_fn(torch.nn.ReLU(), None, torch.device("cpu")) is None
        True
    """
    module = model if isinstance(model, LightningModule) else None

    def owner(name: str) -> Any:
        if datamodule is not None and is_overridden(name, datamodule, LightningDataModule):
            return datamodule
        if module is not None and is_overridden(name, module, LightningModule):
            return module
        return None

    if owner("on_before_batch_transfer") is None and owner("on_after_batch_transfer") is None:
        return None
    hooks = [(name, owner(name)) for name in _BATCH_HOOKS]

    def apply(batch: Any) -> Any:
        with torch.no_grad():
            for name, obj in hooks:
                if obj is None:  # Lightning's default: on_before / on_after return the batch as it is
                    batch = move_data_to_device(batch, device) if name == "transfer_batch_to_device" else batch
                    continue
                hook = getattr(obj, name)
                try:
                    batch = hook(batch, device, 0) if name == "transfer_batch_to_device" else hook(batch, 0)
                except Exception as err:
                    raise BatchHookError(
                        f"{type(obj).__name__}.{name} raised {type(err).__name__}: {err} on the batch of the "
                        "sampled validation items (validation applies it to every batch before the model sees "
                        "it, and so does the topology sample); make the hook accept a batch as the validation "
                        "dataloader's collate_fn makes it, with dataloader_idx 0.",
                        obj,
                    ) from err
        return batch

    # The objects whose hooks make the batch (a sample kept for them is another model's otherwise)
    apply.owners = tuple({id(obj): obj for _, obj in hooks if obj is not None}.values())  # type: ignore[attr-defined]
    return apply


class _Progress:
    def __init__(self, total: int, enabled: bool, desc: str) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            # On a terminal the bar is cleared when done; in a log (a pipe) its final 100 % line stays, not the first.
            tty = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
            self.bar = tqdm(total=total, desc=desc, unit="input", leave=not tty, dynamic_ncols=True)

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

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
    model: nn.Module, sample: FixedSample, layer_names: list[str], config: TopologyConfig, *, layer_by_layer: bool,
    progress: bool,
) -> TopologyResult:  # fmt: skip
    passes = len(layer_names) if layer_by_layer else 1
    bar = _Progress(len(sample.labels) * passes, progress, f"analyse ({config.complex})")
    try:
        return evaluate_topology(
            model, sample.inputs, sample.labels, layer_names, config,
            classes=sample.classes, layer_by_layer=layer_by_layer, sync=False, on_batch=bar,
            token_mask=sample.token_mask,
        )  # fmt: skip
    finally:
        bar.close()


def analyse(
    model: nn.Module,
    data: DataLoader | Dataset | LightningDataModule,
    config: TopologyConfig | None = None,
    *,
    layer_by_layer: bool | None = None,
    progress: bool = True,
    name: str = "",
    **fields: Any,
) -> TopologyReport:
    """Layerwise Betti numbers, Omega and the decay rates of ``model`` on a fixed sample of ``data``.

    Args:
        model: any ``nn.Module`` or ``LightningModule`` (run through ``forward``); it is put in eval mode for
            the analysis and its training flags and device are restored afterwards.
        data: a ``DataLoader``, a map-style ``Dataset`` (or a list) of ``(input, label)`` items, or a
            ``LightningDataModule`` (its validation split).
        config: what to compute on which layers and inputs (:class:`~lightning_topo.config.TopologyConfig`,
            the callback's: same defaults, same sample, same numbers). With ``device=None`` the model runs on its
            accelerator, else on CUDA when present, else on the CPU.
        layer_by_layer: one forward pass per layer, holding one layer's reduced values at a time (default:
            True for ``"rips"``, whose clouds are large; False for ``"cubical"``, one pass for all layers).
        progress: show a progress bar (tqdm) over the inputs processed.
        name: a name stored in the report (e.g. the checkpoint).
        **fields: any ``TopologyConfig`` field (``complex="rips"``, ``k=5``, ...), overriding ``config``.

    Returns:
        A :class:`~lightning_topo.report.TopologyReport`; with ``persistence=[...]`` it also holds the persistence
        summaries (per class and per input) and every layer's persistence diagrams of the sample.

    Raises:
        ConfigError: a bad ``TopologyConfig`` field (a ``ValueError`` naming it and the fix).
        UnknownLayerError: an unknown layer name (with close matches).
        SampleError / TypeError: data that cannot be sampled, naming the problem and the fix.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU())
        >>> data = TensorDataset(torch.randn(40, 3), torch.arange(40) % 2)
        >>> report = analyse(net, data, complex="rips", k=5, progress=False)
        >>> report.layers, tuple(report.betti.shape)
        (['1', '3'], (2, 2, 2))
    """
    TopologyConfig.check_names(fields)
    cfg = TopologyConfig(**fields) if config is None else TopologyConfig.from_kwargs(config, **fields)
    cfg.check_device()
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module (or LightningModule), got {type(model).__name__}.")
    layer_names = resolve_layers(model, cfg.layers, max_layers=cfg.max_layers)
    thinned = thinned_note(model, cfg.layers, cfg.max_layers)
    if thinned is not None:
        warnings.warn(f"analyse: {thinned}.", UserWarning, stacklevel=2)
    if not layer_names:
        raise ConfigError("no layer to analyse; pass `layers=[...]` with names from `model.named_modules()`.")
    sample = sample_from(data, cfg, model)
    for note in sample.notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    target = cfg.torch_device or default_device(model)
    if layer_by_layer is None:
        layer_by_layer = cfg.complex == "rips"
    with _on_device(model, target):
        ordered, notes = watched_layers(
            model,
            sample.inputs[:2],
            layer_names,
            forward_fn=cfg.forward_fn,
            output_fn=cfg.output_fn,
            auto=cfg.layers == "auto",
        )
        for _, message in notes:
            warnings.warn(f"analyse: {message}", UserWarning, stacklevel=2)
        result = _run(model, sample, ordered, cfg, layer_by_layer=layer_by_layer, progress=progress)
    for message in result.warnings:
        warnings.warn(f"analyse: {message}", UserWarning, stacklevel=2)
    # The report keeps every warning the run gave (the sample's, the layers', the evaluation's): a saved report
    # computed on fewer inputs than asked, or without a layer, says so.
    kept_warnings = [*sample.notes, *(message for _, message in notes), *result.warnings]
    dims = cfg.betti_dims
    per_input = None
    if cfg.complex == "cubical":
        nan_rows = torch.full((len(sample.labels), dims), float("nan"), dtype=torch.float64)
        per_input = torch.stack(
            [nan_rows if layer.per_input is None else layer.per_input.to(torch.float64) for layer in result.layers]
        )
    settings = cfg.settings()
    if cfg.complex == "rips" and cfg.metric == "knn_hops":  # the k each class's k-NN graph used ("auto": by size)
        settings["k_per_class"] = {str(c): cfg.k_for(int((sample.labels == c).sum())) for c in result.classes}
    persistence = per_input_persistence = diagrams = None
    if cfg.persistence is not None:
        keys = cfg.persistence_keys
        nan_means = torch.full((len(result.classes), len(keys)), float("nan"), dtype=torch.float64)
        nan_inputs = torch.full((len(sample.labels), len(keys)), float("nan"), dtype=torch.float64)
        persistence = torch.stack(
            [torch.stack([layer.class_persistence()[k] for k in keys], dim=1) if layer.persistence else nan_means
             for layer in result.layers]
        )  # fmt: skip
        per_input_persistence = torch.stack(
            [nan_inputs if layer.per_input_persistence is None else layer.per_input_persistence.to(torch.float64)
             for layer in result.layers]
        )  # fmt: skip
        diagrams = {layer.name: layer.diagrams for layer in result.layers if layer.diagrams is not None}
    return TopologyReport(
        layers=[layer.name for layer in result.layers],
        classes=list(result.classes),
        betti=torch.stack([layer.class_betti().to(torch.float64) for layer in result.layers]),
        omega=result.omega,
        theta=result.theta,
        decay_rate=result.decay_rate,
        labels=sample.labels.clone(),
        indices=sample.indices.clone(),
        per_input=per_input,
        problems={layer.name: layer.problem for layer in result.layers if layer.problem is not None},
        config=settings,
        warnings=kept_warnings,
        name=name,
        persistence_keys=cfg.persistence_keys,
        persistence=persistence,
        per_input_persistence=per_input_persistence,
        diagrams=diagrams,
    )
