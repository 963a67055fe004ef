"""Checks run on the input before any work is done.

Every problem is reported with the argument it concerns, what was found and how to fix it; all
problems found are reported together so the user fixes them in one pass.
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._constants import SPATIAL_KEY
from .config import FuseMapConfig
from .errors import FuseMapInputError, FuseMapWarning
from .io.backed import is_out_of_core, iter_row_blocks
from .io.sectionset import NEVER_ZERO, SectionSet
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


def coordinate_free(sections: SectionSet, spatial_key: str = SPATIAL_KEY, no_coordinates: Any = None,
                    argname: str = "no_coordinates") -> list[str]:
    """Names of the sections used without coordinates (single-cell references): those named in
    ``no_coordinates`` and those without ``obsm[spatial_key]``, in section order.

    Such a section's graph is the identity (each cell its own only neighbour), so its spatial
    embedding is a function of its cell embedding alone; it stays out of the spatial-embedding
    discriminator and MMD."""
    if no_coordinates is None:
        named: list[str] = []
    elif isinstance(no_coordinates, str):
        named = [no_coordinates]
    elif isinstance(no_coordinates, (Sequence, set, frozenset, np.ndarray, pd.Index)) \
            and all(isinstance(n, str) for n in no_coordinates):
        named = list(no_coordinates)
    else:
        raise FuseMapInputError(
            f"{argname}: expected a list of section names; found {type(no_coordinates).__name__}. Example: "
            f"{argname}=['scrna_reference'].")
    unknown = [n for n in named if n not in set(sections.names)]
    if unknown:
        raise FuseMapInputError(
            f"{argname}: section(s) {unknown} are not among the sections read ({sections.names}); name "
            "sections by their names (file names, dict keys or values of section_key).")
    return [n for n, a in sections.items() if n in set(named) or spatial_key not in a.obsm]


def validate(sections: SectionSet, config: FuseMapConfig, *, spatial_key: str = SPATIAL_KEY,
             need_spatial: bool = True, no_coordinates: Sequence[str] = (),
             coordinates_elsewhere: bool = False) -> list[str]:
    """Validate all sections; raise one :class:`FuseMapInputError` listing every problem.

    Sections in ``no_coordinates`` (see :func:`coordinate_free`) are not checked for coordinates;
    ``coordinates_elsewhere`` (query mapping: the reference or another query section has them)
    silences the warning that no section has coordinates.
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
        if need_spatial and name not in set(no_coordinates):
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
    if need_spatial and names and set(names) <= set(no_coordinates) and not coordinates_elsewhere:
        msg = (f"no section has coordinates (none holds obsm[{spatial_key!r}], or all are named in "
               "no_coordinates): the spatial embeddings are functions of the cell embeddings alone. Put "
               f"coordinates in obsm[{spatial_key!r}] of the spatial sections.")
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


# -- which genes each section measured ------------------------------------------------------------------
ZERO_EXPECTED_CELLS = 10
"""A gene all zero in a section is reported as probably unmeasured when another section of the same
table detects it in enough of its cells that at least this many would be expected here."""


def check_panels_form(panels: Any, argname: str = "panels") -> dict[str, list[str]] | None:
    """``panels`` as a dict section name -> gene symbols, or a clear error (before any data is read)."""
    if panels is None:
        return None
    if not isinstance(panels, Mapping):
        raise FuseMapInputError(
            f"{argname}: expected a mapping of section name -> list of the genes it measured; found "
            f"{type(panels).__name__}. Example: panels={{'slice1': ['Gad1', 'Sst'], 'slice2': ['Gad1', 'Vip']}}."
        )
    out, bad = {}, []
    for name, genes in panels.items():
        if isinstance(genes, str) or not isinstance(genes, (Sequence, np.ndarray, pd.Index)) \
                or not all(isinstance(g, str) for g in genes):
            bad.append(str(name))
        else:
            out[str(name)] = [str(g) for g in genes]
    if bad:
        raise FuseMapInputError(
            f"{argname}: the entries for section(s) {bad} are not lists of gene symbols (strings); give "
            "each section the list of genes it measured."
        )
    empty = [n for n, g in out.items() if not g]
    if empty:
        raise FuseMapInputError(f"{argname}: section(s) {empty} have an empty gene list; every section "
                                "needs the genes it measured (or leave it out to keep all its genes).")
    return out


