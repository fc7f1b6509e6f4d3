"""`TopologyConfig`: every compute and sampling argument, its default, its check and its documentation, once.

:class:`~lightning_topo.callbacks.TopologyCallback`, :func:`~lightning_topo.analysis.analyse`, the metric
classes and the command line all take a ``TopologyConfig`` (or its fields as keyword arguments); the callback's
``state_key`` and a report's settings are derived from it. A bad value raises :class:`ConfigError` (a
``ValueError``) naming the field, the value and what is accepted.

Example:
    >>> cfg = TopologyConfig(complex="rips", k=10)
    >>> cfg.k, cfg.samples_per_class, cfg.per_class_cap, cfg.replace(k=7).k
    (10, 'auto', 300, 7)
    >>> TopologyConfig(samples_per_class=0)
    Traceback (most recent call last):
    ...
    lightning_topo.config.ConfigError: `samples_per_class` must be None or an integer >= 1, got 0. "auto" (the ...
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from lightning_topo.functional._checks import as_integer, check_int
from lightning_topo.functional.persistence import check_dims
from lightning_topo.functional.rips import METRICS as RIPS_METRICS
from lightning_topo.functional.summaries import SUMMARY_KINDS, summary_keys
from lightning_topo.functional.thresholds import THRESHOLD_RULES, check_threshold_rule

__all__ = [
    "AUTO_K_POINTS_PER_NEIGHBOUR",
    "AUTO_SAMPLES",
    "COMPLEXES",
    "METRICS",
    "PERSISTENCE_SUMMARIES",
    "THRESHOLDS",
    "ConfigError",
    "TopologyConfig",
    "auto_k",
    "describe_callable",
]

COMPLEXES: tuple[str, ...] = ("cubical", "rips")
"""Valid ``complex`` values."""
THRESHOLDS: tuple[str, ...] = THRESHOLD_RULES
"""Named threshold rules."""
METRICS: tuple[str, ...] = RIPS_METRICS
"""Valid ``metric`` values."""
PERSISTENCE_SUMMARIES: tuple[str, ...] = SUMMARY_KINDS
"""Valid entries of ``persistence``: ``"total_persistence"``, ``"entropy"``, ``"persistent_betti"``."""

SEED_RANGE: tuple[int, int] = (-(2**63), 2**64 - 1)
"""The seeds ``torch.Generator.manual_seed`` takes."""
_RIPS_ONLY: tuple[str, ...] = ("scale", "metric", "k", "maxdim", "pool_size")
"""The fields only the point-cloud view reads."""


def _plain(value: object) -> object:
    """``value`` with tuples as lists (a default tuple equals the list jsonargparse passes)."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


AUTO_SAMPLES: dict[str, tuple[int, int]] = {"cubical": (20, 200), "rips": (300, 3000)}
"""``samples_per_class="auto"`` and ``max_samples="auto"`` per view: ``(per class, in all)``. The cubical view's
cost is per input (3 numbers per input and layer are kept); a point cloud needs enough points per class for its
k-NN graph to say something: at 300 per class and ``k="auto"`` (10) Naitzat's D-I comes out at or next to its known
Betti numbers, (9, 0) and (1, 9) (README, Findings: "The point-cloud view at its defaults"; at 20 per class, no k
can)."""
AUTO_K_POINTS_PER_NEIGHBOUR = 30
"""``k="auto"``: one neighbour per this many points of a class (see :func:`auto_k`)."""
_AUTO_K_RANGE = (2, 14)


def auto_k(n: int) -> int:
    """``k="auto"`` for a class of ``n`` sampled points: ``round(n / 30)``, at least 2 and at most 14
    (Naitzat et al.'s D-I value, reached at 420 points), and below ``n``.

    The k-NN graph then links each point to the same fraction of its class whatever the sample size. On D-I's
    validation split at 300 points per class (k = 10), 2 of 3 data seeds give the known (9, 0) and (1, 9) and the
    third (1, 8) for class b, where k = 14 gives (1, 2-3) (README, Findings: "The point-cloud view at its
    defaults", ``examples/point_cloud_defaults.py``); a fixed k = 14 joins every point at 20 per class (b0 = 1, b1 = 0).

    Example:
        >>> [auto_k(n) for n in (3, 20, 45, 100, 300, 1000)]
        [2, 2, 2, 3, 10, 14]
    """
    low, high = _AUTO_K_RANGE
    return max(1, min(n - 1, max(low, min(high, round(n / AUTO_K_POINTS_PER_NEIGHBOUR)))))


