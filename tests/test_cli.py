"""The `lightning-topo` command line, through real subprocesses; every YAML under configs/ runs (shortened)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lightning_topo import TopologyReport, analyse
from lightning_topo.datasets import DigitsDataModule
from lightning_topo.models import CNNClassifier

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SHORT = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3"]


def run_cli(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore", MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-m", "lightning_topo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory where configs/digits_cnn.yaml and digits_mlp.yaml have been run (shortened)."""
    cwd = tmp_path_factory.mktemp("cli")
    _ok(run_cli("fit", "--config", str(CONFIGS / "digits_cnn.yaml"), "--trainer.max_epochs", "2", cwd=cwd))
    _ok(run_cli("fit", "--config", str(CONFIGS / "digits_mlp.yaml"), *SHORT, cwd=cwd))
    return cwd


def test_fit_writes_a_checkpoint_and_logs_topology(workdir: Path) -> None:
    ckpt = workdir / "outputs/digits_cnn/checkpoints/digits_cnn.ckpt"
    assert ckpt.is_file()
    (metrics,) = (workdir / "outputs/digits_cnn/logs").glob("version_*/metrics.csv")
    rows = list(csv.DictReader(metrics.open()))
    decay = [float(r["topology/decay_rate"]) for r in rows if r.get("topology/decay_rate")]
    assert len(decay) == 2 and all(-2 < d < 2 for d in decay)
    assert any(key.startswith("topology/net.0/b") for key in rows[0])
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    topo = [v for k, v in state["callbacks"].items() if k.startswith("TopologyCallback")]
    assert len(topo) == 1 and len(topo[0]["history"]) == 2


def test_analyse_report_equals_the_api(workdir: Path) -> None:
    proc = _ok(run_cli("analyse", "--config", str(CONFIGS / "analyse_digits.yaml"), "--progress", "false", cwd=workdir))
    out = workdir / "outputs/analyse_digits"
    assert (out / "report.png").stat().st_size > 10_000
    report = TopologyReport.from_json(out / "report.json")
    model = CNNClassifier.load_from_checkpoint(workdir / "outputs/digits_cnn/checkpoints/digits_cnn.ckpt")
    api = analyse(model, DigitsDataModule(batch_size=64), progress=False)
    assert report.layers == api.layers and torch.equal(report.betti, api.betti)
    assert torch.equal(report.per_input, api.per_input) and report.theta == api.theta
    assert f"theta = {api.theta:.4f}" in proc.stdout and "net.0" in proc.stdout


def test_analyse_with_class_paths_and_rips_options(workdir: Path) -> None:
    args = [
        "analyse",
        "--model",
        "lightning_topo.models.MLPClassifier",
        "--ckpt",
        "outputs/digits_mlp/checkpoints/digits_mlp.ckpt",
        "--data",
        "lightning_topo.datasets.DigitsDataModule",
        "--analysis.complex",
        "rips",
        "--analysis.k",
        "6",
        "--analysis.samples_per_class",
        "10",
        "--output_dir",
        "out_rips",
        "--progress",
        "false",
    ]
    _ok(run_cli(*args, cwd=workdir))
    report = TopologyReport.from_json(workdir / "out_rips/report.json")
    assert report.config["complex"] == "rips" and report.config["k"] == 6
    assert report.betti.shape == (4, 10, 2) and len(report.labels) == 100


