"""Figures of cell-cell proximity: a type x type heatmap per region, and all enriched pairs."""

from __future__ import annotations

import os

import numpy as np

from ._common import finish, plt


def proximity_heatmap(result, region: str | None = None, *, save: str | os.PathLike | None = None) -> plt.Figure:
    """Heatmap of the log2 fold change of observed over null close pairs, every type pair of a region.

    Pairs enriched at the result's ``alpha`` after Benjamini-Hochberg are marked with a dot.

    Parameters
    ----------
    result
        A :class:`fusemap.tl.ProximityResult` from :func:`fusemap.tl.cell_proximity`.
    region
        The region to draw; default: the first one tested.
    save
        Write the figure there (format from the suffix, written atomically).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> result = fusemap.tl.cell_proximity(sections, "cell_type")  # doctest: +SKIP
    >>> fusemap.pl.proximity_heatmap(result, "all")  # doctest: +SKIP
    """
    if region is None:
        region = str(result.table["region"].iloc[0])
    fc = result.matrix(region, "log2_fold_change")
    padj = result.matrix(region, "pval_adj")
    v = fc.to_numpy(dtype=float)
    finite = np.abs(v[np.isfinite(v)])
    lim = max(float(finite.max()) if finite.size else 1.0, 0.5)
    n = len(fc)
    fig, ax = plt.subplots(figsize=(0.36 * n + 3.0, 0.34 * n + 2.2))
    im = ax.imshow(np.clip(v, -lim, lim), cmap="RdBu_r", vmin=-lim, vmax=lim)
    sig = (padj.to_numpy(dtype=float) < result.alpha) & (v > 0)
    ii, jj = np.nonzero(sig)
    ax.scatter(jj, ii, s=12, color="black", marker="o", label=f"BH-adjusted p < {result.alpha}")
    ax.set_xticks(range(n), list(fc.columns), rotation=90, fontsize=7)
    ax.set_yticks(range(n), list(fc.index), fontsize=7)
    fig.colorbar(im, ax=ax, label="log2 fold change (observed / null)", shrink=0.7)
    ax.set_title(f"proximity < {result.radius:g} in region {region}")
    if len(ii):
        ax.legend(loc="upper left", bbox_to_anchor=(0, -0.25), frameon=False, fontsize=7)
    return finish(fig, save)


def proximity_summary(result, top: int = 30, *, save: str | os.PathLike | None = None) -> plt.Figure:
    """The ``top`` enriched pairs over all regions: fold change (bar) coloured by -log10 adjusted p.

    Parameters
    ----------
    result
        A :class:`fusemap.tl.ProximityResult`.
    top
        Pairs drawn at most, largest fold change first.
    save
        Write the figure there (format from the suffix, written atomically).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fusemap.pl.proximity_summary(result, top=20, save="proximity.png")  # doctest: +SKIP
    """
    sig = result.significant().sort_values("log2_fold_change", ascending=False).head(top)
    fig, ax = plt.subplots(figsize=(6.0, 0.28 * max(len(sig), 1) + 1.6))
    if sig.empty:
        ax.text(0.5, 0.5, "no pair enriched at BH-adjusted p < %g" % result.alpha, ha="center", va="center")
        ax.axis("off")
        return finish(fig, save)
    names = [f"{r.region}: {r.type_a} - {r.type_b}" for r in sig.itertuples()]
    y = np.arange(len(sig))[::-1]
    bars = ax.barh(y, sig["log2_fold_change"].to_numpy(), color=plt.get_cmap("viridis")(
        np.clip(-np.log10(sig["pval_adj"].to_numpy()) / 4, 0, 1)))
    del bars
    ax.set_yticks(y, names, fontsize=7)
    ax.set_xlabel("log2 fold change (observed / null); colour: -log10 adjusted p")
    ax.set_title("enriched cell-type proximity")
    return finish(fig, save)
