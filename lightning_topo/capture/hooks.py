"""Where activations are captured: forward hooks that live for one pass over the sample.

:class:`ActivationCapture` registers a forward hook on each watched layer when entered and removes
them all when left (also on an exception). Each hook picks the tensor out of the layer's output,
detaches it and hands it to a ``reducer`` at once, keeping only the reduced value: no raw activation
outlives its forward call. :func:`run_on_sample` runs the sample through the model in eval mode under
``torch.inference_mode`` (``torch.no_grad`` for a model whose forward pass needs autograd), batch by batch.

A module that runs more than once per forward pass (the PyTorch tutorial CNN's one ``self.pool``, a shared
activation) is a layer per call: its first call is ``name``, its second ``name#2``, and so on
(:data:`CALL_SEPARATOR`). Watching ``name`` watches the first call; :func:`trace_layers` expands a name into
all of its calls, in the order the forward pass runs them.
"""

from __future__ import annotations

import contextlib
import math
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from lightning_topo.capture.errors import (
    CaptureError,
    ForwardError,
    UnknownLayerError,
    error_text,
    plural,
    user_function_raised,
)
from lightning_topo.capture.layers import CALL_SEPARATOR, auto_layer_note, get_submodule_by_user_name, split_call
from lightning_topo.capture.tokens import TokenLayout, cubical_volumes, token_layout

__all__ = [
    "CALL_SEPARATOR",
    "ActivationCapture",
    "LayerTrace",
    "compiled_code_runs_eagerly",
    "execution_order",
    "first_tensor",
    "model_device",
    "model_dtype",
    "needs_autograd",
    "run_on_sample",
    "trace_layers",
    "watched_layers",
]


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


def _per_input(t: Tensor) -> str:
    """A tensor's shape without its batch axis, ``(B, 64, 32)`` (the same message for every batch size)."""
    return "(" + ", ".join(["B", *map(str, t.shape[1:])]) + ")" if t.ndim else "()"


def _top_level_tensors(output: Any) -> list[tuple[str, Tensor]]:
    """The tensors directly in a tuple, list or dict output, as ``(key or [position], tensor)``."""
    if isinstance(output, Mapping):
        return [(repr(k), v) for k, v in output.items() if isinstance(v, Tensor)]
    if isinstance(output, (tuple, list)):
        return [(f"[{i}]", v) for i, v in enumerate(output) if isinstance(v, Tensor)]
    return []


