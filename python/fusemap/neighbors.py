"""Nearest neighbours, kNN graphs and Leiden clusters: the one place every layer gets them from.

Balance weights, the section-mixing check, novelty, the kNN imputation read-out and ``tl`` / ``pl``
all call these three functions, which call the field's libraries: scikit-learn (exact search) or
pynndescent (approximate, above :data:`EXACT_KNN_MAX` reference rows), scanpy's ``pp.neighbors``
(UMAP's fuzzy connectivities) and scanpy's igraph Leiden.

Earlier versions carried their own exact kNN, fuzzy weights, Leiden call and Delaunay builder to
spare training the import of scanpy, umap and squidpy. ``benchmarks/performance/standins.py``
measured what that saved (``benchmarks/performance/results/standins.csv``, 1 thread): 23 s per run
at 100 k cells, 0.6 % of the shortest default run (42 epochs of 93 s), and 12 s at 10 k cells, at
most 8.7 % (of 42 epochs of 3.4 s; real runs take more epochs). Below the 10 % that would justify a
hand-written copy, so the libraries are used. Most of those 12 s was numba compiling UMAP's two
fuzzy-weight kernels in every process (umap does not cache them on disk); :func:`knn_graph` now
turns numba's on-disk cache on for those two, so only the first run on a machine compiles them.
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np
import scipy.sparse as sp

EXACT_KNN_MAX = 100_000
"""Reference rows up to which neighbour searches are exact (scikit-learn); approximate above."""


def nearest(ref: np.ndarray, query: np.ndarray, k: int, *, seed: int = 0,
            return_distance: bool = False):
    """Indices (and, with ``return_distance``, distances) of each query row's ``k`` nearest rows of
    ``ref``: exact up to :data:`EXACT_KNN_MAX` rows of ``ref``, approximate (pynndescent) above."""
    ref, query = np.asarray(ref), np.asarray(query)
    k = int(min(k, len(ref)))
    if len(ref) <= EXACT_KNN_MAX:
        from sklearn.neighbors import NearestNeighbors

        dist, idx = NearestNeighbors(n_neighbors=k).fit(ref).kneighbors(query)
    else:
        import pynndescent

        idx, dist = pynndescent.NNDescent(ref, n_neighbors=max(k, 15), random_state=seed).query(query, k=k)
    return (idx, dist) if return_distance else idx


def knn_graph(emb: np.ndarray, n_neighbors: int = 15, seed: int = 0, exact: bool = True) -> sp.csr_matrix:
    """Symmetric kNN graph with UMAP's fuzzy-union weights, as ``sc.pp.neighbors`` stores it in
    ``obsp['connectivities']``. ``exact``: the neighbour search is exact at any size (scikit-learn
    brute force; what training's balance weights use, so they do not depend on an approximate
    index); otherwise scanpy's own choice (exact below 4,096 rows, pynndescent above)."""
    import anndata as ad
    import scanpy as sc

    _cache_umap_kernels()
    x = np.asarray(emb, dtype=np.float32)
    a = ad.AnnData(np.zeros((x.shape[0], 0), dtype=np.float32))
    a.obsm["emb"] = x
    k = int(min(n_neighbors, max(x.shape[0] - 1, 2)))
    with _torch_threads_kept():
        sc.pp.neighbors(a, use_rep="emb", n_neighbors=k, random_state=seed,
                        transformer="sklearn" if exact else None)
    return sp.csr_matrix(a.obsp["connectivities"])


def _cache_umap_kernels() -> None:
    """Let numba keep UMAP's compiled fuzzy-weight kernels on disk, as pynndescent does for its own.

    Why: a process's first kNN graph (the balance step of every training run, before the balanced
    phase starts) took 8.4 s with umap as it ships and 2.7 s with the cache, most of the rest being
    scanpy's import (median of 3 fresh processes each, 5,000 cells, one thread;
    ``benchmarks/performance/results/jit_cache.csv``). The compiled code, and so every graph, is
    the same.
    numba writes new cache files next to umap's sources, or in its user-wide cache folder when
    those are read-only, and never touches other files; ``FUSEMAP_NUMBA_CACHE=0`` leaves umap as
    it is. Where no cache folder is writable the kernels are compiled as before."""
    if os.environ.get("FUSEMAP_NUMBA_CACHE", "1") == "0":
        return
    try:
        import umap.umap_ as umap_
    except ImportError:  # scanpy then fails with its own message
        return
    for kernel in (getattr(umap_, "smooth_knn_dist", None), getattr(umap_, "compute_membership_strengths", None)):
        cache = getattr(kernel, "_cache", None)
        if kernel is None or not hasattr(kernel, "enable_caching") or type(cache).__name__ == "FunctionCache":
            continue
        try:
            kernel.enable_caching()
        except Exception:  # noqa: BLE001  no writable cache folder: compile in memory as before
            pass


@contextlib.contextmanager
def _torch_threads_kept():
    """UMAP's numba kernels share the OpenMP runtime with torch and set its thread count to all
    cores; the caller's ``torch.set_num_threads`` (training's, a user's) is put back afterwards."""
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        if threads is not None:
            torch.set_num_threads(threads)


def leiden(conn: sp.spmatrix, resolution: float, seed: int, n_iterations: int = 2) -> np.ndarray:
    """Integer Leiden labels (modularity; scanpy's igraph flavour) of the weighted graph ``conn``."""
    import anndata as ad
    import scanpy as sc

    n = conn.shape[0]
    a = ad.AnnData(np.zeros((n, 0), dtype=np.float32))
    sc.tl.leiden(a, resolution=resolution, random_state=seed, flavor="igraph", n_iterations=n_iterations,
                 directed=False, adjacency=sp.csr_matrix(conn), key_added="_leiden")
    return a.obs["_leiden"].astype(int).to_numpy()


def leiden_labels(emb: np.ndarray, resolution: float, seed: int, n_neighbors: int = 15,
                  n_iterations: int = 2) -> np.ndarray:
    """Leiden clusters of the kNN graph of ``emb`` (:func:`knn_graph`, then :func:`leiden`)."""
    x = np.asarray(emb, dtype=np.float32)
    if x.shape[0] < 3:
        return np.zeros(x.shape[0], dtype=int)
    return leiden(knn_graph(x, n_neighbors, seed), resolution, seed, n_iterations)


__all__ = ["EXACT_KNN_MAX", "knn_graph", "leiden", "leiden_labels", "nearest"]
