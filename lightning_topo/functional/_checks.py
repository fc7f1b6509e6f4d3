"""Input validation shared by the functional core.

Every check raises :class:`ValueError` (or :class:`TypeError` for a non-tensor) whose message
names the argument, the bad value or sample index, and what is accepted. NaN or Inf input raises the
subclass :class:`NonFiniteError`, so callers can skip such data by type, never by message text. A missing optional
dependency raises :class:`MissingDependencyError` (an ``ImportError``) naming the ``pip install`` line.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "FLOAT8",
    "MissingDependencyError",
    "NonFiniteError",
    "as_device",
    "as_integer",
    "batch_thresholds",
    "check_finite_per_sample",
    "check_int",
    "check_tensor",
    "check_volumes",
    "exact_threshold_compare_dtype",
    "finite_flag",
    "float_down",
    "real_thresholds",
    "round_down_to_dtype",
    "threshold_array",
]


class MissingDependencyError(ImportError):
    """An optional dependency a feature needs is not installed; the message names the pip extra."""


class NonFiniteError(ValueError):
    """The input holds NaN or Inf, where Betti numbers and persistence diagrams are undefined (``index``: the first
    bad sample)."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


def check_int(
    value: object,
    name: str,
    minimum: int | None = None,
    maximum: int | None = None,
    *,
    allow_none: bool | str = False,
    why: str = "",
    bounds: str | None = None,
    error: type[Exception] = ValueError,
) -> int | None:
    """The one check of "an integer (not a bool) in [minimum, maximum]" of the whole package.

    Integers are Python ints, NumPy integers and 0-d integer tensors (:func:`as_integer`); the value returned is a
    Python ``int`` (``None`` where allowed). Raises ``error`` (a ``ValueError`` by default; callers pass their own
    typed error, e.g. ``ConfigError`` or Lightning's ``MisconfigurationException``) naming ``name``, the accepted
    range and the value. ``allow_none`` may be a string saying what ``None`` means (``"floor rule off"``);
    ``bounds`` replaces the range's wording.

    Example:
        >>> check_int(3, "k", 1)
        3
        >>> import numpy as np
        >>> check_int(np.int64(3), "k", 1)
        3
        >>> check_int(True, "k", 1)
        Traceback (most recent call last):
        ...
        ValueError: `k` must be an integer >= 1, got True.
    """
    if value is None and allow_none:
        return None
    number = as_integer(value)
    ok = number is not None
    if ok and ((minimum is not None and number < minimum) or (maximum is not None and number > maximum)):  # type: ignore[operator]
        ok = False
    if not ok:
        if bounds is not None:
            bounds = f" {bounds}"
        elif minimum is not None and maximum is not None:
            bounds = f" in [{minimum}, {maximum}]"
        elif minimum is not None:
            bounds = f" >= {minimum}"
        elif maximum is not None:
            bounds = f" <= {maximum}"
        else:
            bounds = ""
        none = "" if not allow_none else "None or " if allow_none is True else f"None ({allow_none}) or "
        raise error(f"`{name}` must be {none}an integer{bounds}{why}, got {value!r}.")
    return number


def as_integer(value: object) -> int | None:
    """``value`` as a Python ``int`` if it is an integer (a Python int, a NumPy integer or a 0-d integer tensor;
    never a bool, a float or a NumPy bool), else ``None``.

    Example:
        >>> as_integer(torch.tensor(4)), as_integer(True), as_integer(2.0)
        (4, None, None)
    """
    if isinstance(value, Tensor):
        if value.ndim != 0 or value.dtype == torch.bool or value.is_floating_point() or value.is_complex():
            return None
        return int(value.item())
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def float_down(value: numbers.Real) -> float:
    """The largest float64 ``<= value``, exactly (a Python int or fraction beyond 2**53 rounds to nearest in
    ``float()``, maybe up, and a huge one overflows): ±inf beyond the float64 range. Volumes are finite, so
    ``v <= value`` iff ``v <= float_down(value)``.

    Example:
        >>> float_down(2**53 + 1) == 2**53, float_down(10**400), float_down(-(10**400))
        (True, inf, -inf)
    """
    if isinstance(value, numbers.Integral):
        value = int(value)  # a NumPy integer compares with a float in float64: inexactly
    try:
        down = float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf
    if down > value:  # Python compares ints and fractions with floats exactly
        down = math.nextafter(down, -math.inf)
    return down


