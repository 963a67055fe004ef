"""Spatial neighbourhood graphs (squidpy's graphs, stored in its keys) and GCN normalisation.

Keys: the connectivity matrix lives in ``obsp['spatial_connectivities']``, edge lengths in
``obsp['spatial_distances']`` and squidpy's parameters in ``uns['spatial_neighbors']``; fusemap adds
the method it used under ``uns['spatial_neighbors']['params']['fusemap_method']``. A graph already
stored under these keys is reused (``GraphConfig.rebuild=True`` forces a new one).
"""

from __future__ import annotations

import importlib
import logging
import warnings

import numpy as np
import scipy.sparse as sp

from ._constants import GRAPH_CONNECTIVITIES, GRAPH_DISTANCES, GRAPH_UNS, SPATIAL_KEY
from .config import GraphConfig
from .errors import FuseMapInputError, FuseMapWarning

log = logging.getLogger("fusemap")


def build_graph(adata, cfg: GraphConfig, *, spatial_key: str = SPATIAL_KEY,
                library_key: str | None = None) -> None:
    """Build the spatial graph with squidpy and store it in squidpy's keys of ``adata``.

    Delaunay graphs of one library are checked first (at least three positions not on one line)
    and built on centred coordinates when their offset dwarfs their extent (stage coordinates near
    1e12 cost qhull its precision and most of the edges).
    """
    common = {"spatial_key": spatial_key, "library_key": library_key, "key_added": "spatial"}
    target = adata
    if cfg.method == "delaunay" and library_key is None:
        coords = np.asarray(adata.obsm[spatial_key], dtype=np.float64)
        _check_delaunay_input(coords)
        centred = _centred(coords)
        if centred is not coords:
            import anndata as ad

            target = ad.AnnData(np.zeros((coords.shape[0], 0), dtype=np.float32))
            target.obsm[spatial_key] = centred
    importlib.import_module("squidpy")  # first: importing it sets the level of its logger

    quiet = logging.getLogger("spatialdata._logging")  # squidpy logs each graph build at INFO through it
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        _squidpy_build(target, cfg, common)
    except Exception as exc:
        if type(exc).__name__ != "QhullError":
            raise
        raise FuseMapInputError(
            "the spatial coordinates are degenerate for a Delaunay graph (all on one line, or too few "
            f"distinct positions: qhull says {str(exc).splitlines()[0]!r}). Check obsm['spatial'], or use "
            "graph method 'knn' (--graph knn)."
        ) from exc
    finally:
        quiet.setLevel(level)
    if target is not adata:
        adata.obsp[GRAPH_CONNECTIVITIES] = target.obsp[GRAPH_CONNECTIVITIES]
        adata.obsp[GRAPH_DISTANCES] = target.obsp[GRAPH_DISTANCES]
        adata.uns[GRAPH_UNS] = target.uns[GRAPH_UNS]
    params = adata.uns.setdefault(GRAPH_UNS, {}).setdefault("params", {})
    params["fusemap_method"] = cfg.method
    if cfg.method == "knn":
        params["n_neighbors"] = int(cfg.n_neighbors)


def _check_delaunay_input(coords: np.ndarray) -> None:
    n_distinct = len(np.unique(coords, axis=0)) if coords.shape[0] else 0
    if n_distinct < 3:
        raise FuseMapInputError(
            f"the spatial coordinates hold {n_distinct} distinct position(s); a Delaunay graph needs at "
            "least 3 that are not on one line. Check obsm['spatial'], or use graph method 'knn' (--graph knn)."
        )


def _centred(coords: np.ndarray) -> np.ndarray:
    """``coords`` centred when their offset exceeds 100x their extent, else ``coords`` itself."""
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    extent = float(np.max(hi - lo))
    centre = (lo + hi) / 2
    return coords - centre if np.max(np.abs(centre)) > 100 * extent else coords


def _squidpy_build(adata, cfg: GraphConfig, common: dict) -> None:
    import squidpy as sq

    if hasattr(sq.gr, "spatial_neighbors_delaunay"):  # squidpy >= 1.8 has one builder per method
        if cfg.method == "delaunay":
            sq.gr.spatial_neighbors_delaunay(adata, **common)
        elif cfg.method == "knn":
            sq.gr.spatial_neighbors_knn(adata, n_neighs=int(cfg.n_neighbors), **common)
        else:
            sq.gr.spatial_neighbors_radius(adata, radius=float(cfg.radius), **common)
    else:
        kwargs = ({"delaunay": True} if cfg.method == "delaunay" else
                  {"n_neighs": int(cfg.n_neighbors)} if cfg.method == "knn" else {"radius": float(cfg.radius)})
        sq.gr.spatial_neighbors(adata, coord_type="generic", **common, **kwargs)


