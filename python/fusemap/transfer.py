"""Label transfer: annotate query cells from labelled reference cells in the shared embedding.

Public API: :func:`transfer_labels` (its docstring lists the arguments).

Held-out accuracy: a stratified ``holdout`` fraction of reference cells is kept out of training
and predicted like query cells (hierarchically, so sub-level accuracy includes errors of the main
level); accuracy and macro-F1 per level are reported in the result. The classifier trained on the
remaining cells predicts the query.

Rare classes: a class with fewer than ``min_cells`` labelled reference cells cannot be learned or
evaluated reliably. It is never dropped silently: with ``rare='exclude'`` (default) its cells are
left out of training and evaluation, with ``rare='other'`` they are merged into one class
``'other'``; either way a :class:`~fusemap.FuseMapWarning` names the classes and their counts, and
``TransferResult.rare_classes`` lists them. Reference cells without a label are left out.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ._constants import CELL_EMBEDDING, SECTION_COLUMN, SPATIAL_EMBEDDING
from .errors import FuseMapInputError, FuseMapWarning
from .io.results import put_obs
from .io.sections import read_sections
from .io.sectionset import SectionSet
from .novelty import novelty_scores

EMBEDDINGS = {"cell": CELL_EMBEDDING, "spatial": SPATIAL_EMBEDDING}
METHODS = ("mlp", "knn", "ensemble")
RARE_POLICIES = ("exclude", "other")
OTHER = "other"
UNASSIGNED = "unassigned"
"""Label of query cells farther from the reference than ``novelty_threshold`` allows, and sub-level
label of cells whose predicted parent class has no labelled sub-level cells."""


def prediction_key(label_key: str) -> str:
    return f"fusemap_{label_key}"


def uncertainty_key(label_key: str) -> str:
    return f"fusemap_{label_key}_uncertainty"


def novelty_key(label_key: str) -> str:
    return f"fusemap_{label_key}_novelty"


@dataclass
class TransferResult:
    """Predictions for the query cells and how well the classifier does on held-out reference cells.

    Returned by :func:`transfer_labels`; not constructed by users.

    Attributes
    ----------
    levels
        The transferred label columns, main level first.
    predictions
        One row per query cell (index: cell names, in section order): ``section``, and per level
        ``fusemap_<level>`` (predicted class; ``'unassigned'`` for a cell above the novelty
        threshold, and for a sub-level whose predicted parent has no labelled sub-level cells),
        ``fusemap_<level>_uncertainty``, and ``fusemap_<label_key>_novelty`` (the cell's novelty
        against the reference on the cell embedding, :mod:`fusemap.novelty`).
    heldout_accuracy, heldout_macro_f1
        Per level, on the held-out reference cells (NaN without held-out cells); a sub-level's
        score includes the errors of the levels above.
    n_heldout
        Held-out reference cells scored, per level.
    rare_classes
        Per level, the classes below ``min_cells`` and their cell counts.
    classes
        Per level, the classes the classifier was trained on.
    method, embedding
        The settings used.
    n_reference_cells
        Reference cells read (labelled or not).
    novelty_threshold, n_unassigned
        Cells above this novelty were left unassigned (None: none were), and how many.
    n_unlabelled_reference_cells
        Per level, reference cells without a label (left out).

    Examples
    --------
    >>> result = fusemap.transfer_labels(reference, query, "cell_type")  # doctest: +SKIP
    >>> result.summary()["heldout_accuracy"]  # doctest: +SKIP
    """

    levels: list[str]
    predictions: pd.DataFrame  # query cells x (section, fusemap_<key>, fusemap_<key>_uncertainty per level)
    heldout_accuracy: dict[str, float]
    heldout_macro_f1: dict[str, float]
    n_heldout: dict[str, int]
    rare_classes: dict[str, dict[str, int]]
    classes: dict[str, list[str]]
    method: str
    embedding: str
    n_reference_cells: int
    n_unlabelled_reference_cells: dict[str, int] = field(default_factory=dict)
    novelty_threshold: float | None = None
    n_unassigned: int = 0

    def summary(self) -> dict:
        """JSON-friendly summary of the result, without per-cell data (what ``fusemap transfer`` writes).

        Returns
        -------
        dict
            Levels, method, embedding, cell counts, held-out scores, rare and trained classes.

        Examples
        --------
        >>> import json
        >>> print(json.dumps(result.summary(), indent=1))  # doctest: +SKIP
        """
        return {
            "levels": self.levels, "method": self.method, "embedding": self.embedding,
            "n_reference_cells": int(self.n_reference_cells),
            "n_query_cells": int(len(self.predictions)),
            "heldout_accuracy": {k: float(v) for k, v in self.heldout_accuracy.items()},
            "heldout_macro_f1": {k: float(v) for k, v in self.heldout_macro_f1.items()},
            "n_heldout": {k: int(v) for k, v in self.n_heldout.items()},
            "rare_classes": self.rare_classes,
            "classes": self.classes,
            "n_unlabelled_reference_cells": self.n_unlabelled_reference_cells,
            "novelty_threshold": self.novelty_threshold, "n_unassigned": int(self.n_unassigned),
        }


# -- inputs ---------------------------------------------------------------------------------------------
def _sections(data: Any, argname: str) -> SectionSet:

    return read_sections(data, argname=argname)


def _embedding_matrices(sections: SectionSet, key: str, argname: str, hint: str) -> list[np.ndarray]:
    missing = [n for n, a in sections.items() if key not in a.obsm]
    if missing:
        raise FuseMapInputError(f"{argname}: section(s) {missing} have no obsm[{key!r}]; {hint}")
    mats = [np.asarray(a.obsm[key], dtype=np.float32) for a in sections.adatas]
    dims = sorted({m.shape[1] for m in mats})
    if len(dims) > 1:
        raise FuseMapInputError(f"{argname}: obsm[{key!r}] has different widths across sections ({dims}).")
    return mats


def _labels(sections: SectionSet, keys: Sequence[str]) -> pd.DataFrame:
    problems = []
    for name, a in sections.items():
        absent = [k for k in keys if k not in a.obs.columns]
        if absent:
            problems.append(f"section {name!r} has no obs column(s) {absent} (columns: {list(a.obs.columns)})")
    if problems:
        raise FuseMapInputError(
            "reference: labels missing: " + "; ".join(problems) + ". Pass label_key/hierarchy naming "
            "obs columns that every reference section holds."
        )
    frames = []
    for a in sections.adatas:
        f = pd.DataFrame({k: a.obs[k].astype(object).where(a.obs[k].notna(), None).to_numpy() for k in keys})
        frames.append(f)
    out = pd.concat(frames, ignore_index=True)
    for k in keys:
        out[k] = out[k].map(lambda v: None if v is None else str(v))
    return out


def check_reference_labels(reference: Any, levels: Sequence[str]) -> None:
    """Raise a clear error if a label column is missing from a reference section (cheap, no training)."""
    _labels(_sections(reference, "reference"), list(levels))


# -- classifiers ----------------------------------------------------------------------------------------
def _stratified_split(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of held-out cells: ``fraction`` of each class (none from a one-cell class)."""
    held = np.zeros(len(y), dtype=bool)
    if fraction <= 0:
        return held
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        k = int(round(fraction * len(idx)))
        k = min(max(k, 1 if len(idx) >= 2 else 0), len(idx) - 1)
        held[rng.permutation(idx)[:k]] = True
    return held


