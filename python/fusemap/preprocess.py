"""Per-section preprocessing (DESIGN.md §2.1), kept sparse, float32 and in place.

Library-size normalisation, log1p, division of each gene by its standard deviation within the
section (no centring, so zeros stay zeros and the matrix stays sparse), clipping at ``clip``.

Memory: the input is copied once into a float32 CSR matrix and every later step changes that
copy's values in place, a bounded number of stored entries at a time (``CHUNK_NNZ``); statistics
are accumulated in float64. Peak memory is therefore the input plus one float32 copy, linear in
the stored entries, and no dense cells x genes matrix is ever made (dense input is converted
to CSR a block of rows at a time). :mod:`fusemap.io.backed` runs the same per-chunk steps on
sections read from disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import scipy.sparse as sp

CHUNK_NNZ = 1 << 22
"""Stored entries transformed at once (bounds the temporaries: ~4 M entries, tens of MB)."""


@dataclass
class PreprocessStats:
    target_sum: float | None
    gene_scale: np.ndarray  # per-gene divisor applied after log1p
    n_empty_cells: int


# -- building blocks (shared with fusemap.io.backed) ---------------------------------------------------
def row_chunks(indptr: np.ndarray, chunk_nnz: int = CHUNK_NNZ) -> Iterator[tuple[int, int]]:
    """Consecutive row ranges ``[r0, r1)`` holding about ``chunk_nnz`` stored entries each."""
    n = len(indptr) - 1
    r0 = 0
    while r0 < n:
        r1 = int(np.searchsorted(indptr, indptr[r0] + chunk_nnz, side="right")) - 1
        r1 = min(max(r1, r0 + 1), n)
        yield r0, r1
        r0 = r1


def chunk_row_sums(data: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Sum of each row's stored values (float64), rows given by their entry counts."""
    out = np.zeros(len(lengths), dtype=np.float64)
    nz = lengths > 0
    if nz.any():
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])[nz]
        out[nz] = np.add.reduceat(data.astype(np.float64, copy=False), starts)
    return out


def library_factors(totals: np.ndarray, target_sum: float | None) -> tuple[np.ndarray, float, int]:
    """Per-cell factors ``target_sum / library size`` (0 for empty cells); the median library size
    of the non-empty cells when ``target_sum`` is None."""
    empty = totals <= 0
    if target_sum is None:
        target_sum = float(np.median(totals[~empty])) if (~empty).any() else 1.0
    factors = np.zeros_like(totals)
    factors[~empty] = target_sum / totals[~empty]
    return factors, float(target_sum), int(empty.sum())


def normalize_chunk(data: np.ndarray, lengths: np.ndarray, factors: np.ndarray) -> None:
    """In place: scale each row's values by its factor, then log1p."""
    data *= np.repeat(factors, lengths).astype(data.dtype, copy=False)
    np.log1p(data, out=data)


class ColumnMoments:
    """Per-gene sum and sum of squares over stored entries (float64), for the standard deviation."""

    def __init__(self, n_genes: int):
        self.s1 = np.zeros(n_genes, dtype=np.float64)
        self.s2 = np.zeros(n_genes, dtype=np.float64)

    def add(self, data: np.ndarray, indices: np.ndarray) -> None:
        d = data.astype(np.float64, copy=False)
        self.s1 += np.bincount(indices, weights=d, minlength=self.s1.size)
        self.s2 += np.bincount(indices, weights=d * d, minlength=self.s1.size)

    def std(self, n_obs: int) -> np.ndarray:
        """Column standard deviation with ddof=1 (as scanpy's scale); zeros count as values."""
        mean = self.s1 / max(n_obs, 1)
        var = (self.s2 / max(n_obs, 1) - mean**2) * (n_obs / max(n_obs - 1, 1))
        return np.sqrt(np.clip(var, 0, None))


def scale_clip_chunk(data: np.ndarray, indices: np.ndarray, inv_scale: np.ndarray, clip: float) -> None:
    """In place: divide each value by its gene's scale and clip at ``clip``."""
    data *= inv_scale[indices]
    np.minimum(data, clip, out=data)


# -- in-memory path -----------------------------------------------------------------------------
def _as_csr32(m) -> sp.csr_matrix:
    """A float32 CSR copy of any matrix (the input is never modified); dense input is converted a
    block of rows at a time, so no dense float64 copy is made."""
    if hasattr(m, "compute"):
        m = m.compute()
    if sp.issparse(m):
        x = sp.csr_matrix(m, copy=True)
        if x.dtype != np.float32:
            x = x.astype(np.float32)
    else:
        m = np.asarray(m)
        step = max(1, CHUNK_NNZ // max(m.shape[1], 1))
        blocks = [sp.csr_matrix(m[i:i + step].astype(np.float32, copy=False)) for i in range(0, m.shape[0], step)]
        x = sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix(m.shape, dtype=np.float32)
        x = x.astype(np.float32, copy=False)
    x.eliminate_zeros()
    x.sum_duplicates()
    return x


def _lengths(x: sp.csr_matrix, r0: int, r1: int) -> np.ndarray:
    return np.diff(x.indptr[r0:r1 + 1])


def normalize_log(m, *, normalized: bool, target_sum: float | None) -> tuple[sp.csr_matrix, float | None, int]:
    """Library-size normalise and log1p (unless ``normalized``); returns a float32 CSR copy."""
    x = _as_csr32(m)
    if normalized:
        return x, None, int((np.diff(x.indptr) == 0).sum())
    totals = np.concatenate([chunk_row_sums(x.data[x.indptr[a]:x.indptr[b]], _lengths(x, a, b))
                             for a, b in row_chunks(x.indptr)]) if x.shape[0] else np.zeros(0)
    factors, target_sum, n_empty = library_factors(totals, target_sum)
    for a, b in row_chunks(x.indptr):
        normalize_chunk(x.data[x.indptr[a]:x.indptr[b]], _lengths(x, a, b), factors[a:b])
    return x, target_sum, n_empty


def gene_std(x: sp.csr_matrix) -> np.ndarray:
    """Per-column standard deviation of a sparse matrix (ddof=1, as scanpy's scale)."""
    x = sp.csr_matrix(x)
    mom = ColumnMoments(x.shape[1])
    for a, b in row_chunks(x.indptr):
        s, e = x.indptr[a], x.indptr[b]
        mom.add(x.data[s:e], x.indices[s:e])
    return mom.std(x.shape[0])


def preprocess(m, *, normalized: bool = False, target_sum: float | None = None,
               clip: float = 10.0) -> tuple[sp.csr_matrix, PreprocessStats]:
    """Return the model input (CSR float32) and the statistics used to make it."""
    x, tsum, n_empty = normalize_log(m, normalized=normalized, target_sum=target_sum)
    scale = gene_std(x)
    scale[scale == 0] = 1.0
    inv = (1.0 / scale).astype(np.float32)
    for a, b in row_chunks(x.indptr):
        s, e = x.indptr[a], x.indptr[b]
        scale_clip_chunk(x.data[s:e], x.indices[s:e], inv, clip)
    x.sort_indices()
    return x, PreprocessStats(tsum, scale.astype(np.float32), n_empty)
