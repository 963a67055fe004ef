"""Whole-section read-out of embeddings, in chunks of cells (never a dense cells x genes copy)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from .module import FuseMapModule
from .sampler import SectionData, csr_tensor, dense_rows

CHUNK = 16_384


def to_torch_csr(a: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    return csr_tensor(a.indptr.astype(np.int64), a.indices.astype(np.int64), a.data, a.shape).to(device)


@torch.no_grad()
def cell_means(module: FuseMapModule, section: int, x: sp.csr_matrix, device: torch.device,
               chunk: int = CHUNK) -> torch.Tensor:
    """Posterior means Z_c of all cells (eval mode), on ``device``."""
    enc = module.encoders[section]
    was_training = enc.training
    enc.eval()
    out = [enc(dense_rows(x, np.arange(s, min(s + chunk, x.shape[0]))).to(device))[0]
           for s in range(0, x.shape[0], chunk)]
    enc.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, module.cfg.n_latent, device=device)


@torch.no_grad()
def full_graph(module: FuseMapModule, section: int, a_hat: sp.csr_matrix, z: torch.Tensor,
               device: torch.device, decode: bool = False) -> torch.Tensor:
    """Z_T = graph encoder(Z_c) over the whole graph; with ``decode``, also the graph decoder."""
    adj = to_torch_csr(a_hat, device)
    L = module.n_enc_hops
    zt = module.spatial_encode(section, [adj] * L, z)
    return module.spatial_decode(section, [adj] * L, zt) if decode else zt


@torch.no_grad()
def embed_section(module: FuseMapModule, section: int, data: SectionData, device: torch.device,
                  chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    zc = cell_means(module, section, data.x, device, chunk)
    zt = full_graph(module, section, data.a_hat, zc, device)
    return zc.cpu().numpy(), zt.cpu().numpy()
