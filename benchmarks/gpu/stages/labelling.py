"""Connected-component labelling on the device: the ``ccl`` stage (per-volume times of every backend on ReLU-like
volumes, and whether all give the Betti numbers of cc3d and cripser) and the ``sizes`` stage (both CUDA labellers
per call at the batch sizes the callback buffers, and the size rule those measurements suggest)."""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from _common import cripser_betti, relu_like

from stages.environment import components, cupy_status, measuring_device, time_call
from stages.models import RESNET18_32_SHAPES, RESNET18_224_LAYERS
from stages.results import Budget, note, update_results


# --------------------------------------------------------------------------------------------
# stage: ccl (per-volume times of every backend, identical results)
# --------------------------------------------------------------------------------------------
def auto_labeller(device: Any, shape: tuple[int, int, int, int]) -> str:
    """The labeller ``backend="auto"`` picks for a batch of masks of ``shape`` (B, D, H, W) on ``device``."""
    comps = components()
    auto = comps.resolve_backend("auto", device)
    if device.type == "cuda" and auto == "cupy":
        rule = getattr(comps, "cuda_auto_labeller", None)
        if rule is not None:
            return str(rule(tuple(shape)))
        if shape[-1] * shape[-2] < getattr(comps, "CUDA_TORCH_BELOW_PIXELS", 0):
            return "torch"
    return str(auto)


LEAN = "cuda_uf_lean"
"""Not a backend of ours: ``"cuda_uf"`` with ``_cuda_unionfind.LEAN_KERNELS`` on, timed beside it until it is the
default (see that flag)."""


@contextmanager
def labeller(name: str) -> Iterator[str]:
    """The ``backend`` to pass for ``name`` (``LEAN`` is ``"cuda_uf"``), with ``LEAN_KERNELS`` on for ``LEAN`` and
    off for ``"cuda_uf"`` meanwhile (the other backends run as configured)."""
    from lightning_topo.functional import _cuda_unionfind

    before = _cuda_unionfind.LEAN_KERNELS
    if name in ("cuda_uf", LEAN):
        _cuda_unionfind.LEAN_KERNELS = name == LEAN
    try:
        yield "cuda_uf" if name == LEAN else name
    finally:
        _cuda_unionfind.LEAN_KERNELS = before


def lean_measurable(dry: bool) -> bool:
    """Whether ``LEAN`` runs here: on CUDA with CuPy (the stages time it beside ``"cuda_uf"`` only then)."""
    return measuring_device(dry).type == "cuda" and cupy_status()[0]


def device_backends(device: Any) -> dict[str, str | None]:
    """Backends to time on ``device``: name -> None when it runs, else why not."""
    if device.type != "cuda":
        return {"torch": None}
    cupy_ok, why = cupy_status()
    return {
        "torch": None,
        "cupy": None if cupy_ok else why,
        "cuda_uf": None if cupy_ok else why,
        LEAN: None if cupy_ok else why,
    }


def cpu_backends() -> list[str]:
    """Our CPU paths timed beside the device's: cc3d always, and numba where it is the CPU default (it imports)."""
    import torch

    return ["cc3d", *(["numba"] if components().resolve_backend("auto", torch.device("cpu")) == "numba" else [])]


