"""Tensor-only part of FuseMap: networks, forward pass and losses (no data handling, no loop).

Shapes: ``k`` latent size, ``G`` vocabulary size, ``g_v`` panel size of section ``v``. The gene
embedding is stored as ``E`` (k x G); section ``v`` is decoded with the columns of its panel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig

LOGVAR_RANGE = (-10.0, 10.0)


def bucket_rows(n: int) -> int:
    """``n`` rounded up to one of 8 sizes per doubling (at most 12.5% padding)."""
    if n <= 64:
        return 64
    step = (1 << (n.bit_length() - 1)) // 8
    return -(-n // step) * step


class Dropout(nn.Module):
    """Inverted dropout with a cheap CPU mask, fused with the LeakyReLU before it in the encoders.

    On CPU, torch draws one Mersenne-Twister number per element for ``bernoulli_``; in the
    encoders that made dropout as expensive as their matrix products. Here the mask comes from
    numpy's PCG64 generator, four 16-bit uniforms per 64-bit draw, seeded by one draw from torch's
    generator (so ``torch.manual_seed`` and checkpointed RNG states still fix it); an element is
    kept when its uniform clears ``round(p * 65536)`` (the rate is exact to 1/65536). CUDA keeps
    torch's fused kernel.

    :meth:`after_leaky_relu` applies LeakyReLU and dropout as one product ``x * f`` with
    ``f = slope(x) * keep / (1 - p)``: autograd then saves one tensor ``f`` instead of the
    activation input and the mask, and the elementwise passes drop from four to two.
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = float(p)
        self._threshold = round(self.p * 65536)  # uint16 uniforms in [0, 65535]

    def _kept(self, x: torch.Tensor) -> torch.Tensor:
        """1.0 where an element of ``x`` is kept, 0.0 where it is dropped (float32, CPU)."""
        n = x.numel()
        seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
        words = np.random.Generator(np.random.PCG64(seed)).bit_generator.random_raw((n + 3) // 4)
        kept = words.view(np.uint16)[:n] >= self._threshold  # numpy: torch's bool ops are slow on CPU
        return torch.from_numpy(kept.astype(np.float32)).view(x.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, True)
        return x * self._kept(x).mul_(1.0 / (1.0 - self.p)).to(x.dtype)

    def after_leaky_relu(self, x: torch.Tensor, slope: float) -> torch.Tensor:
        """``dropout(leaky_relu(x, slope))``."""
        if not self.training or self.p == 0.0:
            return F.leaky_relu(x, slope)
        if x.device.type != "cpu":
            return F.dropout(F.leaky_relu(x, slope), self.p, True)
        with torch.no_grad():
            scale = 1.0 / (1.0 - self.p)
            # slope(x) * scale = scale where x > 0, slope * scale where x < 0, from sign(x)
            f = torch.sign(x.float()).mul_(0.5 * (1 - slope) * scale).add_(0.5 * (1 + slope) * scale)
            f = f.mul_(self._kept(x)).to(x.dtype)
        return x * f


class Encoder(nn.Module):
    """Per-section MLP: panel genes -> (mean, log-variance) of a k-dimensional Gaussian."""

    def __init__(self, n_in: int, cfg: ModelConfig):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_in
        for _ in range(cfg.n_hidden_layers):
            norm = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}.get(cfg.normalization)
            layers += [nn.Linear(width, cfg.n_hidden)]
            layers += [norm(cfg.n_hidden)] if norm is not None else []
            layers += [nn.LeakyReLU(0.2), Dropout(cfg.dropout)]
            width = cfg.n_hidden
        self.body = nn.Sequential(*layers)
        self.mean = nn.Linear(width, cfg.n_latent)
        self.logvar = nn.Linear(width, cfg.n_latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x
        layers = list(self.body)
        i = 0
        while i < len(layers):
            layer = layers[i]
            if isinstance(layer, nn.LeakyReLU) and i + 1 < len(layers) and isinstance(layers[i + 1], Dropout):
                h = layers[i + 1].after_leaky_relu(h, layer.negative_slope)  # one fused product
                i += 2
            else:
                h = layer(h)
                i += 1
        return self.mean(h), self.logvar(h).clamp(*LOGVAR_RANGE)


class GraphLayer(nn.Module):
    """One trainable graph convolution Â (h W) + b, initialised at W = I, b = 0 (pure aggregation)."""

    def __init__(self, k: int):
        super().__init__()
        self.weight = nn.Parameter(torch.eye(k))
        self.bias = nn.Parameter(torch.zeros(k))

    def forward(self, adj: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return adj @ (h @ self.weight) + self.bias


class GraphAutoencoder(nn.Module):
    """Trainable graph encoder Z_c -> Z_T and a symmetric decoder Z_T -> smoothed Z_c."""

    def __init__(self, k: int, n_layers: int):
        super().__init__()
        self.enc = nn.ModuleList(GraphLayer(k) for _ in range(n_layers))
        self.dec = nn.ModuleList(GraphLayer(k) for _ in range(n_layers))

    @staticmethod
    def _run(layers: nn.ModuleList, adjs: Sequence[torch.Tensor], h: torch.Tensor) -> torch.Tensor:
        for i, (layer, adj) in enumerate(zip(layers, adjs)):
            h = layer(adj, h)
            if i < len(layers) - 1:
                h = F.leaky_relu(h, 0.2)
        return h

    def encode(self, adjs, h):
        return self._run(self.enc, adjs, h)

    def decode(self, adjs, h):
        return self._run(self.dec, adjs, h)


class Discriminator(nn.Module):
    """MLP k -> 256 -> 256 -> V predicting each cell's section (returns logits)."""

    def __init__(self, k: int, n_hidden: int, n_classes: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(k, n_hidden), nn.LeakyReLU(0.2),
            nn.Linear(n_hidden, n_hidden), nn.LeakyReLU(0.2),
            nn.Linear(n_hidden, n_classes),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


@dataclass
class Losses:
    """Loss components of one step (tensors, so the loop can back-propagate and log them)."""

    recon: torch.Tensor
    kl: torch.Tensor
    cell_recon: torch.Tensor

    def autoencoder(self, kl_weight: float, cell_recon_weight: float) -> torch.Tensor:
        return self.recon + kl_weight * self.kl + cell_recon_weight * self.cell_recon


@dataclass
class Forward:
    z_cell: torch.Tensor  # seeds of all sections, concatenated (posterior means)
    z_spatial: torch.Tensor
    sections: torch.Tensor  # section index of each seed
    losses: Losses


class FuseMapModule(nn.Module):
    """Per-section encoders (and graph autoencoders), shared gene embedding, two discriminators."""

    def __init__(self, panels: Sequence[Sequence[int]], n_genes: int, n_disc_classes: int,
                 cfg: ModelConfig, gene_blocks: Sequence[int] | None = None):
        super().__init__()
        self.cfg = cfg
        self.encoders = nn.ModuleList(Encoder(len(p), cfg) for p in panels)
        self.graph_aes = nn.ModuleList(
            GraphAutoencoder(cfg.n_latent, cfg.gcn_layers) for _ in panels
        ) if cfg.spatial_mode == "gcn" else None
        e = torch.empty(cfg.n_latent, n_genes)
        nn.init.xavier_uniform_(e)
        # a list of column blocks, so that a query mapping can append new genes next to frozen ones;
        # ``gene_blocks`` (column counts) rebuilds the block structure of a saved mapped model
        blocks = [n_genes] if gene_blocks is None else [int(b) for b in gene_blocks]
        if sum(blocks) != n_genes:
            raise ValueError(f"gene_blocks {blocks} do not add up to n_genes={n_genes}")
        self.gene_embedding = nn.ParameterList(nn.Parameter(b.clone()) for b in torch.split(e, blocks, dim=1))
        self.panels = [torch.as_tensor(p, dtype=torch.long) for p in panels]
        # per-section gene offsets absorb technology-specific detection efficiency, which otherwise
        # can only be expressed by shifting a whole section in the latent space
        self.gene_bias = nn.ParameterList(
            nn.Parameter(torch.zeros(len(p))) for p in panels) if cfg.section_gene_bias else None
        self.disc_cell = Discriminator(cfg.n_latent, cfg.n_disc_hidden, max(n_disc_classes, 1))
        self.disc_spatial = Discriminator(cfg.n_latent, cfg.n_disc_hidden, max(n_disc_classes, 1))

    # -- structure ---------------------------------------------------------------------------
    @property
    def hops(self) -> int:
        """Graph hops between a seed's loss and the cells it depends on."""
        return 2 * (self.cfg.gcn_layers if self.cfg.spatial_mode == "gcn" else 1)

    @property
    def n_enc_hops(self) -> int:
        return self.hops // 2

    @property
    def n_genes(self) -> int:
        return sum(int(b.shape[1]) for b in self.gene_embedding)

    def add_sections(self, panels: Sequence[Sequence[int]], n_new_genes: int) -> list[int]:
        """Append networks for new (query) sections and a new block of ``n_new_genes`` gene columns.

        Existing parameters are left untouched (the new genes get their own block, so the existing
        blocks can be frozen). Returns the indices of the new sections.
        """
        cfg = self.cfg
        device = self.gene_embedding[0].device
        n_total = self.n_genes + n_new_genes
        bad = [max(p) for p in panels if len(p) and max(p) >= n_total]
        if bad:
            raise ValueError(f"panel gene index {bad[0]} outside the vocabulary of {n_total} genes")
        if n_new_genes:
            bound = (6.0 / (cfg.n_latent + n_total)) ** 0.5  # Xavier bound of the whole matrix
            block = torch.empty(cfg.n_latent, n_new_genes, device=device).uniform_(-bound, bound)
            self.gene_embedding.append(nn.Parameter(block))
        first = len(self.encoders)
        for p in panels:
            self.encoders.append(Encoder(len(p), cfg).to(device))
            if self.graph_aes is not None:
                self.graph_aes.append(GraphAutoencoder(cfg.n_latent, cfg.gcn_layers).to(device))
            if self.gene_bias is not None:
                self.gene_bias.append(nn.Parameter(torch.zeros(len(p), device=device)))
            self.panels.append(torch.as_tensor(p, dtype=torch.long))
        return list(range(first, len(self.encoders)))

    def section_view(self, sections: Sequence[int], n_disc_classes: int) -> "FuseMapModule":
        """A module over ``sections`` that shares their networks, gene biases and the whole gene
        embedding with this module, plus fresh discriminators over ``n_disc_classes`` classes.

        Training the view trains those sections of this module in place (query mapping); the
        other sections' networks are not part of the view, so nothing can change them.
        """
        view = FuseMapModule.__new__(FuseMapModule)
        nn.Module.__init__(view)
        view.cfg = self.cfg
        view.encoders = nn.ModuleList([self.encoders[i] for i in sections])
        view.graph_aes = None if self.graph_aes is None else nn.ModuleList([self.graph_aes[i] for i in sections])
        view.gene_embedding = self.gene_embedding
        view.panels = [self.panels[i] for i in sections]
        view.gene_bias = None if self.gene_bias is None else nn.ParameterList([self.gene_bias[i] for i in sections])
        device = self.gene_embedding[0].device
        view.disc_cell = Discriminator(self.cfg.n_latent, self.cfg.n_disc_hidden, n_disc_classes).to(device)
        view.disc_spatial = Discriminator(self.cfg.n_latent, self.cfg.n_disc_hidden, n_disc_classes).to(device)
        return view

    def gene_matrix(self) -> torch.Tensor:
        """E (k x G) over the whole vocabulary."""
        parts = list(self.gene_embedding)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def generator_parameters(self):
        for name, p in self.named_parameters():
            if not name.startswith("disc_"):
                yield p

    def discriminator_parameters(self):
        return list(self.disc_cell.parameters()) + list(self.disc_spatial.parameters())

    # -- pieces of the forward pass -------------------------------------------------------------
    def spatial_encode(self, section: int, adjs: Sequence[torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        if self.graph_aes is None:
            return adjs[0] @ z
        return self.graph_aes[section].encode(adjs, z)

    def spatial_decode(self, section: int, adjs: Sequence[torch.Tensor], zt: torch.Tensor) -> torch.Tensor:
        if self.graph_aes is None:
            return adjs[0] @ zt
        return self.graph_aes[section].decode(adjs, zt)

    def decode_genes(self, h: torch.Tensor, genes: torch.Tensor, E: torch.Tensor | None = None,
                     bias: torch.Tensor | None = None) -> torch.Tensor:
        """ReLU(h E[:, genes] + bias): expression of ``genes`` from (smoothed) embeddings ``h``."""
        E = self.gene_matrix() if E is None else E
        out = h @ E[:, genes]
        return F.relu(out if bias is None else out + bias)

    def section_bias(self, section: int) -> torch.Tensor | None:
        return None if self.gene_bias is None else self.gene_bias[section]

    def _encode(self, section: int, x: torch.Tensor, bf16: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder of ``section``; under bfloat16 the rows are zero-padded to a few bucket sizes.

        oneDNN keeps compiled bfloat16 kernels for every distinct row count it has seen; with a
        different neighbourhood size at every step that grew the process by ~4 MB per step (+330 MB
        on the STARmap benchmark). Padded to :func:`bucket_rows` the shapes repeat.
        """
        if not bf16:
            return self.encoders[section](x)
        n = x.shape[0]
        rows = bucket_rows(n)
        if rows > n:
            x = torch.cat([x, x.new_zeros(rows - n, x.shape[1])])
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            mu, logvar = self.encoders[section](x)
        return mu[:n].float(), logvar[:n].float()

    # -- training forward ----------------------------------------------------------------------
    def forward(self, blocks, sample: bool, bf16: bool = False) -> Forward:
        """Losses and seed embeddings of one step; ``bf16`` runs the encoder MLPs under bfloat16
        autocast (their outputs come back as float32, so everything after them is float32)."""
        E = self.gene_matrix()
        L = self.n_enc_hops
        zc, zt, secs, recon, kl, cell_recon = [], [], [], [], [], []
        for b in blocks:
            v = b.section
            genes = self.panels[v].to(E.device)
            mu, logvar = self._encode(v, b.x, bf16)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
            zt_path = self.spatial_encode(v, b.adjs[:L], z)
            h = self.spatial_decode(v, b.adjs[L:], zt_path)
            x_seed = b.x[: b.n_seeds]
            bias = self.section_bias(v)
            recon.append(F.mse_loss(self.decode_genes(h, genes, E, bias), x_seed))
            if self.cfg.cell_recon_weight > 0:
                cell_recon.append(F.mse_loss(self.decode_genes(z[: b.n_seeds], genes, E, bias), x_seed))
            kl_cell = -0.5 * (1 + logvar[: b.n_seeds] - mu[: b.n_seeds] ** 2 - logvar[: b.n_seeds].exp()).sum(1)
            kl.append(kl_cell.mean() / len(genes))
            zt_mean = self.spatial_encode(v, b.adjs[:L], mu) if sample else zt_path
            zc.append(mu[: b.n_seeds])
            zt.append(zt_mean[: b.n_seeds])
            secs.append(torch.full((b.n_seeds,), v, dtype=torch.long, device=mu.device))
        zero = torch.zeros((), device=E.device)
        losses = Losses(
            recon=torch.stack(recon).mean(),
            kl=torch.stack(kl).mean(),
            cell_recon=torch.stack(cell_recon).mean() if cell_recon else zero,
        )
        return Forward(torch.cat(zc), torch.cat(zt), torch.cat(secs), losses)


def _sq_distances(a: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between rows (finite gradient at zero distance, unlike cdist's)."""
    sq = (a * a).sum(1)
    return (sq[:, None] + sq[None, :] - 2.0 * a @ a.T).clamp_min(0.0)


def _soft_neighbours(d2: torch.Tensor, k: int, eye: torch.Tensor, iters: int = 14) -> torch.Tensor:
    """Row-wise log-probabilities over the other rows, proportional to exp(-beta_i d2), with each
    beta_i set (by bisection on log beta, without gradient) so the row's perplexity is ``k``, as in
    t-SNE: in many dimensions distances concentrate, and a width read off one neighbour's distance
    would leave every row nearly uniform. 14 halvings of [-12, 12] give log beta within 0.003.
    ``eye``: the boolean diagonal (a row is not its own neighbour)."""
    n = d2.shape[0]
    with torch.no_grad():
        d = d2.detach().masked_fill(eye, float("inf"))
        d = d - d.min(1, keepdim=True).values  # the nearest neighbour at 0: same softmax, no underflow
        scale = d.masked_fill(eye, 0.0).sum(1, keepdim=True).clamp_min(1e-12) / max(n - 1, 1)
        d = d / scale
        dz = d.masked_fill(eye, 0.0)
        lo = torch.full((n, 1), -12.0, device=d2.device)
        hi = torch.full((n, 1), 12.0, device=d2.device)
        target = math.log(min(k, n - 1))
        for _ in range(iters):
            mid = (lo + hi) / 2
            beta = mid.exp()
            e = torch.exp(-beta * d)  # the diagonal is exp(-inf) = 0
            z = e.sum(1, keepdim=True)
            # entropy of the row: log Z + beta E[d]; above the target the kernel is too wide
            wide = z.log() + beta * (e * dz).sum(1, keepdim=True) / z > target
            lo, hi = torch.where(wide, mid, lo), torch.where(wide, hi, mid)
        beta = ((lo + hi) / 2).exp() / scale
    return F.log_softmax((-beta * d2).masked_fill(eye, float("-inf")), dim=1)


def neighbourhood_loss(x: torch.Tensor, z: torch.Tensor, k: int) -> torch.Tensor:
    """Mean over cells of KL(P_i || Q_i): P_i, cell i's soft neighbours among the other cells by
    expression ``x``; Q_i, the same by embedding ``z``. Scale-free in both spaces."""
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    log_p = _soft_neighbours(_sq_distances(x.float()), k, eye).detach()
    log_q = _soft_neighbours(_sq_distances(z), k, eye)
    p = log_p.exp()
    terms = (p * (log_p - log_q)).masked_fill(eye, 0.0)
    return terms.sum(1).mean()


# -- adversarial losses ---------------------------------------------------------------------------
def _weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.sum().clamp_min(1e-12)


def discriminator_loss(logits: torch.Tensor, sections: torch.Tensor,
                       weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of section predictions, computed from logits (softmax happens once, inside)."""
    return _weighted_mean(F.cross_entropy(logits, sections, reduction="none"), weights)


def adversarial_loss(logits: torch.Tensor, sections: torch.Tensor, kind: str,
                     weights: torch.Tensor | None = None) -> torch.Tensor:
    """What the encoders minimise to fool a discriminator.

    'confusion': cross-entropy against the uniform distribution over sections (minimum log V when
    the discriminator cannot tell sections apart); 'reverse': minus the discriminator's loss.
    """
    if kind == "confusion":
        per_cell = -F.log_softmax(logits, dim=1).mean(dim=1)
    elif kind == "reverse":
        per_cell = -F.cross_entropy(logits, sections, reduction="none")
    else:  # pragma: no cover - config.check rejects it
        raise ValueError(kind)
    return _weighted_mean(per_cell, weights)


MMD_BANDWIDTHS = (0.25, 1.0, 4.0)
"""Gaussian kernel widths, as multiples of the mean squared distance between the batch's cells.
Each is the next one divided by 4, so the kernels are u**16, u**4 and u with u the widest one:
one exponential and four squarings per pair instead of three exponentials (the MMD's
elementwise work was about half of a training step with 8 sections; see :func:`mmd_loss`)."""


class _GaussianMixture(torch.autograd.Function):
    """``(u + u**4 + u**16) / 3`` with ``u = exp(c * d2)``, with a hand-written backward: autograd
    would keep and revisit every intermediate power; this keeps three and needs five passes."""

    @staticmethod
    def forward(ctx, d2: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        u = torch.exp(d2 * c)
        u4 = u * u
        u4 = u4 * u4
        u16 = u4 * u4
        u16 = u16 * u16
        ctx.save_for_backward(d2, u, u4, u16, c)
        return (u + u4 + u16) / 3.0

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        d2, u, u4, u16, c = ctx.saved_tensors
        # d/dx of u**p with u = exp(c x) is p c u**p; summed over p = 1, 4, 16 and divided by 3
        gt = grad * torch.add(u, u4, alpha=4.0).add_(u16, alpha=16.0)
        grad_d2 = gt * (c / 3.0) if ctx.needs_input_grad[0] else None
        grad_c = (gt * d2).sum() / 3.0 if ctx.needs_input_grad[1] else None
        return grad_d2, grad_c


def _gaussian_mixture(d2: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Mean over :data:`MMD_BANDWIDTHS` of ``exp(-d2 / (b * scale))``: the widest kernel once, the
    narrower ones as its 4th and 16th powers (widths a factor 4 apart); any other widths are
    computed one by one."""
    if MMD_BANDWIDTHS != (0.25, 1.0, 4.0):
        return sum(torch.exp(-d2 / (b * scale)) for b in MMD_BANDWIDTHS) / len(MMD_BANDWIDTHS)
    return _GaussianMixture.apply(d2, -0.25 / scale)


def mmd_loss(z: torch.Tensor, sections: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared maximum mean discrepancy between every pair of sections in a batch.

    A discriminator can be fooled by moving a section to where it is unsure (the min-max then
    chases sections around instead of overlapping them); the MMD is zero only when the (weighted)
    distributions coincide, so it pulls a shifted or shrunk section onto the others directly. The
    kernel is a mixture of Gaussians whose widths follow the mean squared distance between the
    batch's cells, with its gradient, so the term lies in [0, 2] and cannot be lowered by a change
    of scale: a width fixed within the step (detached) rewarded shrinking every section instead of
    overlapping them. Measured on thinned copies of one Xenium tissue (benchmarks/ablation.py):
    this width scored best (scIB cell 0.707, spatial 0.694; fixed width 0.691 / 0.685; width from
    the distances within sections 0.675 / 0.680).
    ``weights`` (balance weights) make a cluster without counterpart count less, as in the
    discriminators.
    """
    labels = torch.unique(sections)
    if len(labels) < 2:
        return z.new_zeros(())
    sq = (z * z).sum(1)
    d2 = torch.addmm(sq[:, None], z, z.T, alpha=-2.0).add_(sq[None, :]).clamp_min(0.0)
    n = z.shape[0]
    scale = (d2.sum() / max(n * (n - 1), 1)).clamp_min(1e-8)
    k = _gaussian_mixture(d2, scale)
    onehot = (sections[:, None] == labels[None, :]).to(z.dtype)
    if weights is not None:
        onehot = onehot * weights[:, None].to(z.dtype)
    p = onehot / onehot.sum(0, keepdim=True).clamp_min(1e-12)  # cells x sections, columns sum to 1
    m = p.T @ k @ p  # mean kernel value between each pair of sections
    diag = torch.diagonal(m)
    pair = diag[:, None] + diag[None, :] - 2.0 * m
    iu = torch.triu_indices(len(labels), len(labels), offset=1, device=z.device)
    return pair[iu[0], iu[1]].mean()
