"""`cubical_persistence`: exactly GUDHI's diagrams (and cripser's) on every kind of volume, consistent with
`cubical_betti` at every threshold, dims selection, batching over threads, and its errors."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("numba")
gudhi = pytest.importorskip("gudhi")

from lightning_topo.functional import (  # noqa: E402
    MissingDependencyError,
    NonFiniteError,
    PersistenceDiagrams,
    cubical_betti,
    cubical_persistence,
)

HAS_H1 = importlib.util.find_spec("lightning_topo.functional._h1_reduction") is not None
needs_h1 = pytest.mark.skipif(not HAS_H1, reason="H1 of 3-D volumes (_h1_reduction) is not in this branch")


def _sorted(pairs: np.ndarray) -> np.ndarray:
    pairs = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def gudhi_diagrams(volume: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per dimension 0..2: GUDHI's finite pairs with birth < death (sorted) and its essential births (sorted).

    ``min_persistence=-1`` asks for every pair (the default 0 drops those with birth == death); we drop them here,
    as ``cubical_persistence`` does.
    """
    cc = gudhi.CubicalComplex(vertices=np.asarray(volume, dtype=np.float64))
    cc.compute_persistence(homology_coeff_field=2, min_persistence=-1)
    out = {}
    for dim in range(3):
        bars = np.asarray(cc.persistence_intervals_in_dimension(dim), dtype=np.float64).reshape(-1, 2)
        finite = bars[np.isfinite(bars[:, 1]) & (bars[:, 0] < bars[:, 1])]
        out[dim] = (_sorted(finite), np.sort(bars[~np.isfinite(bars[:, 1]), 0]))
    return out


def assert_matches_gudhi(
    volumes: torch.Tensor, dims: tuple[int, ...] = (0, 1, 2), label: str = "", backend: str = "auto"
) -> None:
    diagrams = cubical_persistence(volumes, dims, backend=backend)
    assert diagrams.computed_dims == tuple(sorted(dims))
    assert diagrams.num_volumes == volumes.shape[0]
    host = volumes.to(torch.float64).numpy()
    for i in range(volumes.shape[0]):
        want = gudhi_diagrams(host[i])
        for dim in dims:
            got = diagrams.diagram(volume=i, dim=dim).numpy()
            finite, essential = want[dim]
            assert np.array_equal(_sorted(got[np.isfinite(got[:, 1])]), finite), (label, i, dim)
            assert np.array_equal(np.sort(got[~np.isfinite(got[:, 1]), 0]), essential), (label, i, dim)
        assert diagrams.value_min[i].item() == host[i].min()
        assert diagrams.value_max[i].item() == host[i].max()


def gaussians(batch: int, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Smooth fields: sums of a few random Gaussian bumps (float32)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij")
    out = np.zeros((batch, *shape))
    for b in range(batch):
        for _ in range(6):
            centre = [rng.uniform(0, s) for s in shape]
            dist = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True))
            out[b] += rng.normal() * np.exp(-dist / (2 * rng.uniform(0.8, 2.5) ** 2))
    return torch.from_numpy(out).float()


