"""Per-class statistics of Betti numbers: the one reduction behind Omega, every metric class and the callback.

In the style of torchmetrics' functional modules (``functional/image/tv.py``): :func:`_betti_update` turns a
batch into its sufficient statistics (per-class sums of Betti numbers and per-class counts), and
:func:`_betti_compute` / :func:`_omega_compute` turn accumulated statistics into values. The statistics add up:
the sums and counts of two batches are the statistics of both, which is what a ``Metric`` state with
``dist_reduce_fx="sum"`` needs under DDP. :func:`class_statistics` is the public pair of the two steps.

Leading axes are kept everywhere (a layer axis: ``(L, B, K)`` Betti numbers give ``(L, C, K)`` sums).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lightning_topo.functional._checks import check_tensor, class_labels

__all__ = ["class_statistics"]


def _betti_update(betti: Tensor, class_index: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """A batch's sufficient statistics: per-class sums ``(..., C, K)`` and counts ``(C,)`` (int64).

    Args:
        betti: ``(..., B, K)`` Betti numbers (integers, or floats for already-averaged values).
        class_index: ``(B,)`` the class position of each sample, in ``[0, num_classes)``.
        num_classes: C.

    Sums are int64 for integer input (exact whatever the sample size) and float64 otherwise.

    Example:
        >>> s, n = _betti_update(torch.tensor([[2, 1, 0], [1, 0, 0], [3, 0, 0]]), torch.tensor([0, 0, 1]), 2)
        >>> s.tolist(), n.tolist()
        ([[3, 1, 0], [3, 0, 0]], [2, 1])
    """
    dtype = torch.float64 if betti.is_floating_point() else torch.int64
    index = class_index.to(device=betti.device, dtype=torch.long)
    shape = (*betti.shape[:-2], num_classes, betti.shape[-1])
    sums = torch.zeros(shape, dtype=dtype, device=betti.device)
    sums.index_add_(sums.ndim - 2, index, betti.to(dtype))
    counts = torch.zeros(num_classes, dtype=torch.int64, device=betti.device)
    counts.index_add_(0, index, torch.ones_like(index))
    return sums, counts


def _betti_compute(sums: Tensor, counts: Tensor) -> Tensor:
    """Per-class mean Betti numbers ``(..., C, K)`` float64 from the statistics; NaN rows for empty classes.

    ``counts`` is ``(C,)`` or has the leading axes of ``sums`` (``(..., C)``).

    Example:
        >>> _betti_compute(torch.tensor([[3, 1, 0], [3, 0, 0]]), torch.tensor([2, 1])).tolist()
        [[1.5, 0.5, 0.0], [3.0, 0.0, 0.0]]
    """
    return sums.to(torch.float64) / counts.to(device=sums.device, dtype=torch.float64).unsqueeze(-1)


def _omega_compute(sums: Tensor, counts: Tensor) -> Tensor:
    """Omega ``(...)`` float64 from the statistics: the mean over the classes with samples of each class's mean
    of ``b0 + b1 + b2``; NaN where no class has a sample.

    Example:
        >>> _omega_compute(torch.tensor([[3, 1, 0], [3, 0, 0]]), torch.tensor([2, 1])).item()
        2.5
    """
    per_class = _betti_compute(sums, counts).sum(dim=-1)  # (..., C); NaN for empty classes
    present = counts.to(sums.device) > 0
    present = present.expand_as(per_class)
    total = torch.where(present, per_class, torch.zeros_like(per_class)).sum(dim=-1)
    n = present.sum(dim=-1).to(torch.float64)
    return torch.where(n > 0, total / n.clamp(min=1), torch.full_like(total, math.nan))


def _check_betti(betti: object) -> Tensor:
    """``betti`` checked as Betti numbers ``(..., B, K)``: a real tensor of values >= 0 (finite), with a sample;
    unsigned integers come back as int64 (the same values: torch compares few unsigned dtypes)."""
    betti = check_tensor(betti, "betti")
    if betti.ndim < 2:
        raise ValueError(f"`betti` must have shape (..., B, K), got shape {tuple(betti.shape)}.")
    if betti.shape[-2] == 0:
        raise ValueError("`betti` has no samples (B = 0): Omega of an empty sample is undefined.")
    if betti.is_complex() or betti.dtype == torch.bool:
        raise ValueError(f"`betti` must hold Betti numbers (real, >= 0), got dtype {betti.dtype}.")
    if not betti.is_floating_point() and not betti.is_signed():
        betti = betti.to(torch.int64) if betti.dtype != torch.uint8 else betti
    elif betti.is_floating_point() and not bool(torch.isfinite(betti).all()):
        raise ValueError(
            "`betti` holds NaN or Inf: Betti numbers are finite counts; drop the samples whose Betti numbers were "
            "skipped (NaN) before averaging them."
        )
    if betti.numel() and bool((betti < 0).any()):
        raise ValueError(
            f"`betti` must hold Betti numbers (>= 0), got a minimum of {betti.min().item()}: pass the counts "
            "(cubical_betti / rips_betti), not differences of them."
        )
    return betti


def class_statistics(betti: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class mean Betti numbers and Omega of a set of samples: :func:`_betti_update` then the computes.

    Args:
        betti: ``(..., B, K)`` Betti numbers (integers, or floats for already-averaged values), >= 0.
        labels: ``(B,)`` class labels: integers, or floats that are whole numbers (``None``: one class).

    Returns:
        ``(classes, means, omega)``: the sorted classes present ``(C,)``, per-class means ``(..., C, K)`` float64
        and Omega ``(...)`` float64.

    Raises:
        ValueError: fewer than 2 axes, an empty sample axis, a bool or complex dtype, negative, NaN or infinite
            values, or labels of the wrong shape or that are not whole numbers.

    Example:
        >>> classes, means, om = class_statistics(torch.tensor([[1, 0, 0], [3, 1, 0], [2, 0, 0]]),
        ...                                       torch.tensor([5, 5, 7]))
        >>> classes.tolist(), means.tolist(), om.item()
        ([5, 7], [[2.0, 0.5, 0.0], [2.0, 0.0, 0.0]], 2.25)
    """
    betti = _check_betti(betti)
    n = betti.shape[-2]
    if labels is None:
        labels = torch.zeros(n, dtype=torch.long)
    else:
        labels = check_tensor(labels, "labels")
        if labels.shape != (n,):
            raise ValueError(f"`labels` must have shape (B,) = ({n},) to match `betti`, got {tuple(labels.shape)}.")
        labels = class_labels(labels)
    classes, index = torch.unique(labels.to(betti.device), return_inverse=True)
    sums, counts = _betti_update(betti, index, classes.numel())
    return classes, _betti_compute(sums, counts), _omega_compute(sums, counts)
