"""Command-line helpers for SpatialData zarr stores (used by ``fusemap integrate`` and the query commands).

A command given one ``.zarr`` store reads its sections from the store's annotating table(s)
(``--table``, ``--coordinate-system``) and writes a copy of the store with the results in those
tables under its ``--out`` directory (same file name as the input store). The input store changes
only with ``--in-place``, and then only the tables holding results are replaced.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import FuseMapInputError
from .sections import SectionSet


def add_store_args(p: argparse.ArgumentParser) -> None:
    """The options of a command that accepts a SpatialData store."""
    g = p.add_argument_group("SpatialData store input (a .zarr path in place of .h5ad files)")
    g.add_argument("--table", action="append", dest="table", metavar="NAME",
                   help="table to read sections from (repeatable; default every table annotating shapes, "
                        "points or labels)")
    g.add_argument("--coordinate-system", dest="coordinate_system", default=None, metavar="CS",
                   help="coordinate system of element centroids when a table has no obsm['spatial'] "
                        "(default global)")
    g.add_argument("--in-place", action="store_true", dest="in_place",
                   help="write results into the input store's tables instead of a copy under --out")


def store_among(paths: Sequence[str | os.PathLike], argname: str = "SECTION") -> Path | None:
    """The one SpatialData store among ``paths``, None when there is none; mixing is an error."""
    from .spatialdata_io import is_store

    stores = [Path(p) for p in paths if is_store(p)]
    if not stores:
        return None
    if len(paths) > 1:
        raise FuseMapInputError(
            f"{argname}: got {len(paths)} inputs including the SpatialData store(s) {[str(s) for s in stores]}; "
            "pass one .zarr store alone (put all sections into its tables) or only .h5ad files."
        )
    return stores[0]


def check_store_options(args, store: Path | None) -> None:
    """Store-only options given without a store are an error, before any work."""
    if store is not None:
        return
    given = [f for f, v in (("--table", getattr(args, "table", None)),
                            ("--coordinate-system", getattr(args, "coordinate_system", None)),
                            ("--in-place", getattr(args, "in_place", False))) if v]
    if given:
        raise FuseMapInputError(
            f"{', '.join(given)} only apply to a SpatialData .zarr input; the inputs are .h5ad files. "
            "Drop the option(s) or pass a .zarr store."
        )


def read_store_sections(store: Path, args, section_key: str | None = None) -> SectionSet:
    from .spatialdata_io import sections_from_spatialdata

    return sections_from_spatialdata(store, section_key, table=getattr(args, "table", None),
                                     coordinate_system=getattr(args, "coordinate_system", None) or "global",
                                     argname="SECTION")


def output_store_name(sections: SectionSet) -> str:
    path = sections.source.path
    return path.name if path is not None and path.suffix == ".zarr" else "results.zarr"


def write_store_results(sections: SectionSet, outdir, *, in_place: bool = False) -> Path:
    """Save the tables that hold results: into the input store (``in_place``) or a copy under ``outdir``.

    ``outdir`` is a :class:`fusemap.cli.OutputDir`; the copy is assembled inside its partial
    directory and becomes visible when the whole output is committed.
    """
    from .spatialdata_io import save_spatialdata, write_results

    src = sections.source
    changed = write_results(sections)
    if in_place:
        if src.path is None:
            raise FuseMapInputError("--in-place: the SpatialData object was not read from a store.")
        return save_spatialdata(src.sdata, src.path, tables=changed, in_place=True)
    # the partial output directory is ours: a store left there by an interrupted run is replaced
    return save_spatialdata(src.sdata, outdir.path(output_store_name(sections)), tables=changed, overwrite=True)


def read_inputs(data, section_key: str | None = None, *, table=None, coordinate_system: str | None = None,
                argname: str = "SECTION") -> SectionSet:
    """:func:`fusemap.sections.as_sections`, also taking a one-element list holding a ``.zarr`` store
    (as argparse gives it), read with the store options."""
    from .sections import as_sections
    from .spatialdata_io import sections_from_spatialdata

    if isinstance(data, (list, tuple)) and data and all(isinstance(d, (str, os.PathLike)) for d in data):
        store = store_among(data, argname)
        if store is not None:
            data = store
    if isinstance(data, (str, os.PathLike)) and _is_store(data):
        return sections_from_spatialdata(data, section_key, table=table,
                                         coordinate_system=coordinate_system or "global", argname=argname)
    return as_sections(data, section_key, argname=argname)


def _is_store(path) -> bool:
    from .spatialdata_io import is_store

    return is_store(path)


IMPUTED_TABLE = "fusemap_imputed"
"""Name of the table that ``fusemap impute`` adds to a SpatialData store."""


def write_imputed_store(model, sections: SectionSet, genes, *, method: str, chunk_size: int,
                        out: str | os.PathLike | None, in_place: bool = False, overwrite: bool = False,
                        table_name: str = IMPUTED_TABLE) -> Path:
    """Impute into a new table annotating the sections' elements; save a copy of the store or in place.

    The imputed matrix is held in memory (cells x genes); stream it into an ``.h5ad`` instead
    (``--out OUT.h5ad``) when it would not fit.
    """
    from .imputation import IMPUTATION_UNS, impute
    from .spatialdata_io import add_imputed_table, save_spatialdata

    src = sections.source
    if not in_place:
        out = Path(out)
        if out.exists() and not overwrite:
            raise FuseMapInputError(f"--out {str(out)!r} already exists; pass --overwrite to replace it.")
    result = impute(model, sections, genes, method=method, chunk_size=chunk_size)
    x = np.asarray(result.X)
    blocks, start = {}, 0
    for name, adata in sections.items():  # the result's rows follow the sections' order
        blocks[name] = x[start:start + adata.n_obs]
        start += adata.n_obs
    table = add_imputed_table(src.sdata, table_name, sections, blocks, genes=list(result.var_names), overwrite=True)
    table.var["measured_in"] = result.var["measured_in"].to_numpy()
    table.uns[IMPUTATION_UNS] = dict(result.uns[IMPUTATION_UNS])
    if in_place:
        return save_spatialdata(src.sdata, src.path, tables=[table_name], in_place=True)
    return save_spatialdata(src.sdata, out, tables=[table_name], overwrite=overwrite)


def sibling_store(model: str | os.PathLike) -> list[str] | None:
    """The reference data beside a model directory written from a store: ``DIR/<store>.zarr`` when
    ``DIR/sections/`` is absent and exactly one store is there (else None: the usual rules apply)."""
    parent = Path(model).parent
    if (parent / "sections").is_dir():
        return None
    stores = sorted(p for p in parent.glob("*.zarr") if p.is_dir())
    return [str(stores[0])] if len(stores) == 1 else None
