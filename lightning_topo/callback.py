"""`TopologyCallback`: layerwise topology of a fixed validation sample, every validation epoch.

Where things are logged: this file. Each evaluation logs, through ``pl_module.log`` at epoch level
(so every logger gets scalars and ``trainer.callback_metrics`` holds them before ``EarlyStopping``
checks):

* ``topology/{layer}/b0``, ``/b1``, ``/b2`` — mean Betti numbers (per class, then over classes);
* ``topology/{layer}/omega`` — Omega = b0 + b1 + b2 of that layer;
* ``topology/theta`` — the decay rate of Suresh et al. (lower = steeper decay);
* ``topology/decay_rate`` — the headline, depth-normalised decay: the fitted fraction of peak Omega lost
  from the first to the last watched layer; **higher = more simplification** (``mode="max"``);
* ``topology/omega_last`` — Omega of the deepest watched layer (for the Betti-floor stopping rule).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn
from lightning_utilities.core.imports import RequirementCache
from torch import Tensor, nn
from typing_extensions import override

from lightning_topo.charts import CHART_TARGETS, chart_targets, send_charts
from lightning_topo.layers import resolve_layers
from lightning_topo.plotting import figures_of
from lightning_topo.sampling import FixedSample, build_sample
from lightning_topo.topology import Collective, TopologyConfig, TopologyResult, capture_layers, summarise_topology

__all__ = ["TopologyCallback"]

_WANDB_AVAILABLE = bool(RequirementCache("wandb"))
_MATPLOTLIB_AVAILABLE = bool(RequirementCache("matplotlib"))

_BETTI_KEYS = ("b0", "b1", "b2")


def _check_positive_int(value: Any, name: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        extra = " or None" if allow_none else ""
        raise MisconfigurationException(f"`{name}` must be an integer >= 1{extra}, got {value!r}.")


class _StrategyCollective(Collective):
    """Sum-reduce and gather across ranks through the Lightning strategy (no-ops in one process)."""

    def __init__(self, trainer: Trainer) -> None:
        self.strategy = trainer.strategy
        self.world_size = trainer.world_size
        self.rank = trainer.global_rank

    def all_reduce_sum(self, tensor: Tensor) -> Tensor:
        if self.world_size == 1:
            return tensor
        return self.strategy.reduce(tensor.clone(), reduce_op="sum")

    def all_gather(self, tensor: Tensor) -> Tensor:
        if self.world_size == 1:
            return tensor.unsqueeze(0)
        return self.strategy.all_gather(tensor.contiguous())


class TopologyCallback(Callback):
    """Layerwise Betti numbers, topological complexity and its decay, every validation epoch.

    At the first evaluation the callback picks a fixed, seeded sample of the validation set by dataset
    index (stratified per class, at most ``samples_per_class`` per class and ``max_samples`` in all) and
    keeps those inputs on the CPU. At each evaluation it runs only that sample through the model (eval
    mode, ``torch.inference_mode``) with forward hooks on the watched layers, reduces each layer's output
    inside the hook (per-input Betti numbers, or pooled embeddings for the point-cloud view), removes the
    hooks, and logs the results.

    Args:
        layers: ``"auto"`` (default; see :func:`lightning_topo.layers.resolve_layers`), a list of names from
            ``pl_module.named_modules()`` or glob patterns, or a predicate ``(name, module) -> bool``.
        complex: ``"cubical"`` (default; Suresh et al.) or ``"rips"`` (per-class point clouds; Naitzat et al.).
        threshold: cubical sublevel threshold: ``"mean"`` (default: each volume's own mean — scale-free, so
            comparable across layers, and non-trivial on post-ReLU maps whose many exact zeros make a fixed
            threshold of 0 degenerate), ``"median"``, a number, or a callable ``volumes -> (B,) tensor``.
        scale: Rips scale (default 2.5 hops). metric: ``"knn_hops"`` (default) or ``"euclidean"``.
        k: k-NN neighbours for ``"knn_hops"`` (default 14). maxdim: Rips homology up to this dimension (1).
        pool_size: Rips view: conv maps are average-pooled to ``pool_size x pool_size`` before flattening.
        samples_per_class: at most this many sampled inputs per class (default 20; ``None`` = no per-class cap).
        max_samples: at most this many sampled inputs in all (default 200).
        every_n_epochs: evaluate every n-th validation epoch (default 1).
        seed: seed of the sample choice.
        batch_size: sampled inputs per forward pass (default 256: the default sample in one pass; lower it
            for large inputs on a small GPU).
        device: where to run the sample and the cubical computation: ``None`` (default) = the module's device
            (the GPU when training on one); e.g. ``"cpu"`` to keep it off the accelerator.
        input_fn: picks the model input from a dataset item/batch (default: its first element).
        target_fn: picks the integer class label from a dataset item/batch (default: its second element
            when it is an integer; otherwise all inputs are one class).
        output_fn: picks the tensor from a layer output that is not a tensor (default: the first tensor).
        forward_fn: ``forward_fn(pl_module, inputs)`` runs the model (default ``pl_module(inputs)``).
        max_layers: cap of the automatic layer choice (default 32).
        log_per_class: also log ``topology/{layer}/class_{c}/b{k}`` (default False).
        run_on_sanity_check: also evaluate during the sanity check (default False).
        run_on_fast_dev_run: also evaluate under ``Trainer(fast_dev_run=...)`` (default False).
        charts: where to send charts after each evaluation (see :mod:`lightning_topo.charts`): ``"auto"``
            (default: W&B charts to a ``WandbLogger``, figures to a ``TensorBoardLogger``, PNG files under the
            log dir of any other logger; nothing without a logger), a list of ``"wandb"``, ``"tensorboard"``,
            ``"png"``, or ``False``.

    Example:
        >>> from lightning.pytorch import Trainer
        >>> from lightning_topo import TopologyCallback
        >>> trainer = Trainer(callbacks=[TopologyCallback()], max_epochs=1, logger=False,
        ...                   enable_checkpointing=False, enable_progress_bar=False)
    """

    def __init__(
        self,
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
        every_n_epochs: int = 1,
        seed: int = 0,
        batch_size: int = 256,
        device: torch.device | str | None = None,
        input_fn: Callable[[Any], Tensor] | None = None,
        target_fn: Callable[[Any], Any] | None = None,
        output_fn: Callable[[Any], Tensor] | None = None,
        forward_fn: Callable[[nn.Module, Tensor], Any] | None = None,
        max_layers: int = 32,
        log_per_class: bool = False,
        run_on_sanity_check: bool = False,
        run_on_fast_dev_run: bool = False,
        charts: bool | str | Sequence[str] = "auto",
    ) -> None:
        super().__init__()
        try:
            self.config = TopologyConfig(
                complex=complex,
                threshold=threshold,
                scale=scale,
                metric=metric,
                k=k,
                maxdim=maxdim,
                pool_size=pool_size,
            )
        except ValueError as err:
            raise MisconfigurationException(str(err)) from err
        if not (isinstance(layers, str) or callable(layers) or isinstance(layers, Sequence)):
            raise MisconfigurationException(
                f"`layers` must be 'auto', a list of module names or glob patterns, or a predicate, got {layers!r}."
            )
        if isinstance(layers, str) and layers != "auto":
            layers = [layers]
        _check_positive_int(samples_per_class, "samples_per_class", allow_none=True)
        _check_positive_int(max_samples, "max_samples")
        _check_positive_int(every_n_epochs, "every_n_epochs")
        _check_positive_int(batch_size, "batch_size")
        _check_positive_int(max_layers, "max_layers")
        if device is not None:
            try:
                device = torch.device(device)
            except (RuntimeError, TypeError) as err:
                raise MisconfigurationException(f"`device` {device!r} is not a torch device: {err}") from err
        self.chart_kinds = self._validate_charts(charts)
        self.layers_spec = layers
        self.samples_per_class = samples_per_class
        self.max_samples = max_samples
        self.every_n_epochs = every_n_epochs
        self.seed = seed
        self.batch_size = batch_size
        self.device = device
        self.input_fn = input_fn
        self.target_fn = target_fn
        self.output_fn = output_fn
        self.forward_fn = forward_fn
        self.max_layers = max_layers
        self.log_per_class = log_per_class
        self.run_on_sanity_check = run_on_sanity_check
        self.run_on_fast_dev_run = run_on_fast_dev_run

        self.layer_names: list[str] = []
        self.sample: FixedSample | None = None
        self.history: list[dict[str, Any]] = []
        self.last_result: TopologyResult | None = None
        self.timings: list[float] = []
        self.chart_files: list[str] = []
        self._restored_indices: list[int] | None = None
        self._warned: set[str] = set()

    @staticmethod
    def _validate_charts(charts: bool | str | Sequence[str]) -> tuple[str, ...]:
        if charts is True or charts == "auto":
            return CHART_TARGETS
        if charts is False or charts is None:
            return ()
        kinds = (charts,) if isinstance(charts, str) else tuple(charts)
        bad = [k for k in kinds if k not in CHART_TARGETS]
        if bad:
            raise MisconfigurationException(
                f"`charts` must be 'auto', False or a list of {CHART_TARGETS}, got {charts!r} ({bad} unknown)."
            )
        if "wandb" in kinds and not _WANDB_AVAILABLE:
            raise MisconfigurationException(
                'W&B charts were asked for (`charts` includes "wandb") but wandb is not installed: '
                'pip install "lightning-topo[wandb]"'
            )
        if any(k in kinds for k in ("tensorboard", "png")) and not _MATPLOTLIB_AVAILABLE:
            raise MisconfigurationException(
                f"`charts={charts!r}` needs matplotlib for figures, which is not installed: "
                'pip install "lightning-topo[plot]"'
            )
        return kinds

    # ------------------------------------------------------------------ identity and state
    @property
    @override
    def state_key(self) -> str:
        layers = self.layers_spec if isinstance(self.layers_spec, (str, Sequence)) else "predicate"
        return self._generate_state_key(
            layers=str(layers),
            complex=self.config.complex,
            threshold=str(self.config.threshold),
            scale=self.config.scale,
            metric=self.config.metric,
            k=self.config.k,
            maxdim=self.config.maxdim,
            samples_per_class=self.samples_per_class,
            max_samples=self.max_samples,
            seed=self.seed,
        )

    @override
    def state_dict(self) -> dict[str, Any]:
        """History, watched layers and the sample's dataset indices (plain Python types: weights_only-safe)."""
        indices = self.sample.indices.tolist() if self.sample is not None else self._restored_indices
        return {"history": self.history, "layer_names": list(self.layer_names), "sample_indices": indices}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self._restored_indices = state_dict.get("sample_indices")
        restored_layers = state_dict.get("layer_names") or []
        if restored_layers and self.layer_names and restored_layers != self.layer_names:
            rank_zero_warn(
                f"TopologyCallback: the checkpoint watched layers {restored_layers}, this run watches "
                f"{self.layer_names}; the history mixes both."
            )

    # ------------------------------------------------------------------ lifecycle
    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # Unknown layer names fail here, before any training step.
        self.layer_names = resolve_layers(pl_module, self.layers_spec, max_layers=self.max_layers)
        if not self.layer_names:
            raise MisconfigurationException(
                "TopologyCallback found no layer to watch; pass `layers=[...]` with names from "
                "`[n for n, _ in pl_module.named_modules()]`."
            )

    def _should_run(self, trainer: Trainer) -> bool:
        if trainer.sanity_checking and not self.run_on_sanity_check:
            return False
        if trainer.fast_dev_run and not self.run_on_fast_dev_run:
            return False
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            return (trainer.current_epoch + 1) % self.every_n_epochs == 0
        return True

    def _ensure_sample(self, trainer: Trainer) -> FixedSample | None:
        if self.sample is not None:
            return self.sample
        loaders = trainer.val_dataloaders
        if isinstance(loaders, (list, tuple)):
            loaders = loaders[0] if loaders else None
        if loaders is None:
            self._warn_once("no-val", "TopologyCallback: no validation dataloader, so there is nothing to sample.")
            return None
        self.sample = build_sample(
            loaders,
            samples_per_class=self.samples_per_class,
            max_samples=self.max_samples,
            seed=self.seed,
            input_fn=self.input_fn,
            target_fn=self.target_fn,
        )
        if self._restored_indices is not None and self.sample.indices.tolist() != self._restored_indices:
            rank_zero_warn(
                "TopologyCallback: the resumed run sampled different validation inputs than the checkpoint "
                "(the validation set or the sampling arguments changed); history before and after differ in sample."
            )
        rank_zero_info(
            f"TopologyCallback: watching {len(self.layer_names)} layers on {len(self.sample.labels)} validation "
            f"inputs ({len(self.sample.classes)} classes)."
        )
        return self.sample

    @override
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._should_run(trainer):
            return
        sample = self._ensure_sample(trainer)
        if sample is None or len(sample.labels) == 0:
            return
        start = time.perf_counter()
        # Each rank runs its strided slice of the sample; sums, counts and clouds are combined across ranks.
        positions = torch.arange(trainer.global_rank, len(sample.labels), trainer.world_size)
        values, problems = capture_layers(
            pl_module,
            sample.inputs[positions],
            self.layer_names,
            self.config,
            batch_size=self.batch_size,
            device=self.device or pl_module.device,
            forward_fn=self.forward_fn,
            output_fn=self.output_fn,
        )
        result = summarise_topology(
            values,
            problems,
            self.layer_names,
            sample.labels,
            positions,
            self.config,
            comm=_StrategyCollective(trainer),
            device=pl_module.device,
        )
        self.timings.append(time.perf_counter() - start)
        for message in result.warnings:
            self._warn_once(message, f"TopologyCallback: {message}")
        self.last_result = result
        self._log(pl_module, result)
        self.history.append(self._record(trainer, result))
        if trainer.is_global_zero and self.chart_kinds and trainer.loggers:
            self._send_charts(trainer)

    def _send_charts(self, trainer: Trainer) -> None:
        kinds = self.chart_kinds
        wanted = {kind for kind, _ in chart_targets(trainer)}
        if {"tensorboard", "png"} & wanted & set(kinds) and not _MATPLOTLIB_AVAILABLE:
            self._warn_once(
                "no-mpl",
                'TopologyCallback: figures for TensorBoard / PNG need matplotlib: pip install "lightning-topo[plot]"; '
                "skipping them.",
            )
            kinds = tuple(k for k in kinds if k == "wandb")
        self.chart_files += send_charts(trainer, self.history, kinds)

    def plot(self) -> dict[str, Any]:
        """Matplotlib figures of the history so far: ``betti_vs_depth`` (latest evaluation), ``decay`` and
        ``omega_heatmap`` (for notebooks; needs matplotlib). Empty before the first evaluation."""
        return figures_of(self.history)

    # ------------------------------------------------------------------ logging
    def metrics_of(self, result: TopologyResult) -> dict[str, float]:
        """The flat ``topology/...`` scalars of one evaluation (what gets logged)."""
        metrics: dict[str, float] = {}
        for layer in result.layers:
            mean = torch.nanmean(layer.betti, dim=0) if layer.problem is None else layer.betti[0]
            for i in range(self.config.betti_dims):
                metrics[f"topology/{layer.name}/{_BETTI_KEYS[i]}"] = float(mean[i])
            metrics[f"topology/{layer.name}/omega"] = layer.omega
            if self.log_per_class:
                for row, c in zip(layer.betti, result.classes, strict=False):
                    for i in range(self.config.betti_dims):
                        metrics[f"topology/{layer.name}/class_{c}/{_BETTI_KEYS[i]}"] = float(row[i])
        metrics["topology/theta"] = result.theta
        metrics["topology/decay_rate"] = result.decay_rate
        metrics["topology/omega_last"] = result.layers[-1].omega if result.layers else math.nan
        return metrics

    def _log(self, pl_module: LightningModule, result: TopologyResult) -> None:
        has_logger = pl_module.trainer is not None and bool(pl_module.trainer.loggers)
        for key, value in self.metrics_of(result).items():
            # Values are already identical on every rank (reduced above): no further sync needed.
            pl_module.log(key, value, on_step=False, on_epoch=True, logger=has_logger, prog_bar=False, sync_dist=False)

    def _record(self, trainer: Trainer, result: TopologyResult) -> dict[str, Any]:
        layers = {}
        for layer in result.layers:
            layers[layer.name] = {
                "betti": [[float(v) for v in row] for row in layer.betti.tolist()],
                "omega": float(layer.omega),
                "problem": layer.problem,
            }
        return {
            "epoch": int(trainer.current_epoch),
            "global_step": int(trainer.global_step),
            "classes": [int(c) for c in result.classes],
            "layers": layers,
            "theta": float(result.theta),
            "decay_rate": float(result.decay_rate),
        }

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            rank_zero_warn(message)
