"""Checks run on the input before any work is done.

Every problem is reported with the argument it concerns, what was found and how to fix it; all
problems found are reported together so the user fixes them in one pass.
"""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import scipy.sparse as sp

from ._constants import SPATIAL_KEY
from .config import FuseMapConfig
from .errors import FuseMapInputError, FuseMapWarning
from .io.backed import is_out_of_core, iter_row_blocks
from .io.sectionset import SectionSet
from .vocabulary import gene_key

MIN_CELLS = 10
"""Fewest cells a section may have: enough for a validation split and a Delaunay graph."""


def expression_matrix(adata, layer: str | None, where: str):
    """The matrix holding the counts (``X`` or ``layers[layer]``), or a clear error."""
    if layer is None:
        if adata.X is None:
            raise FuseMapInputError(f"{where}.X is empty; pass counts in X or name a layer with layer=.")
        return adata.X
    if layer not in adata.layers:
        raise FuseMapInputError(
            f"layer={layer!r} is not in {where}.layers (layers: {list(adata.layers.keys())}). "
            "Name the layer that holds raw counts, or layer=None to use X."
        )
    return adata.layers[layer]


def _values(m) -> np.ndarray:
    """The stored values of a dense or sparse matrix (zeros of a sparse matrix are implicit)."""
    if sp.issparse(m):
        return np.asarray(m.data)
    if hasattr(m, "compute"):  # dask
        m = m.compute()
    return np.asarray(m).ravel()


def check_counts_chunked(m, where: str, normalized: bool, chunk_rows: int | None = None) -> list[str]:
    """Input checks of :func:`check_counts`, a block of rows at a time.

    Stops at the first block with a problem and names its rows (fix those, then run again).
    """
    for start, block in iter_row_blocks(m, chunk_rows):
        problems = check_counts(block, f"{where} rows {start}-{start + block.shape[0] - 1}", normalized)
        if problems:
            return problems
    return []


def check_counts(m, where: str, normalized: bool) -> list[str]:
    if is_out_of_core(m):  # on disk: check a block of rows at a time
        return check_counts_chunked(m, where, normalized)
    problems = []
    v = _values(m)
    if v.size == 0:
        return problems
    if not np.issubdtype(v.dtype, np.number):
        return [f"{where} has non-numeric dtype {v.dtype}; expression must be numeric."]
    n_bad = int((~np.isfinite(v)).sum())
    if n_bad:
        problems.append(
            f"{where} holds {n_bad} NaN/inf value(s); replace them (e.g. with 0) or drop those cells."
        )
        v = v[np.isfinite(v)]
    n_neg = int((v < 0).sum())
    if n_neg:
        hint = (
            "FuseMap reconstructs non-negative log-expression; pass uncentred normalised values."
            if normalized
            else "pass raw counts (e.g. layer='counts'); centred or scaled data cannot be used."
        )
        problems.append(f"{where} holds {n_neg} negative value(s) (min {v.min():.3g}); {hint}")
    if not normalized:
        frac = v - np.round(v)
        n_frac = int((np.abs(frac) > 1e-6).sum())
        if n_frac:
            example = v[np.abs(frac) > 1e-6][:3]
            problems.append(
                f"{where} holds {n_frac} non-integer value(s) (e.g. {np.round(example, 4).tolist()}) "
                "where raw counts are expected. Put raw counts in X or name their layer with "
                "layer='counts'; if the values are already normalised and log-transformed, pass "
                "normalized=True."
            )
    return problems


COUNTS_LIKE_MAX = 30.0
"""Whole-number expression above this passed as normalised is most likely raw counts (log1p of a
cell's whole library at 10^4 is 9.2)."""


def _counts_maximum(m) -> float | None:
    """The maximum when ``m`` (or its first row block, on disk) is whole numbers above
    :data:`COUNTS_LIKE_MAX`; else None."""
    if is_out_of_core(m):
        m = next(iter_row_blocks(m))[1]
    v = _values(m)
    if v.size == 0 or not np.issubdtype(v.dtype, np.number):
        return None
    top = float(v.max())
    whole = np.all(v == np.round(v))
    return top if whole and top > COUNTS_LIKE_MAX else None


