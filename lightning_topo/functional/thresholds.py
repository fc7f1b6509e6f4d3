"""Threshold rules for the cubical view: which sublevel set ``{v <= t}`` of each volume is read.

One implementation for the callback, ``analyse`` and the metric classes:

* ``"mean"`` — each volume's own mean (float64): scale-free (multiplying a layer by c multiplies the threshold by
  c, so the set is unchanged), always inside the volume's range, and on a post-ReLU map it keeps the zeros and the
  weak responses apart from the strong ones;
* ``"median"`` — each volume's lower median (invariant to any monotone rescaling);
* a number — the same absolute threshold for every volume;
* a callable ``volumes -> (B,) tensor`` (one threshold per volume) or a number (the same for all); a 0-d tensor
  is refused: computed from the whole batch (``v.mean()``), it would make each input's value depend on the batch.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from lightning_topo.functional._checks import _WIDE_INTEGERS, FLOAT8

__all__ = ["THRESHOLD_RULES", "ThresholdRuleError", "check_threshold_rule", "sublevel_thresholds"]

THRESHOLD_RULES: tuple[str, ...] = ("mean", "median")
"""The named rules."""

ThresholdRule = float | str | Callable[[Tensor], Tensor | float]

_UNSIGNED = tuple(getattr(torch, name) for name in ("uint16", "uint32") if hasattr(torch, name))
"""Unsigned dtypes torch reduces in few operations (``aminmax``, ``median``): read as int64 (the same values)."""

_NARROW = (torch.float32, torch.float16, torch.bfloat16, torch.int8, torch.int16, torch.uint8)
"""Dtypes whose float64 mean is always inside the values' range (see :func:`sublevel_thresholds`)."""


class ThresholdRuleError(ValueError):
    """A ``threshold`` callable returned something other than one real threshold per volume (a ``(B,)`` tensor) or
    a number; the message names the callable and what it returned."""


def check_threshold_rule(rule: object) -> None:
    """Raise a ``ValueError`` naming ``rule`` unless it is ``"mean"``, ``"median"``, a real number or a callable."""
    if isinstance(rule, str):
        if rule not in THRESHOLD_RULES:
            raise ValueError(f"`threshold` must be one of {THRESHOLD_RULES}, a number or a callable, got {rule!r}.")
    elif isinstance(rule, bool) or not (isinstance(rule, numbers.Real) or callable(rule)):
        raise ValueError(f"`threshold` must be one of {THRESHOLD_RULES}, a number or a callable, got {rule!r}.")
    elif isinstance(rule, numbers.Real) and math.isnan(rule):
        raise ValueError("`threshold` is NaN; pass a real number, 'mean', 'median' or a callable.")