def bench_shape(
    shape: tuple[int, int, int],
    device: Any,
    batch: int,
    cpu_batch: int,
    n_cripser: int,
    repeats: int,
    seed: int,
) -> dict[str, Any]:
    """Per-volume ms of every backend on one batch of ReLU-like volumes (threshold rule "mean")."""
    import torch

    from lightning_topo.functional import cubical_betti, sublevel_thresholds

    vols = relu_like(batch, shape, device, seed)
    entry: dict[str, Any] = {"shape": list(shape), "batch": batch, "threshold": "mean"}
    results: dict[str, Any] = {}
    for name, why_not in device_backends(device).items():
        if why_not is not None:
            entry[name] = None
            entry[f"{name}_unavailable"] = why_not
            continue
        try:
            with labeller(name) as backend:
                seconds, out = time_call(
                    lambda b=backend: cubical_betti(vols, sublevel_thresholds(vols, "mean"), backend=b), device, repeats
                )
        except Exception as err:  # record and go on: one broken backend must not hide the others
            entry[name] = None
            entry[f"{name}_error"] = f"{type(err).__name__}: {err}"
            continue
        entry[name] = 1000 * seconds / batch
        results[name] = out.cpu()
    cpu_vols = vols[:cpu_batch].cpu()
    cpu_outs = {}
    for name in cpu_backends():  # our CPU paths: cc3d, and the fused numba kernel (the CPU default) where it imports
        seconds, cpu_outs[name] = time_call(
            lambda b=name: cubical_betti(cpu_vols, sublevel_thresholds(cpu_vols, "mean"), backend=b),
            torch.device("cpu"),
            1,
        )
        entry[name] = 1000 * seconds / cpu_batch
    cpu_out = cpu_outs["cc3d"]
    entry["cc3d_batch"] = cpu_batch
    auto = auto_labeller(device, (batch, *shape))  # what the callback uses on this device
    if entry.get(auto) is None and isinstance(entry.get("torch"), float):  # auto falls back to torch after an error
        auto = "torch"
    entry["auto_backend"] = auto
    entry["auto"] = entry.get(auto)
    failed = [key for key in entry if key.endswith("_error")]
    identical = bool(results) and not failed
    identical = identical and all(torch.equal(out, next(iter(results.values()))) for out in results.values())
    identical = identical and all(torch.equal(out[:cpu_batch], cpu_out) for out in results.values())
    identical = identical and all(torch.equal(out, cpu_out) for out in cpu_outs.values())
    entry["identical"] = identical  # every backend that runs here gave the same Betti numbers as cc3d
    if n_cripser:
        thresholds = sublevel_thresholds(cpu_vols, "mean")
        start = time.perf_counter()
        agree = all(
            cripser_betti(cpu_vols[i].numpy(), float(thresholds[i])) == cpu_out[i].tolist() for i in range(n_cripser)
        )
        entry["cripser"] = 1000 * (time.perf_counter() - start) / n_cripser
        entry["cripser_volumes"] = n_cripser
        entry["cripser_agrees"] = agree
    entry["betti_mean"] = [round(float(x), 3) for x in cpu_out.double().mean(dim=0)]
    return entry


def shape_key(shape: tuple[int, int, int]) -> str:
    return "x".join(str(s) for s in shape)


