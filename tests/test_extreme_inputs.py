"""The functional engine at the edges of its inputs' ranges: every value here was silently wrong, a raw error from
torch or NumPy, or a process-wide change of backend before (an audit of the public functions, 2026-12-07).

Expected values come from exact arithmetic (Python's ``fractions`` and ``math``) or from the same input at an
ordinary scale, never from this package's earlier output.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch

from lightning_topo.functional import (
    PersistenceDiagrams,
    betti_curves,
    class_statistics,
    count_components,
    cubical_betti,
    cubical_persistence,
    h0_persistence,
    knn_hop_distances,
    normalised_decay,
    omega,
    persistent_betti,
    rips_betti,
    sublevel_thresholds,
    theta,
)
from lightning_topo.functional.components import resolve_backend


# count_components ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["auto", "numba", "cc3d", "scipy", "torch"])
def test_count_components_of_no_volume_or_no_voxel_is_zero_and_keeps_the_backend(backend: str) -> None:
    """An empty batch raised NumPy's reshape error from inside the numba labeller, which ``backend="auto"`` took
    for a broken install: a warning, and cc3d (slower) for the rest of the process."""
    if backend == "numba":
        pytest.importorskip("numba")
    before = resolve_backend("auto", torch.device("cpu"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "backend failed ... from now on"
        empty = count_components(torch.zeros(0, 2, 2, 2, dtype=torch.bool), 6, backend=backend)
        no_voxel = count_components(torch.zeros(2, 0, 3, 3, dtype=torch.bool), 26, bounded_only=True, backend=backend)
    assert empty.dtype == torch.int64 and empty.shape == (0,)
    assert no_voxel.tolist() == [0, 0]
    assert resolve_backend("auto", torch.device("cpu")) == before


# Rips: distances of float64 points of any magnitude -------------------------------------------------------------
def test_rips_distances_neither_overflow_nor_underflow() -> None:
    """``torch.cdist`` squares the differences: at 1e200 the squares overflowed (every death inf, and Prim's loop
    then picked a vertex already in the tree: b0 = 3 where it is 2); at 1e-170 they underflowed to 0 (distinct
    points read as duplicates)."""
    big = torch.tensor([[1e200], [0.0], [1.0]], dtype=torch.float64)
    assert h0_persistence(big).tolist() == [1.0, 1e200]
    assert rips_betti(big, 2.0, maxdim=0).tolist() == [2]
    tiny = torch.tensor([[1e-170], [0.0], [2e-170]], dtype=torch.float64)
    assert h0_persistence(tiny).tolist() == [1e-170, 1e-170]
    assert rips_betti(tiny, 0.0, maxdim=0).tolist() == [3]
    # Both magnitudes in one cloud, in 2-D: every MST edge as math.hypot gives it.
    mixed = torch.tensor([[0.0, 0.0], [3e-300, 4e-300], [1e300, 0.0], [1e300, 2e300]], dtype=torch.float64)
    expected = [math.hypot(3e-300, 4e-300), math.hypot(1e300 - 3e-300, 4e-300), 2e300]  # A-B, then A or B-C, C-D
    assert h0_persistence(mixed).tolist() == pytest.approx(expected, rel=1e-15)
    # A distance beyond float64's range is inf, and the tree still spans every point.
    far = torch.tensor([[1.7e308], [-1.7e308], [0.0]], dtype=torch.float64)
    assert h0_persistence(far).tolist() == [1.7e308, 1.7e308]
    huge = torch.tensor([[1.7e308, 1.7e308], [-1.7e308, -1.7e308], [1.7e308, -1.7e308]], dtype=torch.float64)
    assert h0_persistence(huge).tolist() == [math.inf, math.inf]
    assert rips_betti(huge, 1e308, maxdim=0).tolist() == [3]


@pytest.mark.parametrize("factor", [1e200, 1e-200])
def test_rips_betti_of_a_scaled_circle_is_the_circle_s(factor: float) -> None:
    """The Betti numbers of a cloud at a scale do not change when both are multiplied by the same power of ten
    (here, far beyond float32's range, where giotto-ph reads the distances)."""
    angles = torch.linspace(0, 2 * math.pi, 41, dtype=torch.float64)[:-1]
    circle = torch.stack([angles.cos(), angles.sin()], dim=1)
    assert rips_betti(circle, 0.3).tolist() == [1, 1]
    assert rips_betti(circle * factor, 0.3 * factor).tolist() == [1, 1]
    assert rips_betti(circle * factor, 0.1 * factor).tolist() == [40, 0]


def test_knn_hops_of_huge_coordinates_are_the_hops_at_an_ordinary_scale() -> None:
    """Every distance overflowed to inf, so every point was every point's nearest neighbour."""
    points = torch.tensor([[0.0], [1.0], [2.0], [10.0]], dtype=torch.float64)
    expected = knn_hop_distances(points, k=1)
    assert expected.tolist()[0] == [0.0, 1.0, 2.0, 3.0]
    assert torch.equal(knn_hop_distances(points * 1e200, k=1), expected)


def test_rips_refuses_int64_points_beyond_2_53_and_huge_int_scales() -> None:
    """2**62 and 2**62 + 1 are one float64: two distinct points were merged (b0 = 2 for three points)."""
    points = torch.tensor([[2**62], [2**62 + 1], [2**62 + 5]])
    with pytest.raises(ValueError, match=r"`points` \(dtype torch.int64\) has coordinates beyond ±2\*\*53"):
        rips_betti(points, 0.0, maxdim=0)
    with pytest.raises(ValueError, match=r"`points` \(dtype torch.int64\)"):
        h0_persistence(points)
    assert rips_betti(points - points[0], 0.0, maxdim=0).tolist() == [3]  # the fix the message names
    # A Python int beyond float64's range raised OverflowError from math.isfinite; an int scale is exact.
    with pytest.raises(ValueError, match=r"`scale` must be a finite number >= 0, got 10000"):
        rips_betti(torch.tensor([[0.0], [1.0]]), 10**400)
    line = torch.tensor([[0.0], [2.0**53]], dtype=torch.float64)
    assert rips_betti(line, 2**53 - 1, maxdim=0).tolist() == [2]  # float(2**53 - 1) is exact; float64 cannot hold
    assert rips_betti(line, 2**53 + 1, maxdim=0).tolist() == [1]  # 2**53 + 1, which rounds to 2**53: <= it


# Thresholds and decay rates ---------------------------------------------------------------------------------------
def test_mean_threshold_of_values_whose_sum_overflows() -> None:
    """The float64 sum overflowed and the mean was clamped to the maximum (1.7e308, where it is 1.4e308): the
    sublevel set at the "mean" was the whole volume."""
    values = [1e308, 1.7e308, 1.2e308, 1.7e308]
    volume = torch.tensor([values], dtype=torch.float64)
    exact = float(sum(Fraction(v) for v in values) / len(values))
    assert sublevel_thresholds(volume, "mean").item() == pytest.approx(exact, rel=1e-15)
    assert sublevel_thresholds(volume.reshape(1, 2, 2), "mean").item() == pytest.approx(exact, rel=1e-15)
    assert cubical_betti(volume, sublevel_thresholds(volume, "mean")).tolist() == [[2, 0, 0]]
    # Another volume of the batch keeps its ordinary mean; an inf in the volume still gives inf.
    both = torch.tensor([values, [1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    assert sublevel_thresholds(both, "mean")[1].item() == 2.5
    assert sublevel_thresholds(torch.tensor([[1.0, math.inf]], dtype=torch.float64), "mean").item() == math.inf
    # +inf and -inf partial sums meet (NaN inside NumPy's sum): the exact mean, without NumPy's RuntimeWarning
    signs = ([1.7e308] * 4 + [-1.7e308] * 4) * 8 + [1.0]  # NumPy's eight running sums: four +inf, four -inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean = sublevel_thresholds(torch.tensor([signs], dtype=torch.float64), "mean").item()
    assert mean == pytest.approx(float(sum(Fraction(v) for v in signs) / len(signs)), rel=1e-15)


@pytest.mark.parametrize("dtype", ["uint16", "uint32", "uint64", "float8_e4m3fn"])
def test_threshold_rules_take_every_dtype_cubical_betti_takes(dtype: str) -> None:
    """``aminmax`` and ``median`` are not implemented for these in torch: the rules raised NotImplementedError."""
    if not hasattr(torch, dtype):
        pytest.skip(f"torch {torch.__version__} has no {dtype}")
    volume = torch.tensor([[1, 2, 9]]).to(getattr(torch, dtype))
    assert sublevel_thresholds(volume, "mean").tolist() == [4.0]
    assert sublevel_thresholds(volume, "median").tolist() == [2]
    for bad in (torch.bool, torch.complex64):
        with pytest.raises(ValueError, match=f"dtype {bad}"):
            sublevel_thresholds(torch.zeros(1, 3, dtype=bad), "mean")


@pytest.mark.parametrize("factor", [1e154, 1e200, 1e-200, 1e-300])
def test_theta_does_not_depend_on_the_curve_s_scale(factor: float) -> None:
    """theta divides the curve by its L2 norm: at 1e154 the norm overflowed (theta 0.0), at 1e-200 it underflowed
    to 0 (a ValueError saying the curve was zero at every layer)."""
    curve = torch.tensor([40.0, 30.0, 20.0, 12.0, 8.0, 6.0], dtype=torch.float64)
    assert theta(curve * factor).item() == pytest.approx(theta(curve).item(), rel=1e-12)
    assert normalised_decay(curve * factor).item() == pytest.approx(normalised_decay(curve).item(), rel=1e-12)
    for fn in (theta, normalised_decay):
        with pytest.raises(ValueError, match="must hold real values"):
            fn(curve.to(torch.complex128))


# Omega and its per-class statistics ------------------------------------------------------------------------------
def test_class_statistics_checks_its_input_as_omega_does() -> None:
    """``class_statistics`` is public, but only ``omega`` checked: labels of the wrong length raised index_add_'s
    error, negative counts and fractional labels were taken, and every NaN label became a class of its own."""
    betti = torch.tensor([[1, 0, 0], [3, 1, 0], [2, 0, 0]])
    for args, match in (
        ((betti, torch.tensor([0, 1])), r"`labels` must have shape \(B,\) = \(3,\)"),
        ((torch.tensor([1, 2]), None), r"`betti` must have shape \(\.\.\., B, K\)"),
        ((betti - 2, None), "must hold Betti numbers \\(>= 0\\)"),
        ((betti, torch.tensor([0.5, 0.7, 1.0])), "label 0.5 in `labels` is not a whole number"),
        ((betti, torch.tensor([0.0, math.nan, 1.0])), "label nan in `labels` is not a whole number"),
        ((betti.double().masked_fill(betti == 3, math.nan), None), "`betti` holds NaN or Inf"),
        ((betti.double().masked_fill(betti == 3, math.inf), None), "`betti` holds NaN or Inf"),
    ):
        with pytest.raises(ValueError, match=match):
            class_statistics(*args)
        with pytest.raises(ValueError, match=match):
            omega(*args)
    # Unsigned counts (uint16 had no `<` in torch) are the same numbers.
    for dtype in (torch.uint8, torch.uint16, torch.uint32, torch.uint64):
        assert omega(betti.to(dtype)).item() == pytest.approx(7 / 3)
    classes, means, value = class_statistics(betti, torch.tensor([5.0, 5.0, 7.0]))
    assert classes.tolist() == [5, 7] and means.tolist() == [[2.0, 0.5, 0.0], [2.0, 0.0, 0.0]] and value.item() == 2.25


def test_threshold_arrays_of_every_integer_width_are_exact() -> None:
    """int32 and smaller are exact in float64 and pass as they are (only 64-bit integers beyond 2**53 are refused)."""
    volume = torch.tensor([[0.0, 5.0, 0.0, 7.0, 0.0]], dtype=torch.float64)
    for array in (np.array([4, 6], dtype=np.int32), np.array([4, 6], dtype=np.uint16), torch.tensor([4, 6])):
        assert betti_curves(volume, array)[0, :, 0].tolist() == [3, 2]


# dtypes and devices without values, and NumPy thresholds -----------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float8_e4m3fn", "float8_e5m2"])
def test_float8_volumes_and_points_are_their_float32_values(dtype: str) -> None:
    """float8 went through the numba Betti path only; every other function raised torch's NotImplementedError
    ("aminmax_cpu" not implemented for 'Float8_e4m3fn')."""
    if not hasattr(torch, dtype):
        pytest.skip(f"torch {torch.__version__} has no {dtype}")
    volumes = torch.randn(3, 2, 5, 5, generator=torch.Generator().manual_seed(0)).to(getattr(torch, dtype))
    as_float = volumes.to(torch.float32)
    for backend in ("auto", "torch", "scipy"):
        assert torch.equal(cubical_betti(volumes, 0.25, backend=backend), cubical_betti(as_float, 0.25))
    assert torch.equal(betti_curves(volumes, [-0.5, 0.5]), betti_curves(as_float, [-0.5, 0.5]))
    assert torch.equal(cubical_persistence(volumes).pairs, cubical_persistence(as_float).pairs)
    points = volumes.flatten(1)
    assert torch.equal(h0_persistence(points), h0_persistence(points.to(torch.float32)))
    assert torch.equal(
        cubical_betti(as_float, torch.tensor(0.25).to(getattr(torch, dtype))), cubical_betti(as_float, 0.25)
    )


def test_meta_tensors_and_devices_are_named_as_shapes_without_values() -> None:
    """Raw torch errors before ("Cannot copy out of meta tensor", "Tensor.item() cannot be called on meta
    tensors"), or a message blaming the volumes for a meta ``device``."""
    volumes = torch.rand(2, 4, 4)
    meta = torch.tensor(0.5, device="meta")
    for call, name in (
        (lambda: cubical_betti(volumes, meta), "`threshold` is a meta tensor"),
        (lambda: betti_curves(volumes, meta.reshape(1)), "`thresholds` is a meta tensor"),
        (lambda: persistent_betti(cubical_persistence(volumes), meta), "`thresholds` is a meta tensor"),
        (lambda: h0_persistence(torch.rand(3, 2, device="meta")), "`points` is a meta tensor"),
        (lambda: rips_betti(torch.rand(5, 2), meta), "`scale` is a meta tensor"),
        (lambda: omega(torch.ones(2, 3, device="meta")), "`betti` is a meta tensor"),
        (lambda: betti_curves(volumes, [0.5], device="meta"), "`device='meta'` holds shapes without values"),
    ):
        with pytest.raises(ValueError, match=name):
            call()


def test_numpy_thresholds_are_taken_wherever_tensors_are() -> None:
    """``cubical_betti`` and ``persistent_betti`` refused a NumPy array that ``betti_curves`` took, and
    ``rips_betti`` a 0-d array that it took as a 0-d tensor."""
    volumes = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(1))
    per_volume = np.array([0.5, 0.2])
    assert torch.equal(cubical_betti(volumes, per_volume), cubical_betti(volumes, torch.from_numpy(per_volume)))
    assert torch.equal(cubical_betti(volumes, np.array(0.5)), cubical_betti(volumes, 0.5))
    diagrams = cubical_persistence(volumes)
    assert torch.equal(persistent_betti(diagrams, per_volume), persistent_betti(diagrams, torch.from_numpy(per_volume)))
    points = torch.rand(6, 2, generator=torch.Generator().manual_seed(2))
    assert torch.equal(rips_betti(points, np.array(0.4)), rips_betti(points, 0.4))
    with pytest.raises(ValueError, match="`threshold` must be real-valued, got dtype <U1"):
        cubical_betti(volumes, np.array(["a"]))
    with pytest.raises(ValueError, match=r"beyond ±2\*\*53"):
        cubical_betti(volumes, np.array([2**53 + 3, 0]))


def test_persistence_diagrams_constructor_refuses_what_no_computation_gives() -> None:
    """The public constructor took a float ``index`` (0.5), ``computed_dims=(5, -1)``, NaN pairs and births after
    deaths; every summary then returned NaN or negative values without a word."""
    good = {
        "pairs": torch.tensor([[0.0, math.inf], [1.0, 3.0]], dtype=torch.float64),
        "dims": torch.tensor([0, 1]),
        "index": torch.tensor([0, 0]),
        "num_volumes": 1,
        "computed_dims": (0, 1),
        "value_min": torch.tensor([0.0], dtype=torch.float64),
        "value_max": torch.tensor([3.0], dtype=torch.float64),
    }
    assert len(PersistenceDiagrams(**good)) == 2
    for change, match in (
        ({"index": torch.tensor([0.5, 0.0])}, "`index` must hold integers, got dtype torch.float32"),
        ({"dims": torch.tensor([True, False])}, "`dims` must hold integers, got dtype torch.bool"),
        ({"computed_dims": (5, -1)}, "computed_dims"),
        ({"computed_dims": (1, 0)}, "in increasing order"),
        ({"num_volumes": True}, "`num_volumes` must be an integer >= 0"),
        ({"pairs": torch.tensor([[0.0, math.inf], [math.nan, 3.0]], dtype=torch.float64)}, r"pair 1 of `pairs`"),
        (
            {"pairs": torch.tensor([[0.0, math.inf], [3.0, 1.0]], dtype=torch.float64)},
            r"pair 1 of `pairs` is \[3.0, 1.0\]",
        ),
        ({"pairs": torch.tensor([[0.0, math.inf], [1.0, math.nan]], dtype=torch.float64)}, r"pair 1 of `pairs`"),
        ({"pairs": torch.tensor([[0, 1], [1, 3]])}, "`pairs` must be floating point"),
    ):
        with pytest.raises(ValueError, match=match):
            PersistenceDiagrams(**{**good, **change})


def test_persistence_diagrams_of_narrow_integer_dims_and_index_are_int64() -> None:
    """uint8 ``dims`` / ``index`` were kept: torch reads a uint8 tensor as a mask where it indexes, and every summary
    raised an IndexError from inside torch (or a size mismatch). They are int64, as documented."""
    from lightning_topo.functional import persistence_entropy, total_persistence

    torch.manual_seed(0)
    full = cubical_persistence(torch.rand(3, 6, 6), dims=(0, 1))
    narrow = PersistenceDiagrams(
        pairs=full.pairs,
        dims=full.dims.to(torch.uint8),
        index=full.index.to(torch.uint8),
        num_volumes=3,
        computed_dims=(0, 1),
        value_min=full.value_min,
        value_max=full.value_max,
    )
    assert narrow.dims.dtype == narrow.index.dtype == torch.int64 and narrow == full
    assert torch.equal(total_persistence(narrow), total_persistence(full))
    assert torch.equal(persistence_entropy(narrow), persistence_entropy(full))
    assert torch.equal(persistent_betti(narrow, 0.5), persistent_betti(full, 0.5))


def test_sparse_volumes_are_refused_with_the_fix() -> None:
    """A sparse tensor raised torch's NotImplementedError for 'aten::aminmax' (or 'unsupported memory format')."""
    dense = torch.zeros(2, 4, 4)
    dense[0, 1, 1] = 1.0
    for fn in (cubical_betti, cubical_persistence):
        with pytest.raises(ValueError, match=r"`volumes` is a sparse_coo tensor.*volumes.to_dense\(\)"):
            fn(dense.to_sparse())
    with pytest.raises(TypeError, match=r"got ndarray \(`torch.as_tensor\(...\)` makes one of it\)"):
        cubical_persistence(dense.numpy())


def test_kernels_loaded_once_diagrams_of_those_dims_were_computed() -> None:
    """With H1 of 3-D volumes the union-find kernel does not run (H0 comes from the H1 reduction), so
    `kernels_loaded((0, 1))` stayed False after any number of calls, and the callback said before every run that
    the kernels would be compiled."""
    from lightning_topo.functional.persistence import kernels_loaded

    cubical_persistence(torch.rand(1, 3, 4, 4), dims=(0, 1))
    assert kernels_loaded((0, 1)) and kernels_loaded([1, 0])


def test_summaries_that_overflow_float64_mark_the_layer_not_the_run() -> None:
    """Finite float64 activations spanning ~1.5e308: their H0 lifetimes sum beyond the float64 range, so total
    persistence is inf (the true value is not representable). `analyse` (and the callback) raised "`persistence`
    holds NaN or Inf"; the layer is now a problem named with the cause, NaN, as non-finite activations are."""
    from torch import nn
    from torch.utils.data import TensorDataset

    from lightning_topo import analyse
    from lightning_topo.functional import total_persistence

    class Scale(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 1.5e308

    torch.manual_seed(0)
    x = torch.rand(8, 1, 6, 6, dtype=torch.float64)
    assert math.isinf(float(total_persistence(cubical_persistence(Scale()(x)), dims=(0,)).max()))
    net = nn.Sequential(nn.Identity(), Scale()).double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = analyse(
            net, TensorDataset(x, torch.arange(8) % 2), layers=["0", "1"], persistence=["total_persistence"],
            samples_per_class=4, progress=False,
        )  # fmt: skip
    assert "overflow float64" in report.problems["1"] and "total_persistence_0" in report.problems["1"]
    assert "0" not in report.problems and math.isfinite(float(report.omega[0]))
    assert math.isnan(float(report.omega[1]))
