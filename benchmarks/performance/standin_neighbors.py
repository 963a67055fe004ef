"""The hand-written stand-ins that fusemap carried until the neighbour and graph code moved to the
field's libraries (``fusemap.neighbors``, squidpy's Delaunay builder): exact kNN, UMAP's fuzzy
weights and an igraph Leiden call, and a scipy Delaunay graph. Kept here only as the comparator of
``standins.py``, which measured what they saved (results/standins.csv); the package no longer uses them.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def knn_connectivities(emb: np.ndarray, n_neighbors: int = 15) -> sp.csr_matrix:
    """Exact kNN graph with UMAP's fuzzy-union edge weights (what ``sc.pp.neighbors`` computes).

    Written with numpy instead of calling scanpy/umap: umap's numba kernels are compiled afresh in
    every process, which cost ~25 CPU seconds per training run, more than all epochs of a small
    atlas. For each cell: rho = distance to its nearest neighbour, sigma such that
    sum_j exp(-(d_j - rho) / sigma) = log2(k) (bisection, as UMAP does), directed weights
    exp(-(d - rho) / sigma), then the fuzzy union A + Aᵀ - A∘Aᵀ.
    """
    x = np.asarray(emb, dtype=np.float32)
    n = x.shape[0]
    k = min(n_neighbors, n)
    dist, idx = exact_knn(x, k)
    # the cell itself first (an exact duplicate may come first instead)
    own = idx == np.arange(n)[:, None]
    order = np.argsort(~own, axis=1, kind="stable")
    idx, dist = np.take_along_axis(idx, order, 1), np.take_along_axis(dist, order, 1).astype(np.float64)
    d = dist[:, 1:]
    pos = np.where(d > 0, d, np.inf)
    rho = np.where(np.isfinite(pos.min(1)), pos.min(1), 0.0)
    target = np.log2(k)
    lo, hi, mid = np.zeros(n), np.full(n, np.inf), np.ones(n)
    active = np.ones(n, dtype=bool)
    shifted = np.maximum(d - rho[:, None], 0.0)  # exp(0) = 1 at or below rho; no overflow in either branch
    for _ in range(64):
        psum = np.exp(-shifted / mid[:, None]).sum(1)
        active &= np.abs(psum - target) >= 1e-5
        if not active.any():
            break
        over = active & (psum > target)
        under = active & ~over
        hi[over] = mid[over]
        mid[over] = (lo[over] + hi[over]) / 2
        lo[under] = mid[under]
        inf = under & np.isinf(hi)
        mid[inf] *= 2
        fin = under & ~np.isinf(hi)
        mid[fin] = (lo[fin] + hi[fin]) / 2
    mean_all = dist.mean()
    sigma = np.where(rho > 0, np.maximum(mid, 1e-3 * dist.mean(1)), np.maximum(mid, 1e-3 * mean_all))
    w = np.exp(-np.maximum(dist - rho[:, None], 0.0) / sigma[:, None])
    w[idx == np.arange(n)[:, None]] = 0.0
    a = sp.csr_matrix((w.ravel(), (np.repeat(np.arange(n), k), idx.ravel())), shape=(n, n))
    a.eliminate_zeros()
    prod = a.multiply(a.T)
    conn = (a + a.T - prod).tocsr()
    conn.eliminate_zeros()
    return conn


def exact_knn(x: np.ndarray, k: int, block_entries: int = 8_000_000,
              ref: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices of each row's ``k`` nearest rows of ``ref`` (default: of ``x`` itself,
    the row itself included), by brute force.

    Candidates come from float32 matrix products in blocks of rows (``k + 8`` per row, so rounding
    cannot push a true neighbour out), then their distances are recomputed exactly in float64 as
    norms of differences and sorted (ties by index). Written here rather than calling
    scikit-learn, whose import costs ~50 MB and seconds in every training process for this call.
    """
    import torch

    x32 = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    x64 = np.asarray(x, dtype=np.float64)
    r32 = x32 if ref is None else torch.from_numpy(np.ascontiguousarray(ref, dtype=np.float32))
    r64 = x64 if ref is None else np.asarray(ref, dtype=np.float64)
    n, n_ref = x32.shape[0], r32.shape[0]
    sq = (r32 * r32).sum(1)
    m = min(n_ref, k + 8)
    rows = max(1, block_entries // max(n_ref, 1))
    dist = np.empty((n, k))
    idx = np.empty((n, k), dtype=np.int64)
    with torch.no_grad():
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            # |y|^2 - 2 x.y ranks the rows like |x - y|^2 (|x|^2 is constant along a row)
            score = torch.addmm(sq[None, :], x32[start:stop], r32.T, alpha=-2.0)
            cand = torch.topk(score, m, dim=1, largest=False, sorted=False).indices.numpy()
            diff = x64[start:stop, None, :] - r64[cand]
            d = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
            order = np.lexsort((cand, d), axis=1)[:, :k]  # by distance, ties by index
            idx[start:stop] = np.take_along_axis(cand, order, 1)
            dist[start:stop] = np.take_along_axis(d, order, 1)
    return dist, idx


class _IgraphRandom:
    """The interface igraph wants from a random generator, drawn from a seeded numpy RandomState,
    so Leiden is reproducible without touching the global ``random`` module."""

    def __init__(self, seed: int):
        self._rs = np.random.RandomState(seed)

    def getrandbits(self, k: int) -> int:
        return int(self._rs.tomaxint()) & ((1 << k) - 1)

    def randint(self, a: int, b: int) -> int:
        return int(self._rs.randint(a, b + 1))

    def random(self) -> float:
        return float(self._rs.random_sample())

    def gauss(self, mu: float, sigma: float) -> float:
        return float(self._rs.normal(mu, sigma))


def leiden_labels(emb: np.ndarray, resolution: float, seed: int, n_neighbors: int = 15) -> np.ndarray:
    """Leiden clusters (modularity, 2 iterations) of the fuzzy kNN graph of ``emb``.

    Calls igraph directly, as ``sc.tl.leiden(flavor="igraph", n_iterations=2)`` does, with the same
    graph (every stored entry an edge) and the same seeded generator, so the labels are scanpy's
    (``tests/core/test_balance_graph.py``) without scanpy's import (~150 MB, seconds of CPU) in training.
    """
    import igraph
    import random

    x = np.asarray(emb, dtype=np.float32)
    conn = knn_connectivities(x, n_neighbors=min(n_neighbors, max(x.shape[0] - 1, 2)))
    rows, cols = conn.nonzero()
    # pairs of Python ints (zip of two flat lists builds them 2.5x faster than a 2-D array's tolist())
    g = igraph.Graph(n=x.shape[0], edges=list(zip(rows.tolist(), cols.tolist())), directed=False)
    g.es["weight"] = np.asarray(conn[rows, cols]).ravel().astype(np.float64)
    igraph.set_random_number_generator(_IgraphRandom(seed))
    try:
        part = g.community_leiden(objective_function="modularity", weights="weight", resolution=resolution,
                                  n_iterations=2)
    finally:
        igraph.set_random_number_generator(random)
    return np.asarray(part.membership, dtype=int)



def delaunay_graph(coords: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Connectivities (float32 ones) and Euclidean edge lengths of the Delaunay triangulation,
    in the layout squidpy stores (CSR, sorted indices, empty diagonal)."""
    from scipy.spatial import Delaunay, QhullError

    n = coords.shape[0]
    if n < 3 or len(np.unique(coords, axis=0)) < 3:
        raise ValueError(
            f"the spatial coordinates hold {len(np.unique(coords, axis=0)) if n else 0} distinct position(s); a "
            "Delaunay graph needs at least 3 that are not on one line. Check obsm['spatial'], or use "
            "graph method 'knn' (--graph knn)."
        )
    # A large offset (e.g. stage coordinates near 1e12) costs qhull its precision and most of the
    # edges: such coordinates are centred first. Others are triangulated as they are, scaled by a
    # power of two (exact), so the graph stays squidpy's (ties on grids break the same way).
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    extent = float(np.max(hi - lo))
    centre = (lo + hi) / 2
    shifted = coords - centre if np.max(np.abs(centre)) > 100 * extent else coords
    scale = 2.0 ** -np.round(np.log2(extent)) if extent > 0 else 1.0
    try:
        indptr, indices = Delaunay(shifted * scale).vertex_neighbor_vertices
    except QhullError as exc:
        raise ValueError(
            "the spatial coordinates are degenerate for a Delaunay graph (all on one line, or too few "
            f"distinct positions: qhull says {str(exc).splitlines()[0]!r}). Check obsm['spatial'], or use "
            "graph method 'knn' (--graph knn)."
        ) from exc
    rows = np.repeat(np.arange(n), np.diff(indptr))
    lengths = np.linalg.norm(coords[rows] - coords[indices], axis=1)
    conn = sp.csr_matrix((np.ones(indices.size, dtype=np.float32), indices, indptr), shape=(n, n))
    dist = sp.csr_matrix((lengths, indices.copy(), indptr.copy()), shape=(n, n))
    conn.sort_indices()
    dist.sort_indices()
    return conn, dist
