"""`rank_models`: rank models for transfer by the decay of their topology (Suresh et al., model selection).

Each model is analysed on the same sample (:func:`lightning_topo.analyse`) and ranked by ``theta``, the
paper's score: **lower theta ranks first** (in the paper lower theta went with higher fine-tuned accuracy).
With ``by="decay_rate"`` the depth-normalised alternative ranks instead (higher first).

Given ``scores`` (e.g. accuracy after fine-tuning, higher = better), the agreement between the topology
ranking and the scores is reported as Kendall's tau, Spearman's rho (each with its p-value) and the
weighted Kendall tau that transferability papers report (``scipy.stats.weightedtau``, which weighs
agreement among the top-ranked models most). All three are computed between the *predictor*
(``-theta``, or ``decay_rate``: higher = predicted better) and the scores, so a positive value means the
topology ranking agrees with the scores — the sign convention of LogME / LEEP tables.

theta depends on the number of watched layers (the same linear decay of Omega gives theta -0.207 / -0.044 /
-0.019 over 4 / 11 / 19 layers), so it is only comparable between models watched on the same number of layers.
Ranking by theta across different depths still ranks by theta (as asked: ``examples/rank_models.py`` reproduces
the paper's comparison that way) but warns once with a :class:`DepthMismatchWarning` naming each model's depth,
and the :class:`Ranking` records it (``depths``, ``note``, also in ``to_dict()`` and ``table()``).
``by="decay_rate"`` is normalised by depth and compares across depths without a warning.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from torch import nn

from lightning_topo.analysis.analyse import analyse
from lightning_topo.analysis.report import TopologyReport

__all__ = ["RANK_BY", "DepthMismatchWarning", "Ranking", "SettingsMismatchWarning", "correlations", "rank_models"]

RANK_BY = ("theta", "decay_rate")


class DepthMismatchWarning(UserWarning):
    """Models ranked by theta were watched on different numbers of layers, where theta is not comparable.

    Turn it into an error with ``warnings.simplefilter("error", DepthMismatchWarning)``.
    """


class SettingsMismatchWarning(UserWarning):
    """Models ranked together were analysed with different settings (view, threshold, sample, ...), so their values
    are not comparable.

    Turn it into an error with ``warnings.simplefilter("error", SettingsMismatchWarning)``.
    """


_SAMPLE_SETTINGS = ("samples_per_class", "max_samples", "seed")
_VIEW_SETTINGS = {  # the settings that change theta and the decay rate (not the persistence summaries')
    "cubical": ("threshold",),
    "rips": ("scale", "metric", "k", "maxdim", "pool_size"),
}
EXACT_SPEARMAN_MAX_N = 8
"""Up to this many models, Spearman's p-value is exact (every pairing enumerated); above, scipy's t approximation."""


def correlations(predictor: list[float], scores: list[float]) -> dict[str, float]:
    """Kendall tau, Spearman rho (with p-values) and weighted tau between a predictor and scores (scipy).

    Kendall's p-value is scipy's (exact for small samples without ties); Spearman's is exact for up to
    :data:`EXACT_SPEARMAN_MAX_N` models (every pairing of the two rankings enumerated), where scipy's t
    approximation is far off (it says p = 0 for 3 models in perfect order; the exact value is 1/3).

    Example:
        >>> c = correlations([3.0, 2.0, 1.0, 0.5], [0.9, 0.8, 0.85, 0.1])
        >>> round(c["kendall_tau"], 3), round(c["spearman_rho"], 3)
        (0.667, 0.8)
    """
    from scipy import stats

    if len(predictor) != len(scores):
        raise ValueError(f"{len(predictor)} predictor values but {len(scores)} scores.")
    if len(predictor) < 3:
        raise ValueError(f"rank correlations need at least 3 models with finite values, got {len(predictor)}.")
    kendall = stats.kendalltau(predictor, scores)
    spearman = stats.spearmanr(predictor, scores)
    spearman_p = float(spearman.pvalue)
    if len(predictor) <= EXACT_SPEARMAN_MAX_N and math.isfinite(float(spearman.statistic)):
        spearman_p = _exact_spearman_p(predictor, scores, float(spearman.statistic))
    weighted = stats.weightedtau(predictor, scores)
    return {
        "kendall_tau": float(kendall.statistic),
        "kendall_p": float(kendall.pvalue),
        "spearman_rho": float(spearman.statistic),
        "spearman_p": spearman_p,
        "weighted_tau": float(weighted.statistic),
        "n": len(predictor),
    }


@dataclass
class Ranking:
    """Models ranked by topology: ``rows`` (best first), ``correlations`` with the scores (or ``None``),
    the per-model ``reports``, what ranked them (``by``), each model's number of watched layers (``depths``) and
    ``note``: why the ranking may mislead (theta compared across different depths), or ``None``."""

    rows: list[dict[str, Any]]
    by: str
    correlations: dict[str, float] | None = None
    reports: dict[str, TopologyReport] = field(default_factory=dict)
    depths: dict[str, int] = field(default_factory=dict)
    note: str | None = None

    @property
    def names(self) -> list[str]:
        """Model names, best first."""
        return [row["name"] for row in self.rows]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready rows and correlations (NaN as ``None``)."""

        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {
            "by": self.by,
            "rows": [{k: clean(v) for k, v in row.items()} for row in self.rows],
            "correlations": None if self.correlations is None else {k: clean(v) for k, v in self.correlations.items()},
            "note": self.note,
        }

    def table(self) -> str:
        """A fixed-width text table, best first, then the correlations when scores were given."""
        width = max([5, *(len(r["name"]) for r in self.rows)])
        has_score = any(r.get("score") is not None for r in self.rows)
        head = f"{'rank':>4}  {'model':<{width}}  {'theta':>8}  {'decay':>7}  {'layers':>6}"
        lines = [head + (f"  {'score':>8}" if has_score else "")]
        for r in self.rows:
            line = (
                f"{r['rank']:>4}  {r['name']:<{width}}  {r['theta']:>8.4f}  {r['decay_rate']:>7.4f}  {r['layers']:>6}"
            )
            if has_score:
                line += f"  {r['score']:>8.4f}" if r.get("score") is not None else f"  {'-':>8}"
            lines.append(line)
        if self.correlations is not None:
            c = self.correlations
            predictor = "-theta" if self.by == "theta" else "decay_rate"
            lines.append(
                f"{predictor} vs score (n={c['n']}): Kendall tau = {c['kendall_tau']:.3f} (p = {c['kendall_p']:.3g}), "
                f"Spearman rho = {c['spearman_rho']:.3f} (p = {c['spearman_p']:.3g}), "
                f"weighted tau = {c['weighted_tau']:.3f}"
            )
        if self.note is not None:
            lines.append(f"note: {self.note}")
        return "\n".join(lines)

    def plot(self) -> Any:
        """Scatter of the ranking score against ``scores`` (one point per model, labelled); needs matplotlib."""
        from lightning_topo.loggers.figures import require_matplotlib

        plt = require_matplotlib()
        fig, ax = plt.subplots(figsize=(6.0, 4.5))
        pts = [r for r in self.rows if r.get("score") is not None and math.isfinite(r[self.by])]
        if pts:
            ax.scatter([r[self.by] for r in pts], [r["score"] for r in pts])
            for r in pts:
                ax.annotate(r["name"], (r[self.by], r["score"]), fontsize=8, xytext=(3, 3), textcoords="offset points")
            ax.set_ylabel("score")
        else:
            ax.bar(range(len(self.rows)), [r[self.by] for r in self.rows], tick_label=self.names)
            ax.set_ylabel(self.by)
        ax.set_xlabel(self.by if pts else "model")
        title = f"models by {self.by}"
        if self.correlations is not None:
            c = self.correlations
            title += f" (Kendall tau {c['kendall_tau']:.2f}, weighted {c['weighted_tau']:.2f})"
        ax.set_title(title)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        return fig


