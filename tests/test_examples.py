"""The README's demo command runs and prints what it promises."""

from __future__ import annotations

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
