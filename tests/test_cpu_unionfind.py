"""The compiled CPU union-find (``backend="numba"``) against scipy's labeller on random masks of every shape, its thread
counts, and the ``"auto"`` choice and fallback on the CPU. GUDHI and cripser check it in ``test_cubical.py``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from lightning_topo.functional import components as module
from lightning_topo.functional import cubical_betti
from lightning_topo.functional.components import count_components

numba = pytest.importorskip("numba")


def _random_masks(rng: np.random.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    kind = rng.integers(4)
    if kind == 0:
        return torch.from_numpy(rng.random(shape) < rng.random())
    if kind == 1:  # all true / all false
        return torch.full(shape, bool(rng.integers(2)))
    if kind == 2:  # smooth blobs: few large components, cavities
        from scipy.ndimage import gaussian_filter

        vol = gaussian_filter(rng.standard_normal(shape), (0, 1, 1, 1))
        return torch.from_numpy(vol < rng.normal(0, 0.2))
    return torch.from_numpy(rng.random(shape) < 0.7)  # mostly foreground: many unions, few holes


def _assert_equal_reference(masks: torch.Tensor) -> None:
    # The reference is scipy: cc3d 4.1.1 raises on some thin stacks with 26-connectivity ("Label 5 cannot be
    # mapped to union-find array of length 5", e.g. the stack of two (6, 1, 1) volumes in the test below).
    for connectivity in (6, 26):
        for bounded in (False, True):
            want = count_components(masks, connectivity, bounded_only=bounded, backend="scipy")
            got = count_components(masks, connectivity, bounded_only=bounded, backend="numba")
            assert got.dtype == torch.int64 and got.device == masks.device
            assert got.tolist() == want.tolist(), (tuple(masks.shape), connectivity, bounded)


def test_equals_reference_on_random_masks_of_every_shape() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        shape = (int(rng.integers(1, 5)), *(int(rng.integers(1, 10)) for _ in range(3)))
        _assert_equal_reference(_random_masks(rng, shape))


@pytest.mark.parametrize(
    "shape", [(1, 1, 1, 1), (3, 1, 1, 9), (2, 1, 7, 1), (2, 6, 1, 1), (2, 1, 5, 6), (2, 4, 1, 5), (1, 3, 3, 3)]
)
@pytest.mark.parametrize("fill", [None, True, False])
def test_equals_reference_on_size1_axes_and_constant_masks(shape: tuple[int, ...], fill: bool | None) -> None:
    rng = np.random.default_rng(sum(shape))
    masks = torch.from_numpy(rng.random(shape) < 0.5) if fill is None else torch.full(shape, fill)
    _assert_equal_reference(masks)


def test_known_counts() -> None:
    shell = torch.ones(1, 5, 5, 5, dtype=torch.bool)
    shell[0, 2, 2, 2] = False  # one cavity: the complement's one bounded component
    assert count_components(~shell, 26, bounded_only=True, backend="numba").tolist() == [1]
    assert count_components(shell, 6, backend="numba").tolist() == [1]
    diagonal = torch.zeros(1, 2, 2, 2, dtype=torch.bool)
    diagonal[0, 0, 0, 0] = diagonal[0, 1, 1, 1] = True  # corner-adjacent: 2 components under 6, 1 under 26
    assert count_components(diagonal, 6, backend="numba").tolist() == [2]
    assert count_components(diagonal, 26, backend="numba").tolist() == [1]


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` for the block (the compiled kernels use as many)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2])
def test_thread_counts_give_the_same_numbers(threads: int) -> None:
    rng = np.random.default_rng(5)
    masks = torch.from_numpy(rng.random((9, 8, 12, 11)) < 0.45)
    with _torch_threads(threads):  # the kernels' thread pools follow torch's count (functional._threads)
        _assert_equal_reference(masks)


def test_cubical_betti_1d_2d_3d_batches_equal_cc3d() -> None:
    rng = np.random.default_rng(3)
    for shape in [(5, 17), (4, 1), (6, 9, 11), (3, 1, 8), (4, 5, 6, 7), (2, 1, 1, 5), (3, 3, 3, 3)]:
        vols = torch.from_numpy(np.maximum(rng.standard_normal(shape), 0))
        for t in (-1.0, 0.0, 0.3, 10.0):
            assert cubical_betti(vols, t, backend="numba").tolist() == cubical_betti(vols, t, backend="cc3d").tolist()


def test_auto_uses_numba_on_the_cpu_and_cc3d_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert module.resolve_backend("auto", torch.device("cpu")) == module.CPU_AUTO
    monkeypatch.setattr(module, "CPU_AUTO", "numba")
    assert module.resolve_backend("auto", torch.device("cpu")) == "numba"
    monkeypatch.setattr(module, "_numba_available", lambda: False)
    assert module.resolve_backend("auto", torch.device("cpu")) == "cc3d"


def test_auto_falls_back_to_cc3d_when_the_kernel_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning_topo.functional import _cpu_unionfind

    def broken(*args: object) -> None:
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(module, "CPU_AUTO", "numba")
    monkeypatch.setattr(_cpu_unionfind, "count_components_numba", broken)
    monkeypatch.setattr(module, "_BROKEN_AUTO", set())
    masks = torch.rand(3, 4, 5, 6, generator=torch.Generator().manual_seed(1)) < 0.5
    want = count_components(masks, 6, backend="cc3d")
    with pytest.warns(RuntimeWarning, match="numba union-find failed"):
        assert count_components(masks, 6).tolist() == want.tolist()
    assert module.resolve_backend("auto", torch.device("cpu")) == "cc3d"
    with pytest.raises(RuntimeError, match="no compiler"):
        count_components(masks, 6, backend="numba")


# ------------------------------------------------------------------------------------------
# The fused kernel (cubical_betti with backend "numba" on CPU tensors): GUDHI, cripser and cc3d
# ------------------------------------------------------------------------------------------
def _fused_volumes(rng: np.random.Generator, shape: tuple[int, ...], kind: str) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    if kind == "noise":
        return rng.standard_normal(shape)
    if kind == "smooth":
        return gaussian_filter(rng.standard_normal(shape), (0, *[1.0] * (len(shape) - 1)))
    if kind == "relu":
        return np.maximum(rng.standard_normal(shape), 0.0)
    if kind == "ties":
        return rng.integers(-2, 3, shape).astype(np.float64)
    return np.full(shape, 0.5)  # constant


def _gudhi_rows(vols: np.ndarray, thresholds: list[float]) -> list[list[int]]:
    from oracles import gudhi_betti

    return [
        gudhi_betti(v.reshape([s for s in v.shape if s > 1] or [1]), [t])[0]
        for v, t in zip(vols, thresholds, strict=True)
    ]


FUSED_SHAPES = [
    (3, 4, 5, 6),
    (2, 3, 3, 63),
    (2, 3, 3, 64),
    (2, 3, 3, 65),
    (2, 3, 2, 128),
    (2, 2, 3, 129),
    (3, 5, 6, 1),
    (3, 1, 7, 8),
    (3, 1, 1, 70),
    (2, 1, 1, 1),
    (2, 6, 1, 5),
    # (H, W) slices of one word (H >= 2, H * W <= 64): the slice path, _betti_slice
    (2, 9, 8, 8),
    (2, 5, 2, 32),
    (2, 5, 32, 2),
    (3, 1, 7, 7),
    (2, 2, 7, 7),
    (2, 40, 7, 7),
    (2, 12, 3, 5),
    (2, 7, 2, 1),
    (2, 6, 13, 4),
]


@pytest.mark.parametrize("shape", FUSED_SHAPES)
@pytest.mark.parametrize("kind", ["noise", "smooth", "relu", "ties", "constant"])
def test_fused_equals_gudhi_and_cc3d(shape: tuple[int, ...], kind: str) -> None:
    pytest.importorskip("gudhi")
    rng = np.random.default_rng(sum(shape) + len(kind))
    vols = _fused_volumes(rng, shape, kind)
    choices = [0.0, 0.5, -0.3, 1.0, float(np.median(vols)), float("inf"), float("-inf")]
    thresholds = [float(rng.choice(choices)) for _ in range(shape[0])]
    x, t = torch.from_numpy(vols), torch.tensor(thresholds, dtype=torch.float64)
    got = cubical_betti(x, t, backend="numba").tolist()
    assert got == cubical_betti(x, t, backend="cc3d").tolist()
    finite = [min(max(u, float(vols.min()) - 1), float(vols.max()) + 1) for u in thresholds]
    assert got == _gudhi_rows(vols, finite)


def test_fused_equals_cripser_on_relu_maps_at_zero() -> None:
    pytest.importorskip("cripser")
    from oracles import cripser_betti

    rng = np.random.default_rng(7)
    vols = np.maximum(rng.standard_normal((3, 6, 9, 70)), 0.0).astype(np.float32)  # half exact zeros, t = 0
    got = cubical_betti(torch.from_numpy(vols), 0.0, backend="numba").tolist()
    assert got == [cripser_betti(v, [0.0])[0] for v in vols]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int32])
def test_fused_dtypes_equal_cc3d(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(3)
    vols = (torch.randn(4, 5, 6, 67, generator=gen) * 3).to(dtype)
    for t in (0.0, 0.1, -1.0, 2.5, torch.tensor([0.1, 0.3, -0.7, 1e-3])):
        assert cubical_betti(vols, t, backend="numba").tolist() == cubical_betti(vols, t, backend="cc3d").tolist()


def test_fused_all_in_all_out() -> None:
    vols = torch.rand(3, 4, 5, 66, generator=torch.Generator().manual_seed(4))
    assert cubical_betti(vols, 2.0, backend="numba").tolist() == [[1, 0, 0]] * 3
    assert cubical_betti(vols, -1.0, backend="numba").tolist() == [[0, 0, 0]] * 3


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_fused_non_finite_raises_as_the_tensor_path(bad: float) -> None:
    from lightning_topo.functional._checks import NonFiniteError

    vols = torch.rand(5, 3, 4, 70)
    vols[2, 1, 2, 65] = bad
    vols[4, 0, 0, 0] = bad
    messages = []
    for backend in ("numba", "cc3d"):
        with pytest.raises(NonFiniteError) as info:
            cubical_betti(vols, 0.5, backend=backend)
        assert info.value.index == 2
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    with pytest.raises(ValueError, match="threshold` is NaN"):
        cubical_betti(torch.rand(2, 3, 4), torch.tensor([0.1, float("nan")]), backend="numba")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_fused_slice_path_non_finite_raises_as_the_tensor_path(bad: float) -> None:
    from lightning_topo.functional._checks import NonFiniteError

    vols = torch.rand(4, 6, 7, 7)  # (H, W) slices of 49 bits: the slice path
    vols[1, 5, 6, 6] = bad
    for backend in ("numba", "cc3d"):
        with pytest.raises(NonFiniteError) as info:
            cubical_betti(vols, 0.5, backend=backend)
        assert info.value.index == 1


def test_fused_thread_counts_give_identical_numbers() -> None:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(5)
    for width in (130, 7):  # rows of several words, and the one-word path
        noise = rng.standard_normal((9, 8, 20, width))
        vols = torch.from_numpy(gaussian_filter(noise, (0, 1, 1, 1)).astype(np.float32))
        results = []
        for threads in (1, 2):
            with _torch_threads(threads):
                results.append(cubical_betti(vols, 0.0, backend="numba").tolist())
        assert results[0] == results[1] == cubical_betti(vols, 0.0, backend="cc3d").tolist()


def test_auto_falls_back_to_cc3d_when_the_fused_kernel_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning_topo.functional import _cpu_unionfind

    def broken(*args: object) -> None:
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(module, "CPU_AUTO", "numba")
    monkeypatch.setattr(_cpu_unionfind, "cubical_betti_numba", broken)
    monkeypatch.setattr(module, "_BROKEN_AUTO", set())
    vols = torch.rand(3, 4, 5, 6, generator=torch.Generator().manual_seed(1))
    want = cubical_betti(vols, 0.5, backend="cc3d")
    with pytest.warns(RuntimeWarning, match="numba backend failed"):
        assert cubical_betti(vols, 0.5).tolist() == want.tolist()
    assert module.resolve_backend("auto", torch.device("cpu")) == "cc3d"
    with pytest.raises(RuntimeError, match="no compiler"):
        cubical_betti(vols, 0.5, backend="numba")


def test_the_kernels_leave_torchs_thread_count_alone() -> None:
    """numba's threading layer, once started, resets OpenMP's thread count and so torch's: the kernels must not
    start it (``cpu_workers`` follows torch's count instead). Run in a fresh process: the thread count is global."""
    import subprocess
    import sys

    script = (
        "import torch\n"
        "torch.set_num_threads(1)\n"
        "from lightning_topo.functional import cubical_betti, cubical_persistence\n"
        "from lightning_topo.functional.components import count_components\n"
        "v = torch.rand(4, 3, 9, 9)\n"
        "cubical_betti(v, 0.5, backend='numba')\n"
        "count_components(v <= 0.5, 6, backend='numba')\n"
        "cubical_persistence(v)\n"
        "print(torch.get_num_threads())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "1"
