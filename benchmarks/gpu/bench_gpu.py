"""The stages of the GPU check (`benchmarks/gpu/run.sh` runs them; see README.md there for the fields).

    python benchmarks/gpu/bench_gpu.py STAGE --out OUTDIR [--dry]

Stages: ``init`` (results.json with every fixed field empty), ``env`` (device, versions, CPU),
``ccl`` (per-volume times of every connected-component backend, and whether all give the same Betti
numbers), ``sizes`` (both CUDA labellers per call at the batch sizes the callback buffers, and the size rule
those measurements suggest), ``eval`` (one TopologyCallback evaluation of ResNet18 on 2000 inputs, at 32x32
and 224x224), ``fit`` (fit time with and without the callback) and ``summary`` (CUDA test result, goals, a table).

Every stage merges its fields into ``OUTDIR/results.json`` as soon as it has them (atomic writes), so a
stage killed by its time cap keeps what it measured. ``--dry`` runs the same steps at tiny sizes on the
CPU (no CUDA): the "device" timings are then the torch backend on the CPU. A stage reads its time
budget in seconds from ``$STAGE_BUDGET`` and drops optional work (repeats, full-size runs) to fit it.

Only the public API is imported: ``lightning_topo.functional``, ``TopologyCallback``, ``analyse`` and
``lightning_topo.functional.components.count_components`` (whose module also names the backends).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import json
import math
import os
import platform
import statistics
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

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

# The 11 layers `layers="auto"` watches on torchvision's resnet18, and their output shapes at 224x224.
RESNET18_224_LAYERS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("conv1", (64, 112, 112)),
    ("bn1", (64, 112, 112)),
    ("relu", (64, 112, 112)),
    ("layer1.0", (64, 56, 56)),
    ("layer1.1", (64, 56, 56)),
    ("layer2.0", (128, 28, 28)),
    ("layer2.1", (128, 28, 28)),
    ("layer3.0", (256, 14, 14)),
    ("layer3.1", (256, 14, 14)),
    ("layer4.0", (512, 7, 7)),
    ("layer4.1", (512, 7, 7)),
)

VERSIONED = (
    "torch",
    "lightning",
    "torchmetrics",
    "torchvision",
    "numpy",
    "scipy",
    "connected-components-3d",
    "giotto-ph",
    "cripser",
    "cupy-cuda13x",
    "cupy-cuda12x",
    "cupy",
    "triton",
    "jsonargparse",
    "docstring-parser",
    "typeshed-client",
    "scikit-learn",
    "tqdm",
    "pytest",
)


# --------------------------------------------------------------------------------------------
# results.json
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> dict[str, str]:
    found: dict[str, str] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    import lightning_topo

    found["lightning-topo"] = lightning_topo.__version__
    return found


def _components() -> Any:
    """The module defining ``count_components`` (backend names, ``resolve_backend``)."""
    from lightning_topo.functional.components import count_components

    return importlib.import_module(count_components.__module__)


def cupy_status() -> tuple[bool, str]:
    """Whether CuPy (with ``cupyx.scipy.ndimage``) imports and sees a CUDA device; else why not."""
    try:
        import cupy
        import cupyx.scipy.ndimage  # noqa: F401

        return (True, "") if cupy.cuda.is_available() else (False, "CuPy sees no CUDA device")
    except Exception as err:
        return False, f"{type(err).__name__}: {err}"


def _device(dry: bool) -> Any:
    import torch

    if dry or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: Any, repeats: int, warmup: bool = True) -> tuple[float, Any]:
    """Median wall time (s) of ``fn()`` over ``repeats`` runs after one warm-up run; and its last result."""
    result = None
    if warmup:
        result = fn()
        _sync(device)
    times = []
    for _ in range(max(1, repeats)):
        _sync(device)
        start = time.perf_counter()
        result = fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def make_resnet18(dry: bool) -> tuple[Any, str]:
    """torchvision's ``resnet18(num_classes=10)`` when it imports (not in --dry), else the tests' equal one."""
    if not dry:
        try:
            from torchvision.models import resnet18

            return resnet18(num_classes=10), "torchvision.models.resnet18(num_classes=10)"
        except Exception as err:
            print(f"torchvision did not import ({type(err).__name__}: {err}); using tests/models.py's ResNet18")
    sys.path.insert(0, str(REPO / "tests"))
    from models import resnet18 as tests_resnet18

    width = 8 if dry else 64
    return tests_resnet18(width=width), f"tests/models.py resnet18(width={width})"


def make_classifier(net: Any) -> Any:
    """A minimal LightningModule around ``net`` (cross-entropy, SGD with momentum)."""
    import torch
    from lightning.pytorch import LightningModule

    class Classifier(LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return torch.nn.functional.cross_entropy(self(x), y)

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.log("val_loss", torch.nn.functional.cross_entropy(self(x), y))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)

    return Classifier()


def synthetic_images(n: int, size: int, classes: int = 10, seed: int = 0) -> Any:
    """A TensorDataset of ``n`` Gaussian 3 x size x size images with balanced labels 0..classes-1."""
    import torch
    from torch.utils.data import TensorDataset

    gen = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 3, size, size, generator=gen), torch.arange(n) % classes)


def make_trainer(dry: bool, callbacks: list[Any], **kwargs: Any) -> Any:
    """A quiet Trainer on the GPU (CPU in --dry): no logger, no checkpoints, no progress bar."""
    from lightning.pytorch import Trainer

    return Trainer(
        accelerator="cpu" if dry else "gpu",
        devices=1,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


# --------------------------------------------------------------------------------------------
# stage: init, env
# --------------------------------------------------------------------------------------------
def stage_init(args: argparse.Namespace) -> None:
    """Start results.json with every fixed field set to null."""
    base: dict[str, Any] = dict.fromkeys(FIXED_FIELDS)
    base.update({"dry": args.dry, "stages": {}, "notes": []})
    results_path(args.out).write_text(json.dumps(base, indent=2) + "\n")


def stage_env(args: argparse.Namespace) -> None:
    """Device, versions, CPU and date."""
    import torch

    fields: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "cpu_model": _cpu_model(),
        "cpu_threads": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "versions": _versions(),
    }
    if torch.cuda.is_available() and not args.dry:
        props = torch.cuda.get_device_properties(0)
        fields.update(device=torch.cuda.get_device_name(), gpu_memory_bytes=props.total_memory)
    else:
        fields["device"] = "cpu (--dry run: no CUDA used)" if args.dry else "cpu (no CUDA device found)"
    cupy_ok, why = cupy_status()
    fields["cupy_available"] = cupy_ok and not args.dry
    fields["cupy_unavailable_reason"] = "--dry" if args.dry else (why or None)
    fields["auto_backend_cuda"] = None if args.dry else _components().resolve_backend("auto", _device(args.dry))
    update_results(args.out, **fields)
    print(json.dumps(fields, indent=2, default=str))


# --------------------------------------------------------------------------------------------
# stage: ccl (per-volume times of every backend, identical results)
# --------------------------------------------------------------------------------------------
def relu_like(batch: int, shape: tuple[int, int, int], device: Any, seed: int) -> Any:
    """ReLU-like volumes: max(N(0, 1), 0) after a light 3x3 box blur over H and W (as conv maps are)."""
    import torch

    gen = torch.Generator(device=device).manual_seed(seed)
    noise = torch.randn(batch, *shape, generator=gen, device=device)
    return torch.relu(torch.nn.functional.avg_pool2d(noise, 3, stride=1, padding=1))


def mean_rule(vols: Any) -> Any:
    """The threshold rule "mean": each volume's own mean value (float64)."""
    import torch

    return vols.reshape(vols.shape[0], -1).mean(dim=1, dtype=torch.float64)


