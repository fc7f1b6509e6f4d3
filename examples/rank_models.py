"""Model selection by topology (Suresh et al., arXiv 2311.04592): does theta before fine-tuning predict accuracy after?

    python examples/rank_models.py            # full: 8 models x 5 seeds (about 45 s on 2 CPU cores)
    python examples/rank_models.py --quick    # 8 models x 1 seed, shorter training (about 20 s)
    python examples/rank_models.py --quick --threads 2 --precision 64 --first-seed 1   # perturbed

The protocol, scaled down to scikit-learn's digits (no download):

1. **Pre-train** a zoo of 8 models of different families and depths — four CNNs, three MLPs and a small
   torchvision-layout ResNet — on digits 0-4 (``--pretrain-epochs``, Adam 1e-2).
2. **Score before fine-tuning**: ``analyse`` each pre-trained model on the *target* task's validation split
   (digits 5-9, 20 inputs per class, cubical view, threshold = each volume's mean) and read ``theta`` (the
   paper's decay rate; lower = predicted better) and ``decay_rate`` (the depth-normalised alternative;
   higher = predicted better).
3. **Fine-tune** on digits 5-9: a freshly initialised classification head, then every layer for a small
   budget (``--finetune-epochs``, Adam 1e-2 as in pre-training, on 20 % of the target training set so the
   models differ); measure the validation accuracy on 5-9.
4. **Rank**: ``rank_models`` with the accuracies as scores gives Kendall tau, Spearman rho (p-values) and
   scipy's weighted tau, for theta and for the decay rate. In full mode each number is the mean over 5 seeds
   (pre-training, fine-tuning, the data splits and the sample all re-seeded).

Seeds are ``--first-seed`` + 0, 1, ...; ``--threads`` (default 1), ``--precision 64`` (the Trainer's
``"64-true"``) and ``--first-seed`` perturb the rounding and the data, to check that the findings do not hang
on them.

Writes ``results.json`` (per model and seed: theta, decay rate, layers, accuracy; the correlations) and
``theta_vs_accuracy.png`` under ``--out`` (default ``outputs/rank_models``); ``results.json`` records where its
numbers came from (``environment``: versions, CPU, torch threads, date, precision, first seed). theta depends
on how many layers are watched (8 here span 4 to 11 layers): the paper compared models on their own natural
layer counts too, which is why the depth-normalised ``decay_rate`` is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
import warnings
from pathlib import Path

from _provenance import add_perturbation_args, apply_perturbation, environment
from _trainer import quiet_trainer
from lightning.pytorch import seed_everything
from torch import Tensor, nn

from lightning_topo import analyse, rank_models
from lightning_topo.datasets import DigitsDataModule
from lightning_topo.models import Classifier, digits_cnn, mlp

SOURCE, TARGET = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]


class _Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(x + self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


class TinyResNet(nn.Module):
    """A torchvision-layout ResNet for 8x8 digits: conv1, bn1, relu, layer1..layer4 (one block each), fc."""

    def __init__(self, width: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(_Block(width))
        self.layer2 = nn.Sequential(_Block(width))
        self.layer3 = nn.Sequential(_Block(width))
        self.layer4 = nn.Sequential(_Block(width))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


ZOO = {
    "cnn_8_16": lambda: digits_cnn((8, 16)),
    "cnn_16_32": lambda: digits_cnn((16, 32)),
    "cnn_32_64": lambda: digits_cnn((32, 64)),
    "cnn_16_32_32": lambda: digits_cnn((16, 32, 32)),
    "mlp_2x64": lambda: mlp(in_features=64, hidden=64, depth=2),
    "mlp_4x32": lambda: mlp(in_features=64, hidden=32, depth=4),
    "mlp_6x16": lambda: mlp(in_features=64, hidden=16, depth=6),
    "resnet_tiny": lambda: TinyResNet(16),
}


def one_seed(
    seed: int, pretrain_epochs: int, finetune_epochs: int, finetune_fraction: float, precision: str = "32-true"
) -> dict[str, dict]:
    """Pre-train, score, fine-tune and evaluate every model of the zoo with one seed (weights, data splits, sample)."""
    source = DigitsDataModule(batch_size=32, classes=SOURCE, seed=seed)
    target = DigitsDataModule(batch_size=32, classes=TARGET, seed=seed, train_fraction=finetune_fraction)
    runs: dict[str, dict] = {}
    for name, build in ZOO.items():
        seed_everything(seed, verbose=False)
        model = Classifier(build(), lr=1e-2)
        quiet_trainer(pretrain_epochs, precision).fit(model, datamodule=source)
        report = analyse(model.net, target, seed=seed, progress=False, name=name)
        # Transfer as usual: a fresh classification head, then every layer fine-tuned at a lower rate.
        head = [m for m in model.net.modules() if isinstance(m, nn.Linear)][-1]
        head.reset_parameters()
        model.lr = 1e-2
        trainer = quiet_trainer(finetune_epochs, precision)
        trainer.fit(model, datamodule=target)
        accuracy = float(trainer.validate(model, datamodule=target, verbose=False)[0]["val_acc"])
        runs[name] = {"report": report, "accuracy": accuracy}
        print(
            f"  seed {seed} {name:<13} layers {len(report.layers):>2}  theta {report.theta:+.4f}  "
            f"decay {report.decay_rate:+.4f}  fine-tuned accuracy {accuracy:.3f}",
            flush=True,
        )
    return runs


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description="Rank a model zoo by theta before fine-tuning")
    parser.add_argument("--quick", action="store_true", help="1 seed, shorter training")
    parser.add_argument("--seeds", type=int, default=None, help="seeds (default 5; quick 1)")
    parser.add_argument("--pretrain-epochs", type=int, default=None, help="default 8 (quick 3)")
    parser.add_argument("--finetune-epochs", type=int, default=None, help="default 4 (quick 2)")
    parser.add_argument("--finetune-fraction", type=float, default=0.2, help="share of the target training set")
    parser.add_argument("--out", default="outputs/rank_models")
    add_perturbation_args(parser, threads=1)  # tiny models: one thread avoids oversubscription overheads
    args = parser.parse_args(argv)
    precision = apply_perturbation(args)
    seeds = args.seeds or (1 if args.quick else 5)
    pre = args.pretrain_epochs or (3 if args.quick else 8)
    fine = args.finetune_epochs or (2 if args.quick else 4)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")

    start = time.perf_counter()
    per_seed = [one_seed(args.first_seed + s, pre, fine, args.finetune_fraction, precision) for s in range(seeds)]
    names = list(ZOO)
    mean = {
        n: {
            "theta": sum(r[n]["report"].theta for r in per_seed) / seeds,
            "decay_rate": sum(r[n]["report"].decay_rate for r in per_seed) / seeds,
            "accuracy": sum(r[n]["accuracy"] for r in per_seed) / seeds,
            "layers": len(per_seed[0][n]["report"].layers),
        }
        for n in names
    }
    scores = {n: mean[n]["accuracy"] for n in names}
    # Rank the seed-averaged scores: reuse the first seed's reports with the averaged theta / decay.
    reports = {}
    for n in names:
        report = per_seed[0][n]["report"]
        report.theta, report.decay_rate = mean[n]["theta"], mean[n]["decay_rate"]
        reports[n] = report
    by_theta = rank_models(reports, scores=scores, by="theta")
    by_decay = rank_models(reports, scores=scores, by="decay_rate")
    elapsed = time.perf_counter() - start

    results = {
        "settings": {
            "quick": args.quick,
            "seeds": seeds,
            "first_seed": args.first_seed,
            "precision": precision,
            "pretrain_epochs": pre,
            "finetune_epochs": fine,
            "finetune_fraction": args.finetune_fraction,
            "source_classes": SOURCE,
            "target_classes": TARGET,
            "analysis": "cubical, threshold = volume mean, 20 inputs per target class, layers='auto'",
        },
        "runtime_s": round(elapsed, 1),
        "models": {
            n: {
                **{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in mean[n].items()},
                "per_seed": [
                    {
                        "theta": r[n]["report"].theta,
                        "decay_rate": r[n]["report"].decay_rate,
                        "accuracy": r[n]["accuracy"],
                    }
                    for r in per_seed
                ],
            }
            for n in names
        },
        "ranking_by_theta": by_theta.to_dict(),
        "ranking_by_decay_rate": by_decay.to_dict(),
        "environment": environment(precision=precision, first_seed=args.first_seed),
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    _figure(mean, by_theta, by_decay, out / "theta_vs_accuracy.png")
    print()
    print(by_theta.table())
    print()
    print(by_decay.table())
    print(
        f"\n{len(names)} models x {seeds} seed(s) in {elapsed:.0f} s; wrote {out / 'results.json'} and "
        f"{out / 'theta_vs_accuracy.png'}"
    )
    return out


def _figure(mean: dict, by_theta: object, by_decay: object, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, key, ranking in ((axes[0], "theta", by_theta), (axes[1], "decay_rate", by_decay)):
        xs = [mean[n][key] for n in mean]
        ys = [mean[n]["accuracy"] for n in mean]
        ax.scatter(xs, ys)
        for n, x, y in zip(mean, xs, ys, strict=True):
            ax.annotate(n, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        c = ranking.correlations  # type: ignore[attr-defined]
        ax.set_title(
            f"{key} before fine-tuning (tau {c['kendall_tau']:+.2f}, rho {c['spearman_rho']:+.2f}, "
            f"w-tau {c['weighted_tau']:+.2f})",
            fontsize=9,
        )
        ax.set_xlabel(f"{key} on digits 5-9 (pre-trained on 0-4)")
        ax.set_ylabel("accuracy on 5-9 after fine-tuning")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
