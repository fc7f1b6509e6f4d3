"""results.json: the fixed fields, atomic merges, notes, the ``init`` stage; and a stage's time budget."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

FIXED_FIELDS: tuple[str, ...] = (
    "device",
    "torch_version",
    "cuda_version",
    "cuda_equals_cpu",
    "per_volume_ms",
    "benchmark_backends_identical",
    "resnet18_eval_seconds",
    "fit_overhead",
    "fit_seconds_with_callback",
    "fit_seconds_without_callback",
    "peak_gpu_memory_bytes",
    "resnet18_224_eval_seconds",
    "goals",
    "versions",
    "date",
    "cpu_model",
    "cpu_threads",
)
"""Top-level fields of results.json that an outside check reads (present from the start, null until measured)."""


def results_path(out: Path) -> Path:
    """Where the results live."""
    return out / "results.json"


def load_results(out: Path) -> dict[str, Any]:
    """The results so far (an empty dict when there are none or the file is unreadable)."""
    try:
        return json.loads(results_path(out).read_text())
    except (OSError, ValueError):
        return {}


def update_results(out: Path, **fields: Any) -> None:
    """Merge ``fields`` into results.json (dict fields are merged one level deep), atomically."""
    results = load_results(out)
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(results.get(key), dict):
            results[key] = {**results[key], **value}
        else:
            results[key] = value
    tmp = results_path(out).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(results_path(out))


def note(out: Path, text: str) -> None:
    """Append a free-text note to results.json and print it."""
    print(f"note: {text}")
    notes = load_results(out).get("notes", [])
    update_results(out, notes=[*notes, text])


class Budget:
    """Seconds left of this stage's budget (``$STAGE_BUDGET``, default ``default``)."""

    def __init__(self, default: float) -> None:
        self.start = time.perf_counter()
        self.total = float(os.environ.get("STAGE_BUDGET", default))

    def left(self) -> float:
        """Seconds left."""
        return self.total - (time.perf_counter() - self.start)


def stage_init(args: argparse.Namespace) -> None:
    """Start results.json with every fixed field set to null."""
    base: dict[str, Any] = dict.fromkeys(FIXED_FIELDS)
    base.update({"dry": args.dry, "stages": {}, "notes": []})
    results_path(args.out).write_text(json.dumps(base, indent=2) + "\n")
