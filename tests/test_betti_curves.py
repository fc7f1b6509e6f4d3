"""`betti_curves` against GUDHI and against `cubical_betti` at every threshold."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from oracles import gudhi_betti

from lightning_topo.functional import betti_curves, cubical_betti, cubical_persistence, persistent_betti


def _volume(rng: np.random.Generator, ndim: int) -> np.ndarray:
    shape = tuple(int(s) for s in rng.integers(1, 11, size=ndim))
    kind = rng.integers(3)
    if kind == 0:
        return rng.standard_normal(shape)
    if kind == 1:
        return np.maximum(rng.standard_normal(shape), 0.0)  # ReLU zeros: ties at 0
    return rng.integers(0, 3, size=shape).astype(np.float64)  # many ties


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_forest_curves_equal_gudhi(ndim: int) -> None:
    rng = np.random.default_rng(ndim)
    for _ in range(80):
        vol = _volume(rng, ndim)
        values = vol.ravel()
        thresholds = [
            math.inf,
            float(values.max()) + 1,
            0.0,
            float(rng.choice(values)),
            float(np.median(values)),
            float(values.min()) - 1,
            -math.inf,
            float(values.max()),
        ]
        got = betti_curves(torch.from_numpy(vol)[None], thresholds, method="forest")[0].tolist()
        assert got == gudhi_betti(vol, thresholds), vol.shape


def test_all_methods_equal_cubical_betti_at_every_threshold() -> None:
    gen = torch.Generator().manual_seed(0)
    volumes = torch.relu(torch.randn(4, 6, 9, 8, generator=gen))
    thresholds = torch.cat([torch.linspace(-0.5, 2.5, 40), torch.tensor([0.0, math.inf])])
    expected = torch.stack([cubical_betti(volumes, float(t)) for t in thresholds], dim=1)
    for method in ("auto", "forest", "direct"):
        got = betti_curves(volumes, thresholds, method=method)
        assert got.shape == (4, 42, 3) and got.dtype == torch.int64
        assert torch.equal(got, expected), method


@pytest.mark.parametrize("budget_volumes", [0, 1, 3, 7, 30, 1000])
def test_direct_in_chunks_equals_the_forests(monkeypatch: pytest.MonkeyPatch, budget_volumes: int) -> None:
    """The direct computation repeats at most DIRECT_CHUNK_VOXELS voxels at a time: chunks of thresholds, of volumes
    or of both (a budget under one volume still computes one pair per chunk); the numbers do not change."""
    import lightning_topo.functional.curves as curves

    gen = torch.Generator().manual_seed(1)
    volumes = torch.relu(torch.randn(5, 4, 6, 7, generator=gen))
    thresholds = torch.cat([torch.linspace(-0.5, 2.5, 11), torch.tensor([0.0, math.inf])])
    expected = betti_curves(volumes, thresholds, method="forest")
    monkeypatch.setattr(curves, "DIRECT_CHUNK_VOXELS", budget_volumes * volumes[0].numel())
    calls: list[int] = []
    real = curves.cubical_betti
    monkeypatch.setattr(curves, "cubical_betti", lambda v, t: calls.append(v.shape[0]) or real(v, t))
    assert torch.equal(betti_curves(volumes, thresholds, method="direct"), expected)
    assert sum(calls) == 5 * 13 and max(calls) <= max(budget_volumes, 1)  # every pair once, within the budget
    if budget_volumes >= 5 * 13:
        assert calls == [5 * 13]  # everything fits: one call, as before chunking


@pytest.mark.parametrize("numba", [True, False], ids=["numba", "without-numba"])
def test_auto_computes_directly_up_to_the_measured_limit(monkeypatch: pytest.MonkeyPatch, numba: bool) -> None:
    """``method="auto"``: direct up to DIRECT_MAX_THRESHOLDS_NUMBA thresholds where the numba kernel runs, up to
    DIRECT_MAX_THRESHOLDS where it does not (benchmarks/bench_curves.py), forests above; the same numbers."""
    import lightning_topo.functional.curves as curves

    if not numba:
        monkeypatch.setattr(curves, "resolve_backend", lambda backend, device: "cc3d")
    elif curves.resolve_backend("auto", torch.device("cpu")) != "numba":
        pytest.skip("numba is not installed")
    limit = curves.DIRECT_MAX_THRESHOLDS_NUMBA if numba else curves.DIRECT_MAX_THRESHOLDS
    assert curves.direct_max_thresholds(torch.device("cpu")) == limit
    used: list[str] = []
    direct, forest = curves._direct, curves._curves_one
    monkeypatch.setattr(curves, "_direct", lambda *a: used.append("direct") or direct(*a))
    monkeypatch.setattr(curves, "_curves_one", lambda *a: used.append("forest") or forest(*a))
    volumes = torch.relu(torch.randn(1, 3, 4, 5, generator=torch.Generator().manual_seed(2)))
    for n, want in ((1, "direct"), (limit, "direct"), (limit + 1, "forest")):
        used.clear()
        thresholds = torch.linspace(-0.1, 2.0, n)
        got = betti_curves(volumes, thresholds)
        assert used == [want], (n, used)
        assert torch.equal(got, betti_curves(volumes, thresholds, method="forest"))


def test_integer_and_half_inputs() -> None:
    values = torch.randint(0, 4, (3, 5, 6, 7))
    thresholds = [0.0, 1.0, 1.5, 3.0]
    for dtype in (torch.int32, torch.float16):
        got = betti_curves(values.to(dtype), thresholds, method="forest")
        assert torch.equal(got, betti_curves(values.double(), thresholds, method="direct"))


def test_errors() -> None:
    vols = torch.rand(2, 4, 4)
    with pytest.raises(ValueError, match="`thresholds` is empty"):
        betti_curves(vols, [])
    with pytest.raises(ValueError, match="`thresholds` holds NaN at index 1"):
        betti_curves(vols, [0.0, math.nan])
    with pytest.raises(ValueError, match="`method` must be one of"):
        betti_curves(vols, [0.0], method="fast")
    bad = vols.clone()
    bad[1, 0, 0] = math.nan
    with pytest.raises(ValueError, match="sample index 1"):
        betti_curves(bad, [0.0])


def test_thresholds_are_checked_as_cubical_betti_checks_them() -> None:
    """Complex thresholds lost their imaginary part, booleans were read as 0 and 1, a string failed in NumPy."""
    v = torch.rand(2, 4, 4)
    for bad, match in (
        ([True, False], r"must hold real numbers, got True \(bool\)"),
        ([0.0, "a"], r"must hold real numbers, got 'a' \(str\)"),
        (torch.tensor([0.5 + 1j]), "must be real-valued, got dtype torch.complex64"),
        (np.array([True]), "must be real-valued, got dtype bool"),
        ([np.bool_(True)], r"must hold real numbers, got np.True_"),
        ([torch.tensor([0.5, 0.25])], r"must hold numbers, got a tensor of shape \(2,\)"),
    ):
        with pytest.raises(ValueError, match=match):
            betti_curves(v, bad)
    assert torch.equal(betti_curves(v, [0.5, np.float32(0.25)]), betti_curves(v, [0.5, 0.25]))


def test_integer_thresholds_beyond_2_53_are_exact_or_refused_as_cubical_betti_does() -> None:
    """An int64 threshold beyond 2**53 was converted to float64 by rounding to the nearest, maybe up: at
    2**53 + 3 the voxel of 2**53 + 4 was counted as below it (b0 = 1 where it is 2). Python ints (and NumPy
    integer scalars) are rounded down exactly; int64 tensors and arrays are refused, as ``cubical_betti`` does."""
    v = torch.tensor([[0.0, 2.0**53 + 4, 0.0]], dtype=torch.float64)
    t = 2**53 + 3
    assert cubical_betti(v, t).tolist() == [[2, 0, 0]]
    for exact in ([t], [np.int64(t)], [t, torch.tensor(0.0)]):
        assert betti_curves(v, exact)[:, 0].tolist() == [[2, 0, 0]], exact
    for method in ("forest", "direct"):
        for refused in (torch.tensor([t]), np.array([t]), [torch.tensor(t)]):
            with pytest.raises(ValueError, match=r"beyond ±2\*\*53"):
                betti_curves(v, refused, method=method)
    diagrams = cubical_persistence(v)
    assert persistent_betti(diagrams, t).tolist() == [[2, 0, 0]]
    with pytest.raises(ValueError, match=r"`thresholds` \(dtype torch.int64\) has values beyond ±2\*\*53"):
        persistent_betti(diagrams, torch.tensor(t))


def test_readme_betti_curves_paragraph_is_the_committed_benchmark_output() -> None:
    """The README's "Betti curves" paragraph is written from benchmarks/bench_curves.out.txt (never by hand), and
    the limits of ``method="auto"`` in the code are the ones that output measured (the script refuses otherwise)."""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "bench_curves.py"), "--readme", "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