def _classifier(method: str, y: np.ndarray, seed: int, n_neighbors: int):
    if method == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(n_neighbors=min(n_neighbors, len(y)))
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    counts = np.unique(y, return_counts=True)[1]
    # early stopping keeps a stratified tenth of the training cells; it needs a few cells per class
    early = bool(counts.min() >= 10 and len(y) >= 200)
    return make_pipeline(StandardScaler(), MLPClassifier(
        hidden_layer_sizes=(256,), alpha=1e-3, batch_size=min(256, len(y)), learning_rate_init=1e-3,
        max_iter=200, early_stopping=early, validation_fraction=0.1, n_iter_no_change=10,
        random_state=seed))


def fit_predict(x_train: np.ndarray, y_train: np.ndarray, targets: Sequence[np.ndarray], *, method: str = "mlp",
                seed: int = 0, n_neighbors: int = 15, max_train_cells: int | None = None
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fit one classifier and return (predicted label, highest class probability) for each target."""
    classes = np.unique(y_train)
    if len(classes) == 1:
        return [(np.full(len(t), classes[0], dtype=object), np.ones(len(t))) for t in targets]
    if max_train_cells is not None and len(y_train) > max_train_cells:
        keep = np.sort(np.random.default_rng(seed).choice(len(y_train), max_train_cells, replace=False))
        x_train, y_train = x_train[keep], y_train[keep]
    # 'ensemble': the mean of the MLP's and the kNN vote's class probabilities
    clfs = [_classifier(m, y_train, seed, n_neighbors) for m in (("mlp", "knn") if method == "ensemble" else (method,))]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Stochastic Optimizer: Maximum iterations.*")
        for clf in clfs:
            clf.fit(x_train, y_train)
    out = []
    for t in targets:
        if len(t) == 0:
            out.append((np.zeros(0, dtype=object), np.zeros(0)))
            continue
        p = sum(clf.predict_proba(t) for clf in clfs) / len(clfs)  # classes_ are sorted in both
        best = p.argmax(1)
        out.append((np.asarray(clfs[0].classes_, dtype=object)[best], p[np.arange(len(t)), best]))
    return out


def _rare(labels: pd.Series, min_cells: int) -> dict[str, int]:
    counts = labels.dropna().value_counts()
    return {str(k): int(v) for k, v in counts.items() if v < min_cells}


# -- the transfer -----------------------------------------------------------------------------------------
def transfer_labels(reference: Any, query: Any, label_key: str, *, embedding: str = "cell", method: str = "mlp",
                    hierarchy: str | Sequence[str] | None = None, min_cells: int = 10, rare: str = "exclude",
                    holdout: float = 0.2, n_neighbors: int = 15, max_train_cells: int | None = 200_000,
                    novelty_threshold: float | None = None, seed: int = 0,
                    write: bool = True) -> TransferResult:
    """Transfer labels (cell types, regions) from labelled reference cells to query cells.

    A classifier is trained on the reference cells' FuseMap embeddings and predicts the query
    cells, which live in the same space after :func:`fusemap.map_query` (or after integrating
    both together). Each prediction comes with an uncertainty, and the classifier is scored on
    held-out reference cells, so the result says how far to trust it. Rare classes are never
    dropped silently (see ``rare``).

    Parameters
    ----------
    reference
        Labelled sections holding the FuseMap embeddings: AnnData, list or dict of AnnData,
        ``.h5ad`` path(s) or folders (e.g. ``DIR/sections`` written by ``fusemap integrate``).
        Reference cells without a label (NaN) are left out.
    query
        Sections holding embeddings in the same space (written by :func:`fusemap.map_query` or
        ``fusemap map``), in the same accepted forms.
    label_key
        obs column of the reference to transfer (the main level).
    embedding
        ``'cell'`` (``obsm['X_fusemap_cell']``) for cell types, ``'spatial'``
        (``obsm['X_fusemap_spatial']``) for tissue regions: the spatial embedding summarises a
        cell's neighbourhood, which is what a region label describes.
    method
        ``'mlp'`` (a small neural network on standardised embeddings, as in the paper),
        ``'knn'`` (vote of the ``n_neighbors`` nearest reference cells) or ``'ensemble'`` (the
        mean of both classifiers' class probabilities). On the STARmap mosaic (BZ14 mapped onto
        BZ5 + BZ9, cell types) MLP accuracy 0.605 / macro-F1 0.523, kNN 0.552 / 0.469, ensemble
        0.597 / 0.505 (benchmarks/results/ablation/ABLATION.md), so the MLP stays the default.
    hierarchy
        obs column(s) of finer levels nested in ``label_key`` (e.g. subtypes within types). Each
        level is transferred among the reference cells of the class predicted at the level
        above, so a sub-label is always consistent with its parent.
    min_cells
        Classes with fewer labelled reference cells cannot be learned or evaluated reliably;
        they are handled as ``rare`` says, with a :class:`~fusemap.FuseMapWarning` naming them.
    rare
        ``'exclude'``: cells of rare classes are left out of training and evaluation;
        ``'other'``: they are merged into one class ``'other'``.
    holdout
        Share of labelled reference cells (stratified by class) kept out of training and
        predicted like query cells, for the held-out accuracy and macro-F1; ``0`` trains on all.
    n_neighbors
        Neighbours of the kNN classifier (``'knn'`` and ``'ensemble'``).
    max_train_cells
        Train on a random subset of at most this many reference cells (``None``: all), which
        bounds the time of the MLP on very large references.
    novelty_threshold
        Query cells whose novelty against the reference (:mod:`fusemap.novelty`, on the cell
        embedding whatever ``embedding`` is: in [0, 1], the share of reference cells that lie
        closer to the reference than the cell does) exceeds this
        are labelled ``'unassigned'`` at every level: a classifier only ranks the classes it knows,
        so a state the reference lacks would otherwise get a reference class. ``None`` (default)
        assigns every cell and only reports the novelty; 0.99 (:data:`fusemap.novelty.DEFAULT_THRESHOLD`)
        is the suggested value: on the Xenium development case with two cell types held out of the
        reference, it left 48 % of their cells and 0.7 % of the others unassigned. Not the default
        because the calibration assumes the query is aligned as well as the reference sections are
        with each other; a query offset as a whole (e.g. a single-cell reference against spatial
        sections after a short training) would be unassigned entirely (a warning says so).
    seed
        Seed of the held-out split, the subset, the classifier and the novelty calibration.
    write
        Write ``obs['fusemap_<level>']`` (predicted class), ``obs['fusemap_<level>_uncertainty']``
        (1 - the classifier's highest class probability; for a sub-level, conditional on the
        predicted parent) for every level and ``obs['fusemap_<label_key>_novelty']`` into the
        query sections (and into their SpatialData tables, for SpatialData input).

    Returns
    -------
    TransferResult
        ``predictions`` (query cells x section, predicted class and uncertainty per level),
        held-out accuracy and macro-F1 per level, the classes and the rare classes found.

    Raises
    ------
    FuseMapInputError
        For an invalid option, a label column missing from a reference section, sections
        without the embeddings, query and reference embeddings of different widths, or no usable
        label at all.

    Examples
    --------
    >>> import fusemap
    >>> sections = fusemap.datasets.simulate(n_sections=3, n_cells=500, panel_size=100, n_shared=40)
    >>> reference, query = sections[:2], sections[2]
    >>> model = fusemap.integrate(reference, max_epochs=20)
    >>> _ = fusemap.map_query(model, query, max_epochs=20)
    >>> result = fusemap.transfer_labels(reference, query, "cell_type")
    >>> result.heldout_accuracy["cell_type"]  # share of held-out reference cells predicted right
    >>> query.obs[["fusemap_cell_type", "fusemap_cell_type_uncertainty"]].head()  # doctest: +SKIP

    Regions from the spatial embedding:

    >>> regions = fusemap.transfer_labels(reference, query, "region", embedding="spatial")
    """
    if embedding not in EMBEDDINGS:
        raise FuseMapInputError(f"embedding={embedding!r} is not one of {list(EMBEDDINGS)}.")
    if method not in METHODS:
        raise FuseMapInputError(f"method={method!r} is not one of {list(METHODS)}.")
    if rare not in RARE_POLICIES:
        raise FuseMapInputError(f"rare={rare!r} is not one of {list(RARE_POLICIES)}.")
    if not 0 <= holdout < 1:
        raise FuseMapInputError(f"holdout={holdout!r} must be in [0, 1).")
    if novelty_threshold is not None and not 0 < novelty_threshold <= 1:
        raise FuseMapInputError(f"novelty_threshold={novelty_threshold!r} must be in (0, 1] (or None to "
                                "assign every cell); 0.99 leaves unassigned the cells farther from the "
                                "reference than 99 % of reference cells.")
    if min_cells < 1 or n_neighbors < 1:
        raise FuseMapInputError("min_cells and n_neighbors must be positive integers.")
    levels = [label_key] + ([hierarchy] if isinstance(hierarchy, str) else list(hierarchy or []))
    if len(set(levels)) < len(levels):
        raise FuseMapInputError(f"label levels {levels} repeat a column; list each level once.")
    key = EMBEDDINGS[embedding]

    ref = _sections(reference, "reference")
    labels = _labels(ref, levels)
    ref_mats = _embedding_matrices(ref, key, "reference", "pass sections written by `fusemap integrate` "
                              "(DIR/sections) or by model.write(), which hold the embeddings.")
    qry = _sections(query, "query")
    x_q = np.concatenate(_embedding_matrices(qry, key, "query", "map the query onto the reference first "
                            "(fusemap.map_query or `fusemap map`), which writes the embeddings."))
    x_ref = np.concatenate(ref_mats)
    if x_q.shape[1] != x_ref.shape[1]:
        raise FuseMapInputError(
            f"query embeddings have {x_q.shape[1]} dimensions, the reference's {x_ref.shape[1]}; "
            "the query must be mapped onto the model that embedded the reference."
        )

    # rare classes and unlabelled cells, per level
    usable, rare_found, unlabelled = {}, {}, {}
    for lv in levels:
        col = labels[lv]
        unlabelled[lv] = int(col.isna().sum())
        rare_found[lv] = _rare(col, min_cells)
        if rare_found[lv]:
            action = "left out of training and evaluation" if rare == "exclude" else f"merged into {OTHER!r}"
            warnings.warn(
                f"{lv!r}: class(es) with fewer than {min_cells} labelled reference cells are {action}: "
                f"{rare_found[lv]}. Lower min_cells to keep them as classes.", FuseMapWarning, stacklevel=2)
            if rare == "other":
                labels.loc[col.isin(list(rare_found[lv])), lv] = OTHER
        usable[lv] = labels[lv].notna().to_numpy() & (
            ~labels[lv].isin(list(rare_found[lv])).to_numpy() if rare == "exclude" else True)
    if not usable[levels[0]].any():
        raise FuseMapInputError(
            f"reference: no cell has a usable {levels[0]!r} label ({unlabelled[levels[0]]} unlabelled, rare "
            f"classes {rare_found[levels[0]]}); lower min_cells or check the labels.")

    rng = np.random.default_rng(seed)
    main = labels[levels[0]].to_numpy(dtype=object)
    held = np.zeros(len(labels), dtype=bool)
    held[usable[levels[0]]] = _stratified_split(main[usable[levels[0]]].astype(str), holdout, rng)
    train = ~held

    kw = dict(method=method, seed=seed, n_neighbors=n_neighbors, max_train_cells=max_train_cells)
    ho_idx = np.flatnonzero(held)
    pred_ho, pred_q, unc_q, classes = {}, {}, {}, {}
    parent_ho = parent_q = parent_train = None
    for li, lv in enumerate(levels):
        y = labels[lv].to_numpy(dtype=object)
        tr_mask = train & usable[lv]
        classes[lv] = sorted(set(y[tr_mask].tolist()))
        p_ho = np.full(len(ho_idx), UNASSIGNED, dtype=object)
        p_q = np.full(len(x_q), UNASSIGNED, dtype=object)
        u_q = np.ones(len(x_q))
        if parent_q is None:
            groups = [(tr_mask, np.ones(len(ho_idx), bool), np.ones(len(x_q), bool))]
        else:
            groups = [(tr_mask & (parent_train == c), parent_ho == c, parent_q == c)
                      for c in sorted(set(parent_q.tolist()) | set(parent_ho.tolist()))]
        for tr_g, ho_g, q_g in groups:
            if not tr_g.any():
                continue  # parent class without labelled sub-level cells: 'unassigned'
            (ph, _), (pq, mq) = fit_predict(x_ref[tr_g], y[tr_g], [x_ref[ho_idx[ho_g]], x_q[q_g]], **kw)
            p_ho[ho_g], p_q[q_g], u_q[q_g] = ph, pq, 1.0 - mq
        pred_ho[lv], pred_q[lv], unc_q[lv] = p_ho, p_q, u_q
        parent_ho, parent_q, parent_train = p_ho, p_q, y

    acc, f1, n_ho = {}, {}, {}
    from sklearn.metrics import accuracy_score, f1_score

    for lv in levels:
        ok = usable[lv][ho_idx]
        n_ho[lv] = int(ok.sum())
        if n_ho[lv]:
            truth = labels[lv].to_numpy(dtype=object)[ho_idx][ok].astype(str)
            pred = pred_ho[lv][ok].astype(str)
            acc[lv] = float(accuracy_score(truth, pred))
            f1[lv] = float(f1_score(truth, pred, average="macro", zero_division=0))
        else:
            acc[lv] = f1[lv] = float("nan")

    # novelty is a property of the cell's state: measured on the cell embedding whatever the
    # classifier uses (the spatial embedding's neighbourhood smoothing makes its densities
    # uncalibrated: 49 % of STARmap BZ14's cells scored above 0.99 there, 2 % on the cell embedding)
    if key == CELL_EMBEDDING:
        ref_cell, q_cell = ref_mats, x_q
    else:
        ref_cell = _embedding_matrices(ref, CELL_EMBEDDING, "reference", "the novelty is measured on it.")
        q_cell = np.concatenate(_embedding_matrices(qry, CELL_EMBEDDING, "query", "the novelty is measured on it."))
    novelty = novelty_scores(ref_cell, q_cell, n_neighbors=n_neighbors, seed=seed, cluster=False).scores
    unassigned = (novelty > novelty_threshold if novelty_threshold is not None
                  else np.zeros(len(x_q), dtype=bool))
    cells = np.concatenate([np.asarray(a.obs_names) for a in qry.adatas])
    frame = {SECTION_COLUMN: np.concatenate([[n] * a.n_obs for n, a in qry.items()])}
    for lv in levels:
        frame[prediction_key(lv)] = np.where(unassigned, UNASSIGNED, pred_q[lv].astype(str))
        frame[uncertainty_key(lv)] = unc_q[lv]
    frame[novelty_key(levels[0])] = novelty
    if unassigned.mean() > 0.5:
        warnings.warn(
            f"{unassigned.sum()} of {len(unassigned)} query cells ({100 * unassigned.mean():.0f} %) are farther "
            f"from the reference than novelty_threshold={novelty_threshold} allows and are 'unassigned'. "
            "So many new cells more likely means the query as a whole is not aligned with the reference "
            "(train longer, check the mapping) than that most of it is new; novelty_threshold=None assigns "
            "every cell.", FuseMapWarning, stacklevel=2)
    predictions = pd.DataFrame(frame, index=pd.Index(cells))
    if write:
        _write(qry, predictions, levels)
    return TransferResult(levels, predictions, acc, f1, n_ho, rare_found, classes, method, embedding,
                          int(len(labels)), unlabelled, novelty_threshold, int(unassigned.sum()))


def _write(query: SectionSet, predictions: pd.DataFrame, levels: Sequence[str]) -> None:
    columns = {}
    for lv in levels:
        columns[prediction_key(lv)] = predictions[prediction_key(lv)].to_numpy(dtype=object)
        columns[uncertainty_key(lv)] = predictions[uncertainty_key(lv)].to_numpy(dtype=float)
    columns[novelty_key(levels[0])] = predictions[novelty_key(levels[0])].to_numpy(dtype=float)
    put_obs(query, columns)