class ActivationCapture:
    """Forward hooks on named layers for the duration of a ``with`` block.

    Args:
        model: the model whose layers are watched.
        layer_names: names as in ``model.named_modules()`` (DDP's ``module.`` and torch.compile's
            ``_orig_mod.`` prefixes may be left out); ``name#k`` is the k-th call of a module that runs more than
            once per forward pass (plain ``name`` is its first call).
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
        #: The watched layers whose module ran, in the order of their first call (whatever their output held).
        self.ran: dict[str, None] = {}
        self._handles: list[RemovableHandle] = []
        # One hook per module; each call of it in a forward pass is told apart by a counter, reset per pass.
        self._calls: dict[str, dict[int, str]] = {}
        for name in self.layer_names:
            base, call = split_call(name)
            self._calls.setdefault(base, {})[call] = name
        self._count: dict[str, int] = {}
        self._told: set[str] = set()  # layers whose several-tensor output was pointed out
        self._several: dict[str, tuple[str, str]] = {}  # what each returns and which is read: one warning at the end

    def start_pass(self) -> None:
        """A new forward pass begins: the next call of each module is its first again (also done by a pre-hook on
        the model; :func:`run_on_sample` calls this before each batch, for a ``forward_fn`` that bypasses it)."""
        self._count.clear()

    def _hook(self, base: str) -> Callable[[nn.Module, Any, Any], None]:
        calls = self._calls[base]

        def hook(module: nn.Module, args: Any, output: Any) -> None:
            call = self._count.get(base, 0) + 1
            self._count[base] = call
            name = calls.get(call)
            if name is None:
                return
            self.ran.setdefault(name)
            if name in self.skipped:
                return
            tensor = (
                _call_output_fn(self.output_fn, output, name) if self.output_fn is not None else first_tensor(output)
            )
            if self.output_fn is None and not isinstance(output, Tensor) and name not in self._told:
                self._told.add(name)
                held = _top_level_tensors(output)
                if len(held) > 1:  # said when the capture ends, one warning for all such layers
                    self._several[name] = (
                        f"a {type(output).__name__} of {len(held)} tensors ("
                        + ", ".join(f"{key}: {_per_input(t)}" for key, t in held)
                        + ")",
                        held[0][0],
                    )
            if not isinstance(tensor, Tensor):
                reason = (
                    f"`output_fn` returned {type(tensor).__name__} for its {type(output).__name__} output; it must "
                    "return the tensor to analyse"
                    if self.output_fn is not None
                    else f"its output is a {type(output).__name__} with no tensor in it; pass "
                    "`output_fn=` to pick the tensor to analyse"
                )
                self.skipped[name] = reason
                warnings.warn(f"layer '{name}' skipped: {reason}.", UserWarning, stacklevel=1)
                return
            try:
                reduced = self.reducer(name, tensor.detach())
            except Exception as err:
                err.__dict__[_OURS] = True  # our reduction failed, not the user's model: passed on as it is
                raise
            self.results[name].append(reduced)

        # Never trace the hook into a torch.compile graph: the reducer runs NumPy / C labelling code.
        return torch.compiler.disable(hook)

    def __enter__(self) -> ActivationCapture:
        self.start_pass()
        try:
            self._handles.append(self.model.register_forward_pre_hook(lambda *_: self.start_pass()))
            for base in self._calls:
                module = get_submodule_by_user_name(self.model, base)
                self._handles.append(module.register_forward_hook(self._hook(base)))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.remove()
        if exc_type is None and self._several:
            said = list(self._several.items())
            self._several.clear()
            if len(said) == 1:
                name, (what, first) = said[0]
                text = f"layer '{name}' returns {what}; the first, {first}, is analysed."
            else:  # a model whose blocks all return tuples (HF Swin's stages): one warning, not one per layer
                text = (
                    f"{len(said)} layers return several tensors, and the first of each is analysed: "
                    + "; ".join(f"'{name}' {what}" for name, (what, _) in said)
                    + "."
                )
            # stacklevel=1: one place in the code, so that Python's filter says it once however many passes run
            warnings.warn(f"{text} Pass `output_fn=` to pick another.", UserWarning, stacklevel=1)

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


def model_dtype(model: nn.Module) -> torch.dtype | None:
    """The floating dtype of the model's first floating parameter (or buffer); ``None`` for a model with none."""
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def compiled_code_runs_eagerly() -> contextlib.AbstractContextManager[Any]:
    """Inside it, code compiled with ``torch.compile`` runs as plain Python, without compiling or recompiling
    (``torch.compiler.set_stance("force_eager")``; a no-op where torch lacks it).

    The sample's pass runs in it: our forward hooks break a compiled graph at each watched module, and the sample's
    batch shapes and ``inference_mode`` differ from training's, so a compiled model would recompile for them (19
    times for the PyTorch tutorial CNN) and could reach dynamo's ``recompile_limit``, past which it runs eagerly in
    training too. The numbers are the same: the model's own Python code runs. It sets torch's stance for the whole
    process while the pass runs, on the thread that trains (nothing compiled runs elsewhere meanwhile), and restores
    it after."""
    set_stance = getattr(getattr(torch, "compiler", None), "set_stance", None)
    return set_stance("force_eager") if set_stance is not None else contextlib.nullcontext()


_NEEDS_AUTOGRAD: weakref.WeakValueDictionary[int, nn.Module] = weakref.WeakValueDictionary()
"""Models (by ``id``) whose forward pass failed under ``torch.inference_mode`` and ran under ``torch.no_grad``
(:func:`run_on_sample` with ``probe=True``): their later passes run under ``torch.no_grad`` at once."""


def needs_autograd(model: nn.Module) -> bool:
    """Whether the sample's passes through ``model`` run under ``torch.no_grad`` rather than
    ``torch.inference_mode``: its forward pass failed under the latter and ran under the former (a model that
    computes gradients in its forward pass, trained with ``Trainer(inference_mode=False)``)."""
    return _NEEDS_AUTOGRAD.get(id(model)) is model


