"""A researcher's trial of the point-cloud view (Naitzat et al.), each finding against an independent engine.

The k-NN hop metric with tied distances, float64 embeddings in the metric, thread counts handed to giotto-ph,
embeddings that require grad, NumPy integers as arguments, class lists, and a one-point cloud.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gph import ripser_parallel

from lightning_topo.config import ConfigError, TopologyConfig
from lightning_topo.datasets.shapes import circle
from lightning_topo.functional import h0_persistence, knn_hop_distances, rips_betti
from lightning_topo.functional.rips import knn_graph
from lightning_topo.metrics import LayerwiseTopology


def _tie_inclusive_hops(points: np.ndarray, k: int) -> np.ndarray:
    """Hop distances on the symmetrised k-NN graph where every point at the k-th distance is a neighbour (SciPy:
    dense distances, the k-th smallest per row, unweighted shortest paths); inf between components."""
    from scipy.sparse.csgraph import shortest_path
    from scipy.spatial.distance import cdist

    dist = cdist(points, points)
    np.fill_diagonal(dist, np.inf)
    kth = np.sort(dist, axis=1)[:, k - 1 : k]
    adjacency = dist <= kth
    adjacency |= adjacency.T
    return shortest_path(adjacency.astype(float), method="D", unweighted=True, directed=False)


def _giotto_counts(hops: np.ndarray, scale: float, maxdim: int) -> list[int]:
    hops = np.where(np.isfinite(hops), hops, 1e6)
    dgms = ripser_parallel(hops, metric="precomputed", maxdim=maxdim, thresh=scale)["dgms"]
    return [int(((d[:, 0] <= scale) & (d[:, 1] > scale)).sum()) for d in dgms]


def _grid_with_hole() -> np.ndarray:
    """128 points of an integer grid with a square hole: every distance ties with many others."""
    xs, ys = np.meshgrid(np.arange(12), np.arange(12))
    grid = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    hole = (np.abs(grid[:, 0] - 5.5) < 2) & (np.abs(grid[:, 1] - 5.5) < 2)
    return grid[~hole]


@pytest.mark.parametrize(("k", "scale"), [(1, 1.5), (2, 2.5), (3, 2.0), (4, 1.0)])
def test_knn_hops_with_ties_do_not_depend_on_the_order_of_the_points(k: int, scale: float) -> None:
    """Before, ties at the k-th distance were broken by `torch.topk`'s order: on this grid b0 ranged over 1..21
    (k=1) and b1 over 1..12 (k=2) across orderings of the same points. Now every ordering gives giotto-ph's
    numbers on the tie-inclusive graph."""
    grid = _grid_with_hole()
    expected = _giotto_counts(_tie_inclusive_hops(grid, k), scale, 1)
    rng = np.random.default_rng(k)
    for _ in range(6):
        order = rng.permutation(len(grid))
        points = torch.from_numpy(grid[order])
        assert rips_betti(points, scale, maxdim=1, metric="knn_hops", k=k).tolist() == expected
    # Equally spaced points on a line: every point's two nearest neighbours tie at k = 1.
    line = torch.arange(8.0)[:, None]
    for order in (torch.arange(8), torch.tensor([3, 1, 4, 0, 5, 2, 7, 6])):
        assert rips_betti(line[order], 1.5, maxdim=0, metric="knn_hops", k=1).tolist() == [1]


def test_knn_graph_joins_every_tied_neighbour_and_only_those() -> None:
    points = torch.tensor([[0.0], [1.0], [2.0], [10.0], [10.0]])
    graph = knn_graph(points, k=1).toarray()
    # 1's nearest neighbours 0 and 2 tie: both; the duplicate points at 10 are each other's only neighbour.
    assert graph.astype(int).tolist() == [
        [0, 1, 0, 0, 0],
        [1, 0, 1, 0, 0],
        [0, 1, 0, 0, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 1, 0],
    ]
    assert knn_hop_distances(points, k=1, max_hops=4).tolist()[0] == [0.0, 1.0, 2.0, 5.0, 5.0]  # apart: 4 + 1


def test_point_cloud_metric_keeps_float64_embeddings() -> None:
    """A float64 circle of radius 1e-3 around 1e4: its float32 copy collapsed (b0 = 8, b1 = 0); GUDHI on the
    float64 cloud says (1, 1), and so do `rips_betti` and now the metric the callback and `analyse` use."""
    gudhi = pytest.importorskip("gudhi")
    cloud = circle(60).to(torch.float64) * 1e-3 + 1e4
    scale = 5e-4
    tree = gudhi.RipsComplex(points=cloud.numpy(), max_edge_length=2 * scale).create_simplex_tree(max_dimension=2)
    tree.compute_persistence()
    expected = [sum(1 for b, d in tree.persistence_intervals_in_dimension(k) if b <= scale < d) for k in (0, 1)]
    assert expected == [1, 1]
    metric = LayerwiseTopology(["l"], [0], TopologyConfig(complex="rips", metric="euclidean", scale=scale))
    metric.update("l", cloud, torch.zeros(60, dtype=torch.long))
    assert metric.compute().layers[0].betti.tolist() == [[float(b) for b in expected]]


@pytest.mark.parametrize("bad", [-2, 0, 1.5, None, "a"])
def test_bad_thread_counts_are_refused_before_giotto(bad: object) -> None:
    """`n_threads=-2` crashed the process inside giotto-ph (segmentation fault); 1.5 and None gave its bare
    TypeError."""
    with pytest.raises(ValueError, match="`n_threads` must be"):
        rips_betti(torch.rand(30, 2), 0.5, n_threads=bad)  # type: ignore[arg-type]


def test_thread_count_default_follows_torch() -> None:
    points = torch.rand(40, 2, generator=torch.Generator().manual_seed(0))
    dgms = ripser_parallel(points.double().numpy(), maxdim=1, n_threads=1)["dgms"]
    expected = [int(((d[:, 0] <= 0.3) & (d[:, 1] > 0.3)).sum()) for d in dgms]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert rips_betti(points, 0.3).tolist() == expected  # -1: torch's count, here 1
    finally:
        torch.set_num_threads(before)
    assert rips_betti(points, 0.3, n_threads=2).tolist() == expected


def test_embeddings_that_require_grad() -> None:
    points = torch.rand(50, 2, generator=torch.Generator().manual_seed(1))
    expected = rips_betti(points, 0.3).tolist()
    assert rips_betti(points.clone().requires_grad_(), 0.3).tolist() == expected
    assert rips_betti(points.clone().requires_grad_(), 0.3, maxdim=0).tolist() == expected[:1]


def test_numpy_integers_and_tensor_scales_are_numbers() -> None:
    points = torch.rand(30, 2, generator=torch.Generator().manual_seed(2))
    expected = rips_betti(points, 2.5, maxdim=1, metric="knn_hops", k=3).tolist()
    assert rips_betti(points, 2.5, maxdim=np.int64(1), metric="knn_hops", k=np.int64(3)).tolist() == expected
    assert rips_betti(points, 2.5, maxdim=1, metric="knn_hops", k=torch.tensor(3)).tolist() == expected
    config = TopologyConfig(complex="rips", k=np.int64(10), maxdim=np.int64(1), scale=torch.tensor(2.5))
    assert (config.k, config.maxdim, config.scale) == (10, 1, 2.5)
    assert all(type(v) is t for v, t in ((config.k, int), (config.maxdim, int), (config.scale, float)))
    # A huge integer scale compares as its float: every pair joins.
    assert rips_betti(points, 10**30).tolist() == [1, 0]
    with pytest.raises(ConfigError, match="`k` must be"):
        TopologyConfig(complex="rips", k=np.float64(3.0))


@pytest.mark.parametrize(
    ("classes", "match"),
    [(["a", "b"], "integer class labels"), ([0.5, 1.5], "integer class labels"), ([0, 0, 1], "class 0 twice")],
)
def test_class_lists_are_checked(classes: list, match: str) -> None:
    """String classes gave int()'s bare message; 0.5 became class 0 silently; a repeated class was counted twice
    (Omega 2.667 for 3.0)."""
    with pytest.raises(ValueError, match=match):
        LayerwiseTopology(["l"], classes)


def test_float_labels_that_are_not_whole_are_refused() -> None:
    metric = LayerwiseTopology(["l"], [0, 1])
    with pytest.raises(ValueError, match=r"label 0\.5 in `labels` is not a whole number"):
        metric.update("l", torch.ones(2, 3, dtype=torch.long), torch.tensor([0.5, 1.0]))
    metric.update("l", torch.ones(2, 3, dtype=torch.long), torch.tensor([0.0, 1.0]))  # whole floats are classes
    assert metric.compute().layers[0].betti.tolist() == [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]


def test_one_point_cloud() -> None:
    """One point: b0 = 1 (giotto-ph agrees); the k-NN metric still needs a neighbour."""
    point = torch.zeros(1, 3)
    dgms = ripser_parallel(point.numpy(), maxdim=1)["dgms"]
    assert rips_betti(point, 0.5).tolist() == [len(dgms[0]), len(dgms[1])] == [1, 0]
    assert h0_persistence(point).shape == (0,)
    with pytest.raises(ValueError, match="at least 2"):
        rips_betti(point, 0.5, metric="knn_hops", k=1)
