"""The fixed, seeded, stratified validation sample.

The sample is picked once, by dataset index, from the validation dataset (not from the loader's
batches), so it does not depend on batch order, shuffling or a DistributedSampler, and a resumed run
picks the same inputs. Where the loader's sampler yields only part of its dataset (a validation split by
``SubsetRandomSampler``), the sample is drawn from that part. Inputs with a negative label (an "ignore" value)
are left out. Per class, ``samples_per_class`` indices are drawn with a seeded permutation;
the total is capped at ``max_samples`` (taking the classes round-robin, so every class keeps a share).
Indices are ordered by class, then by dataset index.

Labels are read cheaply when the dataset exposes them (``TensorDataset`` tensors, a ``targets`` or
``labels`` attribute, through ``Subset``); otherwise every item is read once to find its label, which
for a large map-style dataset costs one pass over it (pass a dataset with ``targets`` to avoid that).
An ``IterableDataset`` cannot be indexed: the sample is then taken from the first batches of the
loader, and a one-time message says so.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
)
from torch.utils.data.dataloader import default_collate

from lightning_topo.capture.errors import SampleError, plural, user_function_raised

__all__ = ["FixedSample", "build_sample", "class_labels", "default_input", "default_target", "shard"]

_INPUT_KEYS = ("x", "input", "inputs", "image", "images", "pixel_values", "input_ids")  # the last two: Hugging Face's
_TARGET_KEYS = ("y", "label", "labels", "target", "targets")


@dataclass
class FixedSample:
    """The sampled inputs: ``indices`` (dataset indices, -1 when not indexable), ``inputs`` (N, ...) on
    CPU, ``labels`` (N,) int64 (zeros when unlabeled) and the sorted ``classes``; ``token_mask`` ``(N, T)`` bool,
    the padding mask of token inputs (the items' ``attention_mask``, where it has zeros; else ``None``): the
    padded positions are left out of each input's token volume and token mean (:mod:`~lightning_topo.capture.tokens`).
    """

    indices: Tensor
    inputs: Tensor
    labels: Tensor
    classes: list[int]
    notes: list[str] = field(default_factory=list)
    token_mask: Tensor | None = None

    def counts_per_class(self) -> dict[int, int]:
        """How many sampled inputs each class has."""
        return {c: int((self.labels == c).sum()) for c in self.classes}


def default_input(item: Any) -> Tensor:
    """The model input of a dataset item or batch: a tensor, the first element, or a dict's x/input/image (or
    Hugging Face's pixel_values / input_ids)."""
    if isinstance(item, Tensor):
        return item
    if isinstance(item, Mapping):
        for key in _INPUT_KEYS:
            if key in item:
                return item[key]
        raise SampleError(
            f"cannot find the input in a dict item with keys {sorted(item)}; expected one of {_INPUT_KEYS} "
            "or pass `input_fn=lambda item: item['your_key']`."
        )
    if isinstance(item, (tuple, list)) and item:
        return item[0]
    raise SampleError(f"cannot find the input in an item of type {type(item).__name__}; pass `input_fn=`.")


def default_target(item: Any) -> Any:
    """The label of an item or batch: the second element or a dict's y/label/target (``None``: no label).

    The value is returned as it is; :func:`class_labels` turns it into integer classes (or says why it is not a
    class label)."""
    if isinstance(item, Mapping):
        return next((item[k] for k in _TARGET_KEYS if k in item), None)
    if isinstance(item, (tuple, list)) and len(item) > 1:
        return item[1]
    return None


NO_CLASS_FIX = (
    " For a task without one class per input (a target per pixel, token or object, multi-label rows, a "
    "reconstruction target, regression), `target_fn=lambda item: 0` makes the sample one class (raise "
    "`samples_per_class` to take more inputs)."
)
"""The end of every message refusing labels: the fix for data that has no classes."""


def _one_hot_note(width: int) -> str:
    return (
        f"lightning-topo sample: the labels are one-hot rows of {width} positions; the inputs are grouped by the "
        "position of their 1 (argmax). If the rows are not classes (a mask, a tag per position), pass "
        "`target_fn=lambda item: 0` for one class, or `target_fn=` reading the classes another way."
    )


REAL_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
"""The integer dtypes read as real values (labels, and layer outputs in `reduce.py`)."""


def class_labels(value: Any, *, batched: bool) -> tuple[Tensor, str | None]:
    """Integer class labels ``(N,)`` from the label of one item (``batched=False``) or of a batch / dataset.

    Integers are classes; floats that are whole numbers are classes as integers are; a column ``(N, 1)`` is one
    label per input; one-hot rows (0/1, one 1 per row) are read by argmax, with a note (the second value).
    Anything else (fractional or soft labels, NaN, booleans, several values per input, strings) is not a class
    label: a :class:`SampleError` naming ``target_fn``. ``None`` (no label) is class 0.

    Example:
        >>> class_labels(torch.tensor([1.0, 0.0, 2.0]), batched=True)[0].tolist()
        [1, 0, 2]
        >>> labels, note = class_labels(torch.tensor([[0, 1], [1, 0]]), batched=True)
        >>> labels.tolist(), note is not None
        ([1, 0], True)
    """
    if value is None:
        return torch.zeros(0 if batched else 1, dtype=torch.long), None
    if isinstance(value, bool) or (isinstance(value, Tensor) and value.dtype == torch.bool):
        raise SampleError(
            "the labels are booleans, not class labels; pass `target_fn=` returning integer classes "
            f"(e.g. `target_fn=lambda item: int(item[1])`).{NO_CLASS_FIX}"
        )
    try:
        y = value if isinstance(value, Tensor) else torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise SampleError(
            f"a label of type {type(value).__name__} is not an integer class label; pass `target_fn=` returning "
            f"the integer class of a dataset item.{NO_CLASS_FIX}"
        ) from None
    if not (y.is_floating_point() or y.dtype in REAL_INT_DTYPES):
        raise SampleError(
            f"labels of dtype {y.dtype} are not class labels; pass `target_fn=` returning integers.{NO_CLASS_FIX}"
        )
    note = None
    if batched and y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # a column of labels (N, 1), as tabular data keeps them: one class per input
    if (y.ndim == 2) if batched else (y.ndim == 1 and y.numel() > 1):
        rows = y.reshape(-1, y.shape[-1])
        if not (bool(((rows == 0) | (rows == 1)).all()) and bool((rows.sum(dim=-1) == 1).all())):
            raise SampleError(
                f"the labels have shape {tuple(y.shape)} and are not one-hot rows, so they are not one class per "
                f"input; pass `target_fn=` returning each item's integer class.{NO_CLASS_FIX}"
            )
        y, note = rows.argmax(dim=-1), _one_hot_note(int(rows.shape[-1]))
    elif (y.ndim > 1) if batched else (y.numel() != 1):
        raise SampleError(
            f"a label must be one integer per input, got shape {tuple(y.shape)}; pass `target_fn=` returning "
            f"each item's integer class.{NO_CLASS_FIX}"
        )
    if y.is_floating_point():
        whole = torch.isfinite(y) & (y == torch.round(y))
        if not bool(whole.all()):
            bad = y[~whole].reshape(-1)[:3].tolist()
            raise SampleError(
                f"the labels are not whole numbers (e.g. {bad}): regression targets or soft labels are not classes; "
                f"pass `target_fn=` returning each item's integer class.{NO_CLASS_FIX}"
            )
    return y.reshape(-1).long(), note


def _labels_fast(dataset: Dataset) -> tuple[Tensor, str | None] | None:
    """All labels without reading items, when the dataset exposes them (with :func:`class_labels`' note)."""
    if isinstance(dataset, Subset):
        inner = _labels_fast(dataset.dataset)
        if inner is None:
            return None
        return inner[0][torch.as_tensor(dataset.indices, dtype=torch.long)], inner[1]
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) > 1:
        return class_labels(dataset.tensors[1], batched=True)
    for attr in ("targets", "labels"):
        y = getattr(dataset, attr, None)
        if y is None:
            continue
        try:
            y = torch.as_tensor(y)
        except (TypeError, ValueError, RuntimeError):
            return None
        if y.ndim in (1, 2) and len(y) == len(dataset):  # type: ignore[arg-type]
            return class_labels(y, batched=True)
    return None


