"""Figures of an integration: UMAPs of both embeddings and clusters on the tissue (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .._constants import CELL_EMBEDDING, SECTION_COLUMN, SPATIAL_EMBEDDING, SPATIAL_KEY
from ..tl.regions import leiden_on_graph


def _categories(labels: np.ndarray) -> pd.Categorical:
    """Cluster labels as a categorical ordered '0', '1', ... (scanpy's order)."""
    return pd.Categorical(labels, categories=sorted(set(labels), key=int))


def _palette(n: int) -> list:
    cmap = plt.get_cmap("tab20" if n > 10 else "tab10")
    return [cmap(i % cmap.N) for i in range(n)]


def pooled_embedding(sections: Sequence[ad.AnnData], names: Sequence[str], key: str,
                     no_coordinates: Sequence[str] = ()) -> ad.AnnData:
    """One AnnData of all cells holding only ``key`` embeddings, coordinates and labels."""
    parts = []
    for name, a in zip(names, sections):
        obs = pd.DataFrame({SECTION_COLUMN: name}, index=[f"{name}:{c}" for c in a.obs_names])
        for col in ("cell_type", "region"):
            if col in a.obs:
                obs[col] = a.obs[col].astype(str).to_numpy()
        p = ad.AnnData(np.zeros((a.n_obs, 0), dtype=np.float32), obs=obs)
        p.obsm["emb"] = np.asarray(a.obsm[key], dtype=np.float32)
        # a section without coordinates gets NaN ones: it is left out of the figures on the tissue
        p.obsm[SPATIAL_KEY] = (np.asarray(a.obsm[SPATIAL_KEY], dtype=np.float32)[:, :2]
                               if SPATIAL_KEY in a.obsm and name not in set(no_coordinates)
                               else np.full((a.n_obs, 2), np.nan, dtype=np.float32))
        parts.append(p)
    out = ad.concat(parts, merge="same")
    out.obs[SECTION_COLUMN] = pd.Categorical(out.obs[SECTION_COLUMN], categories=list(names))
    return out


def cluster_and_umap(pooled: ad.AnnData, resolution: float = 0.8, seed: int = 0,
                     n_neighbors: int = 15) -> ad.AnnData:
    """Leiden clusters and a UMAP of the pooled embedding (in place; returns ``pooled``)."""
    import scanpy as sc

    sc.pp.neighbors(pooled, use_rep="emb", n_neighbors=n_neighbors, random_state=seed)
    pooled.obs["cluster"] = _categories(leiden_on_graph(pooled, resolution, seed))
    sc.tl.umap(pooled, random_state=seed)
    return pooled


def scatter_categories(ax, xy: np.ndarray, labels: pd.Series, title: str, s: float | None = None,
                       legend: bool = True) -> None:
    cats = list(pd.Categorical(labels).categories)
    colors = _palette(len(cats))
    s = s if s is not None else max(0.5, 30000 / max(len(xy), 1) ** 1.1)
    for c, col in zip(cats, colors):
        m = np.asarray(labels == c)
        ax.scatter(xy[m, 0], xy[m, 1], s=s, color=col, label=str(c), linewidths=0, rasterized=True)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    if legend and len(cats) <= 30:
        ax.legend(markerscale=max(1, 6 / s ** 0.5), fontsize=7, frameon=False, loc="center left",
                  bbox_to_anchor=(1.0, 0.5), ncol=1 if len(cats) <= 15 else 2)


def umap_figure(pooled: ad.AnnData, title: str, colors: Sequence[str]) -> plt.Figure:
    cols = [c for c in colors if c in pooled.obs]
    fig, axes = plt.subplots(1, len(cols), figsize=(5.2 * len(cols), 4.2), squeeze=False)
    for ax, c in zip(axes[0], cols):
        scatter_categories(ax, pooled.obsm["X_umap"], pooled.obs[c], f"{title}: {c}")
    fig.tight_layout()
    return fig


def spatial_figure(pooled: ad.AnnData, color: str, title: str) -> plt.Figure:
    """``color`` drawn on the coordinates of every section that has them."""
    has = pd.Series(np.isfinite(pooled.obsm[SPATIAL_KEY]).all(1)).groupby(
        np.asarray(pooled.obs[SECTION_COLUMN])).all()
    names = [n for n in pooled.obs[SECTION_COLUMN].cat.categories if has.get(n, False)]
    n = len(names)
    ncol = min(n, 4)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 4.0 * nrow), squeeze=False)
    cats = pd.Categorical(pooled.obs[color])
    for i, name in enumerate(names):
        ax = axes[i // ncol][i % ncol]
        m = np.asarray(pooled.obs[SECTION_COLUMN] == name)
        sub = pd.Series(pd.Categorical(np.asarray(cats)[m], categories=cats.categories))
        scatter_categories(ax, pooled.obsm[SPATIAL_KEY][m], sub, f"{name}", legend=(i == n - 1))
        ax.set_aspect("equal")
    for j in range(n, nrow * ncol):
        axes[j // ncol][j % ncol].axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def integration_figures(sections: Sequence[ad.AnnData], names: Sequence[str], out_dir: str | Path,
                        seed: int = 0, no_coordinates: Sequence[str] = ()) -> list[Path]:
    """Write the standard figures of an integration as PNGs (what ``fusemap integrate`` draws).

    For each embedding: UMAP coloured by section, by Leiden cluster (and by ``cell_type`` /
    ``region`` when present), and the clusters drawn on every section's coordinates. Tissue regions
    are few and large, so the spatial embedding is clustered coarser (resolution 0.3 against 0.8
    for the cell embedding). Under each figure a line states how well the sections mix: the share
    of cells in clusters that hold every section (:func:`fusemap.mixing.shared_clusters`).

    Parameters
    ----------
    sections
        The integrated sections (AnnData with ``obsm['X_fusemap_cell']``,
        ``obsm['X_fusemap_spatial']`` and ``obsm['spatial']``).
    names
        Their names, in the same order (shown in the legends and panel titles).
    out_dir
        Folder the PNGs are written to (created if needed).
    seed
        Seed of the neighbour graphs, Leiden and UMAP.
    no_coordinates
        Sections without coordinates (single-cell references; :attr:`FuseMap.no_coordinates`);
        sections without ``obsm['spatial']`` count as such. They appear in the cell-embedding UMAP
        only: the spatial embedding and the tissue panels are drawn for the others.

    Returns
    -------
    list of pathlib.Path
        ``umap_cell.png``, ``spatial_cell_clusters.png``, ``umap_spatial.png`` and
        ``spatial_spatial_clusters.png`` in ``out_dir`` (the spatial ones only when some
        section has coordinates).

    Examples
    --------
    >>> model = fusemap.integrate(sections)  # doctest: +SKIP
    >>> fusemap.pl.integration_figures(sections, model.section_names, "figures/")  # doctest: +SKIP
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    free = set(no_coordinates) | {n for n, a in zip(names, sections) if SPATIAL_KEY not in a.obsm}
    spatial = [(n, a) for n, a in zip(names, sections) if n not in free]
    for key, label in ((CELL_EMBEDDING, "cell"), (SPATIAL_EMBEDDING, "spatial")):
        use = list(zip(names, sections)) if label == "cell" else spatial
        if not use:
            continue
        pooled = cluster_and_umap(pooled_embedding([a for _, a in use], [n for n, _ in use], key, list(free)),
                                  resolution=FIGURE_RESOLUTION[label], seed=seed)
        line = mixing_line(pooled)
        fig = umap_figure(pooled, f"{label} embedding", [SECTION_COLUMN, "cluster", "cell_type", "region"])
        written.append(_save(fig, out_dir / f"umap_{label}.png", line))
        if not spatial:
            continue
        fig = spatial_figure(pooled, "cluster", f"{label} embedding clusters on the tissue")
        written.append(_save(fig, out_dir / f"spatial_{label}_clusters.png", line))
    return written


FIGURE_RESOLUTION = {"cell": 0.8, "spatial": 0.3}
"""Leiden resolution of the figures' clusters, per embedding."""


def mixing_line(pooled: ad.AnnData) -> str:
    """One sentence on section mixing of the pooled embedding's clusters."""
    from ..mixing import shared_clusters

    share, flags = shared_clusters(pooled.obs["cluster"].astype(str).to_numpy(),
                                   pooled.obs[SECTION_COLUMN].astype(str).to_numpy())
    return (f"{flags.sum()} of {len(flags)} clusters, holding {100 * share:.0f} % of the cells, are shared by "
            f"all {pooled.obs[SECTION_COLUMN].nunique()} sections (each section at least a third of its "
            "proportional share)")


def _save(fig: plt.Figure, path: Path, caption: str | None = None) -> Path:
    if caption:
        fig.text(0.5, -0.01, caption, ha="center", va="top", fontsize=9, wrap=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


# -- SpatialData: embedding clusters drawn on the cells' own shapes ---------------------------------------
def tissue_clusters(sdata, key: str = SPATIAL_EMBEDDING, *, table: str | Sequence[str] | None = None,
                    cluster_key: str | None = None, resolution: float = 0.8, seed: int = 0,
                    coordinate_system: str = "global", backend: str = "matplotlib",
                    out: str | Path | None = None) -> plt.Figure:
    """Leiden clusters of an embedding of a SpatialData object, drawn on the cells' own shapes.

    Clusters are computed over the rows of all chosen tables together (so colours mean the same in
    every panel) and stored in each table's ``obs[cluster_key]``, so saving the store keeps them.
    One panel per annotated element, in ``coordinate_system``.

    Parameters
    ----------
    sdata
        A SpatialData object whose tables hold the embedding (after :func:`fusemap.integrate` or
        :func:`fusemap.map_query` on it).
    key
        obsm key of the embedding (``X_fusemap_spatial`` for regions, ``X_fusemap_cell`` for cell
        types).
    table
        Table name(s) to use; default: every table annotating an element.
    cluster_key
        obs column the clusters are written to; default ``fusemap_spatial_cluster`` or
        ``fusemap_cell_cluster``.
    resolution
        Leiden resolution.
    seed
        Seed of the neighbour graph and Leiden.
    coordinate_system
        Coordinate system the elements are drawn in (their transformations are applied).
    backend
        ``'matplotlib'``: circles and polygons drawn as themselves, labels and points as
        centroids; ``'spatialdata-plot'``: drawn by spatialdata-plot (must be installed).
    out
        Write the figure to this file (PNG, 110 dpi).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        For an unknown backend, or tables that hold no ``obsm[key]``.

    Examples
    --------
    >>> import spatialdata as sd  # doctest: +SKIP
    >>> sdata = sd.read_zarr("brain.zarr")  # doctest: +SKIP
    >>> model = fusemap.integrate(sdata)  # doctest: +SKIP
    >>> fusemap.pl.tissue_clusters(sdata, resolution=0.3, out="regions.png")  # doctest: +SKIP
    """
    from ..io.spatialdata import _groups, annotating_tables

    if backend not in ("matplotlib", "spatialdata-plot"):
        raise ValueError(f"backend={backend!r}: use 'matplotlib' or 'spatialdata-plot'.")
    tables = annotating_tables(sdata) if table is None else ([table] if isinstance(table, str) else list(table))
    missing = [t for t in tables if t not in sdata.tables or key not in sdata.tables[t].obsm]
    if missing or not tables:
        raise ValueError(f"tables {missing or tables} hold no obsm[{key!r}]; run fusemap.integrate on the "
                         "SpatialData object first (or name tables with table=).")
    label = "spatial" if key == SPATIAL_EMBEDDING else "cell" if key == CELL_EMBEDDING else key
    cluster_key = cluster_key or f"fusemap_{label}_cluster"
    pooled = ad.AnnData(np.zeros((sum(sdata.tables[t].n_obs for t in tables), 0), dtype=np.float32))
    pooled.obsm["emb"] = np.vstack([np.asarray(sdata.tables[t].obsm[key], dtype=np.float32) for t in tables])
    import scanpy as sc

    sc.pp.neighbors(pooled, use_rep="emb", n_neighbors=15, random_state=seed)
    pooled.obs["cluster"] = _categories(leiden_on_graph(pooled, resolution, seed))
    cats = list(pooled.obs["cluster"].cat.categories)
    start = 0
    panels = []
    for t in tables:
        tab = sdata.tables[t]
        tab.obs[cluster_key] = pd.Categorical(pooled.obs["cluster"].to_numpy()[start:start + tab.n_obs],
                                              categories=cats)
        start += tab.n_obs
        panels += [(t, region, rows) for region, rows in _groups(tab, t) if region is not None]
    colors = dict(zip(cats, _palette(len(cats))))
    ncol = min(len(panels), 4)
    nrow = int(np.ceil(len(panels) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.4 * ncol, 4.2 * nrow), squeeze=False)
    for i, (t, region, rows) in enumerate(panels):
        ax = axes[i // ncol][i % ncol]
        if backend == "spatialdata-plot":
            _draw_spatialdata_plot(sdata, t, region, cluster_key, coordinate_system, ax)
        else:
            _draw_region(sdata, sdata.tables[t], region, rows, cluster_key, colors, coordinate_system, ax)
        ax.set_title(region)
    for j in range(len(panels), nrow * ncol):
        axes[j // ncol][j % ncol].axis("off")
    if backend == "matplotlib":
        handles = [plt.Line2D([], [], marker="o", ls="", color=colors[c], label=str(c)) for c in cats]
        fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=7,
                   title=cluster_key)
    fig.suptitle(f"{label} embedding clusters on the tissue ({coordinate_system})")
    fig.tight_layout()
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110, bbox_inches="tight")
    return fig


def _draw_region(sdata, tab, region, rows, cluster_key, colors, coordinate_system, ax) -> None:
    """Draw one element's instances coloured by their row's cluster (circles/polygons as themselves)."""
    import spatialdata as sd
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Circle, Polygon
    from shapely.geometry import MultiPolygon, Point

    from ..io.spatialdata import _attrs, _match_instances

    element = sd.transform(sdata[region], to_coordinate_system=coordinate_system)
    ikey = _attrs(tab)["instance_key"]
    ids = pd.Index(tab.obs[ikey].to_numpy()[rows])
    clusters = tab.obs[cluster_key].to_numpy()[rows]
    if region in sdata.shapes:
        pos = _match_instances(ids, pd.Index(element.index))
        ok = pos >= 0
        geoms = element.geometry.to_numpy()[pos[ok]]
        radius = element["radius"].to_numpy()[pos[ok]] if "radius" in element else None
        patches, face = [], []
        for k, (g, c) in enumerate(zip(geoms, clusters[ok])):
            polys = []
            if isinstance(g, Point):
                polys = [Circle((g.x, g.y), float(radius[k]) if radius is not None else 1.0)]
            else:
                for part in (g.geoms if isinstance(g, MultiPolygon) else [g]):
                    polys.append(Polygon(np.asarray(part.exterior.coords)[:, :2], closed=True))
            patches += polys
            face += [colors[c]] * len(polys)
        ax.add_collection(PatchCollection(patches, facecolors=face, edgecolors="none"))
        ax.autoscale_view()
    else:  # points or labels: the centroids of the instances
        cent = sd.get_centroids(sdata[region], coordinate_system=coordinate_system).compute()
        pos = _match_instances(ids, pd.Index(cent.index))
        ok = pos >= 0
        xy = cent[["x", "y"]].to_numpy()[pos[ok]]
        ax.scatter(xy[:, 0], xy[:, 1], s=4, c=[colors[c] for c in clusters[ok]], linewidths=0)
    ax.set_aspect("equal")
    ax.invert_yaxis()  # image convention, as spatialdata draws it
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_spatialdata_plot(sdata, table, region, cluster_key, coordinate_system, ax) -> None:
    import spatialdata_plot  # noqa: F401  (registers the .pl accessor)

    render = sdata.pl.render_shapes if region in sdata.shapes else (
        sdata.pl.render_points if region in sdata.points else sdata.pl.render_labels)
    render(region, color=cluster_key, table_name=table).pl.show(coordinate_systems=coordinate_system, ax=ax,
                                                                title=region)
