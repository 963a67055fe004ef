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
    return save_spatialdata(src.sdata, outdir.path(output_store_name(sections)), tables=changed)
