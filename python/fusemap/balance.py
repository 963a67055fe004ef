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

MAX_CLUSTER_CELLS = 50_000
"""Cells per section used to find clusters; the rest join their nearest centroid."""


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
    for start in range(0, n, 100_000):
        chunk = emb[start:start + 100_000]
        d = ((chunk[:, None, :] - cents[None]) ** 2).sum(-1)
        labels[start:start + 100_000] = d.argmin(1)
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


def cluster_overlap(embeddings: list[np.ndarray], labels: list[np.ndarray],
                    partners: Sequence[Sequence[int]] | None = None) -> list[np.ndarray]:
    """For each section, each cluster's distance to the nearest centroid of a partner section's
    clusters, in units of the cluster's own spread (root mean squared distance of its cells to its
    centroid). Below 1 the counterpart lies inside the cluster's cloud of cells."""
    cents, spreads = [], []
    for emb, lab in zip(embeddings, labels):
        c = np.stack([emb[lab == k].mean(0) for k in range(lab.max() + 1)])
        spread = np.sqrt(np.stack([((emb[lab == k] - c[k]) ** 2).sum(1).mean() for k in range(len(c))]))
        cents.append(c)
        spreads.append(np.maximum(spread, 1e-12))
    out = []
    for v, (c, spread, part) in enumerate(zip(cents, spreads, _partners(len(cents), partners))):
        others = [cents[u] for u in part]
        if not others:
            out.append(np.zeros(len(c)))
            continue
        o = np.concatenate(others)
        d = np.sqrt(((c[:, None, :] - o[None, :, :]) ** 2).sum(-1)).min(1)
        out.append(d / spread)
    return out


def balance_weights(embeddings: list[np.ndarray], *, rule: str = "overlap", resolution: float = 1.0,
                    low: float = 0.5, high: float = 0.8, floor: float = 0.05, seed: int = 0,
                    partners: Sequence[Sequence[int]] | None = None) -> tuple[list[np.ndarray], dict]:
    """Per-cell weights (mean 1 within each section) and a summary of what was down-weighted.

    ``rule='overlap'`` (default): a cluster keeps full weight when the nearest cluster centroid of
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
        scores = cluster_overlap(embeddings, labels, partners)
        full = [np.clip((OVERLAP_NONE - r) / (OVERLAP_NONE - OVERLAP_FULL), 0.0, 1.0) for r in scores]
        kept = [r <= OVERLAP_FULL for r in scores]
    weights, summary = [], {"rule": rule, "n_clusters": [], "n_downweighted_clusters": [],
                            "downweighted_cell_fraction": []}
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
    if not parts:
        return ("Balance weights: every cluster of every section has a counterpart in another section; "
                "all cells keep full weight.")
    verb = "has" if len(parts) == 1 and parts[0].startswith("1 of") else "have"
    out = (f"Balance weights: {'; '.join(parts)} {verb} no close counterpart in other sections and "
           f"{'is' if verb == 'has' else 'are'} down-weighted in the balanced phase, so the discriminators "
           "do not force them onto other sections' cell types")
    if full:
        out += f"; every cluster of {', '.join(full)} has a counterpart"
    return out + "."


BALANCE_RULES = ("overlap", "cosine")
OVERLAP_FULL = 1.0
"""A cluster whose nearest other-section centroid is within this many spreads keeps full weight."""
OVERLAP_NONE = 2.0
"""Beyond this many spreads a cluster has no counterpart and gets the floor weight."""
