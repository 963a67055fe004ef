"""SpatialData in and out: sections from annotating tables, results back into them, atomic saves.

Reading (:func:`sections_from_spatialdata`)
    Sections come from the table(s) that annotate shapes, points or labels. A table's
    ``uns['spatialdata_attrs']`` names its ``region_key`` column (which element each row annotates)
    and its ``instance_key`` column (which instance of that element). Each annotated element of a
    table is one section; ``section_key`` splits them further by an obs column. Several tables give
    the union of their sections. Without ``table=``, every table that annotates an element is used.

    Coordinates: the table's ``obsm['spatial']`` when it has one; otherwise the centroids of the
    annotated instances in ``coordinate_system`` (default ``'global'``, so element transformations
    are applied). Rows are matched to instances by the value of the table's instance-key column:
    for shapes and points that is the element's index, for labels the label value (values are
    compared as strings when their types differ, e.g. ``'7'`` and ``7``). Every row must match
    exactly one instance of its element; instances without a row are ignored. A table named in
    ``table=`` that annotates no element and has no ``obsm['spatial']`` (a dissociated single-cell
    reference kept in the store) gives sections without coordinates.

Writing back (:func:`write_results`, called by ``FuseMap.write``)
    Into the table rows, in the table's own row order: ``obsm['X_fusemap_cell']`` and
    ``obsm['X_fusemap_spatial']`` (and any other new ``obsm``/``obs`` result, e.g. transferred
    labels), ``varm['fusemap_gene_embedding']``, the run record in ``uns['fusemap']`` (with
    ``uns['fusemap']['spatialdata_json']`` saying where each section came from). Centroid
    coordinates computed for training are not written into the table. Imputed genes go into a
    separate table annotating the same elements (:func:`add_imputed_table`). Results land in the
    in-memory object (``model.sections.source.sdata`` when a store path was given); nothing is
    written to disk until :func:`save_spatialdata`.

Graphs (squidpy's keys)
    The spatial graph is built with squidpy per section and stored as squidpy stores it:
    ``obsp['spatial_connectivities']`` (adjacency), ``obsp['spatial_distances']`` (edge lengths) and
    ``uns['spatial_neighbors']`` (parameters; ``params['library_key']`` names the column whose
    values the graph never crosses). A table that already holds ``obsp['spatial_connectivities']``
    has it reused (cut per section; ``rebuild=True`` builds new ones for training) and never
    replaced; a table without one receives the per-section graphs as one block-diagonal matrix in
    its row order.

Saving (:func:`save_spatialdata`)
    Always to a temporary store beside the target, renamed into place at the end. With
    ``tables=``, the store the data was read from is copied file by file and only those tables are
    replaced, so images, labels, shapes and points stay byte-identical. Writing into the store the
    data was read from needs ``in_place=True``; each table is then swapped in by a rename.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._constants import (GRAPH_CONNECTIVITIES, GRAPH_DISTANCES, GRAPH_UNS, RUN_RECORD, SPATIAL_KEY)
from .files import atomic_dir, temp_beside
from ..errors import FuseMapInputError
from .sectionset import SectionSet, drop_unmeasured_genes, section_groups

log = logging.getLogger("fusemap")

ATTRS_KEY = "spatialdata_attrs"
RESULT_PREFIXES = ("X_fusemap", "fusemap")
"""obsm/obs/varm keys with these prefixes are fusemap results: a new run replaces them."""
COORDINATES = ("auto", "obsm", "centroids")


def _spatialdata():
    try:
        import spatialdata
    except ImportError as exc:  # pragma: no cover - spatialdata is a dependency of squidpy >= 1.8
        raise FuseMapInputError(
            "reading SpatialData needs the spatialdata package; install it with "
            "`pip install 'fusemap[spatialdata]'`."
        ) from exc
    return spatialdata


@dataclass
class SpatialDataSource:
    """Where each section of a :class:`SectionSet` came from inside a SpatialData object.

    ``rows[name] = (table, positions)``: the section's cells are rows ``positions`` of table
    ``table``, in section order. Sections are looked up by name, so reordering sections is safe.
    """

    sdata: Any
    path: Path | None
    tables: list[str]
    rows: dict[str, tuple[str, np.ndarray]]
    regions: dict[str, str | None]
    spatial_key: str = SPATIAL_KEY
    coordinate_system: str = "global"
    centroid_tables: list[str] = field(default_factory=list)
    section_key: str | None = None

    def write_back(self, sections: SectionSet) -> list[str]:
        return write_results(sections, self.sdata)

    def describe(self) -> dict:
        return {
            "store": str(self.path) if self.path else "",
            "coordinate_system": self.coordinate_system,
            "coordinates": {t: ("centroids" if t in self.centroid_tables else f"obsm[{self.spatial_key!r}]")
                            for t in self.tables},
            "section_key": self.section_key,
            "sections": {n: {"table": t, "region": self.regions.get(n)} for n, (t, _) in self.rows.items()},
        }


# -- reading ----------------------------------------------------------------------------------------
def is_store(path: str | os.PathLike) -> bool:
    """A path that names a zarr store (``.zarr`` suffix, or a folder with zarr group metadata)."""
    p = Path(path)
    return p.suffix == ".zarr" or (p.is_dir() and ((p / "zarr.json").exists() or (p / ".zgroup").exists()))


def read_store(path: str | os.PathLike, argname: str = "data"):
    """Open a SpatialData zarr store (images and labels stay lazy), with a clear error."""
    sd = _spatialdata()
    path = Path(path)
    if not path.exists():
        raise FuseMapInputError(f"{argname}: SpatialData store {str(path)!r} does not exist.")
    if not is_store(path) or not path.is_dir():
        raise FuseMapInputError(
            f"{argname}: {str(path)!r} is not a zarr store (a folder with zarr.json or .zgroup). "
            "Pass the folder written by SpatialData.write()."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sd.read_zarr(path)
    except Exception as exc:  # noqa: BLE001 - re-raised with the path
        raise FuseMapInputError(f"{argname}: could not read {str(path)!r} as a SpatialData store ({exc}).") from exc


def _attrs(table: ad.AnnData) -> dict:
    a = table.uns.get(ATTRS_KEY)
    return dict(a) if isinstance(a, dict) or hasattr(a, "keys") else {}


def _annotated_elements(sdata) -> dict[str, str]:
    """name -> kind ('shapes', 'points', 'labels') of every element a table can annotate."""
    out = {}
    for kind in ("shapes", "points", "labels"):
        for name in getattr(sdata, kind):
            out[name] = kind
    return out


def annotating_tables(sdata) -> list[str]:
    """Names of the tables whose ``spatialdata_attrs`` name at least one region (the tables read as sections).

    Parameters
    ----------
    sdata
        A SpatialData object.

    Returns
    -------
    list of str

    Examples
    --------
    >>> annotating_tables(sdata)  # doctest: +SKIP
    """
    out = []
    for name, table in sdata.tables.items():
        region = _attrs(table).get("region")
        if region is not None and len(np.atleast_1d(region)):
            out.append(name)
    return out


def _choose_tables(sdata, table: str | Sequence[str] | None, spatial_key: str) -> list[str]:
    have = list(sdata.tables.keys())
    if table is not None:
        names = [table] if isinstance(table, str) else list(table)
        missing = [t for t in names if t not in have]
        if missing or not names:
            raise FuseMapInputError(
                f"table={table!r}: {missing or 'no table'} not in the SpatialData object (tables: {have}). "
                "Name tables that exist, or leave table=None to use every annotating table."
            )
        return names
    names = annotating_tables(sdata)
    if names:
        return names
    with_xy = [t for t in have if spatial_key in sdata.tables[t].obsm]
    if len(with_xy) == 1:
        return with_xy
    raise FuseMapInputError(
        f"data: the SpatialData object has no table annotating shapes, points or labels (tables: {have}). "
        "Link a table to its elements (spatialdata.models.TableModel.parse(adata, region=..., "
        "region_key=..., instance_key=...)) or name a table holding obsm['spatial'] with table=."
    )


def _groups(table: ad.AnnData, tname: str) -> list[tuple[str | None, np.ndarray]]:
    """(region, row positions) of each element a table annotates, in the table's region order."""
    attrs = _attrs(table)
    rkey = attrs.get("region_key")
    if rkey is None:
        return [(None, np.arange(table.n_obs))]
    if rkey not in table.obs:
        raise FuseMapInputError(
            f"table {tname!r}: its region_key {rkey!r} is not a column of obs (columns: "
            f"{list(table.obs.columns)}). Repair the table with TableModel.parse(..., region_key=...)."
        )
    col = table.obs[rkey]
    if col.isna().any():
        raise FuseMapInputError(
            f"table {tname!r}: obs[{rkey!r}] has {int(col.isna().sum())} missing value(s); every row must "
            "name the element it annotates."
        )
    values = col.astype(str).to_numpy()
    declared = [str(r) for r in np.atleast_1d(attrs.get("region", []))]
    present = list(pd.unique(values))
    order = [r for r in declared if r in set(present)] + [r for r in present if r not in set(declared)]
    return [(r, np.flatnonzero(values == r)) for r in order]


