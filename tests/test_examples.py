"""The README's demo command runs and prints what it promises."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_engine_demo_prints_betti_numbers_per_layer() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "engine_demo.py"), "--per-class", "3"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert "30 digits (3 per class)" in out
    rows = [line for line in out.splitlines() if re.match(r"\d+:\w+\s", line)]
    assert len(rows) == 9  # one row per layer of the demo CNN
    for row in rows:
        b0, b1, b2, omega = (float(v) for v in row.split()[-4:])
        assert b0 >= 0 and b1 >= 0 and b2 >= 0 and abs(b0 + b1 + b2 - omega) < 0.02
    assert re.search(r"theta \(paper.*\) = [+-]\d", out)
    assert re.search(r"normalised decay .* = [+-]\d", out)


def test_quickstart_quick_mode_writes_csv_history_and_figures(tmp_path: Path) -> None:
    import json

    out = tmp_path / "qs"
    printed = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1, 2]
    header = (out / "metrics.csv").read_text().splitlines()[0]
    assert "topology/decay_rate" in header and "topology/net.0/omega" in header
    assert sorted(p.name for p in (out / "topology").iterdir()) == [
        "betti_vs_depth_epoch000.png",
        "betti_vs_depth_epoch001.png",
        "betti_vs_depth_epoch002.png",
        "decay.png",
        "omega_heatmap.png",
    ]
    assert "decay_rate: epoch 0" in printed


def _png_has_content(path: Path) -> None:
    import matplotlib.image

    pixels = matplotlib.image.imread(str(path))[..., :3].reshape(-1, 3)
    assert (pixels != pixels[0]).any(axis=1).mean() > 0.02, f"{path} looks blank"


def test_rank_models_quick_mode_ranks_every_model(tmp_path: Path) -> None:
    import json

    out = tmp_path / "rank"
    printed = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "rank_models.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    ).stdout
    results = json.loads((out / "results.json").read_text())
    models = results["models"]
    assert len(models) >= 6
    assert {"cnn", "mlp", "resnet"} <= {name.split("_")[0] for name in models}  # families
    assert len({m["layers"] for m in models.values()}) >= 3  # depths
    for name, m in models.items():
        assert m["theta"] is not None and math.isfinite(m["theta"]), name
        assert 0.0 <= m["accuracy"] <= 1.0
    ranked = results["ranking_by_theta"]["rows"]
    assert [r["theta"] for r in ranked] == sorted(r["theta"] for r in ranked)
    corr = results["ranking_by_theta"]["correlations"]
    assert set(corr) >= {"kendall_tau", "kendall_p", "spearman_rho", "spearman_p", "weighted_tau"}
    assert "Kendall tau" in printed
    _png_has_content(out / "theta_vs_accuracy.png")


def test_early_stopping_quick_mode_stops_before_max_epochs(tmp_path: Path) -> None:
    import json

    out = tmp_path / "es"
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "early_stopping.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    results = json.loads((out / "results.json").read_text())
    max_epochs = results["settings"]["max_epochs"]
    runs = {r["rule"]: r for r in results["runs"]}
    assert runs["none"]["epochs_run"] == max_epochs and not runs["none"]["stopped_early"]
    topo = runs["topology"]
    assert topo["stopped_early"] and topo["epochs_run"] < max_epochs, topo["reason"]
    assert len(topo["decay_rate"]) == topo["epochs_run"]
    _png_has_content(out / "early_stopping.png")


def test_readme_findings_match_the_committed_json() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "make_findings.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    readme = (ROOT / "README.md").read_text()
    findings = json.loads((ROOT / "docs/findings/relu_vs_tanh/results.json").read_text())
    paired = findings["summary"]["paired"]
    assert f"Wilcoxon signed-rank p = {paired['wilcoxon_p_two_sided']:.3g}" in readme