LayerSpec = str | Sequence[str] | Callable[[str, nn.Module], bool]
# Callables return `Any` here (a (B,) tensor, a number, the tensor to analyse): with `Tensor`, jsonargparse's help
# lists every torch.Tensor subclass under these options.
ThresholdSpec = float | str | Callable[[Tensor], Any]
PersistenceSummary = Literal["total_persistence", "entropy", "persistent_betti"]


class ConfigError(ValueError):
    """A :class:`TopologyConfig` field (or another argument) has a bad value; the message names it and the fix."""


def describe_callable(fn: Any) -> str:
    """A name for a callable that is the same in every run (``module.qualname``), unlike ``repr`` (an address).

    Example:
        >>> describe_callable(math.sqrt)
        'math.sqrt'
    """
    module = getattr(fn, "__module__", None) or type(fn).__module__
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{name}"


def _closest(value: Any, choices: Sequence[str]) -> str:
    """``" (did you mean 'x'?)"`` for the choice closest to a misspelt string ``value``, else ``""``.

    Example:
        >>> _closest("cubicle", ("cubical", "rips")), _closest(3, ("cubical", "rips"))
        (" (did you mean 'cubical'?)", '')
    """
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.4) if isinstance(value, str) else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def _positive_int(name: str, value: Any, *, allow_none: bool = False, allow_auto: bool = False) -> Any:
    """``value`` checked, as a Python int (NumPy integers too), ``None`` or ``"auto"`` where allowed."""
    if isinstance(value, str) and value == "auto" and allow_auto:
        return value
    try:
        return check_int(value, name, 1, allow_none=allow_none, error=ConfigError)
    except ConfigError as err:
        auto = ' "auto" (the default) picks a value for the view.' if allow_auto else ""
        raise ConfigError(f"{err}{auto}") from None


def _optional_callable(name: str, value: Any) -> None:
    if value is not None and not callable(value):
        raise ConfigError(f"`{name}` must be None or a callable, got {value!r}.")


