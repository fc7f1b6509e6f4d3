"""CI's own guards: the pinned versions it installs are the ones the README names."""

from __future__ import annotations

import re
from pathlib import Path


def test_readme_names_the_pinned_versions() -> None:
    """The README's "Tested versions" are the versions CI installs (.ci/constraints.txt)."""
    root = Path(__file__).resolve().parents[1]
    pins = dict(
        line.split("==", 1) for line in (root / ".ci" / "constraints.txt").read_text().splitlines() if "==" in line
    )
    readme = (root / "README.md").read_text()
    block = readme[readme.index("<!-- versions:start -->") : readme.index("<!-- versions:end -->")]
    named = re.findall(r"([a-z][a-z0-9-]*) (\d[\w.]*)", block)
    assert len(named) >= 8
    for name, version in named:
        assert pins.get(name) == version, (name, version, pins.get(name))
    run = (root / ".ci" / "run").read_text()
    assert "-c .ci/constraints.txt" in run and f"torch=={pins['torch']}" in run
