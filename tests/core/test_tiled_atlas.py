"""datasets.tiled_atlas: atlases of any size from real tissue, each section its own technology
(the data of the time-to-atlas benchmark at 100k and 1M cells)."""

import numpy as np
import pytest

from fusemap import datasets

from conftest import require_data


@pytest.fixture(scope="module")
def atlas():
    require_data("xenium_mousebrain_ctxhp")
    return datasets.tiled_atlas(n_cells=24_003, n_sections=4, seed=1)


def test_sizes_labels_and_panels(atlas):
    assert [a.n_obs for a in atlas] == [6001, 6001, 6001, 6000]
    shared = set(atlas[0].uns["shared_genes"])
    assert len(shared) == round(0.4 * 248)
    for a in atlas:
        assert a.n_vars == round(0.7 * 248) and shared <= set(a.var_names)
        assert len(a.uns["masked_genes"]) == 248 - a.n_vars
        assert a.obs["cell_type"].nunique() >= 20 and a.obsm["spatial"].shape == (a.n_obs, 2)
        assert a.obs["tile"].nunique() == 2  # 6,000 cells of a 5,000-cell tissue
    panels = [frozenset(a.var_names) for a in atlas]
    assert len(set(panels)) == 4


def test_capture_rates_set_the_depth(atlas):
    rates = np.array([a.uns["capture_rate"] for a in atlas])
    assert np.allclose(np.sort(rates), np.linspace(0.3, 1.0, 4))
    shared = list(atlas[0].uns["shared_genes"])
    depth = np.array([float(a[:, shared].X.sum()) / a.n_obs for a in atlas])
    assert np.corrcoef(rates, depth)[0, 1] > 0.9  # per-gene factors blur, but do not hide, the rate
    assert depth.max() / depth.min() > 2


def test_tiles_are_apart_and_each_is_its_own_draw(atlas):
    a = atlas[0]
    xy, tile = a.obsm["spatial"], a.obs["tile"].to_numpy()
    lo = [xy[tile == t].min(0) for t in range(2)]
    hi = [xy[tile == t].max(0) for t in range(2)]
    # the two tiles' cells do not interleave: along x the second starts beyond most of the first
    assert np.quantile(xy[tile == 1, 0], 0.05) > np.quantile(xy[tile == 0, 0], 0.95) or \
        np.quantile(xy[tile == 1, 1], 0.05) > np.quantile(xy[tile == 0, 1], 0.95), (lo, hi)
    # the 1,001 cells of the second tile are cells of the source drawn again: not a copy of the first
    x0, x1 = a.X[tile == 0], a.X[tile == 1]
    assert abs(x0.sum() / x0.shape[0] - x1.sum() / x1.shape[0]) < 0.2 * x0.sum() / x0.shape[0]


def test_same_seed_same_atlas_and_bad_arguments():
    require_data("xenium_mousebrain_ctxhp")
    a = datasets.tiled_atlas(n_cells=3000, n_sections=2, seed=5)
    b = datasets.tiled_atlas(n_cells=3000, n_sections=2, seed=5)
    c = datasets.tiled_atlas(n_cells=3000, n_sections=2, seed=6)
    assert all((x.X != y.X).nnz == 0 and np.array_equal(x.obsm["spatial"], y.obsm["spatial"]) for x, y in zip(a, b))
    assert (a[0].X.shape != c[0].X.shape) or (a[0].X != c[0].X).nnz > 0
    with pytest.raises(ValueError, match="source"):
        datasets.tiled_atlas(n_cells=100, source="visium")
    with pytest.raises(ValueError, match="n_sections"):
        datasets.tiled_atlas(n_cells=3, n_sections=4)
