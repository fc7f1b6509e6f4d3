"""Every docstring example in the package runs and prints what it says (the public API's runnable examples)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import warnings

import pytest

import lightning_topo

MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(lightning_topo.__path__, "lightning_topo.")
    if not name.endswith("__main__")
)


def test_the_public_api_has_examples() -> None:
    with_examples = set()
    for name in MODULES:
        finder = doctest.DocTestFinder()
        if any(t.examples for t in finder.find(importlib.import_module(name))):
            with_examples.add(name.rsplit(".", 1)[-1])
    assert {
        "analyse",
        "report",
        "ranking",
        "topology",
        "cubical",
        "rips",
        "complexity",
        "sampling",
        "config",
        "layerwise",
        "thresholds",
    } <= with_examples


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed (see the output above)"
