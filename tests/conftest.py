from __future__ import annotations

import os
import sys

import pytest

# Let tests import shared helpers (`tests/oracles.py`, `tests/models.py`) as top-level modules.
sys.path.insert(0, os.path.dirname(__file__))


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers the test suite uses (so ``-m cuda`` selects without warnings); under pytest-xdist, hand
    out the test files in collection order (``SLOW_FIRST``)."""
    config.addinivalue_line(
        "markers", "cuda: needs a CUDA device (skipped without one); `pytest -m cuda` runs the CUDA equality tests"
    )
    # The slow files first (below): pytest-xdist's default order, by number of tests per file, started the 2-minute
    # one-test file test_relu_vs_tanh.py last, on one worker while the other had finished.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


SLOW_FIRST = (
    "test_cli.py",
    "test_examples.py",
    "test_readme.py",
    "test_relu_vs_tanh.py",
    "test_gpu_dry.py",
    "test_ddp.py",
    "test_new_user.py",
    "test_invariances.py",
)
"""Test files of more than a minute on the CI machine (`--durations`), longest first: ``-n 2 --dist loadfile`` hands
out files in collection order, so the long ones start early and the short ones fill in at the end."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Collect the files of ``SLOW_FIRST`` first, in that order; the others after them as collected (a stable sort
    by file: each file's tests stay together and in order)."""
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
