"""The point-cloud view against giotto-ph, and on shapes whose Betti numbers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gph import ripser_parallel

from lightning_topo.datasets.shapes import KNOWN_BETTI, circle, naitzat_d1, sphere, torus, two_circles
from lightning_topo.functional import h0_persistence, knn_hop_distances, rips_betti


def _giotto_h0(points: np.ndarray) -> np.ndarray:
    dgm = ripser_parallel(points, maxdim=0, n_threads=2)["dgms"][0]
    return np.sort(dgm[np.isfinite(dgm[:, 1]), 1])


@pytest.mark.parametrize(("n", "d"), [(2, 1), (30, 2), (200, 3), (500, 64)])
def test_h0_equals_giotto(n: int, d: int) -> None:
    rng = np.random.default_rng(n + d)
    points = rng.standard_normal((n, d))
    ours = h0_persistence(torch.from_numpy(points)).numpy()
    theirs = _giotto_h0(points)
    assert ours.shape == (n - 1,)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


def test_h0_with_duplicates_and_ties() -> None:
    grid = np.array([[i, j] for i in range(6) for j in range(5)], dtype=np.float64)  # all MST edges tie at 1
    points = np.concatenate([grid, grid[:4]])  # 4 duplicated points: zero deaths
    ours = h0_persistence(torch.from_numpy(points)).numpy()
    assert np.count_nonzero(ours == 0) == 4
    np.testing.assert_allclose(ours[ours > 0], _giotto_h0(points), rtol=1e-5)  # giotto drops zero-length bars


@pytest.mark.parametrize("dtype", [torch.float16, torch.int64, torch.float32])
def test_h0_other_dtypes(dtype: torch.dtype) -> None:
    points = torch.randint(0, 20, (40, 3)).to(dtype)
    ours = h0_persistence(points).numpy()
    theirs = _giotto_h0(points.double().numpy())
    np.testing.assert_allclose(ours[ours > 0], theirs, rtol=1e-5)


def _count(dgm: np.ndarray, scale: float) -> int:
    return int(np.sum((dgm[:, 0] <= scale) & (dgm[:, 1] > scale)))


@pytest.mark.parametrize("seed", range(6))
def test_rips_betti_equals_giotto_counts(seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((80, 3))
    for scale in (0.3, 0.7, 1.2):
        dgms = ripser_parallel(points, maxdim=2, n_threads=2)["dgms"]
        expected = [_count(dgms[dim], scale) for dim in range(3)]
        assert rips_betti(torch.from_numpy(points), scale, maxdim=2).tolist() == expected
    hops = knn_hop_distances(torch.from_numpy(points), k=6).numpy()
    dgms = ripser_parallel(hops, metric="precomputed", maxdim=1, n_threads=2)["dgms"]
    for scale in (1.5, 2.5):
        expected = [_count(dgms[dim], scale) for dim in range(2)]
        assert rips_betti(torch.from_numpy(points), scale, metric="knn_hops", k=6).tolist() == expected


def test_knn_hop_distances() -> None:
    line = torch.arange(8, dtype=torch.float64)[:, None]
    hops = knn_hop_distances(line, k=1, max_hops=3)
    assert hops[0].tolist() == [0, 1, 2, 3, 4, 4, 4, 4]  # beyond 3 hops: the far value 4
    assert torch.equal(hops, hops.T)
    # Two distant clusters: no path, so the far value.
    two = torch.cat([torch.zeros(5, 2), torch.full((5, 2), 100.0)]) + torch.arange(10.0)[:, None] * 0.01
    assert knn_hop_distances(two, k=2)[0, 9].item() == 11.0


@pytest.mark.parametrize("seed", range(3))
def test_known_shapes(seed: int) -> None:
    # Documented scales: circle 100 points (radius 1) at 0.5; two circles 200 points at 0.5;
    # sphere 300 points (radius 1) at 0.8; torus 1000 points (radii 2, 1) at 1.0.
    assert tuple(rips_betti(circle(100, seed=seed), 0.5).tolist()) == KNOWN_BETTI["circle"][0]
    assert tuple(rips_betti(two_circles(200, seed=seed), 0.5).tolist()) == KNOWN_BETTI["two_circles"][0]
    assert tuple(rips_betti(sphere(300, seed=seed), 0.8, maxdim=2).tolist()) == KNOWN_BETTI["sphere"][0]
    assert tuple(rips_betti(torus(1000, seed=seed), 1.0, maxdim=2).tolist()) == KNOWN_BETTI["torus"][0]


@pytest.mark.parametrize("seed", range(2))
def test_naitzat_d1_at_k14_scale_2_5(seed: int) -> None:
    points, labels = naitzat_d1(600, seed=seed)
    for cls in (0, 1):
        got = rips_betti(points[labels == cls], 2.5, metric="knn_hops", k=14)
        assert tuple(got.tolist()) == KNOWN_BETTI["d1"][cls]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"points": torch.zeros(1, 2), "metric": "knn_hops", "k": 1}, ValueError, "at least 2"),
        ({"points": torch.zeros(0, 2)}, ValueError, "at least 1"),
        ({"n_threads": 0}, ValueError, "`n_threads` must be >= 1, or -1"),
        ({"points": torch.zeros(5)}, ValueError, r"shape \(n, d\)"),
        ({"scale": -0.5}, ValueError, "`scale` must be a finite number >= 0, got -0.5"),
        ({"scale": math.nan}, ValueError, "`scale`"),
        ({"metric": "cosine"}, ValueError, "`metric` must be one of"),
        ({"metric": "knn_hops"}, ValueError, "`k` is required"),
        ({"metric": "knn_hops", "k": 10}, ValueError, r"`k` must be an integer in \[1, n - 1\]"),
        ({"maxdim": -1}, ValueError, "`maxdim`"),
        ({"points": np.zeros((3, 2))}, TypeError, "torch"),
    ],
)
def test_bad_input(kwargs: dict, error: type, match: str) -> None:
    args = {"points": torch.rand(6, 2), "scale": 1.0} | kwargs
    with pytest.raises(error, match=match):
        rips_betti(**args)


@pytest.mark.parametrize("metric", ["euclidean", "knn_hops"])
def test_scale_zero_joins_only_coincident_points(metric: str) -> None:
    """`rips_betti(points, 0)` was refused, so a sweep of scales could not start at 0. At 0 the complex joins
    coincident points only: 9 distinct points of 12 give b0 = 9 and no loop, as giotto-ph's diagrams count. Hop
    distances between two points are >= 1 even where they coincide, so there every point is its own component."""
    rng = np.random.default_rng(3)
    distinct = rng.standard_normal((9, 2))
    points = np.concatenate([distinct, distinct[:3]])  # three points twice
    kwargs = {"metric": metric, "k": 4} if metric == "knn_hops" else {}
    ours = rips_betti(torch.from_numpy(points), 0, maxdim=1, **kwargs).tolist()
    source = knn_hop_distances(torch.from_numpy(points), k=4).numpy() if metric == "knn_hops" else points
    dgms = ripser_parallel(source, metric="precomputed" if metric == "knn_hops" else "euclidean", maxdim=1)["dgms"]
    assert ours == [_count(dgms[0], 0.0), _count(dgms[1], 0.0)] == [12 if metric == "knn_hops" else 9, 0]


def test_non_finite_point_is_named() -> None:
    points = torch.rand(10, 3)
    points[7, 1] = math.inf
    with pytest.raises(ValueError, match="point index 7"):
        h0_persistence(points)


@pytest.mark.parametrize("scale", [0.5, 1.0, 2.5, 3.5])
def test_knn_hops_equal_an_independent_dense_pipeline(scale: float) -> None:
    """The sparse breadth-first search (no n x n matrix) against scikit-learn's k-NN graph, SciPy's all-pairs
    shortest paths and giotto-ph on the dense hop matrix."""
    from scipy.sparse.csgraph import shortest_path
    from sklearn.neighbors import kneighbors_graph

    from lightning_topo.functional.rips import knn_hop_matrix

    rng = np.random.default_rng(int(scale * 10))
    points = np.concatenate([rng.normal(size=(70, 3)), rng.normal(size=(50, 3)) + 6.0])
    graph = kneighbors_graph(points, 5, mode="connectivity")
    hops = shortest_path(graph, method="D", unweighted=True, directed=False)
    hops[~np.isfinite(hops)] = 1e6
    dgms = ripser_parallel(hops, metric="precomputed", maxdim=2, thresh=scale)["dgms"]
    expected = [int(((d[:, 0] <= scale) & (d[:, 1] > scale)).sum()) for d in dgms]
    assert rips_betti(torch.from_numpy(points), scale, maxdim=2, metric="knn_hops", k=5).tolist() == expected
    # The sparse hop matrix holds exactly the pairs within ceil(scale) hops, with their hop counts.
    depth = max(1, math.ceil(scale))
    sparse_hops = knn_hop_matrix(torch.from_numpy(points), 5, max_hops=depth).toarray()
    within = (hops <= depth) & (hops > 0)
    assert np.array_equal(sparse_hops > 0, within) and np.array_equal(sparse_hops[within], hops[within])


def test_point_cloud_view_at_defaults_says_something_on_d1() -> None:
    """Issue 20: `complex="rips"` at its defaults (samples_per_class and k "auto") gives a non-trivial answer on
    Naitzat's D-I through an MLP, and no "the k-NN graph says nothing" warning: not (1, 0) at every layer."""
    import warnings

    from torch.utils.data import TensorDataset

    from lightning_topo import analyse
    from lightning_topo.datasets import NaitzatDataModule
    from lightning_topo.models import mlp

    x, y = NaitzatDataModule(dataset="d1").full_data()
    torch.manual_seed(0)
    net = mlp(in_features=2, hidden=15, depth=3, num_classes=2).double()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = analyse(net, TensorDataset(x, y), complex="rips", progress=False)
    assert not [w for w in caught if "says nothing" in str(w.message)]
    assert report.betti.shape[1:] == (2, 2)  # (layers, classes, b0..b1)
    trivial = torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert not all(torch.equal(report.betti[i, c], trivial) for i in range(report.betti.shape[0]) for c in range(2))
    assert float(report.betti[0, 0, 0]) >= 2  # class a's nine disks are more than one component at the first layer
