"""The machine: the ``env`` stage (device, versions, CPU, date), the device to measure on and timing on it."""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
from collections.abc import Callable
from typing import Any

from _common import cpu_model, median_time, package_versions

from stages.results import update_results

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
    "numba",
    "llvmlite",
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


def versions() -> dict[str, str]:
    """Python's, the installed ones of ``VERSIONED`` and lightning-topo's."""
    import lightning_topo

    return {
        "python": platform.python_version(),
        **package_versions(VERSIONED),
        "lightning-topo": lightning_topo.__version__,
    }


def components() -> Any:
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


def measuring_device(dry: bool) -> Any:
    """The device to measure on: CUDA, or the CPU in --dry (or without CUDA)."""
    import torch

    if dry or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def time_call(fn: Callable[[], Any], on: Any, repeats: int, warmup: bool = True) -> tuple[float, Any]:
    """Median wall time (s) of ``fn()`` over ``repeats`` runs after one warm-up run, synchronising the device
    ``on``; and its last result."""
    import torch

    sync = (lambda: torch.cuda.synchronize(on)) if on.type == "cuda" else None
    return median_time(fn, repeats, warmup=warmup, sync=sync)


def stage_env(args: argparse.Namespace) -> None:
    """Device, versions, CPU and date."""
    import torch

    fields: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "cpu_model": cpu_model(),
        "cpu_threads": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "versions": versions(),
    }
    if torch.cuda.is_available() and not args.dry:
        props = torch.cuda.get_device_properties(0)
        fields.update(device=torch.cuda.get_device_name(), gpu_memory_bytes=props.total_memory)
    else:
        fields["device"] = "cpu (--dry run: no CUDA used)" if args.dry else "cpu (no CUDA device found)"
    cupy_ok, why = cupy_status()
    fields["cupy_available"] = cupy_ok and not args.dry
    fields["cupy_unavailable_reason"] = "--dry" if args.dry else (why or None)
    fields["auto_backend_cuda"] = None if args.dry else components().resolve_backend("auto", measuring_device(args.dry))
    update_results(args.out, **fields)
    print(json.dumps(fields, indent=2, default=str))
