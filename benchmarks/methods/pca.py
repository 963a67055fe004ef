"""The unintegrated embedding shared by all methods and the scorer: PCA of the shared genes."""

from __future__ import annotations

import numpy as np

from ._common import log_normalise


def shared_pca(adata, n_comps: int = 30) -> np.ndarray:
    """log-normalise, scale each gene to unit variance (clipped at 10), PCA with
    min(n_comps, genes - 1) components (the SVD is deterministic: full solver)."""
    x = log_normalise(adata.X)
    x = x - x.mean(0)
    sd = x.std(0)
    x = np.clip(x / np.where(sd > 0, sd, 1.0), -10, 10)
    k = int(min(n_comps, x.shape[1] - 1))
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    # fix the sign of each component so the result does not depend on the LAPACK build
    signs = np.sign(u[np.abs(u).argmax(0), range(u.shape[1])])
    return (u[:, :k] * s[:k] * signs[:k]).astype(np.float32)
