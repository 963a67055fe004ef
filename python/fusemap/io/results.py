"""The one results writer: embeddings into the sections' AnnData objects, and sections to disk.

``FuseMap.write`` and ``map_query`` put results into memory through :func:`put_embeddings`;
the command line saves them once through :func:`save_sections` (``.h5ad`` files, or the
SpatialData store the sections came from).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from .._constants import CELL_EMBEDDING, GENE_EMBEDDING_VARM, RUN_RECORD, SPATIAL_EMBEDDING
from ..errors import FuseMapInputError
from .files import atomic_file, safe_filename
from .sectionset import SectionSet


def put_embeddings(sections: SectionSet, embeddings: Mapping[str, tuple[np.ndarray, np.ndarray]],
                   genes: np.ndarray, gene_rows: Callable[[Iterable[str]], np.ndarray], record: dict) -> None:
    """Write cell and spatial embeddings into ``obsm``, gene embedding rows into ``varm`` and the
    run record into ``uns`` of each section (and of the AnnData they were split from, in its cell
    order); sections read from a SpatialData object also get them in its tables (in memory).

    ``embeddings[name] = (cell, spatial)``; ``gene_rows(symbols)`` gives rows of ``genes``.
    """
    def rows_of(symbols) -> np.ndarray:  # genes no section measured (outside every panel): NaN rows
        pos = gene_rows(symbols)
        out = genes[np.maximum(pos, 0)].astype(np.float32, copy=True)
        out[pos < 0] = np.nan
        return out

    for name, adata in sections.items():
        cell, spatial = embeddings[name]
        adata.obsm[CELL_EMBEDDING] = cell
        adata.obsm[SPATIAL_EMBEDDING] = spatial
        adata.varm[GENE_EMBEDDING_VARM] = rows_of(map(str, adata.var_names))
        adata.uns[RUN_RECORD] = record
    parent = sections.parent
    if parent is not None:
        k = genes.shape[1]
        for key, part in ((CELL_EMBEDDING, 0), (SPATIAL_EMBEDDING, 1)):
            full = np.zeros((parent.n_obs, k), dtype=np.float32)
            for name, rows in zip(sections.names, sections.parent_rows):
                full[rows] = embeddings[name][part]
            parent.obsm[key] = full
        parent.varm[GENE_EMBEDDING_VARM] = rows_of(map(str, parent.var_names))
        parent.uns[RUN_RECORD] = record
    if sections.source is not None:  # e.g. the annotating tables of a SpatialData object
        sections.source.write_back(sections)


def put_obs(sections: SectionSet, columns: Mapping[str, np.ndarray]) -> None:
    """Write per-cell columns (cells of all sections stacked, in section order) into ``obs`` of each
    section, of the AnnData they were split from (in its cell order; cells outside every section get
    NaN / missing) and of a SpatialData object's tables. String columns become categorical."""
    import pandas as pd

    def as_column(values):
        values = np.asarray(values)
        return pd.Categorical(values) if values.dtype.kind in "OUS" else values

    bounds = np.cumsum([0] + [a.n_obs for a in sections.adatas])
    for i, adata in enumerate(sections.adatas):
        for key, values in columns.items():
            adata.obs[key] = as_column(np.asarray(values)[bounds[i]:bounds[i + 1]])
    parent = sections.parent
    if parent is not None:
        for key, values in columns.items():
            values = np.asarray(values)
            text = values.dtype.kind in "OUS"
            full = np.empty(parent.n_obs, dtype=object) if text else np.full(parent.n_obs, np.nan)
            for i, rows in enumerate(sections.parent_rows):
                full[rows] = values[bounds[i]:bounds[i + 1]]
            parent.obs[key] = as_column(full)
    if sections.source is not None:
        sections.source.write_back(sections)


def output_store_name(sections: SectionSet) -> str:
    path = sections.source.path
    return path.name if path is not None and path.suffix == ".zarr" else "results.zarr"


def save_sections(sections: SectionSet, folder: Path, *, in_place: bool = False) -> Path:
    """Save sections holding results: one ``.h5ad`` per section in ``folder`` or, for sections read
    from a SpatialData store, the store with its result tables (a copy in ``folder``, or the input
    store itself with ``in_place``). Returns where they went."""
    folder = Path(folder)
    src = sections.source
    if src is None:
        if in_place:
            raise FuseMapInputError("--in-place applies to a SpatialData .zarr input only; the inputs are .h5ad.")
        for name, adata in sections.items():
            with atomic_file(folder / f"{safe_filename(name)}.h5ad") as tmp:
                adata.write_h5ad(tmp)
        return folder
    from .spatialdata import save_spatialdata

    # the results are in the tables already (put there in memory when they were computed)
    changed = sorted({src.rows[n][0] for n in sections.names if n in src.rows})
    if in_place:
        if src.path is None:
            raise FuseMapInputError("--in-place: the SpatialData object was not read from a store.")
        return save_spatialdata(src.sdata, src.path, tables=changed, in_place=True)
    # the folder is fusemap's partial output: a store left there by an interrupted run is replaced
    return save_spatialdata(src.sdata, folder / output_store_name(sections), tables=changed, overwrite=True)