def validate(sections: SectionSet, config: FuseMapConfig, *, spatial_key: str = SPATIAL_KEY,
             need_spatial: bool = True) -> list[str]:
    """Validate all sections; raise one :class:`FuseMapInputError` listing every problem.

    Returns the warnings issued (so callers and tests can inspect them).
    """
    pp = config.preprocess
    problems: list[str] = []
    issued: list[str] = []
    counts_like: list[str] = []

    names = sections.names
    dup_sections = sorted(n for n, c in Counter(names).items() if c > 1)
    if dup_sections:
        problems.append(
            f"section names {dup_sections} occur more than once; every section needs a unique name "
            "(rename the files, the dict keys or the values of section_key)."
        )

    panels: list[set[str]] = []
    for name, adata in sections.items():
        where = f"section {name!r}"
        if adata.n_obs < MIN_CELLS:
            problems.append(
                f"{where} has {adata.n_obs} cell(s); at least {MIN_CELLS} are needed to split off "
                "validation cells and build a spatial graph. Merge it with another section or drop it."
            )
        if adata.n_vars == 0:
            problems.append(f"{where} has no genes.")
        # genes
        symbols = [str(g) for g in adata.var_names]
        keys = [gene_key(s, pp.gene_case) for s in symbols]
        counts = Counter(keys)
        dups = sorted({s for s, k in zip(symbols, keys) if counts[k] > 1})
        if dups:
            case = " (compared ignoring case; pass gene_case='exact' to match exactly)" if pp.gene_case == "ignore" else ""
            problems.append(
                f"{where}: gene symbols {dups[:10]} occur more than once{case}. Make var_names unique "
                "(e.g. sum duplicated genes, or adata.var_names_make_unique())."
            )
        panels.append(set(keys))
        # cells
        if not adata.obs_names.is_unique:
            ndup = int(adata.obs_names.duplicated().sum())
            problems.append(
                f"{where}: {ndup} duplicate cell name(s) in obs_names (e.g. "
                f"{adata.obs_names[adata.obs_names.duplicated()][:3].tolist()}); call "
                "adata.obs_names_make_unique()."
            )
        # coordinates
        if need_spatial:
            if spatial_key not in adata.obsm:
                problems.append(
                    f"{where}: obsm[{spatial_key!r}] is missing; put each cell's 2-D coordinates "
                    f"there (adata.obsm[{spatial_key!r}] = coords, shape n_cells x 2)."
                )
            else:
                xy = np.asarray(adata.obsm[spatial_key])
                if xy.ndim != 2 or xy.shape[1] != 2:
                    problems.append(
                        f"{where}: obsm[{spatial_key!r}] has shape {xy.shape}; 2-D coordinates "
                        f"(n_cells x 2) are expected. For 3-D data pass obsm[{spatial_key!r}][:, :2] "
                        "per plane."
                    )
                elif not np.issubdtype(xy.dtype, np.number):
                    problems.append(f"{where}: obsm[{spatial_key!r}] is not numeric ({xy.dtype}).")
                else:
                    nbad = int((~np.isfinite(xy)).any(axis=1).sum())
                    if nbad:
                        problems.append(
                            f"{where}: obsm[{spatial_key!r}] has NaN/inf coordinates for {nbad} "
                            "cell(s); drop those cells or fix their coordinates."
                        )
        # expression
        try:
            m = expression_matrix(adata, pp.layer, where)
        except FuseMapInputError as exc:
            problems.append(str(exc))
        else:
            problems.extend(check_counts(m, f"{where} ({'X' if pp.layer is None else 'layer ' + repr(pp.layer)})",
                                         pp.normalized))
            if pp.normalized and not problems:
                top = _counts_maximum(m)
                if top is not None:
                    counts_like.append(f"{name!r} (max {top:g})")

    if len(panels) > 1:
        for i, (name, panel) in enumerate(zip(names, panels)):
            others = set().union(*(p for j, p in enumerate(panels) if j != i))
            if panel and not (panel & others):
                problems.append(
                    f"section {name!r} shares no gene with any other section, so nothing ties it to "
                    "the others. Check that gene symbols use the same naming (symbols, not Ensembl "
                    "IDs; gene_case='ignore' matches across case) or drop the section."
                )

    if problems:
        raise FuseMapInputError(
            "invalid input (" + str(len(problems)) + " problem(s)):\n  - " + "\n  - ".join(problems)
        )

    if counts_like:
        msg = (f"normalized=True, but section(s) {', '.join(counts_like)} hold whole numbers far above "
               "log-normalised values (raw counts?). They are used as given; drop normalized=True if "
               "they are counts, so fusemap normalises them.")
        warnings.warn(msg, FuseMapWarning, stacklevel=3)
        issued.append(msg)
    if len(names) == 1 and config.train.adversarial:
        msg = (
            "only one section was given: there is nothing to align, so the adversarial section "
            "discriminators are switched off. Pass several sections to integrate them."
        )
        warnings.warn(msg, FuseMapWarning, stacklevel=3)
        issued.append(msg)
    return issued
