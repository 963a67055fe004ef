"""``python -m fusemap.cli``: what torchrun launches for data-parallel training."""

import sys

from . import main

sys.exit(main())
