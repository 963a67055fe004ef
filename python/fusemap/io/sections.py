"""The one section reader: every accepted input becomes one ordered :class:`SectionSet`.

Accepted: one AnnData (a single section, or several with ``section_key``), a list/tuple of AnnData
(given order), a dict name -> AnnData (sorted names), a SpatialData object or ``.zarr`` store (its
annotating tables), the path of an ``.h5ad`` file, a folder of ``.h5ad`` files (sorted file
names), or a list mixing such paths. With ``backed=True`` each file's expression stays on disk.
Every entry point (Python API, CLI, R) reads through :func:`read_sections`.
"""

from __future__ import annotations

import os
import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

import anndata as ad
import pandas as pd

from .._constants import SECTION_COLUMN
from ..errors import FuseMapInputError
from .files import safe_filename
from .sectionset import SectionSet, drop_unmeasured_genes, section_groups
from .spatialdata import is_store, sections_from_spatialdata


def _is_spatialdata(obj: Any) -> bool:
    return type(obj).__name__ == "SpatialData" and hasattr(obj, "tables")


def _name_from_obs(adata: ad.AnnData) -> str | None:
    """A section's own name: the single value of ``obs['section']`` when it has exactly one."""
    if SECTION_COLUMN in adata.obs:
        values = pd.unique(adata.obs[SECTION_COLUMN].astype(str))
        if len(values) == 1:
            return str(values[0])
    return None


def _split(adata: ad.AnnData, section_key: str, argname: str) -> SectionSet:
    if section_key not in adata.obs:
        raise FuseMapInputError(
            f"section_key={section_key!r} is not a column of {argname}.obs (columns: "
            f"{list(adata.obs.columns)}). Pass the obs column that names each cell's section."
        )
    names, adatas, rows = [], [], []
    for name, idx in section_groups(adata.obs[section_key], f"{argname}.obs[{section_key!r}]"):
        names.append(name)
        adatas.append(drop_unmeasured_genes(adata[idx].copy(), name))
        rows.append(idx)
    return SectionSet(names, adatas, parent=adata, parent_rows=rows, section_key=section_key)


def _read_h5ad(path: Path, argname: str) -> ad.AnnData:
    if not path.exists():
        raise FuseMapInputError(f"{argname}: file {str(path)!r} does not exist.")
    try:
        return ad.read_h5ad(path)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise FuseMapInputError(f"{argname}: could not read {str(path)!r} as .h5ad ({exc}).") from exc


def read_section_files(paths: Sequence[str | os.PathLike], section_key: str | None = None) -> SectionSet:
    """Read ``.h5ad`` files in the given order; a file's stem names its section.

    With ``section_key``, each file may hold several sections and names come from that column.
    """
    names: list[str] = []
    adatas: list[ad.AnnData] = []
    for p in paths:
        path = Path(p)
        adata = _read_h5ad(path, "sections")
        if section_key is not None:
            sub = _split(adata, section_key, f"{path.name}")
            names.extend(sub.names)
            adatas.extend(sub.adatas)
        else:
            names.append(path.stem)
            adatas.append(adata)
    return SectionSet(names, adatas)


def _as_sections(data: Any, section_key: str | None = None, argname: str = "data") -> SectionSet:
    """One input (not a list of paths) as a :class:`SectionSet` (no copies unless splitting)."""
    if isinstance(data, SectionSet):
        return data
    if _is_spatialdata(data):
        return sections_from_spatialdata(data, section_key=section_key)
    if isinstance(data, ad.AnnData):
        if section_key is not None:
            return _split(data, section_key, argname)
        return SectionSet([_name_from_obs(data) or "section_0"], [data])
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if is_store(path):
            return sections_from_spatialdata(path, section_key=section_key, argname=argname)
        if path.is_dir():
            files = sorted(path.glob("*.h5ad"))
            if not files:
                raise FuseMapInputError(
                    f"{argname}: folder {str(path)!r} holds no .h5ad files. Point to a folder of "
                    "one .h5ad file per section, or pass the files themselves."
                )
            return read_section_files(files, section_key)
        return read_section_files([path], section_key)
    if isinstance(data, Mapping):
        keys = list(data.keys())
        bad = [k for k in keys if not isinstance(data[k], ad.AnnData)]
        if bad:
            raise FuseMapInputError(
                f"{argname}: values for {bad[:3]} are not AnnData (found "
                f"{type(data[bad[0]]).__name__}). Pass a dict of section name -> AnnData."
            )
        if section_key is not None:
            raise FuseMapInputError(
                f"section_key={section_key!r} was given with a dict of sections; the dict keys "
                "already name the sections. Drop section_key or pass one AnnData."
            )
        order = sorted(keys, key=str)
        return SectionSet([str(k) for k in order], [data[k] for k in order])
    if isinstance(data, (list, tuple)):
        if len(data) == 0:
            raise FuseMapInputError(f"{argname} is an empty list; pass at least one AnnData section.")
        if all(isinstance(a, (str, os.PathLike)) for a in data):
            return read_section_files(data, section_key)
        bad = [i for i, a in enumerate(data) if not isinstance(a, ad.AnnData)]
        if bad:
            raise FuseMapInputError(
                f"{argname}[{bad[0]}] is a {type(data[bad[0]]).__name__}, not an AnnData. "
                "Pass a list of AnnData, one per section."
            )
        if section_key is not None:
            names, adatas = [], []
            for i, a in enumerate(data):
                sub = _split(a, section_key, f"{argname}[{i}]")
                names.extend(sub.names)
                adatas.extend(sub.adatas)
            return SectionSet(names, adatas)
        names = [_name_from_obs(a) or f"section_{i}" for i, a in enumerate(data)]
        if len(set(names)) < len(names):
            # obs['section'] values collide (e.g. every file says 'section_A'): fall back to positions
            dup = sorted({n for n in names if names.count(n) > 1})
            raise FuseMapInputError(
                f"{argname}: sections share the name(s) {dup} (from obs['{SECTION_COLUMN}']). "
                "Section names must be unique: pass a dict {name: AnnData} to name them yourself."
            )
        return SectionSet(names, list(data))
    raise FuseMapInputError(
        f"{argname}: cannot read sections from a {type(data).__name__}. Pass an AnnData (with "
        "section_key for several sections), a list or dict of AnnData, a SpatialData object, or "
        "the path of an .h5ad file, a folder of them or a .zarr SpatialData store."
    )


