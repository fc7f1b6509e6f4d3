"""``python -m lightning_topo`` = the ``lightning-topo`` command (see :mod:`lightning_topo.cli`)."""

import sys

from lightning_topo.cli import main

sys.exit(main())
