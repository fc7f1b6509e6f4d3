"""The compiled H1 reduction (``functional._h1_reduction``) against GUDHI's ``CubicalComplex(vertices=v)`` and
cripser's ``computePH``: the finite H1 pairs with ``birth < death``, as multisets, exactly equal in float64, on volumes
of every kind (smooth, noise, ReLU-like plateaus, integer ties, constant, thin, size-1 axes, a ResNet activation);
the batch function's volume index and thread counts; input errors."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

numba = pytest.importorskip("numba")
gudhi = pytest.importorskip("gudhi")

from lightning_topo.functional._checks import MissingDependencyError, NonFiniteError  # noqa: E402
from lightning_topo.functional._h1_reduction import h1_pairs, h1_pairs_batch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _sorted(pairs: np.ndarray) -> np.ndarray:
    pairs = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def _gudhi_h1(volume: np.ndarray) -> np.ndarray:
    """GUDHI's finite H1 pairs with birth < death (``min_persistence=-1`` keeps every pair; we filter ourselves)."""
    complex_ = gudhi.CubicalComplex(vertices=volume)
    complex_.persistence(homology_coeff_field=2, min_persistence=-1)
    pairs = np.asarray(complex_.persistence_intervals_in_dimension(1), dtype=np.float64).reshape(-1, 2)
    pairs = pairs[np.isfinite(pairs[:, 1]) & (pairs[:, 0] < pairs[:, 1])]
    return _sorted(pairs)


def _assert_gudhi(volume: np.ndarray) -> None:
    got = h1_pairs(volume)
    assert got.dtype == np.float64 and got.ndim == 2 and got.shape[1] == 2
    assert np.all(got[:, 0] < got[:, 1])
    want = _gudhi_h1(volume)
    assert got.shape == want.shape, (volume.shape, got.shape, want.shape)
    np.testing.assert_array_equal(_sorted(got), want)


def _volume(rng: np.random.Generator, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    if kind == "smooth":
        return gaussian_filter(rng.standard_normal(shape), 1.5)
    if kind == "noise":
        return rng.standard_normal(shape)
    if kind == "relu":  # many exact zeros: one plateau at the minimum
        return np.maximum(gaussian_filter(rng.standard_normal(shape), 0.7) + rng.normal(0, 0.1), 0.0)
    if kind == "integer":  # ties everywhere
        return rng.integers(0, 4, shape).astype(np.float64)
    if kind == "constant":
        return np.full(shape, 2.5)
    raise AssertionError(kind)


KINDS = ("smooth", "noise", "relu", "integer", "constant")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(2, 2, 2), (3, 4, 5), (2, 9, 7), (8, 2, 6), (7, 6, 2), (9, 8, 10), (16, 20, 24)])
def test_equals_gudhi(kind: str, shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(zlib.crc32(repr((kind, shape)).encode()))
    _assert_gudhi(_volume(rng, kind, shape))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 1, 9), (1, 7, 1), (6, 1, 1), (1, 8, 9), (7, 1, 9), (8, 9, 1)])
def test_size_one_axes(kind: str, shape: tuple[int, int, int]) -> None:
    """With a size-1 axis the complex is a 2-D (or 1-D) box: H1 is the 2-D diagram (none in 1-D)."""
    rng = np.random.default_rng(zlib.crc32(repr((kind, shape, 1)).encode()))
    volume = _volume(rng, kind, shape)
    _assert_gudhi(volume)
    if sum(s > 1 for s in shape) == 2:
        _assert_gudhi(volume.reshape([s for s in shape if s > 1])[None])  # the same 2-D field along another axis
    else:
        assert len(h1_pairs(volume)) == 0


def test_random_small_volumes() -> None:
    """Many small volumes of random shape and kind: the corner cases of the order (ties, borders) show up here."""
    rng = np.random.default_rng(7)
    for _ in range(150):
        shape = tuple(int(s) for s in rng.integers(1, 7, 3))
        _assert_gudhi(_volume(rng, KINDS[int(rng.integers(len(KINDS)))], shape))


def _edge_order_deaths(volume: np.ndarray, order: np.ndarray) -> tuple[set[int], list[tuple[float, float]]]:
    """Reference for the clearing pass: every edge (slot ``3 * lower-index end + axis``) in the filtration order
    (rank of its later end, then of its earlier end), a union-find over them with the elder rule: the edges that
    join two sets, and the finite H0 pairs with birth < death."""
    flat = volume.reshape(-1)
    rank = np.empty(flat.size, dtype=np.int64)
    rank[order] = np.arange(flat.size)
    strides = (volume.shape[1] * volume.shape[2], volume.shape[2], 1)
    edges = []
    for a, (d, h, w) in enumerate(np.ndindex(*volume.shape)):
        for axis, (pos, stride) in enumerate(zip((d, h, w), strides, strict=True)):
            if pos + 1 < volume.shape[axis]:
                b = a + stride
                edges.append((max(rank[a], rank[b]), min(rank[a], rank[b]), 3 * a + axis, a, b))
    parent = list(range(flat.size))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    deaths, pairs = set(), []
    for top, _, slot, a, b in sorted(edges):
        ra, rb = find(a), find(b)
        if ra == rb:
            continue
        young, old = (ra, rb) if rank[ra] > rank[rb] else (rb, ra)
        parent[young] = old
        deaths.add(slot)
        if flat[young] < flat[order[top]]:
            pairs.append((float(flat[young]), float(flat[order[top]])))
    return deaths, sorted(pairs)