def test_rank_prints_the_table_and_correlations(workdir: Path) -> None:
    scores = json.dumps({"cnn": 0.98, "mlp": 0.95, "cnn_untrained": 0.1})
    proc = _ok(
        run_cli(
            "rank",
            "--config",
            str(CONFIGS / "rank_digits.yaml"),
            "--scores",
            scores,
            "--progress",
            "false",
            cwd=workdir,
        )
    )
    ranking = json.loads((workdir / "outputs/rank_digits/ranking.json").read_text())
    assert sorted(r["name"] for r in ranking["rows"]) == ["cnn", "cnn_untrained", "mlp"]
    thetas = [r["theta"] for r in ranking["rows"]]
    assert thetas == sorted(thetas)  # the config ranks by theta, lowest first
    assert set(ranking["correlations"]) >= {"kendall_tau", "spearman_rho", "weighted_tau", "kendall_p"}
    assert "Kendall tau" in proc.stdout and all(name in proc.stdout for name in ("cnn_untrained", "mlp"))
    for name in ("cnn", "mlp", "cnn_untrained"):
        assert (workdir / "outputs/rank_digits/reports" / f"{name}.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [
                "analyse",
                "--model",
                "lightning_topo.models.NoSuchNet",
                "--data",
                "lightning_topo.datasets.DigitsDataModule",
            ],
            "has no 'NoSuchNet'; check the spelling",
        ),
        (
            [
                "analyse",
                "--model",
                "lightning_topo.models.CNNClassifier",
                "--ckpt",
                "missing.ckpt",
                "--data",
                "lightning_topo.datasets.DigitsDataModule",
            ],
            "checkpoint 'missing.ckpt' not found",
        ),
        (["analyse", "--config", "@analyse", "--analysis.layers", "[net.99]"], "Layer 'net.99' does not match"),
        (["analyse", "--config", "@bad_yaml"], "malformed YAML in --config"),
        (["fit", "--config", "@bad_yaml"], "malformed YAML in --config"),
        (
            ["fit", "--config", "@cnn", "--data", "lightning_topo.datasets.Nope"],
            "class path 'lightning_topo.datasets.Nope'",
        ),
        (
            [
                "fit",
                "--config",
                "@cnn",
                *SHORT,
                "--trainer.callbacks+=lightning_topo.TopologyCallback",
                "--trainer.callbacks.layers=[net.42]",
            ],
            "Layer 'net.42' does not match",
        ),
        (["rank", "--config", "@rank", "--scores", '{"cnn": 1.0}'], "`scores` must have one value per model"),
        (["nope"], "unknown command 'nope'"),
    ],
)
def test_bad_input_exits_2_with_one_line(workdir: Path, args: list[str], message: str) -> None:
    bad = workdir / "bad.yaml"
    bad.write_text("model: [a, b\n  c: {")
    files = {"@analyse": "analyse_digits.yaml", "@cnn": "digits_cnn.yaml", "@rank": "rank_digits.yaml"}
    args = [str(bad) if a == "@bad_yaml" else str(CONFIGS / files[a]) if a in files else a for a in args]
    proc = run_cli(*args, cwd=workdir)
    assert proc.returncode == 2, proc.stderr[-2000:]
    error_lines = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and message in error_lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_debug_shows_the_traceback(workdir: Path) -> None:
    proc = run_cli(
        "analyse",
        "--model",
        "lightning_topo.models.X",
        "--data",
        "lightning_topo.datasets.DigitsDataModule",
        "--debug",
        cwd=workdir,
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_every_config_parses() -> None:
    names = sorted(p.name for p in CONFIGS.glob("*.yaml"))
    assert {
        "digits_cnn.yaml",
        "digits_mlp.yaml",
        "d1_relu.yaml",
        "d1_tanh.yaml",
        "analyse_digits.yaml",
        "rank_digits.yaml",
    } <= set(names)
    for path in CONFIGS.glob("*.yaml"):
        config = yaml.safe_load(path.read_text())
        assert isinstance(config, dict) and ("trainer" in config or "analysis" in config), path.name


@pytest.mark.parametrize("name", ["d1_relu.yaml", "d1_tanh.yaml"])
def test_d1_configs_run_shortened(name: str, tmp_path: Path) -> None:
    args = [
        "--trainer.max_epochs",
        "1",
        "--trainer.check_val_every_n_epoch",
        "1",
        "--data.init_args.n_per_class",
        "300",
    ]
    _ok(run_cli("fit", "--config", str(CONFIGS / name), *args, cwd=tmp_path))
    stem = name.removesuffix(".yaml")
    (metrics,) = (tmp_path / "outputs" / stem / "logs").glob("version_*/metrics.csv")
    rows = list(csv.DictReader(metrics.open()))
    b0 = [float(r["topology/net.2/b0"]) for r in rows if r.get("topology/net.2/b0")]
    assert len(b0) == 1 and b0[0] >= 1
