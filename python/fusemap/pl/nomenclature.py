"""Figure of nomenclature harmonisation: the correspondence matrix as a heatmap."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..errors import FuseMapInputError
from ._common import annotate_cells, finish, plt


def _diagonal_order(m: pd.DataFrame) -> pd.DataFrame:
    """Order columns by the row that holds their largest share, so matches lie near the diagonal."""
    rows = list(m.index)
    best_row = m.idxmax(axis=0)
    cols = sorted(m.columns, key=lambda c: (rows.index(best_row[c]), -m.loc[best_row[c], c]))
    return m[cols]


def correspondence_heatmap(result, normalize: str = "row", *, annotate: bool = True,
                           save: str | os.PathLike | None = None) -> plt.Figure:
    """Heatmap of the correspondence of two nomenclatures, matches ordered along the diagonal.

    Parameters
    ----------
    result
        A :class:`fusemap.tl.Correspondence` from :func:`fusemap.tl.harmonize_nomenclatures`.
    normalize
        ``'row'``: share of each A label's cells per B label; ``'column'``: share of each B label's
        cells per A label; ``'counts'``: cells.
    annotate
        Write the shares into the cells (for matrices up to 900 cells).
    save
        Write the figure there (format from the suffix, written atomically).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    FuseMapInputError
        For an unknown ``normalize``.

    Examples
    --------
    >>> corr = fusemap.tl.harmonize_nomenclatures(sections, "allen_type", "zhuang_type")  # doctest: +SKIP
    >>> fusemap.pl.correspondence_heatmap(corr, "row", save="correspondence.png")  # doctest: +SKIP
    """
    table = {"row": result.row_normalized, "column": result.col_normalized, "counts": result.counts}
    if normalize not in table:
        raise FuseMapInputError(f"normalize={normalize!r}: choose 'row', 'column' or 'counts'.")
    m = _diagonal_order(table[normalize])
    h, w = m.shape
    fig, ax = plt.subplots(figsize=(0.38 * w + 3.0, 0.32 * h + 2.2))
    vmax = 1.0 if normalize != "counts" else float(np.max(m.to_numpy()))
    im = ax.imshow(m.to_numpy(), cmap="viridis", vmin=0, vmax=vmax, aspect="auto")
    ax.set_xticks(range(w), [str(c) for c in m.columns], rotation=90, fontsize=7)
    ax.set_yticks(range(h), [str(r) for r in m.index], fontsize=7)
    ax.set_xlabel(result.label_b)
    ax.set_ylabel(result.label_a)
    label = {"row": f"share of {result.label_a} row", "column": f"share of {result.label_b} column",
             "counts": "cells"}[normalize]
    fig.colorbar(im, ax=ax, label=label, shrink=0.7)
    if annotate and normalize != "counts":
        annotate_cells(ax, m.to_numpy(), "{:.2f}", threshold=0.6 * vmax)
    ax.set_title("nomenclature correspondence")
    return finish(fig, save)
