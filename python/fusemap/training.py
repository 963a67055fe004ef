"""The training loop: calibration, phase 1, balance weights, phase 2, early stopping, checkpoints.

The loop owns optimisers and counters; the networks and losses live in :mod:`fusemap.module`.
A checkpoint written after every epoch holds weights, both optimisers, the counters, the early
stopping state, the best weights so far, the balance weights and the random states, so an
interrupted run resumes exactly where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.optim import Adam

from .distributed import setup as setup_distributed
from ._constants import CHECKPOINT_FILE
from .balance import balance_sentence, balance_weights
from .novelty import novelty_scores
from .config import FuseMapConfig
from .errors import FuseMapWarning
from .inference import embed_section
from .mixing import neighbour_mixing
from .module import FuseMapModule, adversarial_loss, discriminator_loss, mmd_loss, neighbourhood_loss
from .progress import Progress, choose_mode, ensure_log_handler
from .sampler import EpochPlan, SectionData, iterate_blocks

log = logging.getLogger("fusemap")

PHASE_PRETRAIN, PHASE_BALANCED, PHASE_DONE = 1, 2, 3


def mixing_rise_bound(values: np.ndarray, z: float = 2.0) -> float:
    """Upper bound of the per-epoch rise of ``values`` (one per epoch): the least-squares slope plus
    ``z`` standard errors; +inf when a value is missing or there are fewer than three."""
    from scipy.stats import linregress

    if len(values) < 3 or not np.isfinite(values).all():
        return math.inf
    fit = linregress(np.arange(len(values), dtype=float), values)
    return float(fit.slope + z * fit.stderr)


@dataclass
class TrainState:
    phase: int = PHASE_PRETRAIN
    epoch: int = 0  # epochs finished in the current phase
    total_epochs: int = 0
    best_val: float = math.inf
    bad_epochs: int = 0
    lambda_dis: float | None = None
    stopped_early: list[bool] = field(default_factory=list)
    epochs_per_phase: list[int] = field(default_factory=list)
    balance_summary: dict | None = None
    seconds: float = 0.0
    mixing: dict | None = None
    novelty: dict | None = None


@dataclass
class FixedSections:
    """Embeddings of sections that are not trained (the reference during query mapping).

    Their cells enter the discriminators as fixed samples, ``batch_size`` per section and step,
    labelled ``first_label + i``; the trained sections keep labels ``0 .. first_label - 1``. Balance
    weights, when computed, cover them too (a reference cluster with no counterpart in the query
    then weighs little in the discriminators).
    """

    cell: list[np.ndarray]
    spatial: list[np.ndarray]
    first_label: int
    weights: list[np.ndarray] | None = None
    names: list[str] | None = None
    coordinates: list[bool] | None = None  # False: a section without coordinates (no spatial alignment)

    def sample(self, rng: np.random.Generator, n: int, device: torch.device, weighted: bool):
        zc, zt, lab, w = [], [], [], []
        for i, (c, t) in enumerate(zip(self.cell, self.spatial)):
            idx = rng.choice(len(c), size=min(n, len(c)), replace=False)
            zc.append(c[idx])
            zt.append(t[idx])
            lab.append(np.full(len(idx), self.first_label + i, dtype=np.int64))
            if weighted and self.weights is not None:
                w.append(self.weights[i][idx])
        to = lambda a: torch.from_numpy(np.ascontiguousarray(np.concatenate(a))).to(device)  # noqa: E731
        return to(zc).float(), to(zt).float(), to(lab), (to(w).float() if w else None)


def spatial_classes(sections: Sequence[SectionData], fixed: FixedSections | None, device: torch.device):
    """For the spatial discriminator: whether each section label has coordinates, its label among
    those that do, and their logit columns. None when every section has coordinates, or none has
    (then the spatial embeddings are functions of the cell embeddings and are aligned as such)."""
    has = [s.coordinates for s in sections]
    if fixed is not None:
        has += list(fixed.coordinates or [True] * len(fixed.cell))
    if all(has) or not any(has):
        return None
    has_t = torch.tensor(has, dtype=torch.bool, device=device)
    label = torch.cumsum(has_t.long(), 0) - 1
    return has_t, label, torch.nonzero(has_t).flatten()


def _columns(logits: torch.Tensor, cols: torch.Tensor | None) -> torch.Tensor:
    return logits if cols is None else logits[:, cols]


def fingerprint(cfg: FuseMapConfig, sections: Sequence[SectionData]) -> str:
    """What must match for a checkpoint to be resumed (epoch budget and device may change)."""
    d = cfg.to_dict()
    for k in ("max_epochs", "device", "progress", "num_workers"):
        d["train"].pop(k, None)
    d["sections"] = [(s.name, s.n_obs, s.genes.tolist()) for s in sections]
    d["optimiser"] = "torch.optim.Adam"  # checkpoints of fusemap's former hand-written Adam do not resume
    h = hashlib.blake2b(json.dumps(d, sort_keys=True, default=str).encode(), digest_size=20)
    for s in sections:  # the data too: other cells of the same size must not resume this run
        for m in (s.x, s.a_hat):
            for arr in (m.indptr, m.indices, m.data):
                _digest_array(h, arr)
    return h.hexdigest()


def _digest_array(h, arr: np.ndarray, block: int = 1 << 20, max_blocks: int = 64) -> None:
    """Feed ``arr`` into hash ``h``: whole when small, else 64 evenly spaced 1 MiB blocks (a few
    ms however large the atlas, and read-only on memory-mapped matrices)."""
    buf = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
    h.update(str((arr.dtype.str, arr.shape)).encode())
    if buf.size <= block * max_blocks:
        h.update(buf)
        return
    for start in np.linspace(0, buf.size - block, max_blocks).astype(np.int64):
        h.update(buf[start:start + block])


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _cpu_state(module: torch.nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices natively (on other CPUs it is emulated, slow)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, c, lambda: False)()) for c in checks)


def use_bf16(precision: str, device: torch.device) -> bool:
    """Resolve ``TrainConfig.precision``; 'auto' takes bfloat16 only where measured to pay (CPU)."""
    if precision == "bfloat16":
        return True
    if precision == "float32":
        return False
    return device.type == "cpu" and native_bf16(device)


def section_pcs(sections: Sequence[SectionData], n_pcs: int, seed: int, device: torch.device,
                max_cells: int = 10_000) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per section, the gene means and top principal axes (panel genes x PCs) of its preprocessed
    training cells (a random ``max_cells`` of them): the space the neighbourhood term reads each
    cell's neighbours in. PCA denoises: 15 nearest neighbours in 30 PCs matched cell types better
    than in the raw scaled expression on every development section (thinned Xenium, capture 0.3:
    0.846 vs 0.755; STARmap mosaic: 0.58-0.64 vs 0.52-0.53)."""
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)
    out = []
    for s in sections:
        idx = s.train_idx if len(s.train_idx) <= max_cells else rng.choice(s.train_idx, max_cells, replace=False)
        x = s.x[np.sort(idx)].toarray()
        k = max(1, min(n_pcs, x.shape[0] - 1, x.shape[1]))
        pca = PCA(k, random_state=seed).fit(x)
        out.append((torch.as_tensor(pca.mean_, dtype=torch.float32, device=device),
                    torch.as_tensor(pca.components_.T.copy(), dtype=torch.float32, device=device)))
    return out