def run_on_sample(
    model: nn.Module,
    inputs: Tensor,
    *,
    batch_size: int = 64,
    forward_fn: Callable[[nn.Module, Tensor], Any] | None = None,
    on_batch: Callable[[int], None] | None = None,
    on_batch_start: Callable[[], None] | None = None,
    probe: bool = False,
) -> None:
    """Run ``inputs`` through ``model`` in eval mode under ``torch.inference_mode``, batch by batch (code compiled
    with ``torch.compile`` run as plain Python: :func:`compiled_code_runs_eagerly`).

    The forward pass runs where the model lives: each batch is moved to the model's device, and floating-point
    inputs are cast to the model's floating dtype (a model trained with ``precision="64-true"`` gets float64).
    The model's training flags are restored afterwards, also when the forward pass raises. Outputs are
    discarded: hooks collect what is needed. ``on_batch_start()`` is called before and ``on_batch(n)`` after each
    batch of ``n`` inputs.

    With ``probe`` (the first pass through a model, :func:`trace_layers`, whose hooks may see a batch twice), a
    forward pass that fails under ``torch.inference_mode`` is run again under ``torch.no_grad``, as Lightning's
    validation runs with ``Trainer(inference_mode=False)`` (a model that computes gradients in its forward pass
    needs it; the values are the same); where that succeeds, a warning says so and every later pass through the
    model runs so (:func:`needs_autograd`). Where it fails too, the first error is raised.
    """
    target = model_device(model)
    dtype = model_dtype(model)
    modes = {m: m.training for m in model.modules()}
    model.eval()

    def passes(grad_mode: contextlib.AbstractContextManager[Any]) -> None:
        with grad_mode, compiled_code_runs_eagerly():
            for start in range(0, inputs.shape[0], batch_size):
                batch = inputs[start : start + batch_size]
                if dtype is not None and batch.is_floating_point():
                    batch = batch.to(target, dtype=dtype, non_blocking=True)
                else:
                    batch = batch.to(target, non_blocking=True)
                if on_batch_start is not None:
                    on_batch_start()
                try:
                    if forward_fn is None:
                        model(batch)
                    else:
                        forward_fn(model, batch)
                except _PASSED_THROUGH:
                    raise
                except Exception as err:
                    if err.__dict__.get(_OURS):
                        raise
                    raise ForwardError(_forward_message(err, batch, forward_fn)) from err
                if on_batch is not None:
                    on_batch(len(batch))

    try:
        if needs_autograd(model):
            passes(torch.no_grad())
            return
        try:
            passes(torch.inference_mode())
        except ForwardError as err:
            if not probe or torch.is_inference_mode_enabled():  # no_grad inside inference mode changes nothing
                raise
            try:
                passes(torch.no_grad())
            except ForwardError:
                raise err from err.__cause__  # the first failure, not the retry's
            _NEEDS_AUTOGRAD[id(model)] = model
            cause = err.__cause__
            warnings.warn(
                f"the forward pass of {type(model).__name__} fails under torch.inference_mode ("
                f"{type(cause).__name__}: {cause}) and runs under torch.no_grad: the topology sample of this model "
                "runs under torch.no_grad from now on, as Lightning's validation does with "
                "Trainer(inference_mode=False) (same values, a little more memory).",
                stacklevel=2,
            )
    finally:
        for module, mode in modes.items():
            module.training = mode


_PASSED_THROUGH = (CaptureError, torch.cuda.OutOfMemoryError, MemoryError)
"""Raised by the forward pass and passed on as they are: our own errors (with their messages), out of memory."""

_OURS = "_lightning_topo_reduction"
"""Set in the ``__dict__`` of an exception a hook's reduction raised (a kernel, CuPy's ordering check): passed on
as it is, not as the model's :class:`ForwardError`."""


def _call_output_fn(output_fn: Callable[[Any], Tensor], output: Any, name: str) -> Any:
    """``output_fn(output)``, its exceptions a :class:`ForwardError` naming the layer and the function."""
    try:
        return output_fn(output)
    except Exception as err:
        raise ForwardError(
            f"{user_function_raised('output_fn', output_fn, err)} on the output of layer '{name}' (a "
            f"{type(output).__name__}); it must take every watched layer's output and return the tensor to analyse."
        ) from err


def _forward_message(err: Exception, batch: Tensor, forward_fn: Callable[..., Any] | None) -> str:
    """What a failed forward pass on the sample says: the call, the batch, the error and the fix."""
    shape = f"a batch of shape {tuple(batch.shape)} ({str(batch.dtype).removeprefix('torch.')})"
    if forward_fn is None:
        return (
            f"the forward pass `model(inputs)` on {shape} of the topology sample raised {type(err).__name__}: "
            f"{error_text(err)}. "
            "If the model takes its input another way, pass `forward_fn=lambda model, inputs: ...` (and `input_fn=` "
            "to pick the input from a validation batch)."
        )
    return (
        f"{user_function_raised('forward_fn', forward_fn, err)} on {shape} of the topology sample; it is called "
        "as forward_fn(model, inputs) with a tensor of sampled inputs (as `input_fn` picked them from a batch)."
    )