def dry_shape(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    c, h, w = shape
    return max(2, c // 8), max(2, h // 4), max(2, w // 4)


def stage_ccl(args: argparse.Namespace) -> None:
    """Per-volume times of the CUDA backends, cc3d on the CPU and cripser, and whether all agree."""
    import torch

    budget = Budget(120)
    device = measuring_device(args.dry)
    size = dry_shape if args.dry else (lambda s: s)
    repeats = 1 if args.dry else 3
    main_shapes = {"64x56x56": (64, 56, 56), "256x14x14": (256, 14, 14)}
    per_volume: dict[str, Any] = {}
    for i, (key, shape) in enumerate(main_shapes.items()):
        batch, cpu_batch = (8, 4) if args.dry else (64, 16)
        entry = bench_shape(
            size(shape), device, batch, cpu_batch, n_cripser=1 if args.dry else 2, repeats=repeats, seed=i
        )
        per_volume[key] = entry
        update_results(args.out, per_volume_ms={key: entry})
        print(key, json.dumps(entry))
    layer_shapes: dict[str, Any] = {}
    for i, shape in enumerate(dict.fromkeys(s for _, s in RESNET18_224_LAYERS)):
        big = shape[1] >= 112
        batch, cpu_batch = (8, 4) if args.dry else (64, 8 if big else 16)
        # cripser checks every shape in a rehearsal (tiny volumes); on the GPU machine only while time is left
        n_cripser = 1 if args.dry or budget.left() > 0.6 * budget.total else 0
        entry = bench_shape(size(shape), device, batch, cpu_batch, n_cripser, repeats=repeats, seed=10 + i)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        layer_shapes[shape_key(shape)] = entry
        print(shape_key(shape), json.dumps(entry))
        update_results(args.out, per_volume_ms={"resnet18_224": {"shapes": layer_shapes}})
    # One input through the 11 layers: the sum of the per-volume times of its layers' shapes.
    per_input: dict[str, float | None] = {}
    for name in ("auto", "torch", "cupy", "cuda_uf", LEAN, "cc3d", "numba", "cripser"):
        times = [layer_shapes[shape_key(s)].get(name) for _, s in RESNET18_224_LAYERS]
        per_input[name] = sum(times) if all(isinstance(t, float) for t in times) else None
    resnet = {
        "layers": {layer: shape_key(s) for layer, s in RESNET18_224_LAYERS},
        "shapes": layer_shapes,
        "per_input_11_layers_ms": per_input,
    }
    entries = [*per_volume.values(), *layer_shapes.values()]
    identical = all(e.get("identical") for e in entries)
    cripser_agrees = all(e.get("cripser_agrees", True) for e in entries)
    main = per_volume["64x56x56"]
    speedup = main["cc3d"] / main["auto"] if main.get("auto") else None
    update_results(
        args.out,
        per_volume_ms={"resnet18_224": resnet},
        benchmark_backends_identical=identical,
        cripser_agrees=cripser_agrees,
        cuda_speedup_64x56x56=speedup,
    )
    if args.dry:
        note(args.out, "--dry: the 'device' timings are the torch backend on the CPU, at reduced shapes")


# --------------------------------------------------------------------------------------------
# stage: sizes (both CUDA labellers per call at the batch sizes the callback buffers; a suggested rule)
# --------------------------------------------------------------------------------------------
def buffered_batches(shape: tuple[int, ...], inputs: int, forward_batch: int, buffer_bytes: int) -> list[int]:
    """The batch sizes of the reductions of one layer in a callback evaluation on an accelerator: forward batches
    of ``forward_batch`` float32 outputs gathered until they hold ``buffer_bytes`` (capture/reduce.py), the rest
    at the end."""
    per_input = 4 * math.prod(shape)
    calls, pending, left = [], 0, inputs
    while left:
        step = min(forward_batch, left)
        pending += step
        left -= step
        if pending * per_input >= buffer_bytes or not left:
            calls.append(pending)
            pending = 0
    return calls


def accelerator_buffer_bytes() -> int:
    """The bytes of one layer's outputs the callback gathers on an accelerator before one labelling call."""
    try:
        from lightning_topo.capture.reduce import ACCELERATOR_BUFFER_BYTES

        return int(ACCELERATOR_BUFFER_BYTES)
    except Exception:
        return 256 * 2**20


def time_labellers(masks: Any, device: Any, backends: list[str], repeats: int) -> dict[str, Any]:
    """Per-call seconds of ``count_components`` for the b0 call (6-connected, the masks) and the b2 call
    (26-connected bounded components of the complement) of each backend, their peak memory and counts."""
    import torch

    from lightning_topo.functional.components import count_components

    complement = ~masks
    out: dict[str, Any] = {}
    for name in backends:
        entry: dict[str, Any] = {}
        try:
            base = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            with labeller(name) as backend:
                b0_s, b0 = time_call(lambda b=backend: count_components(masks, 6, backend=b), device, repeats)
                b2_s, b2 = time_call(
                    lambda b=backend: count_components(complement, 26, bounded_only=True, backend=b), device, repeats
                )
            if device.type == "cuda":
                entry["peak_extra_bytes"] = int(torch.cuda.max_memory_allocated(device)) - base
            entry.update(b0_ms=1000 * b0_s, b2_ms=1000 * b2_s, call_ms=1000 * (b0_s + b2_s))
            entry["counts"] = torch.stack([b0, b2]).cpu()
        except Exception as err:  # one failing backend must not hide the others
            entry["error"] = f"{type(err).__name__}: {err}"
        out[name] = entry
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def suggest_rule(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The rule "torch if H*W < P or B*D*H*W < V, else cupy" with the least total time over the measured calls
    (P, V from the measured values; 0 = that part off), against that rule with the current constants and the
    per-call best of the two. The rule picks between torch and CuPy only: ``"auto"`` follows it when the union-find
    kernel is out of its order (``cuda_uf`` failed or dropped; see ``CUDA_AUTO_ORDER``), so ``total_ms_auto`` (what
    ``"auto"`` used, e.g. ``cuda_uf``) is beside it, not compared with it."""
    rows = [r for r in rows if isinstance(r.get("torch_ms"), float) and isinstance(r.get("cupy_ms"), float)]
    if not rows:
        return None
    from lightning_topo.functional.components import cuda_auto_labeller

    pixels = sorted({0, *(r["pixels"] + 1 for r in rows)})
    stack = sorted({0, *(r["stack_voxels"] + 1 for r in rows)})

    def cost(p: int, v: int) -> float:
        return sum(r["torch_ms"] if (r["pixels"] < p or r["stack_voxels"] < v) else r["cupy_ms"] for r in rows)

    best = min(((cost(p, v), p, v) for p in pixels for v in stack), key=lambda t: (round(t[0], 6), t[1], t[2]))
    current = sum(r[f"{cuda_auto_labeller((r['batch'], *r['shape']))}_ms"] for r in rows)
    auto = [r.get(f"{r['auto']}_ms") for r in rows]
    return {
        "CUDA_TORCH_BELOW_PIXELS": best[1],
        "CUDA_TORCH_BELOW_STACK_VOXELS": best[2],
        "total_ms_suggested": best[0],
        "total_ms_current_rule": current,
        "total_ms_best_per_call": sum(min(r["torch_ms"], r["cupy_ms"]) for r in rows),
        "total_ms_all_torch": sum(r["torch_ms"] for r in rows),
        "total_ms_all_cupy": sum(r["cupy_ms"] for r in rows),
        "total_ms_auto": sum(auto) if all(isinstance(a, float) for a in auto) else None,
        "auto_labellers": sorted({r["auto"] for r in rows}),
        "calls": len(rows),
    }


def stage_sizes(args: argparse.Namespace) -> None:
    """``ccl_sizes``: both CUDA labellers (and "auto") per call, at the batch sizes the callback buffers for every
    ResNet18 layer shape at 32x32 and 224x224 inputs (2000 inputs), then at extra batch sizes while the budget
    lasts; ``ccl_rule_suggested``: the size rule that fits these measurements best."""
    import torch

    from lightning_topo.functional import cubical_betti, sublevel_thresholds
    from lightning_topo.functional.cubical import as_volumes_3d, sublevel_masks

    budget = Budget(90)
    device = measuring_device(args.dry)
    backends = [b for b, why in device_backends(device).items() if why is None]
    inputs, forward_batch = (40, 8) if args.dry else (2000, 256)
    buffer_bytes = 2**16 if args.dry else accelerator_buffer_bytes()
    size = dry_shape if args.dry else (lambda s: s)
    shapes_224 = list(dict.fromkeys(s for _, s in RESNET18_224_LAYERS))
    plan: list[tuple[str, tuple[int, int, int], int, str]] = []  # (input, shape, batch, why)
    for label, shapes in (("32", RESNET18_32_SHAPES), ("224", shapes_224)):
        for shape in shapes:
            calls = buffered_batches(size(shape), inputs, forward_batch, buffer_bytes)
            plan += [(label, size(shape), b, "buffered") for b in dict.fromkeys(calls)]
    extra = (4, 16) if args.dry else (64, 256, 1024)
    for label, shapes in (("32", RESNET18_32_SHAPES), ("224", shapes_224)):
        for shape in shapes:
            done = {b for lab, s, b, _ in plan if s == size(shape) and lab == label}
            plan += [(label, size(shape), b, "extra") for b in extra if b not in done and b < max(done)]
    repeats = 1 if args.dry else 3
    rows: list[dict[str, Any]] = []
    identical = True
    for i, (label, shape, batch, why) in enumerate(plan):
        if budget.left() < (5 if args.dry else 15):
            note(args.out, f"sizes: {i} of {len(plan)} measurements done within the stage budget")
            break
        vols = relu_like(batch, shape, device, seed=100 + i)
        thresholds = sublevel_thresholds(vols, "mean")
        masks = sublevel_masks(as_volumes_3d(vols), thresholds)
        labellers = time_labellers(masks, device, backends, repeats if batch * math.prod(shape) < 2**27 else 2)
        auto = auto_labeller(device, (batch, *shape))
        seconds, _ = time_call(lambda v=vols, t=thresholds: cubical_betti(v, t), device, repeats)
        row: dict[str, Any] = {
            "input": label,
            "shape": list(shape),
            "batch": batch,
            "why": why,
            "pixels": shape[1] * shape[2],
            "stack_voxels": batch * math.prod(shape),
            "auto": auto,
            "cubical_betti_auto_ms": 1000 * seconds,
        }
        counts = [e["counts"] for e in labellers.values() if "counts" in e]
        same = all(torch.equal(c, counts[0]) for c in counts) and len(counts) == len(labellers)
        identical &= same
        row["identical"] = same
        for name, entry in labellers.items():
            row.update({f"{name}_{k}": v for k, v in entry.items() if k != "counts"})
            if "call_ms" in entry:
                row[f"{name}_ms"] = entry["call_ms"]
        winner = min(
            (b for b in labellers if isinstance(row.get(f"{b}_ms"), float)), key=lambda b: row[f"{b}_ms"], default=None
        )
        row["winner"] = winner
        rows.append(row)
        print(
            f"{label:>3s} {'x'.join(map(str, shape)):>10s} B={batch:<5d} "
            + " ".join(f"{b} {row.get(f'{b}_ms', float('nan')):8.2f} ms" for b in backends)
            + f"  auto={auto} betti {row['cubical_betti_auto_ms']:8.2f} ms  winner {winner}  identical {same}"
        )
        update_results(args.out, ccl_sizes=rows, ccl_sizes_identical=identical)
        del vols, masks
        if device.type == "cuda":
            torch.cuda.empty_cache()
    suggestion = suggest_rule(rows)
    update_results(args.out, ccl_rule_suggested=suggestion)
    print(f"suggested rule (torch if H*W < P or B*D*H*W < V): {json.dumps(suggestion)}")
