"""An adversarial exactness trial against GUDHI (helper-29): the diagrams and Betti numbers held on ~30,000 volumes;
these are what did not: summaries at extreme magnitudes, a thread race, integers beyond 2**53, big thresholds."""

from __future__ import annotations

import math
import threading
import time
from fractions import Fraction

import numpy as np
import pytest
import torch

from lightning_topo.functional import (
    _threads,
    betti_curves,
    cubical_betti,
    cubical_persistence,
    persistence_entropy,
    persistent_betti,
    total_persistence,
)

gudhi = pytest.importorskip("gudhi")

U = 5e-324  # the smallest subnormal float64


def _gudhi_lifetimes(volume: np.ndarray, dim: int) -> list[float]:
    """GUDHI's lifetimes of dimension ``dim``, the essential class ended at the volume's max."""
    bars = gudhi.CubicalComplex(vertices=volume).persistence()
    top = float(volume.max())
    return [(top if math.isinf(d) else d) - b for k, (b, d) in bars if k == dim and d > b]


def _entropy(lifetimes: list[float]) -> float:
    """Shannon entropy of lifetimes in exact fractions (then one log per share)."""
    exact = [Fraction(x) for x in lifetimes if x > 0]
    total = sum(exact)
    return -sum(float(x / total) * math.log(float(x / total)) for x in exact)


def test_summaries_of_subnormal_volumes_are_those_of_the_scaled_volume() -> None:
    """Halving subnormal values rounded (u/2 -> 0, 3u/2 -> 2u): entropy log 3 instead of 1.0822, and a pair of
    lifetime 2u counted as persisting 0.7 of a range 3u."""
    v = torch.tensor([[0.0, 3 * U, U, 3 * U, 0.0]], dtype=torch.float64)
    d = cubical_persistence(v)
    expected = _entropy(_gudhi_lifetimes(v[0].numpy(), 0))
    assert persistence_entropy(d, dims=[0]).item() == pytest.approx(expected, rel=1e-12)
    assert persistence_entropy(cubical_persistence(v * 2.0**1000), dims=[0]).item() == pytest.approx(expected)
    # (u, 3u) lives 2u < 0.7 * 3u: the essential class and (0, 3u) only
    assert persistent_betti(d, U, 0.7, dims=[0]).item() == 2
    assert persistent_betti(cubical_persistence(v * 2.0**1000), 2.0**1000 * U, 0.7, dims=[0]).item() == 2


def test_entropy_of_lifetimes_tiny_next_to_the_range() -> None:
    """Lifetimes divided by half the range underflowed to 0 (1e-200 against 1e200): entropy 0, not log 2."""
    tiny, huge = 1e-200, 1e200
    v = torch.tensor([[[0, 0, 0, 0, 0, huge], [0, tiny, 0, tiny, 0, huge], [0, 0, 0, 0, 0, huge]]], dtype=torch.float64)
    d = cubical_persistence(v)
    assert persistence_entropy(d, dims=[1]).item() == pytest.approx(_entropy(_gudhi_lifetimes(v[0].numpy(), 1)))
    assert persistence_entropy(d, dims=[1]).item() == pytest.approx(math.log(2))


def test_summaries_of_a_range_beyond_the_float64_limit_stay_finite() -> None:
    big = torch.tensor([[-1.7e308, 0.0, 1.7e308, 0.5, 1.7e308]], dtype=torch.float64)
    d = cubical_persistence(big)
    lifetimes = [1.7e308 / 2 - 0.5 / 2, 1.7e308 / 2 + 1.7e308 / 2]  # halved, as the function compares them
    assert persistence_entropy(d, dims=[0]).item() == pytest.approx(_entropy(lifetimes))
    assert persistent_betti(d, 1.0, 0.3, dims=[0]).item() == 2  # 1.7e308 - 0.5 is half of the range 3.4e308
    assert persistent_betti(d, 1.0, 0.6, dims=[0]).item() == 1
    assert math.isinf(total_persistence(d, dims=[0]).item())  # the sum itself overflows


def test_a_pool_grown_by_another_thread_does_not_refuse_work() -> None:
    """One thread growing the shared pool shut it down between another thread's submissions: "cannot schedule
    new futures after shutdown"."""

    def chunk(lo: int, hi: int) -> int:
        time.sleep(0)
        return hi - lo

    errors: list[str] = []

    def steady() -> None:
        try:
            for _ in range(300):
                assert sum(_threads.run_chunks(chunk, 64, 2, chunks=64)) == 64
        except Exception as err:
            errors.append(repr(err))

    def growing() -> None:
        try:
            for workers in range(3, 100):
                assert sum(_threads.run_chunks(chunk, 256, workers)) == 256
        except Exception as err:
            errors.append(repr(err))

    threads = [threading.Thread(target=steady), threading.Thread(target=growing)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_integers_beyond_2_53_are_refused_and_below_exact() -> None:
    """float64 rounds 2**53 + 1 to 2**53: the pair (2**53, 2**53 + 1) was lost and b0 at 2**53 was 1, not 2."""
    x = torch.tensor([[2**53, 2**53 + 1, 2**53]])
    for call in (lambda: cubical_betti(x, 2**53), lambda: cubical_persistence(x), lambda: betti_curves(x, [0])):
        with pytest.raises(ValueError, match=r"beyond ±2\*\*53 in sample 0.*Subtract a reference"):
            call()
    shifted = x - x.amin()  # the fix the message names
    assert cubical_betti(shifted, 0).tolist() == [[2, 0, 0]]
    assert cubical_persistence(shifted).pairs.tolist() == [[0.0, 1.0], [0.0, math.inf]]
    edge = torch.tensor([[2**53, -(2**53), 2**53]])  # still exact
    assert cubical_betti(edge, 0).tolist() == [[1, 0, 0]]


def test_integer_thresholds_are_rounded_down_exactly() -> None:
    """A Python int threshold went through float() (to nearest: 2**54 + 3 -> 2**54 + 4, so a value of 2**54 + 4
    counted as below it); 10**400 raised OverflowError."""
    v = torch.tensor([[float(2**54 + 4), 0.0, float(2**54 + 4), 0.0]], dtype=torch.float64)
    assert cubical_betti(v, 2**54 + 3).tolist() == [[2, 0, 0]]
    assert cubical_betti(v, 2**54 + 4).tolist() == [[1, 0, 0]]
    assert betti_curves(v, [2**54 + 3, 10**400]).tolist() == [[[2, 0, 0], [1, 0, 0]]]
    assert cubical_betti(v, -(10**400)).tolist() == [[0, 0, 0]]
    d = cubical_persistence(v)
    assert persistent_betti(d, 2**54 + 3, dims=[0]).tolist() == [[2]]
    with pytest.raises(ValueError, match=r"threshold.*beyond ±2\*\*53"):
        cubical_betti(v, torch.tensor(2**54 + 3))


def test_one_dimension_as_a_numpy_or_tensor_integer() -> None:
    x = torch.rand(2, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    assert cubical_persistence(x, dims=np.int64(1)).computed_dims == (1,)
    assert cubical_persistence(x, dims=torch.tensor(2)).computed_dims == (2,)
    d = cubical_persistence(x)
    assert torch.equal(persistence_entropy(d, dims=torch.tensor(0)), persistence_entropy(d, dims=[0]))
    with pytest.raises(ValueError, match=r"tuple of homological dimensions in 0\.\.2.*got 1\.5"):
        persistence_entropy(d, dims=1.5)
