"""Cross-section imputation check: bin two aligned sections on one grid and correlate per gene.

Imputed values of a cell cannot be checked against the same cell when the gene was not measured
there. Two neighbouring sections share their anatomy, though: averaged over grid squares of the
same place, a gene's imputed expression in section A should follow its measured expression in
section B. Following the paper (10 x 10 grid, Pearson's r over squares), genes fall in three groups:

``shared_measured``
    genes both sections measured: measured A vs measured B (how alike the sections are: the ceiling);
``shared_imputed``
    the same genes: imputed A vs measured B (imputation where the answer is known);
``b_only_imputed``
    genes only B measured: imputed A vs measured B (imputation of genes A never measured).
"""

from __future__ import annotations


import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._constants import SPATIAL_KEY
from ..errors import FuseMapInputError
from ._inputs import check_positive

GROUPS = ("shared_measured", "shared_imputed", "b_only_imputed")


def grid_bins(xy: np.ndarray, n_bins: int, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Square index (row-major, 0..n_bins**2-1) of every point on an ``n_bins`` x ``n_bins`` grid over
    the box [lower, upper]."""
    span = np.maximum(upper - lower, 1e-12)
    ij = np.clip(np.floor((xy - lower) / span * n_bins).astype(np.int64), 0, n_bins - 1)
    return ij[:, 0] * n_bins + ij[:, 1]


def binned_means(x, bins: np.ndarray, n_squares: int, min_cells: int) -> np.ndarray:
    """Mean of every column of ``x`` per square (NaN for squares with fewer than ``min_cells`` cells)."""
    ind = sp.csr_matrix((np.ones(len(bins)), (bins, np.arange(len(bins)))), shape=(n_squares, len(bins)))
    n = np.asarray(ind.sum(1)).ravel()
    sums = ind @ x
    sums = sums.toarray() if sp.issparse(sums) else np.asarray(sums)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = sums / n[:, None]
    out[n < min_cells] = np.nan
    return out


def _coords(adata: ad.AnnData, spatial_key: str, argname: str) -> np.ndarray:
    if spatial_key not in adata.obsm:
        raise FuseMapInputError(
            f"{argname} has no obsm[{spatial_key!r}] (has {sorted(adata.obsm.keys())}); pass spatial_key."
        )
    return np.asarray(adata.obsm[spatial_key], dtype=np.float64)[:, :2]


def _matrix(adata: ad.AnnData, layer: str | None, normalized: bool, argname: str):
    x = adata.layers[layer] if layer is not None else adata.X
    x = sp.csr_matrix(x, dtype=np.float64) if sp.issparse(x) else np.asarray(x, dtype=np.float64)
    if not normalized:  # library-size normalise over the section's own panel, then log1p
        tot = np.asarray(x.sum(1)).ravel()
        scale = np.where(tot > 0, np.median(tot[tot > 0]) / np.maximum(tot, 1e-12), 0.0) if (tot > 0).any() else tot
        x = sp.diags(scale) @ x if sp.issparse(x) else x * scale[:, None]
        x = x.log1p() if sp.issparse(x) else np.log1p(x)
    return sp.csr_matrix(x) if sp.issparse(x) else x


def check_imputation(measured_a: ad.AnnData, measured_b: ad.AnnData, imputed_a: ad.AnnData | None = None, *,
                     n_bins: int = 10, align: str = "bbox", min_cells: int = 3, spatial_key: str = SPATIAL_KEY,
                     layer: str | None = None, normalized: bool = False) -> pd.DataFrame:
    """Per-gene Pearson r between sections A and B over the squares of a common grid.

    Parameters
    ----------
    measured_a, measured_b
        The two sections (counts unless ``normalized``; ``obsm[spatial_key]`` coordinates).
    imputed_a
        Imputed expression of section A's cells (same cells in the same order; genes as columns,
        e.g. from :func:`fusemap.impute`), used as given. Without it only ``shared_measured`` rows.
    n_bins
        Grid of ``n_bins`` x ``n_bins`` squares (10 in the paper).
    align
        ``'bbox'``: each section's coordinates are scaled to the unit square of its own bounding box
        (a rough registration of two sections of the same tissue cut the same way);
        ``'none'``: coordinates are already registered to one frame; the grid spans both.
    min_cells
        Squares with fewer cells in either section are left out.
    spatial_key
        obsm key of the coordinates.
    layer, normalized
        Where the measured values are (default ``X``), and whether they are already
        log-normalised (otherwise each section is library-size normalised over its own panel
        and log1p-transformed).

    Returns
    -------
    pandas.DataFrame
        Columns gene, group (``'shared_measured'``, ``'shared_imputed'``, ``'b_only_imputed'``),
        r, n_squares (a gene constant over the squares gets r = NaN).

    Raises
    ------
    FuseMapInputError
        For missing coordinates, an ``imputed_a`` of other cells, or one holding none of B's
        genes.

    Examples
    --------
    Impute section A for every gene, then compare with the adjacent section B:

    >>> imputed = fusemap.impute(model, "BZ5")  # doctest: +SKIP
    >>> check = fusemap.tl.check_imputation(bz5, bz9, imputed)  # doctest: +SKIP
    >>> fusemap.tl.summarize_imputation_check(check)  # doctest: +SKIP
    >>> fusemap.pl.imputation_check_boxplot(check)  # doctest: +SKIP
    """
    check_positive(n_bins, "n_bins", integer=True)
    check_positive(min_cells, "min_cells", integer=True)
    xa, xb = _coords(measured_a, spatial_key, "measured_a"), _coords(measured_b, spatial_key, "measured_b")
    if align == "bbox":
        xa = (xa - xa.min(0)) / np.maximum(np.ptp(xa, 0), 1e-12)
        xb = (xb - xb.min(0)) / np.maximum(np.ptp(xb, 0), 1e-12)
        lower, upper = np.zeros(2), np.ones(2)
    elif align == "none":
        both = np.vstack([xa, xb])
        lower, upper = both.min(0), both.max(0)
    else:
        raise FuseMapInputError(f"align={align!r}: choose 'bbox' (rescale each section) or 'none' (registered).")
    if imputed_a is not None and imputed_a.n_obs != measured_a.n_obs:
        raise FuseMapInputError(
            f"imputed_a has {imputed_a.n_obs} cells but measured_a has {measured_a.n_obs}; pass the imputed "
            "expression of measured_a's cells, in the same order."
        )
    if imputed_a is not None and not np.array_equal(np.asarray(imputed_a.obs_names), np.asarray(measured_a.obs_names)):
        if set(imputed_a.obs_names) == set(measured_a.obs_names):
            imputed_a = imputed_a[list(measured_a.obs_names)]
    S = n_bins * n_bins
    ba = grid_bins(xa, n_bins, lower, upper)
    bb = grid_bins(xb, n_bins, lower, upper)
    genes_a, genes_b = list(map(str, measured_a.var_names)), list(map(str, measured_b.var_names))
    mean_a = binned_means(_matrix(measured_a, layer, normalized, "measured_a"), ba, S, min_cells)
    mean_b = binned_means(_matrix(measured_b, layer, normalized, "measured_b"), bb, S, min_cells)
    pos_a = {g: i for i, g in enumerate(genes_a)}
    shared = [g for g in genes_b if g in pos_a]
    b_only = [g for g in genes_b if g not in pos_a]
    rows = []
    for g in shared:
        rows.append(_row(g, "shared_measured", mean_a[:, pos_a[g]], mean_b[:, genes_b.index(g)]))
    if imputed_a is not None:
        imp_genes = {str(g): i for i, g in enumerate(imputed_a.var_names)}
        want = [g for g in shared + b_only if g in imp_genes]
        if not want:
            raise FuseMapInputError(
                "imputed_a holds none of measured_b's genes; impute section A's cells for the genes of B."
            )
        x = imputed_a[:, want].X
        mean_i = binned_means(sp.csr_matrix(x, dtype=np.float64) if sp.issparse(x) else np.asarray(x, np.float64),
                              ba, S, min_cells)
        col = {g: i for i, g in enumerate(want)}
        pos_b = {g: i for i, g in enumerate(genes_b)}
        for g in shared:
            if g in col:
                rows.append(_row(g, "shared_imputed", mean_i[:, col[g]], mean_b[:, pos_b[g]]))
        for g in b_only:
            if g in col:
                rows.append(_row(g, "b_only_imputed", mean_i[:, col[g]], mean_b[:, pos_b[g]]))
    return pd.DataFrame(rows, columns=["gene", "group", "r", "n_squares"])


def _row(gene: str, group: str, a: np.ndarray, b: np.ndarray) -> dict:
    ok = np.isfinite(a) & np.isfinite(b)
    r = np.nan
    if ok.sum() >= 3 and np.std(a[ok]) > 0 and np.std(b[ok]) > 0:
        r = float(np.corrcoef(a[ok], b[ok])[0, 1])
    return {"gene": gene, "group": group, "r": r, "n_squares": int(ok.sum())}


def summarize(check: pd.DataFrame) -> pd.DataFrame:
    """Median, mean and count of r per group (the paper's box plots as numbers).

    Exported as ``fusemap.tl.summarize_imputation_check``.

    Parameters
    ----------
    check
        The table of :func:`check_imputation`.

    Returns
    -------
    pandas.DataFrame
        One row per group present (in the order shared_measured, shared_imputed,
        b_only_imputed), columns median, mean, count.

    Examples
    --------
    >>> fusemap.tl.summarize_imputation_check(check)  # doctest: +SKIP
    """
    return check.groupby("group", sort=False)["r"].agg(["median", "mean", "count"]).reindex(
        [g for g in GROUPS if g in set(check["group"])])