def _items_agree(dataset: Dataset, labels: Tensor) -> bool:
    """Whether the labels of the dataset's first and last items are ``labels``' (read by :func:`_labels_fast` off an
    attribute): a torchvision-style ``target_transform`` (``y % 2`` of a ``targets`` of ten digits) makes the items'
    labels other classes than the attribute's."""
    if getattr(dataset, "target_transform", None) is not None:
        return False
    try:
        for i in {0, len(labels) - 1}:
            y, _ = class_labels(default_target(dataset[i]), batched=False)
            if y.numel() != 1 or int(y) != int(labels[i]):
                return False
    except Exception:  # an item the slow path reports on, with its own message
        return False
    return True


SLOW_LABELS_SECONDS = 10.0
"""Reading every item's label one by one that is expected to take longer than this is said before it goes on."""


def _read_labels(dataset: Dataset, n: int, target_fn: Callable[[Any], Any]) -> list[tuple[Tensor, str | None]]:
    """Every item's label (:func:`class_labels` of ``target_fn(dataset[i])``), in the calling process: a dataset
    without a ``targets`` / ``labels`` attribute (or with a ``target_transform``) is read item by item, decoding
    each input too. Where the first items say the whole read will take over :data:`SLOW_LABELS_SECONDS`, a warning
    says so at once, with the way around it."""
    read: list[tuple[Tensor, str | None]] = []
    start = time.perf_counter()
    for i in range(n):
        read.append(class_labels(target_fn(dataset[i]), batched=False))
        if i == 31 and n > 64:
            expected = (time.perf_counter() - start) / 32 * n
            if expected > SLOW_LABELS_SECONDS:
                why = (
                    "its `target_transform` makes the items' labels other than its `targets`"
                    if getattr(dataset, "target_transform", None) is not None
                    else "it has no `targets` or `labels` attribute to read them from"
                )
                warnings.warn(
                    f"lightning-topo sample: reading the labels of the {n} validation items of "
                    f"{type(dataset).__name__} one by one ({why}): about {expected:.0f} s, once per dataset. To "
                    "skip it, give the dataset a `targets` attribute holding every item's label as the items give "
                    "them (a list or a tensor).",
                    UserWarning,
                    stacklevel=4,
                )
    return read


