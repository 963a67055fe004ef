"""Cell-cell proximity: pair counting, the local-swap null, planted interactions, shuffled labels."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import pdist, squareform

from fusemap import FuseMapInputError
from fusemap.tl.proximity import benjamini_hochberg, cell_proximity, local_swap, pair_counts


def planted_tissue(n=2000, size=1000.0, planted=100, shuffle=False, seed=0):
    """Uniform cells of four types in a square; ``planted`` B cells put 5-15 µm from A cells."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, size, (n, 2))
    types = rng.choice(list("ABCD"), n)
    if planted:
        a = np.flatnonzero(types == "A")[:planted]
        b = np.flatnonzero(types == "B")[:planted]
        ang, r = rng.uniform(0, 2 * np.pi, planted), rng.uniform(5, 15, planted)
        xy[b] = xy[a] + np.column_stack([r * np.cos(ang), r * np.sin(ang)])
    if shuffle:
        types = rng.permutation(types)
    adata = ad.AnnData(np.zeros((n, 1), np.float32),
                       obs=pd.DataFrame({"cell_type": types}, index=[f"c{i}" for i in range(n)]))
    adata.obsm["spatial"] = xy
    return adata


def test_pair_counts_match_brute_force():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 100, (300, 2))
    codes = rng.integers(0, 3, 300)
    close = squareform(pdist(xy)) < 10
    np.fill_diagonal(close, False)
    expect = np.zeros((3, 3), dtype=int)
    for a in range(3):
        for b in range(3):
            block = close[np.ix_(codes == a, codes == b)]
            expect[a, b] = block.sum() // 2 if a == b else block.sum()
    assert np.array_equal(pair_counts(xy, codes, 3, 10.0), expect)


def test_local_swap_only_permutes_within_squares():
    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 1000, (2000, 2))
    codes = rng.integers(0, 4, 2000)
    new = local_swap(xy, codes, 100.0, np.random.default_rng(3))
    assert np.array_equal(np.bincount(new, minlength=4), np.bincount(codes, minlength=4))
    assert (new != codes).mean() > 0.5  # it does move types
    # every type moved at most one square diagonal: each cell's new type exists among cells that close
    tree_close = squareform(pdist(xy)) <= 100 * np.sqrt(2) + 1e-9
    assert all(np.any(codes[tree_close[i]] == new[i]) for i in range(0, 2000, 7))


def test_benjamini_hochberg_known_values():
    p = np.array([0.01, 0.04, 0.03, 0.20])
    # sorted 0.01, 0.03, 0.04, 0.20 -> 0.04, 0.0533, 0.0533, 0.20 (monotone step-up)
    assert np.allclose(benjamini_hochberg(p), [0.04, 0.16 / 3, 0.16 / 3, 0.20])
    assert benjamini_hochberg(np.array([])).size == 0


def test_planted_interaction_is_recovered():
    res = cell_proximity(planted_tissue(), "cell_type", radius=30, shift_radius=100, n_shifts=1000, seed=0)
    t = res.table.set_index(["type_a", "type_b"])
    ab = t.loc[("A", "B")]
    print("\nplanted A-B:", ab[["observed", "null_mean", "fold_change", "pval_adj"]].to_dict())
    # 100 of ~500 A cells got a B partner within 15 µm: about 650 A-B pairs are expected by chance
    assert ab["fold_change"] > 1.10
    assert ab["pval_adj"] < 0.02
    sig = res.significant()
    assert list(zip(sig["type_a"], sig["type_b"])) == [("A", "B")]


def test_shuffled_labels_find_nothing():
    res = cell_proximity(planted_tissue(shuffle=True), "cell_type", n_shifts=1000, seed=0)
    print("\nshuffled: min adjusted p", res.table["pval_adj"].min(), "max fold change",
          res.table["fold_change"].max())
    assert res.significant().empty
    assert res.table["pval_adj"].min() > 0.2
    assert np.all(np.abs(res.table["fold_change"] - 1) < 0.08)


