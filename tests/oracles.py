"""Independent engines the tests compare against (never our own earlier output)."""

from __future__ import annotations

import numpy as np


def gudhi_betti(volume: np.ndarray, thresholds: list[float]) -> list[list[int]]:
    """Betti numbers (b0, b1, b2) of {v <= t} from GUDHI's V-construction cubical persistence.

    Counts the bars with birth <= t < death, for every t in ``thresholds``; at t = +inf (the whole
    volume) the essential bars (death = inf) count.
    """
    import gudhi

    complex_ = gudhi.CubicalComplex(vertices=np.asarray(volume, dtype=np.float64))
    complex_.compute_persistence(homology_coeff_field=2, min_persistence=-1)
    bars = complex_.persistence()
    out = []
    for t in thresholds:
        counts = [0, 0, 0]
        for dim, (birth, death) in bars:
            if birth <= t and (t < death or death == np.inf):
                counts[dim] += 1
        out.append(counts)
    return out


def cripser_betti(volume: np.ndarray, thresholds: list[float]) -> list[list[int]]:
    """Betti numbers of {v <= t} from cripser (CubicalRipser, the engine of Suresh et al.)."""
    import cripser

    bars = cripser.computePH(np.asarray(volume, dtype=np.float64), maxdim=2)
    out = []
    for t in thresholds:
        counts = [0, 0, 0]
        for dim, birth, death in bars[:, :3]:
            # cripser reports an essential bar's death as DBL_MAX
            if birth <= t and (t < death or death >= np.finfo(np.float64).max):
                counts[int(dim)] += 1
        out.append(counts)
    return out
