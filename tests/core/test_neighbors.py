"""fusemap.neighbors: the one kNN search, kNN graph and Leiden call of the package, which must be
the libraries' results (scanpy's graph and Leiden, scikit-learn's exact search)."""

import numpy as np
import scipy.sparse as sp

from fusemap.neighbors import knn_graph, leiden, leiden_labels, nearest


def blobs(n, dims=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(5, dims))
    return (centres[rng.integers(0, 5, n)] + rng.normal(size=(n, dims))).astype(np.float32)


def test_graph_and_clusters_are_scanpys():
    import anndata as ad
    import scanpy as sc

    x = blobs(600)
    a = ad.AnnData(x)
    sc.pp.neighbors(a, use_rep="X", n_neighbors=15, random_state=0)  # exact below 4096 cells
    ref = a.obsp["connectivities"]
    mine = knn_graph(x, 15)
    assert sp.isspmatrix_csr(mine) and mine.nnz == ref.nnz and abs(ref - mine).max() < 1e-6
    assert abs(mine - mine.T).max() == 0 and mine.diagonal().max() == 0
    sc.tl.leiden(a, resolution=1.0, random_state=0, flavor="igraph", n_iterations=2, directed=False)
    labels = leiden_labels(x, 1.0, 0)
    assert labels.dtype.kind == "i" and len(np.unique(labels)) == 5  # the five blobs
    assert np.array_equal(a.obs["leiden"].astype(int).to_numpy(), labels)
    assert np.array_equal(leiden(mine, 1.0, 0), labels)


def test_balance_graph_is_exact_above_scanpys_approximate_size():
    """Above 4,096 rows scanpy switches to pynndescent; the balance weights' graph stays exact."""
    x = blobs(4500, dims=4, seed=3)
    g = knn_graph(x, 10)
    idx = nearest(x, x, 10)  # exact (scikit-learn)
    rows = np.arange(0, 4500, 97)
    for r in rows:
        assert set(g[r].indices) >= set(idx[r][idx[r] != r])  # every exact neighbour is an edge


def test_nearest_is_brute_force_and_tiny_inputs_work():
    rng = np.random.default_rng(2)
    ref, query = rng.normal(size=(300, 8)), rng.normal(size=(90, 8))
    d_true = np.sqrt(((query[:, None, :] - ref[None, :, :]) ** 2).sum(-1))
    idx, dist = nearest(ref, query, 10, return_distance=True)
    assert idx.shape == dist.shape == (90, 10) and np.array_equal(idx, np.argsort(d_true, axis=1)[:, :10])
    assert np.allclose(dist, np.sort(d_true, axis=1)[:, :10], atol=1e-9)
    assert nearest(ref[:3], query, 10).shape == (90, 3)  # k capped at the reference size
    assert np.array_equal(leiden_labels(np.zeros((2, 3)), 1.0, 0), [0, 0])
    x = np.zeros((6, 3), dtype=np.float32)  # identical cells: one cluster, no error
    assert len(np.unique(leiden_labels(x, 1.0, 0))) == 1


def test_umap_kernels_are_cached_on_disk_and_the_switch_leaves_umap_alone(monkeypatch):
    """knn_graph turns on numba's disk cache for UMAP's two fuzzy-weight kernels (a fresh process
    then loads them instead of compiling, benchmarks/performance/jit_cache.py) and the graph stays
    scanpy's; FUSEMAP_NUMBA_CACHE=0 leaves umap's kernels as they ship."""
    import os

    import umap.umap_ as umap_

    import fusemap.neighbors as nb

    monkeypatch.delenv("FUSEMAP_NUMBA_CACHE", raising=False)
    g = knn_graph(blobs(300), 10)
    assert g.shape == (300, 300) and g.nnz > 0
    for kernel in (umap_.smooth_knn_dist, umap_.compute_membership_strengths):
        assert type(kernel._cache).__name__ == "FunctionCache"
        assert os.path.exists(kernel._cache._cache_path)

    calls = []

    class Kernel:
        _cache = None

        def enable_caching(self):
            calls.append(1)

    monkeypatch.setattr(umap_, "smooth_knn_dist", Kernel())
    monkeypatch.setattr(umap_, "compute_membership_strengths", Kernel())
    monkeypatch.setenv("FUSEMAP_NUMBA_CACHE", "0")
    nb._cache_umap_kernels()
    assert calls == []
    monkeypatch.setenv("FUSEMAP_NUMBA_CACHE", "1")
    nb._cache_umap_kernels()
    assert calls == [1, 1]
