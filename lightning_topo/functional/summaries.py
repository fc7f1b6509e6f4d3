"""Summaries of persistence diagrams, per volume and dimension: where the numbers logged from diagrams are computed.

Every function takes a :class:`~lightning_topo.functional.PersistenceDiagrams` (the flat pairs of a batch) and
returns one row per volume and one column per dimension, ``(B, K)``, in one scatter over the pairs (no loop over
volumes):

* :func:`total_persistence` — the sum of the lifetimes ``death - birth`` of a volume's pairs of dimension ``k``;
* :func:`persistence_entropy` — the Shannon entropy (natural log) of those lifetimes as fractions of their sum:
  ``-sum p_i log p_i`` with ``p_i = l_i / sum l``; 0 when the volume has no pair of that dimension (or their
  lifetimes sum to 0). It is ``log n`` for ``n`` equal lifetimes and near 0 when one pair dominates;
* :func:`persistent_betti` — the *persistent* Betti numbers at a threshold ``t``: the pairs alive at ``t``
  (``birth <= t < death``, the convention of :func:`~lightning_topo.functional.cubical_betti`) whose lifetime is
  at least ``min_persistence`` times the volume's range ``value_max - value_min``. With ``min_persistence = 0``
  they are exactly ``cubical_betti(volumes, t)``; a positive value leaves out the short-lived features (noise).

**The essential class** (``death = +inf``: a volume's one H0 class, born at its minimum) is ended at the volume's
largest value ``value_max`` for the lifetimes of :func:`total_persistence` and :func:`persistence_entropy` (the
filtration ends there; so its lifetime is the volume's range). For :func:`persistent_betti` it never dies: it is
counted at every ``t >= value_min``, whatever ``min_persistence`` (at most 1: no finite pair outlives the range).

:func:`persistence_summaries` computes the ones asked for at once, as the columns :func:`summary_keys` names (the
suffixes of the metrics ``topology/{layer}/...`` the callback logs).
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Sequence

import torch
from torch import Tensor

from lightning_topo.functional._checks import batch_thresholds
from lightning_topo.functional.persistence import PersistenceDiagrams, check_dims

__all__ = [
    "SUMMARY_KINDS",
    "persistence_entropy",
    "persistence_summaries",
    "persistent_betti",
    "summary_keys",
    "total_persistence",
]

SUMMARY_KINDS: tuple[str, ...] = ("total_persistence", "entropy", "persistent_betti")
"""The summaries :func:`persistence_summaries` computes, in the order of its columns."""

_KEY_FORMAT = {"total_persistence": "total_persistence_{k}", "entropy": "persistence_entropy_{k}"}


def summary_keys(kinds: Sequence[str], dims: Sequence[int]) -> list[str]:
    """The names of :func:`persistence_summaries`' columns: per kind (in :data:`SUMMARY_KINDS` order), per dim.

    ``total_persistence_{k}``, ``persistence_entropy_{k}`` and ``persistent_b{k}``; the callback logs each as
    ``topology/{layer}/{key}``.

    Example:
        >>> summary_keys(["persistent_betti", "entropy"], [0, 1])
        ['persistence_entropy_0', 'persistence_entropy_1', 'persistent_b0', 'persistent_b1']
    """
    _check_kinds(kinds)
    out = []
    for kind in SUMMARY_KINDS:
        if kind in kinds:
            out += [_KEY_FORMAT[kind].format(k=k) if kind in _KEY_FORMAT else f"persistent_b{k}" for k in dims]
    return out


def summary_kind_of(key: str) -> str:
    """A column name of :func:`summary_keys` without its dimension: the series a chart or table groups by.

    Example:
        >>> [summary_kind_of(k) for k in ("total_persistence_2", "persistence_entropy_0", "persistent_b1")]
        ['total_persistence', 'persistence_entropy', 'persistent_b']
    """
    return re.sub(r"_?\d$", "", key)


def _check_kinds(kinds: Sequence[str]) -> None:
    bad = [k for k in kinds if k not in SUMMARY_KINDS]
    if bad or isinstance(kinds, str):
        raise ValueError(f"summary kinds must be a list of {SUMMARY_KINDS}, got {kinds!r}.")


def _check_diagrams(diagrams: object) -> PersistenceDiagrams:
    if not isinstance(diagrams, PersistenceDiagrams):
        raise TypeError(
            f"`diagrams` must be a PersistenceDiagrams (from cubical_persistence), got {type(diagrams).__name__}."
        )
    return diagrams


def _columns(diagrams: PersistenceDiagrams, dims: Sequence[int] | None) -> tuple[list[int], Tensor, Tensor]:
    """The dims asked for (checked against ``computed_dims``), each pair's flat bin ``volume * K + column`` and a
    mask of the pairs in those dims."""
    wanted = list(diagrams.computed_dims if dims is None else check_dims(dims, in_order=True))
    missing = [d for d in wanted if d not in diagrams.computed_dims]
    if missing:
        raise ValueError(
            f"`dims` {wanted} must be dimensions the diagrams hold (computed_dims={diagrams.computed_dims}); "
            f"{missing} is not: pass it in `cubical_persistence(..., dims=...)`, or leave it out of `dims`."
        )
    lookup = torch.full((max([*diagrams.computed_dims, *wanted, 0]) + 1,), -1, dtype=torch.long)
    lookup[torch.tensor(wanted, dtype=torch.long)] = torch.arange(len(wanted))
    column = lookup.to(diagrams.device)[diagrams.dims.clamp(0, len(lookup) - 1)]
    keep = (column >= 0) & (diagrams.dims < len(lookup))
    return wanted, diagrams.index * len(wanted) + column.clamp(min=0), keep


def _lifetimes(diagrams: PersistenceDiagrams, halved: bool = False) -> Tensor:
    """``death - birth`` per pair (float64), an essential class (``death = inf``) ended at its volume's max;
    ``halved``: ``death / 2 - birth / 2``, which does not overflow (but rounds subnormal values)."""
    pairs = diagrams.pairs.to(torch.float64)
    end = torch.where(torch.isinf(pairs[:, 1]), diagrams.value_max.to(pairs)[diagrams.index], pairs[:, 1])
    return end / 2 - pairs[:, 0] / 2 if halved else end - pairs[:, 0]


def _huge_range(diagrams: PersistenceDiagrams) -> Tensor:
    """Per pair, whether its volume's range ``max - min`` overflows float64 (values beyond half the float64 limit
    on both sides): there lifetimes and the range are compared halved. Elsewhere they are exact differences, which
    halving would round for subnormal values."""
    vmax, vmin = diagrams.value_max.to(torch.float64), diagrams.value_min.to(torch.float64)
    return torch.isinf(vmax - vmin).to(diagrams.pairs.device)[diagrams.index]


def _scatter_sum(values: Tensor, bins: Tensor, keep: Tensor, batch: int, k: int) -> Tensor:
    out = torch.zeros(batch * k, dtype=values.dtype, device=values.device)
    out.index_add_(0, bins[keep], values[keep])
    return out.reshape(batch, k)


def total_persistence(diagrams: PersistenceDiagrams, dims: Sequence[int] | None = None) -> Tensor:
    """Total persistence: the sum of each volume's lifetimes ``death - birth`` per dimension.

    Args:
        diagrams: the pairs of a batch of ``B`` volumes.
        dims: the dimensions, one column each (default: ``diagrams.computed_dims``); each must have been computed.

    Returns:
        float64 ``(B, K)``; the essential class counts ``value_max - value_min`` (the module docstring says why).
        A sum beyond float64's range (volumes spanning about 1e308) is ``inf``: the callback reports such a layer as
        a problem rather than logging it; the entropy and the persistent Betti numbers stay finite there.

    Example:
        >>> d = PersistenceDiagrams(
        ...     pairs=torch.tensor([[0.0, float("inf")], [1.0, 3.0], [2.0, 4.0]], dtype=torch.float64),
        ...     dims=torch.tensor([0, 0, 1]), index=torch.tensor([0, 0, 0]), num_volumes=1,
        ...     computed_dims=(0, 1), value_min=torch.tensor([0.0], dtype=torch.float64),
        ...     value_max=torch.tensor([5.0], dtype=torch.float64))
        >>> total_persistence(d).tolist()  # H0: 5 (essential, ended at 5) + 2; H1: 2
        [[7.0, 2.0]]
    """
    diagrams = _check_diagrams(diagrams)
    wanted, bins, keep = _columns(diagrams, dims)
    return _scatter_sum(_lifetimes(diagrams), bins, keep, diagrams.num_volumes, len(wanted))


def persistence_entropy(diagrams: PersistenceDiagrams, dims: Sequence[int] | None = None) -> Tensor:
    """Persistence entropy: ``-sum p_i log p_i`` of each volume's lifetimes per dimension, ``p_i = l_i / sum l``.

    Args:
        diagrams: the pairs of a batch of ``B`` volumes.
        dims: the dimensions, one column each (default: ``diagrams.computed_dims``).

    Returns:
        float64 ``(B, K)`` in nats; 0 where a volume has no pair of that dimension or its lifetimes sum to 0.

    Example:
        >>> d = PersistenceDiagrams(
        ...     pairs=torch.tensor([[0.0, 1.0], [1.0, 2.0], [0.0, 3.0]], dtype=torch.float64),
        ...     dims=torch.tensor([1, 1, 1]), index=torch.tensor([0, 0, 1]), num_volumes=2,
        ...     computed_dims=(1,), value_min=torch.zeros(2, dtype=torch.float64),
        ...     value_max=torch.full((2,), 3.0, dtype=torch.float64))
        >>> [round(v, 6) for v in persistence_entropy(d)[:, 0].tolist()]  # two equal bars: log 2; one bar: 0
        [0.693147, 0.0]
    """
    diagrams = _check_diagrams(diagrams)
    wanted, bins, keep = _columns(diagrams, dims)
    batch, k = diagrams.num_volumes, len(wanted)
    # Entropy does not change when a volume's lifetimes of one dimension are all scaled: divided by the largest
    # they lie in (0, 1], their sum in [1, n], and no share underflows for want of range (lifetimes of 1e-200 in
    # a volume spanning 1e200). Exact differences, halved only where the volume's range overflows.
    life = torch.where(_huge_range(diagrams), _lifetimes(diagrams, halved=True), _lifetimes(diagrams))
    life = torch.where(keep, life, 0.0)
    top = torch.zeros(batch * k, dtype=life.dtype, device=life.device)
    top.scatter_reduce_(0, bins[keep], life[keep], reduce="amax")
    bin_of = bins.clamp(max=max(batch * k - 1, 0))
    top = top[bin_of]
    scaled = life / torch.where(top > 0, top, 1.0)
    total = _scatter_sum(scaled, bins, keep, batch, k).reshape(-1)
    share = scaled / total[bin_of].clamp(min=1.0)  # a sum of scaled lifetimes is 0 or >= 1
    terms = torch.where(share > 0, -share * torch.log(share.clamp(min=torch.finfo(torch.float64).tiny)), 0.0)
    return _scatter_sum(terms, bins, keep & (life > 0), batch, k)


def persistent_betti(
    diagrams: PersistenceDiagrams,
    thresholds: Tensor | float,
    min_persistence: float | Tensor = 0.0,
    dims: Sequence[int] | None = None,
) -> Tensor:
    """Persistent Betti numbers: the pairs alive at ``t`` that persist at least ``min_persistence`` of the range.

    ``#{pairs of dim k of a volume: birth <= t < death and death - birth >= min_persistence * (value_max -
    value_min)}``; the essential class is alive for every ``t >= birth``. With ``min_persistence = 0`` this is
    :func:`~lightning_topo.functional.cubical_betti` at ``t`` (for the dimensions computed).

    Args:
        diagrams: the pairs of a batch of ``B`` volumes.
        thresholds: ``t``: a number or a ``(B,)`` tensor or NumPy array (one per volume, e.g. from
            :func:`~lightning_topo.functional.sublevel_thresholds`); NaN is an error.
        min_persistence: the shortest lifetime counted, as a fraction of each volume's range, in ``[0, 1]`` (a
            number or a 0-d tensor). The default 0 counts every pair: the Betti numbers at ``t``
            (:func:`persistence_summaries` and ``TopologyConfig`` default to 0.1, the noise cut they log).
        dims: the dimensions, one column each (default: ``diagrams.computed_dims``).

    Returns:
        int64 ``(B, K)``.

    Example:
        >>> d = PersistenceDiagrams(
        ...     pairs=torch.tensor([[0.0, float("inf")], [1.0, 3.0], [2.0, 2.5]], dtype=torch.float64),
        ...     dims=torch.tensor([0, 0, 0]), index=torch.tensor([0, 0, 0]), num_volumes=1,
        ...     computed_dims=(0,), value_min=torch.tensor([0.0], dtype=torch.float64),
        ...     value_max=torch.tensor([4.0], dtype=torch.float64))
        >>> persistent_betti(d, 2.0).tolist(), persistent_betti(d, 2.0, min_persistence=0.25).tolist()
        ([[3]], [[2]])
    """
    diagrams = _check_diagrams(diagrams)
    mp = min_persistence
    if isinstance(mp, Tensor) and mp.ndim == 0 and mp.dtype != torch.bool and not mp.is_complex():
        mp = float(mp.item())  # a 0-d tensor, e.g. from a sweep over torch.linspace
    if isinstance(mp, bool) or not isinstance(mp, numbers.Real) or not 0.0 <= mp <= 1.0:
        raise ValueError(f"`min_persistence` must be a number in [0, 1] (a fraction of the range), got {mp!r}.")
    wanted, bins, keep = _columns(diagrams, dims)
    batch = diagrams.num_volumes
    t = batch_thresholds(thresholds, batch, diagrams.device, name="thresholds", item="volume")
    pairs = diagrams.pairs.to(torch.float64)
    at = t[diagrams.index]
    essential = torch.isinf(pairs[:, 1])
    alive = (pairs[:, 0] <= at) & ((at < pairs[:, 1]) | essential)  # the essential class: alive at t = +inf too
    if mp > 0:  # exact differences; halves where a volume's range overflows float64
        vmax, vmin = diagrams.value_max.to(torch.float64), diagrams.value_min.to(torch.float64)
        span = torch.where(torch.isinf(vmax - vmin), vmax / 2 - vmin / 2, vmax - vmin)
        span = span.to(pairs.device)[diagrams.index]
        huge = _huge_range(diagrams)
        life = torch.where(huge, pairs[:, 1] / 2 - pairs[:, 0] / 2, pairs[:, 1] - pairs[:, 0])
        # As a ratio: mp * span rounds to few bits where the range is subnormal (0.7 * 3u is 2u).
        alive &= essential | (life / torch.where(span > 0, span, 1.0) >= mp)
    counts = torch.zeros(batch * len(wanted), dtype=torch.int64, device=pairs.device)
    counts.index_add_(0, bins[keep & alive], torch.ones_like(bins[keep & alive]))
    return counts.reshape(batch, len(wanted))


def persistence_summaries(
    diagrams: PersistenceDiagrams,
    thresholds: Tensor | float,
    kinds: Sequence[str] = SUMMARY_KINDS,
    min_persistence: float = 0.1,
    dims: Sequence[int] | None = None,
) -> Tensor:
    """The summaries ``kinds`` of each volume as one float64 ``(B, S)`` tensor, columns named by
    :func:`summary_keys` ``(kinds, dims)``: for each kind of :data:`SUMMARY_KINDS` asked for, one column per dim.

    Args:
        diagrams: the pairs of a batch of ``B`` volumes.
        thresholds: for ``"persistent_betti"``: a number or ``(B,)`` thresholds.
        kinds: which of ``"total_persistence"``, ``"entropy"``, ``"persistent_betti"``.
        min_persistence: for ``"persistent_betti"`` (a fraction of each volume's range).
        dims: the dimensions (default: ``diagrams.computed_dims``).

    Example:
        >>> d = PersistenceDiagrams(
        ...     pairs=torch.tensor([[0.0, float("inf")], [1.0, 3.0]], dtype=torch.float64),
        ...     dims=torch.tensor([0, 0]), index=torch.tensor([0, 0]), num_volumes=1, computed_dims=(0,),
        ...     value_min=torch.tensor([0.0], dtype=torch.float64), value_max=torch.tensor([4.0], dtype=torch.float64))
        >>> summary_keys(SUMMARY_KINDS, [0]), [round(v, 4) for v in persistence_summaries(d, 2.0)[0].tolist()]
        (['total_persistence_0', 'persistence_entropy_0', 'persistent_b0'], [6.0, 0.6365, 2.0])
    """
    _check_kinds(kinds)
    diagrams = _check_diagrams(diagrams)
    dims = list(diagrams.computed_dims if dims is None else check_dims(dims, in_order=True))
    columns = []
    if "total_persistence" in kinds:
        columns.append(total_persistence(diagrams, dims))
    if "entropy" in kinds:
        columns.append(persistence_entropy(diagrams, dims))
    if "persistent_betti" in kinds:
        columns.append(persistent_betti(diagrams, thresholds, min_persistence, dims).to(torch.float64))
    if not columns:
        return torch.zeros(diagrams.num_volumes, 0, dtype=torch.float64, device=diagrams.device)
    return torch.cat(columns, dim=1)
