"""The CUDA path gives exactly the CPU path's numbers (``pytest -m cuda``; skipped without a CUDA device).

Every CUDA test compares a computation on CUDA tensors with the same computation on the CPU (whose
numbers ``test_cubical.py`` and ``test_rips.py`` check against GUDHI, cripser and giotto-ph) on
random, ReLU-tied (many exact zeros, threshold 0) and degenerate inputs (all-true, all-false, one voxel,
size-1 axes, checkerboards, duplicate points), for every connected-component backend that runs on
CUDA. The callback (a short ``Trainer`` fit on the GPU) and ``analyse`` on a CUDA model must match a CPU
run on the same weights.

The backends that also run on the CPU are tested for exactness here too, on small cases, without
CUDA: the ``torch`` hooking rounds (also with several rounds per convergence check, as on a GPU) and
the ``cupy`` backend's stacking and counting (with CuPy's labeller swapped for scipy's).
"""

from __future__ import annotations

import importlib
import math
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, TypeVar

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from models import resnet18
from scipy import ndimage
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_topo import TopologyCallback, analyse
from lightning_topo.functional import betti_curves, cubical_betti, h0_persistence, rips_betti, sublevel_thresholds
from lightning_topo.functional.components import count_components

HAS_CUDA = torch.cuda.is_available()
F = TypeVar("F", bound=Callable[..., Any])