def _negative_note(negative: Tensor, kept: int) -> str:
    """The note for labels below 0, left out: one such value is an "ignore" value (-1, -100); several are values
    (a regression target's, counts below 0), refused; all negative, refused."""
    values = sorted(negative.unique().tolist())
    shown = f"{values[:5]}{' ...' if len(values) > 5 else ''}"
    if len(values) > 1:
        raise SampleError(
            f"the labels hold {len(values)} distinct negative values ({shown}): an 'ignore' label is one value "
            "(-100, -1), so these are values, not classes (a regression target's?); pass `target_fn=` returning "
            f"each item's class.{NO_CLASS_FIX}"
        )
    if kept == 0:
        raise SampleError(
            f"every label of the validation data is negative ({shown}): no input has a class to sample. "
            f"Pass `target_fn=` returning each item's class.{NO_CLASS_FIX}"
        )
    return (
        f"lightning-topo sample: {plural(len(negative), 'input')} with a negative label {shown} (an 'ignore' "
        "value, as cross_entropy's ignore_index) left out of the sample: a mixture of every class is not a class."
    )


def _class_count_notes(
    classes: int, taken: int, max_samples: int, samples_per_class: int | None, available: int
) -> list[str]:
    """Notes on the classes of a sample of ``taken`` inputs: more classes than ``max_samples`` (a seeded choice of
    classes), classes of one or two inputs (labels that may be counts or ids), one class capped by
    ``samples_per_class``."""
    if classes > max_samples:
        return [
            f"lightning-topo sample: the data has {classes} classes, more than max_samples={max_samples}: a seeded "
            f"choice of {max_samples} classes, one input each (each class's Betti numbers are one input's). Raise "
            "`max_samples` to cover more classes; if the labels are counts, ids or regression targets rather than "
            "classes, pass `target_fn=lambda item: 0` (one class)."
        ]
    if taken >= 20 and classes > taken / 2:
        return [
            f"lightning-topo sample: {taken} inputs in {classes} classes, {taken / classes:.2g} per class: each "
            "class's Betti numbers are those of one or two inputs. If the labels are counts, ids or regression "
            "targets rather than classes, pass `target_fn=lambda item: 0` (one class)."
        ]
    if classes == 1 and samples_per_class is not None and taken == samples_per_class < min(max_samples, available):
        return [
            f"lightning-topo sample: every input has the same label (or the data has none), so the sample is one "
            f"class of samples_per_class={samples_per_class} inputs; raise `samples_per_class` to evaluate more, or "
            "pass `target_fn=` to read the classes."
        ]
    return []


