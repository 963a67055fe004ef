"""Per-section preprocessing (DESIGN.md §2.1), kept sparse throughout.

Library-size normalisation, log1p, division of each gene by its standard deviation within the
section (no centring, so zeros stay zeros and the matrix stays sparse), clipping at ``clip``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass
class PreprocessStats:
    target_sum: float | None
    gene_scale: np.ndarray  # per-gene divisor applied after log1p
    n_empty_cells: int


def _as_csr(m) -> sp.csr_matrix:
    if hasattr(m, "compute"):
        m = m.compute()
    if sp.issparse(m):
        return sp.csr_matrix(m, dtype=np.float64, copy=True)
    return sp.csr_matrix(np.asarray(m, dtype=np.float64))


def normalize_log(m, *, normalized: bool, target_sum: float | None) -> tuple[sp.csr_matrix, float | None, int]:
    """Library-size normalise and log1p (unless ``normalized``); returns CSR float64."""
    x = _as_csr(m)
    x.eliminate_zeros()
    if normalized:
        return x, None, int((np.diff(x.indptr) == 0).sum())
    totals = np.asarray(x.sum(axis=1)).ravel()
    empty = totals <= 0
    if target_sum is None:
        target_sum = float(np.median(totals[~empty])) if (~empty).any() else 1.0
    factors = np.zeros_like(totals)
    factors[~empty] = target_sum / totals[~empty]
    x = sp.csr_matrix(sp.diags(factors) @ x)
    np.log1p(x.data, out=x.data)
    return x, float(target_sum), int(empty.sum())


def gene_std(x: sp.csr_matrix) -> np.ndarray:
    """Per-column standard deviation of a sparse matrix (ddof=1, as scanpy's scale)."""
    n = x.shape[0]
    mean = np.asarray(x.mean(axis=0)).ravel()
    sq = np.asarray(x.multiply(x).mean(axis=0)).ravel()
    var = (sq - mean**2) * (n / max(n - 1, 1))
    return np.sqrt(np.clip(var, 0, None))


def preprocess(m, *, normalized: bool = False, target_sum: float | None = None,
               clip: float = 10.0) -> tuple[sp.csr_matrix, PreprocessStats]:
    """Return the model input (CSR float32) and the statistics used to make it."""
    x, tsum, n_empty = normalize_log(m, normalized=normalized, target_sum=target_sum)
    scale = gene_std(x)
    scale[scale == 0] = 1.0
    x = sp.csr_matrix(x @ sp.diags(1.0 / scale))
    np.minimum(x.data, clip, out=x.data)
    x = x.astype(np.float32)
    x.sort_indices()
    return x, PreprocessStats(tsum, scale.astype(np.float32), n_empty)
