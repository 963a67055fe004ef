"""How well sections mix in an embedding, measured the way a user looks at it: do the clusters of
the pooled embedding hold cells of every section?

Used by the integration figures (the line under each figure), the benchmark's ablations and the
real-data test that fails when sections stop mixing.
"""

from __future__ import annotations

from typing import Sequence

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


def clusters_at_least(emb: np.ndarray, n_clusters: int, seed: int = 0, refine: int = 4) -> np.ndarray:
    """Leiden labels of ``emb`` at about the lowest resolution that gives at least ``n_clusters``
    clusters (the highest of :data:`RESOLUTIONS` when none does).

    The grid of :data:`RESOLUTIONS` is searched first; where its step jumps past ``n_clusters``
    (3 clusters at 0.3, 7 at 0.5 on the STARmap spatial embedding, for 4 layers) the last interval
    is bisected ``refine`` times, so the clusters compared are about as many as asked for, not
    sub-states a coarse step happened to split.
    """
    from .neighbors import leiden_labels

    below, lab, res = 0.0, None, RESOLUTIONS[0]
    for res in RESOLUTIONS:
        lab = leiden_labels(emb, res, seed)
        if lab.max() + 1 >= n_clusters:
            break
        below = res
    else:
        return lab
    above = res
    for _ in range(refine):
        if lab.max() + 1 == n_clusters:
            break
        mid = (below + above) / 2
        trial = leiden_labels(emb, mid, seed)
        if trial.max() + 1 >= n_clusters:
            above, lab = mid, trial
        else:
            below = mid
    return lab


def section_mixing(emb: np.ndarray, sections: np.ndarray, n_clusters: int, seed: int = 0) -> float:
    """:func:`shared_clusters` of the Leiden clusters of ``emb`` (about ``n_clusters`` of them)."""
    return shared_clusters(clusters_at_least(emb, n_clusters, seed), sections)[0]


# -- the check every run ends with ------------------------------------------------------------------
DIAGNOSTIC_RESOLUTION = {"cell": 0.8, "spatial": 0.3}
"""Leiden resolution of the run check's clusters, per embedding (those of the integration figures)."""

DIAGNOSTIC_MAX_CELLS = 20_000
"""Cells the run check clusters at most (a random subset, the same for both embeddings, beyond)."""

CONFINED_SHARE = 0.9
"""A cluster is confined to one section when that section holds at least this share of it, each
section's cells counted in inverse proportion to its size (so a large section does not look
dominant merely by being large)."""

CONFINED_WARN = 0.5
"""More than this fraction of clusters confined to one section, in either embedding, gives a warning."""


def confined_clusters(labels: np.ndarray, sections: np.ndarray) -> np.ndarray:
    """Per cluster (by label order): whether one section holds :data:`CONFINED_SHARE` of it."""
    labels = np.asarray(labels)
    secs, sec_idx = np.unique(np.asarray(sections), return_inverse=True)
    clusters, lab_idx = np.unique(labels, return_inverse=True)
    counts = np.zeros((len(clusters), len(secs)))
    np.add.at(counts, (lab_idx, sec_idx), 1.0)
    density = counts / counts.sum(0, keepdims=True)  # each section's cells weigh 1 / its size
    share = density / density.sum(1, keepdims=True)
    return share.max(1) >= CONFINED_SHARE