def rank_models(
    models: Mapping[str, nn.Module | TopologyReport],
    data: Any = None,
    scores: Mapping[str, float] | None = None,
    *,
    by: Literal["theta", "decay_rate"] = "theta",
    **analyse_kwargs: Any,
) -> Ranking:
    """Rank models by the decay of their layerwise topology, and compare with ``scores`` when given.

    Args:
        models: name -> ``nn.Module`` (analysed on ``data``) or an existing ``TopologyReport``.
        data: the data set every module is analysed on (as for :func:`~lightning_topo.analyse`); may be
            ``None`` when every entry is already a report.
        scores: name -> a score where higher is better (e.g. fine-tuned accuracy); every model needs one.
        by: ``"theta"`` (default; the paper's score, lower ranks first) or ``"decay_rate"`` (higher first).
            theta is only comparable between models watched on the same number of layers: when they differ, the
            models are still ranked by theta, with a :class:`DepthMismatchWarning` naming each model's depth and
            the same words in the ranking's ``note``; rank by ``"decay_rate"`` (depth-normalised) instead.
        **analyse_kwargs: passed to :func:`~lightning_topo.analyse` (``layers``, ``samples_per_class``, ...).

    Returns:
        A :class:`Ranking`. Models whose ``by`` value is NaN (e.g. a layer with NaN activations) rank last and are
        left out of the correlations, with a note in their row (as are models with a NaN score); models with equal
        values keep the order of ``models`` (consecutive ranks). A note says when the correlations leave models
        out, or are NaN because the values or the scores are all equal.

    Warns:
        DepthMismatchWarning: ``by="theta"`` and the models were watched on different numbers of layers (once
            per call).

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> data = TensorDataset(torch.rand(30, 1, 8, 8), torch.arange(30) % 3)
        >>> zoo = {f"cnn{w}": torch.nn.Sequential(torch.nn.Conv2d(1, w, 3), torch.nn.ReLU(),
        ...        torch.nn.Conv2d(w, w, 3), torch.nn.ReLU()) for w in (2, 4, 8)}
        >>> ranking = rank_models(zoo, data, scores={"cnn2": 0.5, "cnn4": 0.7, "cnn8": 0.9}, progress=False)
        >>> sorted(ranking.names) == sorted(zoo), set(ranking.correlations) >= {"kendall_tau", "weighted_tau"}
        (True, True)
    """
    if by not in RANK_BY:
        raise ValueError(f"`by` must be one of {RANK_BY}, got {by!r}.")
    if not models:
        raise ValueError("`models` is empty: pass a mapping name -> model (or TopologyReport).")
    if scores is not None:
        missing = [name for name in models if name not in scores]
        extra = [name for name in scores if name not in models]
        if missing or extra:
            raise ValueError(
                f"`scores` must have one value per model: missing {missing}, unknown {extra} (models: {list(models)})."
            )
    reports: dict[str, TopologyReport] = {}
    for name, model in models.items():
        if isinstance(model, TopologyReport):
            reports[name] = model
        elif isinstance(model, nn.Module):
            if data is None:
                raise ValueError(f"model {name!r} is a module, so `data` is needed to analyse it.")
            reports[name] = analyse(model, data, name=name, **analyse_kwargs)
        else:
            raise TypeError(f"model {name!r} must be an nn.Module or a TopologyReport, got {type(model).__name__}.")
    depths = {name: len(report.layers) for name, report in reports.items()}
    notes = []
    if by == "theta" and len(set(depths.values())) > 1:
        listed = ", ".join(f"{name}: {d}" for name, d in depths.items())
        notes.append(
            f"theta ranks models watched on different numbers of layers ({listed}), where it is not comparable "
            '(the same decay gives a different theta at another depth); rank by="decay_rate" (depth-normalised) '
            "or watch the same number of layers in every model."
        )
        warnings.warn(notes[-1], DepthMismatchWarning, stacklevel=2)
    mixed = _mixed_settings(reports)
    if mixed:
        notes.append(
            f"the models were analysed with different settings ({mixed}), so their values are not comparable; "
            "analyse every model with the same settings."
        )
        warnings.warn(notes[-1], SettingsMismatchWarning, stacklevel=2)
    sign = 1.0 if by == "theta" else -1.0

    def key(name: str) -> tuple[int, float]:
        value = getattr(reports[name], by)
        return (0, sign * value) if math.isfinite(value) else (1, 0.0)

    rows = []
    # Equal values keep the order of `models` (a stable sort): ties are ranked in the order the models were given
    for rank, name in enumerate(sorted(reports, key=key), start=1):
        report = reports[name]
        row: dict[str, Any] = {
            "rank": rank,
            "name": name,
            "theta": float(report.theta),
            "decay_rate": float(report.decay_rate),
            "layers": len(report.layers),
            "omega_first": float(report.omega[0]) if len(report.omega) else math.nan,
            "omega_last": float(report.omega[-1]) if len(report.omega) else math.nan,
            "score": None if scores is None else float(scores[name]),
        }
        if not math.isfinite(getattr(report, by)):
            row["note"] = f"{by} is not finite ({'; '.join(report.warnings) or 'see the report'}); ranked last"
        elif scores is not None and not math.isfinite(row["score"]):
            row["note"] = f"its score is {row['score']}: left out of the correlations"
        rows.append(row)
    corr = None
    if scores is not None:
        usable = [r for r in rows if math.isfinite(r[by]) and math.isfinite(r["score"])]
        predictor = [-r[by] if by == "theta" else r[by] for r in usable]
        left_out = [r["name"] for r in rows if r not in usable]
        if left_out and len(usable) >= 3:
            notes.append(
                f"the correlations are over {len(usable)} of the {len(rows)} models: {left_out} have a {by} or "
                "score that is not finite."
            )
        if len(usable) >= 3:
            corr = correlations(predictor, [r["score"] for r in usable])
            constant = [what for what, values in ((by, predictor), ("score", [r["score"] for r in usable]))
                        if len(set(values)) == 1]  # fmt: skip
            if constant:
                notes.append(
                    f"the correlations are NaN: every model has the same {' and the same '.join(constant)}, and a "
                    "rank correlation with a constant is undefined."
                )
        else:
            notes.append(
                f"no rank correlation with the scores: it needs at least 3 models with a finite {by} and score, "
                f"there are {len(usable)}."
            )
    note = " ".join(notes) or None
    return Ranking(rows=rows, by=by, correlations=corr, reports=reports, depths=depths, note=note)