def _choose(labels: Tensor, samples_per_class: int | None, max_samples: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    per_class = []
    classes = torch.unique(labels)
    if len(classes) > max_samples:  # not every class fits: a seeded choice of them, not the lowest ids
        classes = classes[torch.randperm(len(classes), generator=gen)[:max_samples]].sort().values
    for c in classes.tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        per_class.append(idx if samples_per_class is None else idx[:samples_per_class])
    # Round-robin over classes up to max_samples, so a cap keeps every class represented.
    chosen: list[int] = []
    depth = 0
    while len(chosen) < max_samples and any(depth < len(p) for p in per_class):
        for p in per_class:
            if depth < len(p) and len(chosen) < max_samples:
                chosen.append(int(p[depth]))
        depth += 1
    picked = torch.tensor(sorted(chosen), dtype=torch.long)
    order = torch.argsort(labels[picked] * (len(labels) + 1) + picked)
    return picked[order]


def build_sample(
    source: DataLoader | Dataset,
    *,
    samples_per_class: int | None = 20,
    max_samples: int = 200,
    seed: int = 0,
    input_fn: Callable[[Any], Tensor] | None = None,
    target_fn: Callable[[Any], Any] | None = None,
    batch_fn: Callable[[Any], Any] | None = None,
) -> FixedSample:
    """Pick the fixed sample from a validation ``DataLoader`` (its dataset) or a map-style ``Dataset``.

    Args:
        source: the validation loader or dataset.
        samples_per_class: at most this many inputs per class (``None``: no per-class cap).
        max_samples: at most this many inputs in all.
        seed: seed of the per-class permutations.
        input_fn: picks the model input from a batch, as the loader's ``collate_fn`` makes it of the sampled items
            (default :func:`default_input`); its first axis must be those inputs.
        target_fn: picks the label from one dataset item (a batch of the loader for an ``IterableDataset``;
            default :func:`default_target`; no label means every input is class 0). Integer, whole-number float
            and one-hot labels are read as classes (:func:`class_labels`); anything else raises a
            :class:`SampleError`. Inputs holding NaN or Inf are left out, with a note.
        batch_fn: applied to the batch of the sampled items (as the loader's ``collate_fn`` makes it) before
            ``input_fn`` reads it: what validation does to each batch before the model sees it (the callback passes
            Lightning's batch-transfer hooks, ``on_after_batch_transfer``'s normalisation, ...). Labels are read
            from the items as they are.

    Example:
        >>> ds = TensorDataset(torch.randn(30, 4), torch.arange(30) % 3)
        >>> s = build_sample(ds, samples_per_class=4, max_samples=10, seed=0)
        >>> s.counts_per_class(), s.inputs.shape
        ({0: 4, 1: 3, 2: 3}, torch.Size([10, 4]))
    """
    input_fn = _named_errors(input_fn, "input_fn") if input_fn is not None else default_input
    target_fn = _named_errors(target_fn, "target_fn") if target_fn is not None else default_target
    loader = source if isinstance(source, DataLoader) else None
    dataset = source.dataset if isinstance(source, DataLoader) else source
    collate = loader.collate_fn if loader is not None else default_collate
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__getitem__"):
        stream = loader if loader is not None else DataLoader(dataset, batch_size=64)
        return _from_batches(stream, samples_per_class, max_samples, input_fn, target_fn, batch_fn)
    notes: list[str] = []
    # A loader whose sampler yields part of its dataset (a validation split by SubsetRandomSampler): that part.
    allowed = _sampler_indices(loader, notes) if loader is not None else None
    if allowed is not None:
        dataset = Subset(dataset, allowed.tolist())
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise SampleError("the validation dataset is empty: there is nothing to sample.")
    fast = _labels_fast(dataset) if target_fn is default_target else None
    if fast is not None and not _items_agree(dataset, fast[0]):
        fast = None  # the items' labels are not the attribute's (a `target_transform`, ...): read every item
    if fast is None:
        read = _read_labels(dataset, n, target_fn)
        labels = torch.cat([y for y, _ in read])
        note = next((note for _, note in read if note), None)
    else:
        labels, note = fast
    if note:
        notes.append(note)
    valid = torch.nonzero(labels >= 0).flatten()
    if len(valid) < len(labels):
        notes.append(_negative_note(labels[labels < 0], len(valid)))
    classes_present = len(labels[valid].unique())
    indices = valid[_choose(labels[valid], samples_per_class, max_samples, seed)]
    notes += _class_count_notes(classes_present, len(indices), max_samples, samples_per_class, len(valid))
    wanted = max_samples if samples_per_class is None else min(max_samples, samples_per_class * classes_present)
    if len(indices) < wanted:
        if len(valid) < wanted:
            why = f"the data set has {plural(len(valid), 'input')}"
        else:
            counts = labels[valid].unique(return_counts=True)[1]
            short = int((counts < (samples_per_class or 0)).sum())
            why = f"{short} of the {len(counts)} classes have fewer than samples_per_class={samples_per_class} inputs"
        using = "using it" if len(indices) == 1 else f"using those {len(indices)}"
        notes.append(
            f"lightning-topo sample: {plural(len(indices), 'input')} instead of {wanted}: {why} "
            f"(samples_per_class={samples_per_class}, max_samples={max_samples}); {using}."
        )
    token_mask = None  # the items' padding mask (a dict batch's `attention_mask`)
    if (
        isinstance(dataset, TensorDataset)
        and collate is default_collate
        and input_fn is default_input
        and dataset.tensors[0].is_contiguous()
    ):
        # What collating the items gives (a stack of the rows), without reading 200 items one by one.
        if batch_fn is None:
            inputs = dataset.tensors[0][indices]
        else:
            inputs = input_fn(batch_fn([tensor[indices] for tensor in dataset.tensors]))
    else:
        items = [dataset[int(i)] for i in indices]
        try:
            batch = collate(items)
        except (RuntimeError, TypeError, ValueError) as err:
            raise SampleError(
                f"the validation loader's collate_fn cannot batch the {len(items)} sampled items "
                f"({type(err).__name__}: {str(err)[:200]}); items of different lengths (token sequences) need "
                "padding to one length: pad them in the dataset (padding='max_length') or give the loader a "
                "collate_fn that pads (and returns the `attention_mask`)."
            ) from err
        if input_fn is default_input:
            notes += _ignored_mask_note(batch)
        token_mask = padding_mask(batch, len(indices))
        inputs = input_fn(batch if batch_fn is None else batch_fn(batch))
    _check_inputs(inputs, len(indices))
    where = indices if allowed is None else allowed[indices]  # the loader's dataset's indices
    return _finite_sample(where, inputs.detach().cpu(), labels[indices], notes, token_mask)


def _sampler_indices(loader: DataLoader, notes: list[str]) -> Tensor | None:
    """The dataset indices the loader's sampler yields where they are a part of its dataset (``None``: all of it).

    A ``SequentialSampler`` or a ``RandomSampler`` without replacement covers the dataset; a
    ``SubsetRandomSampler`` gives its ``indices``; a ``DistributedSampler`` (Lightning's, under DDP) covers what
    it wraps: the dataset, or the user's sampler (Lightning's ``DistributedSamplerWrapper`` keeps its indices as a
    dataset); any other sampler, or a ``batch_sampler`` of another kind, is read once (a note says so)."""
    size = len(loader.dataset)  # type: ignore[arg-type]
    batches = loader.batch_sampler
    sampler: Any = batches.sampler if isinstance(batches, BatchSampler) else (batches or loader.sampler)
    if isinstance(sampler, DistributedSampler):
        inner = sampler.dataset
        if inner is loader.dataset:
            return None
        try:
            picked = [inner[i] for i in range(len(inner))]  # the wrapped sampler's indices, in its order
        except Exception:
            return None
        return _as_indices(picked, size, type(sampler).__name__, notes, said=False)
    if isinstance(sampler, SequentialSampler) or (
        isinstance(sampler, RandomSampler) and not sampler.replacement and sampler.num_samples == size
    ):
        return None
    if isinstance(sampler, SubsetRandomSampler):
        return _as_indices(list(sampler.indices), size, type(sampler).__name__, notes, said=False)
    try:
        picked = list(sampler)
    except Exception:
        return None
    if sampler is batches:  # a batch_sampler of its own: lists of indices
        picked = [i for batch in picked for i in batch] if all(isinstance(b, (list, tuple)) for b in picked) else []
    return _as_indices(picked, size, type(sampler).__name__, notes, said=True)


def _as_indices(picked: list[Any], size: int, kind: str, notes: list[str], said: bool) -> Tensor | None:
    """Distinct, sorted dataset indices from a sampler's yield (``None`` where they are not indices of the
    dataset, or all of them)."""
    try:
        values = torch.as_tensor([int(i) for i in picked], dtype=torch.long)
    except (TypeError, ValueError):
        return None
    values = torch.unique(values)
    if len(values) == 0 or int(values[0]) < 0 or int(values[-1]) >= size or len(values) == size:
        return None
    if said:
        notes.append(
            f"lightning-topo sample: drawn from the {len(values)} of {size} dataset items the validation loader's "
            f"{kind} yielded (read once; a sampler that yields other items each epoch leaves the sample as it is)."
        )
    return values


def _not_a_tensor(inputs: Any) -> SampleError:
    """The error for an ``input_fn`` result that is not a tensor; for several tensors (a dict, a tuple), the fix."""
    several = ""
    if isinstance(inputs, (Mapping, tuple, list)):
        several = (
            ": the sample keeps one tensor per input, so for a model that takes several tensors return one and unpack "
            "it in `forward_fn`, e.g. input_fn=lambda b: torch.stack([b['input_ids'], b['attention_mask']], dim=1) "
            "and forward_fn=lambda m, x: m.model(input_ids=x[:, 0], attention_mask=x[:, 1])"
        )
    return SampleError(f"`input_fn` must return a tensor, got {type(inputs).__name__}{several}.")


def _check_inputs(inputs: Any, count: int) -> None:
    """``input_fn``'s result: a tensor whose first axis is the ``count`` sampled inputs."""
    if not isinstance(inputs, Tensor):
        raise _not_a_tensor(inputs)
    if inputs.ndim == 0 or inputs.shape[0] != count:
        raise SampleError(
            f"`input_fn` returned a tensor of shape {tuple(inputs.shape)} for a batch of {count} sampled inputs; "
            f"its first axis must be those {count} inputs. `input_fn` receives a batch as the validation "
            "dataloader's collate_fn makes it of the sampled items (not one item): e.g. "
            "`lambda batch: torch.stack([batch['a'], batch['b']], dim=1)`."
        )


def padding_mask(batch: Any, count: int) -> Tensor | None:
    """The padding mask ``(count, T)`` bool (``True``: a real token) of a collated batch of token items: its
    ``attention_mask`` where that is ``(count, T)`` and has zeros (padding); ``None`` otherwise.

    Example:
        >>> padding_mask({"input_ids": torch.ones(2, 3), "attention_mask": torch.tensor([[1, 1, 0], [1, 1, 1]])}, 2)
        tensor([[ True,  True, False],
                [ True,  True,  True]])
    """
    real = _mask_rows(batch, count)
    return real if real is not None and not bool(real.all()) else None


def _ignored_mask_note(batch: Any) -> list[str]:
    """A note when the default input (a dict's ``input_ids``) leaves a padding mask with zeros behind."""
    mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None
    if not isinstance(mask, Tensor) or not bool((mask == 0).any()) or "input_ids" not in batch:
        return []
    return [
        "lightning-topo sample: the items hold an `attention_mask` with padding, and the model runs as "
        "model(input_ids) without it, so padding tokens are attended to and change the real tokens' values. To "
        "pass it: input_fn=lambda b: torch.stack([b['input_ids'], b['attention_mask']], dim=1) and "
        "forward_fn=lambda m, x: m.model(input_ids=x[:, 0], attention_mask=x[:, 1]) (under the callback `m` is "
        "your LightningModule: call the network it wraps; under `analyse(model, ...)` it is that model: "
        "m(input_ids=..., attention_mask=...)). Either way the padded positions are left out of each input's "
        "(D, T) volume and token mean."
    ]


def _finite_sample(
    indices: Tensor, inputs: Tensor, labels: Tensor, notes: list[str], token_mask: Tensor | None = None
) -> FixedSample:
    """The sample without the inputs that hold NaN or Inf (named in a note): one such input would make every
    layer's values NaN."""
    if inputs.is_floating_point() or inputs.is_complex():
        finite = torch.isfinite(inputs.reshape(len(inputs), -1)).all(dim=1)
        if not bool(finite.all()):
            bad = indices[~finite].tolist()
            where = f" at dataset indices {bad[:10]}{' ...' if len(bad) > 10 else ''}" if bad[0] >= 0 else ""
            if int(finite.sum()) == 0:
                raise SampleError(f"every sampled validation input holds NaN or Inf ({len(bad)} inputs).")
            notes.append(
                f"lightning-topo sample: {len(bad)} validation input(s){where} hold NaN or Inf and are left out of "
                f"the sample ({int(finite.sum())} inputs remain): their activations would make every layer's "
                "values NaN."
            )
            indices, inputs, labels = indices[finite], inputs[finite], labels[finite]
            token_mask = None if token_mask is None else token_mask[finite]
    return FixedSample(indices, inputs, labels, sorted(labels.unique().tolist()), notes, token_mask)


def _named_errors(fn: Callable[[Any], Any], name: str) -> Callable[[Any], Any]:
    """``fn`` whose exceptions become a :class:`SampleError` naming the argument and the function (the original
    chained): a user's function that fails on the validation data says so, not a bare ``KeyError``."""

    def call(item: Any) -> Any:
        try:
            return fn(item)
        except SampleError:
            raise
        except Exception as err:
            raise SampleError(
                f"{user_function_raised(name, fn, err)} on a {type(item).__name__} of the validation "
                f"data; it must accept what the validation dataloader yields (a batch) or the dataset's items."
            ) from err

    return call


def _from_batches(
    loader: DataLoader,
    samples_per_class: int | None,
    max_samples: int,
    input_fn: Callable[[Any], Tensor],
    target_fn: Callable[[Any], Any],
    batch_fn: Callable[[Any], Any] | None = None,
) -> FixedSample:
    note = (
        "lightning-topo sample: the dataset cannot be indexed (an IterableDataset), so the sample is "
        "taken from its first batches, once (the callback keeps it for the run: the same inputs every epoch, "
        "whatever the stream yields later; another `analyse` reads the stream again)."
    )
    xs: list[Tensor] = []
    ys: list[int] = []
    masks: list[Tensor | None] = []  # each taken input's padding-mask row (a dict batch's `attention_mask`)
    negative: list[int] = []  # the negative labels met ("ignore" values: those inputs are left out)
    counts: dict[int, int] = {}
    notes = [note]
    idle = 0  # inputs read since the last one taken: a stream (maybe endless) of full classes is not read on
    read = 0
    for batch in loader:
        x = input_fn(batch if batch_fn is None else batch_fn(batch))
        if not isinstance(x, Tensor):
            raise _not_a_tensor(x)
        y, label_note = class_labels(target_fn(batch), batched=True)
        if not len(y):  # no label: one class
            y = torch.zeros(len(x), dtype=torch.long)
        if label_note and label_note not in notes:
            notes.append(label_note)
        rows = _mask_rows(batch, len(x))
        if input_fn is default_input:
            notes += [n for n in _ignored_mask_note(batch) if n not in notes]
        for j, (xi, yi) in enumerate(zip(x, y.tolist(), strict=False)):
            read += 1
            if yi < 0:
                negative.append(yi)
                continue
            if samples_per_class is not None and counts.get(yi, 0) >= samples_per_class:
                idle += 1
                continue
            idle = 0
            counts[yi] = counts.get(yi, 0) + 1
            xs.append(xi.detach().cpu())
            ys.append(yi)
            masks.append(None if rows is None else rows[j])
            if len(xs) >= max_samples:
                break
        if len(xs) >= max_samples:
            break
        if idle >= max(max_samples, 1):
            notes.append(
                f"lightning-topo sample: stopped reading the stream after {read} inputs: the last {idle} were of "
                f"classes already holding samples_per_class={samples_per_class} inputs "
                f"({plural(len(counts), 'class', 'classes')} seen), so {len(xs)} inputs instead of max_samples="
                f"{max_samples}; a class that only comes later in the stream is not in the sample."
            )
            break
    if negative:
        notes.append(_negative_note(torch.tensor(negative), len(xs)))
    if not xs:
        raise SampleError("the validation dataloader yielded no inputs: there is nothing to sample.")
    labels = torch.tensor(ys, dtype=torch.long)
    order = torch.argsort(labels, stable=True)
    shapes = sorted({tuple(x.shape) for x in xs})
    if len(shapes) > 1:
        raise SampleError(
            f"the validation stream's batches hold inputs of different shapes ({shapes[:4]}"
            f"{' ...' if len(shapes) > 4 else ''}): the sample is one tensor of them. Token sequences padded per "
            "batch (a collator's dynamic padding) need one length: pad to it (padding='max_length')."
        )
    token_mask = None
    if all(m is not None for m in masks) and len({tuple(m.shape) for m in masks}) == 1:  # type: ignore[union-attr]
        stacked = torch.stack(masks)[order]  # type: ignore[arg-type]
        token_mask = None if bool(stacked.all()) else stacked
    indices = torch.full((len(xs),), -1, dtype=torch.long)
    return _finite_sample(indices, torch.stack(xs)[order], labels[order], notes, token_mask)


def _mask_rows(batch: Any, count: int) -> Tensor | None:
    """A batch's ``attention_mask`` ``(count, T)`` as bool rows (``True``: a real token), or ``None``."""
    mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None
    if not isinstance(mask, Tensor) or mask.ndim != 2 or mask.shape[0] != count or mask.is_complex():
        return None
    return mask.detach().cpu() != 0


def shard(sample: FixedSample, rank: int, world_size: int) -> FixedSample:
    """The slice of the sample that ``rank`` of ``world_size`` handles (strided; a rank may get none)."""
    if not 0 <= rank < world_size:
        raise SampleError(f"`rank` must be in [0, world_size={world_size}), got {rank}.")
    sel = torch.arange(rank, len(sample.labels), world_size)
    mask = None if sample.token_mask is None else sample.token_mask[sel]
    return FixedSample(sample.indices[sel], sample.inputs[sel], sample.labels[sel], list(sample.classes), [], mask)