def check_tensor(value: object, name: str) -> Tensor:
    """Return ``value`` if it is a tensor with values, else raise a ``TypeError`` naming ``name`` (a
    ``ValueError`` for a meta tensor, a shape without values, and for a sparse one)."""
    if not isinstance(value, Tensor):
        hint = " (`torch.as_tensor(...)` makes one of it)" if hasattr(value, "__array__") else ""
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(value).__name__}{hint}.")
    if value.layout != torch.strided:
        raise ValueError(
            f"`{name}` is a {str(value.layout).removeprefix('torch.')} tensor; Betti numbers and diagrams read dense "
            f"values: pass `{name}.to_dense()`."
        )
    if value.is_meta:
        raise ValueError(
            f"`{name}` is a meta tensor (shape {tuple(value.shape)}: a shape without values); Betti numbers and "
            "diagrams need values: pass a tensor on a real device (a model on 'meta' needs its weights loaded first)."
        )
    return value


FLOAT8 = tuple(getattr(torch, name) for name in dir(torch) if name.startswith("float8_"))
"""torch's 8-bit floats, which it reduces in few operations (no ``aminmax``, ``sort`` or ``cdist``): read as
float32, which holds every value exactly."""


def class_labels(labels: Tensor, name: str = "labels") -> Tensor:
    """Class labels as an int64 tensor of ``labels``' shape, with one rule for every entry point.

    Integer and bool tensors are classes; a float tensor is accepted when every entry is a finite whole number
    (``0.0``, ``1.0``: targets as pandas or scikit-learn often store them) and refused otherwise, naming the first
    value that is not (``0.5`` would have become class 0). Complex tensors are refused.
    """
    if labels.is_complex():
        raise ValueError(f"`{name}` must hold integer class labels, got dtype {labels.dtype}.")
    if labels.is_floating_point():
        whole = torch.isfinite(labels) & (labels == torch.round(labels))
        if not bool(whole.all()):
            bad = labels[~whole].reshape(-1)[0].item()
            raise ValueError(
                f"label {bad:.8g} in `{name}` is not a whole number: labels are class indices (integers); for "
                f"probabilities or one-hot rows pass `{name}.argmax(-1)`."
            )
    return labels.to(torch.long)


def as_device(device: torch.device | str | None, fallback: torch.device) -> torch.device:
    """Resolve ``device`` (``None`` means ``fallback``, the input's device).

    Raises:
        ValueError: ``device`` is not a device name, or names CUDA on a machine without it (before any work).
    """
    if device is None:
        return fallback
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"`device` must be a torch device or its name ('cpu', 'cuda', 'cuda:1'), got {device!r}."
        ) from err
    if target.type == "meta":
        raise ValueError(
            f"`device={device!r}` holds shapes without values; Betti numbers need values: pass 'cpu', 'cuda' or "
            "`device=None` (the input's device)."
        )
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"`device={device!r}`, but this machine has no CUDA device (torch {torch.__version__}); pass `device=None` "
            "(the input's device) or 'cpu'."
        )
    return target


def check_finite_per_sample(x: Tensor, name: str, what: str = "sample") -> None:
    """Raise a ``ValueError`` naming the first index along dim 0 of ``x`` that holds NaN or Inf."""
    if not (x.is_floating_point() or x.is_complex()):
        return
    if x.is_floating_point() and x.numel():
        # Fast path, one pass and no boolean copy: NaN propagates through min/max, and an Inf is the max or min.
        low, high = torch.aminmax(x)
        if bool(torch.isfinite(low) & torch.isfinite(high)):
            return
    finite = torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten().tolist()
        shown = ", ".join(str(i) for i in bad[:10]) + (" …" if len(bad) > 10 else "")
        raise NonFiniteError(
            f"`{name}` has NaN or Inf values in {what} index {bad[0]} ({len(bad)} {what}(s) affected: "
            f"{shown}). Betti numbers and persistence diagrams of non-finite data are undefined: drop or clean "
            f"those {what}s first.",
            bad[0],
        )


def finite_flag(x: Tensor) -> Tensor:
    """A 0-d bool tensor on ``x``'s device: whether every value of ``x`` is finite (no host sync)."""
    if not x.is_floating_point() or not x.numel():
        return torch.ones((), dtype=torch.bool, device=x.device)
    low, high = torch.aminmax(x)  # NaN propagates through min/max, and an Inf is the max or min
    return torch.isfinite(low) & torch.isfinite(high)


