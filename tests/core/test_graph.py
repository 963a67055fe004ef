"""Spatial graph invariants, reuse of squidpy's keys, and exactness of neighbourhood minibatches."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fusemap.config import GraphConfig
from fusemap.errors import FuseMapInputError
from fusemap.graph import (adjacency, build_graph, check_graph, ensure_graph, gcn_normalize,
                           section_graph)
from fusemap.sampler import make_block, neighbourhood_levels, SectionData


@pytest.fixture
def section(sim_sections):
    return sim_sections[0]


def test_delaunay_graph_invariants(section):
    a_hat = section_graph(section, GraphConfig())
    n = section.n_obs
    assert a_hat.shape == (n, n)
    assert abs(a_hat - a_hat.T).max() < 1e-7  # symmetric
    assert np.all(a_hat.diagonal() > 0)  # self-loops
    # Â = D^-1/2 (A+I) D^-1/2: the diagonal is 1/deg and rescaling by sqrt(deg) gives back A+I
    adj = adjacency(section.obsp["spatial_connectivities"], section.obsm["spatial"])
    deg = np.asarray(adj.sum(1)).ravel() + 1
    np.testing.assert_allclose(a_hat.diagonal(), 1 / deg, rtol=1e-5)
    back = sp.diags(np.sqrt(deg)) @ a_hat @ sp.diags(np.sqrt(deg))
    np.testing.assert_allclose(back.toarray(), (adj + sp.identity(n)).toarray(), atol=1e-5)
    # the spectrum of the normalised matrix lies in (-1, 1]
    ev = np.linalg.eigvalsh(a_hat.toarray())
    assert ev.max() <= 1 + 1e-5 and ev.min() > -1
    # Delaunay in the plane: about 6 neighbours per cell, none isolated
    mean_deg = adj.sum() / n
    assert 5.0 < mean_deg < 6.2
    assert (np.asarray(adj.sum(1)).ravel() > 0).all()


def test_graph_is_stored_in_squidpy_keys_and_reused(section):
    assert ensure_graph(section, GraphConfig()) is True
    assert "spatial_connectivities" in section.obsp and "spatial_distances" in section.obsp
    assert section.uns["spatial_neighbors"]["params"]["fusemap_method"] == "delaunay"
    marker = section.obsp["spatial_connectivities"].copy()
    marker[0, 1] = marker[1, 0] = 0
    marker.eliminate_zeros()
    section.obsp["spatial_connectivities"] = marker
    assert ensure_graph(section, GraphConfig(method="knn")) is False  # reused, not rebuilt
    assert section.obsp["spatial_connectivities"][0, 1] == 0
    assert ensure_graph(section, GraphConfig(method="knn", n_neighbors=4, rebuild=True)) is True
    deg = np.asarray((section.obsp["spatial_connectivities"] > 0).sum(1)).ravel()
    assert deg.min() == 4 and deg.max() == 4  # kNN rows hold exactly k neighbours


def test_radius_graph_respects_radius(section):
    section_graph(section, GraphConfig(method="radius", radius=80.0))
    coo = sp.coo_matrix(section.obsp["spatial_connectivities"])
    xy = section.obsm["spatial"]
    d = np.linalg.norm(xy[coo.row] - xy[coo.col], axis=1)
    assert d.max() <= 80.0 + 1e-4


def test_max_edge_length_prunes_long_edges(section):
    ensure_graph(section, GraphConfig())
    xy = np.asarray(section.obsm["spatial"], dtype=float)
    full = adjacency(section.obsp["spatial_connectivities"], xy)
    pruned = adjacency(section.obsp["spatial_connectivities"], xy, max_edge_length=50.0)
    coo = pruned.tocoo()
    assert np.linalg.norm(xy[coo.row] - xy[coo.col], axis=1).max() <= 50.0
    assert 0 < pruned.nnz < full.nnz
    assert abs(pruned - pruned.T).max() == 0


def test_knn_graph_is_never_dense():
    """The kNN option stays sparse for many cells (the authors' code built a dense N x N matrix)."""
    import anndata as ad

    n = 20000
    a = ad.AnnData(sp.csr_matrix((n, 3), dtype=np.float32))
    a.obsm["spatial"] = np.random.default_rng(0).uniform(0, 1000, (n, 2))
    a_hat = section_graph(a, GraphConfig(method="knn", n_neighbors=6))
    assert sp.issparse(a_hat) and a_hat.nnz < 20 * n


@pytest.mark.parametrize("hops", [1, 2, 4])
def test_blocks_reproduce_full_graph_convolution(section, hops):
    """Convolving inside a minibatch block gives the full-graph result at the seed cells."""
    a_hat = section_graph(section, GraphConfig())
    rng = np.random.default_rng(0)
    n = section.n_obs
    x = sp.csr_matrix(rng.poisson(1.0, (n, 5)).astype(np.float32))
    data = SectionData("s", x, a_hat, np.arange(5), np.arange(n), np.arange(0))
    seeds = rng.choice(n, 25, replace=False)
    block = make_block(data, 0, seeds, hops)
    levels = neighbourhood_levels(a_hat, seeds, hops)
    for i in range(1, len(levels)):
        assert np.array_equal(levels[i][: len(levels[i - 1])], levels[i - 1])  # nested lists
    h = block.x
    for adj in block.adjs:
        h = adj @ h
    full = x.toarray()
    for _ in range(hops):
        full = a_hat @ full
    np.testing.assert_allclose(h.numpy(), full[seeds], rtol=1e-5, atol=1e-5)
    assert torch.equal(block.x[: len(seeds)], torch.from_numpy(x[seeds].toarray()))


def _squidpy_delaunay(xy):
    import anndata as ad
    import squidpy as sq

    a = ad.AnnData(np.zeros((len(xy), 1), dtype=np.float32), obsm={"spatial": xy})
    sq.gr.spatial_neighbors_delaunay(a, key_added="spatial")
    return a.obsp["spatial_connectivities"], a.obsp["spatial_distances"], a.uns["spatial_neighbors"]


def delaunay_graph(xy):
    """Connectivities and distances that build_graph stores for coordinates ``xy``."""
    import anndata as ad

    a = ad.AnnData(np.zeros((len(xy), 1), dtype=np.float32), obsm={"spatial": np.asarray(xy, dtype=np.float64)})
    build_graph(a, GraphConfig())
    return a.obsp["spatial_connectivities"], a.obsp["spatial_distances"]


def test_delaunay_graph_is_squidpys(sim_sections):
    """Delaunay graphs come from squidpy's builder, stored as squidpy stores them."""
    xy = np.asarray(sim_sections[0].obsm["spatial"], dtype=np.float64)
    ref_c, ref_d, ref_uns = _squidpy_delaunay(xy)
    conn, dist = delaunay_graph(xy)
    assert conn.nnz == ref_c.nnz > 2.5 * len(xy) and (conn != ref_c).nnz == 0
    assert abs(dist - ref_d).max() == 0.0 and conn.diagonal().max() == 0
    section = sim_sections[0]
    build_graph(section, GraphConfig())
    params = dict(section.uns["spatial_neighbors"]["params"])
    assert params.pop("fusemap_method") == "delaunay" and params == dict(ref_uns["params"])


def test_delaunay_survives_large_offsets_and_other_units(sim_sections):
    xy = np.asarray(sim_sections[0].obsm["spatial"], dtype=np.float64)
    base, base_d = delaunay_graph(xy)
    for moved in (xy + 1e12, xy * 1e-3 + 5e6, xy * 1000.0):  # stage offsets, mm vs um
        conn, _ = delaunay_graph(moved)
        assert conn.nnz == base.nnz and (conn != base).nnz == 0
    _, dist = delaunay_graph(xy + 1e12)  # lengths from the centred coordinates: the true lengths
    assert abs(dist - base_d).max() < 1e-6 * base_d.max()


@pytest.mark.parametrize("xy", [np.zeros((50, 2)), np.c_[np.arange(50.0), 2 * np.arange(50.0)],
                                np.array([[0.0, 0.0], [1.0, 1.0]])])
def test_degenerate_coordinates_get_a_clear_error(xy):
    with pytest.raises(FuseMapInputError, match="knn"):
        delaunay_graph(xy)


def test_a_graph_that_lost_its_edges_is_refused_or_warned(sim_sections):
    import fusemap

    a = sim_sections[0]
    with pytest.raises(FuseMapInputError, match=r"section 'sim_section_0'.*max_edge_length=0\.001"):
        fusemap.FuseMap(sim_sections, max_edge_length=0.001, max_epochs=1, progress=False)
    conn, dist = delaunay_graph(np.asarray(a.obsm["spatial"], dtype=np.float64))
    cut = np.quantile(dist.data, 0.2)  # about a tenth of the cells lose every edge: a warning
    a_hat = gcn_normalize(adjacency(conn, np.asarray(a.obsm["spatial"], dtype=np.float64), cut))
    share = np.mean(np.diff(a_hat.indptr) == 1)
    assert 0.05 < share < 0.5
    with pytest.warns(fusemap.FuseMapWarning, match="without a neighbour"):
        check_graph(a_hat, "s", GraphConfig(max_edge_length=cut))
    check_graph(gcn_normalize(adjacency(conn, np.zeros((a.n_obs, 2)))), "s", GraphConfig())  # intact: silent
