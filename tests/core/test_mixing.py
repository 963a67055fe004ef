"""fusemap.mixing: the share of cells in clusters shared by every section."""

import numpy as np

from fusemap.mixing import section_mixing, shared_clusters


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