def test_false_positive_rate_of_the_swap_null_is_nominal():
    """20 tissues without any interaction: runs with any BH-significant pair at 0.05 must stay rare
    (the 'shift' null flags every such run, see the module text)."""
    hits = 0
    for seed in range(20):
        res = cell_proximity(planted_tissue(planted=0, seed=100 + seed), "cell_type", n_shifts=200, seed=seed)
        hits += int(not res.significant().empty)
    assert hits <= 3  # 5 % expected: 1 of 20; 3 or more has probability < 8 %


def test_regions_and_sections_are_kept_apart():
    """Two copies of one tissue at the same coordinates in two sections: pairs never cross sections,
    so every observed count is exactly twice that of one section."""
    one = planted_tissue(n=800, seed=4)
    two = one.copy()
    one.obs["section"], two.obs["section"] = "s1", "s2"
    two.obs_names = [f"{c}-b" for c in two.obs_names]
    r1 = cell_proximity(one, "cell_type", n_shifts=10)
    r2 = cell_proximity([one, two], "cell_type", n_shifts=10)
    assert np.array_equal(r2.table["observed"].to_numpy(), 2 * r1.table["observed"].to_numpy())
    one.obs["layer"] = np.where(one.obsm["spatial"][:, 1] < 500, "top", "bottom")
    r3 = cell_proximity(one, "cell_type", "layer", n_shifts=10)
    assert set(r3.table["region"]) == {"top", "bottom"}
    assert r3.table["observed"].sum() < r1.table["observed"].sum()  # pairs across the layer border dropped


def test_bad_arguments_are_named():
    a = planted_tissue(n=200, planted=0)
    with pytest.raises(FuseMapInputError, match="radius"):
        cell_proximity(a, "cell_type", radius=-1)
    with pytest.raises(FuseMapInputError, match="cell_type_key='nope'"):
        cell_proximity(a, "nope")
    with pytest.raises(FuseMapInputError, match="null='ring'"):
        cell_proximity(a, "cell_type", null="ring")


@pytest.mark.realdata
def test_starmap_geometry_shuffled_and_planted():
    """Real STARmap coordinates and layers (three sections). Cell types shuffled within each layer:
    no pair is called. Then 40 L5 cells of section BZ5 become 'X' and each one's nearest
    neighbour 'Y': the X-Y pair in L5 is called, and only that pair."""
    from scipy.spatial import cKDTree

    from conftest import require_data
    from fusemap import datasets

    require_data()
    secs = datasets.starmap_mpfc()
    rng = np.random.default_rng(0)
    for a in secs:
        types = a.obs["cell_type"].astype(str).to_numpy().copy()
        for layer in a.obs["region"].unique():
            m = (a.obs["region"] == layer).to_numpy()
            types[m] = rng.permutation(types[m])
        a.obs["shuffled"] = types
    # a radius of 1.5 median nearest-neighbour distances, 5 of them for the null's squares
    xy = secs[0].obsm["spatial"]
    nn = float(np.median(cKDTree(xy).query(xy, 2)[0][:, 1]))
    kw = dict(radius=1.5 * nn, shift_radius=5 * nn, min_cells=30, seed=0)
    res = cell_proximity(secs, "shuffled", "region", n_shifts=3000, **kw)
    print(f"\nSTARmap shuffled within layers: {len(res.table)} pairs, min adjusted p {res.table['pval_adj'].min():.3f}")
    assert res.significant().empty

    a = secs[0]
    l5 = np.flatnonzero((a.obs["region"] == "L5").to_numpy())
    x = rng.choice(l5, 40, replace=False)
    _, nbr = cKDTree(xy).query(xy[x], 2)
    planted = a.obs["shuffled"].to_numpy().copy()
    planted[nbr[:, 1]] = "Y"
    planted[x] = "X"
    a.obs["planted"] = planted
    for b in secs[1:]:
        b.obs["planted"] = b.obs["shuffled"]
    n_tests = len(res.table) + 20  # X and Y add pairs in L5
    res = cell_proximity(secs, "planted", "region", n_shifts=int(2 * n_tests / 0.05), **kw)
    sig = res.significant()
    print("planted on STARmap geometry:\n", sig[["region", "type_a", "type_b", "observed", "null_mean",
                                                 "fold_change", "pval_adj"]].round(3).to_string())
    assert list(zip(sig["region"], sig["type_a"], sig["type_b"])) == [("L5", "X", "Y")]
