"""The fixed, seeded, stratified validation sample (DESIGN §8).

The sample is picked once, by dataset index, from the validation dataset (not from the loader's
batches), so it does not depend on batch order, shuffling or a DistributedSampler, and a resumed run
picks the same inputs. Per class, ``samples_per_class`` indices are drawn with a seeded permutation;
the total is capped at ``max_samples`` (taking the classes round-robin, so every class keeps a share).
Indices are ordered by class, then by dataset index.

Labels are read cheaply when the dataset exposes them (``TensorDataset`` tensors, a ``targets`` or
``labels`` attribute, through ``Subset``); otherwise every item is read once to find its label, which
for a large map-style dataset costs one pass over it (pass a dataset with ``targets`` to avoid that).
An ``IterableDataset`` cannot be indexed: the sample is then taken from the first batches of the
loader, and a one-time message says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset, TensorDataset
from torch.utils.data.dataloader import default_collate

from lightning_topo.capture.errors import SampleError

__all__ = ["FixedSample", "build_sample", "default_input", "default_target", "shard"]

_INPUT_KEYS = ("x", "input", "inputs", "image", "images")
_TARGET_KEYS = ("y", "label", "labels", "target", "targets")


@dataclass
class FixedSample:
    """The sampled inputs: ``indices`` (dataset indices, -1 when not indexable), ``inputs`` (N, ...) on
    CPU, ``labels`` (N,) int64 (zeros when unlabeled) and the sorted ``classes``."""

    indices: Tensor
    inputs: Tensor
    labels: Tensor
    classes: list[int]
    notes: list[str] = field(default_factory=list)

    def counts_per_class(self) -> dict[int, int]:
        """How many sampled inputs each class has."""
        return {c: int((self.labels == c).sum()) for c in self.classes}


def default_input(item: Any) -> Tensor:
    """The model input of a dataset item or batch: a tensor, the first element, or a dict's x/input/image."""
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
    """The integer label of an item or batch: the second element or a dict's y/label/target, if integer."""
    value = None
    if isinstance(item, Mapping):
        value = next((item[k] for k in _TARGET_KEYS if k in item), None)
    elif isinstance(item, (tuple, list)) and len(item) > 1:
        value = item[1]
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (
        isinstance(value, Tensor) and not value.is_floating_point() and value.dtype != torch.bool
    ):
        return value
    return None


def _labels_fast(dataset: Dataset) -> Tensor | None:
    """All labels without reading items, when the dataset exposes them."""
    if isinstance(dataset, Subset):
        inner = _labels_fast(dataset.dataset)
        return None if inner is None else inner[torch.as_tensor(dataset.indices, dtype=torch.long)]
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) > 1:
        y = dataset.tensors[1]
        return y.long() if not y.is_floating_point() and y.ndim == 1 else None
    for attr in ("targets", "labels"):
        y = getattr(dataset, attr, None)
        if y is not None:
            y = torch.as_tensor(y)
            if y.ndim == 1 and not y.is_floating_point():
                return y.long()
    return None


