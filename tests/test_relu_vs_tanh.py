"""examples/relu_vs_tanh.py in quick mode: both activations train (whatever the rounding), D-I's topology at the
input, class a simplified at the last layer, a finite summary with the environment, and a non-blank figure."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_relu_vs_tanh_quick_mode(tmp_path: Path) -> None:
    out = tmp_path / "rvt"
    printed = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "relu_vs_tanh.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    results = json.loads((out / "results.json").read_text())
    config, runs, summary = results["config"], results["runs"], results["summary"]
    depth = config["depth"]
    assert (config["dataset"], depth, config["width"], config["k"], config["scale"]) == ("d1", 9, 15, 14, 2.5)
    env = results["environment"]
    assert {"torch", "numpy", "scipy", "lightning"} <= set(env["versions"]) and all(env["versions"].values())
    assert env["torch_threads"] == 1 and env["cpu_model"] and env["date_utc"].startswith("20")
    assert sorted((r["seed"], r["activation"]) for r in runs) == [(0, "relu"), (0, "tanh"), (1, "relu"), (1, "tanh")]

    for r in runs:
        # Both activations' nets reached the target training accuracy.
        assert r["reached_target"] and r["train_acc"] >= 0.995, r
        assert 0 < r["steps"] <= r["best_step"] <= config["max_steps"]
        assert len(r["betti"]) == depth + 1 and len(r["b0_a"]) == depth + 1
        # Layer 0 is the fixed evaluation sample itself: D-I's true Betti numbers, a (9, 0) and b (1, 9).
        assert r["betti"][0] == [[9, 0], [1, 9]]
        first = r["first_layer_b0a_1"]
        assert first is None or (
            1 <= first <= depth and r["b0_a"][first] == 1 and all(b > 1 for b in r["b0_a"][:first])
        )
    # Every trained net simplifies class a (9 disks at the input) to at most 3 components at its last layer. Measured
    # with this recipe on quick-mode seeds 0-11, in float32 and float64, with 1 and 2 threads (36 nets): at most 2.
    # Which activation gets to 1 first is the finding of the full run, not a property asserted per run: at 2-4 seeds
    # it flips with the rounding (see docs/findings/relu_vs_tanh and the CHANGELOG).
    assert all(r["b0_a"][-1] <= 3 for r in runs), [(r["activation"], r["b0_a"]) for r in runs]
    for r in runs:
        settled = r["settled_layer_b0a_1"]
        assert (settled is None) == (r["b0_a"][-1] != 1)
        assert settled is None or (r["first_layer_b0a_1"] <= settled and set(r["b0_a"][settled:]) == {1})

    for act in ("relu", "tanh"):
        s = summary["per_activation"][act]
        assert s["n_trained"] == s["n_runs"] == 2 and s["failed_seeds"] == []
        for measure in ("first_layer_b0a_1", "settled_layer_b0a_1"):
            f = s[measure]
            for key in ("mean", "std", "median", "min", "max"):
                assert math.isfinite(f[key]), (act, measure, key, f)
            assert 1 <= f["mean"] <= depth + 1 and f["censored_at"] == depth + 1 and len(f["values"]) == 2
        assert math.isfinite(s["steps"]["median"])
    assert "paired_settled" in summary
    pair = summary["paired"]
    assert pair["seeds"] == [0, 1] and len(pair["differences_tanh_minus_relu"]) == 2
    assert pair["relu_fewer_layers"] + pair["tanh_fewer_layers"] + pair["ties"] == 2
    assert math.isfinite(pair["mean_difference"])
    # The Wilcoxon test exists as a field; with only ties (as in the quick run) it is undefined and says so.
    for key in ("wilcoxon_p_two_sided", "wilcoxon_p_tanh_more_layers"):
        p = pair[key]
        assert (p is None and "note" in pair) or (p is not None and 0.0 <= p <= 1.0)
    assert isinstance(summary["relu_fewer_layers_than_tanh"], str)

    import matplotlib.image

    image = matplotlib.image.imread(out / "betti_vs_depth.png")
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400
    pixels = image[..., :3].reshape(-1, 3)
    assert (pixels != pixels[0]).any(axis=1).mean() > 0.02  # far from one flat colour
    assert "first layer with b0(class a) = 1" in printed and "Wilcoxon" in printed
