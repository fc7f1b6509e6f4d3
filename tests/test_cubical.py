"""`cubical_betti` against independent engines (GUDHI, cripser) and its input contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from oracles import cripser_betti, gudhi_betti

from lightning_topo.functional import cubical_betti
from lightning_topo.functional.components import _numba_available, count_components

BACKENDS = ("numba", "cc3d", "scipy", "torch") if _numba_available() else ("cc3d", "scipy", "torch")


def _random_volume(rng: np.random.Generator, ndim: int, max_side: int = 24) -> np.ndarray:
    """A random volume of one of several kinds: Gaussian, ReLU-like, integer-valued, constant, smooth."""
    max_voxels = 24 * 24 * 24
    shape = [int(rng.integers(1, max_side + 1)) for _ in range(ndim)]
    while math.prod(shape) > max_voxels:
        shape[int(rng.integers(ndim))] //= 2
    shape = [max(s, 1) for s in shape]
    kind = rng.integers(5)
    vol = rng.standard_normal(shape)
    if kind == 1:  # ReLU-like: many exact zeros
        vol = np.maximum(vol, 0.0)
    elif kind == 2:  # few distinct values: many ties
        vol = rng.integers(0, 3, size=shape).astype(np.float64)
    elif kind == 3:  # constant
        vol = np.full(shape, float(rng.integers(-1, 2)))
    elif kind == 4:  # smooth ReLU-like (few large components)
        from scipy.ndimage import gaussian_filter

        vol = np.maximum(gaussian_filter(vol, 1.0), 0.0)
    return vol


def _thresholds(rng: np.random.Generator, vol: np.ndarray) -> list[float]:
    values = vol.ravel()
    return [
        float(values.min()) - 1.0,  # below the minimum: empty set
        0.0,  # ReLU zeros: exact ties
        float(rng.choice(values)),  # a tie with a voxel value
        float(np.median(values)),
        float(values.max()),  # the maximum itself: everything
        float(values.max()) + 1.0,
        math.inf,
        -math.inf,
    ]


def _check_against_gudhi(vol: np.ndarray, thresholds: list[float], backend: str) -> None:
    batch = torch.from_numpy(np.stack([vol] * len(thresholds)))
    ours = cubical_betti(batch, torch.tensor(thresholds, dtype=torch.float64), backend=backend)
    expected = gudhi_betti(vol, thresholds)
    assert ours.tolist() == expected, f"shape {vol.shape} thresholds {thresholds}"


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_equals_gudhi_on_random_volumes(ndim: int) -> None:
    # 200 volumes per dimension (600 in all), 8 thresholds each, the CPU default (components.CPU_AUTO).
    rng = np.random.default_rng(100 + ndim)
    for _ in range(200):
        vol = _random_volume(rng, ndim)
        _check_against_gudhi(vol, _thresholds(rng, vol), "auto")


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "torch"])
def test_cpu_labellers_equal_gudhi(backend: str) -> None:
    # 300 volumes of every dimension with each CPU labeller (the default one is tested above on 600 more).
    rng = np.random.default_rng(17)
    for i in range(300):
        vol = _random_volume(rng, 1 + i % 3, max_side=16)
        _check_against_gudhi(vol, _thresholds(rng, vol), backend)


@pytest.mark.parametrize("backend", ["scipy", "torch"])
def test_other_backends_equal_gudhi(backend: str) -> None:
    # The torch propagation is slow on CPU: smaller volumes, fewer of them.
    rng = np.random.default_rng(7)
    for i in range(60):
        vol = _random_volume(rng, 1 + i % 3, max_side=10)
        _check_against_gudhi(vol, _thresholds(rng, vol), backend)


def test_special_volumes() -> None:
    cases = [
        np.array([3.0]),  # a single voxel
        np.zeros((1, 1, 1)),
        np.ones((1, 7, 1)),  # size-1 axes
        np.zeros((5, 5, 5)),  # constant
        np.ones((4, 1, 6)),
    ]
    # A hollow cube: one cavity (b2 = 1) at thresholds in [0, 1).
    shell = np.zeros((5, 5, 5))
    shell[2, 2, 2] = 1.0
    cases.append(shell)
    # A ring in 2-D: b1 = 1.
    ring = np.ones((5, 5))
    ring[1:4, 1:4] = 0.0
    ring[2, 2] = 1.0
    cases.append(ring)
    for vol in cases:
        for backend in BACKENDS:
            _check_against_gudhi(vol, [-1.0, 0.0, 0.5, 1.0, 3.0], backend)
    assert cubical_betti(torch.from_numpy(shell)[None], 0.5).tolist() == [[1, 0, 1]]
    assert cubical_betti(torch.from_numpy(ring)[None], 0.0).tolist() == [[1, 1, 0]]


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b in ("numba", "cc3d")])
def test_sample_equals_cripser(backend: str) -> None:
    # cripser (the paper's engine) on a sample; 2-D arrays with a size-1 axis are left out (see below).
    rng = np.random.default_rng(11)
    checked = 0
    while checked < 60:
        ndim = int(rng.integers(1, 4))
        vol = _random_volume(rng, ndim, max_side=16)
        if ndim == 2 and 1 in vol.shape:
            continue
        thresholds = [t for t in _thresholds(rng, vol) if math.isfinite(t)]
        batch = torch.from_numpy(np.stack([vol] * len(thresholds)))
        ours = cubical_betti(batch, torch.tensor(thresholds, dtype=torch.float64), backend=backend)
        assert ours.tolist() == cripser_betti(vol, thresholds), f"shape {vol.shape}"
        checked += 1


def test_cripser_miscounts_2d_arrays_with_a_size1_axis() -> None:
    """Documents a cripser defect: on a 2-D array with a size-1 axis it reports every voxel as a component.

    [0, 1, 0, 0, 2, 0] shaped (6, 1), threshold 0: the sublevel set is {0}, {2, 3}, {5}, three
    components. cripser says 4; GUDHI and we say 3. This is why the oracle tests use GUDHI everywhere
    and cripser only on other shapes.
    """
    vol = np.array([0.0, 1.0, 0.0, 0.0, 2.0, 0.0]).reshape(6, 1)
    assert cripser_betti(vol, [0.0]) == [[4, 0, 0]]
    assert gudhi_betti(vol, [0.0]) == [[3, 0, 0]]
    assert cubical_betti(torch.from_numpy(vol)[None], 0.0).tolist() == [[3, 0, 0]]


def test_conv_map_batch_is_a_batch_of_volumes() -> None:
    rng = np.random.default_rng(3)
    maps = np.maximum(rng.standard_normal((5, 4, 6, 7)), 0)
    batched = cubical_betti(torch.from_numpy(maps), 0.0)
    for i in range(5):
        assert batched[i].tolist() == gudhi_betti(maps[i], [0.0])[0]


def test_per_sample_thresholds() -> None:
    rng = np.random.default_rng(5)
    vols = rng.standard_normal((6, 8, 9))
    thresholds = rng.standard_normal(6)
    got = cubical_betti(torch.from_numpy(vols), torch.from_numpy(thresholds))
    for i in range(6):
        assert got[i].tolist() == gudhi_betti(vols[i], [float(thresholds[i])])[0]
    assert got.dtype == torch.int64 and got.shape == (6, 3)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.uint8, torch.float16, torch.bfloat16])
def test_integer_and_half_precision_inputs(dtype: torch.dtype) -> None:
    rng = np.random.default_rng(9)
    values = rng.integers(0, 4, size=(4, 6, 7, 5)).astype(np.float64)  # exactly representable everywhere
    vols = torch.from_numpy(values).to(dtype)
    for t in (0.0, 1.0, 1.5, 2.0):
        got = cubical_betti(vols, t)
        assert got.tolist() == [gudhi_betti(v, [t])[0] for v in values]


def test_threshold_is_exact_for_unrepresentable_values() -> None:
    # float32(0.1) is slightly larger than 0.1: the voxel is not in {v <= 0.1}.
    vol = torch.tensor([[0.1]], dtype=torch.float32)
    assert cubical_betti(vol, 0.1).tolist() == [[0, 0, 0]]
    assert cubical_betti(vol, float(vol.item())).tolist() == [[1, 0, 0]]
    half = torch.tensor([[0.1]], dtype=torch.float16)  # 0.0999755859375
    assert cubical_betti(half, float(half.item())).tolist() == [[1, 0, 0]]
    assert cubical_betti(half, float(half.item()) - 1e-9).tolist() == [[0, 0, 0]]


def test_device_argument_and_results_device() -> None:
    vols = torch.rand(2, 3, 4, 5)
    got = cubical_betti(vols, 0.5, device="cpu")
    assert got.device.type == "cpu"
    assert got.tolist() == [gudhi_betti(v.numpy(), [0.5])[0] for v in vols]


def test_count_components_backends_agree_on_large_batches() -> None:
    # Stacking many volumes into one labelling call must not leak components between volumes.
    gen = torch.Generator().manual_seed(0)
    masks = torch.rand(16, 9, 10, 11, generator=gen) < 0.45
    masks[3] = True  # one volume full, one empty
    masks[4] = False
    for connectivity in (6, 26):
        for bounded in (False, True):
            results = {b: count_components(masks, connectivity, bounded_only=bounded, backend=b) for b in BACKENDS}
            assert all(r.tolist() == results["cc3d"].tolist() for r in results.values()), (connectivity, bounded)
    assert count_components(masks, 6).tolist()[3:5] == [1, 0]


def test_count_components_of_lines_with_every_backend() -> None:
    # Volumes along one axis, alternating: as many components as ones. cc3d 4.1 raised "maximum length exception"
    # on such a stack with connectivity 26 (on a line 26 and 6 are the same neighbours).
    line = torch.tensor([1, 0, 1, 0, 1, 0, 1, 0, 1], dtype=torch.bool)
    for shape in ((9, 1, 1), (1, 9, 1), (1, 1, 9)):
        masks = torch.stack([line, ~line]).reshape(2, *shape)
        for connectivity in (6, 26):
            for backend in BACKENDS:
                assert count_components(masks, connectivity, backend=backend).tolist() == [5, 4], (shape, backend)
                assert count_components(masks, connectivity, bounded_only=True, backend=backend).tolist() == [0, 0]


@pytest.mark.parametrize(
    ("volumes", "match"),
    [
        (torch.zeros(5), "ndim 1"),
        (torch.zeros(1, 2, 3, 4, 5), "ndim 5"),
        (torch.zeros(0, 4, 4), "empty batch"),
        (torch.zeros(2, 0, 4), "zero-size"),
        (torch.zeros(2, 3, dtype=torch.bool), "dtype"),
        (torch.zeros(2, 3, dtype=torch.complex64), "dtype"),
    ],
)
def test_bad_volumes(volumes: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cubical_betti(volumes)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_name_the_sample(bad: float) -> None:
    vols = torch.rand(6, 4, 4)
    vols[3, 1, 2] = bad
    with pytest.raises(ValueError, match="sample index 3"):
        cubical_betti(vols)


def test_bad_thresholds_and_backend() -> None:
    vols = torch.rand(3, 4, 4)
    with pytest.raises(ValueError, match="`threshold` is NaN"):
        cubical_betti(vols, math.nan)
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        cubical_betti(vols, torch.zeros(2))
    with pytest.raises(ValueError, match="`backend` must be one of"):
        cubical_betti(vols, backend="gpu")
    with pytest.raises(TypeError, match=r"must be a torch\.Tensor"):
        cubical_betti(np.zeros((2, 3)))  # type: ignore[arg-type]


@pytest.mark.parametrize("dims", [(1, 2, 3), (1,), (2, 3), (0,), (0, 1, 2, 3), (-1,), 3, (3, 1), ()])
def test_count_true_counts_over_the_given_dims(dims: int | tuple[int, ...]) -> None:
    # Issue 19: on the CPU `count_true` used to count over every axis but the first, whatever `dims` said.
    from lightning_topo.functional.cubical import count_true

    x = torch.rand(3, 4, 5, 6, generator=torch.Generator().manual_seed(0)) < 0.5
    got, expected = count_true(x, dims), torch.count_nonzero(x, dim=dims)
    assert got.dtype == torch.int64 and got.shape == expected.shape
    assert torch.equal(got, expected)
    flat = x[0, :, :, 0]  # 2-D and 1-D inputs
    assert torch.equal(count_true(flat, (0,)), flat.count_nonzero(dim=0))
    assert count_true(flat[0], 0).item() == flat[0].count_nonzero().item()


@pytest.fixture
def deferred_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run `cubical_betti`'s accelerator path of checks (device flags, one host sync at the end) on the CPU."""
    import lightning_topo.functional.cubical as cubical

    monkeypatch.setattr(cubical, "_DEFER_CHECKS_ON_CPU", True)


