"""Shared input handling of the analyses: sections with embeddings, pooled cells, gene embeddings.

Every analysis accepts what an integration leaves behind: AnnData sections (a list, a dict, one
AnnData with a section column, or a folder of ``.h5ad`` files written by ``fusemap integrate``)
carrying ``obsm['X_fusemap_cell']`` / ``obsm['X_fusemap_spatial']``, and for gene analyses a
gene embedding (a DataFrame, a FuseMap model, a saved model directory or an integrate output).
Results are computed on the pooled cells and written back to the objects the user holds.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import anndata as ad
import numpy as np
import pandas as pd

from .._constants import GENE_EMBEDDING_VARM, RUN_RECORD, SECTION_COLUMN, SPATIAL_KEY
from ..errors import FuseMapInputError, FuseMapWarning
from ..io.sections import read_sections
from ..io.sectionset import SectionSet


@dataclass
class Pooled:
    """All cells of a set of sections, in section order, with a unique ``'<section>:<cell>'`` id."""

    sections: SectionSet
    index: pd.Index
    section: np.ndarray  # section name of every pooled cell
    offsets: np.ndarray  # pooled row where each section starts (len = n_sections + 1)

    @property
    def n_obs(self) -> int:
        return len(self.index)

    def rows(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def obsm(self, key: str, argname: str = "key") -> np.ndarray:
        """``obsm[key]`` of every section stacked (clear error naming the sections without it)."""
        missing = [n for n, a in self.sections.items() if key not in a.obsm]
        if missing:
            have = sorted(self.sections.adatas[0].obsm.keys())
            raise FuseMapInputError(
                f"{argname}={key!r}: sections {missing[:5]} have no obsm[{key!r}] (the first section "
                f"has {have}). Run fusemap.integrate (or model.write()) on these sections first, or "
                "pass the obsm key that holds the embedding."
            )
        mats = [np.asarray(a.obsm[key], dtype=np.float32) for a in self.sections.adatas]
        widths = {m.shape[1] for m in mats}
        if len(widths) > 1:
            raise FuseMapInputError(
                f"{argname}={key!r}: sections disagree on the width of obsm[{key!r}] ({sorted(widths)}); "
                "they must come from one integration."
            )
        return np.concatenate(mats) if mats else np.zeros((0, 0), dtype=np.float32)

    def obs(self, column: str, argname: str, allow_missing_sections: bool = False) -> pd.Series:
        """``obs[column]`` of every section as strings (NaN where a section lacks the column)."""
        parts, missing = [], []
        for name, a in self.sections.items():
            if column in a.obs:
                col = a.obs[column]
                vals = col.astype(object).where(col.notna(), None).to_numpy()
                parts.append(np.array([None if v is None else str(v) for v in vals], dtype=object))
            else:
                missing.append(name)
                parts.append(np.full(a.n_obs, None, dtype=object))
        if missing and (not allow_missing_sections or len(missing) == len(self.sections)):
            cols = list(self.sections.adatas[0].obs.columns)
            raise FuseMapInputError(
                f"{argname}={column!r} is not an obs column of sections {missing[:5]} (the first section "
                f"has {cols}). Pass the obs column that holds the labels."
            )
        return pd.Series(np.concatenate(parts) if parts else [], index=self.index, dtype=object)

    def coordinate_free(self, spatial_key: str = SPATIAL_KEY) -> list[str]:
        """Sections without coordinates (single-cell references): those without
        ``obsm[spatial_key]`` and those the integration used without them (run record)."""
        out = []
        for name, a in self.sections.items():
            record = a.uns.get(RUN_RECORD, {})
            marked = json.loads(record.get("no_coordinates_json", "[]")) if isinstance(record, dict) else []
            if spatial_key not in a.obsm or name in marked:
                out.append(name)
        return out

    def with_coordinates(self, what: str, spatial_key: str = SPATIAL_KEY) -> np.ndarray:
        """Which pooled cells belong to sections with coordinates; ``what`` (a phrase naming the
        analysis) leaves the others out with a warning naming them, and fails when none is left."""
        free = self.coordinate_free(spatial_key)
        if free and len(free) == len(self.sections):
            raise FuseMapInputError(
                f"{what} needs cell coordinates, and no section has them (sections {free[:5]} have no "
                f"obsm[{spatial_key!r}] or were integrated as single-cell references). Pass sections with "
                "coordinates, or name their obsm key with spatial_key.")
        if free:
            warnings.warn(f"sections {free} have no coordinates (single-cell references); {what} leaves "
                          "their cells out.", FuseMapWarning, stacklevel=3)
        return ~np.isin(self.section, free)

    def coordinates(self, spatial_key: str = SPATIAL_KEY) -> np.ndarray:
        """Coordinates of every pooled cell; NaN for cells of sections without coordinates."""
        free = set(self.coordinate_free(spatial_key))
        mats = [np.full((a.n_obs, 2), np.nan) if n in free else np.asarray(a.obsm[spatial_key], dtype=np.float64)
                for n, a in self.sections.items()]
        widths = {m.shape[1] for m in mats}
        if min(widths, default=2) < 2:
            raise FuseMapInputError(f"spatial_key={spatial_key!r}: coordinates need 2 columns, found {min(widths)}.")
        return np.concatenate([m[:, :2] for m in mats]) if mats else np.zeros((0, 2))

    def write_obs(self, key: str, values: pd.Series | np.ndarray, categorical: bool = True) -> None:
        """Write a pooled per-cell result to ``obs[key]`` of each section (and of the parent AnnData)."""
        values = np.asarray(values, dtype=object)
        cats = sorted({v for v in values if v is not None}, key=_natural_key) if categorical else None
        for i, a in enumerate(self.sections.adatas):
            part = values[self.rows(i)]
            a.obs[key] = pd.Categorical(part, categories=cats) if categorical else part
        parent = self.sections.parent
        if parent is not None and self.sections.parent_rows:
            full = np.full(parent.n_obs, None, dtype=object)
            for i, rows in enumerate(self.sections.parent_rows):
                full[rows] = values[self.rows(i)]
            parent.obs[key] = pd.Categorical(full, categories=cats) if categorical else full


def _natural_key(v: str):
    """Sort '2' before '10' (cluster names) and names within a parent region the same way."""
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(v))]


def pooled(data: Any, section_key: str | None = None, argname: str = "data") -> Pooled:
    """Pool the sections of ``data``; one AnnData with several ``obs['section']`` values is split by it."""
    if isinstance(data, Pooled):
        return data
    if hasattr(data, "sections") and isinstance(getattr(data, "sections"), SectionSet):
        data = data.sections  # a FuseMap model: its own sections
        if len(data) == 0:
            raise FuseMapInputError(
                f"{argname}: the model holds no sections (it was loaded without data). Pass the sections, "
                "or the folder `fusemap integrate` wrote (DIR/sections)."
            )
    if isinstance(data, (str, os.PathLike)) and (Path(data) / "sections").is_dir():
        data = Path(data) / "sections"  # the output folder of `fusemap integrate`
    if (isinstance(data, ad.AnnData) and section_key is None and SECTION_COLUMN in data.obs
            and data.obs[SECTION_COLUMN].nunique() > 1):
        section_key = SECTION_COLUMN
    sections = read_sections(data, section_key, argname=argname)
    ids, sec = [], []
    for name, a in sections.items():
        ids.extend(f"{name}:{c}" for c in a.obs_names)
        sec.append(np.full(a.n_obs, name, dtype=object))
    offsets = np.concatenate([[0], np.cumsum([a.n_obs for a in sections.adatas])])
    return Pooled(sections, pd.Index(ids, name="cell"), np.concatenate(sec) if sec else np.array([]),
                  offsets.astype(int))


def gene_embedding(source: Any, argname: str = "gene_embedding") -> pd.DataFrame:
    """The genes x latent gene embedding from any object that holds one.

    The gene analyses (:func:`gene_modules`, :func:`select_panel`, ...) accept all these forms
    through this function, so a gene embedding can be taken from whatever an integration left.

    Parameters
    ----------
    source
        A DataFrame (genes as index), a FuseMap model, a saved model directory, the output folder
        of ``fusemap integrate`` (its ``gene_embedding.csv``), a ``gene_embedding.csv`` file, or
        AnnData section(s) with ``varm['fusemap_gene_embedding']`` (union of their genes, first
        section first).
    argname
        Argument name used in error messages.

    Returns
    -------
    pandas.DataFrame
        Genes (index ``gene``) x latent dimensions, float64.

    Raises
    ------
    FuseMapInputError
        When nothing can be read, gene names repeat, or values are not finite.

    Examples
    --------
    >>> emb = fusemap.tl.gene_embedding("run/")  # the folder `fusemap integrate` wrote  # doctest: +SKIP
    >>> emb = fusemap.tl.gene_embedding(model)  # doctest: +SKIP
    """
    if isinstance(source, pd.DataFrame):
        df = source
    elif hasattr(source, "gene_embedding") and callable(source.gene_embedding):
        df = source.gene_embedding()
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_file() and path.suffix == ".csv":
            df = pd.read_csv(path, index_col=0)
        elif (path / "gene_embedding.csv").is_file():
            df = pd.read_csv(path / "gene_embedding.csv", index_col=0)
        elif path.is_dir():
            from ..model import FuseMap

            df = FuseMap.load(path, device="cpu").gene_embedding()
        else:
            raise FuseMapInputError(
                f"{argname}={str(path)!r} does not exist. Pass a saved model directory, the output folder "
                "of `fusemap integrate`, a gene_embedding.csv file or a DataFrame."
            )
    elif isinstance(source, ad.AnnData) or (isinstance(source, (list, tuple)) and source
                                             and all(isinstance(a, ad.AnnData) for a in source)):
        adatas = [source] if isinstance(source, ad.AnnData) else list(source)
        parts = []
        for i, a in enumerate(adatas):
            if GENE_EMBEDDING_VARM not in a.varm:
                raise FuseMapInputError(
                    f"{argname}[{i}] has no varm[{GENE_EMBEDDING_VARM!r}]; pass sections written by "
                    "fusemap.integrate / model.write(), or the model itself."
                )
            m = np.asarray(a.varm[GENE_EMBEDDING_VARM])
            parts.append(pd.DataFrame(m, index=list(map(str, a.var_names)),
                                      columns=[f"latent_{j}" for j in range(m.shape[1])]))
        df = pd.concat(parts)
        df = df[~df.index.duplicated(keep="first")]
    else:
        raise FuseMapInputError(
            f"{argname}: cannot read a gene embedding from a {type(source).__name__}. Pass a DataFrame "
            "(genes x latent), a FuseMap model, a saved model directory or AnnData with "
            f"varm[{GENE_EMBEDDING_VARM!r}]."
        )
    if df.index.has_duplicates:
        dup = list(df.index[df.index.duplicated()][:5])
        raise FuseMapInputError(f"{argname}: duplicate gene names {dup}; each gene needs one row.")
    values = df.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise FuseMapInputError(f"{argname}: the gene embedding contains NaN or infinite values.")
    return pd.DataFrame(values, index=pd.Index(list(map(str, df.index)), name="gene"), columns=df.columns)


def labelled(values: pd.Series) -> np.ndarray:
    """Which entries carry a label (not missing, not an empty or 'nan' string)."""
    v = values.astype(object)
    return np.array([x is not None and not (isinstance(x, float) and np.isnan(x))
                     and str(x) not in ("", "nan", "NaN", "None") for x in v], dtype=bool)


def check_positive(value: float, argname: str, integer: bool = False, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if integer and int(value) != value:
        ok = False
    if not ok or not np.isfinite(value):
        kind = "an integer" if integer else "a number"
        bound = ">= 0" if allow_zero else "> 0"
        raise FuseMapInputError(f"{argname}={value!r}: must be {kind} {bound}.")


def expression_frame(expression: Any, genes: Sequence[str] | None = None, layer: str | None = None,
                     argname: str = "expression") -> ad.AnnData:
    """One AnnData of expression: a single AnnData as is; sections are pooled on their common genes."""
    if isinstance(expression, ad.AnnData):
        return expression
    sections = read_sections(expression, argname=argname)
    common = list(map(str, sections.adatas[0].var_names))
    for a in sections.adatas[1:]:
        have = set(map(str, a.var_names))
        common = [g for g in common if g in have]
    if not common:
        raise FuseMapInputError(
            f"{argname}: the sections share no gene. Pass imputed expression over all cells (one AnnData) "
            "or one section."
        )
    parts = []
    for name, a in sections.items():
        b = a[:, common].copy()
        if layer is not None:
            b.X = b.layers[layer]
        b.obs_names = [f"{name}:{c}" for c in a.obs_names]
        b.obs[SECTION_COLUMN] = name
        parts.append(b)
    return ad.concat(parts, merge="same")
