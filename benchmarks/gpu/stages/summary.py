"""The ``summary`` stage: the CUDA tests' counts (pytest's junit xml), the stages' statuses (run.sh's file), the
goals, and a table of results.json."""

from __future__ import annotations

import argparse
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stages.results import FIXED_FIELDS, load_results, update_results


def junit_counts(path: Path) -> dict[str, Any] | None:
    """Test counts of a pytest junit xml (None when missing or unreadable)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    counts: dict[str, Any] = {"tests": 0, "passed": 0, "failed": 0, "errors": 0, "skipped": 0, "xfailed": 0}
    failed: list[str] = []
    for case in root.iter("testcase"):
        counts["tests"] += 1
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("failure") is not None:
            counts["failed"] += 1
            failed.append(name)
        elif case.find("error") is not None:
            counts["errors"] += 1
            failed.append(name)
        elif (skipped := case.find("skipped")) is not None:
            counts["xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"] += 1
        else:
            counts["passed"] += 1
    counts["failed_tests"] = failed
    return counts


def read_stages(path: Path | None) -> dict[str, Any]:
    """Stage statuses written by run.sh: one ``name<TAB>rc<TAB>seconds<TAB>cap`` line per stage."""
    stages: dict[str, Any] = {}
    if path is None or not path.exists():
        return stages
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) != 4:
            continue
        name, rc, seconds, cap = parts
        status = (
            "skipped" if rc == "skipped" else ("ok" if rc == "0" else ("timeout" if rc in ("124", "137") else "failed"))
        )
        stages[name] = {
            "status": status,
            "rc": None if rc == "skipped" else int(rc),
            "seconds": int(seconds),
            "cap": int(cap),
        }
    return stages


def _goal(goal: str, value: float | None, met: Callable[[float], bool]) -> dict[str, Any]:
    ok = value is not None and not (isinstance(value, float) and math.isnan(value))
    return {"goal": goal, "value": value, "met": bool(ok and met(value))}  # type: ignore[arg-type]


def stage_summary(args: argparse.Namespace) -> None:
    """Fill ``cuda_equals_cpu``, ``stages`` and ``goals``, and print the summary table."""
    stages = read_stages(args.stages_file)
    update_results(args.out, stages=stages)
    results = load_results(args.out)
    tests = junit_counts(args.out / "junit_cuda.xml")
    test_stage = stages.get("cuda_tests", {})
    if args.dry:
        cuda_equals_cpu = None
        why = "--dry: no CUDA device, the CUDA tests were collected and skipped"
    elif tests is None:
        cuda_equals_cpu, why = False, "no junit xml from the CUDA tests"
    else:
        ran = tests["passed"] + tests["failed"] + tests["errors"]
        cuda_equals_cpu = test_stage.get("rc") == 0 and ran > 0 and tests["failed"] == tests["errors"] == 0
        why = f"pytest -m cuda: rc {test_stage.get('rc')}, {tests['passed']} passed, {tests['failed']} failed, " + (
            f"{tests['errors']} errors, {tests['skipped']} skipped, {tests['xfailed']} xfailed"
        )
    ms = (results.get("per_volume_ms") or {}).get("64x56x56") or {}
    speedup = ms["cc3d"] / ms["auto"] if ms.get("cc3d") and ms.get("auto") else None
    goals = {
        "resnet18_eval_seconds": _goal("< 0.1 s (issue 22)", results.get("resnet18_eval_seconds"), lambda v: v < 0.1),
        "resnet18_224_eval_seconds": _goal(
            "< 1 s (2000 inputs)", results.get("resnet18_224_eval_seconds"), lambda v: v < 1
        ),
        "fit_overhead": _goal("<= 1.05", results.get("fit_overhead"), lambda v: v <= 1.05),
        "cuda_speedup_64x56x56": _goal(">= 20x (CPU path ms / CUDA path ms per volume)", speedup, lambda v: v >= 20),
        "persistence_h0h2_seconds": _goal(
            "< 1 s (200 inputs x 11 layers, issue 23; the faster backend)",
            min(
                (
                    v
                    for v in (results.get("persistence_h0h2_seconds"), results.get("persistence_h0h2_seconds_torch"))
                    if v is not None
                ),
                default=None,
            ),
            lambda v: v < 1,
        ),
    }
    update_results(
        args.out,
        cuda_equals_cpu=cuda_equals_cpu,
        cuda_tests=tests,
        cuda_equals_cpu_detail=why,
        goals=goals,
        cuda_uf_lean=lean_verdict(results, cuda_equals_cpu),
    )
    results = load_results(args.out)
    missing = [f for f in FIXED_FIELDS if f not in results]
    print_table(results, missing)


def lean_verdict(results: dict[str, Any], cuda_equals_cpu: bool | None = None) -> dict[str, Any]:
    """Whether the lean union-find kernels (``_cuda_unionfind.LEAN_KERNELS``) should be the default: the labelling
    calls' total time with and without them (stage ``sizes``), the 11-layer 224x224 input's (stage ``ccl``), the
    evaluations' (stage ``eval``), the fit's overhead (stage ``fit``), and whether every count agreed (the stages'
    and, unless ``cuda_equals_cpu`` is False, the CUDA tests', which compare them with the CPU too)."""
    rows = [r for r in results.get("ccl_sizes") or [] if isinstance(r.get("cuda_uf_ms"), float)]
    rows = [r for r in rows if isinstance(r.get("cuda_uf_lean_ms"), float)]
    classic, lean = sum(r["cuda_uf_ms"] for r in rows), sum(r["cuda_uf_lean_ms"] for r in rows)
    per_input = ((results.get("per_volume_ms") or {}).get("resnet18_224") or {}).get("per_input_11_layers_ms") or {}
    identical = (
        bool(rows)
        and bool(results.get("ccl_sizes_identical"))
        and bool(results.get("benchmark_backends_identical"))
        and cuda_equals_cpu is not False
    )
    speedup = classic / lean if rows and lean > 0 else None
    return {
        "calls": len(rows),
        "sizes_total_ms": classic if rows else None,
        "sizes_total_ms_lean": lean if rows else None,
        "sizes_speedup": speedup,
        "per_input_224_ms": per_input.get("cuda_uf"),
        "per_input_224_ms_lean": per_input.get("cuda_uf_lean"),
        "eval_seconds": results.get("resnet18_eval_seconds"),
        "eval_seconds_lean": results.get("resnet18_eval_seconds_lean"),
        "eval_224_seconds": results.get("resnet18_224_eval_seconds"),
        "eval_224_seconds_lean": results.get("resnet18_224_eval_seconds_lean"),
        "fit_overhead": results.get("fit_overhead"),
        "fit_overhead_lean": ((results.get("fit_lean") or {}).get("lean") or {}).get("overhead"),
        "fit_overhead_lean_side_stream": ((results.get("fit_lean") or {}).get("lean_side_stream") or {}).get(
            "overhead"
        ),
        "identical": identical,
        "suggested": bool(identical and speedup is not None and speedup > 1),
        # issue 22's goals with the lean kernels (None: not measured)
        "goals_met_lean": {
            "resnet18_eval_seconds": _below(results.get("resnet18_eval_seconds_lean"), 0.1),
            "resnet18_224_eval_seconds": _below(results.get("resnet18_224_eval_seconds_lean"), 1.0),
            "fit_overhead": _below(((results.get("fit_lean") or {}).get("lean") or {}).get("overhead"), 1.05, True),
        },
    }


def _below(value: Any, limit: float, inclusive: bool = False) -> bool | None:
    """Whether ``value`` is below ``limit`` (or equal, with ``inclusive``); None when it is not a number."""
    if not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return bool(value <= limit if inclusive else value < limit)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def print_table(results: dict[str, Any], missing: list[str]) -> None:
    """A short human-readable summary of results.json."""
    print("\n================ summary ================")
    for key in ("device", "torch_version", "cuda_version", "model", "cuda_equals_cpu", "cuda_equals_cpu_detail"):
        print(f"{key:28s} {_fmt(results.get(key))}")
    print(
        f"{'stages':28s} "
        + ", ".join(f"{k}:{v['status']}({v['seconds']}s)" for k, v in results.get("stages", {}).items())
    )
    per_volume = results.get("per_volume_ms") or {}
    rows = [(k, v) for k, v in per_volume.items() if k != "resnet18_224"]
    rows += [(f"r18 {k}", v) for k, v in ((per_volume.get("resnet18_224") or {}).get("shapes") or {}).items()]
    names = ("auto", "torch", "cupy", "cuda_uf", "cuda_uf_lean", "cc3d", "numba", "cripser")
    print(f"\n{'ms per volume':20s} " + " ".join(f"{b:>8s}" for b in names) + "  identical")
    for key, entry in rows:
        cells = " ".join(f"{_fmt(entry.get(b)):>8s}" for b in names)
        print(f"{key:20s} {cells}  {entry.get('identical')} {entry.get('cripser_agrees', '')}")
    per_input = (per_volume.get("resnet18_224") or {}).get("per_input_11_layers_ms") or {}
    if per_input:
        print(f"{'r18 224 per input':20s} " + " ".join(f"{_fmt(per_input.get(b)):>8s}" for b in names))
    sizes = results.get("ccl_sizes") or []
    if sizes:
        labellers = ("torch", "cupy", "cuda_uf", "cuda_uf_lean")
        header = " ".join(f"{b:>9s}" for b in labellers)
        print(f"\n{'labeller ms per call':28s} {header}     auto     betti  winner")
        for row in sizes:
            key = f"{row['input']:>3s} {'x'.join(map(str, row['shape']))} B={row['batch']}"
            cells = " ".join(f"{_fmt(row.get(b + '_ms')):>9s}" for b in labellers)
            print(f"{key:28s} {cells} {row['auto']:>8s} {_fmt(row.get('cubical_betti_auto_ms')):>9s}  {row['winner']}")
        print(f"suggested rule: {results.get('ccl_rule_suggested')}")
        print(f"lean union-find kernels: {results.get('cuda_uf_lean')}")
    print()
    for key in (
        "ccl_sizes_identical",
        "benchmark_backends_identical",
        "cripser_agrees",
        "resnet18_eval_seconds",
        "peak_gpu_memory_bytes",
        "resnet18_224_eval_seconds",
        "resnet18_224_eval_extrapolated",
        "fit_seconds_without_callback",
        "fit_seconds_with_callback",
        "fit_overhead",
    ):
        print(f"{key:32s} {_fmt(results.get(key))}")
    print("\ngoals:")
    for name, goal in (results.get("goals") or {}).items():
        print(f"  {name:28s} {goal['goal']:48s} value {_fmt(goal['value']):>10s}  met {goal['met']}")
    for text in results.get("notes") or []:
        print(f"note: {text}")
    if missing:
        print(f"MISSING FIELDS: {missing}")
