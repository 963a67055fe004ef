"""Gene modules from the gene embedding, targeted gene-panel selection and panel evaluation.

Genes close in the learned gene embedding are co-expressed in similar cells and neighbourhoods, so
clusters of it are gene modules. A panel that takes highly variable genes evenly from every module
covers all expression programmes instead of piling up the loudest one; the paper shows such panels
classify cell types better than the top highly variable genes or random genes. A panel is judged by
the cross-validated accuracy of a classifier that predicts cell types from the panel's genes alone.
"""

from __future__ import annotations

from typing import Any, Sequence

import anndata as ad
import numpy as np
import pandas as pd

from ..errors import FuseMapInputError
from ._inputs import check_positive, expression_frame, gene_embedding as as_gene_embedding

MODULE_PREFIX = "GM"


def gene_modules(gene_embedding: Any, n_modules: int = 13, *, method: str = "kmeans",
                 genes: Sequence[str] | None = None, seed: int = 0) -> pd.Series:
    """Cluster genes into modules by their embedding (cosine geometry: rows scaled to unit length).

    Parameters
    ----------
    gene_embedding
        Genes x latent DataFrame, a FuseMap model, a saved model directory, ... (any form
        :func:`fusemap.tl.gene_embedding` accepts).
    n_modules
        Number of modules (13 in the paper).
    method
        ``'kmeans'`` (k-means, 10 starts) or ``'hierarchical'`` (Ward linkage).
    genes
        Restrict to these genes (e.g. those measured in the dataset a panel is chosen for).
    seed
        Seed of k-means.

    Returns
    -------
    pandas.Series
        Gene -> module name ``'GM1'``, ``'GM2'``, ... (``GM1`` the largest), in the embedding's
        gene order.

    Raises
    ------
    FuseMapInputError
        When ``n_modules`` exceeds the number of genes, none of ``genes`` is in the embedding,
        or ``method`` is unknown.

    Examples
    --------
    >>> modules = fusemap.tl.gene_modules(model, n_modules=8)  # doctest: +SKIP
    >>> modules.value_counts()  # doctest: +SKIP
    """
    check_positive(n_modules, "n_modules", integer=True)
    emb = as_gene_embedding(gene_embedding)
    if genes is not None:
        emb = emb.loc[_present(genes, emb.index, "genes")]
    if n_modules > len(emb):
        raise FuseMapInputError(f"n_modules={n_modules} exceeds the number of genes ({len(emb)}).")
    x = emb.to_numpy()
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if method == "kmeans":
        from sklearn.cluster import KMeans

        raw = KMeans(n_clusters=n_modules, n_init=10, random_state=seed).fit_predict(x)
    elif method == "hierarchical":
        from sklearn.cluster import AgglomerativeClustering

        raw = AgglomerativeClustering(n_clusters=n_modules, linkage="ward").fit_predict(x)
    else:
        raise FuseMapInputError(f"method={method!r}: choose 'kmeans' or 'hierarchical'.")
    sizes = pd.Series(raw).value_counts()
    rename = {c: f"{MODULE_PREFIX}{i + 1}" for i, c in enumerate(sizes.index)}
    return pd.Series([rename[c] for c in raw], index=emb.index, name="module")


def _present(genes: Sequence[str], index: pd.Index, argname: str) -> list[str]:
    genes = [str(g) for g in genes]
    have = set(index)
    missing = [g for g in genes if g not in have]
    if len(missing) == len(genes):
        raise FuseMapInputError(
            f"{argname}: none of the {len(genes)} genes are in the gene embedding (e.g. {missing[:5]}; the "
            f"embedding has {list(index[:5])}...). Check the gene names."
        )
    return [g for g in genes if g in have]


