"""Topological complexity Omega and its decay over depth.

* ``omega``: Omega = b0 + b1 + b2 (+ ...) averaged over the sampled inputs; with labels, averaged
  within each class and then over the classes (Suresh et al., arXiv 2311.04592).
* ``theta``: the paper's decay rate, exactly as its code defines it (Suresh et al., arXiv 2311.04592).
* ``normalised_decay``: a depth- and scale-normalised alternative, the fraction of the (fitted)
  peak complexity lost between the first and the last watched layer.

Which to use:

* ``theta`` reproduces the paper's model-ranking score. It depends on the number of layers ``L``
  (x runs over 1..L and y is divided by its L2 norm, which grows like sqrt(L)), so compare theta
  only between models measured on the same number of layers, as the paper does (11 points for
  every ResNet18, 19 for ResNet50 ...). Lower theta went with better transfer in the paper. It is not a
  measure of steepness: a curve that falls by 90 % can score above a flat one (theta 0).
* ``normalised_decay`` puts depth on [0, 1] and Omega on [0, 1] (divided by its maximum), so it is
  comparable across depths and datasets and stays in about [-1, 1]: 1 means Omega falls from a
  peak at the first layer to zero (less when the peak comes later), 0 means a flat curve, negative
  values mean Omega grows with depth. It is the headline ``topology/decay_rate`` of the callback;
  higher means more simplification.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_topo.functional._checks import check_tensor
from lightning_topo.functional.statistics import class_statistics

__all__ = ["RIDGE_ALPHA", "cubic_ridge_fit", "normalised_decay", "omega", "theta"]

RIDGE_ALPHA: float = 1e-3
"""Ridge penalty of the cubic fit (the paper's ``Ridge(alpha=1e-3)``)."""


def omega(betti: Tensor, labels: Tensor | None = None) -> Tensor:
    """Topological complexity: mean over samples of ``b0 + b1 + b2`` (per class, then over classes).

    Args:
        betti: ``(..., B, K)`` Betti numbers of ``B`` samples (K = 3 for the cubical view); leading
            axes (e.g. layers) are kept.
        labels: optional ``(B,)`` class labels: integers, or floats that are whole numbers. With labels, Omega is
            the mean over the classes present of each class's mean over its samples (the paper's order); without,
            the plain mean over samples.

    Returns:
        float64 tensor of shape ``betti.shape[:-2]``.

    Raises:
        ValueError: as :func:`~lightning_topo.functional.class_statistics`: fewer than 2 axes, an empty sample axis,
            negative, NaN or infinite values, or labels of the wrong shape or that are not whole numbers.

    Example:
        >>> b = torch.tensor([[1, 0, 0], [3, 1, 0], [2, 0, 0]])
        >>> omega(b).item(), omega(b, torch.tensor([0, 0, 1])).item()
        (2.3333333333333335, 2.25)
    """
    return class_statistics(betti, labels)[2]


def _check_curve(curve: Tensor, name: str) -> Tensor:
    curve = check_tensor(curve, name)
    if curve.ndim < 1 or curve.shape[-1] < 2:
        raise ValueError(
            f"`{name}` must have shape (..., L) with L >= 2 layers, got shape {tuple(curve.shape)}: a decay "
            "over depth needs at least two layers."
        )
    if curve.is_complex() or curve.dtype == torch.bool:
        raise ValueError(f"`{name}` must hold real values (Omega per layer), got dtype {curve.dtype}.")
    curve = curve.to(torch.float64)
    finite = torch.isfinite(curve)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite)[0].tolist()
        raise ValueError(
            f"`{name}` holds NaN or Inf at index {tuple(bad) if len(bad) > 1 else bad[0]}: the decay of a curve "
            "with a missing layer is undefined; drop that layer or fix its input."
        )
    return curve


def cubic_ridge_fit(x: Tensor, y: Tensor, alpha: float = RIDGE_ALPHA) -> Tensor:
    """Coefficients ``(a0, a1, a2, a3)`` of a ridge fit of ``y`` on ``[1, x, x^2, x^3]``.

    The intercept ``a0`` is fitted and not penalised (features and target are centred first, as
    scikit-learn's ``Ridge(fit_intercept=True)`` does); ``a1..a3`` carry the penalty ``alpha``.
    ``x`` is ``(L,)``; ``y`` is ``(..., L)``; returns ``(..., 4)`` float64.
    """
    x = x.to(torch.float64)
    y = y.to(torch.float64)
    features = torch.stack([x, x**2, x**3], dim=-1)  # (L, 3)
    f_mean = features.mean(dim=0)
    centred = features - f_mean
    y_mean = y.mean(dim=-1, keepdim=True)
    gram = centred.T @ centred + alpha * torch.eye(3, dtype=torch.float64, device=x.device)
    rhs = (y - y_mean) @ centred  # (..., 3)
    coef = torch.linalg.solve(gram, rhs.unsqueeze(-1)).squeeze(-1)  # (..., 3)
    intercept = y_mean.squeeze(-1) - coef @ f_mean
    return torch.cat([intercept.unsqueeze(-1), coef], dim=-1)


