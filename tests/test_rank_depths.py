"""`rank_models` across different numbers of watched layers: theta is only comparable at equal depth, so a typed
warning names the depths and the ranking records it (real models analysed on the same data)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lightning_topo import rank_models
from lightning_topo.analysis.ranking import DepthMismatchWarning, SettingsMismatchWarning, correlations


def _cnn(depth: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(1, 4, 3, padding=1), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers)


@pytest.fixture(scope="module")
def reports() -> dict:
    torch.manual_seed(0)
    data = TensorDataset(torch.rand(30, 1, 8, 8), torch.arange(30) % 3)
    zoo = {"shallow": _cnn(2), "deep": _cnn(4), "deep_too": _cnn(4)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DepthMismatchWarning)
        return rank_models(zoo, data, samples_per_class=10, progress=False).reports


def test_theta_across_depths_warns_once_naming_each_models_depth(reports: dict) -> None:
    depths = {name: len(r.layers) for name, r in reports.items()}
    assert depths["shallow"] < depths["deep"] == depths["deep_too"]  # the models really differ in depth
    with pytest.warns(DepthMismatchWarning) as caught:
        ranking = rank_models(reports, scores={"shallow": 0.5, "deep": 0.7, "deep_too": 0.6})
    mismatch = [w for w in caught if issubclass(w.category, DepthMismatchWarning)]
    assert len(mismatch) == 1
    text = str(mismatch[0].message)
    assert all(f"{name}: {d}" in text for name, d in depths.items()) and 'by="decay_rate"' in text
    # Ranked as asked (theta, lower first), and the ranking itself says the depths differ.
    assert ranking.by == "theta"
    thetas = [row["theta"] for row in ranking.rows]
    assert thetas == sorted(thetas)
    assert ranking.depths == depths
    assert ranking.note is not None and ranking.to_dict()["note"] == ranking.note
    assert ranking.note in ranking.table()


def test_no_warning_at_equal_depth_or_by_decay_rate(reports: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DepthMismatchWarning)
        same = rank_models({k: v for k, v in reports.items() if k != "shallow"})
        by_decay = rank_models(reports, by="decay_rate")
    assert same.note is None and by_decay.note is None
    assert by_decay.depths["shallow"] < by_decay.depths["deep"]
    assert "note" not in same.to_dict() or same.to_dict()["note"] is None


def test_two_models_with_scores_are_ranked_without_correlations(reports: dict) -> None:
    two = {k: v for k, v in reports.items() if k != "shallow"}
    ranking = rank_models(two, scores={"deep": 0.7, "deep_too": 0.6})
    assert sorted(ranking.names) == ["deep", "deep_too"] and ranking.correlations is None
    assert "needs at least 3 models" in ranking.note and ranking.note in ranking.table()


def test_models_analysed_with_other_settings_warn(reports: dict) -> None:
    torch.manual_seed(0)
    data = TensorDataset(torch.rand(30, 1, 8, 8), torch.arange(30) % 3)
    median = rank_models({"m": _cnn(4)}, data, samples_per_class=10, threshold="median", progress=False).reports
    with pytest.warns(SettingsMismatchWarning, match=r"threshold: deep='mean', m='median'"):
        ranking = rank_models({"deep": reports["deep"], **median})
    assert "different settings" in ranking.note
    # The persistence summaries' settings change neither theta nor the decay rate: nothing to say.
    entropy = rank_models(
        {"m": _cnn(4)}, data, samples_per_class=10, persistence=["entropy"], persistence_dims=[0], progress=False
    ).reports
    plain = rank_models({"m": _cnn(4)}, data, samples_per_class=10, progress=False).reports
    with warnings.catch_warnings():
        warnings.simplefilter("error", SettingsMismatchWarning)
        ranking = rank_models({"a": entropy["m"], "b": plain["m"]})
    assert ranking.note is None or "different settings" not in ranking.note


def test_spearman_p_value_is_exact_for_few_models() -> None:
    from scipy import stats

    three = correlations([3.0, 2.0, 1.0], [0.9, 0.8, 0.1])
    assert three["spearman_p"] == pytest.approx(1 / 3)  # scipy's t approximation says 0
    rng = torch.Generator().manual_seed(1)
    x, y = torch.rand(6, generator=rng).tolist(), torch.rand(6, generator=rng).tolist()
    y[2] = y[4]  # a tie
    mine = correlations(x, y)
    # An independent engine: scipy's exact permutation test over every pairing (6! = 720), rho by scipy.
    reference = stats.permutation_test(
        (x,), lambda a: stats.spearmanr(a, y).statistic, permutation_type="pairings", n_resamples=math.inf
    )
    assert mine["spearman_p"] == pytest.approx(reference.pvalue)
    assert mine["spearman_rho"] == pytest.approx(reference.statistic)


def test_models_left_out_of_the_correlations_and_constant_values_are_said(reports: dict) -> None:
    """A NaN score dropped a model from the correlations with only `n` to hint at it; equal thetas gave NaN
    correlations without a word; ties kept the order of `models` without the docs saying so."""
    same = {name: reports["deep"] for name in ("x", "y", "z")}  # one report three times: equal thetas
    ranking = rank_models(same, scores={"x": 0.1, "y": 0.5, "z": 0.9})
    assert math.isnan(ranking.correlations["kendall_tau"])
    assert ranking.note is not None and "every model has the same theta" in ranking.note
    assert [row["name"] for row in ranking.rows] == ["x", "y", "z"]  # ties: the order given
    assert [row["name"] for row in rank_models(dict(reversed(same.items()))).rows] == ["z", "y", "x"]
    four = {**same, "w": reports["deep_too"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SettingsMismatchWarning)
        ranking = rank_models(four, scores={"x": 0.1, "y": math.nan, "z": 0.9, "w": 0.3})
    row = next(r for r in ranking.rows if r["name"] == "y")
    assert "left out of the correlations" in row["note"]
    assert ranking.note is not None and "the correlations are over 3 of the 4 models: ['y']" in ranking.note