def _match_instances(ids: pd.Index, index: pd.Index) -> np.ndarray:
    if ids.dtype != index.dtype:
        ids, index = ids.astype(str), index.astype(str)
    return index.get_indexer(ids)


def _centroids(sdata, tname: str, table: ad.AnnData, region: str | None, rows: np.ndarray,
               coordinate_system: str, spatial_key: str) -> np.ndarray:
    """Coordinates of the instances annotated by ``rows`` (in row order), from element centroids."""
    sd = _spatialdata()
    from spatialdata.transformations import get_transformation

    if region is None:
        raise FuseMapInputError(
            f"table {tname!r} has no obsm[{spatial_key!r}] and annotates no element, so cells have no "
            f"coordinates. Store coordinates in obsm[{spatial_key!r}] or link the table to its shapes."
        )
    elements = _annotated_elements(sdata)
    if region not in elements:
        raise FuseMapInputError(
            f"table {tname!r} annotates {region!r}, which is not a shapes, points or labels element of the "
            f"SpatialData object (elements: {sorted(elements)}), and the table has no obsm[{spatial_key!r}]. "
            "Add the element or store coordinates in the table."
        )
    element = sdata[region]
    systems = list(get_transformation(element, get_all=True).keys())
    if coordinate_system not in systems:
        raise FuseMapInputError(
            f"coordinate_system={coordinate_system!r}: element {region!r} has no transformation to it "
            f"(its coordinate systems: {systems}). Pass one of those."
        )
    ikey = _attrs(table).get("instance_key")
    if ikey is None or ikey not in table.obs:
        raise FuseMapInputError(
            f"table {tname!r}: instance_key {ikey!r} is not a column of obs, so rows cannot be matched to "
            f"the instances of {region!r}. Repair the table with TableModel.parse(..., instance_key=...)."
        )
    ids = pd.Index(table.obs[ikey].to_numpy()[rows])
    dup = ids[ids.duplicated()]
    if len(dup):
        raise FuseMapInputError(
            f"table {tname!r}: {len(dup)} row(s) repeat an instance id of {region!r} (e.g. {list(dup[:3])} "
            f"in obs[{ikey!r}]); each row must annotate its own instance."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cent = sd.get_centroids(element, coordinate_system=coordinate_system)
        cent = cent.compute() if hasattr(cent, "compute") else cent
    axes = [a for a in ("x", "y", "z") if a in cent.columns]
    pos = _match_instances(ids, pd.Index(cent.index))
    if (pos < 0).any():
        bad = list(ids[pos < 0][:3])
        raise FuseMapInputError(
            f"table {tname!r}: {int((pos < 0).sum())} of {len(ids)} row(s) name instances absent from "
            f"{region!r} (e.g. {bad} in obs[{ikey!r}]; the element's index starts "
            f"{list(cent.index[:3])}). Instance ids must match the element's index (label values for labels)."
        )
    return cent[axes].to_numpy(dtype=np.float64)[pos]


def _section_names(parts: list[tuple[str, str | None, str | None]]) -> list[str]:
    """Shortest unique names: value (or region), then region/value, then table/region/value."""
    def show(p, depth):
        t, r, v = p
        chain = [x for x in (t, r if r is not None else t, v) if x is not None]
        chain = list(dict.fromkeys(chain))  # a table without regions names itself once
        return "/".join(chain[-depth:])

    for depth in (1, 2, 3):
        names = [show(p, depth) for p in parts]
        if len(set(names)) == len(names):
            return names
    raise FuseMapInputError(f"sections {parts} cannot be given unique names")  # pragma: no cover


def sections_from_spatialdata(sdata_or_path: Any, section_key: str | None = None, *,
                              table: str | Sequence[str] | None = None, coordinate_system: str = "global",
                              spatial_key: str = SPATIAL_KEY, coordinates: str = "auto",
                              argname: str = "data") -> SectionSet:
    """Sections from the table(s) of a SpatialData object or zarr store (see the module docstring).

    Parameters
    ----------
    sdata_or_path
        A ``SpatialData`` object, or the path of its zarr store (opened lazily; nothing is written).
    section_key
        obs column splitting each annotated element into several sections.
    table
        Table name(s) to read; default every table that annotates shapes, points or labels.
    coordinate_system
        Coordinate system of the centroids when a table holds no ``obsm[spatial_key]``.
    spatial_key
        obsm key of the coordinates in the tables (and of the centroids put into the sections).
    coordinates
        ``'auto'`` (the table's ``obsm[spatial_key]`` when present, else centroids), ``'obsm'`` or
        ``'centroids'`` (always from the elements, e.g. to work in another coordinate system).
    argname
        Argument name used in error messages.

    Returns
    -------
    SectionSet
        One section per annotated element (or ``section_key`` value). Section names: the region
        (element) name, or the ``section_key`` value; prefixed with ``region/`` and then
        ``table/`` only where needed to keep names unique. Its ``source`` remembers each
        section's table and rows, so results can be written back.

    Raises
    ------
    FuseMapInputError
        For an unknown table, column or coordinate system, rows that match no instance, or
        tables without rows.

    Examples
    --------
    >>> from fusemap.io.spatialdata import sections_from_spatialdata
    >>> sections = sections_from_spatialdata("brain.zarr", table="table")  # doctest: +SKIP
    >>> sections.names  # doctest: +SKIP
    """
    if coordinates not in COORDINATES:
        raise FuseMapInputError(f"coordinates={coordinates!r}: use one of {list(COORDINATES)}.")
    if isinstance(sdata_or_path, (str, os.PathLike)):
        path = Path(sdata_or_path)
        sdata = read_store(path, argname)
    else:
        sdata = sdata_or_path
        path = Path(sdata.path) if getattr(sdata, "path", None) else None
    systems = list(sdata.coordinate_systems)
    tables = _choose_tables(sdata, table, spatial_key)

    parts, adatas, rows_of, regions, centroid_tables = [], [], [], [], []
    for tname in tables:
        tab = sdata.tables[tname]
        if section_key is not None and section_key not in tab.obs:
            raise FuseMapInputError(
                f"section_key={section_key!r} is not a column of table {tname!r}.obs (columns: "
                f"{list(tab.obs.columns)}). Pass the obs column that names each cell's section."
            )
        use_obsm = coordinates == "obsm" or (coordinates == "auto" and spatial_key in tab.obsm)
        # a table named in table= that annotates no element and holds no coordinates (a single-cell
        # reference kept in the store): its sections are used without coordinates
        if (table is not None and coordinates == "auto" and not use_obsm
                and _attrs(tab).get("region_key") is None):
            use_obsm = True
        if coordinates == "obsm" and spatial_key not in tab.obsm:
            raise FuseMapInputError(
                f"coordinates='obsm': table {tname!r} has no obsm[{spatial_key!r}] (obsm keys: "
                f"{list(tab.obsm.keys())}). Use coordinates='auto' to take element centroids."
            )
        if not use_obsm:
            if coordinate_system not in systems:
                raise FuseMapInputError(
                    f"coordinate_system={coordinate_system!r} is not a coordinate system of the SpatialData "
                    f"object (it has {systems}). Pass one of those."
                )
            centroid_tables.append(tname)
        for region, rows in _groups(tab, tname):
            xy = None if use_obsm else _centroids(sdata, tname, tab, region, rows, coordinate_system,
                                                  spatial_key)
            if section_key is None:
                splits = [(None, np.arange(len(rows)))]
            else:
                splits = section_groups(tab.obs[section_key].iloc[rows], f"table {tname!r}: obs[{section_key!r}]")
            for value, sub in splits:
                r = rows[sub]
                a = drop_unmeasured_genes(tab[r].copy(), str(value if value is not None else region))
                if xy is not None:
                    a.obsm[spatial_key] = xy[sub]
                parts.append((tname, region, value))
                adatas.append(a)
                rows_of.append(r)
                regions.append(region)
    if not adatas:
        raise FuseMapInputError(f"{argname}: the table(s) {tables} hold no rows.")
    names = _section_names(parts)
    source = SpatialDataSource(
        sdata=sdata, path=path, tables=tables, rows={n: (p[0], r) for n, p, r in zip(names, parts, rows_of)},
        regions=dict(zip(names, regions)), spatial_key=spatial_key, coordinate_system=coordinate_system,
        centroid_tables=centroid_tables, section_key=section_key)
    log.info("read %d section(s) from table(s) %s", len(names), tables)
    return SectionSet(names, adatas, section_key=section_key, source=source)


# -- writing results into tables ----------------------------------------------------------------------
def _is_result(key: str) -> bool:
    return key.startswith(RESULT_PREFIXES)


def _scatter_obsm(n: int, parts: list[tuple[np.ndarray, Any]]):
    """One obsm value for ``n`` rows from (rows, value) pieces; rows not covered are NaN."""
    if all(isinstance(v, pd.DataFrame) for _, v in parts):
        cols = list(dict.fromkeys(c for _, v in parts for c in v.columns))
        out = np.full((n, len(cols)), np.nan)
        for rows, v in parts:
            out[np.ix_(rows, [cols.index(c) for c in v.columns])] = v.to_numpy(dtype=np.float64)
        return pd.DataFrame(out, columns=cols)
    widths = {np.asarray(v).shape[1:] for _, v in parts}
    if len(widths) != 1:
        raise FuseMapInputError(f"results have different widths {sorted(widths)} across sections")
    first = np.asarray(parts[0][1])
    dtype = first.dtype if np.issubdtype(first.dtype, np.floating) else np.float64
    out = np.full((n, *first.shape[1:]), np.nan, dtype=dtype)
    for rows, v in parts:
        out[rows] = np.asarray(v.toarray() if sp.issparse(v) else v)
    return out


def _scatter_obs(n: int, index: pd.Index, parts: list[tuple[np.ndarray, pd.Series]]) -> pd.Series:
    pieces = [pd.Series(s.to_numpy(), index=rows) for rows, s in parts]
    full = pd.concat(pieces).reindex(np.arange(n))
    full.index = index
    if all(isinstance(s.dtype, pd.CategoricalDtype) for _, s in parts):
        cats = list(dict.fromkeys(c for _, s in parts for c in s.cat.categories))
        full = pd.Series(pd.Categorical(full, categories=cats), index=index)
    return full


def _block_graph(n: int, parts: list[tuple[np.ndarray, sp.spmatrix]]) -> sp.csr_matrix:
    r, c, d = [], [], []
    for rows, m in parts:
        coo = sp.coo_matrix(m)
        r.append(rows[coo.row])
        c.append(rows[coo.col])
        d.append(coo.data)
    return sp.csr_matrix((np.concatenate(d), (np.concatenate(r), np.concatenate(c))), shape=(n, n))


def write_results(sections: SectionSet, sdata: Any = None) -> list[str]:
    """Put the results held by the section AnnDatas into the table(s) they came from.

    Written, in each table's own row order: new ``obsm`` entries and those named ``X_fusemap*`` /
    ``fusemap*`` (rows of the table outside every section get NaN), new ``obs`` columns and
    ``fusemap*`` ones, ``varm['fusemap_gene_embedding']``, ``uns['fusemap']`` (the run record plus
    ``spatialdata_json``), and the squidpy graph when the table had none. Nothing else in the
    table changes; the centroid coordinates used for training are not written.
    :meth:`fusemap.FuseMap.write` and :func:`fusemap.transfer_labels` call it for SpatialData
    input.

    Parameters
    ----------
    sections
        Sections read by :func:`sections_from_spatialdata`, holding results.
    sdata
        The SpatialData object to write into; default: the one the sections were read from.

    Returns
    -------
    list of str
        Names of the tables changed, in memory; save them with :func:`save_spatialdata`.

    Raises
    ------
    FuseMapInputError
        When the sections were not read from a SpatialData object.

    Examples
    --------
    >>> changed = write_results(model.sections)  # doctest: +SKIP
    >>> save_spatialdata(model.sections.source.sdata, "out.zarr", tables=changed)  # doctest: +SKIP
    """
    src = sections.source
    if not isinstance(src, SpatialDataSource):
        raise FuseMapInputError(
            "sections: these sections were not read from a SpatialData object; write results with "
            "FuseMap.write() into the AnnData objects instead."
        )
    sdata = src.sdata if sdata is None else sdata
    by_table: dict[str, list[tuple[np.ndarray, ad.AnnData]]] = {}
    for name, adata in sections.items():
        if name not in src.rows:
            raise FuseMapInputError(
                f"sections: {name!r} is not a section read from the SpatialData object (those are "
                f"{list(src.rows)}); results can only be written back for sections under their own names."
            )
        tname, rows = src.rows[name]
        if len(rows) != adata.n_obs:
            raise FuseMapInputError(
                f"sections: section {name!r} has {adata.n_obs} cells but {len(rows)} rows of table "
                f"{tname!r} were read for it; write results back before subsetting sections."
            )
        by_table.setdefault(tname, []).append((rows, adata))
    changed = []
    for tname, pieces in by_table.items():
        table = sdata.tables[tname]
        n = table.n_obs
        skip = {src.spatial_key} if tname in src.centroid_tables else set()
        keys = dict.fromkeys(k for _, a in pieces for k in a.obsm.keys()
                             if k not in skip and (_is_result(k) or k not in table.obsm))
        for k in keys:
            table.obsm[k] = _scatter_obsm(n, [(r, a.obsm[k]) for r, a in pieces if k in a.obsm])
        cols = dict.fromkeys(c for _, a in pieces for c in a.obs.columns if _is_result(c) or c not in table.obs)
        for c in cols:
            table.obs[c] = _scatter_obs(n, table.obs_names, [(r, a.obs[c]) for r, a in pieces if c in a.obs])
        vkeys = dict.fromkeys(k for _, a in pieces for k in a.varm.keys() if _is_result(k) or k not in table.varm)
        for k in vkeys:
            first = next(a for _, a in pieces if k in a.varm)
            if list(first.var_names) == list(table.var_names):
                table.varm[k] = first.varm[k]
        record = next((a.uns[RUN_RECORD] for _, a in pieces if RUN_RECORD in a.uns), None)
        if record is not None:
            rec = dict(record)
            info = src.describe()
            info["sections"] = {n_: v for n_, v in info["sections"].items() if v["table"] == tname}
            rec["spatialdata_json"] = json.dumps(info)
            table.uns[RUN_RECORD] = rec
        covered = np.zeros(n, dtype=bool)
        for r, _ in pieces:
            covered[r] = True
        if (GRAPH_CONNECTIVITIES not in table.obsp and covered.all()
                and all(GRAPH_CONNECTIVITIES in a.obsp for _, a in pieces)):
            for key in (GRAPH_CONNECTIVITIES, GRAPH_DISTANCES):
                if all(key in a.obsp for _, a in pieces):
                    table.obsp[key] = _block_graph(n, [(r, a.obsp[key]) for r, a in pieces])
            uns = dict(pieces[0][1].uns.get(GRAPH_UNS, {}))
            params = dict(uns.get("params", {}))
            params["library_key"] = src.section_key or _attrs(table).get("region_key")
            uns["params"] = params
            table.uns[GRAPH_UNS] = uns
        changed.append(tname)
    return changed


def add_imputed_table(sdata: Any, name: str, sections: SectionSet, imputed: dict[str, Any],
                      genes: Sequence[str] | None = None, overwrite: bool = False) -> ad.AnnData:
    """Add a table of imputed expression that annotates the same elements as the sections' table(s).

    Imputed genes get their own table because the original table holds the measured panel; the
    new table copies each source row's region and instance id, so it joins the same shapes as the
    original table, and its rows follow the source tables' row order. ``fusemap impute`` on a store
    uses it.

    Parameters
    ----------
    sdata
        The SpatialData object to add the table to (in memory).
    name
        Name of the new table.
    sections
        The sections the values belong to, read by :func:`sections_from_spatialdata`.
    imputed
        Section name -> cells x genes matrix (array, or DataFrame with gene columns) in the
        section's cell order.
    genes
        Gene names of the columns (needed for arrays).
    overwrite
        Replace an existing table of that name.

    Returns
    -------
    anndata.AnnData
        The new table (also in ``sdata.tables[name]``).

    Raises
    ------
    FuseMapInputError
        When the sections were not read from a SpatialData object, or the table exists and
        ``overwrite`` is false.

    Examples
    --------
    >>> imputed = fusemap.impute(model)  # doctest: +SKIP
    >>> add_imputed_table(sdata, "fusemap_imputed", model.sections,
    ...                   {"cells": imputed.X}, genes=list(imputed.var_names))  # doctest: +SKIP
    """
    src = sections.source
    if not isinstance(src, SpatialDataSource):
        raise FuseMapInputError("sections were not read from a SpatialData object.")
    if name in sdata.tables and not overwrite:
        raise FuseMapInputError(
            f"name={name!r}: the SpatialData object already has a table of that name; pass overwrite=True "
            "to replace it or choose another name."
        )
    missing = [s for s in sections.names if s not in imputed]
    if missing:
        raise FuseMapInputError(f"imputed: no values for section(s) {missing}.")
    if genes is None:
        first = imputed[sections.names[0]]
        if not isinstance(first, pd.DataFrame):
            raise FuseMapInputError("genes: pass the gene names when imputed values are not DataFrames.")
        genes = list(first.columns)
    genes = [str(g) for g in genes]
    attrs0 = _attrs(sdata.tables[src.tables[0]])
    rkey, ikey = attrs0.get("region_key") or "region", attrs0.get("instance_key") or "instance_id"
    blocks, obs_parts = [], []
    for tname in src.tables:
        table = sdata.tables[tname]
        attrs = _attrs(table)
        for sec in sections.names:
            t, rows = src.rows[sec]
            if t != tname:
                continue
            v = imputed[sec]
            v = v[genes].to_numpy() if isinstance(v, pd.DataFrame) else np.asarray(v)
            if v.shape != (len(rows), len(genes)):
                raise FuseMapInputError(
                    f"imputed[{sec!r}] has shape {v.shape}; expected {(len(rows), len(genes))} (cells x genes)."
                )
            blocks.append(np.asarray(v, dtype=np.float32))
            obs = pd.DataFrame(index=table.obs_names[rows])
            if attrs.get("region_key") in table.obs and attrs.get("instance_key") in table.obs:
                obs[rkey] = table.obs[attrs["region_key"]].astype(str).to_numpy()[rows]
                obs[ikey] = table.obs[attrs["instance_key"]].to_numpy()[rows]
            if len(src.tables) > 1:
                obs.index = [f"{tname}:{i}" for i in obs.index]
            obs_parts.append(obs)
    obs = pd.concat(obs_parts)
    out = ad.AnnData(np.vstack(blocks), obs=obs, var=pd.DataFrame(index=pd.Index(genes, name="gene")))
    if rkey in out.obs and ikey in out.obs and out.obs[rkey].notna().all():
        from spatialdata.models import TableModel

        regions = list(pd.unique(out.obs[rkey]))
        out.obs[rkey] = pd.Categorical(out.obs[rkey], categories=regions)
        out = TableModel.parse(out, region=regions, region_key=rkey, instance_key=ikey)
    sdata.tables[name] = out
    return out


# -- saving ---------------------------------------------------------------------------------------------
def _same_path(a: Path | None, b: Path) -> bool:
    return a is not None and Path(a).resolve() == Path(b).resolve()


def _store_formats(store: Path):
    """spatialdata formats matching an existing store's zarr version (v2 stores get v2 tables)."""
    if (store / ".zgroup").exists() and not (store / "zarr.json").exists():
        from spatialdata._io.format import SpatialDataContainerFormatV01

        return SpatialDataContainerFormatV01()
    return None


def _consolidate(store: Path) -> None:
    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        group = zarr.open_group(str(store), mode="r+", use_consolidated=False)
        zarr.consolidate_metadata(group.store)


def _swap_tables(store: Path, sdata: Any, tables: Sequence[str]) -> None:
    """Replace ``tables`` inside ``store`` by renames: each is written to a temporary store first."""
    sd = _spatialdata()
    tmp = temp_beside(store, "tables")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sd.SpatialData(tables={t: sdata.tables[t] for t in tables}).write(
                tmp, sdata_formats=_store_formats(store), update_sdata_path=False)
        group = store / "tables"
        if not group.exists():
            os.rename(tmp / "tables", group)
        else:
            for t in tables:
                old = temp_beside(store, f"old-{t}")
                if (group / t).exists():
                    os.rename(group / t, old)
                os.rename(tmp / "tables" / t, group / t)
                shutil.rmtree(old, ignore_errors=True)
        _consolidate(store)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save_spatialdata(sdata: Any, path: str | os.PathLike, *, tables: Sequence[str] | None = None,
                     overwrite: bool = False, in_place: bool = False) -> Path:
    """Save ``sdata`` to the zarr store ``path`` atomically (temporary store beside it, then rename).

    Parameters
    ----------
    sdata
        The SpatialData object (e.g. after :func:`fusemap.integrate` wrote into its tables).
    path
        Target store.
    tables
        Names of the tables changed since the object was read from its store. When given (and the
        object is backed by a store), that store is copied and only these tables are rewritten, so
        every other element stays byte-identical; in-memory edits to other elements are then not
        saved. Without it the whole object is written.
    overwrite
        Replace an existing store at ``path`` (never anything that is not a zarr store).
    in_place
        Needed when ``path`` is the store the object was read from; only ``tables`` (default all
        tables) are replaced there, each by a rename.

    Returns
    -------
    pathlib.Path
        The store written.

    Raises
    ------
    FuseMapInputError
        When ``path`` is the source store without ``in_place``, or exists and is not a store.
    FileExistsError
        When ``path`` exists and ``overwrite`` is false.

    Examples
    --------
    >>> import spatialdata as sd  # doctest: +SKIP
    >>> sdata = sd.read_zarr("brain.zarr")  # doctest: +SKIP
    >>> model = fusemap.integrate(sdata)  # doctest: +SKIP
    >>> save_spatialdata(sdata, "brain_fusemap.zarr", tables=["table"])  # doctest: +SKIP
    """
    _spatialdata()  # a clear error when spatialdata is missing
    path = Path(path)
    src = Path(sdata.path) if getattr(sdata, "path", None) else None
    if _same_path(src, path):
        if not in_place:
            raise FuseMapInputError(
                f"path={str(path)!r} is the store the data was read from; pass in_place=True to write the "
                "results into it, or choose another path."
            )
        _swap_tables(path, sdata, list(tables) if tables is not None else list(sdata.tables.keys()))
        return path
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"path={str(path)!r} already exists; pass overwrite=True to replace it or choose another path."
        )
    if path.exists() and not is_store(path):  # overwrite replaces a store, never other files
        raise FuseMapInputError(
            f"path={str(path)!r} exists and is not a zarr store; overwrite=True only replaces a store. "
            "Choose another path."
        )
    with atomic_dir(path) as tmp:
        if tables is not None and src is not None and src.is_dir():
            os.rmdir(tmp)
            shutil.copytree(src, tmp)
            _swap_tables(tmp, sdata, list(tables))
        else:
            os.rmdir(tmp)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sdata.write(tmp, update_sdata_path=False)
    return path


__all__ = [
    "SpatialDataSource",
    "add_imputed_table",
    "annotating_tables",
    "is_store",
    "read_store",
    "save_spatialdata",
    "sections_from_spatialdata",
    "write_results",
]
