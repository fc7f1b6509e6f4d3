"""The README's "Performance on a GPU" section, built from ``benchmarks/gpu/results.json`` (a real GPU run).

    python benchmarks/gpu/report.py           # rewrite the section between the markers in README.md
    python benchmarks/gpu/report.py --check   # exit 1 if README.md differs from what results.json says (tests)

Nothing in the section is typed by hand: every number comes from the committed results.json, which
``bash benchmarks/gpu/run.sh OUTDIR`` writes on a GPU machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import sync_readme_section  # noqa: E402 - the benchmarks folder is not a package

RESULTS = ROOT / "benchmarks" / "gpu" / "results.json"
START, END = "<!-- gpu:start -->", "<!-- gpu:end -->"


def _ms(value: Any) -> str:
    return "-" if not isinstance(value, (int, float)) else (f"{value:.3g}" if value < 100 else f"{value:,.0f}")


def section(results: dict[str, Any]) -> str:
    """The Markdown section for ``results`` (the fields of benchmarks/gpu/README.md)."""
    lines = [
        f"Measured on one **{results['device']}** (torch {results['torch_version']}, CUDA {results['cuda_version']}; "
        f"host CPU {results.get('cpu_model', '?')}, {results.get('cpu_threads', '?')} threads; "
        f"{str(results.get('date', '?'))[:10]}) by `bash benchmarks/gpu/run.sh`. CUDA results equal the CPU's on "
        f"every CUDA test of the run: **{results['cuda_equals_cpu']}** ({results.get('cuda_equals_cpu_detail', '')}).",
        "",
        "Cubical Betti numbers (b0, b1, b2 at each volume's mean), milliseconds per volume, batches of 64 ReLU-like "
        "volumes; `auto` is what the callback uses on CUDA; every backend gave identical numbers "
        f"({results.get('benchmark_backends_identical')}), and cripser agreed ({results.get('cripser_agrees')}):",
        "",
        "| volume (C x H x W) | ours, CUDA (auto) | CUDA union-find kernel | CUDA torch rounds | CUDA cupy "
        "| ours, CPU (cc3d) | cripser (CPU) |",
        "|---|---|---|---|---|---|---|",
    ]
    per_volume = results.get("per_volume_ms", {})
    rows = [(key, entry) for key, entry in per_volume.items() if isinstance(entry, dict) and "auto" in entry]
    r18 = per_volume.get("resnet18_224", {})
    rows += [(f"ResNet18 at 224: {key}", entry) for key, entry in r18.get("shapes", {}).items()]
    for key, entry in rows:
        lines.append(
            f"| {key} | {_ms(entry.get('auto'))} | {_ms(entry.get('cuda_uf'))} | {_ms(entry.get('torch'))} | "
            f"{_ms(entry.get('cupy'))} | {_ms(entry.get('cc3d'))} | {_ms(entry.get('cripser'))} |"
        )
    per_input = r18.get("per_input_11_layers_ms")
    if isinstance(per_input, dict):
        lines.append(
            f"| ResNet18 at 224, one input's 11 layers | {_ms(per_input.get('auto'))} "
            f"| {_ms(per_input.get('cuda_uf'))} | {_ms(per_input.get('torch'))} | {_ms(per_input.get('cupy'))} "
            f"| {_ms(per_input.get('cc3d'))} | {_ms(per_input.get('cripser'))} |"
        )
    sizes = [r for r in results.get("ccl_sizes") or [] if r.get("why", "buffered") == "buffered"]
    if sizes:
        lines += [
            "",
            "Labelling per call (b0 + b2, milliseconds) at the batch sizes the callback buffers for 2000 inputs "
            f"(identical counts: {results.get('ccl_sizes_identical')}):",
            "",
            "| input | volume | batch | union-find kernel | torch rounds | cupy | `auto` |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in sizes:
            lines.append(
                f"| {r.get('input')} | {'x'.join(map(str, r.get('shape', [])))} | {r.get('batch')} | "
                f"{_ms(r.get('cuda_uf_ms'))} | {_ms(r.get('torch_ms'))} | {_ms(r.get('cupy_ms'))} | {r.get('auto')} |"
            )
    goals = results.get("goals", {})
    lines += ["", "| goal | target | measured | met |", "|---|---|---|---|"]
    for name, goal in goals.items():
        lines.append(f"| `{name}` | {goal.get('goal')} | {_ms(goal.get('value'))} | {goal.get('met')} |")
    breakdown = results.get("resnet18_eval_breakdown_seconds") or {}
    lines += [
        "",
        f"One `TopologyCallback` evaluation of torchvision's ResNet18 (11 layers) on 2000 inputs of 3x32x32 takes "
        f"{_ms(results.get('resnet18_eval_seconds'))} s (peak GPU memory "
        f"{(results.get('peak_gpu_memory_bytes') or 0) / 2**30:.2f} GiB); at 224x224, "
        f"{_ms(results.get('resnet18_224_eval_seconds'))} s. Fit of 2 epochs on 20,000 inputs: "
        f"{_ms(results.get('fit_seconds_without_callback'))} s without the callback, "
        f"{_ms(results.get('fit_seconds_with_callback'))} s with it (overhead {_ms(results.get('fit_overhead'))}x).",
    ]
    if results.get("fit_overhead_steady") is not None:
        hooks = results.get("fit_hook_seconds") or {}
        top = sorted(((v, k) for k, v in hooks.items() if v), reverse=True)[:3]
        lines.append(
            f"After the first epoch (the sample picked, the layers ordered) an epoch's overhead is "
            f"{_ms(results['fit_overhead_steady'])}x."
            + (
                " Seconds per fit in the callback's hooks on the training thread: "
                + ", ".join(f"`{k}` {_ms(v)}" for v, k in top)
                + "."
                if top
                else ""
            )
        )
    side = results.get("fit_side_stream") or {}
    if side.get("overhead") is not None:
        lines.append(
            f"With the Betti numbers on a side CUDA stream while Lightning validates (`capture.reduce.CUDA_OVERLAP`, "
            f"off by default until measured): overhead {_ms(side['overhead'])}x, "
            f"{_ms(side.get('overhead_steady'))}x after the first epoch."
        )
    lean = results.get("cuda_uf_lean") or {}
    if lean.get("calls"):
        lines.append(
            f"The lean union-find kernels (`_cuda_unionfind.LEAN_KERNELS`: left neighbours joined by a warp ballot, "
            f"no union another already implies, no compression pass; off by default until measured): the labelling "
            f"calls above {_ms(lean.get('sizes_total_ms_lean'))} ms against {_ms(lean.get('sizes_total_ms'))} "
            f"({_ms(lean.get('sizes_speedup'))}x), one 224x224 input's 11 layers "
            f"{_ms(lean.get('per_input_224_ms_lean'))} ms against {_ms(lean.get('per_input_224_ms'))}, the evaluations "
            f"{_ms(lean.get('eval_seconds_lean'))} s at 32x32 and {_ms(lean.get('eval_224_seconds_lean'))} s at "
            f"224x224, a fit's overhead {_ms(lean.get('fit_overhead_lean'))}x "
            f"({_ms(lean.get('fit_overhead_lean_side_stream'))}x with the side stream); "
            f"identical counts: {lean.get('identical')}; issue 22's goals met with them: "
            f"{lean.get('goals_met_lean')}."
        )
    realistic = results.get("fit_realistic") or {}
    if realistic.get("overhead") is not None:
        steady = realistic.get("overhead_steady")
        lines.append(
            f"On a realistic epoch ({realistic.get('setup')}): overhead {_ms(realistic['overhead'])}x"
            + (f", {_ms(steady)}x after the first epoch" if steady is not None else "")
            + " (seconds per fit: "
            + "; ".join(f"{k} " + ", ".join(f"{v:.2f}" for v in vals) for k, vals in realistic.get("runs", {}).items())
            + ")."
        )
    if breakdown:
        lines.append(
            f"Where an evaluation's time goes: the forward pass over the sample "
            f"{_ms(breakdown.get('forward_pass'))} s, "
            f"the Betti numbers of the 11 layers {_ms(breakdown.get('betti_all_layers'))} s (each layer's "
            "activations in one call); the rest is the callback's own work (sampling once, hooks, logging)."
        )
    wide = results.get("resnet18_224_eval_breakdown_seconds") or {}
    if wide:
        betti = {k.removeprefix("betti "): v for k, v in wide.items() if k.startswith("betti ")}
        slowest = sorted(betti.items(), key=lambda kv: -kv[1])[:3]
        lines.append(
            f"At 224x224, on {wide.get('inputs')} inputs: the forward pass {_ms(wide.get('forward_pass'))} s, the "
            f"Betti numbers {_ms(wide.get('betti_all_layers'))} s (slowest: "
            + ", ".join(f"{k} {_ms(v)} s" for k, v in slowest)
            + ")."
        )
    if results.get("persistence_h0h2_seconds") is not None:
        lines.append(
            f"Persistence diagrams (`cubical_persistence`) of {results.get('persistence_inputs')} inputs x "
            f"{len(results.get('persistence_layers') or [])} ResNet18 layers: H0 + H2 "
            f'{_ms(results["persistence_h0h2_seconds"])} s with `backend="numba"` (CUDA volumes computed on the '
            f'host CPU), {_ms(results.get("persistence_h0h2_seconds_torch"))} s with `backend="torch"` (contracted '
            f"on the device; the same diagrams: {results.get('persistence_torch_equals_numba')}), all three "
            f"dimensions {_ms(results.get('persistence_all_seconds'))} s; equal to "
            f"cripser on {results.get('persistence_volumes_checked')} volumes: "
            f"{results.get('persistence_equal_cripser')}."
        )
    overhead = goals.get("fit_overhead", {})
    if overhead and not overhead.get("met") and breakdown:
        per_epoch = (results.get("fit_seconds_without_callback") or 0) / 2
        stems = {k: v for k, v in breakdown.items() if k.startswith("betti ")}
        slowest = max(stems, key=stems.get) if stems else None
        lines.append(
            f"The fit-overhead goal is missed by {overhead['value'] / 1.05:.2f}x: an epoch of this fit lasts "
            f"{per_epoch:.2f} s on this card, so 1.05x leaves {0.05 * per_epoch:.3f} s per evaluation, while the "
            f"Betti numbers alone take {_ms(breakdown.get('betti_all_layers'))} s"
            + (f" (the slowest layer, {slowest.removeprefix('betti ')}, {_ms(stems[slowest])} s)" if slowest else "")
            + ". Meeting it needs the evaluation to overlap training (a side stream) or a smaller sample "
            "(`samples_per_class`, `every_n_epochs`). Peak GPU memory grows with the activations gathered per layer "
            "before one labelling call (up to 256 MiB per layer: `capture.reduce.ACCELERATOR_BUFFER_BYTES`)."
        )
    lines += cpu_threads_table(results)
    return "\n".join(lines) + "\n"


def cpu_threads_table(results: dict[str, Any]) -> list[str]:
    """The ``cpu_threads`` stage as a table: the CPU engine on the host's cores, against cripser (empty if absent)."""
    stage = results.get("cpu_thread_scaling") or {}
    layers, threads = stage.get("layers") or {}, [str(t) for t in stage.get("threads") or []]
    if not layers or not threads:
        return []
    lines = [
        "",
        f"The CPU engine on the host's cores ({results.get('cpu_model', '?')}; batches of {stage.get('batch')} "
        "volumes of ResNet18 activations of digits at 224x224, `bench_layers.py`'s): cripser's full computation per "
        "volume divided by ours, for the Betti numbers / H0 + H2 diagrams / all three diagrams, at each thread count "
        f"(identical to cripser: {results.get('cpu_thread_scaling_identical')}):",
        "",
        "| layer | shape | cripser ms | " + " | ".join(f"{t} thread{'s' if t != '1' else ''}" for t in threads) + " |",
        "|---|---|---|" + "---|" * len(threads),
    ]
    for name, row in layers.items():
        cells = [
            "/".join(_ms(row.get(key, {}).get(t)) for key in ("ratio_betti", "ratio_h0h2", "ratio_all"))
            for t in threads
        ]
        lines.append(
            f"| {name} | {'x'.join(map(str, row.get('shape', [])))} | {_ms(row.get('cripser_ms'))} | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    args = parser.parse_args(argv)
    if not RESULTS.is_file():
        text = "*No GPU run committed yet: `bash benchmarks/gpu/run.sh OUTDIR` on a GPU machine writes it.*\n"
    else:
        text = section(json.loads(RESULTS.read_text()))
    fix = "python benchmarks/gpu/report.py (its numbers come from benchmarks/gpu/results.json)"
    return sync_readme_section(START, END, text, args.check, "GPU section", fix)


if __name__ == "__main__":
    sys.exit(main())
