"""How well sections mix in an embedding, measured the way a user looks at it: do the clusters of
the pooled embedding hold cells of every section?

Used by the integration figures (the line under each figure), the benchmark's ablations and the
real-data test that fails when sections stop mixing.
"""

from __future__ import annotations

import numpy as np

SHARED_MIN_RATIO = 1 / 3
"""A cluster is shared when every section holds at least this fraction of the cells it would hold
if the cluster drew its cells from the sections in proportion to their sizes."""

RESOLUTIONS = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0)


def shared_clusters(labels: np.ndarray, sections: np.ndarray) -> tuple[float, np.ndarray]:
    """Fraction of cells in shared clusters, and the shared flag of each cluster (by label order).

    1 means every cluster holds every section in near proportion; 0 means each cluster belongs to
    some sections only (the sections lie side by side instead of overlapping).
    """
    labels = np.asarray(labels)
    sections = np.asarray(sections)
    secs, sizes = np.unique(sections, return_counts=True)
    expected = sizes / sizes.sum()
    clusters = np.unique(labels)
    flags = np.zeros(len(clusters), dtype=bool)
    for i, c in enumerate(clusters):
        m = labels == c
        frac = np.array([(sections[m] == s).mean() for s in secs])
        flags[i] = bool((frac / expected >= SHARED_MIN_RATIO).all())
    shared_cells = np.isin(labels, clusters[flags]).sum()
    return float(shared_cells / max(len(labels), 1)), flags


def clusters_at_least(emb: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    """Leiden labels of ``emb`` at the lowest resolution of :data:`RESOLUTIONS` that gives at least
    ``n_clusters`` clusters (the highest one when none does)."""
    from .balance import leiden_labels

    lab = None
    for res in RESOLUTIONS:
        lab = leiden_labels(emb, res, seed)
        if lab.max() + 1 >= n_clusters:
            break
    return lab


def section_mixing(emb: np.ndarray, sections: np.ndarray, n_clusters: int, seed: int = 0) -> float:
    """:func:`shared_clusters` of the Leiden clusters of ``emb`` (about ``n_clusters`` of them)."""
    return shared_clusters(clusters_at_least(emb, n_clusters, seed), sections)[0]
