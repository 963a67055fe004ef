"""Per-cell balance weights between the two training phases (DESIGN.md §2.8).

Each section's embedding is clustered (Leiden); cluster centroids are compared across sections by
cosine similarity after removing the pooled mean (otherwise every centroid shares the same offset
and looks similar). A cluster whose best counterpart in any other section is dissimilar is a cell
population unique to its section: its cells get a low weight so the discriminators do not force
it onto another section's cell types.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .neighbors import leiden_labels

MAX_CLUSTER_CELLS = 5_000
"""Cells per section used to find clusters (a random subset above this); the rest join their
nearest centroid. Leiden at a fixed resolution finds more, smaller clusters in more cells (about
20 per section at 1,250 cells, 130-370 on 50,000 cells of a 125,000-cell section), and the
counterpart test then judges fragments of cell types; a fixed number of cells keeps the clusters
as coarse at any size as on the development cases (largest section 3,190 cells, so unchanged
there) and bounds the clustering's cost."""


def cluster_cells(emb: np.ndarray, resolution: float, seed: int) -> np.ndarray:
    """Leiden labels; above MAX_CLUSTER_CELLS cells, of a random subset, the rest joining their nearest centroid."""
    n = emb.shape[0]
    if n <= MAX_CLUSTER_CELLS:
        return leiden_labels(emb, resolution, seed)
    rng = np.random.default_rng(seed)
    sub = rng.choice(n, MAX_CLUSTER_CELLS, replace=False)
    lab_sub = leiden_labels(emb[sub], resolution, seed)
    cents = np.stack([emb[sub][lab_sub == c].mean(0) for c in range(lab_sub.max() + 1)])
    labels = np.empty(n, dtype=int)
    c2 = (cents ** 2).sum(1)
    for start in range(0, n, 100_000):  # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 does not move the argmin
        chunk = emb[start:start + 100_000]
        labels[start:start + 100_000] = (c2[None, :] - 2.0 * (chunk @ cents.T)).argmin(1)
    return labels


def _partners(n: int, partners: Sequence[Sequence[int]] | None) -> list[list[int]]:
    """Sections whose clusters count as counterparts of each section's (default: every other)."""
    if partners is None:
        return [[u for u in range(n) if u != v] for v in range(n)]
    return [[u for u in p if u != v] for v, p in enumerate(partners)]


def cluster_similarity(embeddings: list[np.ndarray], labels: list[np.ndarray],
                       partners: Sequence[Sequence[int]] | None = None) -> list[np.ndarray]:
    """For each section, each cluster's best cosine similarity to a cluster of a partner section."""
    center = np.concatenate(embeddings).mean(0)
    cents = []
    for emb, lab in zip(embeddings, labels):
        c = np.stack([emb[lab == k].mean(0) for k in range(lab.max() + 1)]) - center
        cents.append(c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12))
    best = []
    for v, (c, part) in enumerate(zip(cents, _partners(len(cents), partners))):
        others = [cents[u] for u in part]
        if not others:
            best.append(np.ones(len(c)))
            continue
        best.append((c @ np.concatenate(others).T).max(1))
    return best


