"""Minibatches of seed cells plus their graph neighbourhoods, cut from CSR arrays (no DGL).

For ``hops`` rounds of graph convolution, the loss at a seed cell depends on cells up to ``hops``
edges away. A batch therefore holds nested node lists ``N0 = seeds ⊂ N1 ⊂ ... ⊂ N_hops`` (each
list starts with the previous one) and, for each level, the rows of Â for ``N_i`` restricted to the
columns ``N_{i+1}``. Because Â is normalised on the whole section graph, the values computed at the
seeds equal those of full-graph convolution exactly.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from .patches import patch_order

# torch marks sparse CSR tensors as beta; the operations used here (CSR @ dense) are stable.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)


@dataclass
class SectionData:
    """One section as the model sees it."""

    name: str
    x: sp.csr_matrix  # preprocessed expression, cells x panel genes, float32
    a_hat: sp.csr_matrix  # normalised adjacency with self-loops, float32
    genes: np.ndarray  # vocabulary position of each panel gene
    train_idx: np.ndarray
    val_idx: np.ndarray
    coordinates: bool = True  # False: a section without coordinates (Â = I), kept out of the spatial alignment

    @property
    def n_obs(self) -> int:
        return self.x.shape[0]


@dataclass
class Block:
    """Seeds of one section with the neighbourhood their losses depend on."""

    section: int
    nodes: np.ndarray  # N_hops: all cells whose expression is encoded
    n_seeds: int
    seeds: np.ndarray  # section positions of the seed cells (= nodes[:n_seeds])
    x: torch.Tensor  # expression of ``nodes`` (dense, float32)
    adjs: list[torch.Tensor]  # adjs[i]: Â[N_{hops-1-i}, N_{hops-i}] (outermost first), sparse CSR

    def to(self, device: torch.device) -> "Block":
        if device.type == "cpu":
            return self
        return Block(self.section, self.nodes, self.n_seeds, self.seeds,
                     self.x.to(device, non_blocking=True),
                     [a.to(device, non_blocking=True) for a in self.adjs])


def neighbourhood_levels(a_hat: sp.csr_matrix, seeds: np.ndarray, hops: int) -> list[np.ndarray]:
    """Nested node lists N0 = seeds, N1, ..., N_hops (each extends the previous one)."""
    levels = [np.asarray(seeds, dtype=np.int64)]
    member = np.zeros(a_hat.shape[0], dtype=bool)
    member[levels[0]] = True
    cur = levels[0]
    for _ in range(hops):
        nb = a_hat.indices[_row_positions(a_hat.indptr, cur)]
        nb = np.unique(nb)
        new = nb[~member[nb]]
        member[new] = True
        cur = np.concatenate([cur, new])
        levels.append(cur)
    return levels


def _row_positions(indptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions in ``indices`` of all entries of the given CSR rows (vectorised)."""
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(total, dtype=np.int64) + offsets