def has_graph(adata) -> bool:
    return GRAPH_CONNECTIVITIES in adata.obsp


def ensure_graph(adata, cfg: GraphConfig, *, spatial_key: str = SPATIAL_KEY,
                 library_key: str | None = None) -> bool:
    """Make sure ``adata`` holds a spatial graph; returns True when one was built."""
    if has_graph(adata) and not cfg.rebuild:
        log.info("reusing the spatial graph in obsp[%r]", GRAPH_CONNECTIVITIES)
        return False
    build_graph(adata, cfg, spatial_key=spatial_key, library_key=library_key)
    return True


def adjacency(connectivities, coords: np.ndarray, max_edge_length: float | None = None) -> sp.csr_matrix:
    """Binary, symmetric adjacency without self-loops; edges longer than ``max_edge_length`` dropped."""
    a = sp.csr_matrix(connectivities, dtype=np.float64, copy=True)
    a = a.maximum(a.T).tocsr()
    a.setdiag(0)
    a.eliminate_zeros()
    a.data[:] = 1.0
    if max_edge_length is not None and a.nnz:
        coo = a.tocoo()
        length = np.linalg.norm(coords[coo.row] - coords[coo.col], axis=1)
        keep = length <= max_edge_length
        a = sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=a.shape)
    a.sort_indices()
    return a


def gcn_normalize(adj: sp.spmatrix) -> sp.csr_matrix:
    """Â = D^-1/2 (A + I) D^-1/2 with D the degree of A + I (symmetric normalisation)."""
    n = adj.shape[0]
    a = sp.csr_matrix(adj, dtype=np.float64) + sp.identity(n, format="csr")
    deg = np.asarray(a.sum(axis=1)).ravel()
    d = 1.0 / np.sqrt(deg)
    out = sp.csr_matrix(sp.diags(d) @ a @ sp.diags(d), dtype=np.float32)
    out.sort_indices()
    return out


def section_graph(adata, cfg: GraphConfig, *, spatial_key: str = SPATIAL_KEY) -> sp.csr_matrix:
    """Normalised adjacency Â of one section, building and storing the squidpy graph if needed."""
    ensure_graph(adata, cfg, spatial_key=spatial_key)
    coords = np.asarray(adata.obsm[spatial_key], dtype=np.float64)
    return gcn_normalize(adjacency(adata.obsp[GRAPH_CONNECTIVITIES], coords, cfg.max_edge_length))


ISOLATED_WARN = 0.05
"""Share of cells without any graph neighbour above which a section gets a warning ..."""
ISOLATED_REFUSE = 0.5
"""... and above which it is refused: its spatial embedding would be its cell embedding."""


def check_graph(a_hat: sp.csr_matrix, name: str, cfg: GraphConfig) -> None:
    """Refuse a section whose graph lost (almost) all edges, warn when many cells are isolated.

    A graph without edges is not an error anywhere else: the spatial encoder then sees each cell
    alone and the spatial embedding silently equals the cell embedding."""
    summary = graph_summary(a_hat)
    n = a_hat.shape[0]
    share = summary["isolated_cells"] / max(n, 1)
    if share <= ISOLATED_WARN:
        return
    cause = (f"max_edge_length={cfg.max_edge_length:g} drops the longer edges; raise it (it is in the "
             "coordinates' units, which differ between technologies) or leave it unset"
             if cfg.max_edge_length is not None else
             f"radius={cfg.radius:g} reaches no neighbour for them; raise it (coordinate units)"
             if cfg.method == "radius" else "check the section's obsm['spatial']")
    message = (f"section {name!r}: the spatial graph leaves {summary['isolated_cells']} of {n} cells "
               f"({share:.0%}) without a neighbour (mean degree {summary['mean_degree']:.2f}); {cause}.")
    if share >= ISOLATED_REFUSE:
        raise FuseMapInputError(message + " Without edges the spatial embedding equals the cell embedding.")
    warnings.warn(message, FuseMapWarning, stacklevel=3)


def graph_summary(a_hat: sp.csr_matrix) -> dict:
    deg = np.diff(a_hat.indptr) - 1  # minus the self-loop
    return {
        "n_edges": int(deg.sum() // 2),
        "mean_degree": float(deg.mean()) if deg.size else 0.0,
        "isolated_cells": int((deg == 0).sum()),
    }


__all__ = [
    "GRAPH_CONNECTIVITIES",
    "GRAPH_DISTANCES",
    "adjacency",
    "build_graph",
    "check_graph",
    "ensure_graph",
    "gcn_normalize",
    "section_graph",
]