def variability(expression: Any, *, layer: str | None = None, normalized: bool = False) -> pd.Series:
    """How variable every gene is across cells, most variable first (the ranking of an HVG panel).

    Counts: variance of analytic Pearson residuals (Lause et al. 2021; scanpy's
    ``pearson_residuals`` flavour, overdispersion 100), which is comparable across genes of any
    expression level without fitting a mean-variance trend. Already normalised values
    (``normalized=True``, e.g. imputed): scanpy's 'seurat' normalised dispersion.

    Parameters
    ----------
    expression
        One AnnData, or sections (pooled on their common genes).
    layer
        Layer holding the values (default ``X``).
    normalized
        The values are already log-normalised (or imputed), not counts.

    Returns
    -------
    pandas.Series
        Gene -> variability score, sorted decreasing (genes without a score last).

    Examples
    --------
    >>> fusemap.tl.variability(adata).head(10)  # doctest: +SKIP
    """
    import scanpy as sc

    if not normalized:
        src = expression_frame(expression, layer=layer)
        x = src.layers[layer] if (layer is not None and isinstance(expression, ad.AnnData)) else src.X
        counts = ad.AnnData(x, var=pd.DataFrame(index=list(map(str, src.var_names))))
        counts.obs_names = [str(i) for i in range(counts.n_obs)]
        stats = sc.experimental.pp.highly_variable_genes(counts, flavor="pearson_residuals",
                                                         n_top_genes=counts.n_vars, inplace=False)
        score = np.asarray(stats["residual_variances"], dtype=float)
    else:
        adata = _log_normalized(expression, layer, normalized)
        stats = sc.pp.highly_variable_genes(adata, flavor="seurat", n_top_genes=None, inplace=False,
                                            n_bins=min(20, max(1, adata.n_vars // 5)))
        score = np.asarray(stats["dispersions_norm"], dtype=float)
        src = adata
    disp = pd.Series(score, index=list(map(str, src.var_names)))
    return disp.fillna(-np.inf).sort_values(ascending=False, kind="stable")


def _log_normalized(expression: Any, layer: str | None, normalized: bool) -> ad.AnnData:
    import scanpy as sc
    import scipy.sparse as sp

    src = expression_frame(expression, layer=layer)
    x = src.layers[layer] if (layer is not None and isinstance(expression, ad.AnnData)) else src.X
    x = sp.csr_matrix(x, dtype=np.float32) if sp.issparse(x) else np.asarray(x, dtype=np.float32)
    out = ad.AnnData(x, obs=src.obs.copy(), var=pd.DataFrame(index=list(map(str, src.var_names))))
    if not normalized:
        sc.pp.normalize_total(out)
        sc.pp.log1p(out)
    return out


def select_panel(gene_embedding: Any, expression: Any, n_genes: int, *, modules: pd.Series | None = None,
                 n_modules: int = 13, layer: str | None = None, normalized: bool = False,
                 ranking: pd.Series | None = None, seed: int = 0) -> pd.DataFrame:
    """Embedding-guided panel: ``n_genes`` highly variable genes spread evenly over gene modules.

    A panel of the top highly variable genes piles up the loudest expression programme; taking
    genes evenly from every module of the gene embedding covers all of them, which the paper
    shows classifies cell types better. Genes considered are those both in the gene embedding and
    in ``expression`` (the dataset whose variability ranks genes). Modules are taken in turns,
    each adding its most variable gene not yet chosen, so module shares differ by at most one gene
    (until a module runs out).

    Parameters
    ----------
    gene_embedding
        Any form :func:`gene_embedding` accepts (ignored when ``modules`` is given).
    expression
        The dataset the panel is chosen for: one AnnData or sections (ignored when ``ranking`` is
        given).
    n_genes
        Panel size.
    modules
        Gene -> module (from :func:`gene_modules`); computed with ``n_modules`` when ``None``.
    n_modules
        Number of gene modules when they are computed here.
    layer, normalized
        Where the values of ``expression`` are, and whether they are already log-normalised (see
        :func:`variability`).
    ranking
        Gene -> variability (from :func:`variability`), to skip recomputing it.
    seed
        Seed of the module clustering.

    Returns
    -------
    pandas.DataFrame
        Columns gene, module, variability, rank_in_module, in selection order.

    Raises
    ------
    FuseMapInputError
        When ``n_genes`` exceeds the genes present in both the embedding and ``expression``.

    Examples
    --------
    >>> panel = fusemap.tl.select_panel(model, adata, n_genes=40)  # doctest: +SKIP
    >>> list(panel["gene"])  # doctest: +SKIP
    """
    check_positive(n_genes, "n_genes", integer=True)
    disp = ranking if ranking is not None else variability(expression, layer=layer, normalized=normalized)
    if modules is None:
        emb = as_gene_embedding(gene_embedding)
        genes = _present(list(disp.index), emb.index, "expression")
        modules = gene_modules(emb, min(n_modules, len(genes)), genes=genes, seed=seed)
    modules = modules[[g for g in modules.index if g in disp.index]]
    if n_genes > len(modules):
        raise FuseMapInputError(
            f"n_genes={n_genes} exceeds the {len(modules)} genes present in both the gene embedding and expression."
        )
    queues = {m: sorted(g, key=lambda x: -disp[x]) for m, g in modules.groupby(modules).groups.items()}
    chosen: list[tuple[str, str, int]] = []
    rank = {m: 0 for m in queues}
    while len(chosen) < n_genes:
        # this round: every module with genes left, the one whose next gene is most variable first
        order = sorted((m for m in queues if rank[m] < len(queues[m])), key=lambda m: -disp[queues[m][rank[m]]])
        for m in order:
            if len(chosen) == n_genes:
                break
            chosen.append((queues[m][rank[m]], m, rank[m] + 1))
            rank[m] += 1
    return pd.DataFrame({"gene": [c[0] for c in chosen], "module": [c[1] for c in chosen],
                         "variability": [float(disp[c[0]]) for c in chosen],
                         "rank_in_module": [c[2] for c in chosen]})


def hvg_panel(expression: Any, n_genes: int, *, genes: Sequence[str] | None = None, layer: str | None = None,
              normalized: bool = False) -> list[str]:
    """The ``n_genes`` most variable genes: the usual panel that :func:`select_panel` is compared with.

    Parameters
    ----------
    expression
        One AnnData or sections.
    n_genes
        Panel size.
    genes
        Choose only among these genes.
    layer, normalized
        See :func:`variability`.

    Returns
    -------
    list of str
        The genes, most variable first.

    Examples
    --------
    >>> fusemap.tl.hvg_panel(adata, 20)  # doctest: +SKIP
    """
    disp = variability(expression, layer=layer, normalized=normalized)
    if genes is not None:
        disp = disp[disp.index.isin(set(map(str, genes)))]
    _check_size(n_genes, len(disp))
    return list(disp.index[:n_genes])


def random_panel(genes: Sequence[str], n_genes: int, seed: int = 0) -> list[str]:
    """``n_genes`` genes drawn uniformly without replacement: the baseline panel.

    Parameters
    ----------
    genes
        The genes to draw from.
    n_genes
        Panel size.
    seed
        Seed of the draw.

    Returns
    -------
    list of str

    Examples
    --------
    >>> fusemap.tl.random_panel(["A", "B", "C", "D"], 2, seed=0)
    ['C', 'D']
    """
    genes = list(map(str, genes))
    _check_size(n_genes, len(genes))
    rng = np.random.default_rng(seed)
    return [genes[i] for i in rng.choice(len(genes), n_genes, replace=False)]


def _check_size(n: int, available: int) -> None:
    check_positive(n, "n_genes", integer=True)
    if n > available:
        raise FuseMapInputError(f"n_genes={n} exceeds the {available} genes available.")


def evaluate_panel(expression: Any, genes: Sequence[str], label_key: str, *, classifier: str = "logistic",
                   n_folds: int = 5, layer: str | None = None, normalized: bool = False,
                   min_cells: int | None = None, seed: int = 0) -> float:
    """Cross-validated accuracy of predicting ``obs[label_key]`` from the panel's genes only.

    Expression is log-normalised over all its genes first (as the cells were measured), then
    restricted to the panel and standardised, so the score says how much cell-type information
    the panel alone carries.

    Parameters
    ----------
    expression
        One labelled AnnData (or sections pooled on their common genes) holding the panel's genes.
    genes
        The panel.
    label_key
        obs column of the classes to predict (e.g. cell types).
    classifier
        ``'logistic'`` (multinomial logistic regression, fast) or ``'mlp'`` (the paper's
        MLPClassifier, alpha=1).
    n_folds
        Folds of the stratified cross-validation; classes with fewer cells are left out.
    layer, normalized
        Where the values are, and whether they are already log-normalised.
    min_cells
        Leave out classes with fewer cells (besides the ``n_folds`` rule).
    seed
        Seed of the folds and of the MLP.

    Returns
    -------
    float
        Mean accuracy over the folds.

    Raises
    ------
    FuseMapInputError
        When ``label_key`` is missing, fewer than two classes remain, or panel genes are not in
        ``expression``.

    Examples
    --------
    >>> fusemap.tl.evaluate_panel(adata, panel["gene"], "cell_type")  # doctest: +SKIP
    """
    adata, y = _labelled_expression(expression, label_key, layer, normalized, n_folds, min_cells)
    return float(np.mean(_cv_scores(adata, list(genes), y, classifier, n_folds, seed)))


def _labelled_expression(expression, label_key, layer, normalized, n_folds, min_cells):
    from ._inputs import labelled

    adata = _log_normalized(expression, layer, normalized)
    if label_key not in adata.obs:
        raise FuseMapInputError(
            f"label_key={label_key!r} is not an obs column of expression (columns: {list(adata.obs.columns)})."
        )
    y = adata.obs[label_key].astype(object)
    counts = y[labelled(y)].astype(str).value_counts()
    keep_classes = set(counts.index[counts >= max(n_folds, min_cells or 0)])
    keep = labelled(y) & y.astype(str).isin(keep_classes).to_numpy()
    if len(keep_classes) < 2:
        raise FuseMapInputError(f"label_key={label_key!r}: fewer than two classes with >= {n_folds} cells.")
    return adata[keep], y[keep].astype(str).to_numpy()


def _cv_scores(adata: ad.AnnData, genes: list[str], y: np.ndarray, classifier: str, n_folds: int,
               seed: int) -> np.ndarray:
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    missing = [g for g in genes if g not in set(adata.var_names)]
    if missing:
        raise FuseMapInputError(f"genes: {len(missing)} panel genes are not in expression (e.g. {missing[:5]}).")
    x = adata[:, genes].X
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    if classifier == "logistic":
        clf = LogisticRegression(max_iter=2000, C=1.0)
    elif classifier == "mlp":
        clf = MLPClassifier(alpha=1.0, max_iter=1000, random_state=seed)
    else:
        raise FuseMapInputError(f"classifier={classifier!r}: choose 'logistic' or 'mlp'.")
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return cross_val_score(make_pipeline(StandardScaler(), clf), x, y, cv=folds, scoring="accuracy")


def compare_panels(gene_embedding: Any, expression: Any, label_key: str, sizes: Sequence[int] = (10, 20, 40), *,
                   n_random: int = 5, n_modules: int = 13, classifier: str = "logistic", n_folds: int = 5,
                   layer: str | None = None, normalized: bool = False, seed: int = 0) -> pd.DataFrame:
    """Accuracy of embedding-guided, top-HVG and random panels of each size on one labelled dataset.

    The paper's panel comparison: genes considered are those in both the gene embedding and
    ``expression``; the same folds are used for every panel, so the accuracies are comparable.

    Parameters
    ----------
    gene_embedding
        Any form :func:`gene_embedding` accepts.
    expression
        One labelled AnnData (or sections pooled on their common genes).
    label_key
        obs column of the classes to predict.
    sizes
        Panel sizes to compare.
    n_random
        Random panels per size (seeds ``seed`` .. ``seed + n_random - 1``).
    n_modules
        Gene modules of the embedding-guided panels.
    classifier, n_folds
        See :func:`evaluate_panel`.
    layer, normalized
        Where the values are, and whether they are already log-normalised.
    seed
        Seed of modules, folds and classifiers.

    Returns
    -------
    pandas.DataFrame
        One row per (size, kind, draw): size, kind (``'embedding'``, ``'hvg'`` or
        ``'random'``), draw, accuracy (mean over folds) and the genes (comma-separated).

    Examples
    --------
    >>> comparison = fusemap.tl.compare_panels(model, adata, "cell_type", sizes=(10, 20))  # doctest: +SKIP
    >>> fusemap.pl.panel_accuracy(comparison)  # doctest: +SKIP
    """
    adata, y = _labelled_expression(expression, label_key, layer, normalized, n_folds, None)
    emb = as_gene_embedding(gene_embedding)
    genes = _present(list(map(str, adata.var_names)), emb.index, "expression")
    modules = gene_modules(emb, min(n_modules, len(genes)), genes=genes, seed=seed)
    disp = variability(expression, layer=layer, normalized=normalized)
    disp = disp[disp.index.isin(set(genes))]
    rows = []
    for n in sizes:
        _check_size(n, len(genes))
        panels = [("embedding", 0, list(select_panel(emb, None, n, modules=modules, ranking=disp,
                                                     seed=seed)["gene"])),
                  ("hvg", 0, list(disp.index[:n]))]
        panels += [("random", d, random_panel(genes, n, seed=seed + d)) for d in range(n_random)]
        for kind, draw, panel in panels:
            acc = float(np.mean(_cv_scores(adata, panel, y, classifier, n_folds, seed)))
            rows.append({"size": int(n), "kind": kind, "draw": draw, "accuracy": acc, "genes": ",".join(panel)})
    return pd.DataFrame(rows)
