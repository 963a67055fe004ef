"""Molecular tissue regions: Leiden clusters of the spatial embedding, sub-levels, marker genes.

The spatial embedding of a cell summarises its neighbourhood, so clusters of it are tissue regions
that are comparable across sections and technologies (the paper's molecular tissue regions).
Clustering within each coarse region gives the paper's sub-levels (e.g. ``CTX_3`` -> ``CTX_3_2``).
"""

from __future__ import annotations

import logging
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .._constants import SPATIAL_EMBEDDING
from ..errors import FuseMapInputError
from .. import neighbors
from ._inputs import Pooled, check_positive, expression_frame, labelled, pooled

log = logging.getLogger("fusemap")

REGION_KEY = "fusemap_region"


def leiden(embedding: np.ndarray, resolution: float = 0.5, n_neighbors: int = 15, seed: int = 0) -> np.ndarray:
    """Leiden clusters of the rows of an embedding (scanpy's neighbour graph and Leiden).

    Parameters
    ----------
    embedding
        Cells x dimensions array (e.g. ``obsm['X_fusemap_spatial']`` of pooled sections).
    resolution
        Leiden resolution: higher gives more, smaller clusters.
    n_neighbors
        Neighbours per cell of the kNN graph clustered (fewer when there are fewer cells).
    seed
        Seed of the neighbour search and of Leiden.

    Returns
    -------
    numpy.ndarray
        One label per row, ``'0'``, ``'1'``, ... by decreasing cluster size (all ``'0'`` for
        fewer than three rows).

    Examples
    --------
    >>> labels = fusemap.tl.leiden(adata.obsm["X_fusemap_spatial"], resolution=0.3)  # doctest: +SKIP
    """
    n = embedding.shape[0]
    if n < 3:
        return np.array(["0"] * n, dtype=object)
    return leiden_on_graph(_graph(embedding, n_neighbors, seed), resolution, seed)


def _graph(embedding: np.ndarray, n_neighbors: int, seed: int):
    return neighbors.knn_graph(embedding, min(n_neighbors, embedding.shape[0] - 1), seed, exact=False)


def leiden_on_graph(graph, resolution: float, seed: int) -> np.ndarray:
    """String Leiden labels (iterated to convergence) of a kNN graph: connectivities, or an AnnData
    holding ``sc.pp.neighbors``' ``obsp['connectivities']`` (:func:`fusemap.neighbors.leiden`)."""
    conn = graph.obsp["connectivities"] if isinstance(graph, ad.AnnData) else graph
    return neighbors.leiden(conn, resolution, seed, n_iterations=-1).astype(str).astype(object)


def leiden_n_clusters(embedding: np.ndarray, n_clusters: int, n_neighbors: int = 15, seed: int = 0,
                      max_steps: int = 30) -> tuple[np.ndarray, float]:
    """Leiden clusters with the resolution bisected until there are ``n_clusters`` clusters.

    Useful to compare with annotations of a known number of classes (e.g. four cortical layers),
    where a fixed resolution would give a different count in every dataset.

    Parameters
    ----------
    embedding
        Cells x dimensions array.
    n_clusters
        Number of clusters wanted; must be below the number of rows.
    n_neighbors
        Neighbours per cell of the kNN graph clustered.
    seed
        Seed of the neighbour search and of Leiden.
    max_steps
        Bisection steps at most, after the upper bound has been found.

    Returns
    -------
    labels : numpy.ndarray
        One label per row (``'0'``, ``'1'``, ... by decreasing size).
    resolution : float
        The resolution that gave them. When no resolution gives exactly ``n_clusters``, the
        closest count found is returned (and logged).

    Raises
    ------
    FuseMapInputError
        When ``n_clusters`` is not below the number of rows.

    Examples
    --------
    >>> labels, res = fusemap.tl.leiden_n_clusters(emb, 4)  # doctest: +SKIP
    """
    n = embedding.shape[0]
    if n_clusters >= n:
        raise FuseMapInputError(f"n_regions={n_clusters} must be below the number of cells ({n}).")
    a = _graph(embedding, n_neighbors, seed)
    lo, hi = 0.0, 1.0
    best: tuple[int, np.ndarray, float] | None = None
    # grow the upper bound until it gives enough clusters
    for _ in range(8):
        labels = leiden_on_graph(a, hi, seed)
        k = len(set(labels))
        best = _closer(best, k, labels, hi, n_clusters)
        if k >= n_clusters:
            break
        lo, hi = hi, hi * 2
    for _ in range(max_steps):
        if best[0] == n_clusters:
            break
        mid = (lo + hi) / 2
        labels = leiden_on_graph(a, mid, seed)
        k = len(set(labels))
        best = _closer(best, k, labels, mid, n_clusters)
        if k < n_clusters:
            lo = mid
        else:
            hi = mid
    k, labels, res = best
    if k != n_clusters:
        log.info("Leiden: no resolution gave %d clusters; using %d (resolution %.4g)", n_clusters, k, res)
    return labels, res


