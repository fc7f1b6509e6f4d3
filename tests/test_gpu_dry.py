"""`benchmarks/gpu/run.sh --dry` keeps working on a CPU-only machine (the GPU check's every step, tiny sizes).

The dry run executes the same stages as the GPU run — CUDA test collection, connected-component
benchmarks of every backend that runs here, one callback evaluation of ResNet18, fit overhead, summary —
and must leave a results.json with every field the outside check reads.
"""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from lightning_topo.functional.components import resolve_backend

REPO = Path(__file__).resolve().parents[1]
CPU_AUTO = resolve_backend("auto", torch.device("cpu"))
"""The labeller ``backend="auto"`` uses on this machine's CPU (the dry run measures on the CPU)."""
RUN_SH = REPO / "benchmarks" / "gpu" / "run.sh"

# The field names an outside check reads (fixed: never rename them).
FIXED = (
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


def _bench_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_gpu", REPO / "benchmarks" / "gpu" / "bench_gpu.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stage_module(name: str) -> ModuleType:
    """``benchmarks/gpu/stages/<name>.py`` (bench_gpu.py puts the folders it imports from on ``sys.path``)."""
    _bench_module()
    return importlib.import_module(f"stages.{name}")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, float]:
    out = tmp_path_factory.mktemp("gpu_dry")
    env = {**os.environ, "PYTHON": sys.executable}
    start = time.perf_counter()
    proc = subprocess.run(
        ["bash", str(RUN_SH), "--dry", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=420
    )
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return json.loads((out / "results.json").read_text()), out, seconds


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_dry_run_writes_every_fixed_field(dry_run: tuple[dict[str, Any], Path, float]) -> None:
    results, out, _ = dry_run
    assert [f for f in FIXED if f not in results] == []
    assert sorted(p.name for p in out.iterdir()) == ["junit_cuda.xml", "log.txt", "results.json"]
    assert results["dry"] is True
    assert results["device"].startswith("cpu")
    assert results["torch_version"] == torch.__version__
    assert results["cuda_equals_cpu"] is None  # no CUDA here: not "true"
    assert "--dry" in results["cuda_equals_cpu_detail"]
    for stage in ("env", "cuda_tests", "ccl", "sizes", "eval", "fit", "persistence", "cpu_threads"):
        assert results["stages"][stage]["status"] == "ok", (stage, results["stages"][stage])
    # The CUDA tests were collected (and skipped, without CUDA): the file imports and the marker works.
    tests = results["cuda_tests"]
    assert tests["tests"] >= 20 and tests["passed"] == tests["failed"] == tests["errors"] == 0
    assert "summary" in (out / "log.txt").read_text()


def test_dry_run_benchmarks_are_sane(dry_run: tuple[dict[str, Any], Path, float]) -> None:
    results, _, _ = dry_run
    per_volume = results["per_volume_ms"]
    entries = [per_volume["64x56x56"], per_volume["256x14x14"], *per_volume["resnet18_224"]["shapes"].values()]
    assert len(per_volume["resnet18_224"]["shapes"]) == 5  # the distinct shapes of the 11 layers
    assert list(per_volume["resnet18_224"]["layers"]) == [
        "conv1",
        "bn1",
        "relu",
        "layer1.0",
        "layer1.1",
        "layer2.0",
        "layer2.1",
        "layer3.0",
        "layer3.1",
        "layer4.0",
        "layer4.1",
    ]
    for entry in entries:
        for backend in ("torch", "cc3d", "auto", "cripser"):
            assert _positive(entry[backend]), (entry["shape"], backend, entry)
        assert entry["identical"] is True and entry["cripser_agrees"] is True
        assert entry["auto_backend"] == CPU_AUTO  # on the CPU
        if CPU_AUTO == "numba":  # the fused kernel, timed beside cc3d, with the same numbers
            assert _positive(entry["numba"])
    per_input = per_volume["resnet18_224"]["per_input_11_layers_ms"]
    assert _positive(per_input["cc3d"]) and _positive(per_input["torch"])
    assert results["benchmark_backends_identical"] is True and results["cripser_agrees"] is True

    assert _positive(results["resnet18_eval_seconds"])
    assert len(results["resnet18_eval_layers"]) == 11
    assert _positive(results["resnet18_224_eval_seconds"])
    wide = results["resnet18_224_eval_breakdown_seconds"]  # where the 224x224 evaluation's time goes
    assert _positive(wide["forward_pass"]) and _positive(wide["betti_all_layers"]) and wide["inputs"] >= 1
    assert results["peak_gpu_memory_bytes"] is None  # no GPU
    with_s, without_s = results["fit_seconds_with_callback"], results["fit_seconds_without_callback"]
    assert _positive(with_s) and _positive(without_s)
    assert results["fit_overhead"] == pytest.approx(with_s / without_s)
    # Where the fit's time goes: each epoch's seconds, the overhead after the first epoch, the callback's hooks.
    epochs = results["fit_epoch_seconds"]
    assert [len(fit) for fit in epochs["with"]] == [2] and [len(fit) for fit in epochs["without"]] == [2]
    assert results["fit_overhead_steady"] == pytest.approx(epochs["with"][0][1] / epochs["without"][0][1])
    hooks = results["fit_hook_seconds"]
    assert _positive(hooks["on_validation_batch_start"]) and _positive(hooks["on_validation_epoch_end"])
    side = results["fit_side_stream"]  # capture.reduce.CUDA_OVERLAP on (no effect without CUDA)
    assert len(side["runs"]) == 1 and _positive(side["overhead"]) and _positive(side["overhead_steady"])
    assert side["overhead"] == pytest.approx(side["runs"][0] / without_s)
    realistic = results["fit_realistic"]
    assert [len(fit) for fit in realistic["epoch_seconds"]["with"]] == [2, 2] and _positive(
        realistic["overhead_steady"]
    )

    goals = results["goals"]
    assert set(goals) == {
        "resnet18_eval_seconds",
        "resnet18_224_eval_seconds",
        "fit_overhead",
        "cuda_speedup_64x56x56",
        "persistence_h0h2_seconds",
    }
    # Persistence diagrams of the sample (issue 23): timed, and equal to cripser on the volumes compared.
    assert _positive(results["persistence_first_call_seconds"])  # the kernels' compilation, kept out of the timings
    assert _positive(results["persistence_h0h2_seconds"]) and _positive(results["persistence_all_seconds"])
    assert len(results["persistence_layers"]) == 11 and results["persistence_volumes_checked"] == 22
    assert results["persistence_equal_cripser"] is True
    # Both backends timed on the same activations, with the same diagrams; the goal is the faster one's
    assert _positive(results["persistence_h0h2_seconds_torch"])
    assert results["persistence_torch_equals_numba"] is True
    assert "persistence_torch_peak_gpu_memory_bytes" in results  # null without CUDA
    fastest = min(results["persistence_h0h2_seconds"], results["persistence_h0h2_seconds_torch"])
    assert results["persistence_backend_suggested"] == (
        "torch" if results["persistence_h0h2_seconds_torch"] < results["persistence_h0h2_seconds"] else "numba"
    )
    assert goals["persistence_h0h2_seconds"]["value"] == fastest
    assert goals["persistence_h0h2_seconds"]["met"] is (fastest < 1)
    per_layer = results["persistence_per_layer_seconds"]
    assert len(per_layer) == 11 and all(_positive(entry["h0h2_torch"]) for entry in per_layer.values())
    # The lean union-find kernels: timed beside the classic ones on CUDA only; the verdict is written either way
    lean = results["cuda_uf_lean"]
    assert (
        lean["calls"] == 0 and lean["suggested"] is False and lean["eval_seconds"] == results["resnet18_eval_seconds"]
    )
    assert goals["resnet18_eval_seconds"]["value"] == results["resnet18_eval_seconds"]
    assert goals["resnet18_eval_seconds"]["met"] is (results["resnet18_eval_seconds"] < 0.1)
    assert goals["fit_overhead"]["met"] is (results["fit_overhead"] <= 1.05)
    main = per_volume["64x56x56"]
    assert goals["cuda_speedup_64x56x56"]["value"] == pytest.approx(main["cc3d"] / main["auto"])

    # The CPU engine on 1, 2, ... threads against cripser (issues 22 and 23), identical numbers.
    scaling = results["cpu_thread_scaling"]
    assert scaling["threads"] == ([1, 2] if (os.cpu_count() or 1) >= 2 else [1])
    assert list(scaling["layers"]) == ["layer3.0", "layer4.0"] and results["cpu_thread_scaling_identical"] is True
    for row in scaling["layers"].values():
        for key in ("betti_ms", "h0h2_ms", "all_ms", "ratio_betti", "ratio_h0h2", "ratio_all"):
            assert sorted(map(int, row[key])) == scaling["threads"] and all(map(_positive, row[key].values())), key
        assert row["ratio_h0h2"]["1"] == pytest.approx(row["cripser_ms"] / row["h0h2_ms"]["1"])

    versions = results["versions"]
    for name in ("torch", "numpy", "scipy", "lightning", "connected-components-3d", "giotto-ph", "cripser", "numba"):
        assert versions.get(name), name
    assert datetime.datetime.fromisoformat(results["date"]).tzinfo is not None
    assert results["cpu_model"] and results["cpu_threads"] >= 1


def test_dry_run_times_the_labellers_at_the_buffered_batch_sizes(dry_run: tuple[dict[str, Any], Path, float]) -> None:
    results, _, _ = dry_run
    rows = results["ccl_sizes"]
    assert {row["input"] for row in rows} == {"32", "224"}
    buffered = [row for row in rows if row["why"] == "buffered"]
    assert len({(row["input"], tuple(row["shape"])) for row in buffered}) == 10  # 5 layer shapes at each input size
    for row in rows:
        assert _positive(row["torch_ms"]) and _positive(row["torch_b0_ms"]) and _positive(row["torch_b2_ms"])
        assert _positive(row["cubical_betti_auto_ms"])
        assert row["identical"] is True and row["winner"] == "torch" and row["auto"] == CPU_AUTO
    assert results["ccl_sizes_identical"] is True
    assert results["ccl_rule_suggested"] is None  # no CuPy here: nothing to compare


def test_buffered_batches_follow_the_capture_buffer() -> None:
    bench = _stage_module("labelling")
    mib = 2**20
    assert bench.buffered_batches((64, 16, 16), 2000, 256, 256 * mib) == [2000]
    assert bench.buffered_batches((64, 56, 56), 2000, 256, 256 * mib) == [512, 512, 512, 464]
    assert bench.buffered_batches((64, 112, 112), 600, 256, 256 * mib) == [256, 256, 88]


def test_suggested_rule_fits_the_measurements() -> None:
    bench = _stage_module("labelling")
    rows = [  # torch wins below 400 pixels per plane, cupy above; "auto" used the union-find kernel
        {
            "pixels": h * w,
            "shape": [64, h, w],
            "batch": 8,
            "stack_voxels": 10**6,  # the same for all: the rule found is on pixels
            "torch_ms": t,
            "cupy_ms": c,
            "cuda_uf_ms": 0.5,
            "auto": "cuda_uf",
        }
        for h, w, t, c in ((7, 7, 1.0, 5.0), (14, 14, 2.0, 3.0), (28, 28, 6.0, 2.0), (56, 56, 9.0, 3.0))
    ]
    rule = bench.suggest_rule(rows)
    assert rule["CUDA_TORCH_BELOW_PIXELS"] == 197 and rule["CUDA_TORCH_BELOW_STACK_VOXELS"] == 0
    assert rule["total_ms_suggested"] == rule["total_ms_best_per_call"] == 8.0
    assert rule["total_ms_all_cupy"] == 13.0
    # The current constants (torch below 400 pixels per plane): torch for 7x7 and 14x14, cupy above; not what
    # "auto" used (the union-find kernel), which is reported beside it
    assert rule["total_ms_current_rule"] == 1.0 + 2.0 + 2.0 + 3.0
    assert rule["total_ms_auto"] == 2.0 and rule["auto_labellers"] == ["cuda_uf"]
    assert bench.suggest_rule([]) is None


def test_summary_records_failures_instead_of_hiding_them(tmp_path: Path) -> None:
    # A failed CUDA test, a timed-out stage and missing measurements must show up as such.
    bench = _bench_module()
    bench.main(["init", "--out", str(tmp_path)])
    (tmp_path / "junit_cuda.xml").write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_cuda" name="test_a"/>'
        '<testcase classname="tests.test_cuda" name="test_b"><failure message="x"/></testcase>'
        '<testcase classname="tests.test_cuda" name="test_c"><skipped type="pytest.xfail" message="y"/></testcase>'
        "</testsuite></testsuites>"
    )
    stages = tmp_path / "stages.tsv"
    stages.write_text("env\t0\t3\t60\ncuda_tests\t1\t40\t150\nccl\t124\t120\t120\nfit\tskipped\t0\t0\n")
    _stage_module("results").update_results(tmp_path, resnet18_eval_seconds=3.5, fit_overhead=1.01)
    bench.main(["summary", "--out", str(tmp_path), "--stages-file", str(stages)])
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["cuda_equals_cpu"] is False
    assert results["cuda_tests"]["failed_tests"] == ["tests.test_cuda::test_b"]
    assert results["cuda_tests"]["xfailed"] == 1 and results["cuda_tests"]["passed"] == 1
    assert {k: v["status"] for k, v in results["stages"].items()} == {
        "env": "ok",
        "cuda_tests": "failed",
        "ccl": "timeout",
        "fit": "skipped",
    }
    goals = results["goals"]
    assert goals["resnet18_eval_seconds"] == {"goal": "< 0.1 s (issue 22)", "value": 3.5, "met": False}
    assert goals["fit_overhead"]["met"] is True
    assert goals["cuda_speedup_64x56x56"] == {
        "goal": ">= 20x (CPU path ms / CUDA path ms per volume)",
        "value": None,
        "met": False,
    }
    assert all(field in results for field in FIXED)


def test_readme_gpu_section_matches_the_committed_results() -> None:
    """The README's "Performance on a GPU" numbers are generated from benchmarks/gpu/results.json."""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "gpu" / "report.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
