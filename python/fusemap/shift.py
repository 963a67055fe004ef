"""Section shifts: one translation per section that makes matched cells coincide on average.

Why: the alignment terms are estimated on minibatches of a few dozen cells per section, and a
kernel MMD grows with the square of a small offset, so a global offset of a few percent of the
embedding's spread lies below their noise. Such an offset is invisible in a UMAP but it is the
"section effect" that batch scores measure (on three thinned copies of one Xenium tissue it
explained 6x more embedding variance than sampling noise, scIB PCR comparison 0.08). Estimated
once from all cells it is easy to remove.

How: mutual nearest neighbours (MNN) between a section's cells and the pooled cells of the other
sections pair only cells of matching biology, so a section with cell types the others lack is not
pulled onto them by its unique cells (unlike centring each section, which assumes equal
composition). A section's shift is the mean difference over its MNN pairs; sections are updated
one after another (two sections meet instead of swapping places), in rounds until they stop
moving, and the
shifts of an integration are centred so the atlas stays where it was.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .neighbors import nearest

SHIFT_NEIGHBORS = 20
"""Neighbours searched on each side for mutual pairs. Pairs of close cells under-estimate an
offset (noise that happens to cancel it makes a pair likelier); more neighbours select less, and
the rounds remove what remains."""
SHIFT_MAX_CELLS = 5_000
"""Cells per section used to estimate its shift (a random sample above this), and
:data:`SHIFT_MAX_POOL` cells of the other sections pooled: the cost is bounded at any atlas size,
and a mean over thousands of pairs is already precise. On a 100,000-cell atlas of 8 sections
(``benchmarks/performance/shift_caps.py``) caps of 5,000 / 15,000 took 3.8x less time than
10,000 / 30,000 and moved the shifts by under 1 % of the embedding's spread (another sample at the
larger caps: 0.5 %), with the same section mixing and cell-type transfer to three decimals."""
SHIFT_MAX_POOL = 15_000
SHIFT_ROUNDS = 10
"""Most passes over the sections; they stop once no section moves by more than
:data:`SHIFT_TOLERANCE` of the embedding's spread."""
SHIFT_TOLERANCE = 0.002


def _sample(n: int, max_cells: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= max_cells else np.sort(rng.choice(n, max_cells, replace=False))


def embedding_spread(cells: Sequence[np.ndarray], chunk: int = 65_536) -> float:
    """Root of the pooled cells' total variance, from float64 sums over chunks of rows: pooling a
    1M-cell atlas (``np.concatenate(...).var(0)``) held about 0.3 GB more at the run's peak."""
    n, s1, s2 = 0, 0.0, 0.0
    for c in cells:
        for start in range(0, len(c), chunk):
            x = np.asarray(c[start:start + chunk], dtype=np.float64)
            s1, s2, n = s1 + x.sum(0), s2 + (x * x).sum(0), n + len(x)
    if n == 0:
        return 0.0
    mean = s1 / n
    return float(np.sqrt(np.maximum(s2 / n - mean * mean, 0.0).sum()))


def mnn_pairs(a: np.ndarray, b: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``i`` of ``a`` and ``j`` of ``b`` that are among each other's ``k`` nearest neighbours."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    ab = nearest(b, a, k, seed=seed)  # a's neighbours in b
    ba = nearest(a, b, k, seed=seed)  # b's neighbours in a
    i = np.repeat(np.arange(len(a)), ab.shape[1])
    j = ab.ravel()
    mutual = (ba[j] == i[:, None]).any(1)
    return i[mutual], j[mutual]


def mnn_shifts(cells: Sequence[np.ndarray], movable: Sequence[bool], *, n_neighbors: int = SHIFT_NEIGHBORS,
               max_cells: int = SHIFT_MAX_CELLS, max_pool: int = SHIFT_MAX_POOL, rounds: int = SHIFT_ROUNDS,
               seed: int = 0) -> np.ndarray:
    """Per-section translations (sections x latent, float32) for the embeddings ``cells``.

    Only ``movable`` sections get a shift (a query mapping moves its query sections onto a fixed
    reference); when every section is movable the shifts are centred (weighted by cell counts).
    A section without mutual pairs keeps a zero shift.
    """
    n_sec = len(cells)
    dim = cells[0].shape[1] if n_sec else 0
    shifts = np.zeros((n_sec, dim), dtype=np.float64)
    if n_sec < 2 or not any(movable):
        return shifts.astype(np.float32)
    rng = np.random.default_rng(seed)
    samples = [np.asarray(c[_sample(len(c), max_cells, rng)], dtype=np.float64) for c in cells]
    pools = {s: _sample(sum(len(samples[t]) for t in range(n_sec) if t != s), max_pool, rng)
             for s in range(n_sec)}
    spread = embedding_spread(samples)
    for _ in range(rounds):
        largest = 0.0
        for s in range(n_sec):
            others = [t for t in range(n_sec) if t != s and len(samples[t])]
            if not movable[s] or len(samples[s]) == 0 or not others:
                continue
            pooled = np.concatenate([samples[t] + shifts[t] for t in others])[pools[s]]
            i, j = mnn_pairs(samples[s] + shifts[s], pooled, n_neighbors, seed)
            if len(i):
                step = (pooled[j] - (samples[s][i] + shifts[s])).mean(0)
                shifts[s] += step
                largest = max(largest, float(np.linalg.norm(step)))
        if largest <= SHIFT_TOLERANCE * spread:
            break
    if all(movable):
        sizes = np.array([len(c) for c in cells], dtype=np.float64)
        shifts -= (sizes[:, None] * shifts).sum(0) / max(sizes.sum(), 1.0)
    return shifts.astype(np.float32)
