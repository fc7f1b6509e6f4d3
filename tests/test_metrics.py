"""torchmetrics classes: equal to the functional core, mergeable like DDP, plottable."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lightning_topo.functional import cubical_betti, normalised_decay, omega, theta
from lightning_topo.metrics import BettiNumbers, DecayRate, TopologicalComplexity


def _data(seed: int, n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(n, 3, 6, 7, generator=gen)), torch.randint(0, 3, (n,), generator=gen)


def test_betti_numbers_equal_functional_per_class() -> None:
    x, y = _data(0)
    metric = BettiNumbers(num_classes=3, threshold=0.0)
    metric.update(x[:5], y[:5])
    metric.update(x[5:], y[5:])
    betti = cubical_betti(x, 0.0).double()
    expected = torch.stack([betti[y == c].mean(0) for c in range(3)])
    assert torch.allclose(metric.compute(), expected)
    single = BettiNumbers(threshold=0.0)
    single.update(x)
    assert torch.allclose(single.compute(), betti.mean(0))


def test_topological_complexity_equals_omega_and_merges_like_ddp() -> None:
    x, y = _data(1, n=20)
    whole = TopologicalComplexity(num_classes=3)
    whole.update(x, y)
    assert whole.compute().item() == pytest.approx(omega(cubical_betti(x, 0.0), y).item(), rel=1e-12)
    # Two "ranks", each with half the data; merging states (sum reduction) equals the whole.
    rank0, rank1 = TopologicalComplexity(num_classes=3), TopologicalComplexity(num_classes=3)
    rank0.update(x[:7], y[:7])
    rank1.update(x[7:], y[7:])
    rank0.merge_state(rank1)
    assert rank0.compute().item() == pytest.approx(whole.compute().item(), rel=1e-12)


def test_decay_rate_both_kinds() -> None:
    layers = [_data(s, n=10) for s in range(4)]
    labels = layers[0][1]
    betti = torch.stack([cubical_betti(x * (4 - i), 0.5) for i, (x, _) in enumerate(layers)])  # (L, B, 3)
    curve = omega(betti, labels)
    for kind, fn in (("theta", theta), ("normalised", normalised_decay)):
        metric = DecayRate(num_layers=4, num_classes=3, kind=kind)
        metric.update(betti, labels)
        assert metric.compute().item() == pytest.approx(fn(curve).item(), abs=1e-12)
    per_layer = DecayRate(num_layers=4, num_classes=3, threshold=0.5)
    for i, (x, _) in enumerate(layers):
        per_layer.update(x * (4 - i), labels, layer=i)
    assert per_layer.compute().item() == pytest.approx(normalised_decay(curve).item(), abs=1e-12)


def test_plots_have_content() -> None:
    pytest.importorskip("matplotlib")
    metric = TopologicalComplexity()
    values = []
    for s in range(4):
        metric.reset()
        metric.update(_data(s)[0])
        values.append(metric.compute())
    fig, ax = metric.plot(values)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    assert (pixels < 250).any(axis=-1).mean() > 0.01  # something was drawn
    assert len(ax.get_lines()) >= 1


def test_empty_class_is_nan_and_errors() -> None:
    metric = BettiNumbers(num_classes=2)
    metric.update(torch.rand(3, 4, 4), torch.zeros(3, dtype=torch.long))
    assert math.isnan(metric.compute()[1, 0].item())
    with pytest.raises(ValueError, match="label 5 is out of range for num_classes=2"):
        metric.update(torch.rand(2, 4, 4), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="`num_classes` must be an integer >= 1"):
        BettiNumbers(num_classes=0)
    with pytest.raises(ValueError, match="`threshold`"):
        TopologicalComplexity(threshold=math.nan)
    with pytest.raises(ValueError, match="`kind` must be one of"):
        DecayRate(num_layers=3, kind="slope")
    with pytest.raises(ValueError, match="`num_layers` must be an integer >= 2"):
        DecayRate(num_layers=1)
