"""The ``persistence`` stage (issue 23): persistence diagrams of a ResNet18 sample (200 inputs x 11 layers, 32x32
inputs), H0 + H2 against the goal (< 1 s) and all three dimensions, with equality against cripser on a few
volumes of each layer and cripser's time per volume on the same volumes."""

from __future__ import annotations

import argparse
import time
from typing import Any

from stages.environment import measuring_device, time_call
from stages.models import RESNET18_224_LAYERS, make_resnet18, synthetic_images
from stages.results import Budget, note, update_results


def layer_activations(module: Any, inputs: Any, layers: list[str], device: Any) -> dict[str, Any]:
    """Each watched layer's output for ``inputs`` (batches of 256), on ``device``."""
    import torch

    module = module.to(device).eval()
    outputs: dict[str, list[Any]] = {name: [] for name in layers}
    hooks = [
        module.get_submodule(name).register_forward_hook(
            lambda m, a, out, name=name: outputs[name].append(out.detach().clone())
        )
        for name in layers
    ]
    with torch.inference_mode():
        for start in range(0, len(inputs), 256):
            module(inputs[start : start + 256].to(device))
    for hook in hooks:
        hook.remove()
    return {name: torch.cat(parts) for name, parts in outputs.items()}


def cripser_pairs(volume: Any) -> dict[int, list[tuple[float, float]]]:
    """cripser's finite and essential pairs per dimension of one (C, H, W) float64 array, birth < death only."""
    import cripser
    import numpy as np

    ph = cripser.computePH(np.ascontiguousarray(volume, dtype=np.float64))
    out: dict[int, list[tuple[float, float]]] = {0: [], 1: [], 2: []}
    for dim, birth, death in ph[:, :3]:
        death = float("inf") if death >= np.finfo(np.float64).max / 2 else float(death)
        if birth < death:
            out[int(dim)].append((float(birth), death))
    return {k: sorted(v) for k, v in out.items()}


def ours_pairs(diagrams: Any, volume: int) -> dict[int, list[tuple[float, float]]]:
    return {
        k: sorted(map(tuple, diagrams.diagram(volume=volume, dim=k).cpu().tolist())) for k in diagrams.computed_dims
    }


def same_diagrams(a: Any, b: Any) -> bool:
    """The same pairs of the same volumes and dimensions, as multisets (the backends order a volume's pairs
    differently)."""
    import numpy as np

    def rows(d: Any) -> Any:
        table = np.column_stack([d.index.cpu().numpy(), d.dims.cpu().numpy(), d.pairs.cpu().numpy()])
        return table[np.lexsort(table.T[::-1])]

    return a.computed_dims == b.computed_dims and np.array_equal(rows(a), rows(b))


