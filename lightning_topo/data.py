"""Alias of :mod:`lightning_topo.datasets` under its earlier name, so saved YAML configs and checkpoints that
name ``lightning_topo.data.DigitsDataModule`` (or ``NaitzatDataModule``) keep loading. New code: use
``lightning_topo.datasets``."""

from lightning_topo.datasets import NAITZAT_DATASETS, DigitsDataModule, NaitzatDataModule, load_digits_tensors

__all__ = ["NAITZAT_DATASETS", "DigitsDataModule", "NaitzatDataModule", "load_digits_tensors"]
