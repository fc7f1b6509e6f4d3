"""The ``eval`` stage: one TopologyCallback evaluation of ResNet18 on 2000 inputs, at 32x32 and at 224x224, and
where its time goes."""

from __future__ import annotations

import argparse
from typing import Any

from stages.environment import measuring_device, time_call
from stages.models import make_classifier, make_resnet18, make_trainer, synthetic_images
from stages.results import Budget, note, update_results


def eval_breakdown(module: Any, inputs: Any, layers: list[str], dry: bool) -> dict[str, float]:
    """Where one evaluation's time goes: the forward pass over the sample alone (batches of 256, as the
    callback), and the Betti numbers of each watched layer's activations in one call (the accelerator path
    gathers them), plus their sum."""
    import torch

    from lightning_topo.functional import cubical_betti, sublevel_thresholds

    device = measuring_device(dry)
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
    if budget.left() > 20 * seconds + 20:
        # Where the time goes at 224x224, on these inputs (each layer's activations of all of them in one call,
        # where the callback gathers 256 MiB at a time).
        breakdown = eval_breakdown(module, callback.sample.inputs, callback.layer_names, args.dry)
        update_results(args.out, resnet18_224_eval_breakdown_seconds={"inputs": measured, **breakdown})
        print(f"where a {size}x{size} evaluation of {measured} inputs spends its time (s): {breakdown}")
    if budget.left() > 2.5 * seconds * full / measured + 10:
        timings, peak, callback = callback_eval(module, synthetic_images(full, size), args.dry, None, full, runs=1)
        seconds, measured = timings[-1], len(callback.sample.labels)
        record(seconds, measured, peak)
    if measured != full:
        note(args.out, f"resnet18_224_eval_seconds is extrapolated linearly from {measured} inputs to {full}")
    if args.dry:
        note(args.out, f"--dry: the '224' evaluation used {size}x{size} inputs and {full} of them")
    lean_evals(args, module, budget, per_class, n, seconds * full / measured, size, full)


def lean_evals(
    args: argparse.Namespace,
    module: Any,
    budget: Budget,
    per_class: int,
    n: int,
    seconds_224: float,
    size: int,
    full: int,
) -> None:
    """The two evaluations again with the lean union-find kernels (``_cuda_unionfind.LEAN_KERNELS``), while the
    budget lasts: ``resnet18_eval_seconds_lean`` and ``resnet18_224_eval_seconds_lean`` (the whole ``full``
    inputs only; CUDA with CuPy only)."""
    from stages.labelling import LEAN, labeller, lean_measurable

    if not lean_measurable(args.dry):
        return
    with labeller(LEAN):
        if budget.left() > 30:
            timings, _, _ = callback_eval(module, synthetic_images(n, 32), args.dry, per_class, n, runs=2)
            update_results(args.out, resnet18_eval_seconds_lean=timings[-1])
            print(f"ResNet18 32x32, lean kernels: {timings} s")
        if budget.left() > 2.5 * seconds_224 + 10:
            timings, peak, callback = callback_eval(module, synthetic_images(full, size), args.dry, None, full, 1)
            if len(callback.sample.labels) == full:
                update_results(
                    args.out, resnet18_224_eval_seconds_lean=timings[-1], peak_gpu_memory_bytes_224_lean=peak
                )
                print(f"ResNet18 {size}x{size}, lean kernels: {full} inputs in {timings[-1]:.3f} s; peak {peak} bytes")
