"""``python -m datamodules.demo [--root data/demo] [--seed 0] [--scale default] [--force]``."""

import sys

from datamodules.demo.cli import main

sys.exit(main())
