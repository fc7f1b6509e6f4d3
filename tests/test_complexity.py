"""Omega, theta and the normalised decay against independent computations of their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lightning_topo.functional import normalised_decay, omega, theta


def _augmented_ridge(x: np.ndarray, y: np.ndarray, alpha: float = 1e-3) -> np.ndarray:
    """Ridge with an unpenalised intercept as one least-squares problem (no centring).

    Minimise ||A a - y||^2 + alpha * (a1^2 + a2^2 + a3^2) by stacking sqrt(alpha) * [0 | I] under A.
    """
    design = np.stack([np.ones_like(x), x, x**2, x**3], axis=1)
    penalty = np.sqrt(alpha) * np.eye(4)[1:]
    coef, *_ = np.linalg.lstsq(np.vstack([design, penalty]), np.concatenate([y, np.zeros(3)]), rcond=None)
    return coef


@pytest.mark.parametrize("n_layers", [2, 3, 5, 11, 19, 40])
def test_theta_equals_independent_least_squares(n_layers: int) -> None:
    rng = np.random.default_rng(n_layers)
    for _ in range(5):
        curve = rng.uniform(0.5, 50.0, size=n_layers)
        y = curve / np.linalg.norm(curve)
        a = _augmented_ridge(np.arange(1, n_layers + 1, dtype=np.float64), y)
        expected = a[1] + 0.5 * a[2] + 0.5 * a[3]
        assert theta(torch.from_numpy(curve)).item() == pytest.approx(expected, abs=1e-9)


def test_theta_equals_scikit_learn_ridge() -> None:
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import PolynomialFeatures

    curve = np.array([120.0, 80.0, 75.0, 40.0, 22.0, 10.0, 9.0, 5.0, 3.0, 2.0, 2.0])
    y = curve / np.linalg.norm(curve)
    x = np.arange(1, 12, dtype=np.float64)[:, None]
    fit = Ridge(alpha=1e-3).fit(PolynomialFeatures(3).fit_transform(x), y)
    expected = fit.coef_[1] + 0.5 * fit.coef_[2] + 0.5 * fit.coef_[3]
    assert theta(torch.from_numpy(curve)).item() == pytest.approx(expected, abs=1e-9)


def test_normalised_decay_definition() -> None:
    rng = np.random.default_rng(0)
    for n_layers in (2, 4, 11, 19):
        curve = rng.uniform(1.0, 30.0, size=n_layers)
        t = np.linspace(0.0, 1.0, n_layers)
        a = _augmented_ridge(t, curve / curve.max())
        expected = -(a[1] + a[2] + a[3])
        assert normalised_decay(torch.from_numpy(curve)).item() == pytest.approx(expected, abs=1e-9)


def test_decay_signs_and_scale_invariance() -> None:
    falling = torch.tensor([50.0, 30.0, 12.0, 6.0, 2.0, 1.0])
    assert normalised_decay(falling) > 0.8
    assert normalised_decay(falling.flip(0)) < -0.8
    assert abs(normalised_decay(torch.full((6,), 7.0)).item()) < 1e-9
    assert normalised_decay(falling * 1000).item() == pytest.approx(normalised_decay(falling).item(), abs=1e-12)
    assert theta(falling * 3).item() == pytest.approx(theta(falling).item(), abs=1e-12)
    assert theta(falling) < theta(falling.flip(0))


def test_batched_curves() -> None:
    curves = torch.rand(4, 7, dtype=torch.float64) + 0.1
    assert torch.allclose(theta(curves), torch.stack([theta(c) for c in curves]), atol=1e-12)
    assert torch.allclose(normalised_decay(curves), torch.stack([normalised_decay(c) for c in curves]), atol=1e-12)


def test_omega_per_class_then_over_classes() -> None:
    rng = np.random.default_rng(1)
    betti = rng.integers(0, 6, size=(3, 20, 3))  # 3 layers, 20 samples
    labels = rng.integers(0, 4, size=20)
    totals = betti.sum(axis=-1)
    expected_plain = totals.mean(axis=-1)
    expected_class = np.stack(
        [np.mean([totals[layer][labels == c].mean() for c in np.unique(labels)]) for layer in range(3)]
    )
    got_plain = omega(torch.from_numpy(betti))
    got_class = omega(torch.from_numpy(betti), torch.from_numpy(labels))
    assert np.allclose(got_plain.numpy(), expected_plain, atol=1e-12)
    assert np.allclose(got_class.numpy(), expected_class, atol=1e-12)
    assert got_class.dtype == torch.float64


def test_errors() -> None:
    with pytest.raises(ValueError, match="L >= 2"):
        theta(torch.tensor([3.0]))
    with pytest.raises(ValueError, match="index 2"):
        theta(torch.tensor([3.0, 2.0, math.nan, 1.0]))
    with pytest.raises(ValueError, match="zero at every layer"):
        normalised_decay(torch.zeros(5))
    with pytest.raises(ValueError, match="zero at every layer"):
        theta(torch.zeros(5))
    with pytest.raises(ValueError, match="no samples"):
        omega(torch.zeros(0, 3))
    with pytest.raises(ValueError, match=r"`labels` must have shape \(B,\)"):
        omega(torch.zeros(4, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        omega(torch.zeros(3))