def _closer(best, k, labels, res, target):
    if best is None or abs(k - target) < abs(best[0] - target):
        return (k, labels, res)
    return best


def find_regions(data: Any, resolution: float = 0.5, *, n_regions: int | None = None,
                 key: str = SPATIAL_EMBEDDING, within: str | None = None, section_key: str | None = None,
                 n_neighbors: int = 15, min_cells: int = 20, seed: int = 0,
                 key_added: str | None = REGION_KEY) -> pd.Series:
    """Molecular tissue regions: Leiden clustering of the spatial embedding of all sections together.

    The spatial embedding of a cell summarises its neighbourhood, so its clusters are tissue
    regions comparable across sections and technologies. Clustering within each coarse region
    (``within``) gives sub-regions, the paper's finer levels.

    Parameters
    ----------
    data
        Integrated sections (list/dict of AnnData, one AnnData with a section column, a FuseMap model
        holding its sections, or the output folder of ``fusemap integrate``).
    resolution
        Leiden resolution (the paper tries 0.1, 0.3, 0.5 and 1).
    n_regions
        Instead of ``resolution``: bisect the resolution until there are this many regions (within
        each parent region when ``within`` is given).
    key
        obsm key of the embedding (``X_fusemap_spatial``; ``X_fusemap_cell`` clusters cell types).
    within
        obs column of coarse regions: cluster each one separately and name the sub-regions
        ``<parent>_<k>`` (the paper's sub-levels). Cells without a parent label get no region;
        parents with fewer than ``min_cells`` cells are kept whole.
    section_key
        obs column splitting one AnnData into sections (default: ``obs['section']`` when it holds
        several values).
    n_neighbors
        Neighbours per cell of the kNN graph that Leiden clusters.
    min_cells
        With ``within``: parent regions with fewer cells are not split (one sub-region
        ``<parent>_0``).
    seed
        Seed of the neighbour search and of Leiden.
    key_added
        obs column written into every section (and into the parent AnnData); None writes nothing.

    Returns
    -------
    pandas.Series
        Categorical region labels of all cells (index ``'<section>:<cell>'``), in section order;
        regions named ``'0'``, ``'1'``, ... by decreasing size (``'<parent>_<k>'`` with
        ``within``).

    Sections without coordinates (single-cell references) have no tissue: with the spatial
    embedding their cells get no region (a warning names them).

    Raises
    ------
    FuseMapInputError
        When a section lacks the embedding, ``within`` holds no label, an option is not
        positive, or no section has coordinates.

    Examples
    --------
    >>> import fusemap
    >>> model = fusemap.integrate(sections)  # doctest: +SKIP
    >>> regions = fusemap.tl.find_regions(sections, resolution=0.3)  # doctest: +SKIP
    >>> sections[0].obs["fusemap_region"].value_counts()  # doctest: +SKIP

    Four regions, then sub-regions within each:

    >>> fusemap.tl.find_regions(sections, n_regions=4)  # doctest: +SKIP
    >>> fusemap.tl.find_regions(sections, within="fusemap_region", n_regions=2,
    ...                         key_added="fusemap_subregion")  # doctest: +SKIP
    """
    if n_regions is None:
        check_positive(resolution, "resolution")
    else:
        check_positive(n_regions, "n_regions", integer=True)
    check_positive(n_neighbors, "n_neighbors", integer=True)
    pool = pooled(data, section_key)
    emb = pool.obsm(key)
    # tissue regions exist only where there is tissue: sections without coordinates get no region
    rows = (pool.with_coordinates("find_regions on the spatial embedding") if key == SPATIAL_EMBEDDING
            else np.ones(pool.n_obs, dtype=bool))
    labels = np.full(pool.n_obs, None, dtype=object)
    if within is None:
        labels[rows] = _cluster(emb[rows], resolution, n_regions, n_neighbors, seed)
    else:
        parent = pool.obs(within, "within")
        has = labelled(parent) & rows
        if not has.any():
            raise FuseMapInputError(f"within={within!r}: no cell carries a label in that column.")
        for value in sorted(set(parent[has]), key=str):
            idx = np.flatnonzero(has & (parent.to_numpy() == value))
            if len(idx) < max(min_cells, (n_regions or 1) + 1):
                labels[idx] = f"{value}_0"
                continue
            sub = _cluster(emb[idx], resolution, n_regions, n_neighbors, seed)
            labels[idx] = [f"{value}_{s}" for s in sub]
    out = pd.Series(pd.Categorical(labels, categories=_ordered(labels)), index=pool.index, name=key_added)
    if key_added:
        pool.write_obs(key_added, labels)
    return out