def store_among(paths: Sequence[str | os.PathLike], argname: str = "SECTION") -> Path | None:
    """The one SpatialData store among ``paths``, None when there is none; mixing is an error."""
    stores = [Path(p) for p in paths if is_store(p)]
    if not stores:
        return None
    if len(paths) > 1:
        raise FuseMapInputError(
            f"{argname}: got {len(paths)} inputs including the SpatialData store(s) {[str(s) for s in stores]}; "
            "pass one .zarr store alone (put all sections into its tables) or only .h5ad files."
        )
    return stores[0]


def paths_of(data: Any) -> list[str]:
    """The file or store paths among ``data`` (what an output must never replace)."""
    if isinstance(data, (str, os.PathLike)):
        return [str(data)]
    if isinstance(data, (list, tuple)):
        return [str(d) for d in data if isinstance(d, (str, os.PathLike))]
    return []


def read_sections(data: Any, section_key: str | None = None, *, table: str | Sequence[str] | None = None,
                  coordinate_system: str | None = None, backed: bool = False,
                  argname: str = "data") -> SectionSet:
    """Read sections from any accepted input as one ordered :class:`SectionSet`.

    Every entry point (Python API, command line, R) reads through this function, so they accept
    the same inputs and order sections the same way. AnnData objects are used as they are (no
    copy, except when one AnnData is split by ``section_key``), so results written later land in
    the caller's objects.

    Parameters
    ----------
    data
        One AnnData (a single section named by its single ``obs['section']`` value, else
        ``'section_0'``; or several with ``section_key``), a list or tuple of AnnData (given
        order), a dict name -> AnnData (sorted names), a SpatialData object or ``.zarr`` store
        (see :func:`fusemap.io.spatialdata.sections_from_spatialdata`), the path of an ``.h5ad``
        file (named by the file stem), a folder of ``.h5ad`` files (sorted file names), or a list
        of such paths.
    section_key
        obs column naming each cell's section, when an AnnData or file holds several.
    table
        SpatialData only: table name(s) to read (default: every annotating table).
    coordinate_system
        SpatialData only: coordinate system of the centroids, when a table holds no
        coordinates (default ``'global'``).
    backed
        Leave each ``.h5ad`` / AnnData ``.zarr`` file's expression on disk (one section per file,
        named by the file stem), for sections larger than memory.
    argname
        Argument name used in error messages.

    Returns
    -------
    SectionSet
        Names and AnnData objects in order; remembers the paths read, so that outputs never
        replace an input.

    Raises
    ------
    FuseMapInputError
        For a missing file or column, an empty folder, a dict with non-AnnData values, or a
        store mixed with other paths.

    Examples
    --------
    >>> from fusemap.io import read_sections
    >>> sections = read_sections("run/sections")  # a folder of .h5ad files  # doctest: +SKIP
    >>> sections.names  # doctest: +SKIP
    >>> sections = read_sections(adata, section_key="sample")  # doctest: +SKIP
    """
    paths = paths_of(data)
    if backed:
        from .backed import open_sections

        if section_key is not None:
            raise FuseMapInputError(f"{argname}: backed reading takes one section per file; drop the section "
                                    "key or split the file.")
        if not paths or len(paths) != (len(data) if isinstance(data, (list, tuple)) else 1):
            raise FuseMapInputError(f"{argname}: backed reading needs file paths (.h5ad or AnnData .zarr).")
        out = SectionSet([Path(f).stem for f in paths], open_sections(paths))
    elif isinstance(data, (list, tuple)) and paths and len(paths) == len(data):
        store = store_among(paths, argname)
        if store is not None:
            out = sections_from_spatialdata(store, section_key, table=table,
                                            coordinate_system=coordinate_system or "global", argname=argname)
        else:
            parts = [_as_sections(d, section_key, argname=argname) for d in data]
            out = SectionSet([n for s in parts for n in s.names], [a for s in parts for a in s.adatas])
    elif isinstance(data, (str, os.PathLike)) and is_store(data):
        out = sections_from_spatialdata(data, section_key, table=table,
                                        coordinate_system=coordinate_system or "global", argname=argname)
    else:
        out = _as_sections(data, section_key, argname=argname)
    if paths and not out.paths:
        out = dataclasses.replace(out, paths=paths)
    return out


def match_model_sections(sections: SectionSet, model_names: Sequence[str]) -> SectionSet:
    """Rename sections to the model's names where they only differ by file-name spelling.

    Files written by ``fusemap integrate`` are named ``safe_filename(section)``; a section read
    from such a file is renamed back to the model's section name when that match is unambiguous.
    """
    known = set(model_names)
    by_safe: dict[str, list[str]] = {}
    for n in model_names:
        by_safe.setdefault(safe_filename(n), []).append(n)
    names = []
    for n in sections.names:
        if n not in known and len(by_safe.get(safe_filename(n), [])) == 1:
            n = by_safe[safe_filename(n)][0]
        names.append(n)
    return dataclasses.replace(sections, names=names)