def resolve_panels(panels: Any, sections: SectionSet, gene_case: str, argname: str = "panels"
                   ) -> list[list[str]] | None:
    """Each section's measured genes, spelled as in its table (None when ``panels`` is None).

    Sections not named in ``panels`` keep all their genes; genes of a named section outside its
    list are left out of its panel, as unmeasured (``NEVER_ZERO``)."""
    panels = check_panels_form(panels, argname)
    if panels is None:
        return None
    problems = []
    unknown = [n for n in panels if n not in set(sections.names)]
    if unknown:
        problems.append(f"section(s) {unknown} are not among the sections read ({sections.names}); "
                        "use the section names (file names, dict keys or values of section_key)")
    out = []
    for name, adata in sections.items():
        symbols = [str(g) for g in adata.var_names]
        if name not in panels:
            out.append(symbols)
            continue
        table = {gene_key(s, gene_case): s for s in symbols}
        wanted = list(dict.fromkeys(gene_key(g, gene_case) for g in panels[name]))
        absent = [g for g, k in zip(panels[name], (gene_key(g, gene_case) for g in panels[name])) if k not in table]
        if absent:
            problems.append(
                f"section {name!r}: {len(absent)} gene(s) of its list are not in its table (e.g. "
                f"{absent[:5]}; genes NaN in every cell of a section were already left out as unmeasured); "
                "list only genes that are columns of the table"
                + (", or set gene_case='ignore'" if gene_case == "exact" else "")
                + f" (genes outside a section's list are unmeasured there; {NEVER_ZERO})")
            continue
        out.append([table[k] for k in wanted])
    if problems:
        raise FuseMapInputError(f"{argname}: " + "; ".join(problems) + ".")
    if len(out) > 1:
        keys = [{gene_key(g, gene_case) for g in p} for p in out]
        alone = [n for i, n in enumerate(sections.names)
                 if not keys[i] & set().union(*(k for j, k in enumerate(keys) if j != i))]
        if alone:
            raise FuseMapInputError(
                f"{argname}: section(s) {alone} share no gene of their panel with any other section, so "
                "nothing ties them to the others; check the gene lists.")
    return out


def _nonzero_cells(m) -> np.ndarray | None:
    """Cells with a non-zero value, per column (None for matrices on disk)."""
    if is_out_of_core(m):
        return None
    if sp.issparse(m):
        c = sp.csr_matrix(m)
        return np.bincount(c.indices[np.asarray(c.data) != 0], minlength=c.shape[1])
    a = np.asarray(m)
    return (np.nan_to_num(a) != 0).sum(0)


def warn_zero_genes(sections: SectionSet, panels: Sequence[Sequence[str]] | None, layer: str | None,
                    gene_case: str) -> list[str]:
    """Warn about genes that are zero in every cell of a section although another section cut from
    the same table (same columns) detects them: such columns are usually the zero fill of a table
    joining panels, not measurements. They stay in the panel (measured, silent) unless ``panels``
    marks them unmeasured; the warnings issued are returned."""
    groups: dict[tuple, list[int]] = {}
    for i, adata in enumerate(sections.adatas):
        groups.setdefault(tuple(map(str, adata.var_names)), []).append(i)
    issued = []
    for columns, members in groups.items():
        if len(members) < 2:
            continue
        counts = {}
        for i in members:
            adata = sections.adatas[i]
            try:
                nz = _nonzero_cells(expression_matrix(adata, layer, "section"))
            except FuseMapInputError:
                nz = None
            if nz is None:
                break
            in_panel = np.ones(len(columns), dtype=bool) if panels is None else np.isin(
                [gene_key(g, gene_case) for g in columns], [gene_key(g, gene_case) for g in panels[i]])
            counts[i] = (nz, adata.n_obs, in_panel)
        else:
            for i in members:
                nz, n, in_panel = counts[i]
                detect = np.max([np.where(counts[j][2], counts[j][0] / max(counts[j][1], 1), 0.0)
                                 for j in members if j != i], axis=0)
                flagged = np.flatnonzero(in_panel & (nz == 0) & (detect * n >= ZERO_EXPECTED_CELLS))
                if len(flagged):
                    name = sections.names[i]
                    msg = (f"{len(flagged)} gene(s) are probably not measured in section "
                           f"{name!r} (all zero in its {n} cells while another section of the same table "
                           f"detects them), e.g. {[columns[g] for g in flagged[:5]]}. They are used as "
                           "measured and silent; pass panels={section: measured genes} (command line: "
                           f"--panels FILE.json) to mark them unmeasured ({NEVER_ZERO}).")
                    warnings.warn(msg, FuseMapWarning, stacklevel=3)
                    issued.append(msg)
    return issued