def _as_label(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise SampleError(f"a label must be one integer per input, got a tensor of shape {tuple(value.shape)}.")
        return int(value.item())
    return int(value)


def _choose(labels: Tensor, samples_per_class: int | None, max_samples: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    per_class = []
    for c in torch.unique(labels).tolist():
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
) -> FixedSample:
    """Pick the fixed sample from a validation ``DataLoader`` (its dataset) or a map-style ``Dataset``.

    Args:
        source: the validation loader or dataset.
        samples_per_class: at most this many inputs per class (``None``: no per-class cap).
        max_samples: at most this many inputs in all.
        seed: seed of the per-class permutations.
        input_fn: picks the input from an item (default :func:`default_input`).
        target_fn: picks the integer label from an item (default :func:`default_target`; no label means
            every input is class 0).

    Example:
        >>> ds = TensorDataset(torch.randn(30, 4), torch.arange(30) % 3)
        >>> s = build_sample(ds, samples_per_class=4, max_samples=10, seed=0)
        >>> s.counts_per_class(), s.inputs.shape
        ({0: 4, 1: 3, 2: 3}, torch.Size([10, 4]))
    """
    input_fn = input_fn or default_input
    target_fn = target_fn or default_target
    loader = source if isinstance(source, DataLoader) else None
    dataset = source.dataset if isinstance(source, DataLoader) else source
    collate = loader.collate_fn if loader is not None else default_collate
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__getitem__"):
        stream = loader if loader is not None else DataLoader(dataset, batch_size=64)
        return _from_batches(stream, samples_per_class, max_samples, input_fn, target_fn)
    notes: list[str] = []
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise SampleError("the validation dataset is empty: there is nothing to sample.")
    labels = _labels_fast(dataset) if target_fn is default_target else None
    if labels is None:
        labels = torch.tensor([_as_label(target_fn(dataset[i])) for i in range(n)], dtype=torch.long)
    indices = _choose(labels, samples_per_class, max_samples, seed)
    wanted = max_samples if samples_per_class is None else min(max_samples, samples_per_class * len(labels.unique()))
    if len(indices) < wanted:
        notes.append(
            f"lightning-topo sample: the data set offers {len(indices)} inputs for a sample of {wanted} "
            f"(samples_per_class={samples_per_class}, max_samples={max_samples}); using all {len(indices)}."
        )
    items = [dataset[int(i)] for i in indices]
    inputs = input_fn(collate(items))
    if not isinstance(inputs, Tensor):
        raise SampleError(f"`input_fn` must return a tensor, got {type(inputs).__name__}.")
    sample_labels = labels[indices]
    classes = sorted(sample_labels.unique().tolist())
    return FixedSample(indices, inputs.detach().cpu(), sample_labels, classes, notes)


def _from_batches(
    loader: DataLoader,
    samples_per_class: int | None,
    max_samples: int,
    input_fn: Callable[[Any], Tensor],
    target_fn: Callable[[Any], Any],
) -> FixedSample:
    note = (
        "lightning-topo sample: the dataset cannot be indexed (an IterableDataset), so the sample is "
        "taken from its first batches; it is the same every epoch only if the stream is."
    )
    xs: list[Tensor] = []
    ys: list[int] = []
    counts: dict[int, int] = {}
    for batch in loader:
        x = input_fn(batch)
        y = target_fn(batch)
        y = torch.zeros(len(x), dtype=torch.long) if y is None else torch.as_tensor(y).long().reshape(-1)
        for xi, yi in zip(x, y.tolist(), strict=False):
            if samples_per_class is not None and counts.get(yi, 0) >= samples_per_class:
                continue
            counts[yi] = counts.get(yi, 0) + 1
            xs.append(xi.detach().cpu())
            ys.append(yi)
            if len(xs) >= max_samples:
                break
        if len(xs) >= max_samples:
            break
    if not xs:
        raise SampleError("the validation dataloader yielded no inputs: there is nothing to sample.")
    labels = torch.tensor(ys, dtype=torch.long)
    order = torch.argsort(labels, stable=True)
    return FixedSample(
        torch.full((len(xs),), -1, dtype=torch.long),
        torch.stack(xs)[order],
        labels[order],
        sorted(set(ys)),
        [note],
    )


def shard(sample: FixedSample, rank: int, world_size: int) -> FixedSample:
    """The slice of the sample that ``rank`` of ``world_size`` handles (strided; a rank may get none)."""
    if not 0 <= rank < world_size:
        raise SampleError(f"`rank` must be in [0, world_size={world_size}), got {rank}.")
    sel = torch.arange(rank, len(sample.labels), world_size)
    return FixedSample(sample.indices[sel], sample.inputs[sel], sample.labels[sel], list(sample.classes), [])
