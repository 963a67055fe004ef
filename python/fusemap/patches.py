"""Spatially compact seed patches: the cheap way to cut minibatches from a spatial graph.

A seed's loss depends on its ``hops``-neighbourhood, so a minibatch of ``b`` random seeds encodes
about ``b`` times the size of a ``hops``-ball (~19 cells for two hops on a Delaunay graph), and in a
small section it encodes almost the whole section at every step. Seeds taken as a few compact
patches instead share their neighbourhoods: the closure only adds the patches' borders.

Patches are the cells of a graph Voronoi partition: ``n / patch_size`` random centre cells, each
cell joining its nearest centre by graph distance (one multi-source breadth-first search in C,
``scipy.sparse.csgraph.dijkstra(min_only=True)``). Following the graph rather than coordinates
keeps patches from spanning tissue gaps (pruned edges) and needs nothing but the adjacency. A new
random partition is drawn for every pass over a section, so patch borders move between epochs.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra


def graph_patches(adj: sp.csr_matrix, patch_size: int, rng: np.random.Generator) -> np.ndarray:
    """Patch label of every cell: a random graph Voronoi partition with ~``patch_size`` cells a patch.

    Cells that no centre reaches (another connected component) get centres of their own in a
    further round, so every cell gets a label.
    """
    n = adj.shape[0]
    labels = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return labels
    next_label = 0
    todo = np.arange(n)
    while todo.size:
        k = max(1, int(round(todo.size / patch_size)))
        centres = rng.choice(todo, size=min(k, todo.size), replace=False)
        _, _, sources = dijkstra(adj, directed=False, indices=centres, unweighted=True,
                                 min_only=True, return_predecessors=True)
        hit = sources[todo] >= 0
        # centre ids -> compact labels
        centre_rank = np.full(n, -1, dtype=np.int64)
        centre_rank[centres] = np.arange(centres.size) + next_label
        labels[todo[hit]] = centre_rank[sources[todo[hit]]]
        next_label += centres.size
        todo = todo[~hit]
    return labels


def patch_order(adj: sp.csr_matrix, pool: np.ndarray, patch_size: int, rng: np.random.Generator) -> np.ndarray:
    """The cells of ``pool`` in a random order that keeps each patch's cells together.

    Patches come in random order, cells within a patch in random order; cutting the result into
    consecutive batches gives batches made of a few whole patches (plus parts at the cuts).
    """
    labels = graph_patches(adj, patch_size, rng)
    rank = rng.permutation(int(labels.max()) + 1)
    keys = rank[labels[pool]]
    return pool[np.lexsort((rng.random(pool.size), keys))]
