"""Helpers shared by the figure modules: saving, and a colour map for signed values."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt

from ..io.files import atomic_file


def finish(fig: plt.Figure, save: str | os.PathLike | None, dpi: int = 120) -> plt.Figure:
    """Lay the figure out and write it atomically when ``save`` is given (format from the suffix)."""
    fig.tight_layout()
    if save is not None:
        path = Path(save)
        with atomic_file(path, path.suffix) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    return fig


def annotate_cells(ax, values, fmt: str = "{:.2f}", threshold: float = 0.5, fontsize: int = 6) -> None:
    """Write each value of a small matrix into its cell (white on dark cells)."""
    n, m = values.shape
    if n * m > 900:
        return
    for i in range(n):
        for j in range(m):
            v = values[i, j]
            if v == v:  # not NaN
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=fontsize,
                        color="white" if abs(v) > threshold else "black")