@dataclass
class LayerTrace:
    """Where the watched layers run in one forward pass (:func:`trace_layers`).

    Attributes:
        order: the layers in the order the forward pass runs them, a module that runs more than once expanded
            into one layer per call (``name``, ``name#2``, ...).
        never_run: requested layers the forward pass did not run (watching them would give no value).
        no_tensor: requested layers that ran but whose output holds no tensor (skipped, with a warning naming
            ``output_fn``).
        calls: how many times each requested module ran in the pass (modules that never ran are left out).
        shapes: the shape of one input's output (the tensor analysed) of each layer in ``order``.
        skipped: why each layer of ``no_tensor`` gave no tensor.
        leading: the size of the first axis of each layer's output (the tensor analysed) in the pass: the number
            of inputs for a batch-first layer.
    """

    order: list[str]
    never_run: list[str]
    no_tensor: list[str] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    leading: dict[str, int] = field(default_factory=dict)


def trace_layers(
    model: nn.Module,
    probe: Tensor,
    layer_names: Sequence[str],
    *,
    forward_fn: Callable[[nn.Module, Tensor], Any] | None = None,
    output_fn: Callable[[Any], Tensor] | None = None,
    inspect: Callable[[str, Tensor], None] | None = None,
) -> LayerTrace:
    """Run ``probe`` (one or a few inputs) once and see where ``layer_names`` run (``output_fn``, when given, is
    tried on each of their outputs: a failing one raises :class:`ForwardError` here, before any evaluation).

    A plain name of a module that runs more than once per forward pass stands for all of its calls; ``name#k``
    stands for its k-th call only. ``inspect(name, output)``, when given, sees each requested layer's output (the
    tensor analysed) once, inside its hook: a check that raises stops the pass with that error.

    Example:
        >>> class Net(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.fc, self.act, self.unused = nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)
        ...     def forward(self, x):
        ...         return self.act(self.fc(self.act(x)))
        >>> trace = trace_layers(Net(), torch.zeros(1, 2), ["fc", "act", "unused"])
        >>> trace.order, trace.never_run, trace.calls, trace.shapes["fc"]
        (['act', 'fc', 'act#2'], ['unused'], {'act': 2, 'fc': 1}, (2,))
    """
    requested = list(dict.fromkeys(layer_names))
    bases = list(dict.fromkeys(split_call(name)[0] for name in requested))
    # Watch up to 64 calls of each module: the calls that run tell how many layers a module is.
    probe_names = [base if k == 1 else f"{base}{CALL_SEPARATOR}{k}" for base in bases for k in range(1, 65)]
    shapes: dict[str, tuple[int, ...]] = {}
    leading: dict[str, int] = {}

    def record(name: str, tensor: Tensor) -> None:
        if name in shapes:
            return
        shapes[name] = tuple(tensor.shape[1:])
        leading[name] = int(tensor.shape[0]) if tensor.ndim else 1
        base, call = split_call(name)
        if inspect is not None and (name in requested or (call > 1 and base in requested)):
            inspect(name, tensor)

    with ActivationCapture(model, probe_names, record, output_fn=output_fn) as capture:
        run_on_sample(
            model,
            probe,
            batch_size=max(1, len(probe)),
            forward_fn=forward_fn,
            on_batch_start=capture.start_pass,  # also before a retry: a forward_fn may bypass the model's pre-hook
            probe=True,
        )
    order: list[str] = []
    no_tensor: list[str] = []
    for name in capture.ran:  # a layer whose output holds no tensor ran too (skipped, with its own warning)
        base, call = split_call(name)
        if (name in requested or (call > 1 and base in requested)) and name not in order + no_tensor:
            (no_tensor if name in capture.skipped else order).append(name)
    calls: dict[str, int] = {}
    for name in capture.ran:
        base, call = split_call(name)
        calls[base] = max(calls.get(base, 0), call)
    never_run = [name for name in requested if name not in order + no_tensor]
    return LayerTrace(
        order,
        never_run,
        no_tensor,
        calls,
        {name: shapes[name] for name in order if name in shapes},
        {name: capture.skipped[name] for name in no_tensor if name in capture.skipped},
        {name: leading[name] for name in order if name in leading},
    )


