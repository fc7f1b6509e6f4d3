"""Point clouds with known topology, seeded: simple shapes and Naitzat et al.'s synthetic datasets.

Every generator returns torch tensors. ``KNOWN_BETTI`` holds the Betti numbers of the sampled spaces.
Naitzat, Zhitnikov, Lim (JMLR 2020), their §5 (docs/naitzat.md):

* D-I (2-D): class a = 9 disks of radius 1.3 (one at the centre, eight centred on a circle of radius 7);
  class b = the disk of radius 9.5 around the origin (inside [-10, 10]^2) minus the small disks grown by a
  0.5 margin. b(a) = (9, 0), b(b) = (1, 9).
* D-II (3-D): 9 pairs of interlocked solid tori, centred at the origin and at (±3, ±3, ±3); class a = one
  torus of each pair, class b = the other; b = (9, 9, 0) per class.
* D-III (3-D): 9 units at the same centres: an outer shell (radii 2-2.05) around an inner shell (radii
  1-1.05) around a ball (radius 0.5); class a = the inner shells, b = (9, 0, 9); class b = the outer
  shells and the balls, b = (18, 0, 9).
D-II and D-III are max-abs scaled to [-1, 1] per coordinate, as in the paper. Points are drawn uniformly
in each solid (rejection sampling) or on each surface.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

__all__ = ["KNOWN_BETTI", "circle", "naitzat_d1", "naitzat_d2", "naitzat_d3", "sphere", "torus", "two_circles"]

KNOWN_BETTI: dict[str, dict[int, tuple[int, ...]]] = {
    "d1": {0: (9, 0), 1: (1, 9)},
    "d2": {0: (9, 9, 0), 1: (9, 9, 0)},
    "d3": {0: (9, 0, 9), 1: (18, 0, 9)},
    "circle": {0: (1, 1)},
    "two_circles": {0: (2, 2)},
    "sphere": {0: (1, 0, 1)},
    "torus": {0: (1, 2, 1)},
}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


MIN_POINTS: dict[str, int] = {"d1": 1, "d2": 9, "d3": 9}
"""Points per class the Naitzat generators need (D-II and D-III: one or more in each of their 9 units)."""


def _check_n(name: str, n: object, minimum: int) -> None:
    """A ``ValueError`` naming ``name`` unless ``n`` is an integer (not a bool) ``>= minimum`` (it was an error
    from inside torch: ``torch.cat(): expected a non-empty list``, ``negative dimension``)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {n!r}.")


def _noise(x: Tensor, noise: float, gen: torch.Generator) -> Tensor:
    return x + noise * torch.randn(x.shape, generator=gen, dtype=x.dtype) if noise > 0 else x


def circle(n: int, radius: float = 1.0, noise: float = 0.0, seed: int = 0) -> Tensor:
    """``n`` points on a circle (uniform angles), ``(n, 2)``. b = (1, 1)."""
    _check_n("n", n, 1)
    gen = _gen(seed)
    t = 2 * math.pi * torch.rand(n, generator=gen, dtype=torch.float64)
    return _noise(radius * torch.stack([t.cos(), t.sin()], dim=1), noise, gen)


