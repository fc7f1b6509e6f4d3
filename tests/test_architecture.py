"""The layered package and the bugs its flat predecessor hid (issue "One config, layered packages").

Each bug test failed before the change: the device a model runs on, a state key that changed every run, silently
fused axes of 5-D activations, two implementations of argument checks, control flow on message text, the user's
layer order read as depth, and pass-through modules watched by ``layers="auto"``.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_topo import ConfigError, TopologyCallback, TopologyConfig, analyse
from lightning_topo.analysis import evaluate_topology
from lightning_topo.capture import capture_layers, resolve_layers
from lightning_topo.functional import NonFiniteError, cubical_betti
from lightning_topo.models import Classifier, digits_cnn

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------- import layering
def test_functional_loads_no_lightning_torchmetrics_matplotlib_or_wandb() -> None:
    code = (
        "import sys, lightning_topo.functional as F; F.cubical_betti; F.rips_betti; F.theta;"
        "print(sorted(m for m in ('lightning', 'torchmetrics', 'matplotlib', 'wandb') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (it is in the dev extra)")
    proc = subprocess.run([str(lint)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 broken" in proc.stdout and "kept" in proc.stdout


# ---------------------------------------------------------------------------------------------- bug: device
class _Stop(Exception):
    pass


def test_forward_runs_where_the_model_lives_and_betti_numbers_on_device() -> None:
    """``device`` is where Betti numbers are computed; the forward pass runs where the module lives. (Before, the
    inputs alone went to ``device``: a device mismatch in the forward pass on a GPU run with ``device="cpu"``.)"""
    seen: dict[str, torch.device] = {}

    def forward(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        seen["forward"] = batch.device
        return model(batch)

    def threshold(volumes: torch.Tensor) -> torch.Tensor:
        seen["reduce"] = volumes.device
        raise _Stop

    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    config = TopologyConfig(threshold=threshold, forward_fn=forward)
    # A device other than the model's on a CPU-only machine: "meta" (which TopologyConfig refuses to users: no value
    # can be computed there), set past the check; `threshold` stops the reduction before any value is needed.
    object.__setattr__(config, "device", "meta")
    with pytest.raises(_Stop):
        capture_layers(net, torch.rand(4, 1, 6, 6), ["1"], config)
    assert seen == {"forward": torch.device("cpu"), "reduce": torch.device("meta")}


# ---------------------------------------------------------------------------------------------- bug: state_key
def _threshold_fn(volumes: torch.Tensor) -> torch.Tensor:
    return volumes.flatten(1).amax(dim=1) / 2


def test_state_key_is_stable_across_runs_and_separates_settings() -> None:
    a = TopologyCallback(threshold=_threshold_fn).state_key
    assert a == TopologyCallback(threshold=_threshold_fn).state_key
    assert "0x" not in a and "_threshold_fn" in a  # a callable by name, never by memory address
    # The same key in a fresh interpreter (a resumed run).
    code = (
        "import sys; sys.path.insert(0, 'tests'); from test_architecture import _threshold_fn;"
        "from lightning_topo import TopologyCallback; print(TopologyCallback(threshold=_threshold_fn).state_key)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == a
    keys = {
        TopologyCallback(complex="rips", pool_size=2).state_key,
        TopologyCallback(complex="rips", pool_size=4, k=7).state_key,
        TopologyCallback(layers=lambda name, module: isinstance(module, nn.ReLU)).state_key,
        TopologyCallback().state_key,
    }
    assert len(keys) == 4
    # Runtime settings do not change what is computed: a resumed run with another batch size keeps its history.
    assert TopologyCallback(batch_size=8).state_key == TopologyCallback(batch_size=64).state_key


def test_two_rips_callbacks_in_one_trainer(tmp_path: Path) -> None:
    x, y = torch.rand(40, 1, 8, 8), torch.arange(40) % 2
    loader = DataLoader(TensorDataset(x, y), batch_size=20)
    a = TopologyCallback(complex="rips", pool_size=2, samples_per_class=6, k=3)
    b = TopologyCallback(complex="rips", pool_size=4, samples_per_class=6, k=3, prefix="topology_pool4")
    trainer = Trainer(
        max_epochs=1, callbacks=[a, b], logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path, enable_checkpointing=False, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(Classifier(digits_cnn((4, 8), num_classes=2)), loader, loader)
    assert len(a.history) == len(b.history) == 1
    # Each under its own prefix: both values reach callback_metrics, neither overwrites the other.
    assert float(trainer.callback_metrics["topology/decay_rate"]) == pytest.approx(a.history[-1]["decay_rate"])
    assert float(trainer.callback_metrics["topology_pool4/decay_rate"]) == pytest.approx(b.history[-1]["decay_rate"])


# ---------------------------------------------------------------------------------------------- bug: 5-D outputs
class _Volume3d(nn.Module):
    """Outputs its input: (B, 1, 3, 5, 5), a Conv3d-shaped activation."""

    def __init__(self) -> None:
        super().__init__()
        self.out = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(x)


def test_five_d_activation_is_skipped_with_its_shape_not_fused() -> None:
    ring = torch.ones(3, 5, 5)
    ring[1, 1:4, 1:4] = 0.0
    ring[1, 2, 2] = 1.0  # a ring of zeros in the middle slab: (1, 1, 0) as a 3-D volume
    assert cubical_betti(ring.unsqueeze(0), 0.5).tolist() == [[1, 1, 0]]
    x = ring.reshape(1, 1, 3, 5, 5).repeat(2, 1, 1, 1, 1)
    with pytest.warns(UserWarning, match=r"'out'.*\(2, 1, 3, 5, 5\)"):
        report = analyse(_Volume3d(), TensorDataset(x, torch.tensor([0, 1])), layers=["out"], threshold=0.5,
                         progress=False)  # fmt: skip
    assert "(2, 1, 3, 5, 5)" in report.problems["out"]
    assert torch.isnan(report.betti).all()  # never (4, 0, 0) from fused H and W


# ---------------------------------------------------------------------------------------------- bug: validation
@pytest.mark.parametrize("value", [-1, 0, 2.5, True])
def test_samples_per_class_is_validated_once_for_everyone(value: object) -> None:
    data = TensorDataset(torch.rand(20, 1, 8, 8), torch.arange(20) % 2)
    with pytest.raises(ConfigError, match="`samples_per_class` must be None or an integer >= 1"):
        analyse(digits_cnn(), data, samples_per_class=value, progress=False)
    with pytest.raises(ConfigError, match="`samples_per_class` must be None or an integer >= 1"):
        TopologyCallback(samples_per_class=value)


# ---------------------------------------------------------------------------------------------- bug: English
def test_non_finite_activations_are_a_type_not_a_message() -> None:
    with pytest.raises(NonFiniteError) as err:
        cubical_betti(torch.tensor([[0.0, math.nan], [1.0, 2.0]]), 0.5)
    assert err.value.index == 0 and isinstance(err.value, ValueError)
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    with torch.no_grad():
        net[0].bias.fill_(math.inf)
    result = evaluate_topology(net, torch.rand(6, 4), torch.zeros(6, dtype=torch.long), ["0", "1"])
    assert [layer.problem for layer in result.layers] == ["NaN or Inf in its activations"] * 2


# Control flow on message text: tests/test_cli.py scans the whole package (message_text_checks).


# ---------------------------------------------------------------------------------------------- bug: layer order
def test_layers_are_read_in_execution_order() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
    data = TensorDataset(torch.rand(12, 1, 8, 8), torch.arange(12) % 2)
    forward_order = analyse(net, data, layers=["1", "3"], progress=False)
    with pytest.warns(UserWarning, match="order the forward pass runs them"):
        user_order = analyse(net, data, layers=["3", "1"], progress=False)
    assert user_order.layers == ["1", "3"]
    assert user_order.theta == forward_order.theta and user_order.decay_rate == forward_order.decay_rate
    assert torch.equal(user_order.betti, forward_order.betti)


def test_callback_reads_layers_in_execution_order(tmp_path: Path) -> None:
    x, y = torch.rand(40, 1, 8, 8), torch.arange(40) % 2
    loader = DataLoader(TensorDataset(x, y), batch_size=20)
    topo = TopologyCallback(layers=["net.3", "net.0"], samples_per_class=5, charts=False)
    trainer = Trainer(
        max_epochs=1, callbacks=[topo], logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path, enable_checkpointing=False, accelerator="cpu",
    )  # fmt: skip
    with pytest.warns(UserWarning, match="order the forward pass runs them"):
        trainer.fit(Classifier(digits_cnn((4, 8), num_classes=2)), loader, loader)
    assert topo.layer_names == ["net.0", "net.3"] and list(topo.history[0]["layers"]) == ["net.0", "net.3"]


# ---------------------------------------------------------------------------------------------- bug: pass-through
def test_auto_layers_skip_reshape_only_modules() -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Dropout(0.1), nn.Linear(144, 3))
    assert resolve_layers(net) == ["0", "1", "4"]
    assert resolve_layers(net, ["2"]) == ["2"]  # an explicit name is still watched


def test_readme_config_table_lists_every_field_with_its_default() -> None:
    import dataclasses
    import re

    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("<!-- config-table:start -->") : readme.index("<!-- config-table:end -->")]
    rows = re.findall(r"^\| (`[^|]+`) \| `([^`]+)` \| (.+) \|$", block, re.M)
    documented: dict[str, str] = {}
    for names, default, meaning in rows:
        assert meaning.strip()
        for name in re.findall(r"`(\w+)`", names):
            documented[name] = default
    fields = {f.name: f.default for f in dataclasses.fields(TopologyConfig)}
    assert set(documented) == set(fields)
    for name, default in fields.items():
        shown = f'"{default}"' if isinstance(default, str) else str(default)
        assert documented[name] == shown, (name, documented[name], shown)
    # ... and every field has its own entry in TopologyConfig's docstring (the CLI help is built from it).
    doc = TopologyConfig.__doc__ or ""
    assert all(re.search(rf"^        {name}: \S", doc, re.M) for name in fields)


@pytest.mark.parametrize("budget", [1, 3000, 10**9])
def test_buffered_reduction_equals_batch_by_batch(monkeypatch: pytest.MonkeyPatch, budget: int) -> None:
    """Gathering a layer's activations over batches (what an accelerator does) gives the same Betti numbers,
    also when an in-place ReLU overwrites the hooked output right after the hook."""
    import lightning_topo.capture.reduce as reduce

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(3, 2, 3), nn.ReLU())
    x = torch.randn(37, 1, 7, 7)
    config = TopologyConfig(batch_size=5, threshold=-0.2)  # below 0: the in-place ReLU would change the set
    plain = capture_layers(net, x, ["0", "2", "3"], config)
    monkeypatch.setattr(reduce, "CPU_BUFFER_BYTES", budget)
    buffered = capture_layers(net, x, ["0", "2", "3"], config)
    assert plain.problems == buffered.problems == {}
    for name in ("0", "2", "3"):
        assert torch.equal(plain.values[name], buffered.values[name]), name
    assert len(plain.values["0"]) == 37
