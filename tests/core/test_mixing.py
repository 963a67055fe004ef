"""fusemap.mixing: the share of cells in clusters shared by every section."""

import numpy as np

from fusemap import mixing
from fusemap.mixing import clusters_at_least, section_mixing, shared_clusters


def test_shared_clusters_counts_cells_of_clusters_every_section_fills():
    sections = np.array(["a"] * 100 + ["b"] * 50)
    # cluster 0: both sections in proportion; cluster 1: only a; cluster 2: b at a tenth of its share
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10 + [0] * 30 + [2] * 20)
    share, flags = shared_clusters(labels, sections)
    assert flags.tolist() == [True, False, True]
    assert share == (90 + 30) / 150
    lopsided = np.array([0] * 60 + [1] * 30 + [2] * 10 + [0] * 2 + [2] * 48)
    share2, flags2 = shared_clusters(lopsided, sections)
    # cluster 0 holds 2 of b's cells (a tenth of b's proportional share), cluster 2 only 10 of a's
    # (a quarter of a's share): neither is shared
    assert flags2.tolist() == [False, False, False] and share2 == 0.0


def test_section_mixing_separates_offset_sections_from_overlapping_ones():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 5, (4, 10))
    def section(offset):
        return np.concatenate([rng.normal(0, 0.5, (100, 10)) + c + offset for c in centres])
    sections = np.array(["a"] * 400 + ["b"] * 400)
    mixed = np.concatenate([section(0.0), section(0.0)])
    apart = np.concatenate([section(0.0), section(3.0)])
    assert section_mixing(mixed, sections, 4) > 0.9
    assert section_mixing(apart, sections, 4) < 0.1


def test_clusters_at_least_bisects_a_coarse_step(monkeypatch):
    """Where the resolution grid jumps from too few clusters to many, the interval is bisected, so
    about as many clusters as asked for are compared (not the sub-states a coarse step splits)."""
    rng = np.random.default_rng(1)
    emb = rng.normal(0, 1, (600, 5))  # one cloud: the cluster count grows with the resolution
    monkeypatch.setattr(mixing, "RESOLUTIONS", (0.001, 3.0))
    coarse = clusters_at_least(emb, 4, refine=0).max() + 1
    refined = clusters_at_least(emb, 4).max() + 1
    assert coarse > 8, coarse  # the grid alone overshoots
    assert 4 <= refined < coarse and refined <= 6, (refined, coarse)


def _two_embeddings(offset, n=600, seed=0):
    """Three sections of 4 cell types in 10-D; ``offset`` shifts each section by that much per dimension."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, (4, 10))
    out = {}
    for i in range(3):
        types = rng.integers(0, 4, n)
        z = centres[types] + rng.normal(0, 0.5, (n, 10)) + i * offset
        out[f"s{i}"] = (z, z[:, ::-1].copy())
    return out


def test_run_check_warns_when_sections_sit_apart_and_not_when_they_mix():
    from fusemap.mixing import integration_check

    mixed = integration_check(_two_embeddings(0.0))
    for part in ("cell", "spatial"):
        assert mixed[part]["n_single_section_clusters"] == 0
        assert mixed[part]["shared_cell_fraction"] > 0.95
        assert mixed[part]["n_clusters"] >= 4
    assert mixed["warning"] == "" and mixed["n_cells_used"] == 1800
    apart = integration_check(_two_embeddings(4.0))
    for part in ("cell", "spatial"):
        assert apart[part]["single_section_cluster_fraction"] > 0.9
        assert apart[part]["shared_cell_fraction"] == 0.0
    assert "did not mix" in apart["warning"] and "max_epochs" in apart["warning"] and "section_key" in apart["warning"]
    n = apart["cell"]["n_clusters"]
    assert f"({n} of {n}," in apart["warning"] and f"{n} cluster(s) belong to one section only" in apart["sentence"]
    assert integration_check({"only": _two_embeddings(0.0)["s0"]}) is None


def test_run_check_subsamples_large_runs():
    from fusemap.mixing import integration_check

    res = integration_check(_two_embeddings(0.0, n=700), max_cells=1000)
    assert res["n_cells_used"] == 1000 and res["warning"] == ""


def test_confined_clusters_count_sections_in_proportion_to_their_size():
    from fusemap.mixing import confined_clusters

    sections = np.array(["big"] * 900 + ["small"] * 100)
    # cluster 0: 450 big + 50 small (the same density): shared; cluster 1: 450 big + 2 small: confined
    labels = np.array([0] * 450 + [1] * 450 + [0] * 50 + [1] * 2 + [2] * 48)
    assert confined_clusters(labels, sections).tolist() == [False, True, True]


def test_neighbour_mixing_is_one_for_overlapping_sections_and_zero_for_separate_ones():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(600, 8))
    sizes = [100, 200, 300]  # unequal sections: the expected share is per section
    sec = np.repeat([0, 1, 2], sizes)
    mixed = mixing.neighbour_mixing(z, rng.permutation(sec))
    apart = mixing.neighbour_mixing(z + 50.0 * sec[:, None], sec)
    assert 0.9 < mixed < 1.1
    assert apart == 0.0
    half = mixing.neighbour_mixing(np.vstack([z[:300], z[:300] + 50.0]), np.repeat([0, 1, 0, 1], 150))
    assert 0.9 < half < 1.1  # two blobs, each shared by both sections
    assert np.isnan(mixing.neighbour_mixing(z, np.zeros(600)))  # one section: nothing to mix


def test_pooled_rows_equals_indexing_the_pooled_array():
    from fusemap.mixing import pooled_rows

    rng = np.random.default_rng(5)
    parts = [rng.normal(size=(n, 3)).astype(np.float32) for n in (5, 0, 7, 2)]
    rows = rng.permutation(14)[:9]  # any order, across every part
    np.testing.assert_array_equal(pooled_rows(parts, rows), np.concatenate(parts)[rows])
    assert pooled_rows(parts, np.array([], dtype=int)).shape == (0, 3)