def test_clearing_pass_marks_the_h0_deaths_of_the_edge_order() -> None:
    """The clearing pass (``_h0_clearing``, which hooks most voxels without sorting their edges) marks exactly the
    edges a plain union-find over the edges in filtration order finds joining two sets, and gives its H0 pairs, for
    raster ties, the scattered plateau and ties in random order."""
    from lightning_topo.functional._h1_reduction import _h0_clearing, _scatter_plateau, _value_order

    rng = np.random.default_rng(11)
    for t in range(120):
        shape = tuple(int(s) for s in rng.integers(1, 7, 3))
        volume = np.ascontiguousarray(_volume(rng, KINDS[t % len(KINDS)], shape))
        flat = volume.reshape(-1)
        order = _value_order(flat)
        if t % 3 == 1:
            order = _scatter_plateau(flat, order, *shape)
        elif t % 3 == 2:  # any order of equal values is a filtration of the same function
            order = order[np.lexsort((rng.permutation(flat.size)[order], flat[order]))].astype(np.int32)
        rank = np.empty(flat.size, dtype=np.int32)
        rank[order] = np.arange(flat.size, dtype=np.int32)
        flags = np.zeros(flat.size, dtype=np.uint8)
        for i, (d, h, w) in enumerate(np.ndindex(*shape)):
            for axis, pos in enumerate((d, h, w)):
                flags[i] |= (pos > 0) << (2 * axis) | (pos + 1 < shape[axis]) << (2 * axis + 1)
        stride = np.array([shape[1] * shape[2], shape[2], 1], dtype=np.int64)
        state = np.zeros(3 * flat.size, dtype=np.uint8)
        births, deaths = _h0_clearing(order, rank, flags, stride, flat[order], state, True)
        want_deaths, want_pairs = _edge_order_deaths(volume, order)
        assert set(np.flatnonzero(state).tolist()) == want_deaths, (t, shape)
        assert sorted(zip(births.tolist(), deaths.tolist(), strict=True)) == want_pairs, (t, shape)


def _gudhi_h0(volume: np.ndarray) -> np.ndarray:
    complex_ = gudhi.CubicalComplex(vertices=volume)
    complex_.persistence(homology_coeff_field=2, min_persistence=-1)
    pairs = np.asarray(complex_.persistence_intervals_in_dimension(0), dtype=np.float64).reshape(-1, 2)
    return _sorted(pairs[np.isfinite(pairs[:, 1]) & (pairs[:, 0] < pairs[:, 1])])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(2, 2, 2), (5, 9, 7), (9, 8, 10), (13, 20, 17)])
def test_scattered_plateau_restart(kind: str, shape: tuple[int, int, int]) -> None:
    """Past its work budget the reduction starts again with the minimum's plateau in scattered 4x4x4 bricks
    (``_scatter_plateau``); a budget of 0 takes that path on every volume with a reduction. Ties reordered change
    no pair with birth < death: H1, and H0 from the clearing pass, equal GUDHI's either way."""
    from lightning_topo.functional._h1_reduction import _h1_kernel, _one, _scatter_plateau, _value_order

    rng = np.random.default_rng(zlib.crc32(repr((kind, shape, "scatter")).encode()))
    volume = np.ascontiguousarray(_volume(rng, kind, shape))
    flat = volume.reshape(-1)
    order = _value_order(flat)
    scattered = _scatter_plateau(flat, order, *shape)
    assert np.array_equal(np.sort(scattered), np.arange(flat.size))  # a permutation ...
    assert np.array_equal(flat[scattered], flat[order])  # ... by value still
    if kind in ("relu", "noise") and shape[0] > 9:  # these need column additions: budget 0 stops them
        assert _h1_kernel(flat, order, *shape, False, 0)[-1] is False
    want_h1, want_h0 = _gudhi_h1(volume), _gudhi_h0(volume)
    for budget in (0, -1):
        h1_births, h1_deaths, h0_births, h0_deaths = _one(volume, want_h0=True, budget=budget)
        np.testing.assert_array_equal(_sorted(np.stack([h1_births, h1_deaths], axis=1)), want_h1)
        np.testing.assert_array_equal(_sorted(np.stack([h0_births, h0_deaths], axis=1)), want_h0)