def stage_persistence(args: argparse.Namespace) -> None:
    """``persistence_h0h2_seconds`` (goal < 1 s; backend numba, on the host) and ``persistence_h0h2_seconds_torch``
    (backend torch, on the device), ``persistence_all_seconds``, per layer, cripser's per volume."""
    import numpy as np
    import torch

    from lightning_topo.functional import cubical_persistence

    budget = Budget(150)
    # The first call compiles the CPU kernels of every dimension (numba; about 30 s on a 2-core machine with a
    # cold cache): done here, once, and recorded, so that neither the timings nor the time checks below see it.
    start = time.perf_counter()
    cubical_persistence(torch.rand(1, 2, 3, 4), dims=(0, 1, 2))
    update_results(args.out, persistence_first_call_seconds=time.perf_counter() - start)
    torch.manual_seed(0)
    net, model_name = make_resnet18(args.dry)
    n = 20 if args.dry else 200
    inputs = synthetic_images(n, 32).tensors[0]
    device = measuring_device(args.dry)
    layers = [name for name, _ in RESNET18_224_LAYERS]  # the 11 layers the callback watches on ResNet18
    acts = layer_activations(net, inputs, layers, device)
    update_results(args.out, persistence_model=model_name, persistence_inputs=n, persistence_layers=layers)

    def all_layers(dims: tuple[int, ...], backend: str = "numba") -> Any:
        return {name: cubical_persistence(v, dims=dims, backend=backend) for name, v in acts.items()}

    h02, diagrams = time_call(lambda: all_layers((0, 2)), device, 3)
    update_results(args.out, persistence_h0h2_seconds=h02)
    print(f"H0 + H2 of {n} inputs x {len(layers)} layers (backend numba, on the host): {h02:.3f} s")
    # backend="torch": H0 and H2 contracted on the activations' device, the basins' union-find on the host
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    h02_torch, on_device = time_call(lambda: all_layers((0, 2), "torch"), device, 3)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    same = all(same_diagrams(diagrams[name], on_device[name]) for name in acts)
    update_results(
        args.out,
        persistence_h0h2_seconds_torch=h02_torch,
        persistence_torch_peak_gpu_memory_bytes=peak,
        persistence_torch_equals_numba=same,
        persistence_backend_suggested="torch" if h02_torch < h02 else "numba",
    )
    print(f"H0 + H2, backend torch (on {device.type}): {h02_torch:.3f} s; the same diagrams as numba's: {same}")
    per_layer = {}
    for name, v in acts.items():
        seconds, _ = time_call(lambda v=v: cubical_persistence(v, dims=(0, 2)), device, 1)
        seconds_torch, _ = time_call(lambda v=v: cubical_persistence(v, dims=(0, 2), backend="torch"), device, 1)
        per_layer[f"{name} {tuple(v.shape[1:])}"] = {"h0h2": seconds, "h0h2_torch": seconds_torch}
    if budget.left() > 20 * h02 + 20:
        everything, diagrams = time_call(lambda: all_layers((0, 1, 2)), device, 1)
        update_results(args.out, persistence_all_seconds=everything)
        print(f"H0 + H1 + H2 of {n} inputs x {len(layers)} layers: {everything:.3f} s")
        for name, v in acts.items():
            seconds, _ = time_call(lambda v=v: cubical_persistence(v, dims=(0, 1, 2)), device, 1)
            per_layer[f"{name} {tuple(v.shape[1:])}"]["all"] = seconds
    else:
        note(args.out, "persistence: the H0 + H1 + H2 run was skipped, out of time")
    update_results(args.out, persistence_per_layer_seconds=per_layer)

    # Equality with cripser, and cripser's time per volume, on the first volumes of each layer.
    equal, checked, cripser_ms, ours_ms = True, 0, {}, {}
    per_layer_volumes = 2 if args.dry else 3
    for name, v in acts.items():
        if budget.left() < 15:
            note(args.out, f"persistence: cripser comparison stopped before layer {name}, out of time")
            break
        part = v[:per_layer_volumes]
        start = time.perf_counter()
        ours = cubical_persistence(part, dims=tuple(diagrams[name].computed_dims))
        ours_ms[name] = 1000 * (time.perf_counter() - start) / len(part)
        host = part.detach().to("cpu", torch.float64).numpy()
        start = time.perf_counter()
        theirs = [cripser_pairs(host[i]) for i in range(len(part))]
        cripser_ms[name] = 1000 * (time.perf_counter() - start) / len(part)
        for i, expected in enumerate(theirs):
            got = ours_pairs(ours, i)
            same = all(np.array_equal(np.array(got[k]), np.array(expected[k])) for k in got)
            equal &= same
            checked += 1
            if not same:
                print(f"persistence differs from cripser: layer {name}, volume {i}")
    update_results(
        args.out,
        persistence_equal_cripser=equal,
        persistence_volumes_checked=checked,
        persistence_cripser_ms_per_volume=cripser_ms,
        persistence_ours_ms_per_volume=ours_ms,
    )
    print(f"equal to cripser on {checked} volumes: {equal}; cripser ms/volume {cripser_ms}; ours {ours_ms}")
    if device.type == "cuda":
        note(
            args.out,
            "persistence: backend numba copies CUDA volumes to the host; backend torch contracts H0 and H2 on the "
            "GPU (the basins' union-find and H1 on the host)",
        )
