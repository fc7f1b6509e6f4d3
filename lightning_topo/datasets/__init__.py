"""Bundled data that needs no download (stands alone: imports nothing else of lightning_topo).

* ``digits.py`` — scikit-learn's digits: :func:`load_digits_tensors`, :class:`DigitsDataModule`;
* ``naitzat.py`` — Naitzat et al.'s D-I, D-II, D-III: :class:`NaitzatDataModule`;
* ``shapes.py`` — point clouds and volumes of known topology (circle, torus, D-I..D-III generators);
* ``_held_out.py`` — the two data modules' loaders (a train split and a held-out split).
"""

from lightning_topo.datasets.digits import DigitsDataModule, load_digits_tensors
from lightning_topo.datasets.naitzat import NAITZAT_DATASETS, NaitzatDataModule

__all__ = ["NAITZAT_DATASETS", "DigitsDataModule", "NaitzatDataModule", "load_digits_tensors"]