def cripser_betti(volume: Any, threshold: float) -> list[int]:
    """Betti numbers of {v <= t} from cripser: bars with birth <= t < death (essential: death = DBL_MAX)."""
    import cripser
    import numpy as np

    bars = cripser.computePH(np.asarray(volume, dtype=np.float64), maxdim=2)
    counts = [0, 0, 0]
    for dim, birth, death in bars[:, :3]:
        if birth <= threshold and (threshold < death or death >= np.finfo(np.float64).max):
            counts[int(dim)] += 1
    return counts


def auto_labeller(device: Any, shape: tuple[int, int, int, int]) -> str:
    """The labeller ``backend="auto"`` picks for a batch of masks of ``shape`` (B, D, H, W) on ``device``."""
    components = _components()
    auto = components.resolve_backend("auto", device)
    if device.type == "cuda" and auto == "cupy":
        rule = getattr(components, "cuda_auto_labeller", None)
        if rule is not None:
            return str(rule(tuple(shape)))
        if shape[-1] * shape[-2] < getattr(components, "CUDA_TORCH_BELOW_PIXELS", 0):
            return "torch"
    return str(auto)


def device_backends(device: Any) -> dict[str, str | None]:
    """Backends to time on ``device``: name -> None when it runs, else why not."""
    if device.type != "cuda":
        return {"torch": None}
    cupy_ok, why = cupy_status()
    return {"torch": None, "cupy": None if cupy_ok else why, "cuda_uf": None if cupy_ok else why}


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

    from lightning_topo.functional import cubical_betti

    vols = relu_like(batch, shape, device, seed)
    entry: dict[str, Any] = {"shape": list(shape), "batch": batch, "threshold": "mean"}
    results: dict[str, Any] = {}
    for name, why_not in device_backends(device).items():
        if why_not is not None:
            entry[name] = None
            entry[f"{name}_unavailable"] = why_not
            continue
        try:
            seconds, out = time_call(lambda b=name: cubical_betti(vols, mean_rule(vols), backend=b), device, repeats)
        except Exception as err:  # record and go on: one broken backend must not hide the others
            entry[name] = None
            entry[f"{name}_error"] = f"{type(err).__name__}: {err}"
            continue
        entry[name] = 1000 * seconds / batch
        results[name] = out.cpu()
    cpu_vols = vols[:cpu_batch].cpu()
    seconds, cpu_out = time_call(
        lambda: cubical_betti(cpu_vols, mean_rule(cpu_vols), backend="cc3d"), torch.device("cpu"), 1
    )
    entry["cc3d"] = 1000 * seconds / cpu_batch
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
    entry["identical"] = identical  # every backend that runs here gave the same Betti numbers as cc3d
    if n_cripser:
        thresholds = mean_rule(cpu_vols)
        start = time.perf_counter()
        agree = all(
            cripser_betti(cpu_vols[i].numpy(), float(thresholds[i])) == cpu_out[i].tolist() for i in range(n_cripser)
        )
        entry["cripser"] = 1000 * (time.perf_counter() - start) / n_cripser
        entry["cripser_volumes"] = n_cripser
        entry["cripser_agrees"] = agree
    entry["betti_mean"] = [round(float(x), 3) for x in cpu_out.double().mean(dim=0)]
    return entry


