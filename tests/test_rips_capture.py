"""The point-cloud view's embeddings are the layer's own values (an audit of the Rips path, 2026-12-07).

Before: a float64 model's embeddings were rounded to float32 in the hook (other Betti numbers than `rips_betti`
of the layer's output; activations beyond 3.4e38 became inf and crashed the fit), maps smaller than `pool_size`
were pooled *up* (each value repeated, distances scaled), and a dead layer's (1, 0) passed for a simplification.
Expected values come from `rips_betti` on the layer's output computed directly, or from the same data at an
ordinary scale (the hop metric does not depend on the scale).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lightning_topo import TopologyConfig, analyse
from lightning_topo.capture.reduce import pooled_embedding
from lightning_topo.functional import rips_betti


def _quiet_analyse(net: nn.Module, data: TensorDataset, **fields: object):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return analyse(net, data, progress=False, **fields)


def test_a_float64_model_s_cloud_is_measured_in_float64() -> None:
    """30 distinct points per class, spread 1e-4 around 1000: float32 (spacing 6e-5 there) merged them."""
    generator = torch.Generator().manual_seed(0)
    points = 1000 + 1e-4 * torch.rand(60, 3, generator=generator, dtype=torch.float64)
    labels = torch.arange(60) % 2
    net = nn.Sequential(nn.Identity(), nn.Identity()).double()
    scale = 2e-5  # below the float32 spacing at 1000, about the points' nearest-neighbour distances
    report = _quiet_analyse(
        net, TensorDataset(points, labels), layers=["0", "1"], complex="rips", metric="euclidean", scale=scale,
        samples_per_class=30,
    )  # fmt: skip
    for c in (0, 1):
        expected = rips_betti(points[labels == c], scale, metric="euclidean", maxdim=1)
        assert torch.equal(report.betti[0, c].to(torch.int64), expected), c
    assert float(report.betti[0, :, 0].min()) > 8  # not the few float32 grid points they rounded to


def test_float64_activations_beyond_float32_range_are_measured() -> None:
    """A float64 layer computing x * 1e40 (finite) became inf in the float32 copy: the fit crashed with a
    NonFiniteError. The hop metric does not depend on the scale: the numbers are those of x itself."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(80, 4, generator=generator, dtype=torch.float64)
    data = TensorDataset(x, torch.arange(80) % 2)

    class Scale(nn.Module):
        def __init__(self, factor: float) -> None:
            super().__init__()
            self.factor = factor

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return t * self.factor

    fields = dict(layers=["1", "2"], complex="rips", k=4, samples_per_class=40)
    huge = _quiet_analyse(nn.Sequential(nn.Identity(), Scale(1e40), nn.Tanh()).double(), data, **fields)
    plain = _quiet_analyse(nn.Sequential(nn.Identity(), Scale(1.0), nn.Tanh()).double(), data, **fields)
    assert not huge.problems
    assert torch.equal(huge.betti[0], plain.betti[0])


def test_maps_smaller_than_pool_size_are_not_pooled_up() -> None:
    """A (C, 1, 1) map was pooled to (C, 4, 4): 16 copies of each value, distances x4, other Betti numbers."""
    generator = torch.Generator().manual_seed(0)
    small = torch.randn(5, 3, 2, 2, generator=generator)
    assert torch.equal(pooled_embedding(small, 4), small.reshape(5, -1))
    big = torch.randn(5, 3, 8, 8, generator=generator)
    assert torch.equal(pooled_embedding(big, 4), nn.functional.adaptive_avg_pool2d(big, 4).reshape(5, -1))
    wide = torch.randn(5, 3, 2, 8, generator=generator)  # pooled along the long axis only
    assert torch.equal(pooled_embedding(wide, 4), nn.functional.adaptive_avg_pool2d(wide, (2, 4)).reshape(5, -1))
    # The same circle as a (B, 2) layer and as a (B, 2, 1, 1) map: the same numbers
    angle = torch.linspace(0, 2 * torch.pi, 101)[:-1]
    circle = torch.stack([angle.cos(), angle.sin()], dim=1)
    data = TensorDataset(circle, torch.zeros(100, dtype=torch.long))
    net = nn.Sequential(nn.Identity(), nn.Unflatten(1, (2, 1, 1)))
    report = _quiet_analyse(
        net, data, layers=["0", "1"], complex="rips", metric="euclidean", scale=0.3, samples_per_class=100
    )
    assert report.betti[0, 0].tolist() == report.betti[1, 0].tolist() == [1.0, 1.0]


def test_integer_outputs_keep_their_values() -> None:
    values = torch.tensor([[2**24 + 1, 0], [2**24, 0]], dtype=torch.int64)
    embedding = pooled_embedding(values, 4)
    assert embedding.dtype == torch.float64 and embedding[0, 0] != embedding[1, 0]
    assert pooled_embedding(torch.ones(2, 3, dtype=torch.float16), 4).dtype == torch.float32


def test_a_dead_layer_is_named_in_the_point_cloud_view_too() -> None:
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(60, 4, generator=generator), torch.arange(60) % 2)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.ReLU())
    with torch.no_grad():
        net[2].bias.fill_(-100.0)  # every ReLU output 0: one point per class
    report = _quiet_analyse(net, data, layers=["0", "1", "3"], complex="rips", k=4, samples_per_class=30)
    said = [w for w in report.warnings if "the same output" in w]
    assert len(said) == 1 and "layer '3'" in said[0] and "by construction" in said[0]
    assert report.betti[2, :, 0].tolist() == [1.0, 1.0]  # the numbers stay what they are


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"metric": "euclidean", "k": 3}, r"`k=3` has no effect"),
        ({"scale": 0.5}, r"`scale=0.5` is below one hop"),
        ({"threshold": "median"}, r"`threshold='median'` has no effect"),
    ],
)
def test_point_cloud_settings_that_make_no_number_are_said(fields: dict, match: str) -> None:
    with pytest.warns(UserWarning, match=match):
        TopologyConfig(complex="rips", **fields)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TopologyConfig(complex="rips")
        TopologyConfig(complex="rips", metric="euclidean", scale=0.5)
        TopologyConfig(complex="rips", k=3, scale=1)


def test_token_outputs_of_a_float64_model_keep_float64() -> None:
    """Token layers (B, T, D) were averaged in float32 before `pooled_embedding`: finite 1e300 tokens became inf."""
    from lightning_topo.capture.tokens import TokenLayout, pool_tokens

    layout = TokenLayout("vision", grids=((2, 2),), extra_tokens=1)
    tokens = torch.full((2, 5, 3), 1e300, dtype=torch.float64)
    tokens[1] *= 2
    pooled = pool_tokens(tokens, layout)
    assert pooled is not None and pooled.dtype == torch.float64
    assert pooled[:, 0].tolist() == [1e300, 2e300]
    assert pool_tokens(tokens.float().clamp(max=1.0), layout).dtype == torch.float32
