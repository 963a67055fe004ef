"""Nomenclature harmonisation: put two label sets on every cell and tabulate how they correspond.

Two atlases name their cell types (or regions) differently and each labels only its own cells.
In the shared embedding, each label set is transferred to all cells by a classifier trained on the
cells that carry it; every cell then has both names, and the cross-tabulation of the two, normalised
by row (what share of A-label cells gets each B label) and by column, is the correspondence matrix
of the paper (Fig. 2f-j). Cell types use the cell embedding, regions the spatial embedding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._constants import CELL_EMBEDDING
from ..errors import FuseMapInputError
from ._inputs import check_positive, labelled, pooled


@dataclass
class Correspondence:
    """Both label sets on every cell, and their correspondence matrices (rows: A labels, columns: B).

    Returned by :func:`harmonize_nomenclatures`; :func:`fusemap.pl.correspondence_heatmap` draws it.

    Attributes
    ----------
    labels
        Per pooled cell: ``<a>``, ``<a>_source`` (``'measured'`` or ``'transferred'``),
        ``<a>_uncertainty``, and the same for ``<b>``.
    counts
        Cells per (A label, B label).
    row_normalized
        ``counts`` with each row summing to 1: where the cells of each A label go among B labels.
    col_normalized
        ``counts`` with each column summing to 1.
    accuracy
        Held-out accuracy of each transfer (NaN with too few cells).
    label_a, label_b
        The two obs columns.

    Examples
    --------
    >>> corr = fusemap.tl.harmonize_nomenclatures(sections, "atlas_a_type", "atlas_b_type")  # doctest: +SKIP
    >>> corr.best_matches()  # doctest: +SKIP
    """

    labels: pd.DataFrame  # per cell: <a>, <a>_source ('measured'/'transferred'), <a>_uncertainty, same for b
    counts: pd.DataFrame
    row_normalized: pd.DataFrame  # each row sums to 1
    col_normalized: pd.DataFrame  # each column sums to 1
    accuracy: dict = field(default_factory=dict)  # held-out accuracy of each transfer
    label_a: str = "a"
    label_b: str = "b"

    def best_matches(self) -> pd.DataFrame:
        """For each A label: the B label holding most of its cells, that share, and the reverse share.

        Returns
        -------
        pandas.DataFrame
            One row per A label: the A label, its best B label, ``share_of_row`` (share of the A
            label's cells with that B label), ``share_of_column`` (share of that B label's cells
            with the A label) and ``n_cells``.

        Examples
        --------
        >>> corr.best_matches().sort_values("share_of_row")  # doctest: +SKIP
        """
        rows = []
        for a in self.counts.index:
            b = self.row_normalized.loc[a].idxmax()
            rows.append({self.label_a: a, self.label_b: b,
                         "share_of_row": float(self.row_normalized.loc[a, b]),
                         "share_of_column": float(self.col_normalized.loc[a, b]),
                         "n_cells": int(self.counts.loc[a].sum())})
        return pd.DataFrame(rows)


def transfer(embedding: np.ndarray, labels: np.ndarray, train: np.ndarray, *, method: str = "mlp",
             n_neighbors: int = 15, holdout: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """Predict labels for all cells from the cells in ``train`` (the classifiers of
    :func:`fusemap.transfer_labels`: an MLP, or kNN).

    Returns (predicted labels, uncertainty = 1 - max class probability, accuracy on a random
    stratified ``holdout`` share of the training cells that a classifier fitted on the rest did
    not see; NaN when there are too few cells).
    """
    from sklearn.model_selection import train_test_split

    from ..transfer import fit_predict

    if method not in ("mlp", "knn"):
        raise FuseMapInputError(f"method={method!r}: choose 'mlp' or 'knn'.")
    x_train, y_train = embedding[train], labels[train].astype(str)
    acc = float("nan")
    if holdout > 0 and len(y_train) >= 20 and len(set(y_train)) > 1:
        counts = pd.Series(y_train).value_counts()
        strat = y_train if counts.min() >= 2 else None
        xa, xb, ya, yb = train_test_split(x_train, y_train, test_size=holdout, random_state=seed, stratify=strat)
        (pred_b, _), = fit_predict(xa, ya, [xb], method=method, seed=seed, n_neighbors=n_neighbors)
        acc = float((pred_b.astype(str) == yb).mean())
    (pred, best), = fit_predict(x_train, y_train, [embedding], method=method, seed=seed, n_neighbors=n_neighbors)
    return pred.astype(object), 1.0 - best, acc


def harmonize_nomenclatures(data: Any, label_a: str, label_b: str, *, key: str = CELL_EMBEDDING,
                            method: str = "mlp", n_neighbors: int = 15, keep_measured: bool = True,
                            section_key: str | None = None, seed: int = 0,
                            key_added: tuple[str, str] | None = None, write: bool = True) -> Correspondence:
    """Transfer two label sets onto all cells and build their correspondence matrix.

    Parameters
    ----------
    data
        Integrated sections (list/dict of AnnData, one AnnData with a section column, a model's
        sections, the ``fusemap integrate`` output folder).
    label_a, label_b
        obs columns of the two nomenclatures. Each may be present in only some sections, or empty
        (NaN / '') for the cells its atlas did not annotate.
    key
        Embedding used for the transfer: ``X_fusemap_cell`` for cell types, ``X_fusemap_spatial``
        for tissue regions.
    method
        ``'mlp'`` (as the paper) or ``'knn'`` (``n_neighbors``); the classifiers of
        :func:`fusemap.transfer_labels`.
    keep_measured
        Cells that carry a label keep it; the rest get the transferred one. False relabels all cells.
    n_neighbors
        Neighbours of the kNN classifier.
    section_key
        obs column splitting one AnnData into sections.
    seed
        Seed of the held-out split and the classifier.
    key_added, write
        obs columns that receive the harmonised labels in every section (default
        ``'<label>_harmonized'``); ``write=False`` leaves the sections untouched.

    Returns
    -------
    Correspondence
        Both labels on every cell and the correspondence matrices.

    Raises
    ------
    FuseMapInputError
        When both columns are the same, a column has fewer than two labelled classes, or the
        embedding is missing.

    Examples
    --------
    Two atlases, each annotated in its own sections only:

    >>> corr = fusemap.tl.harmonize_nomenclatures(sections, "allen_type", "zhuang_type")  # doctest: +SKIP
    >>> corr.row_normalized.round(2)  # doctest: +SKIP
    >>> fusemap.pl.correspondence_heatmap(corr, save="correspondence.png")  # doctest: +SKIP
    """
    check_positive(n_neighbors, "n_neighbors", integer=True)
    if label_a == label_b:
        raise FuseMapInputError(f"label_a and label_b are both {label_a!r}; pass two different obs columns.")
    pool = pooled(data, section_key)
    emb = pool.obsm(key)
    out = pd.DataFrame(index=pool.index)
    accuracy = {}
    for col in (label_a, label_b):
        values = pool.obs(col, "label_a" if col == label_a else "label_b", allow_missing_sections=True)
        has = labelled(values)
        n_classes = len(set(values[has]))
        if n_classes < 2:
            raise FuseMapInputError(
                f"{col!r}: {int(has.sum())} labelled cells in {n_classes} class(es); a nomenclature needs at "
                "least two labels to transfer."
            )
        pred, unc, acc = transfer(emb, values.to_numpy(dtype=object), has, method=method,
                                  n_neighbors=n_neighbors, seed=seed)
        final = np.where(has, values.to_numpy(dtype=object), pred) if keep_measured else pred
        out[col] = pd.Categorical(final.astype(str))
        out[f"{col}_source"] = np.where(has, "measured", "transferred")
        out[f"{col}_uncertainty"] = np.where(has & keep_measured, 0.0, unc)
        accuracy[col] = acc
    counts = pd.crosstab(out[label_a], out[label_b])
    counts.index.name, counts.columns.name = label_a, label_b
    row = counts.div(counts.sum(1).replace(0, np.nan), axis=0).fillna(0.0)
    colnorm = counts.div(counts.sum(0).replace(0, np.nan), axis=1).fillna(0.0)
    names = key_added or (f"{label_a}_harmonized", f"{label_b}_harmonized")
    if write:
        pool.write_obs(names[0], out[label_a].astype(str).to_numpy())
        pool.write_obs(names[1], out[label_b].astype(str).to_numpy())
    return Correspondence(out, counts, row, colnorm, accuracy, label_a, label_b)