def _cluster(emb, resolution, n_regions, n_neighbors, seed):
    if n_regions is not None:
        return leiden_n_clusters(emb, n_regions, n_neighbors=n_neighbors, seed=seed)[0]
    return leiden(emb, resolution, n_neighbors=n_neighbors, seed=seed)


def _ordered(labels) -> list[str]:
    from ._inputs import _natural_key

    return sorted({v for v in labels if v is not None}, key=_natural_key)


def region_markers(expression: Any, regions: str | pd.Series | np.ndarray, *, n_genes: int = 10,
                   layer: str | None = None, normalized: bool = False, method: str = "wilcoxon",
                   min_cells: int = 5) -> pd.DataFrame:
    """Marker genes of each region (one region against all other cells), from measured or imputed expression.

    Parameters
    ----------
    expression
        One AnnData (e.g. imputed expression of all cells) or sections (pooled on their common
        genes: use imputed expression to test genes that not every section measured).
    regions
        obs column of ``expression`` holding the regions (as written by :func:`find_regions`), or a
        per-cell array in the order of ``expression`` (pooled order for sections).
    layer, normalized
        Counts are taken from ``layer`` (default ``X``) and log-normalised; with ``normalized=True``
        (imputed or already log-normalised values) they are used as they are.
    n_genes
        Markers reported per region.
    method
        Test of :func:`scanpy.tl.rank_genes_groups` (``'wilcoxon'``, ``'t-test'``, ``'logreg'``).
    min_cells
        Regions with fewer labelled cells are left out of the test.

    Returns
    -------
    pandas.DataFrame
        Columns region, rank, gene, score, logfoldchange, pval_adj: the top ``n_genes`` of each
        region.

    Raises
    ------
    FuseMapInputError
        When ``regions`` is not an obs column or has the wrong length, or fewer than two regions
        have ``min_cells`` cells.

    Examples
    --------
    Markers over the whole vocabulary, from imputed expression of all cells:

    >>> imputed = fusemap.impute(model)  # doctest: +SKIP
    >>> regions = fusemap.tl.find_regions(model)  # doctest: +SKIP
    >>> markers = fusemap.tl.region_markers(imputed, regions.to_numpy(), normalized=True)  # doctest: +SKIP
    """
    import scanpy as sc

    check_positive(n_genes, "n_genes", integer=True)
    if isinstance(regions, str):
        if isinstance(expression, ad.AnnData):
            if regions not in expression.obs:
                raise FuseMapInputError(
                    f"regions={regions!r} is not an obs column of expression (columns: "
                    f"{list(expression.obs.columns)}). Run find_regions first or pass the labels."
                )
            labels = expression.obs[regions].astype(object).to_numpy()
        else:
            labels = pooled(expression, argname="expression").obs(regions, "regions").to_numpy()
    else:
        labels = np.asarray(regions, dtype=object)
    adata = expression_frame(expression, layer=layer)
    if labels.shape[0] != adata.n_obs:
        raise FuseMapInputError(
            f"regions has {labels.shape[0]} labels for {adata.n_obs} cells of expression; pass one label per cell."
        )
    work = ad.AnnData(adata.layers[layer] if (layer is not None and isinstance(expression, ad.AnnData))
                      else adata.X, var=pd.DataFrame(index=list(map(str, adata.var_names))))
    work.obs_names = [str(i) for i in range(work.n_obs)]
    if not normalized:
        sc.pp.normalize_total(work)
        sc.pp.log1p(work)
    has = labelled(pd.Series(labels))
    counts = pd.Series(labels[has]).value_counts()
    keep_groups = [g for g, c in counts.items() if c >= min_cells]
    if len(keep_groups) < 2:
        raise FuseMapInputError(
            f"regions: need at least two regions with >= {min_cells} cells to rank markers; found {dict(counts)}."
        )
    work = work[has & np.isin(labels, keep_groups)].copy()
    work.obs["region"] = pd.Categorical(labels[has & np.isin(labels, keep_groups)].astype(str))
    sc.tl.rank_genes_groups(work, "region", method=method, n_genes=min(n_genes, work.n_vars),
                            use_raw=False)
    rg = work.uns["rank_genes_groups"]
    rows = []
    for region in work.obs["region"].cat.categories:
        for r in range(min(n_genes, work.n_vars)):
            rows.append({"region": region, "rank": r + 1, "gene": rg["names"][region][r],
                         "score": float(rg["scores"][region][r]),
                         "logfoldchange": float(rg["logfoldchanges"][region][r]) if "logfoldchanges" in rg else np.nan,
                         "pval_adj": float(rg["pvals_adj"][region][r]) if "pvals_adj" in rg else np.nan})
    return pd.DataFrame(rows)


def region_composition(data: Any, regions: str = REGION_KEY, by: str = "section",
                       section_key: str | None = None) -> pd.DataFrame:
    """Cells per region in each section (or per value of another obs column).

    Parameters
    ----------
    data
        Sections with the region column (list/dict of AnnData, one AnnData with a section
        column, a model's sections, the ``fusemap integrate`` output folder).
    regions
        obs column of the regions (default: the one :func:`find_regions` writes).
    by
        ``'section'``, or another obs column (e.g. ``'cell_type'``) to tabulate against.
    section_key
        obs column splitting one AnnData into sections.

    Returns
    -------
    pandas.DataFrame
        Cell counts, regions x groups.

    Examples
    --------
    >>> fusemap.tl.region_composition(sections)  # doctest: +SKIP
    >>> fusemap.tl.region_composition(sections, by="cell_type")  # doctest: +SKIP
    """
    pool: Pooled = pooled(data, section_key)
    reg = pool.obs(regions, "regions")
    grp = pd.Series(pool.section, index=pool.index) if by == "section" else pool.obs(by, "by")
    table = pd.crosstab(reg.rename(regions), grp.rename(by))
    return table
