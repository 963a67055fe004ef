"""What every tutorial sets up, kept in one place: fast mode, where figures and outputs go, show().

``FUSEMAP_VIGNETTE_FAST=1`` (the test suite) trains for 3 epochs only, to check that every step
still runs; leave it unset for a real run. ``FUSEMAP_VIGNETTE_FIGURES`` names the figures folder
(default ``vignettes/_build/figures``); outputs go to ``outputs/`` beside it.
"""

from __future__ import annotations

import os
from pathlib import Path

FAST = os.environ.get("FUSEMAP_VIGNETTE_FAST") == "1"
TRAIN = dict(max_epochs=3, n_latent=16, n_hidden=64, batch_size=128) if FAST else {}
"""Training settings: the defaults, or a 3-epoch run in fast mode."""
MAP = dict(max_epochs=3, batch_size=128) if FAST else {}
"""Query-mapping settings, likewise."""


class Tutorial:
    """Folders of one tutorial and :meth:`show` for its figures."""

    def __init__(self, name: str):
        root = Path(os.environ.get("FUSEMAP_VIGNETTE_FIGURES", "vignettes/_build/figures"))
        self.figures = root / name
        self.outputs = root.parent / "outputs" / name
        self.figures.mkdir(parents=True, exist_ok=True)
        self.outputs.mkdir(parents=True, exist_ok=True)

    def show(self, fig, name: str) -> Path:
        """Write the figure to figures/name.png and show it (inline in a notebook)."""
        import matplotlib.pyplot as plt

        path = self.figures / f"{name}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        try:
            from IPython import get_ipython
            from IPython.display import Image, display

            if get_ipython() is not None:
                display(Image(filename=str(path)))
        except ImportError:
            pass
        print(f"figure: {path}")
        return path