def kinds(shape: tuple[int, ...], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(3, *shape, generator=g)
    return {
        "gaussians": gaussians(2, shape, seed),
        "noise": noise,
        "relu": torch.relu(noise),  # about half exact zeros: one plateau at the minimum
        "integer ties": torch.randint(-2, 3, (3, *shape), generator=g),
        "constant": torch.full((2, *shape), 1.5),
        "float16": noise.half(),
        "uint8": torch.randint(0, 4, (2, *shape), generator=g, dtype=torch.uint8),
        # float64 with 53 random bits: 56 or more key bits vary, so the sort's last digit reaches past them (a
        # packed sort once counted bits there that its words did not hold: a wrong order, then a segfault in H1)
        "float64 uniform": torch.rand(2, *shape, generator=g, dtype=torch.float64),
        "float64 normal": torch.randn(2, *shape, generator=g, dtype=torch.float64) * 1e-3,
    }


# (1, 1, 1), (2, 1, 1), (1, 2, 1): no padding or padding on one axis only (the dual pass's outside node is padding
# voxel 0 only when some axis is padded).
SHAPES = [(5, 6, 7), (3, 4, 4), (2, 5, 5), (1, 7, 8), (6, 1, 5), (4, 5, 1), (1, 1, 9), (1, 1, 1), (2, 1, 1), (1, 2, 1)]


def test_value_sort_is_a_stable_argsort_for_every_key_width() -> None:
    """The radix sort behind every diagram against ``np.argsort(kind="stable")``: integer keys of few and many bits,
    keys sharing high bits, and float64 keys (where the last pass's digit reaches past the varying bits)."""
    from lightning_topo.functional._persistence_kernels import _sort_rest, sort_key

    rng = np.random.default_rng(1)
    for trial in range(400):
        m = int(rng.integers(2, 3000))
        kind = trial % 4
        if kind == 0:
            keys = rng.integers(0, int(rng.integers(2, 2**40)), m).astype(np.uint64)
        elif kind == 1:
            spread = 2 ** int(rng.integers(1, 30))
            keys = np.uint64(rng.integers(0, 2**62)) + rng.integers(0, spread, m).astype(np.uint64)
        elif kind == 2:
            keys = rng.integers(0, 2**62, m).astype(np.uint64) << np.uint64(rng.integers(0, 2))
        else:
            values = rng.random(m) * 10.0 ** int(rng.integers(-5, 5))
            keys = np.array([sort_key(v, b) for v, b in zip(values, values.view(np.uint64), strict=True)], np.uint64)
        idx = np.arange(m, dtype=np.int32)
        done = _sort_rest(keys.copy(), idx, np.empty(m, np.uint64), np.empty(m, np.int32), m)
        assert np.array_equal(idx, np.argsort(keys, kind="stable")), (trial, kind, m)
        assert np.array_equal(done[:m], np.sort(keys)), (trial, kind, m)


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_gudhi_h0_and_top_dimension(shape: tuple[int, ...], backend: str) -> None:
    spatial = sum(s >= 2 for s in shape)
    dims = (0, 2) if spatial == 3 and not HAS_H1 else (0, 1, 2)
    for name, volumes in kinds(shape, seed=sum(shape)).items():
        assert_matches_gudhi(volumes, dims, label=name, backend=backend)


@needs_h1
@pytest.mark.parametrize("shape", [(5, 6, 7), (3, 4, 4), (2, 5, 5), (2, 2, 2)])
def test_matches_gudhi_all_dimensions_in_3d(shape: tuple[int, ...]) -> None:
    for name, volumes in kinds(shape, seed=7 * sum(shape)).items():
        assert_matches_gudhi(volumes, label=name)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_2d_and_1d_batches(backend: str) -> None:
    g = torch.Generator().manual_seed(3)
    for volumes in (
        torch.relu(torch.randn(4, 9, 11, generator=g)),  # (B, H, W): 2-D maps, H1 by duality
        gaussians(2, (12, 10), 4),
        torch.randint(0, 3, (3, 8, 8), generator=g),
        torch.randn(5, 17, generator=g),  # (B, D): vectors, H0 only
        torch.randint(0, 3, (4, 12), generator=g).double(),
        torch.randn(3, 1, generator=g),  # one voxel each
    ):
        assert_matches_gudhi(volumes, backend=backend)
        d = cubical_persistence(volumes, backend=backend)
        if volumes.ndim == 2:
            assert not bool((d.dims > 0).any())
        assert not bool((d.dims == 2).any())
        # one essential class per volume, born at its minimum
        essential = d.select(dim=0).pairs[:, 1] == float("inf")
        assert essential.sum().item() == volumes.shape[0]


def test_matches_cripser() -> None:
    cripser = pytest.importorskip("cripser")
    volume = torch.relu(gaussians(1, (8, 9, 10), 11) + 0.3 * torch.randn(1, 8, 9, 10))
    dims = (0, 1, 2) if HAS_H1 else (0, 2)
    d = cubical_persistence(volume, dims)
    bars = cripser.computePH(volume[0].double().numpy(), maxdim=2)
    for dim in dims:
        rows = bars[bars[:, 0] == dim][:, 1:3]
        rows = rows[rows[:, 0] < rows[:, 1]]
        essential = rows[:, 1] >= np.finfo(np.float64).max  # cripser's sentinel death
        got = d.diagram(dim=dim).numpy()
        assert np.array_equal(_sorted(got[np.isfinite(got[:, 1])]), _sorted(rows[~essential])), dim
        assert np.array_equal(np.sort(got[~np.isfinite(got[:, 1]), 0]), np.sort(rows[essential, 0])), dim


@pytest.mark.parametrize("shape", [(6, 7, 8), (1, 9, 10), (12,)])
def test_pairs_alive_at_t_are_the_betti_numbers(shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(5)
    volumes = torch.cat([torch.relu(torch.randn(2, *shape, generator=g)), torch.randint(0, 4, (2, *shape)).float()])
    spatial = sum(s >= 2 for s in shape)
    dims = (0, 2) if spatial == 3 and not HAS_H1 else (0, 1, 2)
    d = cubical_persistence(volumes, dims)
    values = torch.unique(volumes).tolist()
    thresholds = sorted({-1.0, 0.0, 0.25, 1.0, 2.5, 10.0, *values[:: max(1, len(values) // 6)], values[-1]})
    for t in thresholds:
        betti = cubical_betti(volumes, t)
        for dim in dims:
            alive = (d.pairs[:, 0] <= t) & (t < d.pairs[:, 1]) & (d.dims == dim)
            counts = torch.bincount(d.index[alive], minlength=volumes.shape[0])
            assert counts.tolist() == betti[:, dim].tolist(), (t, dim)


def test_dims_selection() -> None:
    volumes = torch.relu(torch.randn(3, 5, 6, 7, generator=torch.Generator().manual_seed(2)))
    only = cubical_persistence(volumes, dims=(0, 2))
    assert only.computed_dims == (0, 2)
    assert not bool((only.dims == 1).any())
    with pytest.raises(ValueError, match="was not computed"):
        only.diagram(dim=1)
    h2 = cubical_persistence(volumes, dims=2)
    assert h2.computed_dims == (2,)
    assert torch.equal(h2.pairs, only.select(dim=2).pairs)
    assert torch.equal(cubical_persistence(volumes, dims=(2, 0, 0)).pairs, only.pairs)
    # ordered by volume, then dimension
    keys = only.index * 3 + only.dims
    assert bool((keys[1:] >= keys[:-1]).all())


def test_threads_and_devices_give_the_same_diagrams() -> None:
    volumes = torch.relu(torch.randn(9, 4, 6, 6, generator=torch.Generator().manual_seed(8)))
    one = cubical_persistence(volumes, (0, 2), workers=1)
    for workers in (2, 3):
        many = cubical_persistence(volumes, (0, 2), workers=workers)
        assert torch.equal(one.pairs, many.pairs) and torch.equal(one.index, many.index)
        assert torch.equal(one.dims, many.dims)
    # Two threads or more per volume: H0 and the top dimension of a volume are computed on two of them (a raised
    # block inside the first volume makes sure it has a void, whatever the noise)
    cavity = volumes[:2].clone()
    cavity[0, 1:3, 2:4, 2:4] = 10.0
    for few, dims in ((cavity[:1], (0, 2)), (cavity, (0, 2)), (volumes[:2, 0], (0, 1))):
        alone = cubical_persistence(few, dims, workers=1)
        split = cubical_persistence(few, dims, workers=4)
        assert torch.equal(alone.pairs, split.pairs) and torch.equal(alone.index, split.index)
        assert torch.equal(alone.dims, split.dims) and set(alone.dims.tolist()) == set(dims)
        assert torch.equal(alone.value_min, split.value_min) and torch.equal(alone.value_max, split.value_max)
    moved = cubical_persistence(volumes, (0, 2), device="cpu")
    assert moved.device == torch.device("cpu") and torch.equal(moved.pairs, one.pairs)
    assert isinstance(moved, PersistenceDiagrams)
    assert one.pairs.dtype == torch.float64 and one.dims.dtype == torch.int64 and one.index.dtype == torch.int64


def test_torch_backend_in_chunks_on_smooth_relu_and_tied_volumes(monkeypatch: pytest.MonkeyPatch) -> None:
    """``backend="torch"`` on larger volumes than the GUDHI tests' (long descent paths, thousands of basins),
    against GUDHI, and the same diagrams when the batch is cut into chunks of one and two volumes."""
    from lightning_topo.functional import _contracted_persistence

    g = torch.Generator().manual_seed(11)
    smooth = gaussians(2, (6, 24, 24), 5)
    relu = torch.relu(torch.nn.functional.avg_pool3d(torch.randn(3, 1, 10, 26, 26, generator=g), 3, 1)[:, 0])
    ties = torch.randint(0, 5, (2, 7, 20, 20), generator=g)
    for name, volumes in (("smooth", smooth), ("relu", relu), ("ties", ties)):
        assert_matches_gudhi(volumes, (0, 2), label=name, backend="torch")
        whole = cubical_persistence(volumes, (0, 2), backend="torch")
        n = volumes[0].numel()
        for per_chunk in (1, 2):
            monkeypatch.setattr(_contracted_persistence, "CHUNK_VOXELS", per_chunk * n)
            cut = cubical_persistence(volumes, (0, 2), backend="torch")
            assert torch.equal(cut.pairs, whole.pairs) and torch.equal(cut.index, whole.index), (name, per_chunk)
            assert torch.equal(cut.value_min, whole.value_min) and torch.equal(cut.value_max, whole.value_max)
        monkeypatch.undo()


@needs_h1
def test_torch_backend_with_h1_matches_gudhi() -> None:
    """H1 stays on the CPU (and gives H0 there); the top dimension comes from the torch backend."""
    volumes = torch.relu(torch.randn(2, 4, 6, 7, generator=torch.Generator().manual_seed(4)))
    assert_matches_gudhi(volumes, (0, 1, 2), backend="torch")
    assert_matches_gudhi(volumes, (1, 2), backend="torch")


def test_bad_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="`backend` must be one of") as info:
        cubical_persistence(torch.rand(1, 4, 4), backend="cuda")
    assert "'cuda'" in str(info.value)


@pytest.mark.parametrize("bad", [3, -1, (0, 3), (), "01", (0, 1.0), True])
def test_bad_dims_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="dims"):
        cubical_persistence(torch.rand(1, 4, 4), bad)  # type: ignore[arg-type]


def test_bad_input_is_refused() -> None:
    volumes = torch.rand(3, 4, 5, 6)
    volumes[1, 2, 2, 2] = float("nan")
    with pytest.raises(NonFiniteError, match="index 1") as info:
        cubical_persistence(volumes)
    assert info.value.index == 1
    with pytest.raises(ValueError, match="workers"):
        cubical_persistence(torch.rand(2, 4, 4), workers=0)
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        cubical_persistence(np.zeros((2, 4, 4)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ndim"):
        cubical_persistence(torch.rand(4))


def test_without_numba_a_typed_error_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['numba'] = None\n"
        "import torch\n"
        "from lightning_topo.functional import cubical_persistence, MissingDependencyError\n"
        "try:\n"
        "    cubical_persistence(torch.rand(1, 4, 4))\n"
        "except MissingDependencyError as err:\n"
        "    assert isinstance(err, ImportError)\n"
        "    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert 'pip install "lightning-topo[fast]"' in out
    assert issubclass(MissingDependencyError, ImportError)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_input_gives_cuda_diagrams() -> None:
    volumes = torch.relu(torch.randn(2, 4, 5, 6, generator=torch.Generator().manual_seed(1)))
    d = cubical_persistence(volumes.cuda(), (0, 2))
    assert d.device.type == "cuda"
    assert torch.equal(d.to("cpu").pairs, cubical_persistence(volumes, (0, 2)).pairs)


def test_benchmark_quick_run_checks_against_both_peers() -> None:
    pytest.importorskip("cripser")
    pytest.importorskip("sklearn")
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, str(repo / "benchmarks" / "bench_persistence.py"), "--quick"],
        capture_output=True,
        text=True,
        check=True,
        cwd=repo,
    ).stdout
    batches, rest = out.split("## one volume")
    one_volume, parts = rest.split("## one thread")
    rows = [line for line in batches.splitlines() if line.startswith("layer")][1:]
    assert len(rows) == 2 and all(row.endswith("yes") for row in rows), out
    rows = [line for line in one_volume.splitlines() if line.startswith("layer")][1:]
    assert len(rows) == 2 and all(row.endswith("x") for row in rows), out
    # The breakdown: sort, H0 pass, dual, their sum, the bare sweep, the floor, cripser (ms), two ratios
    rows = [line.split() for line in parts.splitlines() if line.startswith("layer")][1:]
    assert [row[0] for row in rows] == ["layer3.0", "layer4.0"], out
    for row in rows:
        ms = [float(cell.removesuffix("ms")) for cell in row[1:8]]
        assert all(value > 0 for value in ms) and abs(ms[3] - sum(ms[:3])) < 0.021, row
        assert abs(ms[5] - ms[0] - 2 * ms[4]) < 0.021 and row[8].endswith("x") and row[9].endswith("x"), row