def check_volumes(volumes: object, name: str = "volumes", *, finite: bool = True) -> Tensor:
    """Validate a batch of volumes ``(B, *spatial)`` with 1, 2 or 3 spatial axes.

    Returns the tensor. Raises on a non-tensor, a wrong number of axes, an empty batch, a zero-size
    axis, a complex or boolean dtype, 64-bit integers beyond ±2**53 (not exact in float64), or (unless
    ``finite=False``: the caller checks later, e.g. through :func:`finite_flag` without a host sync) NaN/Inf
    (naming the sample index).
    """
    volumes = check_tensor(volumes, name)
    if volumes.ndim not in (2, 3, 4):
        raise ValueError(
            f"`{name}` must have shape (B, *spatial) with 1, 2 or 3 spatial axes (ndim 2, 3 or 4), got "
            f"ndim {volumes.ndim} with shape {tuple(volumes.shape)}. A single volume needs a batch axis: "
            f"`{name}.unsqueeze(0)`; a batch of 4-D maps must be reshaped to (B, C, H, W)."
        )
    if volumes.shape[0] == 0:
        raise ValueError(f"`{name}` is an empty batch (shape {tuple(volumes.shape)}): pass at least one volume.")
    if any(s == 0 for s in volumes.shape[1:]):
        raise ValueError(
            f"`{name}` has a zero-size spatial axis (shape {tuple(volumes.shape)}): every spatial axis "
            "must have size >= 1."
        )
    if volumes.is_complex() or volumes.dtype == torch.bool:
        raise ValueError(f"`{name}` has dtype {volumes.dtype}; accepted are real floating point and integer dtypes.")
    if volumes.dtype in FLOAT8:
        volumes = volumes.to(torch.float32)
    if volumes.dtype in _WIDE_INTEGERS:
        beyond = beyond_exact(volumes.reshape(volumes.shape[0], -1)).any(dim=1)
        if bool(beyond.any()):
            bad = int(torch.nonzero(beyond).flatten()[0])
            raise ValueError(
                f"`{name}` (dtype {volumes.dtype}) has values beyond ±2**53 in sample {bad}: they are compared in "
                "float64, where such integers round and neighbours become equal, so Betti numbers and diagrams "
                f"would be silently wrong. Subtract a reference first (e.g. `{name} - {name}.amin()`) so the "
                "values fit, or convert to float64 yourself if rounding is acceptable."
            )
        if volumes.dtype != torch.int64:  # uint64, which few torch operations take: the same values as int64
            volumes = volumes.view(torch.int64)
    if finite:
        check_finite_per_sample(volumes, name, "sample")
    return volumes


_EXACT_INTEGER = 2**53
"""The largest magnitude from which every integer below is exact in float64."""


def beyond_exact(values: Tensor) -> Tensor:
    """Per value of a 64-bit integer tensor (int64 or uint64), whether it lies beyond ±2**53 (not exact in
    float64); no ``abs`` (``abs(-2**63)`` overflows, and uint64 has none in torch)."""
    if values.dtype != torch.int64:  # uint64: as int64, a value beyond 2**63 is negative
        signed = values.view(torch.int64)
        return (signed < 0) | (signed > _EXACT_INTEGER)
    return (values < -_EXACT_INTEGER) | (values > _EXACT_INTEGER)


_WIDE_INTEGERS = tuple(getattr(torch, name) for name in ("int64", "uint64") if hasattr(torch, name))


