from __future__ import annotations

import os
import sys

# Let tests import shared helpers (`tests/oracles.py`, `tests/models.py`) as top-level modules.
sys.path.insert(0, os.path.dirname(__file__))
