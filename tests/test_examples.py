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