def _centroids(emb: np.ndarray, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster centroids and spreads (root mean squared distance of a cluster's cells to its centroid)."""
    c = np.stack([emb[lab == k].mean(0) for k in range(lab.max() + 1)])
    spread = np.sqrt(np.stack([((emb[lab == k] - c[k]) ** 2).sum(1).mean() for k in range(len(c))]))
    return c, np.maximum(spread, 1e-12)


def _nearest_partner(cents: list[np.ndarray], v: int, part: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """For each cluster of section ``v``: distance to, and position of, the nearest partner centroid."""
    o = np.concatenate([cents[u] for u in part])
    d = np.sqrt(((cents[v][:, None, :] - o[None, :, :]) ** 2).sum(-1))
    j = d.argmin(1)
    return d[np.arange(len(j)), j], o[j]


def cluster_overlap(embeddings: list[np.ndarray], labels: list[np.ndarray],
                    partners: Sequence[Sequence[int]] | None = None,
                    offsets: Sequence[np.ndarray | None] | None = None) -> list[np.ndarray]:
    """For each section, each cluster's distance to the nearest centroid of a partner section's
    clusters, in units of the cluster's own spread (root mean squared distance of its cells to its
    centroid). Below 1 the counterpart lies inside the cluster's cloud of cells. ``offsets[v]``,
    where given, is subtracted from section ``v``'s centroids (not from its partners') first."""
    return _overlap([_centroids(e, lab) for e, lab in zip(embeddings, labels)], partners, offsets)


def _overlap(stats: list[tuple[np.ndarray, np.ndarray]], partners, offsets=None) -> list[np.ndarray]:
    """:func:`cluster_overlap` from the sections' (centroids, spreads)."""
    cents = [c for c, _ in stats]
    out = []
    for v, part in enumerate(_partners(len(stats), partners)):
        if not part:
            out.append(np.zeros(len(cents[v])))
            continue
        moved = list(cents)
        if offsets is not None and offsets[v] is not None:  # moves section v only, its partners stay
            moved[v] = cents[v] - offsets[v]
        out.append(_nearest_partner(moved, v, part)[0] / stats[v][1])
    return out


def section_offsets(embeddings: list[np.ndarray], labels: list[np.ndarray],
                    partners: Sequence[Sequence[int]] | None = None, rounds: int = 3) -> list[np.ndarray]:
    """Each section's common translation from its partners: the median over its cells of the vector
    from their cluster's nearest partner centroid to their cluster's centroid (per dimension). Most
    clusters have a counterpart, so the median is what they share: a section effect, not biology.
    Repeated ``rounds`` times on the moved centroids, so an offset larger than the distance between
    populations, which pairs some clusters with the wrong counterpart at first, is still found."""
    return _offsets([_centroids(e, lab)[0] for e, lab in zip(embeddings, labels)], labels, partners, rounds)


def _offsets(cents: list[np.ndarray], labels: list[np.ndarray], partners, rounds: int = 3) -> list[np.ndarray]:
    """:func:`section_offsets` from the sections' centroids."""
    out = []
    for v, (lab, part) in enumerate(zip(labels, _partners(len(cents), partners))):
        offset = np.zeros(cents[v].shape[1])
        for _ in range(rounds if part else 0):
            moved = list(cents)
            moved[v] = cents[v] - offset
            offset = offset + np.median((moved[v] - _nearest_partner(moved, v, part)[1])[lab], axis=0)
        out.append(offset)
    return out


def typical_overlap(overlap: list[np.ndarray], labels: list[np.ndarray]) -> list[float]:
    """Each section's typical distance to a counterpart: the median of :func:`cluster_overlap` over
    its cells, at least 1. Above 1, most of the section's cells lie outside every counterpart's
    reach, which is a section effect that pretraining left, not biology the others lack."""
    return [max(1.0, float(np.median(r[lab]))) for r, lab in zip(overlap, labels)]


def balance_weights(embeddings: list[np.ndarray], *, rule: str = "relative_overlap", resolution: float = 1.0,
                    low: float = 0.5, high: float = 0.8, floor: float = 0.05, seed: int = 0,
                    partners: Sequence[Sequence[int]] | None = None) -> tuple[list[np.ndarray], dict]:
    """Per-cell weights (mean 1 within each section) and a summary of what was down-weighted.

    ``rule='relative_overlap'`` (default): as ``'overlap'`` where at least half of every section's
    cells lie within their cluster's spread of a counterpart. A section beyond that (its typical
    distance, :func:`typical_overlap`, above 1) was left apart by pretraining: its common
    translation (:func:`section_offsets`) is removed and its distances are divided by its typical
    distance, so a unique population is one much farther from any counterpart than the section's
    cells usually are. Where pretraining left sections apart (most clusters beyond their own
    spread: Slide-seqV2 beads against a Drop-seq reference or Xenium cells), ``'overlap'``
    down-weighted 54-100 % of a section's cells and the renormalised weights put the alignment on
    the few left; where fewer than half of a section's cells lie beyond their spread, both rules
    give the same weights.

    ``rule='overlap'``: a cluster keeps full weight when the nearest cluster centroid of
    another section lies within its own spread (:func:`cluster_overlap` at most ``OVERLAP_FULL``)
    and gets the floor weight beyond ``OVERLAP_NONE`` spreads. ``rule='cosine'`` (the paper's
    idea): cosine similarity of centred centroids between ``low`` and ``high``. The cosine rule
    took most clusters of sections from one tissue for unique ones (66-86 % of the cells of the
    three STARmap mPFC sections, 8-16 % of thinned copies of one Xenium tissue), because at 64
    dimensions the centroids of matching clusters of different sections are rarely more than 0.8
    alike; the overlap rule compares a centroid's offset with the scatter of the cells around it.

    ``partners[v]``: the sections whose clusters may be a counterpart of section ``v``'s (default:
    every other section). Query mapping compares query clusters with reference clusters only, so
    a state that several query sections share but the reference lacks is still down-weighted.
    """
    if rule not in BALANCE_RULES:
        raise ValueError(f"rule={rule!r} is not one of {BALANCE_RULES}")
    labels = [cluster_cells(e, resolution, seed) for e in embeddings]
    if rule == "cosine":
        scores = cluster_similarity(embeddings, labels, partners)
        full = [np.clip((s - low) / (high - low), 0.0, 1.0) for s in scores]
        kept = [s >= high for s in scores]
    else:
        stats = [_centroids(e, lab) for e, lab in zip(embeddings, labels)]  # once, for every pass below
        scores = _overlap(stats, partners)
        before = typical_overlap(scores, labels)
        apart = [rule == "relative_overlap" and t > 1.0 for t in before]
        scale = [1.0] * len(scores)
        if any(apart):
            offsets = [o if a else None for o, a in zip(_offsets([c for c, _ in stats], labels, partners), apart)]
            moved = _overlap(stats, partners, offsets)
            scale = [t if a else 1.0 for t, a in zip(typical_overlap(moved, labels), apart)]
            scores = [m / t if a else r for r, m, t, a in zip(scores, moved, scale, apart)]
        full = [np.clip((OVERLAP_NONE - r) / (OVERLAP_NONE - OVERLAP_FULL), 0.0, 1.0) for r in scores]
        kept = [r <= OVERLAP_FULL for r in scores]
    weights, summary = [], {"rule": rule, "n_clusters": [], "n_downweighted_clusters": [],
                            "downweighted_cell_fraction": []}
    if rule == "relative_overlap":
        # per section: typical distance before any correction, whether its offset was removed,
        # and the typical distance its clusters were then judged against
        summary.update(typical_overlap=[round(t, 3) for t in before], offset_removed=apart,
                       judged_against=[round(t, 3) for t in scale])
    for lab, f, ok in zip(labels, full, kept):
        w_cluster = floor + (1 - floor) * f
        w = w_cluster[lab]
        w = w / w.mean()
        weights.append(w.astype(np.float32))
        summary["n_clusters"].append(int(len(f)))
        summary["n_downweighted_clusters"].append(int((~ok).sum()))
        summary["downweighted_cell_fraction"].append(float((~ok[lab]).mean()))
    return weights, summary


def balance_sentence(summary: dict, names: list[str]) -> str:
    """The summary of :func:`balance_weights` as one readable sentence (``names``: the sections)."""
    parts, full = [], []
    for name, n, k, frac in zip(names, summary["n_clusters"], summary["n_downweighted_clusters"],
                                summary["downweighted_cell_fraction"]):
        if k:
            parts.append(f"{k} of {n} clusters of section {name} ({100 * frac:.0f} % of its cells)")
        else:
            full.append(str(name))
    moved = [str(n) for n, a in zip(names, summary.get("offset_removed", [])) if a]
    note = (f" Pretraining left {', '.join(moved)} apart from the other sections (most cells beyond their "
            "cluster's spread from any counterpart): that common offset was removed before clusters were "
            "compared." if moved else "")
    if not parts:
        return ("Balance weights: every cluster of every section has a counterpart in another section; "
                "all cells keep full weight." + note)
    verb = "has" if len(parts) == 1 and parts[0].startswith("1 of") else "have"
    out = (f"Balance weights: {'; '.join(parts)} {verb} no close counterpart in other sections and "
           f"{'is' if verb == 'has' else 'are'} down-weighted in the balanced phase, so the discriminators "
           "do not force them onto other sections' cell types")
    if full:
        out += f"; every cluster of {', '.join(full)} has a counterpart"
    return out + "." + note


BALANCE_RULES = ("relative_overlap", "overlap", "cosine")
OVERLAP_FULL = 1.0
"""A cluster whose nearest other-section centroid is within this many spreads keeps full weight."""
OVERLAP_NONE = 2.0
"""Beyond this many spreads a cluster has no counterpart and gets the floor weight."""
