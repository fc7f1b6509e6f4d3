"""`evaluate_topology`'s failure handling outside DDP (the multi-process case is in test_ddp.py)."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from lightning_topo.analysis import TopologyEvaluationError, evaluate_topology
from lightning_topo.capture import ForwardError
from lightning_topo.config import TopologyConfig


class _Broken(RuntimeError):
    pass


def _broken_output(output: object) -> torch.Tensor:
    raise _Broken("no tensor for you")


def test_without_a_process_group_the_original_error_propagates() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    with pytest.raises(ForwardError, match=r"`output_fn` .*raised _Broken") as err:  # no exchange, no wrapping
        evaluate_topology(net, torch.randn(6, 3), torch.arange(6) % 2, ["1"], TopologyConfig(output_fn=_broken_output))
    assert isinstance(err.value.__cause__, _Broken)


def test_the_error_names_the_failed_ranks_and_pickles() -> None:
    err = TopologyEvaluationError({3: "RuntimeError: b", 1: "ValueError: a"})
    assert err.failed_ranks == (1, 3)
    assert "rank 1 (ValueError: a), rank 3 (RuntimeError: b)" in str(err)
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, TopologyEvaluationError)
    assert (back.failed_ranks, back.errors, str(back)) == (err.failed_ranks, err.errors, str(err))
