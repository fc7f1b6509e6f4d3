from __future__ import annotations

import os
import sys

import pytest

# Let tests import shared helpers (`tests/oracles.py`, `tests/models.py`) as top-level modules.
sys.path.insert(0, os.path.dirname(__file__))


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers the test suite uses (so ``-m cuda`` selects without warnings)."""
    config.addinivalue_line(
        "markers", "cuda: needs a CUDA device (skipped without one); `pytest -m cuda` runs the CUDA equality tests"
    )
