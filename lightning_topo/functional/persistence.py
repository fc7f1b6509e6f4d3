"""Persistence diagrams of the sublevel filtration of grey-scale volumes: where cubical diagrams are computed.

The filtration is the one :func:`~lightning_topo.functional.cubical_betti` takes one slice of: the voxels are the
vertices of a cubical complex (the V-construction) and an edge, square or cube enters at the largest value of its
corner voxels, exactly GUDHI's ``CubicalComplex(vertices=volume)`` and cripser's ``computePH``. So the number of
pairs of dimension ``k`` with ``birth <= t < death`` is ``cubical_betti(volumes, t)[:, k]`` at every finite ``t``.

:class:`PersistenceDiagrams` holds the pairs of a whole batch as three flat tensors (``pairs``, ``dims``,
``index``), as torch_geometric batches graphs: one volume's or one dimension's diagram is a boolean selection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["PersistenceDiagrams"]


@dataclass(frozen=True)
class PersistenceDiagrams:
    """The persistence pairs of a batch of volumes, as flat tensors on one device.

    Attributes:
        pairs: float64 ``(P, 2)``: ``[birth, death]`` per pair; ``death`` is ``+inf`` for an essential class (the
            one H0 class of a volume, born at its minimum). Pairs with ``birth == death`` are omitted.
        dims: int64 ``(P,)``: the homological dimension of each pair.
        index: int64 ``(P,)``: the volume (position in the batch) each pair belongs to.
        num_volumes: the batch size ``B`` (a volume may have no pairs in a dimension, so ``index`` alone cannot
            tell it).
        computed_dims: the dimensions that were computed (a dimension not in it has no pairs because it was not
            asked for, not because the volume has none).
        value_min: float64 ``(B,)``: each volume's smallest value (the birth of its essential class).
        value_max: float64 ``(B,)``: each volume's largest value (the end of the filtration: summaries that need a
            finite lifetime for the essential class end it here).

    Example:
        >>> d = PersistenceDiagrams(
        ...     pairs=torch.tensor([[0.0, float("inf")], [1.0, 3.0], [2.0, 4.0]], dtype=torch.float64),
        ...     dims=torch.tensor([0, 0, 1]), index=torch.tensor([0, 0, 1]), num_volumes=2,
        ...     computed_dims=(0, 1), value_min=torch.tensor([0.0, 2.0], dtype=torch.float64),
        ...     value_max=torch.tensor([3.0, 4.0], dtype=torch.float64))
        >>> d.diagram(volume=0, dim=0).tolist()
        [[0.0, inf], [1.0, 3.0]]
        >>> len(d.select(dim=1))
        1
    """

    pairs: Tensor
    dims: Tensor
    index: Tensor
    num_volumes: int
    computed_dims: tuple[int, ...]
    value_min: Tensor
    value_max: Tensor

    def __post_init__(self) -> None:
        p = self.pairs.shape[0]
        if self.pairs.ndim != 2 or self.pairs.shape[1] != 2:
            raise ValueError(f"`pairs` must have shape (P, 2), got {tuple(self.pairs.shape)}.")
        if self.dims.shape != (p,) or self.index.shape != (p,):
            raise ValueError(
                f"`dims` and `index` must have shape (P,) = ({p},), got {tuple(self.dims.shape)} and "
                f"{tuple(self.index.shape)}."
            )
        if self.value_min.shape != (self.num_volumes,) or self.value_max.shape != (self.num_volumes,):
            raise ValueError(
                f"`value_min` and `value_max` must have shape (num_volumes,) = ({self.num_volumes},), got "
                f"{tuple(self.value_min.shape)} and {tuple(self.value_max.shape)}."
            )

    def __len__(self) -> int:
        return int(self.pairs.shape[0])

    @property
    def device(self) -> torch.device:
        """Where the tensors live."""
        return self.pairs.device

    def _mask(self, volume: int | None, dim: int | None) -> Tensor:
        keep = torch.ones(len(self), dtype=torch.bool, device=self.device)
        if volume is not None:
            if not -self.num_volumes <= volume < self.num_volumes:
                raise IndexError(f"`volume` {volume} is out of range for {self.num_volumes} volumes.")
            keep &= self.index == volume % self.num_volumes
        if dim is not None:
            if dim not in self.computed_dims:
                raise ValueError(
                    f"`dim` {dim} was not computed (computed_dims={self.computed_dims}); pass it in "
                    "`cubical_persistence(..., dims=...)`."
                )
            keep &= self.dims == dim
        return keep

    def diagram(self, volume: int | None = None, dim: int | None = None) -> Tensor:
        """The ``(n, 2)`` float64 ``[birth, death]`` pairs of one volume and/or one dimension (``None``: all)."""
        return self.pairs[self._mask(volume, dim)]

    def select(self, volume: int | None = None, dim: int | None = None) -> PersistenceDiagrams:
        """The pairs of one volume and/or one dimension, as diagrams of the same batch (``index`` unchanged)."""
        keep = self._mask(volume, dim)
        return PersistenceDiagrams(
            pairs=self.pairs[keep],
            dims=self.dims[keep],
            index=self.index[keep],
            num_volumes=self.num_volumes,
            computed_dims=self.computed_dims if dim is None else (dim,),
            value_min=self.value_min,
            value_max=self.value_max,
        )

    def to(self, device: torch.device | str) -> PersistenceDiagrams:
        """The same diagrams on ``device``."""
        return PersistenceDiagrams(
            pairs=self.pairs.to(device),
            dims=self.dims.to(device),
            index=self.index.to(device),
            num_volumes=self.num_volumes,
            computed_dims=self.computed_dims,
            value_min=self.value_min.to(device),
            value_max=self.value_max.to(device),
        )

    def as_arrays(self) -> dict[str, np.ndarray]:
        """NumPy arrays for ``np.savez`` (read back with :meth:`from_arrays`)."""
        return {
            "pairs": self.pairs.detach().cpu().numpy(),
            "dims": self.dims.detach().cpu().numpy(),
            "index": self.index.detach().cpu().numpy(),
            "num_volumes": np.asarray(self.num_volumes, dtype=np.int64),
            "computed_dims": np.asarray(self.computed_dims, dtype=np.int64),
            "value_min": self.value_min.detach().cpu().numpy(),
            "value_max": self.value_max.detach().cpu().numpy(),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> PersistenceDiagrams:
        """The diagrams :meth:`as_arrays` wrote (CPU tensors)."""
        return cls(
            pairs=torch.as_tensor(np.asarray(arrays["pairs"], dtype=np.float64)).reshape(-1, 2),
            dims=torch.as_tensor(np.asarray(arrays["dims"], dtype=np.int64)),
            index=torch.as_tensor(np.asarray(arrays["index"], dtype=np.int64)),
            num_volumes=int(arrays["num_volumes"]),
            computed_dims=tuple(int(d) for d in np.asarray(arrays["computed_dims"]).ravel()),
            value_min=torch.as_tensor(np.asarray(arrays["value_min"], dtype=np.float64)),
            value_max=torch.as_tensor(np.asarray(arrays["value_max"], dtype=np.float64)),
        )