def said(message: str) -> None:
    """A ``UserWarning`` about a setting, pointing at the user's line (the first frame outside lightning-topo:
    ``TopologyConfig(...)``, ``TopologyCallback(...)`` or ``analyse(...)``), on rank zero only: a script launched by
    Lightning's DDP builds its callbacks once per process (the rank read from the environment as Lightning does)."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        rank = os.environ.get(key)
        if rank is not None:
            if rank.strip().isdigit() and int(rank) != 0:
                return
            break
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    library = os.path.abspath(dataclasses.__file__)
    frame, level = sys._getframe(1), 2  # stacklevel 2: the caller of this function

    def ours(code: Any) -> bool:  # a frame of this package, or of dataclasses building a config for it
        path = code.co_filename
        return (
            os.path.abspath(path).startswith(package)
            or (path == "<string>" and code.co_name == "__init__")
            or os.path.abspath(path) == library
        )

    while frame is not None and frame.f_back is not None and ours(frame.f_code):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)


@dataclasses.dataclass(frozen=True)
class TopologyConfig:
    """What to compute on which layers and which inputs (validated on construction; frozen).

    Args:
        layers: Layers to watch: "auto" (the seed paper's choice by model family, see
            lightning_topo.capture.layers), a list of module names or glob patterns, or a predicate (name, module)
            -> bool. Any order: layers are analysed in the order the forward pass runs them.
        complex: View of a layer: "cubical" (each input's activation is a grey-scale volume; Suresh et al.) or
            "rips" (per class, the sampled embeddings form a point cloud; Naitzat et al.).
        threshold: Cubical sublevel threshold: "mean" (each volume's own mean; scale-free), "median" (each volume's
            lower median), a finite number, or a callable mapping volumes (B, ...) to a (B,) tensor.
        persistence: Cubical view: summaries of each volume's persistence diagram to compute and log, per
            dimension of persistence_dims, averaged like the Betti numbers: "total_persistence" (sum of the
            lifetimes; the essential class ends at the volume's max), "entropy" (Shannon entropy of the lifetimes
            as fractions of their sum) and "persistent_betti" (the features alive at the threshold that persist at
            least min_persistence); None (the default) computes no diagram.
        min_persistence: Cubical view, "persistent_betti": the shortest lifetime counted, as a fraction of each
            volume's range (max - min), in [0, 1]; 0 counts every feature (then they equal the Betti numbers).
        persistence_dims: Cubical view: the homology dimensions of the persistence summaries (0, 1, 2); H1 is the
            costly one to compute.
        scale: Point-cloud view: the Vietoris-Rips scale (hops for metric "knn_hops").
        metric: Point-cloud view: "knn_hops" (hop distance on the k-NN graph) or "euclidean".
        k: Point-cloud view: neighbours of the k-NN graph: "auto" = from each class's sample size n, round(n / 30)
            between 2 and 14 (Naitzat's D-I value, from 420 points); an integer is capped at n - 1.
        maxdim: Point-cloud view: highest homology dimension (0, 1 or 2); the cubical view always gives b0, b1, b2.
        pool_size: Point-cloud view: conv maps (C, H, W) larger than pool_size are average-pooled to (C,
            min(H, pool_size), min(W, pool_size)) and flattened (smaller maps are not pooled up); None flattens them
            as they are.
        samples_per_class: At most this many sampled inputs per class; None for no per-class cap; "auto" = 20 for
            the cubical view, 300 for the point-cloud view (a k-NN graph of 20 points says nothing).
        max_samples: At most this many sampled inputs in all (classes taken round-robin when capped); "auto" = 200
            for the cubical view, 3000 for the point-cloud view.
        seed: Seed of the sample choice (the same seed picks the same inputs).
        batch_size: Sampled inputs per forward pass.
        max_layers: Cap of the automatic layer choice (evenly spaced, first and last kept).
        device: Where Betti numbers are computed (activations are moved there inside the hooks); None = where the
            model lives ("meta", which holds no values, is refused). The forward pass always runs where the model
            lives.
        input_fn: Picks the model input (a tensor whose first axis is the inputs) from a batch, as the validation
            dataloader's collate_fn makes it of the sampled items (default: its first element, or a dict's x /
            input / image, or Hugging Face's pixel_values / input_ids). The batch has first been through the
            LightningModule's or DataModule's on_before_batch_transfer / on_after_batch_transfer hooks, as every
            validation batch is (their normalisation is in the sample). Inputs holding NaN or Inf are left out of
            the sample, with a warning.
        target_fn: Picks the integer class label from one dataset item (from a batch for an IterableDataset;
            default: its second element, or a dict's y / label / target; no label = one class).
        output_fn: Picks the tensor to analyse from a layer output that is not a tensor (default: the first tensor
            in it).
        forward_fn: forward_fn(model, inputs) runs the model on a batch (default: model(inputs)).
        overlap: Cubical view on the CPU: compute the Betti numbers of each batch on a background thread while the
            forward pass goes on, and in the callback (one process) while Lightning's validation loop runs; the
            numbers are the same. False computes them inside the forward hooks, at the end of validation.
    """

    layers: LayerSpec = "auto"
    complex: Literal["cubical", "rips"] = "cubical"
    threshold: ThresholdSpec = "mean"
    persistence: PersistenceSummary | Sequence[PersistenceSummary] | None = None
    min_persistence: float = 0.1
    persistence_dims: int | Sequence[int] = (0, 1, 2)
    scale: float = 2.5
    metric: Literal["knn_hops", "euclidean"] = "knn_hops"
    k: int | Literal["auto"] = "auto"
    maxdim: int = 1
    pool_size: int | None = 4
    samples_per_class: int | Literal["auto"] | None = "auto"
    max_samples: int | Literal["auto"] = "auto"
    seed: int = 0
    batch_size: int = 256
    max_layers: int = 32
    device: str | None = None
    input_fn: Callable[[Any], Any] | None = None
    target_fn: Callable[[Any], Any] | None = None
    output_fn: Callable[[Any], Any] | None = None
    forward_fn: Callable[[nn.Module, Tensor], Any] | None = None
    overlap: bool = True

    def __post_init__(self) -> None:
        layers = self.layers
        if isinstance(layers, str):
            if layers != "auto":
                object.__setattr__(self, "layers", (layers,))
        elif callable(layers):
            pass
        elif isinstance(layers, Sequence) and all(isinstance(n, str) for n in layers):
            if not layers:
                raise ConfigError("`layers` is an empty list; pass 'auto', module names or a predicate.")
            names = [n for n in layers if n != "auto"]
            if names and len(names) < len(layers):  # e.g. `--analysis.layers+ net.0` appends to the default
                raise ConfigError(
                    f"`layers` lists 'auto' with module names {names}: 'auto' (the automatic choice) stands alone; "
                    f"to watch these layers pass them without it, e.g. layers={names} (on the command line the whole "
                    f"list, `--analysis.layers '[{', '.join(names)}]'`: `--analysis.layers+` appends to the default)."
                )
            object.__setattr__(self, "layers", "auto" if not names else tuple(layers))
        else:
            raise ConfigError(
                f"`layers` must be 'auto', a list of module names or glob patterns, or a predicate, got {layers!r}."
            )
        if self.complex not in COMPLEXES:
            hint = _closest(self.complex, COMPLEXES)
            raise ConfigError(f"`complex` must be one of {COMPLEXES}, got {self.complex!r}{hint}.")
        try:
            check_threshold_rule(self.threshold)
        except ValueError as err:
            raise ConfigError(str(err)) from err
        if isinstance(self.threshold, numbers.Real) and not isinstance(self.threshold, bool):
            if math.isinf(self.threshold):
                raise ConfigError(
                    f"`threshold={self.threshold!r}` makes every sublevel set "
                    f"{'the whole volume' if self.threshold > 0 else 'empty'} at every layer (Omega "
                    f"{'1' if self.threshold > 0 else '0'} throughout, no decay to measure); pass a finite number, "
                    "'mean' or 'median'."
                )
            if not isinstance(self.threshold, int):
                object.__setattr__(self, "threshold", float(self.threshold))  # numpy scalars: plain values in state
        self._check_persistence()
        s = self.scale
        if isinstance(s, torch.Tensor) and s.numel() == 1 and not s.is_complex():
            s = s.item()  # a 0-d tensor, as computed scales are
        if isinstance(s, bool) or not (isinstance(s, numbers.Real) and math.isfinite(s) and s > 0):
            raise ConfigError(f"`scale` must be a finite number > 0, got {s!r}.")
        object.__setattr__(self, "scale", float(s) if not isinstance(s, int) else s)
        if self.metric not in METRICS:
            hint = _closest(self.metric, METRICS)
            raise ConfigError(f"`metric` must be one of {METRICS}, got {self.metric!r}{hint}.")
        object.__setattr__(self, "k", _positive_int("k", self.k, allow_auto=True))
        maxdim = as_integer(self.maxdim)
        if maxdim is None or not 0 <= maxdim <= 2:
            raise ConfigError(f"`maxdim` must be 0, 1 or 2, got {self.maxdim!r}.")
        object.__setattr__(self, "maxdim", maxdim)
        for name, none, auto in (
            ("pool_size", True, False),
            ("samples_per_class", True, True),
            ("max_samples", False, True),
            ("batch_size", False, False),
            ("max_layers", False, False),
        ):
            object.__setattr__(self, name, _positive_int(name, getattr(self, name), allow_none=none, allow_auto=auto))
        seed = check_int(self.seed, "seed", error=ConfigError)
        if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:  # type: ignore[operator]
            raise ConfigError(
                f"`seed` must be an integer in [-2**63, 2**64 - 1] (torch.Generator.manual_seed's range), got {seed}."
            )
        object.__setattr__(self, "seed", seed)
        if self.device is not None:
            try:
                device = torch.device(self.device)
            except (RuntimeError, TypeError) as err:
                raise ConfigError(
                    f"`device` {self.device!r} is not a torch device ({err}); e.g. 'cpu', 'cuda:0'."
                ) from err
            if device.type == "meta":
                raise ConfigError(
                    f"`device={self.device!r}` holds shapes, not values: no Betti number can be computed there (and "
                    "a model moved to it loses its weights). Use device=None (where the model lives), 'cpu' or 'cuda'."
                )
            object.__setattr__(self, "device", str(device))
        for name in ("input_fn", "target_fn", "output_fn", "forward_fn"):
            _optional_callable(name, getattr(self, name))
        if not isinstance(self.overlap, bool):
            raise ConfigError(f"`overlap` must be True or False, got {self.overlap!r}.")
        self._check_rips_settings()

    def _check_rips_settings(self) -> None:
        """Point-cloud settings that make no number: said (a warning), as ``rips_betti`` refuses them; on the cubical
        view, the point-cloud settings given (they have no effect there)."""
        if self.complex != "rips":
            defaults = {f.name: f.default for f in dataclasses.fields(self)}
            given = [n for n in _RIPS_ONLY if _plain(getattr(self, n)) != _plain(defaults[n])]
            if given:
                values = ", ".join(f"{n}={getattr(self, n)!r}" for n in given)
                what = "has no effect: a point-cloud setting" if len(given) == 1 else "have no effect: point-cloud ones"
                said(
                    f"`{values}` {what}, and complex={self.complex!r} computes the cubical homology of each input's "
                    "activation volume. Pass complex='rips' for the point-cloud view, or leave them out."
                )
            return
        if self.metric == "euclidean" and self.k != "auto":
            said(
                f"`k={self.k!r}` has no effect: it is the number of neighbours of metric='knn_hops', and "
                "metric='euclidean' joins points by their distance. Leave `k` out, or use metric='knn_hops'."
            )
        if not (isinstance(self.threshold, str) and self.threshold == "mean"):
            said(
                f"`threshold={self.threshold!r}` has no effect: it is the cubical view's sublevel threshold, and "
                "complex='rips' joins points by `scale`. Leave `threshold` out, or use complex='cubical'."
            )
        if self.metric == "knn_hops" and self.scale < 1:
            said(
                f"`scale={self.scale!r}` is below one hop: with metric='knn_hops' the scale counts hops on the k-NN "
                "graph, so it joins only duplicate points and every class's cloud is its points apart (b0 = the "
                "number of points) at every layer. Use a scale of at least 1 (the default, 2.5, joins neighbours "
                "and their neighbours' neighbours)."
            )

    def _check_persistence(self) -> None:
        spec = self.persistence
        if spec is not None:
            names = (spec,) if isinstance(spec, str) else spec
            if not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
                raise ConfigError(f"`persistence` must be None or a list of {PERSISTENCE_SUMMARIES}, got {spec!r}.")
            unknown = [n for n in names if n not in PERSISTENCE_SUMMARIES]
            if unknown:
                # The logged keys' names (persistence_entropy_k, persistent_bk) point to their summaries too.
                aliases = {"persistence_entropy": "entropy", "persistent_betti_numbers": "persistent_betti"}
                alias = aliases.get(unknown[0])
                hint = f" (did you mean {alias!r}?)" if alias else _closest(unknown[0], PERSISTENCE_SUMMARIES)
                raise ConfigError(
                    f"`persistence` has unknown summary {unknown[0]!r}{hint}; choose from {PERSISTENCE_SUMMARIES}."
                )
            if not names:
                raise ConfigError(
                    f"`persistence` is an empty list; pass None to compute no diagram, or some of "
                    f"{PERSISTENCE_SUMMARIES}."
                )
            if self.complex != "cubical":
                raise ConfigError(
                    f"`persistence={list(names)}` needs the cubical view (persistence diagrams of each input's "
                    f"activation volume); complex={self.complex!r} has none: use complex='cubical' or persistence=None."
                )
            object.__setattr__(self, "persistence", tuple(n for n in PERSISTENCE_SUMMARIES if n in names))
        mp = self.min_persistence
        if isinstance(mp, bool) or not (isinstance(mp, numbers.Real) and 0.0 <= mp <= 1.0):
            raise ConfigError(
                f"`min_persistence` must be a number in [0, 1] (a fraction of each volume's range), got {mp!r}."
            )
        object.__setattr__(self, "min_persistence", float(mp))
        default = type(self).__dataclass_fields__["min_persistence"].default
        if mp != default and "persistent_betti" not in (self.persistence or ()):
            said(
                f"`min_persistence={mp!r}` has no effect: it is the shortest lifetime counted by "
                f"persistence=['persistent_betti'], and persistence={self.persistence!r}. Add 'persistent_betti' to "
                "`persistence`, or leave `min_persistence` out."
            )
        checked = check_dims(self.persistence_dims, "persistence_dims", error=ConfigError)
        object.__setattr__(self, "persistence_dims", checked)
        if self.persistence is None and self.persistence_dims != tuple(
            type(self).__dataclass_fields__["persistence_dims"].default
        ):
            said(
                f"`persistence_dims={list(self.persistence_dims)}` has no effect: it selects the dimensions of the "
                "persistence summaries, and persistence=None computes none. Pass `persistence=[...]`, or leave "
                "`persistence_dims` out."
            )

    # ------------------------------------------------------------------ derived
    @property
    def betti_dims(self) -> int:
        """How many Betti numbers each layer reports (3 for cubical, ``maxdim + 1`` for Rips)."""
        return 3 if self.complex == "cubical" else self.maxdim + 1

    @property
    def persistence_keys(self) -> list[str]:
        """The persistence summaries computed per input and layer, by name (empty when ``persistence`` is None):
        ``total_persistence_{k}``, ``persistence_entropy_{k}``, ``persistent_b{k}`` for each ``k`` of
        ``persistence_dims``; the callback logs them as ``topology/{layer}/{name}``.

        Example:
            >>> TopologyConfig(persistence=["persistent_betti", "entropy"], persistence_dims=[1]).persistence_keys
            ['persistence_entropy_1', 'persistent_b1']
        """
        if self.persistence is None:
            return []
        return summary_keys(self.persistence, self.persistence_dims)

    @property
    def per_class_cap(self) -> int | None:
        """``samples_per_class`` with ``"auto"`` resolved for this view (:data:`AUTO_SAMPLES`)."""
        cap = self.samples_per_class
        return AUTO_SAMPLES[self.complex][0] if cap == "auto" else cap  # type: ignore[return-value]

    @property
    def total_cap(self) -> int:
        """``max_samples`` with ``"auto"`` resolved for this view (:data:`AUTO_SAMPLES`)."""
        cap = self.max_samples
        return AUTO_SAMPLES[self.complex][1] if cap == "auto" else cap  # type: ignore[return-value]

    def k_for(self, n: int) -> int:
        """The k-NN graph's k for a class of ``n`` sampled points: :func:`auto_k` for ``k="auto"``, else ``k``
        capped at ``n - 1``.

        Example:
            >>> TopologyConfig().k_for(300), TopologyConfig(k=14).k_for(10)
            (10, 9)
        """
        if self.k == "auto":
            return auto_k(n)
        return max(1, min(int(self.k), n - 1))

    @property
    def torch_device(self) -> torch.device | None:
        """``device`` as a ``torch.device`` (``None`` = where the model lives)."""
        return None if self.device is None else torch.device(self.device)

    def replace(self, **changes: Any) -> TopologyConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_kwargs(cls, config: TopologyConfig | None = None, **fields: Any) -> TopologyConfig:
        """``config`` (default: the defaults) with ``fields`` changed; an unknown field name is a ConfigError.

        Where ``fields`` names every field (jsonargparse's call: the command line, LightningCLI, a YAML with
        ``config:`` next to the field options), the fields at their defaults keep ``config``'s values.

        Example:
            >>> TopologyConfig.from_kwargs(k=3).k
            3
        """
        cls.check_names(fields)
        if config is not None and not isinstance(config, TopologyConfig):
            raise ConfigError(f"`config` must be a TopologyConfig, got {type(config).__name__}.")
        if config is not None and set(fields) == {f.name for f in dataclasses.fields(cls)}:
            # jsonargparse (our command line, LightningCLI, a YAML with `config:`) passes every field next to
            # `config`, at its default where the file says nothing: those leave `config`'s values.
            defaults = {f.name: _plain(f.default) for f in dataclasses.fields(cls)}
            fields = {name: value for name, value in fields.items() if _plain(value) != defaults[name]}
        if config is not None and not fields:
            return config  # checked (and its settings said) when it was built
        return dataclasses.replace(config or cls(), **fields)

    @classmethod
    def check_names(cls, fields: Mapping[str, Any]) -> None:
        """Raise a :class:`ConfigError` naming any key of ``fields`` that is not a field (with the valid names)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - names)
        if unknown:
            raise ConfigError(f"unknown argument(s) {unknown}; TopologyConfig fields are {sorted(names)}.")

    def numeric_settings(self) -> dict[str, Any]:
        """The fields that change the numbers computed, for the chosen view (plain values).

        Both views: ``complex``, ``layers`` (and ``max_layers`` for ``"auto"``), ``samples_per_class`` and
        ``max_samples`` (``"auto"`` resolved for the view) and ``seed`` (which inputs); cubical: ``threshold``;
        point cloud: ``scale``, ``metric``, ``k`` (for ``"knn_hops"``), ``maxdim`` and ``pool_size``; with
        ``persistence`` set (only then, so the keys of runs without it do not change): ``persistence``,
        ``persistence_dims`` and, for ``"persistent_betti"``, ``min_persistence``. Left out:
        fields of the other view, how the work is run (``batch_size``, ``device``, ``overlap``) and the data functions
        (``input_fn``, ``target_fn``, ``output_fn``, ``forward_fn``: two equivalent functions cannot be told apart,
        and a changed one shows in the sample's indices or the layer names). The callback's ``state_key`` is built
        from this, so a run resumed with another ``k`` on the cubical view, another batch size or an equivalent
        ``input_fn`` keeps its history.

        Example:
            >>> TopologyConfig(k=10).numeric_settings() == TopologyConfig(samples_per_class=20).numeric_settings()
            True
        """
        values = {**self.settings(), "samples_per_class": self.per_class_cap, "max_samples": self.total_cap}
        names = ["complex", "layers", *(["max_layers"] if self.layers == "auto" else [])]
        names += ["samples_per_class", "max_samples", "seed"]
        if self.complex == "cubical":
            names += ["threshold"]
            if self.persistence is not None:
                names += ["persistence", "persistence_dims"]
                names += ["min_persistence"] if "persistent_betti" in self.persistence else []
        else:
            names += ["scale", "metric", *(["k"] if self.metric == "knn_hops" else []), "maxdim", "pool_size"]
        return {name: values[name] for name in names}

    def check_device(self) -> None:
        """Raise a :class:`ConfigError` naming ``device`` when this machine does not have it (before training).

        Example:
            >>> TopologyConfig(device="cpu").check_device()
        """
        if self.device is None:
            return
        device = torch.device(self.device)
        if device.type == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if count == 0:
                raise ConfigError(
                    f"`device={self.device!r}`, but this machine has no CUDA device (torch.cuda.is_available() is "
                    "False); use device=None to compute where the model lives, or device='cpu'."
                )
            if device.index is not None and device.index >= count:
                raise ConfigError(
                    f"`device={self.device!r}`, but this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})."
                )
        elif device.type == "mps" and not torch.backends.mps.is_available():
            raise ConfigError(f"`device={self.device!r}`, but MPS is not available on this machine; use device=None.")

    def settings(self) -> dict[str, Any]:
        """Every field as plain, run-independent values (callables by ``module.qualname``, never by address).

        The callback's ``state_key`` and a report's ``config`` are built from this.
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if callable(value) and not isinstance(value, str):
                value = describe_callable(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out
