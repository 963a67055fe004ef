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
import scipy.sparse as sp

MAX_CLUSTER_CELLS = 50_000
"""Cells per section used to find clusters; the rest join their nearest centroid."""


def knn_connectivities(emb: np.ndarray, n_neighbors: int = 15) -> sp.csr_matrix:
    """Exact kNN graph with UMAP's fuzzy-union edge weights (what ``sc.pp.neighbors`` computes).

    Written with numpy instead of calling scanpy/umap: umap's numba kernels are compiled afresh in
    every process, which cost ~25 CPU seconds per training run, more than all epochs of a small
    atlas. For each cell: rho = distance to its nearest neighbour, sigma such that
    sum_j exp(-(d_j - rho) / sigma) = log2(k) (bisection, as UMAP does), directed weights
    exp(-(d - rho) / sigma), then the fuzzy union A + Aᵀ - A∘Aᵀ.
    """
    x = np.asarray(emb, dtype=np.float32)
    n = x.shape[0]
    k = min(n_neighbors, n)
    dist, idx = exact_knn(x, k)
    # the cell itself first (an exact duplicate may come first instead)
    own = idx == np.arange(n)[:, None]
    order = np.argsort(~own, axis=1, kind="stable")
    idx, dist = np.take_along_axis(idx, order, 1), np.take_along_axis(dist, order, 1).astype(np.float64)
    d = dist[:, 1:]
    pos = np.where(d > 0, d, np.inf)
    rho = np.where(np.isfinite(pos.min(1)), pos.min(1), 0.0)
    target = np.log2(k)
    lo, hi, mid = np.zeros(n), np.full(n, np.inf), np.ones(n)
    active = np.ones(n, dtype=bool)
    shifted = np.maximum(d - rho[:, None], 0.0)  # exp(0) = 1 at or below rho; no overflow in either branch
    for _ in range(64):
        psum = np.exp(-shifted / mid[:, None]).sum(1)
        active &= np.abs(psum - target) >= 1e-5
        if not active.any():
            break
        over = active & (psum > target)
        under = active & ~over
        hi[over] = mid[over]
        mid[over] = (lo[over] + hi[over]) / 2
        lo[under] = mid[under]
        inf = under & np.isinf(hi)
        mid[inf] *= 2
        fin = under & ~np.isinf(hi)
        mid[fin] = (lo[fin] + hi[fin]) / 2
    mean_all = dist.mean()
    sigma = np.where(rho > 0, np.maximum(mid, 1e-3 * dist.mean(1)), np.maximum(mid, 1e-3 * mean_all))
    w = np.exp(-np.maximum(dist - rho[:, None], 0.0) / sigma[:, None])
    w[idx == np.arange(n)[:, None]] = 0.0
    a = sp.csr_matrix((w.ravel(), (np.repeat(np.arange(n), k), idx.ravel())), shape=(n, n))
    a.eliminate_zeros()
    prod = a.multiply(a.T)
    conn = (a + a.T - prod).tocsr()
    conn.eliminate_zeros()
    return conn


def exact_knn(x: np.ndarray, k: int, block_entries: int = 8_000_000,
              ref: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices of each row's ``k`` nearest rows of ``ref`` (default: of ``x`` itself,
    the row itself included), by brute force.

    Candidates come from float32 matrix products in blocks of rows (``k + 8`` per row, so rounding
    cannot push a true neighbour out), then their distances are recomputed exactly in float64 as
    norms of differences and sorted (ties by index). Written here rather than calling
    scikit-learn, whose import costs ~50 MB and seconds in every training process for this call.
    """
    import torch

    x32 = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    x64 = np.asarray(x, dtype=np.float64)
    r32 = x32 if ref is None else torch.from_numpy(np.ascontiguousarray(ref, dtype=np.float32))
    r64 = x64 if ref is None else np.asarray(ref, dtype=np.float64)
    n, n_ref = x32.shape[0], r32.shape[0]
    sq = (r32 * r32).sum(1)
    m = min(n_ref, k + 8)
    rows = max(1, block_entries // max(n_ref, 1))
    dist = np.empty((n, k))
    idx = np.empty((n, k), dtype=np.int64)
    with torch.no_grad():
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            # |y|^2 - 2 x.y ranks the rows like |x - y|^2 (|x|^2 is constant along a row)
            score = torch.addmm(sq[None, :], x32[start:stop], r32.T, alpha=-2.0)
            cand = torch.topk(score, m, dim=1, largest=False, sorted=False).indices.numpy()
            diff = x64[start:stop, None, :] - r64[cand]
            d = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
            order = np.lexsort((cand, d), axis=1)[:, :k]  # by distance, ties by index
            idx[start:stop] = np.take_along_axis(cand, order, 1)
            dist[start:stop] = np.take_along_axis(d, order, 1)
    return dist, idx


class _IgraphRandom:
    """The interface igraph wants from a random generator, drawn from a seeded numpy RandomState,
    so Leiden is reproducible without touching the global ``random`` module."""

    def __init__(self, seed: int):
        self._rs = np.random.RandomState(seed)

    def getrandbits(self, k: int) -> int:
        return int(self._rs.tomaxint()) & ((1 << k) - 1)

    def randint(self, a: int, b: int) -> int:
        return int(self._rs.randint(a, b + 1))

    def random(self) -> float:
        return float(self._rs.random_sample())

    def gauss(self, mu: float, sigma: float) -> float:
        return float(self._rs.normal(mu, sigma))


def leiden_labels(emb: np.ndarray, resolution: float, seed: int, n_neighbors: int = 15) -> np.ndarray:
    """Leiden clusters (modularity, 2 iterations) of the fuzzy kNN graph of ``emb``.

    Calls igraph directly, as ``sc.tl.leiden(flavor="igraph", n_iterations=2)`` does, with the same
    graph (every stored entry an edge) and the same seeded generator, so the labels are scanpy's
    (``tests/core/test_balance_graph.py``) without scanpy's import (~150 MB, seconds of CPU) in training.
    """
    import igraph
    import random

    x = np.asarray(emb, dtype=np.float32)
    conn = knn_connectivities(x, n_neighbors=min(n_neighbors, max(x.shape[0] - 1, 2)))
    rows, cols = conn.nonzero()
    # pairs of Python ints (zip of two flat lists builds them 2.5x faster than a 2-D array's tolist())
    g = igraph.Graph(n=x.shape[0], edges=list(zip(rows.tolist(), cols.tolist())), directed=False)
    g.es["weight"] = np.asarray(conn[rows, cols]).ravel().astype(np.float64)
    igraph.set_random_number_generator(_IgraphRandom(seed))
    try:
        part = g.community_leiden(objective_function="modularity", weights="weight", resolution=resolution,
                                  n_iterations=2)
    finally:
        igraph.set_random_number_generator(random)
    return np.asarray(part.membership, dtype=int)


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
