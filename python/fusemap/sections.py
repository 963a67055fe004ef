"""Canonicalise every accepted input into one ordered set of sections.

Accepted: one AnnData (a single section, or several with ``section_key``), a list/tuple of AnnData
(given order), a dict name -> AnnData (sorted names), a path to an ``.h5ad`` file, or a folder of
``.h5ad`` files (sorted file names). Later code only ever sees a :class:`SectionSet`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import anndata as ad
import numpy as np
import pandas as pd

from ._constants import SECTION_COLUMN
from .errors import FuseMapInputError


@dataclass
class SectionSet:
    """Sections in their fixed order.

    When the sections were split out of one AnnData by ``section_key``, ``parent`` is that AnnData
    and ``parent_rows[i]`` gives, for section ``i``, the positions of its cells in ``parent``, so
    results can be written back in the parent's cell order.
    """

    names: list[str]
    adatas: list[ad.AnnData]
    parent: ad.AnnData | None = None
    parent_rows: list[np.ndarray] = field(default_factory=list)
    section_key: str | None = None
    source: Any = None
    """Where the sections came from when that is not AnnData (a SpatialData object): an object with
    ``write_back(sections)``, which :meth:`FuseMap.write` calls to put results back there."""

    def __len__(self) -> int:
        return len(self.names)

    def items(self):
        return zip(self.names, self.adatas)


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
    col = adata.obs[section_key]
    if col.isna().any():
        raise FuseMapInputError(
            f"{argname}.obs[{section_key!r}] has {int(col.isna().sum())} missing value(s); every cell "
            "needs a section. Fill them or drop those cells."
        )
    if isinstance(col.dtype, pd.CategoricalDtype):
        present = set(col.astype(str))
        order = [str(c) for c in col.cat.categories if str(c) in present]
    else:
        order = [str(v) for v in pd.unique(col.astype(str))]
    values = col.astype(str).to_numpy()
    names, adatas, rows = [], [], []
    for name in order:
        idx = np.flatnonzero(values == name)
        names.append(name)
        adatas.append(adata[idx].copy())
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


def as_sections(data: Any, section_key: str | None = None, argname: str = "data") -> SectionSet:
    """Turn any accepted input into a :class:`SectionSet` (no copies unless splitting)."""
    if isinstance(data, SectionSet):
        return data
    if _is_spatialdata(data):
        from .spatialdata_io import sections_from_spatialdata  # optional dependency

        return sections_from_spatialdata(data, section_key=section_key)
    if isinstance(data, ad.AnnData):
        if section_key is not None:
            return _split(data, section_key, argname)
        return SectionSet([_name_from_obs(data) or "section_0"], [data])
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        is_store = path.suffix == ".zarr" or (
            path.is_dir() and ((path / "zarr.json").exists() or (path / ".zgroup").exists())
        )
        if is_store:
            from .spatialdata_io import sections_from_spatialdata

            return sections_from_spatialdata(path, section_key=section_key)
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
