"""Figures of tissue regions: the regions drawn on every section, and their marker genes."""

from __future__ import annotations

import os
from typing import Any, Sequence

import anndata as ad
import numpy as np
import pandas as pd

from .._constants import SECTION_COLUMN, SPATIAL_KEY
from .embedding import spatial_figure
from ..tl._inputs import pooled
from ..tl.regions import REGION_KEY
from ._common import finish, plt


def regions_spatial(data: Any, key: str = REGION_KEY, *, spatial_key: str = SPATIAL_KEY,
                    section_key: str | None = None, title: str | None = None,
                    save: str | os.PathLike | None = None) -> plt.Figure:
    """Regions (any obs column) coloured on the coordinates of every section, one panel per section.

    Parameters
    ----------
    data
        Sections (list/dict of AnnData, one AnnData with a section column, a model's sections,
        the ``fusemap integrate`` output folder).
    key
        obs column to colour by (default: the regions :func:`fusemap.tl.find_regions` writes).
    spatial_key
        obsm key of the coordinates.
    section_key
        obs column splitting one AnnData into sections.
    title
        Figure title; default ``'<key> on the tissue'``.
    save
        Write the figure there (format from the suffix, written atomically).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fusemap.tl.find_regions(sections, resolution=0.3)  # doctest: +SKIP
    >>> fusemap.pl.regions_spatial(sections, save="regions.png")  # doctest: +SKIP
    """
    pool = pooled(data, section_key)
    obs = pd.DataFrame({SECTION_COLUMN: pd.Categorical(pool.section, categories=list(pool.sections.names)),
                        key: pool.obs(key, "key").astype(str).to_numpy()}, index=pool.index)
    frame = ad.AnnData(np.zeros((pool.n_obs, 0), dtype=np.float32), obs=obs)
    pool.with_coordinates("regions_spatial", spatial_key)  # sections without coordinates are not drawn
    frame.obsm[SPATIAL_KEY] = pool.coordinates(spatial_key).astype(np.float32)
    fig = spatial_figure(frame, key, title or f"{key} on the tissue")
    return finish(fig, save)


def region_markers_heatmap(markers: pd.DataFrame, expression: ad.AnnData, regions: str | Sequence, *,
                           n_genes: int = 3, normalized: bool = False,
                           save: str | os.PathLike | None = None) -> plt.Figure:
    """Mean expression (z-scored over regions) of the top ``n_genes`` markers of every region.

    Parameters
    ----------
    markers
        The table of :func:`fusemap.tl.region_markers`.
    expression
        The AnnData the markers were computed from.
    regions
        Its obs column of the regions, or one label per cell.
    n_genes
        Top markers per region drawn.
    normalized
        ``expression`` is already log-normalised (or imputed); otherwise counts are
        library-size normalised and log1p-transformed first.
    save
        Write the figure there (format from the suffix, written atomically).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> markers = fusemap.tl.region_markers(imputed, labels, normalized=True)  # doctest: +SKIP
    >>> fusemap.pl.region_markers_heatmap(markers, imputed, labels, normalized=True)  # doctest: +SKIP
    """
    import scanpy as sc
    import scipy.sparse as sp

    top = markers[markers["rank"] <= n_genes]
    genes = list(dict.fromkeys(top["gene"]))
    labels = np.asarray(expression.obs[regions] if isinstance(regions, str) else regions).astype(str)
    work = ad.AnnData(expression[:, genes].X.copy() if normalized else expression.X.copy(),
                      var=pd.DataFrame(index=list(map(str, expression.var_names if not normalized else genes))))
    if not normalized:
        sc.pp.normalize_total(work)
        sc.pp.log1p(work)
        work = work[:, genes]
    x = work.X.toarray() if sp.issparse(work.X) else np.asarray(work.X)
    order = list(dict.fromkeys(top["region"].astype(str)))
    means = np.vstack([x[labels == r].mean(0) for r in order])
    z = (means - means.mean(0)) / np.maximum(means.std(0), 1e-9)
    fig, ax = plt.subplots(figsize=(0.32 * len(genes) + 2.5, 0.32 * len(order) + 1.8))
    im = ax.imshow(z, cmap="RdBu_r", vmin=-2.5, vmax=2.5, aspect="auto")
    ax.set_xticks(range(len(genes)), genes, rotation=90, fontsize=7)
    ax.set_yticks(range(len(order)), order, fontsize=7)
    ax.set_xlabel("marker gene")
    ax.set_ylabel("region")
    fig.colorbar(im, ax=ax, label="z-score of mean expression", shrink=0.7)
    return finish(fig, save)