def batch_thresholds(
    threshold: object,
    batch: int,
    device: torch.device,
    checks: list[Tensor] | None = None,
    name: str = "threshold",
    item: str = "sample index",
) -> Tensor:
    """One threshold per volume of a batch, from a number, a tensor or a NumPy array of one or ``batch`` values, as
    a float64 ``(B,)`` tensor on ``device`` (a Python int rounded down exactly: :func:`float_down`; an int64 tensor
    beyond 2**53 refused: :func:`real_thresholds`). A NaN raises a ``ValueError`` naming ``name`` and the ``item``
    (``"sample index"``, ``"volume"``) it is at, at once, or, with
    ``checks`` given, only appends a "no NaN" flag to it (no host sync; the caller checks and calls again to
    raise)."""
    if isinstance(threshold, np.ndarray):
        threshold = threshold_array(threshold, name)
    if isinstance(threshold, Tensor):
        threshold = real_thresholds(threshold.detach(), name)  # a rule's value may carry grad: read as data
        if threshold.numel() == 1:
            thr = threshold.reshape(()).to(device=device, dtype=torch.float64).expand(batch)
        elif threshold.shape == (batch,):
            thr = threshold.to(device=device, dtype=torch.float64)
        else:
            raise ValueError(
                f"`{name}` must be a number, a 1-element tensor or a tensor of shape (B,) = ({batch},), "
                f"got shape {tuple(threshold.shape)}."
            )
    elif isinstance(threshold, numbers.Real) and not isinstance(threshold, bool):
        thr = torch.full((batch,), float_down(threshold), dtype=torch.float64, device=device)
    elif isinstance(threshold, str):
        raise ValueError(
            f"`{name}` must be a number or a tensor, got {threshold!r}; for each volume's mean or median pass "
            f"sublevel_thresholds(volumes, {threshold!r})."
        )
    else:
        raise ValueError(
            f"`{name}` must be a number, a tensor or a NumPy array, got {type(threshold).__name__}"
            f"{'; torch.tensor(...) it' if isinstance(threshold, (list, tuple)) else ''}."
        )
    if checks is not None:
        checks.append(~torch.isnan(thr).any())
    elif bool(torch.isnan(thr).any()):
        bad = int(torch.nonzero(torch.isnan(thr)).flatten()[0])
        raise ValueError(f"`{name}` is NaN at {item} {bad}; pass a real number (±inf is allowed).")
    return thr


def threshold_array(values: np.ndarray, name: str = "threshold") -> Tensor:
    """A NumPy array of thresholds as a tensor of the same values (for :func:`real_thresholds`); an array of
    anything but real numbers is a ``ValueError`` naming ``name`` and its dtype."""
    if values.dtype == np.bool_ or not np.issubdtype(values.dtype, np.number) or np.iscomplexobj(values):
        raise ValueError(f"`{name}` must be real-valued, got dtype {values.dtype}.")
    if values.dtype == np.longdouble and np.longdouble != np.float64:
        values = values.astype(np.float64)  # torch has no long double
    return torch.from_numpy(np.ascontiguousarray(values))


def real_thresholds(values: Tensor, name: str = "threshold") -> Tensor:
    """A tensor of thresholds, checked, as its values (not yet converted): bool or complex is a ``ValueError``, and
    so are 64-bit integers beyond ±2**53, which float64 rounds to the nearest (maybe up: ``v <= t`` would then hold
    for a ``v`` above ``t``); uint64 comes back viewed as int64 (the same values, which torch converts).

    Example:
        >>> real_thresholds(torch.tensor([2**53 + 3]))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: `threshold` (dtype torch.int64) has values beyond ±2**53, which float64 rounds; pass them as ...
    """
    values = check_tensor(values, name)
    if values.is_complex() or values.dtype == torch.bool:
        raise ValueError(f"`{name}` must be real-valued, got dtype {values.dtype}.")
    if values.dtype in FLOAT8:
        return values.to(torch.float32)
    if values.dtype in _WIDE_INTEGERS:  # narrower integers are exact in float64
        if bool(beyond_exact(values).any()):
            raise ValueError(
                f"`{name}` (dtype {values.dtype}) has values beyond ±2**53, which float64 rounds; pass "
                "them as Python ints (rounded down exactly) or as float64."
            )
        return values.view(torch.int64)
    return values


def exact_threshold_compare_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype in which ``volume <= threshold`` is evaluated exactly.

    float32/float64 volumes are compared in their own dtype against a threshold rounded *down*
    to that dtype (see :func:`round_down_to_dtype`); half precision is upcast to float32 (exact);
    integers are compared in float64 (exact for |v| < 2**53).
    """
    if dtype in (torch.float32, torch.float64):
        return dtype
    if dtype in (torch.float16, torch.bfloat16):
        return torch.float32
    return torch.float64


def round_down_to_dtype(threshold: Tensor, dtype: torch.dtype) -> Tensor:
    """The largest value of ``dtype`` that is <= ``threshold`` (a float64 tensor), elementwise.

    For any ``v`` representable in ``dtype``: ``v <= threshold`` iff ``v <= round_down(threshold)``,
    so the sublevel set is exact even when the threshold is not representable (``0.1`` in float32).
    """
    rounded = threshold.to(dtype)
    too_big = rounded.to(torch.float64) > threshold
    if rounded.device.type == "cpu" and not bool(too_big.any()):
        return rounded  # (on an accelerator the test would be a host sync; the `where` below is cheaper)
    lower = torch.nextafter(rounded, torch.full_like(rounded, -math.inf))
    return torch.where(too_big, lower, rounded)