def pooled_rows(parts: Sequence[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """``np.concatenate(parts)[rows]`` without the pooled copy (0.25 GB of embeddings at 1M cells,
    when a check wants a sample of 20,000 rows): each part gives its own rows, in ``rows``' order."""
    starts = np.concatenate([[0], np.cumsum([len(p) for p in parts])])
    part = np.searchsorted(starts, rows, side="right") - 1
    out = np.empty((len(rows),) + parts[0].shape[1:], dtype=np.result_type(*parts))
    for i, p in enumerate(parts):
        mine = part == i
        out[mine] = p[rows[mine] - starts[i]]
    return out


def integration_check(embeddings: dict[str, tuple[np.ndarray, np.ndarray]], seed: int = 0,
                      max_cells: int = DIAGNOSTIC_MAX_CELLS) -> dict | None:
    """How many sections share each Leiden cluster of the pooled cell and spatial embeddings.

    ``embeddings[name] = (cell, spatial)``; ``spatial`` None for a section without coordinates,
    which is left out of the spatial check (skipped when fewer than two sections remain). Returns
    per embedding ``n_clusters``,
    ``shared_cell_fraction`` (cells in clusters holding every section, :func:`shared_clusters`),
    ``n_single_section_clusters`` and ``single_section_cluster_fraction``
    (:func:`confined_clusters`), plus ``n_cells_used``, ``seconds``, ``sentence`` and ``warning``
    (empty when the sections mix); None for fewer than two sections.
    """
    import time

    from .neighbors import leiden_labels

    names = list(embeddings)
    if len(names) < 2:
        return None
    sections = np.concatenate([np.full(len(embeddings[n][0]), i) for i, n in enumerate(names)])
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(sections), max_cells, replace=False)) if len(sections) > max_cells else None
    out: dict = {"sections": names, "n_cells_used": int(len(sections) if keep is None else len(keep))}
    # a section without coordinates (spatial embedding None) is left out of the spatial check
    spatial_names = [n for n in names if embeddings[n][1] is not None]
    labels = ("cell", "spatial") if len(spatial_names) >= 2 else ("cell",)
    confined_in = []
    for part, label in enumerate(labels):
        t0 = time.perf_counter()
        use = np.isin(sections, [names.index(n) for n in (names if label == "cell" else spatial_names)])
        pos = np.flatnonzero(use) if keep is None else keep[use[keep]]  # pooled cells checked
        z = pooled_rows([np.asarray(embeddings[names[i]][part], dtype=np.float32)
                         for i in np.unique(sections[use])], (np.cumsum(use) - 1)[pos])
        sec = sections[pos]
        lab = leiden_labels(z, DIAGNOSTIC_RESOLUTION[label], seed)
        share, _ = shared_clusters(lab, sec)
        confined = confined_clusters(lab, sec)
        out[label] = {"n_clusters": int(len(confined)), "shared_cell_fraction": round(float(share), 4),
                      "n_single_section_clusters": int(confined.sum()),
                      "single_section_cluster_fraction": round(float(confined.mean()), 4),
                      "seconds": round(time.perf_counter() - t0, 3)}
        if confined.mean() > CONFINED_WARN:
            confined_in.append(label)
    out["sentence"] = "Section mixing: " + "; ".join(
        f"{label} embedding: {out[label]['n_clusters'] - out[label]['n_single_section_clusters']} of "
        f"{out[label]['n_clusters']} Leiden clusters hold more than one section, "
        f"{100 * out[label]['shared_cell_fraction']:.0f} % of the cells are in clusters holding every "
        f"section, {out[label]['n_single_section_clusters']} cluster(s) belong to one section only"
        for label in labels) + f" ({len(names)} sections" + (
        f"; the spatial embedding is checked over the {len(spatial_names)} with coordinates"
        if len(spatial_names) < len(names) else "") + ")."
    out["warning"] = "" if not confined_in else (
        f"the sections did not mix: in the {' and '.join(confined_in)} embedding(s) most Leiden clusters "
        f"({', '.join(str(out[k]['n_single_section_clusters']) + ' of ' + str(out[k]['n_clusters']) for k in confined_in)}) "
        "belong to one section only, so cells of different sections sit apart instead of together by "
        "cell type. That happens when training stopped too soon or alignment was switched off, when "
        "section_key does not name sections of the same kind of tissue, or when the sections truly "
        "share few cell types. Try more epochs (max_epochs), keep adversarial=True and mmd_weight > 0, "
        "and check section_key and that the sections' panels share genes.")
    return out


# -- the statistic that ends the balanced phase -----------------------------------------------------
MIXING_NEIGHBOURS = 15
"""Neighbours per cell of :func:`neighbour_mixing`."""


def neighbour_mixing(emb: np.ndarray, sections: np.ndarray, k: int = MIXING_NEIGHBOURS) -> float:
    """Share of each cell's ``k`` nearest neighbours that come from other sections, relative to that
    share when the sections are fully mixed (1 - the cell's own section's share of all cells),
    averaged over cells: about 1 when the sections overlap, 0 when each lies apart.

    Cheap enough to compute on the held-out cells after every epoch (no clustering), so training can
    stop once the sections stop mixing further (``TrainConfig.plateau_mixing``). NaN for fewer than
    two sections or too few cells.
    """
    from sklearn.neighbors import NearestNeighbors

    sections = np.asarray(sections)
    secs, idx, sizes = np.unique(sections, return_inverse=True, return_counts=True)
    n = len(sections)
    if len(secs) < 2 or n <= k + 1:
        return float("nan")
    nn = NearestNeighbors(n_neighbors=k).fit(np.asarray(emb, dtype=np.float32))
    nbr = nn.kneighbors(return_distance=False)  # without X: each cell's own point is left out
    other = (idx[nbr] != idx[:, None]).mean(1)
    expected = 1.0 - sizes[idx] / n
    return float(np.mean(other / expected))