def sublevel_thresholds(volumes: Tensor, rule: ThresholdRule) -> Tensor | float:
    """The threshold of each volume of a batch ``(B, ...)`` under ``rule`` (a ``(B,)`` tensor or a number).

    Example:
        >>> v = torch.tensor([[0.0, 1.0, 5.0], [2.0, 2.0, 8.0]])
        >>> sublevel_thresholds(v, "mean").tolist(), sublevel_thresholds(v, "median").tolist()
        ([2.0, 4.0], [1.0, 2.0])
    """
    check_threshold_rule(rule)
    if not isinstance(volumes, Tensor):
        raise TypeError(f"`volumes` must be a torch.Tensor, got {type(volumes).__name__}; torch.as_tensor(...) it.")
    if volumes.ndim == 0:
        raise ValueError("`volumes` must be a batch (B, ...), got a 0-d tensor.")
    volumes = volumes.detach()  # thresholds are data (and NumPy reads no tensor that requires grad)
    if volumes.is_complex() or volumes.dtype == torch.bool:
        raise ValueError(f"`volumes` has dtype {volumes.dtype}; accepted are real floating point and integer dtypes.")
    if volumes.dtype in _WIDE_INTEGERS and volumes.dtype != torch.int64:
        volumes = volumes.view(torch.int64)  # uint64, which few torch operations take (values beyond 2**53 are refused)
    elif volumes.dtype in _UNSIGNED or volumes.dtype in FLOAT8:
        volumes = volumes.to(torch.int64 if volumes.dtype in _UNSIGNED else torch.float32)  # exact, and reducible
    if rule in THRESHOLD_RULES:
        flat = volumes.reshape(-1, 1) if volumes.ndim == 1 else volumes.flatten(1)  # (B, n), also for B = 0
        if flat.shape[0] == 0 or flat.shape[1] == 0:
            return torch.full((flat.shape[0],), math.nan, dtype=torch.float64, device=flat.device)
        if rule == "median":
            return flat.median(dim=1).values
        # A float64 mean rounds, and where the values are wider than 32-bit floats (float64, int32, int64) it can
        # fall outside the volume's range (a constant float64 volume's below its value: an empty sublevel set), so
        # it is clamped to [min, max] there. Narrower values need no extra passes: their float64 sum rounds
        # monotonically and n * max is exact (n < 2**29), so the mean stays between min and max.
        clamp = flat.dtype not in _NARROW
        if flat.device.type == "cpu" and flat.dtype in (torch.float32, torch.float64):
            # NumPy's float64 mean: the same value, without torch's thread-pool start-up on small batches
            # (on 2 cores, ~0.1 ms instead of several ms for 200 x 1024 values).
            values = flat.contiguous().numpy()
            # a float64 sum beyond 1e308 (inf, or NaN where +inf and -inf partial sums meet): recomputed by
            # _overflowed_means, without NumPy's RuntimeWarning (an error where warnings are)
            with np.errstate(over="ignore", invalid="ignore"):
                mean = values.mean(axis=1, dtype=np.float64)
            if not clamp:
                return torch.from_numpy(mean)
            low, high = values.min(axis=1), values.max(axis=1)
            mean = np.where(np.isfinite(mean) | ~np.isfinite(low) | ~np.isfinite(high), mean, np.nan)
            return _overflowed_means(torch.from_numpy(np.clip(mean, low, high)), flat)
        mean = flat.mean(dim=1, dtype=torch.float64)
        if not clamp:
            return mean
        low, high = torch.aminmax(flat, dim=1)
        low, high = low.to(torch.float64), high.to(torch.float64)
        mean = torch.where(torch.isfinite(mean) | ~torch.isfinite(low) | ~torch.isfinite(high), mean, math.nan)
        return _overflowed_means(torch.clamp(mean, low, high), flat)
    if callable(rule):
        return _checked_call(rule, volumes)
    return float(rule)  # type: ignore[arg-type]


def _overflowed_means(mean: Tensor, flat: Tensor) -> Tensor:
    """``mean`` with its NaN entries (float64 volumes of finite values whose sum overflowed: above ~1e308 / n)
    computed again from the values divided by a power of two >= n, exact for such values (no sum can overflow).
    Only float64 sums can overflow (int64 values are within 2**53, n below 2**29). On the CPU only the volumes that
    overflowed are read again; on an accelerator every float64 volume is, without a host sync in the hook."""
    if flat.dtype != torch.float64:
        return mean
    redo = torch.isnan(mean)
    if flat.device.type == "cpu" and not bool(redo.any()):
        return mean
    rows = flat[redo] if flat.device.type == "cpu" else flat
    unit = 2.0 ** math.ceil(math.log2(flat.shape[1]))
    low, high = torch.aminmax(rows, dim=1)
    again = torch.clamp((rows / unit).mean(dim=1) * unit, low, high)
    if flat.device.type != "cpu":
        return torch.where(redo, again, mean)
    mean = mean.clone()
    mean[redo] = again
    return mean


def _checked_call(rule: Callable[[Tensor], Tensor | float], volumes: Tensor) -> Tensor | float:
    """``rule(volumes)``, checked: a real number, or a real tensor of shape ``(B,)`` (a :class:`ThresholdRuleError`
    naming the shape it returned otherwise; no host sync)."""
    batch = volumes.shape[0]
    value = rule(volumes)
    name = getattr(rule, "__name__", type(rule).__name__)
    if isinstance(value, Tensor):
        if value.shape != (batch,):
            raise ThresholdRuleError(
                f"the `threshold` callable {name} returned a tensor of shape {tuple(value.shape)} for {batch} "
                f"volumes; it must return one threshold per volume, shape ({batch},) (e.g. "
                "`lambda v: v.flatten(1).mean(1)`, not `v.mean()`, which mixes the inputs of a batch), or a number."
            )
        if value.is_complex() or value.dtype == torch.bool:
            raise ThresholdRuleError(
                f"the `threshold` callable {name} returned a {value.dtype} tensor; return real numbers."
            )
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ThresholdRuleError(
            f"the `threshold` callable {name} returned {type(value).__name__}; it must return a (B,) tensor or a "
            "number."
        )
    return float(value)
