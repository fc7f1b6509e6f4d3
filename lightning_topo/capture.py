"""Where activations are captured: forward hooks that live for one pass over the sample.

:class:`ActivationCapture` registers a forward hook on each watched layer when entered and removes
them all when left (also on an exception). Each hook picks the tensor out of the layer's output,
detaches it and hands it to a ``reducer`` at once, keeping only the reduced value: no raw activation
outlives its forward call. :func:`run_on_sample` runs the sample through the model in eval mode under
``torch.inference_mode``, batch by batch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from lightning_topo.layers import get_submodule_by_user_name

__all__ = ["ActivationCapture", "first_tensor", "model_device", "run_on_sample"]


def first_tensor(output: Any) -> Tensor | None:
    """The output itself if a tensor, else the first tensor found in a tuple, list or dict (depth first)."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, Mapping):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            found = first_tensor(item)
            if found is not None:
                return found
    return None


class ActivationCapture:
    """Forward hooks on named layers for the duration of a ``with`` block.

    Args:
        model: the model whose layers are watched.
        layer_names: names as in ``model.named_modules()`` (DDP's ``module.`` and torch.compile's
            ``_orig_mod.`` prefixes may be left out).
        reducer: ``reducer(name, activation) -> value``, called inside the hook with the detached tensor;
            the value is appended to ``results[name]``.
        output_fn: picks the tensor from a layer output (default: :func:`first_tensor`).

    Attributes:
        results: ``{name: [value per forward call]}``.
        skipped: ``{name: reason}`` for layers whose output held no tensor.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
        >>> with ActivationCapture(net, ["1"], lambda name, x: x.shape) as cap:
        ...     _ = net(torch.zeros(2, 4))
        >>> cap.results["1"], len(net[1]._forward_hooks)
        ([torch.Size([2, 3])], 0)
    """

    def __init__(
        self,
        model: nn.Module,
        layer_names: Sequence[str],
        reducer: Callable[[str, Tensor], Any],
        *,
        output_fn: Callable[[Any], Tensor] | None = None,
    ) -> None:
        self.model = model
        self.layer_names = list(layer_names)
        self.reducer = reducer
        self.output_fn = output_fn
        self.results: dict[str, list[Any]] = {name: [] for name in self.layer_names}
        self.skipped: dict[str, str] = {}
        self._handles: list[RemovableHandle] = []

    def _hook(self, name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if name in self.skipped:
                return
            tensor = self.output_fn(output) if self.output_fn is not None else first_tensor(output)
            if not isinstance(tensor, Tensor):
                reason = (
                    f"its output is a {type(output).__name__} with no tensor in it; pass "
                    "`output_fn=` to pick the tensor to analyse"
                )
                self.skipped[name] = reason
                warnings.warn(f"layer '{name}' skipped: {reason}.", UserWarning, stacklevel=2)
                return
            self.results[name].append(self.reducer(name, tensor.detach()))

        # Never trace the hook into a torch.compile graph: the reducer runs NumPy / C labelling code.
        return torch.compiler.disable(hook)

    def __enter__(self) -> ActivationCapture:
        try:
            for name in self.layer_names:
                module = get_submodule_by_user_name(self.model, name)
                self._handles.append(module.register_forward_hook(self._hook(name)))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook this capture registered (idempotent)."""
        while self._handles:
            self._handles.pop().remove()


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for a model with neither."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def run_on_sample(
    model: nn.Module,
    inputs: Tensor,
    *,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    forward_fn: Callable[[nn.Module, Tensor], Any] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> None:
    """Run ``inputs`` through ``model`` in eval mode under ``torch.inference_mode``, batch by batch.

    Each batch is moved to ``device`` (default: the model's device). The model's training flags are
    restored afterwards, also when the forward pass raises. Outputs are discarded: hooks collect what
    is needed. ``on_batch(n)`` is called after each batch of ``n`` inputs (e.g. to advance a progress bar).
    """
    target = torch.device(device) if device is not None else model_device(model)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, inputs.shape[0], batch_size):
                batch = inputs[start : start + batch_size].to(target, non_blocking=True)
                if forward_fn is None:
                    model(batch)
                else:
                    forward_fn(model, batch)
                if on_batch is not None:
                    on_batch(len(batch))
    finally:
        for module, mode in modes.items():
            module.training = mode
