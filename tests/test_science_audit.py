"""A science audit (helper-30) against the published definitions: the numbers held; these are the places where the
words or the hop rule did not."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_topo.functional import normalised_decay, rips_betti, theta

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
DESIGN_HOPS = 10  # ../shared/DESIGN.md §1b: "pairs > 10 hops apart set far away"


def test_theta_is_not_described_as_steepness() -> None:
    """The README said "lower = steeper decay"; a curve losing 90 % of its Omega scores above a flat one."""
    falling, flat = theta(torch.tensor([10.0, 10.0, 1.0, 1.0])), theta(torch.tensor([5.0, 5.0, 5.0, 5.0]))
    assert falling.item() > flat.item() == 0.0
    row = next(line for line in README.splitlines() if line.startswith("| `topology/theta`"))
    assert "steeper" not in row and "not a measure of steepness" in row
    assert "steeper" not in re.sub(r"\s+", " ", README)


def test_normalised_decay_is_about_one_only_for_a_peak_at_the_first_layer() -> None:
    assert normalised_decay(torch.tensor([10.0, 5.0, 0.0])).item() == pytest.approx(1.0, abs=0.01)
    later = normalised_decay(torch.tensor([1.0, 10.0, 0.0])).item()
    assert later < 0.2  # falls from its peak to zero, but the peak is not at the first layer
    text = re.sub(r"\s+", " ", README)
    assert "about 1 when Omega falls from a peak at the first layer to zero, less when the peak comes later" in text


def _design_hop_betti(points: np.ndarray, k: int, scale: float, max_hops: int) -> list[int]:
    """b0, b1 from SciPy shortest paths on the symmetrised k-NN graph, pairs beyond ``max_hops`` removed (far),
    and ripser on the result."""
    ripser = pytest.importorskip("ripser")
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import shortest_path
    from scipy.spatial.distance import cdist

    dist = cdist(points, points)
    kth = np.sort(dist, axis=1)[:, k]
    adjacent = (dist <= kth[:, None]) & ~np.eye(len(points), dtype=bool)
    adjacent |= adjacent.T
    hops = shortest_path(csr_matrix(adjacent.astype(float)), unweighted=True, directed=False)
    hops[hops > max_hops] = np.inf
    dgms = ripser.ripser(hops, distance_matrix=True, maxdim=1, thresh=scale)["dgms"]
    return [int(((d[:, 0] <= scale) & (d[:, 1] > scale)).sum()) for d in dgms]


@pytest.mark.parametrize(("scale", "max_hops"), [(2.5, 10), (10.5, 10), (11.5, 10), (11.5, 20)])
def test_pairs_beyond_max_hops_never_join(scale: float, max_hops: int) -> None:
    """DESIGN sets pairs more than 10 hops apart far away; at scale 11.5 a 32-point circle (k = 2) then keeps its
    loop (1, 1). The search went to floor(scale) hops, joined them and filled it: (1, 0)."""
    angles = 2 * math.pi * np.arange(32) / 32
    circle = np.c_[np.cos(angles), np.sin(angles)]
    expected = _design_hop_betti(circle, 2, scale, max_hops)
    got = rips_betti(torch.tensor(circle), scale, maxdim=1, metric="knn_hops", k=2, max_hops=max_hops)
    assert got.tolist() == expected
    if max_hops == DESIGN_HOPS:
        assert rips_betti(torch.tensor(circle), scale, maxdim=1, metric="knn_hops", k=2).tolist() == [1, 1]
    else:
        assert expected == [1, 0]  # beyond 10 hops joined: the loop fills