def watched_layers(
    model: nn.Module,
    probe: Tensor,
    layer_names: Sequence[str],
    *,
    forward_fn: Callable[[nn.Module, Tensor], Any] | None = None,
    output_fn: Callable[[Any], Tensor] | None = None,
    auto: bool = False,
    cubical: bool = False,
    inspect: Callable[[str, Tensor], None] | None = None,
) -> tuple[list[str], list[tuple[str, str]]]:
    """The layers to measure, in depth order (:func:`trace_layers`), and the notes a user should read about them.

    Returns ``(order, notes)``: ``notes`` are ``(key, message)`` pairs (the key identifies the kind of note, for a
    once-only warning): layers that never run (dropped), layers whose output's first axis is not the inputs of
    ``probe`` (dropped: a sequence-first layer, whose per-input volumes would be read across the batch), modules
    that run more than once (a layer per call), a changed order, and for ``auto`` (``layers="auto"``) a choice of
    fewer than 3 layers (:func:`auto_layer_note`). The callback and ``analyse`` both use it, with two inputs in
    ``probe`` where the sample has them (one input cannot tell a batch axis from an axis squeezed away);
    ``inspect`` as in :func:`trace_layers`.

    Raises:
        UnknownLayerError: none of ``layer_names`` runs in the forward pass, or none that runs is batch-first.
        ForwardError: the forward pass (``forward_fn``) or ``output_fn`` raised on ``probe``.
    """
    trace = trace_layers(model, probe, layer_names, forward_fn=forward_fn, output_fn=output_fn, inspect=inspect)
    if not trace.order and trace.no_tensor:
        reasons = "; ".join(f"'{n}': {why}" for n, why in trace.skipped.items())
        raise UnknownLayerError(
            f"the layers {trace.no_tensor} run, but no output of theirs gives a tensor to analyse ({reasons}); "
            "fix `output_fn` (it must return a tensor whose first axis is the inputs), or watch other layers."
        )
    if not trace.order:
        raise UnknownLayerError(
            f"none of the layers {list(layer_names)} runs in the forward pass; pass `layers=[...]` with modules the "
            "model calls (or `forward_fn=` if the model is run another way)."
        )
    past = [n for n in trace.never_run if split_call(n)[1] > 1 and split_call(n)[0] in trace.calls]
    if past:
        runs = ", ".join(
            f"'{b}' runs {plural(trace.calls[b], 'time')}" for b in dict.fromkeys(split_call(n)[0] for n in past)
        )
        raise UnknownLayerError(
            f"{past} name calls that do not happen: {runs} per forward pass; 'name#k' is the k-th call of a "
            "module (pass k up to that count, or the plain name for every call)."
        )
    notes: list[tuple[str, str]] = []
    if trace.never_run:
        notes.append(("never-run", f"{trace.never_run} never run in the forward pass, so they are not measured."))
    inputs = len(probe)
    across = {name: size for name, size in trace.leading.items() if size != inputs}
    if across:
        # Counting outputs at the evaluation misses a sequence-first layer whose length equals the sample's size:
        # its "inputs" would be the positions of the sequence, each a slice across the batch. Not one number of it
        # is an input's.
        sizes = ", ".join(f"'{name}' {size}" for name, size in across.items())
        shared = [name for name, size in across.items() if size == 1]
        why = (
            f"{shared} give one output for the whole batch (as position embeddings, added to every input, do): "
            "nothing of it is an input's own"
            if shared
            else ""
        )
        first = [name for name, size in across.items() if size != 1]
        if first:
            why += "; " if why else ""
            why += (
                f"{first}: a sequence-first layer, such as nn.LSTM or nn.TransformerEncoder(Layer) without "
                "batch_first=True, puts the batch on axis 1 (build it with batch_first=True, or watch modules whose "
                "outputs are batch-first)"
            )
        message = (
            f"the outputs of {list(across)} do not have the inputs on their first axis ({plural(inputs, 'input')} "
            f"gave a first axis of {sizes}), so they are not measured: {why}."
        )
        if len(across) == len(trace.order):
            raise UnknownLayerError(message[0].upper() + message[1:])
        trace.order = [name for name in trace.order if name not in across]
        if not (auto and not first):  # `layers="auto"`'s own choice of a position embedding: left out, no word
            notes.append(("not-batch-first", message))
    repeated = [n for n in trace.order if split_call(n)[1] > 1]
    if repeated:
        modules = sorted({split_call(n)[0] for n in repeated})
        notes.append(
            (
                "calls",
                f"{modules} run more than once per forward pass; each call is a layer of its own: {repeated} "
                "(name#k is the k-th call).",
            )
        )
    kept = [n for n in layer_names if n in trace.order]
    if [n for n in trace.order if n in kept] != kept:
        notes.append(
            (
                "order",
                (
                    f'the layers chosen by `layers="auto"` ({kept}, in the model\'s module order)'
                    if auto
                    else f"`layers` {kept}"
                )
                + f" are analysed in the order the forward pass runs them: {trace.order} (the decay over depth "
                "reads them in that order; nothing to do).",
            )
        )
    note = auto_layer_note(model, trace.order) if auto else None
    if not auto and len(trace.order) == 2:  # one layer: theta is NaN, with its own warning at the evaluation
        note = (
            f"2 watched layers ({trace.order}): theta and decay_rate are a cubic fit over the watched layers, here "
            "over 2 points, so they say little about a decay over depth; watch 3 or more layers for them (Omega and "
            "the Betti numbers of each layer are not affected)."
        )
    if note:
        notes.append(("few-layers", note))
    shapes = {name: trace.shapes[name] for name in trace.order if name in trace.shapes}
    note = flat_volume_note(shapes, token_layout(model, probe)) if cubical else None
    if note:
        notes.append(("flat", note))
    return trace.order, notes