@pytest.mark.usefixtures("deferred_checks")
def test_deferred_checks_give_the_same_numbers_and_errors() -> None:
    rng = np.random.default_rng(8)
    for ndim in (1, 2, 3):
        for _ in range(10):
            vol = _random_volume(rng, ndim, max_side=12)
            _check_against_gudhi(vol, _thresholds(rng, vol), "cc3d")
    vols = torch.rand(6, 4, 4)
    vols[3, 1, 2] = math.nan
    with pytest.raises(ValueError, match="sample index 3"):
        cubical_betti(vols)
    with pytest.raises(ValueError, match="`threshold` is NaN"):
        cubical_betti(torch.rand(3, 4, 4), torch.tensor([0.0, math.nan, 1.0]))
    with pytest.raises(ValueError, match="sample index 1"):  # the volumes' error first, as without deferral
        cubical_betti(torch.tensor([[0.0, 1.0], [math.inf, 0.0]]), math.nan)


@pytest.mark.usefixtures("deferred_checks")
def test_deferred_checks_catch_labels_out_of_raster_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # The stacked (cupy) path's ordering flag is read once at the end: an explicit backend raises.
    from scipy import ndimage

    import lightning_topo.functional.components as components

    def shuffled(stack: torch.Tensor, connectivity: int, out: torch.Tensor) -> int:
        labels, n = ndimage.label(stack.numpy(), structure=ndimage.generate_binary_structure(3, 1))
        relabel = np.concatenate([[0], np.random.default_rng(0).permutation(n) + 1])
        out.copy_(torch.from_numpy(relabel[labels].astype(np.int32)))
        return int(n)

    monkeypatch.setattr(components, "_label_cupy", shuffled)
    vols = torch.from_numpy(np.random.default_rng(4).random((6, 5, 6, 7)))
    with pytest.raises(RuntimeError, match="raster order"):
        cubical_betti(vols, 0.3, backend="cupy")


@pytest.mark.parametrize(
    "shape",
    [(1, 1, 1), (1, 1, 9), (3, 64, 65), (8, 7, 9), (2, 3, 128), (5, 16, 33), (4, 5, 200), (6, 3, 17), (3, 3, 64)],
)
def test_bit_packed_euler_characteristic_equals_the_bool_count(shape: tuple[int, int, int]) -> None:
    # Rows of 1..200 voxels: one word of 8/16/32/64 bits, or several 64-bit words with carries between them.
    import lightning_topo.functional.cubical as cubical

    rng = np.random.default_rng(sum(shape))
    masks = rng.random((6, *shape)) < rng.uniform(0.2, 0.9, size=(6, 1, 1, 1))
    masks[0] = True  # full and empty volumes
    masks[1] = False
    masks[2, ..., ::2] = True  # runs across word boundaries
    want = cubical._euler_terms(masks, cubical._count_rows)
    assert cubical._euler_packed(masks).tolist() == want.tolist()
    assert cubical.euler_characteristic(torch.from_numpy(masks)).tolist() == want.tolist()