def cuda_test(func: F) -> F:
    """Mark a test ``cuda`` and skip it cleanly without a CUDA device."""
    return pytest.mark.cuda(pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")(func))


def _components_module() -> ModuleType:
    """The module that defines ``count_components`` (wherever the package moves it)."""
    return importlib.import_module(count_components.__module__)


def _has_cupy() -> bool:
    try:
        import cupy
        import cupyx.scipy.ndimage  # noqa: F401

        return bool(cupy.cuda.is_available())
    except Exception:
        return False


CUDA_BACKENDS = ("auto", "torch", "cupy", "cuda_uf")


def _skip_unless_runs(backend: str) -> None:
    if backend in ("cupy", "cuda_uf") and not _has_cupy():
        pytest.skip("CuPy is not installed (or sees no CUDA device)")


# --------------------------------------------------------------------------------------------
# Inputs: random, ReLU-tied and degenerate volumes, masks and point clouds
# --------------------------------------------------------------------------------------------
def _random_volume(rng: np.random.Generator) -> np.ndarray:
    """A random 1-, 2- or 3-D volume: Gaussian, ReLU (exact zeros), few integer values, constant or smooth."""
    ndim = int(rng.integers(1, 4))
    side = {1: 60, 2: 24, 3: 12}[ndim]
    shape = tuple(int(rng.integers(1, side + 1)) for _ in range(ndim))
    kind = int(rng.integers(5))
    vol = rng.standard_normal(shape)
    if kind == 1:
        vol = np.maximum(vol, 0.0)
    elif kind == 2:
        vol = rng.integers(0, 3, size=shape).astype(np.float64)
    elif kind == 3:
        vol = np.full(shape, float(rng.integers(-1, 2)))
    elif kind == 4:
        vol = np.maximum(ndimage.gaussian_filter(vol, 1.0), 0.0)
    return vol


def _checkerboard(shape: tuple[int, ...], period: int = 1) -> np.ndarray:
    grids = np.indices(shape)
    return ((grids // period).sum(axis=0) % 2).astype(np.float64)


def _degenerate_volumes() -> list[np.ndarray]:
    """All-true/all-false (via the thresholds), one voxel, size-1 axes, checkerboards, cavities, rings."""
    shell = np.zeros((5, 5, 5))
    shell[2, 2, 2] = 1.0
    nested = np.zeros((9, 9, 9))
    nested[1:8, 1:8, 1:8] = 1.0
    nested[2:7, 2:7, 2:7] = 0.0
    nested[4, 4, 4] = 1.0  # two cavities' worth of shells: b2 = 2 at threshold 0
    ring = np.ones((5, 5))
    ring[1:4, 1:4] = 0.0
    ring[2, 2] = 1.0
    return [
        np.array([0.0]),
        np.zeros((1, 1)),
        np.ones((1, 1, 1)),
        np.zeros((1, 7, 1)),
        np.ones((5, 1, 6)),
        np.zeros((1, 1, 9)),
        np.zeros((3, 4, 1)),
        np.zeros((4, 5, 6)),  # constant: all true at 0, all false below
        _checkerboard((8, 8)),
        _checkerboard((6, 6, 6)),
        _checkerboard((7, 5, 4)),
        _checkerboard((8, 8, 8), period=2),
        _checkerboard((1, 9, 9)),
        _checkerboard((12,)),
        shell,
        nested,
        ring,
        np.maximum(_checkerboard((6, 6, 6)) - 0.5, 0.0),  # ReLU-tied checkerboard
    ]


def _thresholds(rng: np.random.Generator, vol: np.ndarray) -> list[float]:
    values = vol.ravel()
    return [
        float(values.min()) - 1.0,  # empty set
        0.0,  # exact ReLU ties
        float(rng.choice(values)),  # a tie with a voxel value
        float(np.median(values)),
        float(values.mean()),
        float(values.max()),  # everything
        math.inf,
        -math.inf,
    ]


def _volume_cases(seed: int, n_random: int) -> Iterator[tuple[np.ndarray, list[float]]]:
    rng = np.random.default_rng(seed)
    for vol in _degenerate_volumes():
        yield vol, _thresholds(rng, vol)
    for _ in range(n_random):
        vol = _random_volume(rng)
        yield vol, _thresholds(rng, vol)


def _random_masks(rng: np.random.Generator, n: int) -> Iterator[Tensor]:
    """Batches of random masks, plus all-true, all-false, one voxel and checkerboard ones."""
    yield torch.ones(2, 4, 5, 6, dtype=torch.bool)
    yield torch.zeros(2, 4, 5, 6, dtype=torch.bool)
    yield torch.ones(1, 1, 1, 1, dtype=torch.bool)
    yield torch.zeros(1, 1, 1, 1, dtype=torch.bool)
    yield torch.from_numpy(_checkerboard((3, 6, 6, 6)) > 0)
    yield torch.from_numpy(_checkerboard((2, 1, 9, 9)) > 0)
    for _ in range(n):
        shape = tuple(int(rng.integers(1, 9)) for _ in range(3))
        batch = int(rng.integers(1, 6))
        yield torch.from_numpy(rng.random((batch, *shape)) < rng.uniform(0.05, 0.95))


def _cloud(rng: np.random.Generator) -> np.ndarray:
    """A point cloud: Gaussian, ReLU (duplicates), integer grid (ties), identical, two points, collinear, circle."""
    kind = int(rng.integers(7))
    n, d = int(rng.integers(2, 60)), int(rng.integers(1, 12))
    if kind == 0:
        return rng.standard_normal((n, d))
    if kind == 1:
        return np.maximum(rng.standard_normal((n, d)), 0.0)
    if kind == 2:
        return rng.integers(0, 3, size=(n, d)).astype(np.float64)
    if kind == 3:
        return np.zeros((n, d))
    if kind == 4:
        return rng.standard_normal((2, d))
    if kind == 5:
        return np.outer(rng.standard_normal(n), rng.standard_normal(d))
    angles = rng.uniform(0, 2 * math.pi, n)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _scale_between_distances(rng: np.random.Generator, points: np.ndarray) -> float:
    """A Rips scale half-way between two consecutive distinct pairwise distances (never a tie)."""
    dist = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    values = np.unique(dist)
    if len(values) < 2:
        return 1.0
    i = int(rng.integers(0, len(values) - 1))
    return float((values[i] + values[i + 1]) / 2)


# --------------------------------------------------------------------------------------------
# CPU: the backends that run on any device, exact on small cases
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("check_every", [1, 3])
def test_torch_backend_equals_cc3d_on_cpu(monkeypatch: pytest.MonkeyPatch, check_every: int) -> None:
    # check_every=3 runs several hooking rounds per convergence check on the CPU, as a GPU does.
    monkeypatch.setitem(_components_module().TORCH_CHECK_EVERY, "cpu", check_every)
    rng = np.random.default_rng(1)
    for masks in _random_masks(rng, 120):
        for connectivity in (6, 26):
            for bounded in (False, True):
                want = count_components(masks, connectivity, bounded_only=bounded, backend="cc3d")
                got = count_components(masks, connectivity, bounded_only=bounded, backend="torch")
                assert got.tolist() == want.tolist(), (tuple(masks.shape), connectivity, bounded)


def test_torch_backend_cubical_betti_equals_cpu_default() -> None:
    for vol, thresholds in _volume_cases(seed=2, n_random=60):
        batch = torch.from_numpy(np.stack([vol] * len(thresholds)))
        t = torch.tensor(thresholds, dtype=torch.float64)
        assert cubical_betti(batch, t, backend="torch").tolist() == cubical_betti(batch, t).tolist(), vol.shape


def _scipy_labeller(permute: bool = False) -> Callable[[Tensor, int, Tensor], int]:
    """A stand-in for CuPy's labeller on CPU tensors: scipy's (raster-order) labels, optionally shuffled."""

    def label(stack: Tensor, connectivity: int, out: Tensor) -> int:
        structure = ndimage.generate_binary_structure(3, 1 if connectivity == 6 else 3)
        labels, n = ndimage.label(stack.numpy(), structure=structure)
        if permute and n > 1:
            relabel = np.concatenate([[0], np.random.default_rng(0).permutation(n) + 1])
            labels = relabel[labels]
        out.copy_(torch.from_numpy(labels.astype(np.int32)))
        return int(n)

    return label


@pytest.mark.parametrize("max_stack", [2**30, 700])
def test_cupy_stacking_and_counting_on_cpu(monkeypatch: pytest.MonkeyPatch, max_stack: int) -> None:
    # The cupy backend's tensor-op stacking, frame and running-max count, with scipy labelling on the CPU;
    # max_stack=700 splits batches into several labelling calls.
    module = _components_module()
    monkeypatch.setattr(module, "_label_cupy", _scipy_labeller())
    monkeypatch.setattr(module, "_MAX_STACK_VOXELS", max_stack)
    rng = np.random.default_rng(3)
    for masks in _random_masks(rng, 80):
        for connectivity in (6, 26):
            for bounded in (False, True):
                want = count_components(masks, connectivity, bounded_only=bounded, backend="cc3d")
                got = count_components(masks, connectivity, bounded_only=bounded, backend="cupy")
                assert got.tolist() == want.tolist(), (tuple(masks.shape), connectivity, bounded)


def test_lean_merge_tables_join_one_neighbour_per_group() -> None:
    # `uf_merge_table`'s tables (CPU side): for every pattern of a voxel's 13 earlier neighbours, one chosen per group
    # of set ones joined through set ones (26: adjacent; 6: sharing a face), none in the left neighbour's group
    # (joined at initialisation); with 6-connectivity only the voxel's face neighbours, above or behind.
    from lightning_topo.functional._cuda_unionfind import _merge_tables

    earlier = [(z, y, x) for z in (-1, 0) for y in (-1, 0, 1) for x in (-1, 0, 1) if (z, y, x) < (0, 0, 0)]
    left, up, back = earlier.index((0, 0, -1)), earlier.index((0, -1, 0)), earlier.index((-1, 0, 0))
    tables = _merge_tables()
    for connectivity in (6, 26):

        def touching(a: int, b: int, connectivity: int = connectivity) -> bool:
            steps = [abs(p - q) for p, q in zip(earlier[a], earlier[b], strict=True)]
            return max(steps) == 1 and (connectivity == 26 or sum(steps) == 1)

        for code in range(1 << 13):
            present = {k for k in range(13) if code >> k & 1}
            chosen = {k for k in range(13) if int(tables[connectivity][code]) >> k & 1}
            assert chosen <= present
            left_over = set(present)
            while left_over:  # each group, grown from one of its members
                group, frontier = set(), [left_over.pop()]
                while frontier:
                    a = frontier.pop()
                    group.add(a)
                    frontier += [b for b in left_over if touching(a, b)]
                    left_over -= set(frontier)
                wanted = left not in group and (connectivity == 26 or bool(group & {up, back}))
                assert len(chosen & group) == int(wanted), (connectivity, code, group, chosen)
                assert connectivity == 26 or chosen & group <= {up, back}


def test_cupy_counting_refuses_labels_out_of_raster_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_components_module(), "_label_cupy", _scipy_labeller(permute=True))
    masks = torch.from_numpy(np.random.default_rng(4).random((6, 5, 6, 7)) < 0.3)
    with pytest.raises(RuntimeError, match="raster order"):
        count_components(masks, 6, backend="cupy")


def test_cupy_backend_needs_cuda_tensors() -> None:
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        count_components(torch.ones(1, 2, 2, 2, dtype=torch.bool), 6, backend="cupy")
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        cubical_betti(torch.rand(2, 3, 3), 0.5, backend="cupy")


def test_auto_backend_by_device() -> None:
    module = _components_module()
    expected_cpu = "numba" if module.CPU_AUTO == "numba" and module._numba_available() else "cc3d"
    assert module.resolve_backend("auto", torch.device("cpu")) == expected_cpu
    assert module.resolve_backend("auto", torch.device("meta")) == "torch"
    assert module.CUDA_AUTO_ORDER[-1] == "torch"  # always available: the last resort on CUDA
    with pytest.raises(ValueError, match="`backend` must be one of"):
        module.resolve_backend("gpu", torch.device("cpu"))


# --------------------------------------------------------------------------------------------
# CUDA: every function equals its CPU result
# --------------------------------------------------------------------------------------------
@cuda_test
def test_auto_backend_on_cuda_is_the_first_available() -> None:
    module = _components_module()
    expected = next(n for n in module.CUDA_AUTO_ORDER if n not in ("cupy", "cuda_uf") or _has_cupy())
    assert module.resolve_backend("auto", torch.device("cuda")) == expected


@cuda_test
def test_auto_falls_back_when_the_union_find_kernel_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import lightning_topo.functional._cuda_unionfind as kernel

    module = _components_module()

    def broken(masks: Tensor, connectivity: int, bounded_only: bool) -> Tensor:
        raise RuntimeError("simulated compile failure")

    monkeypatch.setattr(kernel, "count_components_unionfind", broken)
    monkeypatch.setattr(module, "CUDA_AUTO_ORDER", ("cuda_uf", "torch"))
    monkeypatch.setattr(module, "_cupy_available", lambda: True)
    monkeypatch.setattr(module, "_BROKEN_AUTO", set())
    masks = torch.from_numpy(np.random.default_rng(7).random((3, 5, 6, 7)) < 0.4)
    want = count_components(masks, 26, bounded_only=True, backend="cc3d")
    with pytest.warns(RuntimeWarning, match="union-find kernel failed"):
        got = count_components(masks.cuda(), 26, bounded_only=True)
    assert got.cpu().tolist() == want.tolist()
    assert module.resolve_backend("auto", torch.device("cuda")) == "torch"


@cuda_test
@pytest.mark.parametrize("backend", CUDA_BACKENDS)
def test_count_components_cuda_equals_cpu(backend: str) -> None:
    _skip_unless_runs(backend)
    rng = np.random.default_rng(10)
    for masks in _random_masks(rng, 200):
        for connectivity in (6, 26):
            for bounded in (False, True):
                want = count_components(masks, connectivity, bounded_only=bounded, backend="cc3d")
                got = count_components(masks.cuda(), connectivity, bounded_only=bounded, backend=backend)
                assert got.device.type == "cuda"
                assert got.cpu().tolist() == want.tolist(), (tuple(masks.shape), connectivity, bounded)


@cuda_test
def test_lean_union_find_kernels_equal_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_cuda_unionfind.LEAN_KERNELS`` (off until a GPU run measures it): the counts of cc3d and the CPU's Euler
    characteristic, on the random masks, on smooth masks whose runs along the rows cross warps of 32 voxels (rows of
    31-100), and through ``cubical_betti`` on layer-sized batches."""
    _skip_unless_runs("cuda_uf")
    from lightning_topo.functional import _cuda_unionfind
    from lightning_topo.functional.cubical import euler_characteristic

    monkeypatch.setattr(_cuda_unionfind, "LEAN_KERNELS", True)
    rng = np.random.default_rng(11)
    cases = list(_random_masks(rng, 100))
    for width in (31, 32, 33, 64, 65, 100):
        field = ndimage.gaussian_filter(rng.standard_normal((3, 6, 9, width)), (0, 1, 1.5, 3))
        cases += [torch.from_numpy(field > q) for q in np.quantile(field, (0.1, 0.5, 0.9))]
    for masks in cases:
        assert euler_characteristic(masks.cuda()).cpu().tolist() == euler_characteristic(masks).tolist()
        for connectivity in (6, 26):
            for bounded in (False, True):
                want = count_components(masks, connectivity, bounded_only=bounded, backend="cc3d")
                got = count_components(masks.cuda(), connectivity, bounded_only=bounded, backend="cuda_uf")
                assert got.cpu().tolist() == want.tolist(), (tuple(masks.shape), connectivity, bounded)
    gen = torch.Generator().manual_seed(1)
    for shape, batch in (((64, 56, 56), 4), ((64, 112, 112), 2), ((512, 7, 7), 16)):
        noise = torch.randn(batch, *shape, generator=gen)
        vols = torch.relu(nn.functional.avg_pool2d(noise, 3, stride=1, padding=1))
        thresholds = sublevel_thresholds(vols, "mean")
        want = cubical_betti(vols, thresholds)
        assert cubical_betti(vols.cuda(), thresholds.cuda(), backend="cuda_uf").cpu().tolist() == want.tolist()


@cuda_test
@pytest.mark.parametrize("backend", CUDA_BACKENDS)
def test_cubical_betti_cuda_equals_cpu(backend: str) -> None:
    # 18 degenerate + 500 random volumes, 8 thresholds each (empty, 0, a tie, median, mean, max, ±inf).
    _skip_unless_runs(backend)
    n = 0
    for vol, thresholds in _volume_cases(seed=20, n_random=500):
        batch = torch.from_numpy(np.stack([vol] * len(thresholds)))
        t = torch.tensor(thresholds, dtype=torch.float64)
        want = cubical_betti(batch, t)
        got = cubical_betti(batch.cuda(), t.cuda(), backend=backend)
        assert got.device.type == "cuda"
        assert got.cpu().tolist() == want.tolist(), f"shape {vol.shape}"
        n += 1
    assert n >= 500


@cuda_test
@pytest.mark.parametrize("backend", CUDA_BACKENDS)
def test_cubical_betti_cuda_equals_cpu_on_layer_sized_batches(backend: str) -> None:
    # Whole batches in one call (the stacking must not leak components between volumes), at the
    # sizes of real conv layers, with per-volume "mean" thresholds and threshold 0 (ReLU ties).
    _skip_unless_runs(backend)
    gen = torch.Generator().manual_seed(0)
    for shape, batch in (((64, 56, 56), 6), ((256, 14, 14), 16), ((16, 20, 24), 64), ((512, 7, 7), 16)):
        noise = torch.randn(batch, *shape, generator=gen, dtype=torch.float64)
        vols = torch.relu(nn.functional.avg_pool2d(noise, 3, stride=1, padding=1)).float()
        for thr in (vols.reshape(batch, -1).mean(dim=1, dtype=torch.float64), torch.zeros(batch, dtype=torch.float64)):
            want = cubical_betti(vols, thr)
            got = cubical_betti(vols.cuda(), thr.cuda(), backend=backend)
            assert got.cpu().tolist() == want.tolist(), shape


@cuda_test
def test_cupy_backend_splits_large_batches_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    _skip_unless_runs("cupy")
    monkeypatch.setattr(_components_module(), "_MAX_STACK_VOXELS", 5000)
    masks = torch.from_numpy(np.random.default_rng(5).random((40, 6, 7, 8)) < 0.4)
    for connectivity, bounded in ((6, False), (26, True)):
        want = count_components(masks, connectivity, bounded_only=bounded, backend="cc3d")
        got = count_components(masks.cuda(), connectivity, bounded_only=bounded, backend="cupy")
        assert got.cpu().tolist() == want.tolist()


@cuda_test
def test_auto_falls_back_to_torch_when_cupy_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _components_module()

    def broken(stack: Tensor, connectivity: int, out: Tensor) -> int:
        raise RuntimeError("simulated CuPy failure")

    monkeypatch.setattr(module, "_label_cupy", broken)
    monkeypatch.setattr(module, "CUDA_AUTO_ORDER", ("cupy", "torch"))
    monkeypatch.setattr(module, "_cupy_available", lambda: True)
    monkeypatch.setattr(module, "_BROKEN_AUTO", set())
    monkeypatch.setattr(module, "CUDA_TORCH_BELOW_PIXELS", 0)  # these small volumes would go to torch anyway
    masks = torch.from_numpy(np.random.default_rng(6).random((3, 5, 6, 7)) < 0.4)
    want = count_components(masks, 6, backend="cc3d")
    with pytest.warns(RuntimeWarning, match="CuPy backend failed"):
        got = count_components(masks.cuda(), 6)
    assert got.cpu().tolist() == want.tolist()
    assert module.resolve_backend("auto", torch.device("cuda")) == "torch"
    with pytest.raises(RuntimeError, match="simulated"):  # an explicit backend="cupy" is never replaced
        count_components(masks.cuda(), 6, backend="cupy")


@cuda_test
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.int32, torch.uint8])
def test_cubical_betti_cuda_equals_cpu_for_dtypes(dtype: torch.dtype) -> None:
    rng = np.random.default_rng(7)
    values = torch.from_numpy(rng.integers(0, 4, size=(8, 6, 7, 5)).astype(np.float64)).to(dtype)
    for t in (0.0, 1.0, 1.5, 2.0):
        assert cubical_betti(values.cuda(), t).cpu().tolist() == cubical_betti(values, t).tolist()


@cuda_test
@pytest.mark.parametrize("method", ["direct", "forest"])
def test_betti_curves_cuda_equals_cpu(method: str) -> None:
    n = 0
    for vol, thresholds in _volume_cases(seed=30, n_random=500):
        v = torch.from_numpy(vol)[None]
        want = betti_curves(v, thresholds, method=method)
        got = betti_curves(v.cuda(), thresholds, method=method)
        assert got.device.type == "cuda"
        assert got.cpu().tolist() == want.tolist(), f"shape {vol.shape}"
        n += 1
    assert n >= 500


@cuda_test
def test_h0_persistence_cuda_equals_cpu() -> None:
    rng = np.random.default_rng(40)
    for _ in range(500):
        points = torch.from_numpy(_cloud(rng))
        want = h0_persistence(points)
        got = h0_persistence(points.cuda())
        assert got.device.type == "cuda" and got.shape == want.shape
        # The MST's edge weights are unique as a multiset; only the last bits of a distance may differ.
        torch.testing.assert_close(got.cpu(), want, rtol=1e-12, atol=1e-12)


@cuda_test
def test_persistence_metric_moved_to_cuda_keeps_float64_sums() -> None:
    """`.to("cuda", torch.bfloat16)` moves the float64 sums to the device and keeps their dtype (the CPU test holds
    the values; here the device move of the excluded states)."""
    from lightning_topo.metrics import PersistenceSummaries

    volumes = torch.relu(torch.randn(6, 2, 5, 5, generator=torch.Generator().manual_seed(0)))
    cpu = PersistenceSummaries(summaries=["total_persistence"], dims=(0,))
    gpu = PersistenceSummaries(summaries=["total_persistence"], dims=(0,)).to("cuda", torch.bfloat16)
    assert gpu.summary_sum.device.type == "cuda" and gpu.summary_sum.dtype == torch.float64
    cpu.update(volumes)
    gpu.update(volumes.cuda())
    expected = float(cpu.compute()["total_persistence_0"])  # the same pairs, summed maybe in another order
    assert float(gpu.compute()["total_persistence_0"]) == pytest.approx(expected, rel=1e-12)


@cuda_test
def test_cubical_persistence_torch_backend_on_cuda_equals_the_cpu_kernels() -> None:
    """``backend="torch"`` contracts H0 and the top dimension on the GPU: the same diagrams (multisets per volume
    and dimension) as the compiled CPU kernels, which the CPU tests hold to GUDHI's, on every kind of volume."""
    pytest.importorskip("numba")
    from lightning_topo.functional import cubical_persistence

    g = torch.Generator().manual_seed(41)
    noise = torch.randn(4, 6, 20, 20, generator=g)
    smooth = torch.nn.functional.avg_pool3d(torch.randn(3, 1, 12, 30, 30, generator=g), 5, 1)[:, 0]
    for volumes in (
        noise,
        torch.relu(noise),
        smooth,
        torch.relu(smooth),
        torch.randint(0, 4, (3, 5, 9, 9), generator=g),
        torch.full((2, 3, 4, 5), 2.0),
        torch.relu(torch.randn(5, 17, 19, generator=g)),  # 2-D maps: H1 is the top dimension
        torch.randn(4, 33, generator=g),  # vectors: H0 only
    ):
        want = cubical_persistence(volumes, (0, 1, 2) if volumes.ndim < 4 else (0, 2))
        got = cubical_persistence(volumes.cuda(), want.computed_dims, backend="torch")
        assert got.device.type == "cuda"
        for d in (want, got):
            assert bool((d.index[1:] >= d.index[:-1]).all())
        for i in range(volumes.shape[0]):
            for dim in want.computed_dims:
                a = want.diagram(volume=i, dim=dim).numpy()
                b = got.diagram(volume=i, dim=dim).cpu().numpy()
                assert np.array_equal(a[np.lexsort(a.T[::-1])], b[np.lexsort(b.T[::-1])]), (volumes.shape, i, dim)
        assert torch.equal(got.value_min.cpu(), want.value_min) and torch.equal(got.value_max.cpu(), want.value_max)


@cuda_test
def test_rips_betti_cuda_equals_cpu_euclidean() -> None:
    rng = np.random.default_rng(50)
    for _ in range(500):
        cloud = _cloud(rng)
        points = torch.from_numpy(cloud)
        scale = _scale_between_distances(rng, cloud)
        maxdim = 2 if len(cloud) <= 25 else 1
        want = rips_betti(points, scale, maxdim=maxdim)
        got = rips_betti(points.cuda(), scale, maxdim=maxdim)
        assert got.device.type == "cuda"
        assert got.cpu().tolist() == want.tolist(), (cloud.shape, scale)


@cuda_test
def test_rips_betti_cuda_equals_cpu_knn_hops() -> None:
    # Gaussian clouds: no two distances tie, so the k-NN graph is unique.
    rng = np.random.default_rng(60)
    for _ in range(150):
        n = int(rng.integers(5, 80))
        points = torch.from_numpy(rng.standard_normal((n, int(rng.integers(2, 9)))))
        k = int(rng.integers(1, min(10, n - 1) + 1))
        scale = float(rng.choice([1.0, 1.5, 2.5, 3.5]))
        want = rips_betti(points, scale, metric="knn_hops", k=k)
        got = rips_betti(points.cuda(), scale, metric="knn_hops", k=k)
        assert got.cpu().tolist() == want.tolist(), (n, k, scale)


@cuda_test
@pytest.mark.xfail(
    strict=False,
    reason="torch.topk breaks ties between equal distances in a device-dependent order, so a k-NN graph whose "
    "k-th nearest distance ties may differ between CPU and CUDA (recorded, not a CUDA-path bug)",
)
def test_rips_betti_knn_hops_with_tied_distances() -> None:
    # Distinct points of an integer grid: many neighbours at exactly the same distance.
    rng = np.random.default_rng(70)
    for _ in range(60):
        grid = np.unique(rng.integers(0, 5, size=(int(rng.integers(8, 40)), 2)), axis=0).astype(np.float64)
        points = torch.from_numpy(grid)
        k = int(rng.integers(2, min(6, len(grid) - 1) + 1))
        want = rips_betti(points, 2.5, metric="knn_hops", k=k)
        assert rips_betti(points.cuda(), 2.5, metric="knn_hops", k=k).cpu().tolist() == want.tolist()


# --------------------------------------------------------------------------------------------
# CUDA: the callback and analyse on a CUDA model equal a CPU run on the same weights
# --------------------------------------------------------------------------------------------
class _Classifier(LightningModule):
    """A LightningModule around a torchvision-layout ResNet18 (float64, so CPU and GPU agree to ~1e-15)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = resnet18(width=8).double()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


def _images(n: int, seed: int) -> TensorDataset:
    gen = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 3, 32, 32, generator=gen, dtype=torch.float64), torch.arange(n) % 4)


def _trainer(accelerator: str, *callbacks: TopologyCallback) -> Trainer:
    return Trainer(
        accelerator=accelerator,
        devices=1,
        max_epochs=1,
        callbacks=list(callbacks),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


@cuda_test
def test_callback_on_gpu_equals_cpu_run_on_same_weights() -> None:
    torch.manual_seed(0)
    module = _Classifier()
    train, val = DataLoader(_images(64, 1), batch_size=16), DataLoader(_images(48, 2), batch_size=16)
    on_gpu = TopologyCallback(samples_per_class=10, max_samples=40, charts=False)
    devices: set[str] = set()  # where the layers' outputs lived in eval mode (the callback's pass)

    def record(layer: nn.Module, args: Any, output: Tensor) -> None:
        if not layer.training:
            devices.add(output.device.type)

    handle = module.net.conv1.register_forward_hook(record)
    _trainer("gpu", on_gpu).fit(module, train, val)
    handle.remove()
    assert devices == {"cuda"} and on_gpu.last_result is not None

    same = _Classifier()
    same.load_state_dict({k: v.cpu() for k, v in module.state_dict().items()})
    on_cpu = TopologyCallback(samples_per_class=10, max_samples=40, charts=False)
    _trainer("cpu", on_cpu).validate(same, val)
    assert on_cpu.last_result is not None

    gpu, cpu = on_gpu.last_result, on_cpu.last_result
    assert [layer.name for layer in gpu.layers] == [layer.name for layer in cpu.layers]
    assert len(gpu.layers) == 11
    for a, b in zip(gpu.layers, cpu.layers, strict=True):
        assert a.problem is None and b.problem is None
        torch.testing.assert_close(a.betti, b.betti, atol=1e-6, rtol=0)
        assert a.per_input is not None and b.per_input is not None
        assert a.per_input.tolist() == b.per_input.tolist(), a.name
    gpu_metrics, cpu_metrics = on_gpu.metrics_of(gpu), on_cpu.metrics_of(cpu)
    assert gpu_metrics.keys() == cpu_metrics.keys()
    for key, value in gpu_metrics.items():
        other = cpu_metrics[key]
        assert math.isclose(value, other, abs_tol=1e-6) or (math.isnan(value) and math.isnan(other)), key


@cuda_test
@pytest.mark.parametrize("complex_", ["cubical", "rips"])
def test_analyse_on_cuda_model_equals_cpu(complex_: str) -> None:
    torch.manual_seed(1)
    model = resnet18(width=8).double().eval()
    data = _images(48, 3)
    kwargs: dict[str, Any] = {"complex": complex_, "samples_per_class": 10, "max_samples": 40, "progress": False}
    on_cpu = analyse(model, data, device="cpu", **kwargs)
    on_gpu = analyse(model.cuda(), data, **kwargs)  # default device: the model's
    assert next(model.parameters()).device.type == "cuda"  # analyse puts the model back where it was
    assert on_gpu.layers == on_cpu.layers and len(on_gpu.layers) == 11
    torch.testing.assert_close(on_gpu.betti, on_cpu.betti, atol=1e-6, rtol=0, equal_nan=True)
    torch.testing.assert_close(on_gpu.omega, on_cpu.omega, atol=1e-6, rtol=0, equal_nan=True)
    assert math.isclose(on_gpu.theta, on_cpu.theta, abs_tol=1e-6)
    assert math.isclose(on_gpu.decay_rate, on_cpu.decay_rate, abs_tol=1e-6)
    if complex_ == "cubical":
        assert on_gpu.per_input is not None and on_cpu.per_input is not None
        assert on_gpu.per_input.tolist() == on_cpu.per_input.tolist()


@cuda_test
def test_betti_numbers_are_computed_on_the_gpu_without_copying_activations(monkeypatch: pytest.MonkeyPatch) -> None:
    # Spy on every CUDA -> CPU transfer made from Python while analyse runs on a CUDA model: only small
    # results (per-input Betti numbers, per-class sums) may come back, never a layer's activations.
    torch.manual_seed(2)
    model = resnet18(width=8).double().cuda().eval()
    data = _images(40, 4)
    seen: list[tuple[str, torch.device]] = []
    smallest = [math.inf]

    def record(module: nn.Module, args: Any, output: Tensor) -> None:
        seen.append((type(module).__name__, output.device))
        if output.shape[0] > 1:  # not the one-input probe that finds the layers' execution order
            smallest[0] = min(smallest[0], output.numel())

    handles = [model.conv1.register_forward_hook(record), model.layer4[1].register_forward_hook(record)]
    moved: list[int] = []
    original_cpu, original_to, original_tolist = torch.Tensor.cpu, torch.Tensor.to, torch.Tensor.tolist

    def spy_cpu(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        if self.is_cuda:
            moved.append(self.numel())
        return original_cpu(self, *args, **kwargs)

    def spy_to(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        out = original_to(self, *args, **kwargs)
        if self.is_cuda and not out.is_cuda:
            moved.append(self.numel())
        return out

    def spy_tolist(self: Tensor) -> Any:
        if self.is_cuda:
            moved.append(self.numel())
        return original_tolist(self)

    monkeypatch.setattr(torch.Tensor, "cpu", spy_cpu)
    monkeypatch.setattr(torch.Tensor, "to", spy_to)
    monkeypatch.setattr(torch.Tensor, "tolist", spy_tolist)
    try:
        report = analyse(model, data, samples_per_class=10, max_samples=40, batch_size=40, progress=False)
    finally:
        monkeypatch.undo()
        for handle in handles:
            handle.remove()
    assert seen and all(device.type == "cuda" for _, device in seen)
    assert report.per_input is not None and not torch.isnan(report.per_input).any()
    # The smallest watched activation batch (layer4.1: 40 x 64 x 1 x 1) is larger than anything moved.
    assert moved, "the per-input Betti numbers come back to the CPU: the spies must have seen that"
    assert max(moved) < smallest[0], (max(moved), smallest[0])


@cuda_test
@pytest.mark.parametrize("complex_", ["cubical", "rips"])
def test_reused_module_and_inplace_relu_on_cuda_equal_cpu(complex_: str) -> None:
    """Issue 19: a module called twice (the tutorial CNN's `pool`) and in-place ReLUs on the buffered accelerator
    path: one layer per call, nothing overwritten, the CPU's numbers."""
    from models import TutorialCNN

    class Inplace(TutorialCNN):
        def __init__(self) -> None:
            super().__init__()
            self.act = nn.ReLU(inplace=True)

        def forward(self, x: Tensor) -> Tensor:
            x = self.pool(self.act(self.conv1(x)))
            x = self.pool(self.act(self.conv2(x)))
            return self.fc3(self.act(self.fc2(self.act(self.fc1(x.flatten(1))))))

    torch.manual_seed(0)
    net = Inplace().double().eval()  # float64: the same k-NN graph on both devices
    data = TensorDataset(torch.randn(60, 3, 32, 32, dtype=torch.float64), torch.arange(60) % 3)
    layers = ["conv1", "pool", "conv2", "fc1", "fc2"]
    on_cpu = analyse(net, data, layers=layers, complex=complex_, k=5, progress=False)
    on_gpu = analyse(net.cuda(), data, layers=layers, complex=complex_, k=5, progress=False)
    assert on_gpu.layers == on_cpu.layers == ["conv1", "pool", "conv2", "pool#2", "fc1", "fc2"]
    assert not on_gpu.problems
    torch.testing.assert_close(on_gpu.betti, on_cpu.betti, atol=1e-9, rtol=0)


def test_cuda_uf_backend_needs_cuda_tensors() -> None:
    with pytest.raises(ValueError, match="cuda_uf"):
        count_components(torch.ones(1, 2, 2, 2, dtype=torch.bool), 6, backend="cuda_uf")


@cuda_test
@pytest.mark.parametrize("overlap", [True, False])
def test_reducing_on_the_cpu_a_model_on_the_gpu_waits_for_the_copy(overlap: bool) -> None:
    # device="cpu" with the model on the GPU: each output is copied to the host inside the hook. A non-blocking copy
    # lands in pinned memory later, and the CPU kernel would read it unfinished; the copy must be awaited.
    from lightning_topo.capture import capture_layers
    from lightning_topo.config import TopologyConfig

    net = nn.Sequential(nn.ReLU(), nn.Conv2d(64, 4, 1))  # the watched ReLU is exact on both devices
    x = torch.randn(512, 64, 32, 32, generator=torch.Generator().manual_seed(0))
    cfg = TopologyConfig(device="cpu", batch_size=256, overlap=overlap)
    on_cpu = capture_layers(net, x, ["0"], cfg)
    from_gpu = capture_layers(net.cuda(), x, ["0"], cfg)
    assert from_gpu.values["0"].device.type == "cpu"
    assert torch.equal(from_gpu.values["0"], on_cpu.values["0"])


@cuda_test
@pytest.mark.parametrize("budget", [2**30, 300_000, 1])
def test_cuda_overlap_on_a_side_stream_equals_the_synchronous_path(
    monkeypatch: pytest.MonkeyPatch, budget: int
) -> None:
    # `capture.reduce.CUDA_OVERLAP`: each flushed buffer is reduced by the background thread on a side stream. The
    # values must be those computed on the capturing stream, bit for bit: with the watched convolutions overwritten
    # by in-place ReLUs, persistence on, and with the bound on waiting bytes large (every buffer waits), just above
    # one buffer (131 or 262 kB here: the hook waits for the oldest) or 1 (each buffer computed in its hook).
    from lightning_topo.capture import capture_layers
    from lightning_topo.capture import reduce as reduce_module
    from lightning_topo.config import TopologyConfig

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True)
    ).cuda()
    x = torch.randn(96, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    cfg = TopologyConfig(batch_size=16, persistence=("total_persistence", "persistent_betti"))
    names = ["0", "2", "3"]
    monkeypatch.setattr(reduce_module, "ACCELERATOR_BUFFER_BYTES", 16 * 8 * 16 * 16 * 4 * 2)  # 2 batches a buffer
    synchronous = capture_layers(net, x, names, cfg)
    monkeypatch.setattr(reduce_module, "CUDA_OVERLAP", True)
    monkeypatch.setattr(reduce_module, "CUDA_OVERLAP_BYTES", budget)
    threads: set[str] = set()
    original = reduce_module._Reducer._reduce

    def spy(self: Any, volumes: Tensor, thresholds: Any) -> Any:
        threads.add(threading.current_thread().name)
        return original(self, volumes, thresholds)

    monkeypatch.setattr(reduce_module._Reducer, "_reduce", spy)
    overlapped = capture_layers(net, x, names, cfg)
    assert any(name.startswith("lightning-topo-reduce") for name in threads) is (budget > 1)
    assert synchronous.problems == overlapped.problems == {}
    for name in names:
        a, b = synchronous.values[name], overlapped.values[name]
        assert a.device.type == b.device.type == "cuda" and torch.equal(a, b), name
        assert torch.equal(synchronous.persistence[name], overlapped.persistence[name]), name
        da, db = synchronous.diagrams[name], overlapped.diagrams[name]
        assert torch.equal(da.pairs, db.pairs) and torch.equal(da.index, db.index), name
    # ... and they are the convolution's numbers, not those of the ReLU that overwrote it in place.
    with torch.no_grad():
        conv = net[0](x.cuda())
    assert torch.equal(overlapped.values["0"], cubical_betti(conv, sublevel_thresholds(conv, "mean")))


@cuda_test
def test_cuda_overlap_callback_logs_the_numbers_of_the_synchronous_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two callbacks on one GPU fit: one reduces on the side stream while Lightning validates, one inside the hooks.
    from lightning_topo.capture import reduce as reduce_module

    monkeypatch.setattr(reduce_module, "CUDA_OVERLAP", True)
    torch.manual_seed(0)
    module = _Classifier()
    train, val = DataLoader(_images(64, 1), batch_size=16), DataLoader(_images(48, 2), batch_size=16)
    # The layer lists differ only in order (the callback orders them by the forward pass), so the state keys differ.
    layers = ["net.conv1", "net.layer1.0", "net.layer2.0", "net.layer4.1"]
    overlapped = TopologyCallback(layers=layers, samples_per_class=10, max_samples=40, charts=False)
    synchronous = TopologyCallback(
        layers=layers[::-1], samples_per_class=10, max_samples=40, charts=False, overlap=False, prefix="sync"
    )
    _trainer("gpu", overlapped, synchronous).fit(module, train, val)
    assert len(overlapped.history) == len(synchronous.history) >= 1
    assert overlapped.history == synchronous.history
    for a, b in zip(overlapped.last_result.layers, synchronous.last_result.layers, strict=True):
        assert a.name == b.name and torch.equal(a.per_input, b.per_input)
