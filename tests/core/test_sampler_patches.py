"""Spatially compact seed patches (fusemap.patches): valid partitions, unbiased epochs, exact
blocks, and far fewer encoded cells per seed than random seeds."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from fusemap import datasets
from fusemap.config import GraphConfig, make_config
from fusemap.errors import FuseMapInputError
from fusemap.graph import section_graph
from fusemap.patches import graph_patches, patch_order
from fusemap.sampler import EpochPlan, SectionData, iterate_blocks, make_block


@pytest.fixture(scope="module")
def big_section():
    a = datasets.simulate(n_sections=1, n_cells=5000, n_genes=20, seed=2)[0]
    a_hat = section_graph(a, GraphConfig())
    x = sp.csr_matrix(a.X, dtype=np.float32)
    rng = np.random.default_rng(0)
    perm = rng.permutation(a.n_obs)
    return SectionData("big", x, a_hat, np.arange(20), np.sort(perm[750:]), np.sort(perm[:750]))


def test_patches_partition_the_graph_into_connected_pieces(big_section):
    a_hat = big_section.a_hat
    labels = graph_patches(a_hat, 64, np.random.default_rng(0))
    assert labels.min() >= 0 and labels.shape == (a_hat.shape[0],)
    n_patches = labels.max() + 1
    assert abs(n_patches - a_hat.shape[0] / 64) <= 2
    sizes = np.bincount(labels)
    assert sizes.min() >= 1 and abs(sizes.mean() - 64) < 3
    for p in range(0, n_patches, 7):  # each patch is one connected piece of the graph
        idx = np.flatnonzero(labels == p)
        n_comp, _ = connected_components(a_hat[idx][:, idx], directed=False)
        assert n_comp == 1


def test_unreachable_cells_get_their_own_patches():
    # two components: a path of 10 cells and an isolated pair
    rows = list(range(9)) + [10]
    cols = list(range(1, 10)) + [11]
    adj = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(12, 12))
    adj = adj + adj.T
    for seed in range(5):
        labels = graph_patches(sp.csr_matrix(adj), 20, np.random.default_rng(seed))
        assert (labels >= 0).all()
        assert len(set(labels[:10]) & set(labels[10:])) == 0


def test_patch_order_is_a_permutation_with_contiguous_patches(big_section):
    rng = np.random.default_rng(1)
    pool = big_section.train_idx
    order = patch_order(big_section.a_hat, pool, 64, rng)
    assert np.array_equal(np.sort(order), pool)
    rng2 = np.random.default_rng(1)
    labels = graph_patches(big_section.a_hat, 64, rng2)  # same draws as inside patch_order
    lab = labels[order]
    changes = int((lab[1:] != lab[:-1]).sum())
    assert changes == len(np.unique(lab)) - 1  # each patch appears as one run


def test_patch_epoch_uses_every_training_cell_once(big_section):
    plan = EpochPlan([big_section], 256, np.random.default_rng(0), patch_size=64)
    seeds = np.concatenate([b[0] for b in plan.steps()])
    n_train = len(big_section.train_idx)
    assert plan.n_steps == int(np.ceil(n_train / 256))
    # a full pass first; the last batch is topped up from the next pass (as with random seeds)
    assert np.array_equal(np.sort(seeds[:n_train]), big_section.train_idx)
    assert len(seeds) == plan.n_steps * 256


def test_patch_blocks_stay_exact(big_section):
    seeds = patch_order(big_section.a_hat, big_section.train_idx, 64, np.random.default_rng(3))[:256]
    block = make_block(big_section, 0, seeds, 2)
    h = block.x
    for adj in block.adjs:
        h = adj @ h
    full = big_section.x.toarray()
    for _ in range(2):
        full = big_section.a_hat @ full
    np.testing.assert_allclose(h.numpy(), full[seeds], rtol=1e-4, atol=1e-4)


def test_patches_encode_far_fewer_cells_per_seed(big_section):
    """The point of patches: the 2-hop closure of compact seeds is mostly shared."""

    def encoded_per_seed(patch_size):
        plan = EpochPlan([big_section], 256, np.random.default_rng(0), patch_size=patch_size)
        enc = seeds = 0
        for blocks in iterate_blocks([big_section], plan, 2):
            enc += sum(len(b.nodes) for b in blocks)
            seeds += sum(b.n_seeds for b in blocks)
        return enc / seeds

    random_ratio, patch_ratio = encoded_per_seed(None), encoded_per_seed(64)
    assert random_ratio > 8  # ~19 cells in a 2-hop Delaunay ball, minus overlaps
    assert patch_ratio < 4
    assert patch_ratio < 0.35 * random_ratio


def test_patch_size_option_is_checked():
    assert make_config(patch_size=None).train.patch_size is None
    assert make_config(patch_size=32).train.patch_size == 32
    with pytest.raises(FuseMapInputError, match="patch_size"):
        make_config(patch_size=1)
