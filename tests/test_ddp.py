"""TopologyCallback under real DDP (2 processes, gloo on CPU) equals the single-process run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "ddp_run.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(out: Path, devices: int, *extra: str, timeout: int = 420) -> list[dict]:
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), PYTHONWARNINGS="ignore")
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--devices", str(devices), "--out", str(out), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # a hang fails the test instead of blocking CI
        proc.communicate()
        pytest.fail(f"the {devices}-process run did not finish in {timeout} s (hang?)")
    assert proc.returncode == 0, log[-3000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(devices)]


@pytest.fixture(scope="module")
def even_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], list[dict]]:
    single = _run(tmp_path_factory.mktemp("single"), 1)
    ddp = _run(tmp_path_factory.mktemp("ddp"), 2)
    return single, ddp


def _assert_same(a: dict[str, float], b: dict[str, float]) -> None:
    assert set(a) == set(b)
    for key in a:
        if torch.isnan(torch.tensor(a[key])):
            assert torch.isnan(torch.tensor(b[key])), key
        else:
            assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-9), key


@pytest.mark.parametrize("view", ["cubical", "rips"])
def test_ddp_values_equal_single_process(even_runs: tuple[list[dict], list[dict]], view: str) -> None:
    single, ddp = even_runs
    reference = single[0][f"validate_{view}"]
    assert len(reference) > 10
    for rank in ddp:
        _assert_same(reference, rank[f"validate_{view}"])
        # analyse in a DDP process (every rank holds the whole sample, no sync) equals the sharded callback.
        logged = {k: v for k, v in rank[f"validate_{view}"].items() if k in rank[f"analyse_{view}"]}
        assert len(logged) == len(rank[f"analyse_{view}"])
        _assert_same(logged, rank[f"analyse_{view}"])


def test_ddp_persistence_summaries_equal_single_process(even_runs: tuple[list[dict], list[dict]]) -> None:
    single, ddp = even_runs
    reference = single[0]["validate_persistence"]
    keys = [k for k in reference if "persist" in k]
    assert len(keys) >= 9 * 3  # three summaries x three dimensions, per layer
    for rank in ddp:
        _assert_same(reference, rank["validate_persistence"])
        logged = {k: v for k, v in rank["validate_persistence"].items() if k in rank["analyse_persistence"]}
        assert len(logged) == len(rank["analyse_persistence"])
        _assert_same(logged, rank["analyse_persistence"])


def test_early_stopping_same_epoch_on_every_rank(even_runs: tuple[list[dict], list[dict]]) -> None:
    single, ddp = even_runs
    assert single[0]["fit_stopped_epoch"] == 2
    assert [r["fit_stopped_epoch"] for r in ddp] == [2, 2]
    assert ddp[0]["fit_history_epochs"] == ddp[1]["fit_history_epochs"] == [0, 1, 2]
    _assert_same(ddp[0]["fit_values"], ddp[1]["fit_values"])  # both ranks logged the same values


def test_uneven_ranks_finish_and_match(tmp_path: Path) -> None:
    # 21 validation inputs for 2 ranks x batch 16; class 9 has a single input, so one rank holds it.
    single = _run(tmp_path / "single", 1, "--uneven")
    ddp = _run(tmp_path / "ddp", 2, "--uneven")
    for view in ("cubical", "rips"):
        for rank in ddp:
            _assert_same(single[0][f"validate_{view}"], rank[f"validate_{view}"])
            logged = {k: v for k, v in rank[f"validate_{view}"].items() if k in rank[f"analyse_{view}"]}
            _assert_same(logged, rank[f"analyse_{view}"])
    assert all(v == v for v in single[0]["validate_cubical"].values())  # no NaN: every class counted


def test_a_failure_on_one_rank_reaches_every_rank(tmp_path: Path) -> None:
    # Rank 1's output_fn raises during capture; rank 0 must not wait for it in the metric's gather.
    ranks = _run(tmp_path, 2, "--fail-rank", "1", timeout=120)
    for out in ranks:
        assert out["raised"] == "TopologyEvaluationError", out
        assert out["failed_ranks"] == [1]
        assert (
            "rank 1 (ForwardError: `output_fn` (output_fn) raised InjectedFailure: injected failure" in out["message"]
        )
    # The failed rank chains its own exception: the ForwardError naming output_fn, and under it the original.
    assert (ranks[1]["cause"], ranks[1]["root_cause"]) == ("ForwardError", "InjectedFailure")
    assert ranks[0]["cause"] is None
    for out in ranks:
        assert out["direct_nested=False"] == out["direct_nested=True"] == [1]
    # The same processes validate again: the process group is still in step, and both ranks log the same values.
    assert len(ranks[0]["after"]) > 10
    assert all(v == v for v in ranks[0]["after"].values())
    _assert_same(ranks[0]["after"], ranks[1]["after"])


def test_torch_compile_gives_the_same_values_and_names() -> None:
    from lightning_topo.analysis import evaluate_topology
    from lightning_topo.capture.layers import resolve_layers
    from lightning_topo.config import TopologyConfig
    from lightning_topo.datasets import load_digits_tensors
    from lightning_topo.models import Classifier, digits_cnn

    torch.manual_seed(0)
    model = Classifier(digits_cnn()).eval()
    compiled = torch.compile(model, backend="eager")
    names = resolve_layers(model)
    assert resolve_layers(compiled) == names  # no `_orig_mod.` in the names users see
    x, y = load_digits_tensors()
    plain = evaluate_topology(model, x[:120], y[:120], names, TopologyConfig())
    other = evaluate_topology(compiled, x[:120], y[:120], names, TopologyConfig())
    assert [layer.name for layer in other.layers] == names
    for a, b in zip(plain.layers, other.layers, strict=True):
        assert b.omega == pytest.approx(a.omega, rel=1e-9)
        assert torch.allclose(a.betti, b.betti)
    assert other.decay_rate == pytest.approx(plain.decay_rate, rel=1e-9)


def test_validation_data_split_by_rank_or_by_sampler(tmp_path: Path) -> None:
    """A stream each process reads its own part of gave each rank its own sample: half of each evaluated, classes
    summed by position (0 with 5), or a crash in torch.stack; it is refused on every rank, naming the cause. A split
    by the loader's sampler is sampled from the split on every rank (Lightning wraps the sampler under DDP)."""
    ranks = _run(tmp_path, 2, "--data", timeout=300)
    for out in ranks:
        assert out["stream_raised"] == "TopologyMisconfiguration", out
        assert "processes drew different topology samples" in out["stream_message"]
        assert "An IterableDataset streamed in parts" in out["stream_message"]
        assert out["split_indices"] == ranks[0]["split_indices"] and min(out["split_indices"]) >= 1400
        logged = {k: v for k, v in out["split_values"].items() if k in out["split_analyse"]}
        _assert_same(logged, out["split_analyse"])