class Trainer:
    def __init__(self, module: FuseMapModule, sections: Sequence[SectionData], cfg: FuseMapConfig,
                 device: torch.device, *, adversarial: bool, checkpoint_dir: str | os.PathLike | None = None,
                 frozen: Sequence[torch.nn.Parameter] = (), fixed: FixedSections | None = None):
        self.module = module
        self.sections = list(sections)
        self.cfg = cfg
        self.t = cfg.train
        self.device = device
        self.adversarial = adversarial
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.state = TrainState()
        self.history: list[dict] = []
        self.balance: list[np.ndarray] | None = None
        self.best_state: dict | None = None
        self.rng = np.random.default_rng(self.t.seed)
        self.fixed = fixed
        frozen_ids = {id(p) for p in frozen}
        gen_params = [p for p in module.generator_parameters() if id(p) not in frozen_ids and p.requires_grad]
        self.opt_g = Adam(gen_params, lr=self.t.lr, weight_decay=self.t.weight_decay)
        self.opt_d = Adam(module.discriminator_parameters(), lr=self.t.disc_lr)
        # what a checkpoint must match (hashing the data costs a pass over it: only with checkpoints)
        self._fingerprint = fingerprint(cfg, self.sections) if self.checkpoint_dir is not None else None
        self.dist = setup_distributed(device)  # one process unless launched by torchrun
        self.bf16 = use_bf16(self.t.precision, device)
        if fixed is not None and self._fingerprint is not None:
            self._fingerprint += "+fixed:" + ",".join(str(len(c)) for c in fixed.cell)
        self._spatial = spatial_classes(self.sections, fixed, device)
        self._pcs = (section_pcs(self.sections, self.t.structure_pcs, self.t.seed, device)
                     if self.t.structure_weight > 0 else None)

    def _structure_loss(self, blocks, z_cell: torch.Tensor) -> torch.Tensor:
        """Mean over the step's sections of :func:`neighbourhood_loss` between each section's seeds
        in its expression PCA and their cell embeddings (``z_cell``: the seeds, blocks in order)."""
        terms, start = [], 0
        for b in blocks:
            n = b.n_seeds
            if n > self.t.structure_k + 1:
                mean, comps = self._pcs[b.section]
                terms.append(neighbourhood_loss((b.x[:n] - mean) @ comps, z_cell[start:start + n], self.t.structure_k))
            start += n
        return torch.stack(terms).mean() if terms else z_cell.sum() * 0.0

    def _spatial_rows(self, z: torch.Tensor, sec: torch.Tensor, w: torch.Tensor | None):
        """The discriminator rows of sections with coordinates, labels renumbered over those sections:
        the spatial discriminator and MMD see only them (all rows when every section has coordinates)."""
        if self._spatial is None:
            return z, sec, w, None
        has, label, cols = self._spatial
        keep = has[sec]
        return z[keep], label[sec[keep]], None if w is None else w[keep], cols

    # -- checkpoints -----------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.checkpoint_dir is None else self.checkpoint_dir / CHECKPOINT_FILE

    def save_checkpoint(self) -> None:
        if self.checkpoint_path is None or not self.dist.is_main:
            return
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        obj = {
            "fingerprint": self._fingerprint,
            "module": _cpu_state(self.module),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "state": json.dumps(asdict(self.state)),
            "history": json.dumps(self.history),
            "best_state": self.best_state,
            "balance": None if self.balance is None else [torch.from_numpy(w) for w in self.balance],
            "fixed_weights": (None if self.fixed is None or self.fixed.weights is None
                              else [torch.from_numpy(w) for w in self.fixed.weights]),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "numpy_rng": json.dumps(self.rng.bit_generator.state),
        }
        _atomic_torch_save(obj, self.checkpoint_path)

    def load_checkpoint(self) -> bool:
        path = self.checkpoint_path
        if path is None or not path.exists():
            return False
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a checkpoint cut short by a crash: start afresh
            obj = {"unreadable": str(exc)}
        if obj.get("fingerprint") != self._fingerprint:
            why = ("cannot be read" if "unreadable" in obj else
                   "was written for other data or settings (the data or configuration fingerprint differs)")
            warnings.warn(f"checkpoint {str(path)!r} {why}; it is discarded and training starts afresh.",
                          FuseMapWarning, stacklevel=2)
            path.unlink()
            return False
        self.module.load_state_dict(obj["module"])
        self.opt_g.load_state_dict(obj["opt_g"])
        self.opt_d.load_state_dict(obj["opt_d"])
        self.state = TrainState(**json.loads(obj["state"]))
        self.history = json.loads(obj["history"])
        self.best_state = obj["best_state"]
        self.balance = None if obj["balance"] is None else [w.numpy() for w in obj["balance"]]
        if self.fixed is not None and obj.get("fixed_weights") is not None:
            self.fixed.weights = [w.numpy() for w in obj["fixed_weights"]]
        torch.set_rng_state(obj["torch_rng"])
        if self.device.type == "cuda" and obj.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(obj["cuda_rng"], self.device)
        self.rng.bit_generator.state = json.loads(obj["numpy_rng"])
        warnings.warn(f"resuming the interrupted training in {str(path)!r} at phase {self.state.phase}, epoch "
                      f"{self.state.epoch} (pass resume=False to start afresh).", FuseMapWarning, stacklevel=2)
        return True

    # -- one epoch --------------------------------------------------------------------------------
    def _seed_weights(self, blocks) -> torch.Tensor | None:
        if self.balance is None or self.state.phase != PHASE_BALANCED:
            return None
        w = np.concatenate([self.balance[b.section][b.seeds] for b in blocks])
        return torch.from_numpy(w).to(self.device)

    def _aligning(self) -> bool:
        """Whether this phase trains against the discriminators (query mapping may pretrain without)."""
        if not self.adversarial:
            return False
        pretrain_alone = self.fixed is not None and self.t.query_pretrain == "reconstruction" and self.t.balance
        return not (pretrain_alone and self.state.phase == PHASE_PRETRAIN)

    def _train_epoch(self) -> dict:
        m = self.module
        m.train()
        sums: dict[str, float] = {}
        n = steps = 0
        plan = self.dist.shard(EpochPlan(self.sections, self.t.batch_size, self.rng, patch_size=self.t.patch_size,
                                        max_steps=self.t.max_epoch_steps))
        for blocks in iterate_blocks(self.sections, plan, m.hops, self.t.num_workers, pin=self.device.type == "cuda"):
            blocks = [b.to(self.device) for b in blocks]
            out = m(blocks, sample=m.cfg.variational, bf16=self.bf16)
            ae = out.losses.autoencoder(self.t.kl_weight, m.cfg.cell_recon_weight)
            # detached tensors, summed on the device: no host synchronisation per step on CUDA
            logs = {"recon": out.losses.recon.detach(), "kl": out.losses.kl.detach()}
            loss = ae
            if self._aligning():
                w = self._seed_weights(blocks)
                # discriminators learn on detached embeddings (plus the fixed sections' cells, if any)
                dz_c, dz_t, d_sec, d_w = out.z_cell.detach(), out.z_spatial.detach(), out.sections, w
                if self.fixed is not None:
                    fz_c, fz_t, f_sec, f_w = self.fixed.sample(self.rng, self.t.batch_size, self.device,
                                                               weighted=w is not None)
                    dz_c, dz_t, d_sec = torch.cat([dz_c, fz_c]), torch.cat([dz_t, fz_t]), torch.cat([d_sec, f_sec])
                    if w is not None:
                        d_w = torch.cat([w, f_w if f_w is not None else torch.ones(len(f_sec), device=w.device)])
                sz_t, s_sec, s_w, cols = self._spatial_rows(dz_t, d_sec, d_w)
                d_loss = (discriminator_loss(m.disc_cell(dz_c), d_sec, d_w)
                          + discriminator_loss(_columns(m.disc_spatial(sz_t), cols), s_sec, s_w))
                self.opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                self.dist.sync_gradients(m.discriminator_parameters())
                self.opt_d.step()
                # encoders learn to fool them; discriminator weights get no gradient from this
                for p in m.discriminator_parameters():
                    p.requires_grad_(False)
                adv_c = adversarial_loss(m.disc_cell(out.z_cell), out.sections, self.t.adversarial_loss, w)
                oz_t, o_sec, o_w, _ = self._spatial_rows(out.z_spatial, out.sections, w)
                # mapping a query without coordinates: none of the trained rows enter the spatial
                # discriminator (the mean over no rows would be NaN and poison every weight)
                adv_t = (adversarial_loss(_columns(m.disc_spatial(oz_t), cols), o_sec, self.t.adversarial_loss, o_w)
                         if len(oz_t) else out.z_spatial.sum() * 0.0)
                for p in m.discriminator_parameters():
                    p.requires_grad_(True)
                adv = adv_c + adv_t
                if self.state.lambda_dis is None:
                    ae_v, adv_v = self.dist.mean([ae.item(), adv.item()])
                    self.state.lambda_dis = float(self.t.adv_ratio * ae_v / max(abs(adv_v), 1e-8))
                loss = ae + self.state.lambda_dis * adv
                if self.t.mmd_weight > 0 and (self.t.mmd_phase == "both" or self.state.phase == PHASE_BALANCED
                                              or not self.t.balance):
                    # the cells the discriminators saw (the fixed reference cells carry no gradient)
                    mz_c, mz_t = out.z_cell, out.z_spatial
                    if self.fixed is not None:
                        mz_c, mz_t = torch.cat([out.z_cell, fz_c]), torch.cat([out.z_spatial, fz_t])
                    mz_t, m_sec, m_w, _ = self._spatial_rows(mz_t, d_sec, d_w)
                    mmd = mmd_loss(mz_c, d_sec, d_w) + mmd_loss(mz_t, m_sec, m_w)
                    loss = loss + self.t.mmd_weight * mmd
                    logs["mmd"] = mmd.detach()
                logs.update(disc=d_loss.detach(), adv_cell=adv_c.detach(), adv_spatial=adv_t.detach())
            if self._pcs is not None and (self.t.structure_phase == "both" or self.state.phase == PHASE_BALANCED
                                          or not self.t.balance):  # without balance weights: one phase
                structure = self._structure_loss(blocks, out.z_cell)
                loss = loss + self.t.structure_weight * structure
                logs["structure"] = structure.detach()
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.dist.sync_gradients(self.opt_g.param_groups[0]["params"])
            self.opt_g.step()
            k = sum(b.n_seeds for b in blocks)
            for key, val in logs.items():
                sums[key] = sums.get(key, 0.0) + val * k
            n += k
            steps += 1
        *totals, n = self.dist.sum(list(sums.values()) + [n])  # over ranks
        # seed cells trained this epoch (all ranks): with max_epoch_steps an epoch is not a pass over every cell
        return {**{key: val / max(n, 1) for key, val in zip(sums, totals)}, "steps": steps, "seeds": int(n)}

    @torch.no_grad()
    def validation_loss(self) -> float:
        return self._validate(mixing=False)[0]

    @torch.no_grad()
    def _validate(self, mixing: bool) -> tuple[float, float]:
        """Validation loss of the held-out cells and, with ``mixing``, how well their sections mix
        (:func:`fusemap.mixing.neighbour_mixing`, mean of the cell and spatial embeddings; NaN
        otherwise). Both come from the same forward pass."""
        m = self.module
        m.eval()
        total, n = 0.0, 0
        zs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        plan = self.dist.shard(EpochPlan(self.sections, max(self.t.batch_size, 1024), self.rng, use="val",
                                        max_cells=self.t.max_val_cells))
        for blocks in iterate_blocks(self.sections, plan, m.hops, 0):
            blocks = [b.to(self.device) for b in blocks]
            out = m(blocks, sample=False, bf16=self.bf16)
            k = sum(b.n_seeds for b in blocks)
            total += out.losses.autoencoder(self.t.kl_weight, m.cfg.cell_recon_weight).item() * k
            n += k
            if mixing:
                zs.append((out.z_cell.float().cpu().numpy(), out.z_spatial.float().cpu().numpy(),
                           out.sections.cpu().numpy()))
        m.train()
        mix = self._mixing(zs) if mixing else math.nan
        total, n, mix_sum, ranks = self.dist.sum([total, n, 0.0 if math.isnan(mix) else mix,
                                                  0.0 if math.isnan(mix) else 1.0])  # over ranks
        return total / max(n, 1), (mix_sum / ranks if ranks else math.nan)

    def _mixing(self, zs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> float:
        if not zs:
            return math.nan
        zc, zt, sec = (np.concatenate(parts) for parts in zip(*zs))
        scores = [neighbour_mixing(zc, sec)]
        has = np.array([s.coordinates for s in self.sections])[sec]  # the spatial embedding: sections
        if len(np.unique(sec[has])) >= 2:                           # with coordinates only
            scores.append(neighbour_mixing(zt[has], sec[has]))
        scores = [v for v in scores if math.isfinite(v)]
        return float(np.mean(scores)) if scores else math.nan

    def _mixing_measured(self) -> bool:
        """The balanced phase of an integration records section mixing after every epoch (a mapping
        trains the query sections only, whose mixing among themselves says nothing)."""
        return self.state.phase == PHASE_BALANCED and self.fixed is None and len(self.sections) >= 2

    # -- phases -----------------------------------------------------------------------------------
    def _compute_balance(self) -> None:
        embs = [embed_section(self.module, i, s, self.device) for i, s in enumerate(self.sections)]
        cells = [e[0] for e in embs] + (list(self.fixed.cell) if self.fixed is not None else [])
        by_novelty = self.fixed is not None and self.t.query_balance == "novelty"
        partners = None
        if by_novelty:  # reference clusters look for a counterpart in the query only
            n_q, n_r = len(self.sections), len(self.fixed.cell)
            query, ref = list(range(n_q)), list(range(n_q, n_q + n_r))
            partners = [ref] * n_q + [query] * n_r
        wc, summary = balance_weights(cells, rule=self.t.balance_rule, resolution=self.t.balance_resolution,
                                      low=self.t.balance_low, high=self.t.balance_high,
                                      floor=self.t.balance_floor, seed=self.t.seed, partners=partners)
        if by_novelty:
            self._query_weights_from_novelty(wc, summary, [e[0] for e in embs])
        self.balance = wc[:len(self.sections)]
        if self.fixed is not None:
            self.fixed.weights = wc[len(self.sections):]
        names = [s.name for s in self.sections]
        if self.fixed is not None:
            names += list(self.fixed.names or [f"reference {i + 1}" for i in range(len(self.fixed.cell))])
        summary["sections"] = names
        summary["sentence"] = balance_sentence(summary, names)
        self.state.balance_summary = summary
        log.info("%s", summary["sentence"])

    def _query_weights_from_novelty(self, wc: list[np.ndarray], summary: dict, query: list[np.ndarray]) -> None:
        """Query mapping: each query cell's weight is its cluster's match to the reference
        (:meth:`fusemap.novelty.Novelty.cluster_weights`), with all query sections pooled, so a
        state the reference lacks keeps its own place even when several query sections share it."""
        nov = novelty_scores(self.fixed.cell, np.concatenate(query), resolution=self.t.balance_resolution,
                             seed=self.t.seed)
        w_all = nov.cluster_weights(self.t.balance_floor)
        bounds = np.cumsum([0] + [len(q) for q in query])
        for i in range(len(query)):
            w, lab = w_all[bounds[i]:bounds[i + 1]], nov.clusters[bounds[i]:bounds[i + 1]]
            low = w < 1
            wc[i] = (w / max(float(w.mean()), 1e-12)).astype(np.float32)
            summary["n_clusters"][i] = int(len(np.unique(lab)))
            summary["n_downweighted_clusters"][i] = int(len(np.unique(lab[low])))
            summary["downweighted_cell_fraction"][i] = float(low.mean())
        summary["query_rule"] = "novelty"

    def _on_plateau(self) -> bool:
        """The phase's best validation loss improved by less than its plateau fraction over the last
        ``plateau_window`` epochs (read from the history, so a resumed run decides the same)."""
        s, w = self.state, self.t.plateau_window
        delta = self.t.plateau_pretrain if s.phase == PHASE_PRETRAIN else self.t.plateau_balanced
        if delta <= 0 or s.epoch <= w:
            return False
        vals = [h["val_loss"] for h in self.history if h["phase"] == s.phase][-s.epoch:]
        before, now = min(vals[:-w]), min(vals)
        return math.isfinite(before) and now > before * (1 - delta)

    def _mixing_plateau(self) -> bool:
        """Section mixing of the held-out cells has stopped rising, with confidence: over the last
        ``2 * mixing_window`` epochs, the least-squares slope plus two standard errors, times
        ``mixing_window``, is below ``plateau_mixing``. A noisy curve keeps training (its rise is
        uncertain) until ``patience`` or ``max_epochs`` ends the phase, as without the rule."""
        s, w = self.state, self.t.mixing_window
        if self.t.plateau_mixing <= 0 or s.phase != PHASE_BALANCED or s.epoch < 2 * w:
            return False
        vals = [h.get("val_mixing", math.nan) for h in self.history if h["phase"] == s.phase][-2 * w:]
        rise = mixing_rise_bound(np.asarray(vals, dtype=float)) * w
        return bool(rise < self.t.plateau_mixing)

    def _end_phase(self, stopped_early: bool) -> None:
        s = self.state
        if self.t.restore_best and self.best_state is not None:
            self.module.load_state_dict(self.best_state)
        s.stopped_early.append(stopped_early)
        s.epochs_per_phase.append(s.epoch)
        two_phases = self.adversarial and self.t.balance
        s.phase = PHASE_BALANCED if (s.phase == PHASE_PRETRAIN and two_phases) else PHASE_DONE
        s.epoch, s.best_val, s.bad_epochs = 0, math.inf, 0
        self.best_state = None

    def phase_names(self) -> dict[int, str]:
        """What each phase is called in progress lines and callback reports."""
        if self.fixed is not None:
            return {PHASE_PRETRAIN: "query mapping", PHASE_BALANCED: "query mapping (balanced)"}
        if self.adversarial and self.t.balance:
            return {PHASE_PRETRAIN: "pretraining", PHASE_BALANCED: "balanced"}
        return {PHASE_PRETRAIN: "training"}

    def fit(self, resume: bool = True, callback: Callable[[dict], Any] | None = None) -> list[dict]:
        """Train until both phases end; the caller seeds torch (see ``model.seeded``).

        ``callback``, when given, is called after every epoch with one dict (keys
        :data:`fusemap.progress.CALLBACK_KEYS`); see :mod:`fusemap.progress` for the bar and lines."""
        if resume:
            self.load_checkpoint()
        if self.dist.active:  # same weights everywhere, independent dropout/sampling noise per rank
            self.dist.broadcast_module(self.module)
            torch.manual_seed(self.t.seed + 7919 * self.dist.rank)
        n_phases = 2 if (self.adversarial and self.t.balance) else 1
        if self.dist.is_main:
            ensure_log_handler()
        mode = choose_mode(self.t.progress, callback) if self.dist.is_main else "off"
        report = Progress(mode=mode, callback=callback if self.dist.is_main else None, n_phases=n_phases,
                          max_epochs=self.t.max_epochs, names=self.phase_names())
        bound = lambda: sum(self.state.epochs_per_phase) + self.t.max_epochs * (  # noqa: E731
            n_phases - len(self.state.epochs_per_phase))
        report.open(self.state.total_epochs, bound())
        announced = None
        try:
            while self.state.phase != PHASE_DONE:
                s = self.state
                if s.phase == PHASE_BALANCED and self.balance is None:
                    self._compute_balance()
                    self.balance = self.dist.broadcast_object(self.balance)
                if announced != s.phase:
                    report.phase_started(s.phase, s.epoch)
                    announced = s.phase
                t0 = time.perf_counter()
                logs = self._train_epoch()
                self.dist.broadcast_buffers(self.module)
                val, mixing = self._validate(mixing=self._mixing_measured())
                s.epoch += 1
                s.total_epochs += 1
                improved = val < s.best_val * (1 - self.t.min_delta) if math.isfinite(s.best_val) else True
                if improved:
                    s.best_val, s.bad_epochs = val, 0
                    if self.t.restore_best:
                        self.best_state = _cpu_state(self.module)
                else:
                    s.bad_epochs += 1
                dt = time.perf_counter() - t0
                s.seconds += dt
                measured = {} if math.isnan(mixing) else {"val_mixing": mixing}  # no NaN in saved history
                self.history.append({"phase": s.phase, "epoch": s.epoch, **logs, "val_loss": val, **measured,
                                     "lambda_dis": s.lambda_dis, "seconds": dt})
                phase, epoch, ended = s.phase, s.epoch, None
                rule = ("patience" if s.bad_epochs >= self.t.patience else "loss_plateau" if self._on_plateau()
                        else "mixing_plateau" if self._mixing_plateau() else None)
                if rule is not None:
                    self._end_phase(stopped_early=True)
                    ended = rule
                elif s.epoch >= self.t.max_epochs:
                    self._end_phase(stopped_early=False)
                    ended = "max_epochs"
                self.save_checkpoint()  # before reporting: an interrupt from the callback can resume
                report.epoch_done(phase=phase, epoch=epoch, epochs_done=s.total_epochs, epochs_total=bound(),
                                  val_loss=val, recon=float(logs["recon"]), phase_ended=ended,
                                  done=s.phase == PHASE_DONE)
            last = self.history[-1] if self.history else {}
            report.finished(phase=int(last.get("phase", PHASE_PRETRAIN)), epoch=int(last.get("epoch", 0)),
                            epochs_done=self.state.total_epochs, val_loss=float(last.get("val_loss", math.nan)))
        finally:
            report.close()
        self.dist.check_in_sync(self.module)
        return self.history
