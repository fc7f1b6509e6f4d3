"""Betti numbers per layer of a small random CNN on scikit-learn's digits, with the functional core only.

Run:  python examples/engine_demo.py  [--per-class 20] [--seed 0] [--device cpu|cuda]

Each sampled digit (an 8x8 grey image, upsampled to 16x16) is pushed through a randomly initialised
CNN; each layer's activation (C, H, W) is one grey-scale volume. For every layer the demo prints the
mean Betti numbers (b0, b1, b2) of the sublevel set {v <= mean(v)} of each volume (a per-volume,
scale-free threshold), the topological complexity Omega, and the decay of Omega over depth
(`theta`, the paper's score, and the depth-normalised `normalised_decay`). Takes a few seconds on CPU.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from lightning_topo.functional import cubical_betti, normalised_decay, omega, theta


def load_digits_sample(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded, class-balanced sample of scikit-learn's bundled digits as (N, 1, 16, 16) in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32) / 16.0
    labels = torch.tensor(digits.target, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for c in range(10):
        idx = torch.nonzero(labels == c).flatten()
        chosen.append(idx[torch.randperm(idx.numel(), generator=gen)[:per_class]])
    index = torch.cat(chosen)
    x = nn.functional.interpolate(images[index, None], size=(16, 16), mode="bilinear", align_corners=False)
    return x, labels[index]


def random_cnn(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=20, help="digits sampled per class (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    x, y = load_digits_sample(args.per_class, args.seed)
    net = random_cnn(args.seed).to(args.device).eval()
    start = time.perf_counter()
    names, omegas = [], []
    print(f"{len(x)} digits ({args.per_class} per class), device {args.device}")
    print(f"{'layer':<22}{'shape':>14}{'b0':>8}{'b1':>8}{'b2':>8}{'Omega':>9}")
    h = x.to(args.device)
    with torch.inference_mode():
        for i, layer in enumerate(net):
            h = layer(h)
            threshold = h.mean(dim=(1, 2, 3))  # one scale-free threshold per volume
            betti = cubical_betti(h, threshold)  # (N, 3), one batched call per layer
            mean = betti.double().mean(dim=0).tolist()
            om = omega(betti, y).item()
            name = f"{i}:{layer.__class__.__name__}"
            names.append(name)
            omegas.append(om)
            shape = "x".join(str(s) for s in h.shape[1:])
            print(f"{name:<22}{shape:>14}{mean[0]:>8.2f}{mean[1]:>8.2f}{mean[2]:>8.2f}{om:>9.2f}")
    curve = torch.tensor(omegas)
    print(f"theta (the paper's ranking score, not a steepness) = {theta(curve).item():+.4f}")
    print(f"normalised decay (fraction of peak Omega lost over depth) = {normalised_decay(curve).item():+.4f}")
    print(f"topology of {len(names)} layers x {len(x)} inputs in {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
