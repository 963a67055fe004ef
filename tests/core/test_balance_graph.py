"""The kNN graph behind the balance weights (fusemap.balance.knn_connectivities) is the graph
scanpy builds (exact kNN + UMAP fuzzy union), computed without umap's per-process numba compile."""

import numpy as np
import scipy.sparse as sp

from fusemap.balance import knn_connectivities, leiden_labels


def test_connectivities_equal_scanpys_and_clusters_agree():
    import anndata as ad
    import scanpy as sc

    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4.0, size=(5, 8))
    x = (centres[rng.integers(0, 5, 600)] + rng.normal(size=(600, 8))).astype(np.float32)
    a = ad.AnnData(x)
    sc.pp.neighbors(a, use_rep="X", n_neighbors=15, random_state=0)  # exact below 4096 cells
    ref = a.obsp["connectivities"]
    mine = knn_connectivities(x, 15)
    assert sp.isspmatrix_csr(mine) and mine.nnz == ref.nnz
    assert abs(ref - mine).max() < 1e-5
    assert abs(mine - mine.T).max() == 0 and mine.diagonal().max() == 0
    assert mine.data.min() > 0 and mine.data.max() <= 1.0 + 1e-12
    sc.tl.leiden(a, resolution=1.0, random_state=0, flavor="igraph", n_iterations=2, directed=False)
    assert np.array_equal(a.obs["leiden"].astype(int).to_numpy(), leiden_labels(x, 1.0, 0))


def test_duplicate_cells_and_tiny_inputs():
    x = np.zeros((5, 3), dtype=np.float32)  # all identical: every distance is zero
    c = knn_connectivities(x, 15)
    assert c.shape == (5, 5) and np.allclose(c.toarray(), 1 - np.eye(5))
    x = np.random.default_rng(1).normal(size=(40, 4)).astype(np.float32)
    x[3] = x[7]
    c = knn_connectivities(x, 15)
    assert c[3, 7] == 1.0 and c[3, 3] == 0


def test_exact_knn_matches_brute_force_distances():
    from fusemap.balance import exact_knn

    rng = np.random.default_rng(1)
    x = rng.normal(size=(700, 12)).astype(np.float32)
    x[5] = x[6]  # a duplicate pair: distance 0, tie broken by index
    d_true = np.sqrt(((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1))
    for k, block in ((15, 10_000), (15, 50), (700, 8_000_000)):  # several row blocks; k = all rows
        dist, idx = exact_knn(x, k, block_entries=block)
        assert dist.shape == idx.shape == (700, k)
        expect = np.lexsort((np.tile(np.arange(700), (700, 1)), d_true), axis=1)[:, :k]
        assert np.array_equal(idx, expect)
        assert np.allclose(dist, np.take_along_axis(d_true, expect, 1), atol=1e-12)
    assert idx[5, 0] == 5 and idx[6, 0] == 5 and dist[6, 0] == 0.0


def test_exact_knn_against_another_set():
    from fusemap.balance import exact_knn

    rng = np.random.default_rng(2)
    ref, query = rng.normal(size=(300, 8)), rng.normal(size=(90, 8))
    d_true = np.sqrt(((query[:, None, :] - ref[None, :, :]) ** 2).sum(-1))
    dist, idx = exact_knn(query, 10, block_entries=3_000, ref=ref)  # 10 query rows per block
    assert idx.shape == (90, 10) and idx.max() < 300
    assert np.array_equal(idx, np.argsort(d_true, axis=1, kind="stable")[:, :10])
    assert np.allclose(dist, np.sort(d_true, axis=1)[:, :10], atol=1e-12)