def theta(omega_per_layer: Tensor) -> Tensor:
    """The decay rate of Suresh et al.: ``a1 + 0.5*a2 + 0.5*a3`` of a cubic ridge fit of the curve.

    ``x = 1..L`` (raw layer index), ``y = Omega / ||Omega||_2``, ridge ``alpha = 1e-3`` on the
    polynomial features with an unpenalised intercept (as the paper's code). Lower theta went with better
    fine-tuned accuracy in the paper. Compare only curves with the same number of layers.

    Args:
        omega_per_layer: ``(..., L)`` Omega per layer (L >= 2), in depth order.

    Returns:
        float64 tensor of shape ``omega_per_layer.shape[:-1]``.

    Raises:
        ValueError: for L < 2, NaN/Inf (naming the index), or a curve that is zero at every layer.

    Example:
        >>> round(theta(torch.tensor([40.0, 30.0, 20.0, 12.0, 8.0, 6.0])).item(), 4)
        -0.183
    """
    curve = _check_curve(omega_per_layer, "omega_per_layer")
    peak = curve.abs().amax(dim=-1, keepdim=True)  # divided out first: the norm neither overflows nor underflows
    curve = curve / torch.where(peak > 0, peak, torch.ones_like(peak))
    norm = torch.linalg.vector_norm(curve, dim=-1, keepdim=True)
    if bool((norm == 0).any()):
        raise ValueError(
            "`omega_per_layer` is zero at every layer, so the normalised curve Omega/||Omega|| is undefined; "
            "the threshold is probably below every activation (no voxel in any sublevel set)."
        )
    x = torch.arange(1, curve.shape[-1] + 1, dtype=torch.float64, device=curve.device)
    a = cubic_ridge_fit(x, curve / norm)
    return a[..., 1] + 0.5 * a[..., 2] + 0.5 * a[..., 3] + 0.0  # + 0.0: a flat curve gives 0, never -0


def normalised_decay(omega_per_layer: Tensor) -> Tensor:
    """Depth- and scale-normalised decay: the fitted fraction of peak Omega lost over depth.

    ``t = linspace(0, 1, L)`` (relative depth), ``y = Omega / max(Omega)``; the same cubic ridge fit as
    :func:`theta` (alpha = 1e-3, unpenalised intercept) gives ``yhat``; the result is
    ``yhat(0) - yhat(1) = -(a1 + a2 + a3)``. About 1 when Omega falls from a peak at the first layer to zero
    (less when the peak comes later: the fit spans the first to the last layer), 0 for a
    flat curve, negative when Omega grows with depth; comparable across networks of different
    depths. Higher means more simplification (``mode="max"`` for early stopping).

    Args:
        omega_per_layer: ``(..., L)`` Omega per layer (L >= 2), in depth order.

    Returns:
        float64 tensor of shape ``omega_per_layer.shape[:-1]``.

    Raises:
        ValueError: for L < 2, NaN/Inf (naming the index), or a curve that is zero at every layer.

    Example:
        >>> round(normalised_decay(torch.tensor([40.0, 30.0, 20.0, 12.0, 8.0, 6.0])).item(), 4)
        0.8458
    """
    curve = _check_curve(omega_per_layer, "omega_per_layer")
    peak = curve.abs().amax(dim=-1, keepdim=True)
    if bool((peak == 0).any()):
        raise ValueError(
            "`omega_per_layer` is zero at every layer, so the decay is undefined; the threshold is probably "
            "below every activation (no voxel in any sublevel set)."
        )
    t = torch.linspace(0.0, 1.0, curve.shape[-1], dtype=torch.float64, device=curve.device)
    a = cubic_ridge_fit(t, curve / peak)
    return -(a[..., 1] + a[..., 2] + a[..., 3]) + 0.0  # + 0.0: a flat curve gives 0, never -0