def csr_tensor(crow: np.ndarray, col: np.ndarray, val: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """A torch sparse CSR tensor. torch's note that CSR support is in beta is silenced here, where
    it arises: it speaks to torch's users, and reached R users as a warning of every run."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(torch.from_numpy(crow), torch.from_numpy(col),
                                       torch.from_numpy(np.ascontiguousarray(val, dtype=np.float32)),
                                       size=size, check_invariants=False)


def _sub_csr(a_hat: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray, pos: np.ndarray) -> torch.Tensor:
    """Â[rows, cols] as a torch sparse CSR tensor; every neighbour of ``rows`` must be in ``cols``."""
    pos[cols] = np.arange(cols.size)
    take = _row_positions(a_hat.indptr, rows)
    lengths = a_hat.indptr[rows + 1] - a_hat.indptr[rows]
    crow = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    col = pos[a_hat.indices[take]].astype(np.int64)
    val = a_hat.data[take].astype(np.float32, copy=False)
    return csr_tensor(crow, col, val, (rows.size, cols.size))


def dense_rows(x: sp.csr_matrix, rows: np.ndarray) -> torch.Tensor:
    """Densify only the requested rows of a sparse matrix."""
    return torch.from_numpy(np.ascontiguousarray(x[rows].toarray(), dtype=np.float32))


def make_block(data: SectionData, section: int, seeds: np.ndarray, hops: int) -> Block:
    levels = neighbourhood_levels(data.a_hat, seeds, hops)
    pos = np.full(data.n_obs, -1, dtype=np.int64)
    adjs = [_sub_csr(data.a_hat, levels[i], levels[i + 1], pos) for i in reversed(range(hops))]
    nodes = levels[-1]
    return Block(section, nodes, int(len(seeds)), levels[0], dense_rows(data.x, nodes), adjs)


class EpochPlan:
    """Seed batches of one epoch: one batch of every section per step.

    The number of steps is set by the section with most training cells, capped at ``max_steps``;
    smaller sections start another shuffled pass when they run out, so every step sees every
    section. Under the cap an epoch is the first ``max_steps`` batches of a fresh random order:
    every cell is equally likely to be drawn and none twice within the epoch, so an epoch costs
    the same at any data size (see ``TrainConfig.max_epoch_steps``).

    Validation (``use="val"``) visits every held-out cell once, in order, or an evenly spaced
    ``max_cells`` of them per section (the held-out cells are a random subset, so this is too).
    """

    def __init__(self, sections: Sequence[SectionData], batch_size: int, rng: np.random.Generator,
                 use: str = "train", patch_size: int | None = None, max_steps: int | None = None,
                 max_cells: int | None = None):
        self.batch_size = batch_size
        pools = [s.train_idx if use == "train" else s.val_idx for s in sections]
        if use == "train":
            self.n_steps = max(int(np.ceil(len(p) / batch_size)) for p in pools)
            if max_steps:
                self.n_steps = min(self.n_steps, int(max_steps))
            self.batches = []
            for s, p in zip(sections, pools):
                passes = int(np.ceil(self.n_steps * batch_size / max(len(p), 1)))
                if patch_size and s.coordinates:  # seeds in compact graph patches (fusemap.patches);
                    # a section without coordinates has no graph to cut patches from
                    order = np.concatenate([patch_order(s.a_hat, p, patch_size, rng) for _ in range(passes)])
                else:
                    order = np.concatenate([rng.permutation(p) for _ in range(passes + 1)])
                per = [order[i * batch_size:(i + 1) * batch_size] for i in range(self.n_steps)]
                # the last batch of the largest section may be short; keep it, it is still unbiased
                self.batches.append(per)
        else:  # validation: every cell (or an evenly spaced max_cells of them) once, in order
            if max_cells:
                pools = [p if len(p) <= max_cells else p[np.linspace(0, len(p) - 1, int(max_cells)).astype(np.int64)]
                         for p in pools]
            self.n_steps = max(int(np.ceil(len(p) / batch_size)) for p in pools)
            self.batches = [[p[i * batch_size:(i + 1) * batch_size] for i in range(self.n_steps)]
                            for p in pools]

    def steps(self) -> Iterator[list[np.ndarray]]:
        for i in range(self.n_steps):
            yield [b[i] for b in self.batches]


def iterate_blocks(sections: Sequence[SectionData], plan: EpochPlan, hops: int,
                   num_workers: int = 0, pin: bool = False) -> Iterator[list[Block]]:
    """Blocks for every step of ``plan``; with workers, the next steps are cut while this one trains.

    ``pin``: put the expression of each block in page-locked memory (training on CUDA), so that
    ``Block.to(device)`` copies asynchronously and overlaps with the previous step's kernels.
    """

    def build(seed_lists: list[np.ndarray]) -> list[Block]:
        blocks = [make_block(s, i, seeds, hops) for i, (s, seeds) in enumerate(zip(sections, seed_lists))
                  if len(seeds)]
        if pin:
            for b in blocks:
                b.x = b.x.pin_memory()
        return blocks

    if num_workers <= 0:
        for seed_lists in plan.steps():
            yield build(seed_lists)
        return
    with ThreadPoolExecutor(max_workers=num_workers) as pool:
        pending = []
        it = plan.steps()
        for seed_lists in it:
            pending.append(pool.submit(build, seed_lists))
            if len(pending) > num_workers:
                yield pending.pop(0).result()
        for fut in pending:
            yield fut.result()