def two_circles(n: int, radius: float = 1.0, gap: float = 1.0, noise: float = 0.0, seed: int = 0) -> Tensor:
    """``n`` points on two disjoint circles centred ``2 * radius + gap`` apart, ``(n, 2)``. b = (2, 2)."""
    _check_n("n", n, 2)
    a = circle(n // 2, radius, noise, seed)
    b = circle(n - n // 2, radius, noise, seed + 1)
    b[:, 0] += 2 * radius + gap
    return torch.cat([a, b])


def sphere(n: int, radius: float = 1.0, noise: float = 0.0, seed: int = 0) -> Tensor:
    """``n`` points uniform on a 2-sphere, ``(n, 3)``. b = (1, 0, 1)."""
    _check_n("n", n, 1)
    gen = _gen(seed)
    x = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    return _noise(radius * x / x.norm(dim=1, keepdim=True), noise, gen)


def torus(n: int, major: float = 2.0, minor: float = 1.0, noise: float = 0.0, seed: int = 0) -> Tensor:
    """``n`` points uniform (by area) on a torus of radii ``major`` > ``minor``, ``(n, 3)``. b = (1, 2, 1)."""
    _check_n("n", n, 1)
    if not major > minor > 0:
        raise ValueError(
            f"`major` must be larger than `minor` and `minor` positive, got major={major!r}, minor={minor!r} (a "
            "torus with major <= minor intersects itself: not the (1, 2, 1) of KNOWN_BETTI['torus'])."
        )
    gen = _gen(seed)
    theta, phi = [], []
    while sum(len(t) for t in theta) < n:  # rejection sampling on the area element (R + r cos phi)
        u = 2 * math.pi * torch.rand(2 * n, generator=gen, dtype=torch.float64)
        v = 2 * math.pi * torch.rand(2 * n, generator=gen, dtype=torch.float64)
        keep = torch.rand(2 * n, generator=gen, dtype=torch.float64) < (major + minor * v.cos()) / (major + minor)
        theta.append(u[keep])
        phi.append(v[keep])
    t, p = torch.cat(theta)[:n], torch.cat(phi)[:n]
    ring = major + minor * p.cos()
    return _noise(torch.stack([ring * t.cos(), ring * t.sin(), minor * p.sin()], dim=1), noise, gen)


def _d1_centres() -> Tensor:
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    return torch.cat([torch.zeros(1, 2, dtype=torch.float64), 7.0 * torch.stack([angles.cos(), angles.sin()], 1)])


def naitzat_d1(n: int = 5000, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Naitzat's D-I: ``n`` points per class in 2-D; labels 0 (class a, the 9 disks) and 1 (class b).

    Returns ``(points (2n, 2) float64, labels (2n,) int64)``; known Betti numbers in ``KNOWN_BETTI["d1"]``.
    """
    _check_n("n", n, MIN_POINTS["d1"])
    gen = _gen(seed)
    centres = _d1_centres()
    small, margin, big = 1.3, 0.5, 9.5

    def draw(accept: callable, count: int) -> Tensor:  # type: ignore[valid-type]
        out: list[Tensor] = []
        while sum(len(o) for o in out) < count:
            p = (torch.rand(4 * count, 2, generator=gen, dtype=torch.float64) * 2 - 1) * 10.0
            out.append(p[accept(p)])
        return torch.cat(out)[:count]

    def dist_to_centres(p: Tensor) -> Tensor:
        return torch.cdist(p, centres).min(dim=1).values

    a = draw(lambda p: dist_to_centres(p) <= small, n)
    b = draw(lambda p: (p.norm(dim=1) <= big) & (dist_to_centres(p) > small + margin), n)
    labels = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)])
    return torch.cat([a, b]), labels


def _unit_centres() -> Tensor:
    corners = torch.tensor(
        [[sx, sy, sz] for sx in (-3.0, 3.0) for sy in (-3.0, 3.0) for sz in (-3.0, 3.0)], dtype=torch.float64
    )
    return torch.cat([torch.zeros(1, 3, dtype=torch.float64), corners])


def _max_abs_scale(points: Tensor) -> Tensor:
    return points / points.abs().amax(dim=0, keepdim=True)


def _solid_torus(n: int, major: float, minor: float, gen: torch.Generator) -> Tensor:
    """Uniform points in a solid torus around the z axis (ring radius ``major``, tube radius ``minor``)."""
    out: list[Tensor] = []
    while sum(len(o) for o in out) < n:
        p = (torch.rand(4 * n, 3, generator=gen, dtype=torch.float64) * 2 - 1) * (major + minor)
        p[:, 2] *= minor / (major + minor)
        ring = (p[:, :2].norm(dim=1) - major) ** 2 + p[:, 2] ** 2
        out.append(p[ring <= minor**2])
    return torch.cat(out)[:n]


def naitzat_d2(n: int = 900, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Naitzat's D-II: ``n`` points per class, 9 pairs of interlocked solid tori (ring 1, tube 0.25).

    Class a: a torus in the xy-plane at each centre; class b: its partner in the xz-plane shifted by
    (1, 0, 0), threading it. Max-abs scaled. b = (9, 9, 0) per class.
    """
    _check_n("n", n, MIN_POINTS["d2"])
    gen = _gen(seed)
    centres = _unit_centres()
    per = [n // 9 + (1 if i < n % 9 else 0) for i in range(9)]
    a_parts, b_parts = [], []
    for c, m in zip(centres, per, strict=False):
        a_parts.append(_solid_torus(m, 1.0, 0.25, gen) + c)
        t = _solid_torus(m, 1.0, 0.25, gen)
        b_parts.append(torch.stack([t[:, 0] + 1.0, t[:, 2], t[:, 1]], dim=1) + c)  # rotate into xz, shift
    points = _max_abs_scale(torch.cat(a_parts + b_parts))
    labels = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)])
    return points, labels


def _shell(n: int, r_in: float, r_out: float, gen: torch.Generator) -> Tensor:
    """Uniform points in a spherical shell (a ball when ``r_in == 0``)."""
    d = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    d = d / d.norm(dim=1, keepdim=True)
    u = torch.rand(n, generator=gen, dtype=torch.float64)
    r = (r_in**3 + u * (r_out**3 - r_in**3)) ** (1 / 3)
    return d * r[:, None]


def naitzat_d3(n: int = 900, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Naitzat's D-III: ``n`` points per class; class a = 9 inner shells, class b = 9 outer shells + 9 balls.

    Max-abs scaled. b(a) = (9, 0, 9), b(b) = (18, 0, 9). Class b splits its points 2:1 between outer
    shells and balls (the outer shell's area is 16 times the ball's).
    """
    _check_n("n", n, MIN_POINTS["d3"])
    gen = _gen(seed)
    centres = _unit_centres()
    per = [n // 9 + (1 if i < n % 9 else 0) for i in range(9)]
    a_parts, b_parts = [], []
    for c, m in zip(centres, per, strict=False):
        a_parts.append(_shell(m, 1.0, 1.05, gen) + c)
        outer = (2 * m) // 3
        b_parts.append(_shell(outer, 2.0, 2.05, gen) + c)
        b_parts.append(_shell(m - outer, 0.0, 0.5, gen) + c)
    points = _max_abs_scale(torch.cat(a_parts + b_parts))
    labels = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)])
    return points, labels
