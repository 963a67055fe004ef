"""The user-facing model: set up from sections, train, read out embeddings, save and load.

Model methods return values; only :meth:`FuseMap.write` (and the convenience function
:func:`fusemap.integrate`) put results into AnnData objects.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from . import __version__
from ._constants import (CELL_EMBEDDING, CONFIG_FILE, GENE_EMBEDDING_VARM, GENES_FILE, GRAPH_CONNECTIVITIES,
                         GRAPH_DISTANCES, HISTORY_FILE, MODEL_FORMAT, MODEL_FORMAT_VERSION, RUN_RECORD,
                         SECTIONS_FILE, SPATIAL_EMBEDDING, SPATIAL_KEY, WEIGHTS_FILE)
from .config import FuseMapConfig, make_config
from .distributed import rank_device
from ._atomic import replace_dir
from .errors import FuseMapInputError, FuseMapModelError
from .graph import adjacency, ensure_graph, gcn_normalize, graph_summary
from .inference import embed_section
from .module import FuseMapModule
from .backed import preprocess_matrix, select_columns
from .sampler import SectionData
from .sections import SectionSet, as_sections
from .training import Trainer, TrainState
from .validation import expression_matrix, validate
from .vocabulary import GeneVocabulary

log = logging.getLogger("fusemap")


@dataclass
class SectionEmbedding:
    cell: np.ndarray  # Z_c, cells x k
    spatial: np.ndarray  # Z_T, cells x k


def resolve_device(device: str | torch.device | None) -> torch.device:
    """'auto' -> CUDA when available; 'cuda' without index -> this rank's GPU (LOCAL_RANK under torchrun)."""
    if device is None or str(device) == "auto":
        return rank_device(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FuseMapInputError(
            f"device={str(device)!r} was asked for but CUDA is not available on this machine; "
            "use device='cpu' or 'auto'."
        )
    return rank_device(dev)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """Run a block with torch's generators seeded, leaving the caller's random state as it was."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _split_train_val(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    perm = rng.permutation(n)
    n_val = max(1, int(round(fraction * n)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _graphs(sections: SectionSet, cfg: FuseMapConfig, spatial_key: str) -> list[sp.csr_matrix]:
    """Connectivity matrix of every section: the parent's graph when given, else squidpy's per section."""
    gcfg = cfg.graph
    parent = sections.parent
    if parent is not None and GRAPH_CONNECTIVITIES in parent.obsp and not gcfg.rebuild:
        conn = sp.csr_matrix(parent.obsp[GRAPH_CONNECTIVITIES])
        return [conn[rows][:, rows] for rows in sections.parent_rows]
    out = []
    for adata in sections.adatas:
        ensure_graph(adata, gcfg, spatial_key=spatial_key)
        out.append(sp.csr_matrix(adata.obsp[GRAPH_CONNECTIVITIES]))
    if parent is not None:  # store the per-section graphs in the parent, in its cell order
        order = np.concatenate(sections.parent_rows)
        inv = np.argsort(order)
        for key in (GRAPH_CONNECTIVITIES, GRAPH_DISTANCES):
            block = sp.block_diag([sp.csr_matrix(a.obsp[key]) for a in sections.adatas], format="csr")
            parent.obsp[key] = block[inv][:, inv]
        parent.uns["spatial_neighbors"] = dict(sections.adatas[0].uns["spatial_neighbors"])
        parent.uns["spatial_neighbors"]["params"] = dict(parent.uns["spatial_neighbors"].get("params", {}))
        parent.uns["spatial_neighbors"]["params"]["library_key"] = sections.section_key
    return out


def prepare_sections(sections: SectionSet, vocabulary: GeneVocabulary, cfg: FuseMapConfig,
                     spatial_key: str = SPATIAL_KEY, panels: Sequence[Sequence[str]] | None = None
                     ) -> tuple[list[SectionData], list[dict]]:
    """Preprocess expression, build graphs and split cells; ``panels`` fixes each section's gene order."""
    pp = cfg.preprocess
    rng = np.random.default_rng(cfg.train.seed)
    conns = _graphs(sections, cfg, spatial_key)
    out, info = [], []
    for i, (name, adata) in enumerate(sections.items()):
        m = expression_matrix(adata, pp.layer, f"section {name!r}")
        if panels is not None:  # reorder columns to the saved panel order
            pos = GeneVocabulary(list(map(str, adata.var_names)), pp.gene_case).index_of(panels[i])
            m = select_columns(m, pos)
            symbols = list(panels[i])
        else:
            symbols = list(map(str, adata.var_names))
        # in memory, or a block of rows at a time into memory-mapped files for on-disk input
        x, stats = preprocess_matrix(m, normalized=pp.normalized, target_sum=pp.target_sum, clip=pp.clip)
        coords = np.asarray(adata.obsm[spatial_key], dtype=np.float64)
        a_hat = gcn_normalize(adjacency(conns[i], coords, cfg.graph.max_edge_length))
        tr, va = _split_train_val(adata.n_obs, cfg.train.val_fraction, rng)
        genes = vocabulary.index_of(symbols)
        out.append(SectionData(name, x, a_hat, genes, tr, va))
        info.append({"name": name, "n_obs": int(adata.n_obs), "genes": symbols,
                     "target_sum": stats.target_sum, "empty_cells": stats.n_empty_cells,
                     **graph_summary(a_hat)})
        if stats.n_empty_cells:
            log.warning("section %r: %d cell(s) have no counts; they keep an all-zero profile",
                        name, stats.n_empty_cells)
    return out, info


class FuseMap:
    """FuseMap model over a fixed, ordered set of sections.

    Parameters
    ----------
    data
        Sections: list/dict of AnnData, one AnnData (with ``section_key`` for several sections),
        a path to ``.h5ad`` file(s) or a SpatialData object or store.
    section_key
        obs column naming each cell's section, when one AnnData holds several.
    config
        A :class:`FuseMapConfig` (or its dict form); keyword ``overrides`` change single fields,
        e.g. ``n_latent=32, max_epochs=100, seed=1``.
    """

    def __init__(self, data: Any, section_key: str | None = None, config: FuseMapConfig | dict | None = None,
                 *, spatial_key: str = SPATIAL_KEY, **overrides: Any):
        self.config = make_config(config, **overrides)
        self.spatial_key = spatial_key
        self.sections = as_sections(data, section_key)
        self.warnings = validate(self.sections, self.config, spatial_key=spatial_key)
        self.vocabulary = GeneVocabulary.from_panels(
            [list(map(str, a.var_names)) for a in self.sections.adatas], self.config.preprocess.gene_case)
        self.section_names = list(self.sections.names)
        self.adversarial = bool(self.config.train.adversarial and len(self.section_names) > 1)
        self.device = resolve_device(self.config.train.device)
        self.data, self.section_info = prepare_sections(self.sections, self.vocabulary, self.config, spatial_key)
        for info in self.section_info:  # sections trained together; map_query adds role 'query'
            info["role"] = "reference"
        with seeded(self.config.train.seed, self.device):
            self.module = FuseMapModule([d.genes for d in self.data], len(self.vocabulary),
                                        len(self.section_names), self.config.model).to(self.device)
        self.history: list[dict] = []
        self.train_state: TrainState | None = None
        self.model_dir: str | None = None
        self._embeddings: dict[str, SectionEmbedding] | None = None

    # -- training -------------------------------------------------------------------------------
    def train(self, checkpoint_dir: str | os.PathLike | None = None, resume: bool = True) -> "FuseMap":
        """Train both phases. With ``checkpoint_dir``, a checkpoint is written after every epoch and
        an existing one is resumed (``resume=False`` starts over)."""
        query = [s["name"] for s in self.section_info if s.get("role") == "query"]
        if query:
            raise FuseMapModelError(
                f"this model holds sections mapped onto a fixed reference ({query}); its reference "
                "weights must not change, so it cannot be trained as a whole. Map further sections "
                "with map_query(), or integrate all sections into a new model."
            )
        trainer = Trainer(self.module, self.data, self.config, self.device, adversarial=self.adversarial,
                          checkpoint_dir=checkpoint_dir)
        with seeded(self.config.train.seed, self.device):
            self.history = trainer.fit(resume=resume)
        self.train_state = trainer.state
        self._embeddings = None
        return self

    @property
    def is_trained(self) -> bool:
        return self.train_state is not None

    def history_frame(self) -> pd.DataFrame:
        """Per-epoch losses (one row per epoch, both phases)."""
        return pd.DataFrame(self.history)

    # -- read-out ------------------------------------------------------------------------------
    def embeddings(self) -> dict[str, SectionEmbedding]:
        """Cell (Z_c) and spatial (Z_T) embeddings of every section, computed over whole graphs."""
        if self._embeddings is None:
            self._require_data("embeddings")
            self._embeddings = {}
            for i, d in enumerate(self.data):
                zc, zt = embed_section(self.module, i, d, self.device)
                self._embeddings[d.name] = SectionEmbedding(zc, zt)
        return self._embeddings

    def gene_embedding(self) -> pd.DataFrame:
        """Gene embedding over the union of panels: one row per gene, one column per latent dim."""
        e = self.module.gene_matrix().detach().cpu().numpy().T
        return pd.DataFrame(e, index=pd.Index(self.vocabulary.names, name="gene"),
                            columns=[f"latent_{i}" for i in range(e.shape[1])])

    def run_record(self) -> dict:
        """What was run, in a form that AnnData can store in ``uns`` (JSON strings for nested parts)."""
        st = self.train_state
        last = self.history[-1] if self.history else {}
        return {
            "fusemap_version": __version__,
            "sections": list(self.section_names),
            "n_cells": [int(d.n_obs) for d in self.data] if self.data else [],
            "n_genes": int(len(self.vocabulary)),
            "cell_embedding_key": CELL_EMBEDDING,
            "spatial_embedding_key": SPATIAL_EMBEDDING,
            "adversarial": bool(self.adversarial),
            "device": str(self.device),
            "epochs_per_phase": list(st.epochs_per_phase) if st else [],
            "stopped_early": [bool(x) for x in st.stopped_early] if st else [],
            "train_seconds": float(st.seconds) if st else 0.0,
            "lambda_dis": float(st.lambda_dis) if st and st.lambda_dis is not None else float("nan"),
            "final_val_loss": float(last.get("val_loss", float("nan"))),
            "model_dir": self.model_dir or "",
            "config_json": json.dumps(self.config.to_dict()),
            "balance_json": json.dumps(st.balance_summary if st else None),
        }

    def write(self) -> None:
        """Write both embeddings into ``obsm`` (and the run record into ``uns``) of the input objects.

        Sections read from a SpatialData object also get the results in their annotating tables
        (in memory; see :mod:`fusemap.spatialdata_io` for saving the store)."""
        embs = self.embeddings()
        genes = self.gene_embedding()
        record = self.run_record()
        for d, adata in zip(self.data, self.sections.adatas):
            e = embs[d.name]
            adata.obsm[CELL_EMBEDDING] = e.cell
            adata.obsm[SPATIAL_EMBEDDING] = e.spatial
            pos = self.vocabulary.index_of(map(str, adata.var_names))
            adata.varm[GENE_EMBEDDING_VARM] = genes.to_numpy()[pos]
            adata.uns[RUN_RECORD] = record
        parent = self.sections.parent
        if parent is not None:
            for key, attr in ((CELL_EMBEDDING, "cell"), (SPATIAL_EMBEDDING, "spatial")):
                full = np.zeros((parent.n_obs, self.config.model.n_latent), dtype=np.float32)
                for name, rows in zip(self.section_names, self.sections.parent_rows):
                    full[rows] = getattr(embs[name], attr)
                parent.obsm[key] = full
            parent.varm[GENE_EMBEDDING_VARM] = genes.to_numpy()[self.vocabulary.index_of(map(str, parent.var_names))]
            parent.uns[RUN_RECORD] = record
        if self.sections.source is not None:  # e.g. the annotating tables of a SpatialData object
            self.sections.source.write_back(self.sections)

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Save weights (loadable with ``torch.load(weights_only=True)``) and JSON metadata.

        Written to a temporary directory beside ``path`` and renamed into place, so a failed save
        never leaves a half-written model, and an existing model is replaced only with ``overwrite``.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(
                f"path={str(path)!r} already exists; pass overwrite=True to replace it or choose "
                "another directory."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            self.model_dir = str(path)
            torch.save({k: v.detach().cpu() for k, v in self.module.state_dict().items()}, tmp / WEIGHTS_FILE)
            _write_json(tmp / CONFIG_FILE, {
                "format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION,
                "fusemap_version": __version__, "config": self.config.to_dict(),
                "adversarial": self.adversarial, "n_disc_classes": self._n_disc_classes(),
                "train_state": None if self.train_state is None else self.train_state.__dict__,
            })
            _write_json(tmp / GENES_FILE, {"gene_case": self.vocabulary.gene_case,
                                           "genes": self.vocabulary.names})
            _write_json(tmp / SECTIONS_FILE, {"sections": self.section_info})
            _write_json(tmp / HISTORY_FILE, self.history)
            replace_dir(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    def _n_disc_classes(self) -> int:
        return int(self.module.disc_cell.net[-1].out_features)

    @classmethod
    def load(cls, path: str | os.PathLike, data: Any = None, section_key: str | None = None, *,
             device: str | None = None, spatial_key: str = SPATIAL_KEY) -> "FuseMap":
        """Load a saved model; with ``data`` (the same sections), embeddings can be recomputed."""
        meta = read_model_dir(path)
        cfg = make_config(meta["config"]["config"])
        if device is not None:
            cfg = cfg.with_overrides(device=device)
        self = cls.__new__(cls)
        self.config = cfg
        self.spatial_key = spatial_key
        self.vocabulary = GeneVocabulary(meta["genes"]["genes"], meta["genes"]["gene_case"])
        self.section_info = meta["sections"]["sections"]
        self.section_names = [s["name"] for s in self.section_info]
        self.adversarial = bool(meta["config"]["adversarial"])
        self.device = resolve_device(cfg.train.device)
        panels = [self.vocabulary.index_of(s["genes"]) for s in self.section_info]
        self.module = FuseMapModule(panels, len(self.vocabulary), meta["config"]["n_disc_classes"], cfg.model,
                                    gene_blocks=_gene_blocks(meta["weights"], len(self.vocabulary), path))
        try:
            self.module.load_state_dict(meta["weights"])
        except RuntimeError as exc:
            raise FuseMapModelError(
                f"weights in {str(Path(path) / WEIGHTS_FILE)!r} do not fit the saved configuration and "
                f"gene/section lists ({exc}). The model directory is inconsistent; re-save the model."
            ) from exc
        self.module.to(self.device)
        self.history = meta["history"]
        ts = meta["config"].get("train_state")
        self.train_state = TrainState(**ts) if ts else None
        self.model_dir = str(path)
        self.sections, self.data, self.warnings = SectionSet([], []), [], []
        self._embeddings = None
        if data is not None:
            self.attach(data, section_key)
        return self

    def attach(self, data: Any, section_key: str | None = None) -> "FuseMap":
        """Attach the data of the model's own sections (e.g. after loading) to embed or impute."""
        sections = as_sections(data, section_key)
        self.warnings = validate(sections, self.config, spatial_key=self.spatial_key)
        known = {n: i for i, n in enumerate(self.section_names)}
        unknown = [n for n in sections.names if n not in known]
        missing = [n for n in self.section_names if n not in set(sections.names)]
        if unknown or missing:
            raise FuseMapInputError(
                f"data: the model was trained on sections {self.section_names}; found {sections.names} "
                f"(unknown: {unknown}, missing: {missing}). Pass the model's own sections; map new "
                "sections with map_query."
            )
        order = [sections.names.index(n) for n in self.section_names]
        sections = _reorder(sections, order)
        panels = [s["genes"] for s in self.section_info]
        case = self.vocabulary.gene_case
        for (name, adata), panel in zip(sections.items(), panels):
            have = GeneVocabulary(list(map(str, adata.var_names)), case)
            absent = [g for g in panel if g not in have]
            extra = len(adata.var_names) - (len(panel) - len(absent))
            if absent or extra:
                raise FuseMapInputError(
                    f"data: section {name!r} must have the {len(panel)} genes it was trained on; "
                    f"{len(absent)} are absent (e.g. {absent[:5]}) and {extra} are extra. Pass the "
                    "section as it was given to training."
                )
        self.sections = sections
        self.data, _ = prepare_sections(sections, self.vocabulary, self.config, self.spatial_key, panels)
        self._embeddings = None
        return self

    def map_query(self, query: Any, section_key: str | None = None, **kwargs: Any) -> "FuseMap":
        """Map new sections onto this trained model; see :func:`fusemap.map_query`."""
        from .mapping import map_query

        return map_query(self, query, section_key, **kwargs)

    def impute(self, data: Any = None, genes: Any = None, **kwargs: Any) -> ad.AnnData:
        """Imputed expression (cells x genes); see :func:`fusemap.impute`."""
        from .imputation import impute

        return impute(self, data, genes, **kwargs)

    def _require_data(self, what: str) -> None:
        if not self.data:
            raise FuseMapInputError(
                f"{what} need the sections' data; this model was loaded without it. Call "
                "model.attach(sections) or FuseMap.load(path, sections)."
            )

    def __repr__(self) -> str:
        state = "trained" if self.is_trained else "untrained"
        return (f"FuseMap({state}; {len(self.section_names)} sections, {len(self.vocabulary)} genes, "
                f"k={self.config.model.n_latent}, spatial_mode={self.config.model.spatial_mode!r})")


def _reorder(sections: SectionSet, order: list[int]) -> SectionSet:
    return SectionSet([sections.names[i] for i in order], [sections.adatas[i] for i in order],
                      parent=sections.parent,
                      parent_rows=[sections.parent_rows[i] for i in order] if sections.parent_rows else [],
                      section_key=sections.section_key, source=sections.source)


def _gene_blocks(weights: dict, n_genes: int, path) -> list[int]:
    """Column counts of the gene-embedding blocks in saved weights (several after query mapping)."""
    keys = sorted((k for k in weights if k.startswith("gene_embedding.")), key=lambda k: int(k.split(".")[1]))
    blocks = [int(weights[k].shape[1]) for k in keys]
    if sum(blocks) != n_genes:
        raise FuseMapModelError(
            f"weights in {str(Path(path) / WEIGHTS_FILE)!r} hold gene-embedding columns for {sum(blocks)} "
            f"genes but the vocabulary lists {n_genes}; the model directory is inconsistent."
        )
    return blocks


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w") as fh:
        json.dump(obj, fh, indent=1, default=_json_default)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot write {type(o).__name__} to JSON")


def read_model_dir(path: str | os.PathLike) -> dict:
    """Read and check a saved model directory; clear errors for anything missing or malformed."""
    path = Path(path)
    if not path.is_dir():
        raise FuseMapModelError(
            f"model={str(path)!r} is not a directory. Pass the directory written by model.save() or "
            "by `fusemap integrate` (DIR/model)."
        )
    needed = [WEIGHTS_FILE, CONFIG_FILE, GENES_FILE, SECTIONS_FILE]
    missing = [f for f in needed if not (path / f).exists()]
    if missing:
        raise FuseMapModelError(
            f"model={str(path)!r} is not a fusemap model directory: {missing} missing (a model holds "
            f"{needed}). Pass the directory written by model.save() or `fusemap integrate` (DIR/model)."
        )
    out = {}
    for key, fname in (("config", CONFIG_FILE), ("genes", GENES_FILE), ("sections", SECTIONS_FILE)):
        try:
            out[key] = json.loads((path / fname).read_text())
        except json.JSONDecodeError as exc:
            raise FuseMapModelError(f"{str(path / fname)!r} is not valid JSON ({exc}).") from exc
    if out["config"].get("format") != MODEL_FORMAT:
        raise FuseMapModelError(f"{str(path / CONFIG_FILE)!r} does not describe a fusemap model.")
    if out["config"].get("format_version", 0) > MODEL_FORMAT_VERSION:
        raise FuseMapModelError(
            f"model format {out['config']['format_version']} is newer than this fusemap supports "
            f"({MODEL_FORMAT_VERSION}); upgrade fusemap."
        )
    genes = out["genes"]["genes"]
    if len(set(genes)) != len(genes):
        raise FuseMapModelError(f"{str(path / GENES_FILE)!r} lists duplicate genes.")
    vocab = GeneVocabulary(genes, out["genes"].get("gene_case", "ignore"))
    for s in out["sections"]["sections"]:
        bad = [g for g in s["genes"] if g not in vocab]
        if bad:
            raise FuseMapModelError(
                f"{str(path / SECTIONS_FILE)!r}: section {s['name']!r} uses genes absent from the "
                f"vocabulary ({bad[:5]}); the model directory is inconsistent."
            )
    out["weights"] = torch.load(path / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    hist = path / HISTORY_FILE
    out["history"] = json.loads(hist.read_text()) if hist.exists() else []
    return out
