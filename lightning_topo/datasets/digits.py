"""scikit-learn's bundled digits (real 8x8 images, no download) as tensors and as a LightningDataModule."""

from __future__ import annotations

import numbers

import torch
from torch.utils.data import TensorDataset

from lightning_topo.datasets._held_out import HeldOutSplits
from lightning_topo.datasets.checks import check_int

__all__ = ["DigitsDataModule", "load_digits_tensors"]


def load_digits_tensors(size: int = 8, flatten: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1797 bundled 8x8 digits as ``(N, 1, size, size)`` floats in [0, 1] and int64 labels.

    ``size`` other than 8 interpolates bilinearly; ``flatten=True`` returns ``(N, size*size)``.
    Needs scikit-learn (``pip install "lightning-topo[examples]"``).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - exercised only without scikit-learn
        raise ImportError(
            'The digits data need scikit-learn: pip install "lightning-topo[examples]" (or scikit-learn).'
        ) from err
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    if size != 8:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    y = torch.tensor(digits.target, dtype=torch.long)
    return (x.flatten(1) if flatten else x), y


class DigitsDataModule(HeldOutSplits):
    """scikit-learn's digits, split once (seeded, stratified) into train and validation sets.

    Args:
        batch_size: batch size of both loaders.
        val_fraction: fraction of each class held out for validation.
        size: image side (8 = native; other sizes are interpolated).
        flatten: give ``(64,)`` vectors instead of ``(1, 8, 8)`` images (for MLPs).
        classes: keep only these digit classes (e.g. ``[0, 1, 2, 3, 4]``); ``None`` keeps all ten.
        train_fraction: use only this fraction of the training split (sub-sampling experiments).
        seed: seed of the split.
        num_workers: ``DataLoader`` workers (0: load in the main process).

    Example:
        >>> dm = DigitsDataModule(batch_size=32)
        >>> dm.setup("fit")
        >>> x, y = next(iter(dm.train_dataloader()))
        >>> tuple(x.shape), y.dtype
        ((32, 1, 8, 8), torch.int64)
    """

    def __init__(
        self,
        batch_size: int = 64,
        val_fraction: float = 0.25,
        size: int = 8,
        flatten: bool = False,
        classes: list[int] | None = None,
        train_fraction: float = 1.0,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        check_int("batch_size", batch_size, 1)
        check_int("size", size, 1)
        check_int("num_workers", num_workers, 0)
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"`val_fraction` must be in (0, 1), got {val_fraction!r}.")
        if not 0.0 < train_fraction <= 1.0:
            raise ValueError(f"`train_fraction` must be in (0, 1], got {train_fraction!r}.")
        if classes is not None:
            classes = _checked_classes(classes)  # a list of ints, as saved in the hyperparameters
        self.save_hyperparameters()
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.size = size
        self.flatten = flatten
        self.classes = classes
        self.train_fraction = train_fraction
        self.seed = seed
        self.num_workers = num_workers
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        x, y = load_digits_tensors(self.size, self.flatten)
        gen = torch.Generator().manual_seed(self.seed)
        train_idx, val_idx = [], []
        for c in sorted(set(y.tolist()) if self.classes is None else self.classes):
            idx = torch.nonzero(y == c).flatten()
            idx = idx[torch.randperm(idx.numel(), generator=gen)]
            # At least one image of each class on each side (val_fraction=0.999 held out every image)
            n_val = min(idx.numel() - 1, max(1, round(self.val_fraction * idx.numel())))
            n_train = max(1, round(self.train_fraction * (idx.numel() - n_val)))
            val_idx.append(idx[:n_val])
            train_idx.append(idx[n_val : n_val + n_train])
        tr, va = torch.cat(train_idx), torch.cat(val_idx)
        self.train_set = TensorDataset(x[tr], y[tr])
        self.val_set = TensorDataset(x[va], y[va])


def _checked_classes(classes: object) -> list[int]:
    """``classes`` as :class:`DigitsDataModule` takes it (any sequence of integers: a list, a range, a NumPy array,
    a tensor), as a list of distinct digits 0..9; a ``ValueError`` naming the bad value (a repeated class was split
    twice, putting the same images in the training and the validation set)."""
    if hasattr(classes, "tolist") and not isinstance(classes, (str, bytes)):
        classes = classes.tolist()  # a NumPy array or a tensor
    if isinstance(classes, (str, bytes)) or not isinstance(classes, (list, tuple, range)) or not len(classes):
        raise ValueError(f"`classes` must be None or a non-empty list of digits 0..9, got {classes!r}.")
    classes = list(classes)
    for c in classes:
        if isinstance(c, bool) or not isinstance(c, numbers.Integral) or not 0 <= c <= 9:
            raise ValueError(f"digit class {c!r} in `classes` does not exist; valid classes are 0..9.")
    repeated = sorted({int(c) for c in classes if classes.count(c) > 1})
    if repeated:
        raise ValueError(f"`classes` {classes} repeats {repeated}: list each digit class once.")
    return [int(c) for c in classes]