def _shape_key(shape: tuple[int, int, int]) -> str:
    return "x".join(str(s) for s in shape)


def _dry_shape(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    c, h, w = shape
    return max(2, c // 8), max(2, h // 4), max(2, w // 4)


def stage_ccl(args: argparse.Namespace) -> None:
    """Per-volume times of the CUDA backends, cc3d on the CPU and cripser, and whether all agree."""
    import torch

    budget = Budget(120)
    device = _device(args.dry)
    size = _dry_shape if args.dry else (lambda s: s)
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
        n_cripser = 1 if budget.left() > (0.5 if args.dry else 0.6) * budget.total else 0
        entry = bench_shape(size(shape), device, batch, cpu_batch, n_cripser, repeats=repeats, seed=10 + i)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        layer_shapes[_shape_key(shape)] = entry
        print(_shape_key(shape), json.dumps(entry))
        update_results(args.out, per_volume_ms={"resnet18_224": {"shapes": layer_shapes}})
    # One input through the 11 layers: the sum of the per-volume times of its layers' shapes.
    per_input: dict[str, float | None] = {}
    for name in ("auto", "torch", "cupy", "cuda_uf", "cc3d", "cripser"):
        times = [layer_shapes[_shape_key(s)].get(name) for _, s in RESNET18_224_LAYERS]
        per_input[name] = sum(times) if all(isinstance(t, float) for t in times) else None
    resnet = {
        "layers": {layer: _shape_key(s) for layer, s in RESNET18_224_LAYERS},
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
# The distinct output shapes of the 11 watched layers of resnet18 at 32x32 inputs (224x224: RESNET18_224_LAYERS).
RESNET18_32_SHAPES: tuple[tuple[int, int, int], ...] = ((64, 16, 16), (64, 8, 8), (128, 4, 4), (256, 2, 2), (512, 1, 1))


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


def _buffer_bytes() -> int:
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
            b0_s, b0 = time_call(lambda b=name: count_components(masks, 6, backend=b), device, repeats)
            b2_s, b2 = time_call(
                lambda b=name: count_components(complement, 26, bounded_only=True, backend=b), device, repeats
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
    (P, V from the measured values; 0 = that part off), against the current rule and the per-call best."""
    rows = [r for r in rows if isinstance(r.get("torch_ms"), float) and isinstance(r.get("cupy_ms"), float)]
    if not rows:
        return None
    pixels = sorted({0, *(r["pixels"] + 1 for r in rows)})
    stack = sorted({0, *(r["stack_voxels"] + 1 for r in rows)})

    def cost(p: int, v: int) -> float:
        return sum(r["torch_ms"] if (r["pixels"] < p or r["stack_voxels"] < v) else r["cupy_ms"] for r in rows)

    best = min(((cost(p, v), p, v) for p in pixels for v in stack), key=lambda t: (round(t[0], 6), t[1], t[2]))
    current = sum(r[f"{r['auto']}_ms"] if isinstance(r.get(f"{r['auto']}_ms"), float) else r["torch_ms"] for r in rows)
    return {
        "CUDA_TORCH_BELOW_PIXELS": best[1],
        "CUDA_TORCH_BELOW_STACK_VOXELS": best[2],
        "total_ms_suggested": best[0],
        "total_ms_current_rule": current,
        "total_ms_best_per_call": sum(min(r["torch_ms"], r["cupy_ms"]) for r in rows),
        "total_ms_all_torch": sum(r["torch_ms"] for r in rows),
        "total_ms_all_cupy": sum(r["cupy_ms"] for r in rows),
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
    device = _device(args.dry)
    backends = [b for b, why in device_backends(device).items() if why is None]
    inputs, forward_batch = (40, 8) if args.dry else (2000, 256)
    buffer_bytes = 2**16 if args.dry else _buffer_bytes()
    size = _dry_shape if args.dry else (lambda s: s)
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


# --------------------------------------------------------------------------------------------
# stage: eval (one callback evaluation of ResNet18 on 2000 inputs; 32x32 and 224x224)
# --------------------------------------------------------------------------------------------
def eval_breakdown(module: Any, inputs: Any, layers: list[str], dry: bool) -> dict[str, float]:
    """Where one evaluation's time goes: the forward pass over the sample alone (batches of 256, as the
    callback), and the Betti numbers of each watched layer's activations in one call (the accelerator path
    gathers them), plus their sum."""
    import torch

    from lightning_topo.functional import cubical_betti, sublevel_thresholds

    device = _device(dry)
    module = module.to(device).eval()
    outputs: dict[str, list[Any]] = {name: [] for name in layers}
    hooks = [
        module.get_submodule(name).register_forward_hook(
            lambda m, a, out, name=name: outputs[name].append(out.detach().clone())
        )
        for name in layers
    ]

    def forward() -> None:
        with torch.inference_mode():
            for start in range(0, len(inputs), 256):
                module(inputs[start : start + 256].to(device))

    forward()  # fill the activations once
    for h in hooks:
        h.remove()
    seconds, _ = time_call(forward, device, 3)
    result = {"forward_pass": seconds}
    total = 0.0
    for name in layers:
        volumes = torch.cat(outputs[name])
        seconds, _ = time_call(lambda v=volumes: cubical_betti(v, sublevel_thresholds(v, "mean")), device, 3)
        result[f"betti {name} {tuple(volumes.shape[1:])}"] = seconds
        total += seconds
    result["betti_all_layers"] = total
    return result


def callback_eval(
    module: Any, dataset: Any, dry: bool, samples_per_class: int | None, max_samples: int, runs: int
) -> tuple[list[float], int | None, Any]:
    """Seconds of each TopologyCallback evaluation over ``runs`` validate calls, peak GPU bytes of the last."""
    import torch
    from torch.utils.data import DataLoader

    from lightning_topo import TopologyCallback

    callback = TopologyCallback(samples_per_class=samples_per_class, max_samples=max_samples, charts=False)
    loader = DataLoader(dataset, batch_size=256)
    peak = None
    for run in range(runs):
        if run == runs - 1 and torch.cuda.is_available() and not dry:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        make_trainer(dry, [callback], limit_val_batches=1).validate(module, loader, verbose=False)
        if run == runs - 1 and torch.cuda.is_available() and not dry:
            peak = int(torch.cuda.max_memory_allocated())
    return list(callback.timings), peak, callback


def stage_eval(args: argparse.Namespace) -> None:
    """``resnet18_eval_seconds`` (2000 inputs of 3x32x32) and ``resnet18_224_eval_seconds`` (2000 at 224x224)."""
    import torch

    budget = Budget(120)
    torch.manual_seed(0)
    net, model_name = make_resnet18(args.dry)
    module = make_classifier(net)
    n, per_class = (40, 4) if args.dry else (2000, 200)
    timings, peak, callback = callback_eval(module, synthetic_images(n, 32), args.dry, per_class, n, runs=2)
    layers = callback.layer_names
    update_results(
        args.out,
        model=model_name,
        resnet18_eval_seconds=timings[-1],
        resnet18_eval_seconds_cold=timings[0],
        resnet18_eval_inputs=n,
        resnet18_eval_layers=layers,
        peak_gpu_memory_bytes=peak,
    )
    print(f"ResNet18 32x32: {n} inputs x {len(layers)} layers: {timings} s; peak {peak} bytes")
    breakdown = eval_breakdown(module, callback.sample.inputs, layers, args.dry)
    update_results(args.out, resnet18_eval_breakdown_seconds=breakdown)
    print(f"where the evaluation's time goes (s): {breakdown}")
    if len(layers) != 11:
        note(args.out, f"the automatic layer choice watched {len(layers)} layers, not 11: {layers}")

    # 224 x 224: measure on a part of the 2000 inputs; the whole 2000 when the budget allows.
    size, full = (64, 16) if args.dry else (224, 2000)
    first = 8 if args.dry else 256

    def record(seconds: float, measured: int, peak: int | None) -> None:
        update_results(
            args.out,
            resnet18_224_eval_seconds=seconds * full / measured,
            resnet18_224_eval_inputs_measured=measured,
            resnet18_224_eval_extrapolated=measured != full,
            resnet18_224_eval_input_size=size,
            peak_gpu_memory_bytes_224=peak,
        )
        print(f"ResNet18 {size}x{size}: {measured} inputs in {seconds:.3f} s; peak {peak} bytes")

    timings, peak, callback = callback_eval(module, synthetic_images(first, size), args.dry, None, first, runs=1)
    seconds, measured = timings[-1], len(callback.sample.labels)
    record(seconds, measured, peak)  # kept if the full run below does not finish
    if budget.left() > 2.5 * seconds * full / measured + 10:
        timings, peak, callback = callback_eval(module, synthetic_images(full, size), args.dry, None, full, runs=1)
        seconds, measured = timings[-1], len(callback.sample.labels)
        record(seconds, measured, peak)
    if measured != full:
        note(args.out, f"resnet18_224_eval_seconds is extrapolated linearly from {measured} inputs to {full}")
    if args.dry:
        note(args.out, f"--dry: the '224' evaluation used {size}x{size} inputs and {full} of them")


# --------------------------------------------------------------------------------------------
# stage: fit (time with / without TopologyCallback)
# --------------------------------------------------------------------------------------------
def stage_fit(args: argparse.Namespace) -> None:
    """2 epochs of ResNet18 on 20,000 synthetic 3x32x32 inputs, batch 256, with and without the callback."""
    import torch
    from torch.utils.data import DataLoader

    from lightning_topo import TopologyCallback

    budget = Budget(120)
    n_train, n_val, batch, per_class, max_samples = (128, 40, 64, 4, 40) if args.dry else (20000, 2000, 256, 200, 2000)
    train = DataLoader(synthetic_images(n_train, 32, seed=1), batch_size=batch, shuffle=True)
    val = DataLoader(synthetic_images(n_val, 32, seed=2), batch_size=batch)

    def fit(with_callback: bool, **trainer_args: Any) -> tuple[float, list[float]]:
        torch.manual_seed(0)
        net, _ = make_resnet18(args.dry)
        module = make_classifier(net)
        callbacks = [TopologyCallback(samples_per_class=per_class, max_samples=max_samples)] if with_callback else []
        trainer = make_trainer(args.dry, callbacks, **trainer_args)
        if not args.dry:
            torch.cuda.synchronize()
        start = time.perf_counter()
        trainer.fit(module, train, val)
        if not args.dry:
            torch.cuda.synchronize()
        return time.perf_counter() - start, list(callbacks[0].timings) if callbacks else []

    # Warm-up (CUDA context, cuDNN, CuPy kernels, one callback evaluation), not counted.
    warm, _ = fit(True, max_epochs=1, limit_train_batches=1 if args.dry else 3, limit_val_batches=1)
    runs: dict[str, list[float]] = {"without": [], "with": []}
    evaluations: list[float] = []
    order = ["without", "with"] if args.dry else ["without", "with", "with", "without", "without", "with"]
    for i, kind in enumerate(order):
        seconds, timings = fit(kind == "with", max_epochs=2)
        runs[kind].append(seconds)
        evaluations += timings
        with_s, without_s = statistics.mean(runs["with"] or [math.nan]), statistics.mean(runs["without"] or [math.nan])
        update_results(
            args.out,
            fit_seconds_with_callback=None if math.isnan(with_s) else with_s,
            fit_seconds_without_callback=None if math.isnan(without_s) else without_s,
            fit_overhead=None if math.isnan(with_s * without_s) else with_s / without_s,
            fit_runs=runs,
            fit_callback_evaluation_seconds=evaluations,
            fit_setup={
                "train_inputs": n_train,
                "val_inputs": n_val,
                "batch_size": batch,
                "epochs": 2,
                "callback": f"TopologyCallback(samples_per_class={per_class}, max_samples={max_samples})",
                "warmup_seconds": warm,
            },
        )
        print(f"fit {kind} callback: {seconds:.2f} s (callback evaluations {timings})")
        if i >= 1 and budget.left() < 1.5 * seconds + 5:
            note(args.out, f"fit: {i + 1} of {len(order)} timed fits done within the stage budget")
            break
    realistic_fit(args, budget)


def realistic_fit(args: argparse.Namespace, budget: Budget) -> None:
    """``fit_realistic``: the overhead on a realistic epoch (issue 22): ResNet18, 50,000 inputs of 3x32x32, batch
    256, ``bf16-mixed``, one epoch with and without the default ``TopologyCallback()`` (200 per class)."""
    import torch
    from torch.utils.data import DataLoader

    from lightning_topo import TopologyCallback

    n_train, n_val, batch = (256, 40, 64) if args.dry else (50000, 2000, 256)
    train = DataLoader(synthetic_images(n_train, 32, seed=3), batch_size=batch, shuffle=True)
    val = DataLoader(synthetic_images(n_val, 32, seed=4), batch_size=batch)
    precision = "32-true" if args.dry else "bf16-mixed"
    runs: dict[str, list[float]] = {"without": [], "with": []}
    for kind in ("without", "with", "with", "without"):
        if budget.left() < 20:
            note(args.out, "fit_realistic: stopped early for the stage budget")
            break
        torch.manual_seed(0)
        net, _ = make_resnet18(args.dry)
        callbacks = [TopologyCallback(samples_per_class=200, max_samples=2000)] if kind == "with" else []
        trainer = make_trainer(args.dry, callbacks, max_epochs=1, precision=precision)
        if not args.dry:
            torch.cuda.synchronize()
        start = time.perf_counter()
        trainer.fit(make_classifier(net), train, val)
        if not args.dry:
            torch.cuda.synchronize()
        runs[kind].append(time.perf_counter() - start)
        print(f"realistic fit {kind} callback: {runs[kind][-1]:.2f} s")
        if runs["with"] and runs["without"]:
            with_s, without_s = statistics.mean(runs["with"]), statistics.mean(runs["without"])
            update_results(
                args.out,
                fit_realistic={
                    "setup": f"ResNet18, {n_train} inputs of 3x32x32, batch {batch}, {precision}, 1 epoch; "
                    "TopologyCallback(samples_per_class=200, max_samples=2000), 11 layers",
                    "runs": runs,
                    "overhead": with_s / without_s,
                },
            )


# --------------------------------------------------------------------------------------------
# stage: summary (CUDA test result, stage statuses, goals, table)
# --------------------------------------------------------------------------------------------
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
    }
    update_results(args.out, cuda_equals_cpu=cuda_equals_cpu, cuda_tests=tests, cuda_equals_cpu_detail=why, goals=goals)
    results = load_results(args.out)
    missing = [f for f in FIXED_FIELDS if f not in results]
    print_table(results, missing)


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
    names = ("auto", "torch", "cupy", "cuda_uf", "cc3d", "cripser")
    print(f"\n{'ms per volume':20s} " + " ".join(f"{b:>8s}" for b in names) + "  identical")
    for key, entry in rows:
        cells = " ".join(f"{_fmt(entry.get(b)):>8s}" for b in names)
        print(f"{key:20s} {cells}  {entry.get('identical')} {entry.get('cripser_agrees', '')}")
    per_input = (per_volume.get("resnet18_224") or {}).get("per_input_11_layers_ms") or {}
    if per_input:
        print(f"{'r18 224 per input':20s} " + " ".join(f"{_fmt(per_input.get(b)):>8s}" for b in names))
    sizes = results.get("ccl_sizes") or []
    if sizes:
        labellers = ("torch", "cupy", "cuda_uf")
        header = " ".join(f"{b:>9s}" for b in labellers)
        print(f"\n{'labeller ms per call':28s} {header}     auto     betti  winner")
        for row in sizes:
            key = f"{row['input']:>3s} {'x'.join(map(str, row['shape']))} B={row['batch']}"
            cells = " ".join(f"{_fmt(row.get(b + '_ms')):>9s}" for b in labellers)
            print(f"{key:28s} {cells} {row['auto']:>8s} {_fmt(row.get('cubical_betti_auto_ms')):>9s}  {row['winner']}")
        print(f"suggested rule: {results.get('ccl_rule_suggested')}")
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


STAGES: dict[str, Callable[[argparse.Namespace], None]] = {
    "init": stage_init,
    "env": stage_env,
    "ccl": stage_ccl,
    "sizes": stage_sizes,
    "eval": stage_eval,
    "fit": stage_fit,
    "summary": stage_summary,
}


def main(argv: list[str] | None = None) -> None:
    """Run one stage."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--out", type=Path, required=True, help="output folder (results.json lives there)")
    parser.add_argument("--dry", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--stages-file", type=Path, default=None, help="summary: run.sh's stage status file")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.stage not in ("init", "summary"):
        import torch

        torch.manual_seed(0)
    STAGES[args.stage](args)


if __name__ == "__main__":
    main()
