"""Figures of gene modules and gene-panel comparisons."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from .embedding import scatter_categories
from ..tl._inputs import gene_embedding as as_gene_embedding
from ._common import finish, plt


def gene_modules_umap(gene_embedding: Any, modules: pd.Series, *, highlight: list[str] | None = None,
                      seed: int = 0, save: str | os.PathLike | None = None) -> plt.Figure:
    """UMAP of the gene embedding coloured by gene module.

    Parameters
    ----------
    gene_embedding
        Any form :func:`fusemap.tl.gene_embedding` accepts.
    modules
        Gene -> module, from :func:`fusemap.tl.gene_modules`; only these genes are drawn.
    highlight
        Genes to name on the plot (e.g. a selected panel).
    seed
        Seed of the UMAP.
    save
        Write the figure there (format from the suffix, written atomically).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> modules = fusemap.tl.gene_modules(model)  # doctest: +SKIP
    >>> fusemap.pl.gene_modules_umap(model, modules, highlight=["Gad1", "Slc17a7"])  # doctest: +SKIP
    """
    import umap

    emb = as_gene_embedding(gene_embedding).loc[modules.index]
    x = emb.to_numpy()
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    xy = umap.UMAP(n_neighbors=min(15, len(x) - 1), random_state=seed, metric="euclidean").fit_transform(x)
    fig, ax = plt.subplots(figsize=(6.2, 4.8))
    labels = pd.Series(pd.Categorical(modules.to_numpy(), categories=sorted(set(modules), key=lambda m: int(m[2:])
                                                                         if m[2:].isdigit() else m)))
    scatter_categories(ax, xy, labels, "gene embedding: modules", s=14)
    for g in highlight or []:
        if g in modules.index:
            i = modules.index.get_loc(g)
            ax.annotate(g, xy[i], fontsize=6)
    return finish(fig, save)


def panel_accuracy(comparison: pd.DataFrame, *, save: str | os.PathLike | None = None) -> plt.Figure:
    """Accuracy against panel size for each kind of panel (random: mean and min-max of draws).

    Parameters
    ----------
    comparison
        The table of :func:`fusemap.tl.compare_panels`.
    save
        Write the figure there (format from the suffix, written atomically).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> comparison = fusemap.tl.compare_panels(model, adata, "cell_type")  # doctest: +SKIP
    >>> fusemap.pl.panel_accuracy(comparison, save="panels.png")  # doctest: +SKIP
    """
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    styles = {"embedding": ("tab:red", "o", "embedding-guided"), "hvg": ("tab:blue", "s", "top HVG"),
              "random": ("tab:gray", "^", "random")}
    for kind, (color, marker, label) in styles.items():
        sub = comparison[comparison["kind"] == kind]
        if sub.empty:
            continue
        g = sub.groupby("size")["accuracy"]
        mean = g.mean()
        ax.plot(mean.index, mean.to_numpy(), marker=marker, color=color, label=label)
        if kind == "random" and g.size().max() > 1:
            ax.fill_between(mean.index, g.min().to_numpy(), g.max().to_numpy(), color=color, alpha=0.25,
                            linewidth=0)
    ax.set_xlabel("genes in panel")
    ax.set_ylabel("cross-validated accuracy")
    ax.legend(frameon=False)
    ax.set_title("cell-type classification by panel")
    return finish(fig, save)