def flat_volume_note(shapes: Mapping[str, tuple[int, ...]], layout: TokenLayout) -> str | None:
    """Which layers the cubical view reads as volumes of fewer than 3 axes (an input's output of shape ``shapes``
    per layer): there b2 (and b1 for vectors) is 0 by construction, not a measured 0. ``None`` when there is none.

    Example:
        >>> print(flat_volume_note({"conv": (8, 6, 6), "pool": (8, 1, 1), "fc": (10,)}, TokenLayout()))
        layers ['pool', 'fc'] are vectors (one axis of size > 1 per input): b1 = b2 = 0 by construction, not measured.
    """
    volumes = {name: cubical_volumes(torch.zeros(1, *shape), layout).shape[1:] for name, shape in shapes.items()}
    axes = {name: sum(n > 1 for n in shape) for name, shape in volumes.items()}
    vectors = [name for name, a in axes.items() if a <= 1]
    flat = [name for name, a in axes.items() if a == 2]
    sequences = [name for name in flat if layout.kind == "text" and len(shapes[name]) == 2]
    images = [name for name in flat if name not in sequences]
    parts = []
    if vectors:
        parts.append(f"layers {vectors} are vectors (one axis of size > 1 per input): b1 = b2 = 0 by construction")
    if images:
        parts.append(f"layers {images} are images (two axes of size > 1 per input): b2 = 0 by construction")
    if sequences:
        parts.append(f"layers {sequences} are token sequences, 2-D volumes (D, T) per input: b2 = 0 by construction")
    if not parts:
        return None
    note = "; ".join(parts) + ", not measured."
    tiny = [name for name, shape in volumes.items() if math.prod(shape) <= 2]
    if tiny:
        last = " (the last watched layer: topology/omega_last and TopologyEarlyStopping's floor rule)"
        note += (
            f" Layers {tiny} hold at most 2 values per input (a binary or regression head): at the 'mean' or "
            f"'median' threshold their b0 is 1 whatever the weights{last if tiny[-1] == list(volumes)[-1] else ''}; "
            "watch a wider layer instead (`layers=[...]`)."
        )
    return note


def execution_order(
    model: nn.Module,
    probe: Tensor,
    layer_names: Sequence[str],
    *,
    forward_fn: Callable[[nn.Module, Tensor], Any] | None = None,
) -> list[str]:
    """``layer_names`` in the order the forward pass first runs them on ``probe`` (one or a few inputs).

    The decay over depth needs layers in depth order; a user's list may be in any order. A module that runs more
    than once per forward pass becomes one layer per call (``name``, ``name#2``, ...). Layers that the forward
    pass never runs keep their relative order at the end (:func:`trace_layers` tells them apart).

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
        >>> execution_order(net, torch.zeros(1, 2), ["2", "0"])
        ['0', '2']
    """
    trace = trace_layers(model, probe, layer_names, forward_fn=forward_fn)
    return trace.order + trace.never_run + trace.no_tensor