def test_known_loops() -> None:
    """Hand-made volumes whose H1 is known: a ring in a plane, and two nested rings dying at different values."""
    ring = np.full((3, 5, 5), 9.0)
    ring[1, 1:4, 1:4] = 1.0
    ring[1, 2, 2] = 4.0  # the hole of the ring: a loop born at 1, filled at 4
    np.testing.assert_array_equal(_sorted(h1_pairs(ring)), [[1.0, 4.0]])
    _assert_gudhi(ring)
    rings = np.stack([np.zeros((3, 3)), np.zeros((3, 3))])
    rings[:, 1, 1] = [2.0, 3.0]  # a tube around a core of two voxels: one loop, filled when the lower core voxel enters
    np.testing.assert_array_equal(_sorted(h1_pairs(rings)), [[0.0, 2.0]])
    _assert_gudhi(rings)


def _resnet_activation() -> np.ndarray:
    """The stem ReLU output (16 channels x 32 x 32, about half exact zeros) of ``tests/models.py``'s ResNet18 at width
    16 on a scikit-learn digit upsampled to 64 x 64, as ``benchmarks/bench_layers.py`` feeds it at full size."""
    import sys

    import torch
    from sklearn.datasets import load_digits

    sys.path.insert(0, str(REPO / "tests"))
    from models import resnet18

    torch.manual_seed(0)
    net = resnet18(width=16).eval()
    images = torch.tensor(load_digits().images[:1], dtype=torch.float32)[:, None] / 16.0
    x = torch.nn.functional.interpolate(images, size=(64, 64), mode="bilinear", align_corners=False)
    x = ((x - x.mean()) / x.std()).repeat(1, 3, 1, 1)
    out: dict[str, torch.Tensor] = {}
    hook = net.get_submodule("relu").register_forward_hook(lambda m, a, o: out.__setitem__("x", o))
    with torch.no_grad():
        net(x)
    hook.remove()
    return out["x"][0].double().numpy().copy()


def test_resnet_activation_and_cripser() -> None:
    volume = _resnet_activation()
    assert (volume == 0).mean() > 0.3  # a ReLU plateau is there
    _assert_gudhi(volume)
    cripser = pytest.importorskip("cripser")
    bars = cripser.computePH(volume, maxdim=2)
    want = bars[(bars[:, 0] == 1) & (bars[:, 1] < bars[:, 2])][:, 1:3]
    np.testing.assert_array_equal(_sorted(h1_pairs(volume)), _sorted(want))


def test_float32_input_and_strides() -> None:
    """Non-contiguous and float32 input is converted: the pairs are those of the float64 copy."""
    rng = np.random.default_rng(3)
    volume = rng.standard_normal((10, 12, 14)).astype(np.float32)
    view = volume.transpose(2, 0, 1)
    _assert_gudhi(np.ascontiguousarray(view, dtype=np.float64))
    np.testing.assert_array_equal(_sorted(h1_pairs(view)), _gudhi_h1(np.ascontiguousarray(view, dtype=np.float64)))


def test_batch_index_and_workers() -> None:
    rng = np.random.default_rng(11)
    volumes = np.stack([_volume(rng, kind, (6, 7, 8)) for kind in (*KINDS, "smooth", "relu", "noise")])
    pairs, index = h1_pairs_batch(volumes, workers=1)
    assert pairs.dtype == np.float64 and index.dtype == np.int64 and pairs.shape == (len(index), 2)
    assert np.all(np.diff(index) >= 0)
    for b, volume in enumerate(volumes):
        np.testing.assert_array_equal(_sorted(pairs[index == b]), _gudhi_h1(volume))
    assert not np.any(index == KINDS.index("constant"))
    pairs2, index2 = h1_pairs_batch(volumes, workers=2)
    np.testing.assert_array_equal(pairs2, pairs)
    np.testing.assert_array_equal(index2, index)
    default, default_index = h1_pairs_batch(volumes)
    np.testing.assert_array_equal(default, pairs)
    np.testing.assert_array_equal(default_index, index)


def test_batch_without_pairs() -> None:
    pairs, index = h1_pairs_batch(np.zeros((3, 2, 2, 2)), workers=2)
    assert pairs.shape == (0, 2) and pairs.dtype == np.float64
    assert index.shape == (0,) and index.dtype == np.int64


def test_errors_name_the_bad_input() -> None:
    with pytest.raises(TypeError, match="numpy"):
        h1_pairs([[[0.0]]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(D, H, W\).*\(4, 4\)"):
        h1_pairs(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"\(B, D, H, W\).*\(2, 0, 3, 3\)"):
        h1_pairs_batch(np.zeros((2, 0, 3, 3)))
    with pytest.raises(ValueError, match=r"`workers`.*got 0"):
        h1_pairs_batch(np.zeros((2, 3, 3, 3)), workers=0)
    bad = np.zeros((3, 2, 2, 2))
    bad[2, 1, 0, 1] = np.nan
    with pytest.raises(NonFiniteError, match="volume 2") as info:
        h1_pairs_batch(bad)
    assert info.value.index == 2


def test_missing_numba_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning_topo.functional import _h1_reduction

    monkeypatch.setattr(_h1_reduction, "_HAVE_NUMBA", False)
    with pytest.raises(MissingDependencyError, match=r'pip install "lightning-topo\[fast\]"'):
        h1_pairs(np.zeros((2, 2, 2)))
    assert issubclass(MissingDependencyError, ImportError)
