"""examples/stopping_rules.py: the offline rules do what their definitions say (hand-written series), and quick mode
writes a complete study: every rule stops within the run, ``none`` runs it all, a chosen default, a figure.

Nothing here depends on a training trajectory's values: which rule wins, and where a rule stops on real runs,
moves with the CPU, the thread count and the seed (tests/test_early_stopping.py replays the committed full-run
series through the callback).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NAN = float("nan")
PERTURBED = ["--precision", "64", "--first-seed", "1"]


@pytest.fixture(scope="module")
def study() -> Any:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import stopping_rules
    finally:
        sys.path.remove(str(ROOT / "examples"))
    return stopping_rules


def test_plateau_stop_follows_early_stopping(study: Any) -> None:
    plateau = study.plateau_stop
    assert plateau([0.1, 0.3, 0.5, 0.5, 0.49, 0.5, 0.6], patience=2) == 4  # best 0.5 at 2; 3 and 4 do not beat it
    assert plateau([0.1, 0.3, 0.5, 0.5, 0.49, 0.5, 0.6], patience=3) == 5  # equal is not better
    assert plateau([0.1, 0.3, 0.5, 0.5, 0.49, 0.5, 0.6], patience=4) is None
    assert plateau([1.0, 0.9, 0.95, 0.97], mode="min", patience=2) == 3
    assert plateau([0.5, 0.6, 0.62], patience=1, min_delta=0.05) == 2  # 0.62 is not 0.05 above 0.6
    assert plateau([0.5, NAN, NAN, 0.4], patience=2) is None  # NaN evaluations do not count
    assert plateau([0.5, NAN, NAN, 0.4], patience=1) == 3
    assert plateau([NAN, NAN]) is None


def test_smoothing_and_relative_min_delta(study: Any) -> None:
    plateau = study.plateau_stop
    decay = [0.5, 1.0, 0.5, 1.0, 1.0, 1.0]
    assert plateau(decay, patience=2) == 3
    # Averages 0.5, 0.75, 0.625, 0.8125, 0.90625, 0.953125: never two evaluations without improvement.
    assert plateau(decay, patience=2, smoothing=0.5) is None
    assert plateau(decay, patience=2, smoothing=1.0) == 3  # alpha 1 = the raw value
    rising = [0.5, 0.75, 0.775, 0.8, 0.825, 0.85]
    assert plateau(rising, patience=2, min_delta=0.01) is None
    assert plateau(rising, patience=2, min_delta=0.1, relative=True) == 3  # 0.775, 0.8 < 0.75 * 1.1
    # Relative in min mode: an improvement must fall 10 % below the best.
    assert plateau([-0.2, -0.4, -0.42, -0.43], mode="min", patience=2, min_delta=0.1, relative=True) == 3


def test_floor_both_and_first_of(study: Any) -> None:
    assert study.floor_stop([4.0, 3.0, 1.02, 2.0, 1.04, 1.0, 1.01, 0.99], patience=3) == 6
    assert study.floor_stop([1.2] * 5, patience=2) is None
    assert study.floor_stop([1.2] * 5, patience=2, tol=0.25) == 1
    assert study.floor_stop([1.0, NAN, 1.0], patience=2) == 2  # NaN skipped, not a break
    pair = ([0.5, 0.4, 0.4, 0.4, 0.4], [1.0, 0.9, 0.8, 0.8, 0.8])
    assert study.both_stop(*pair, patience=2, modes=("max", "min")) == 4  # the loss plateaus only from epoch 2
    assert study.both_stop(pair[0], [1.0, 0.9, 0.8, 0.7, 0.6], patience=2, modes=("max", "min")) is None
    assert study.first_of(None, 5, 3) == 3 and study.first_of(None, None) is None


def test_reference_rules_and_stop_epochs(study: Any) -> None:
    run = {"val_acc": [0.5, 0.8, 0.9, 0.97, 0.96, 0.99, 0.98], "val_loss": [1.0] * 7}
    rules = study.RULES
    assert study.stop_epochs(rules["none"], run) == 7
    assert study.stop_epochs(rules["half_budget"], run) == 4  # ceil(7 / 2)
    assert study.stop_epochs(rules["hindsight"], run) == 6  # the first epoch within 0.005 of the last (0.98)
    assert study.stop_epochs(rules["val_loss_p3"], run) == 4  # flat loss: the first is the best; stop 3 later


def _run(task: str, seed: int, acc: list[float]) -> dict[str, Any]:
    n = len(acc)
    return {
        "task": task,
        "seed": seed,
        "val_acc": acc,
        "val_loss": [1.0 - a for a in acc],
        "decay_rate": [0.5] * n,
        "theta": [-0.1] * n,
        "omega_last": [2.0] * n,
        "seconds": [1.0] * n,
    }


def test_evaluate_and_choose_default(study: Any) -> None:
    runs = [_run("digits_cnn", 0, [0.5, 0.9, 0.95, 0.96]), _run("digits_cnn", 1, [0.6, 0.9, 0.9, 1.0])]
    summary = study.evaluate(runs)
    none, half = summary["none"]["digits_cnn"], summary["half_budget"]["digits_cnn"]
    assert none["epochs_mean"] == 4 and none["acc_lost_mean"] == 0 and none["time_saved_mean"] == 0
    assert half["epochs_mean"] == 2 and half["time_saved_mean"] == pytest.approx(0.5)
    assert half["acc_lost_mean"] == pytest.approx((0.06 + 0.1) / 2) and half["acc_lost_worst"] == pytest.approx(0.1)
    # A flat decay rate: decay_p3 stops after 4 evaluations = the whole run; stopped early on no seed.
    assert summary["decay_p3"]["digits_cnn"]["stopped_early"] == 0

    # Criterion, on a hand-made summary: the goal first, else the least worst-task loss among the halving rules.
    def row(lost: float, fraction: float) -> dict[str, float]:
        return {"acc_lost_mean": lost, "epoch_fraction_mean": fraction, "time_saved_mean": 1 - fraction}

    rules = {n: study.RULES[n] for n in ("none", "decay_p3", "theta_p15", "omega_last_p10")}
    made = {
        "none": {"a": row(0.0, 1.0), "b": row(0.0, 1.0)},
        "decay_p3": {"a": row(0.03, 0.2), "b": row(0.2, 0.1)},
        "theta_p15": {"a": row(0.004, 0.45), "b": row(0.05, 0.4)},
        "omega_last_p10": {"a": row(0.001, 0.8), "b": row(0.001, 0.7)},
    }
    chosen = study.choose_default(made, rules)
    assert chosen["rule"] == "theta_p15" and not chosen["goal_met"]
    assert chosen["accuracy_first"]["rule"] == "omega_last_p10"
    made["omega_last_p10"] = {"a": row(0.001, 0.5), "b": row(0.002, 0.3)}
    chosen = study.choose_default(made, rules)
    assert (
        chosen["rule"] == "omega_last_p10" and chosen["goal_met"] and chosen["rules_meeting_goal"] == ["omega_last_p10"]
    )


def _png_has_content(path: Path) -> None:
    import matplotlib.image

    pixels = matplotlib.image.imread(str(path))[..., :3].reshape(-1, 3)
    assert (pixels != pixels[0]).any(axis=1).mean() > 0.02, f"{path} looks blank"


@pytest.mark.parametrize("extra", [[], PERTURBED], ids=["default", "perturbed"])
def test_quick_mode_writes_a_complete_study(tmp_path: Path, extra: list[str], study: Any) -> None:
    out = tmp_path / "rules"
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "stopping_rules.py"), "--quick", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    results = json.loads((out / "results.json").read_text())
    settings, runs, summary = results["settings"], results["runs"], results["summary"]
    first_seed = 1 if extra else 0
    assert settings["quick"] and settings["seeds"] == 1 and settings["first_seed"] == first_seed
    assert {r["task"] for r in runs} == set(settings["tasks"]) == {"digits_cnn", "d1_mlp", "digits_mlp"}
    for r in runs:
        n = settings["tasks"][r["task"]]["max_epochs"]
        assert r["seed"] == first_seed
        assert all(len(r[key]) == n for key in study.SERIES), r["task"]
        assert all(0.0 <= a <= 1.0 for a in r["val_acc"]) and all(s > 0 for s in r["seconds"])
    assert set(summary) == set(study.RULES) == set(results["rules"])
    for name, per_task in summary.items():
        for task, t in per_task.items():
            n = settings["tasks"][task]["max_epochs"]
            seeds = t["per_seed"]
            assert seeds["seed"] == [first_seed]
            columns = (seeds["epochs"], seeds["epoch_fraction"], seeds["time_saved"])
            for epochs, fraction, saved in zip(*columns, strict=True):
                assert 1 <= epochs <= n, (name, task)
                assert math.isclose(fraction, epochs / n)
                assert -1e-9 <= saved < 1 and (saved == 0) == (epochs == n)
            assert t["stopped_early"] == sum(e < n for e in seeds["epochs"])
    for task, t in summary["none"].items():
        assert t["epochs_mean"] == settings["tasks"][task]["max_epochs"] and t["acc_lost_mean"] == 0
    default = results["default"]
    assert results["rules"][default["rule"]]["family"] == "topology"
    assert default["callback_arguments"] == results["rules"][default["rule"]]["callback"]
    assert default["split_halves"] is None  # one seed: no halves
    assert default["criterion"].startswith("Candidates:")
    env = results["environment"]
    assert env["torch_threads"] == 1 and env["precision"] == ("64-true" if extra else "32-true")
    assert env["first_seed"] == first_seed and env["versions"]["torch"]
    _png_has_content(out / "stopping_rules.png")