def _exact_spearman_p(predictor: list[float], scores: list[float], observed: float) -> float:
    """Two-sided exact p-value of Spearman's rho: the share of the n! pairings of the scores with the predictor
    whose rho is at least as far from 0 as ``observed`` (ties ranked as scipy ranks them, by their mean rank)."""
    from scipy import stats

    rx = stats.rankdata(predictor) - (len(predictor) + 1) / 2
    ry = stats.rankdata(scores) - (len(scores) + 1) / 2
    pairings = ry[np.array(list(itertools.permutations(range(len(ry)))))]  # (n!, n)
    rho = pairings @ rx / math.sqrt(float(rx @ rx) * float(ry @ ry))
    return float(np.mean(np.abs(rho) >= abs(observed) - 1e-12))


def _mixed_settings(reports: Mapping[str, TopologyReport]) -> str:
    """The settings that differ between the reports, as ``"threshold: a='mean', b='median'"`` (empty if none):
    the view, the sample's and the view's settings (not the layers, which differ between models by nature)."""
    configs = {name: report.config for name, report in reports.items() if report.config}
    views = {config.get("complex") for config in configs.values()}
    keys = ["complex", *_SAMPLE_SETTINGS]
    if len(views) == 1:
        keys += _VIEW_SETTINGS.get(str(next(iter(views))), ())
    parts = []
    for key in keys:
        values = {name: config.get(key) for name, config in configs.items()}
        if len({repr(v) for v in values.values()}) > 1:
            parts.append(f"{key}: " + ", ".join(f"{name}={value!r}" for name, value in values.items()))
    return "; ".join(parts)
