"""The user-facing model: set up from sections, train, read out embeddings, save and load.

Model methods return values; only :meth:`FuseMap.write` (and the convenience function
:func:`fusemap.integrate`) put results into AnnData objects. Mapping new sections and imputing
genes are functions over a model (:func:`fusemap.map_query`, :func:`fusemap.impute`), one level up.

A model is set up once from its sections (``spatial_key``, ``section_key``, ``layer``,
``normalized``, ``gene_case``); that setup is saved with it and used again by :meth:`FuseMap.load`,
so loading never asks for it. A saved directory carries a checksum of each of its files, checked
on load, so a truncated or edited file is reported instead of silently changing results.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ._constants import (CELL_EMBEDDING, CHECKSUMS_FILE, CONFIG_FILE, GENES_FILE, GRAPH_CONNECTIVITIES,
                         GRAPH_DISTANCES, HISTORY_FILE, MODEL_FORMAT, MODEL_FORMAT_VERSION, SECTIONS_FILE,
                         SPATIAL_EMBEDDING, SPATIAL_KEY, VERSION, WEIGHTS_FILE)
from .config import FuseMapConfig, make_config
from .distributed import rank_device
from .errors import FuseMapInputError, FuseMapModelError, FuseMapWarning
from .graph import adjacency, check_graph, ensure_graph, gcn_normalize, graph_summary
from .inference import embed_section
from .module import FuseMapModule
from .io.backed import preprocess_matrix, select_columns
from .io.files import atomic_dir, is_model_dir, write_json
from .io.results import put_embeddings
from .io.sections import read_sections
from .io.sectionset import SectionSet
from .sampler import SectionData
from .progress import ensure_log_handler
from .training import Trainer, TrainState
from .validation import (check_panels_form, coordinate_free, expression_matrix, resolve_panels, validate,
                         warn_zero_genes)
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
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise FuseMapInputError(f"device={device!r} is not a device torch knows; use 'auto', 'cpu', 'cuda' "
                                "or 'cuda:N'.") from exc
    if dev.type not in ("cpu", "cuda"):
        raise FuseMapInputError(f"device={device!r} is not supported; use 'auto', 'cpu', 'cuda' or 'cuda:N'.")
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


def _graphs(sections: SectionSet, cfg: FuseMapConfig, spatial_key: str,
            no_coordinates: Sequence[str] = ()) -> list[sp.csr_matrix]:
    """Connectivity matrix of every section: the parent's graph when given, else squidpy's per section;
    an empty one (no edges) for sections without coordinates."""
    gcfg = cfg.graph
    parent = sections.parent
    free = set(no_coordinates)
    if parent is not None and GRAPH_CONNECTIVITIES in parent.obsp and not gcfg.rebuild:
        conn = sp.csr_matrix(parent.obsp[GRAPH_CONNECTIVITIES])
        return [sp.csr_matrix((len(rows), len(rows))) if name in free else conn[rows][:, rows]
                for name, rows in zip(sections.names, sections.parent_rows)]
    out = []
    for name, adata in sections.items():
        if name in free:
            out.append(sp.csr_matrix((adata.n_obs, adata.n_obs), dtype=np.float32))
            continue
        try:
            ensure_graph(adata, gcfg, spatial_key=spatial_key)
        except FuseMapInputError as exc:
            raise FuseMapInputError(f"section {name!r}: {exc}") from exc
        out.append(sp.csr_matrix(adata.obsp[GRAPH_CONNECTIVITIES]))
    spatial = [a for n, a in sections.items() if n not in free]
    if parent is not None and spatial:  # store the per-section graphs in the parent, in its cell order
        order = np.concatenate(sections.parent_rows)
        inv = np.argsort(order)
        for key in (GRAPH_CONNECTIVITIES, GRAPH_DISTANCES):
            block = sp.block_diag([sp.csr_matrix(a.obsp[key]) if n not in free else sp.csr_matrix((a.n_obs, a.n_obs))
                                   for n, a in sections.items()], format="csr")
            parent.obsp[key] = block[inv][:, inv]
        parent.uns["spatial_neighbors"] = dict(spatial[0].uns["spatial_neighbors"])
        parent.uns["spatial_neighbors"]["params"] = dict(parent.uns["spatial_neighbors"].get("params", {}))
        parent.uns["spatial_neighbors"]["params"]["library_key"] = sections.section_key
    return out


def prepare_sections(sections: SectionSet, vocabulary: GeneVocabulary, cfg: FuseMapConfig,
                     spatial_key: str = SPATIAL_KEY, panels: Sequence[Sequence[str]] | None = None,
                     no_coordinates: Sequence[str] = ()) -> tuple[list[SectionData], list[dict]]:
    """Preprocess expression, build graphs and split cells; ``panels`` fixes each section's gene order.

    Sections in ``no_coordinates`` get the identity as graph (each cell its own only neighbour)."""
    pp = cfg.preprocess
    rng = np.random.default_rng(cfg.train.seed)
    free = set(no_coordinates)
    conns = _graphs(sections, cfg, spatial_key, no_coordinates)
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
        if name in free:  # no coordinates: Â = I
            a_hat = gcn_normalize(conns[i])
        else:
            coords = np.asarray(adata.obsm[spatial_key], dtype=np.float64)
            a_hat = gcn_normalize(adjacency(conns[i], coords, cfg.graph.max_edge_length))
            check_graph(a_hat, name, cfg.graph)
        tr, va = _split_train_val(adata.n_obs, cfg.train.val_fraction, rng)
        genes = vocabulary.index_of(symbols)
        out.append(SectionData(name, x, a_hat, genes, tr, va, coordinates=name not in free))
        info.append({"name": name, "n_obs": int(adata.n_obs), "genes": symbols,
                     "target_sum": stats.target_sum, "empty_cells": stats.n_empty_cells,
                     **graph_summary(a_hat), "coordinates": name not in free})
        if stats.n_empty_cells:
            log.warning("section %r: %d cell(s) have no counts; they keep an all-zero profile",
                        name, stats.n_empty_cells)
    return out, info


class FuseMap:
    """The FuseMap model over a fixed, ordered set of sections: set up, train, read out, save, load.

    Creating the model reads and validates the sections (every problem is reported at once,
    naming the section and the fix), builds the gene vocabulary (the union of all panels),
    preprocesses the expression, builds each section's spatial graph and initialises the
    networks; nothing is trained yet. :func:`fusemap.integrate` does all steps in one call.
    Methods return values; only :meth:`write` puts results into the AnnData objects.

    Parameters
    ----------
    data
        The sections: a list of AnnData (given order), a dict name -> AnnData (sorted names), one
        AnnData (one section, or several with ``section_key``), the path of an ``.h5ad`` file, a
        folder of them or a list of paths, a SpatialData object or ``.zarr`` store, or on-disk
        sections from :func:`fusemap.io.backed.open_sections`. Raw counts in ``X`` (or
        ``layer=``), coordinates in ``obsm[spatial_key]``.
    section_key
        obs column naming each cell's section, when one AnnData holds several.
    config
        A :class:`FuseMapConfig`, its nested dict form, or ``None`` for the defaults.
    spatial_key
        obsm key of the cell coordinates.
    panels
        Section name -> the genes that section measured, for tables joining sections with
        different panels; a named section's other genes are unmeasured there (never zeros).
    no_coordinates
        Names of sections to use without coordinates, such as a dissociated single-cell reference
        (sections without ``obsm[spatial_key]`` are used so anyway). Each cell is its own only
        graph neighbour, so the section's spatial embedding is a function of its cell embedding;
        it is left out of the spatial-embedding discriminator and MMD (its isolated cells would
        pull the niches of real tissue toward single cells), but is aligned through the cell
        embedding and reconstructed like any section.
    **overrides
        Single configuration fields by name, e.g. ``n_latent=32, max_epochs=100, seed=1``.

    Attributes
    ----------
    config
        The :class:`FuseMapConfig` of the model (immutable).
    section_names
        Section names in model order.
    section_info
        Per section: name, cell count, panel, graph summary, ``coordinates`` (False for a
        section used without coordinates) and role (``'reference'`` or ``'query'`` for sections
        added by :func:`fusemap.map_query`).
    vocabulary
        The gene vocabulary (union of the panels, first spelling met).
    history
        Per-epoch losses of the last training (see :meth:`history_frame`).
    warnings
        Warnings issued while validating the input.
    model_dir
        Directory the model was saved to or loaded from, if any.

    Raises
    ------
    FuseMapInputError
        When the sections or options cannot be used.

    Examples
    --------
    >>> import fusemap
    >>> sections = fusemap.datasets.simulate(n_sections=3, n_cells=500, panel_size=100, n_shared=40)
    >>> model = fusemap.FuseMap(sections, n_latent=32, max_epochs=20, seed=0)
    >>> model
    FuseMap(untrained; 3 sections, 150 genes, k=32, spatial_mode='aggregate')
    >>> model.train().write()  # doctest: +SKIP
    >>> model.save("atlas_model")  # doctest: +SKIP
    >>> same = fusemap.FuseMap.load("atlas_model", sections)  # doctest: +SKIP
    """

    def __init__(self, data: Any, section_key: str | None = None, config: FuseMapConfig | dict | None = None,
                 *, spatial_key: str = SPATIAL_KEY, panels: Mapping[str, Sequence[str]] | None = None,
                 no_coordinates: Sequence[str] | None = None, **overrides: Any):
        config = make_config(config, **overrides)
        check_panels_form(panels)
        ensure_log_handler()  # INFO messages from reading on (e.g. genes left out) are shown
        sections = read_sections(data, section_key)
        free = coordinate_free(sections, spatial_key, no_coordinates)
        if free:
            log.info("section(s) %s have no coordinates: each cell is its own only graph neighbour, and they "
                     "stay out of the spatial-embedding alignment", free)
        issued = validate(sections, config, spatial_key=spatial_key, no_coordinates=free)
        case = config.preprocess.gene_case
        panel_lists = resolve_panels(panels, sections, case)
        issued += warn_zero_genes(sections, panel_lists, config.preprocess.layer, case)
        vocabulary = GeneVocabulary.from_panels(
            panel_lists or [list(map(str, a.var_names)) for a in sections.adatas], case)
        device = resolve_device(config.train.device)
        data_, info = prepare_sections(sections, vocabulary, config, spatial_key, panel_lists, free)
        for i in info:  # sections trained together; map_query adds role 'query'
            i["role"] = "reference"
        with seeded(config.train.seed, device):
            module = FuseMapModule([d.genes for d in data_], len(vocabulary), len(sections.names),
                                   config.model).to(device)
        self._set(config=config, setup={"spatial_key": spatial_key, "section_key": section_key,
                                        "panels": panels is not None},
                  vocabulary=vocabulary, section_info=info, module=module, device=device,
                  adversarial=bool(config.train.adversarial and len(sections.names) > 1),
                  sections=sections, data=data_, warnings=issued)

    def _set(self, *, config: FuseMapConfig, setup: dict, vocabulary: GeneVocabulary, section_info: list[dict],
             module: FuseMapModule, device: torch.device, adversarial: bool, sections: SectionSet | None = None,
             data: Sequence[SectionData] = (), warnings: Sequence[str] = (), history: Sequence[dict] = (),
             train_state: TrainState | None = None, model_dir: str | None = None,
             embeddings: dict[str, "SectionEmbedding"] | None = None, novelty: Any = None) -> "FuseMap":
        """The one place a model's state is set: by fitting (``__init__``), :meth:`load` and
        :func:`fusemap.map_query` alike (``novelty``: the per-cell novelty of a mapping's query
        cells, :class:`fusemap.novelty.Novelty`; kept in memory until written into the sections)."""
        self.config = config
        self.setup = dict(setup)
        self.vocabulary = vocabulary
        self.section_info = list(section_info)
        self.section_names = [s["name"] for s in self.section_info]
        self.module = module
        self.device = device
        self.adversarial = adversarial
        self.sections = sections if sections is not None else SectionSet([], [])
        self.data = list(data)
        self.warnings = list(warnings)
        self.history = list(history)
        self.train_state = train_state
        self.model_dir = model_dir
        self._embeddings = embeddings
        self.novelty = novelty
        return self

    @property
    def spatial_key(self) -> str:
        """obsm key of the cell coordinates the model was set up with (saved with the model)."""
        return self.setup["spatial_key"]

    @property
    def no_coordinates(self) -> list[str]:
        """Sections used without coordinates (``section_info[i]['coordinates']`` is False; saved
        with the model): their spatial embedding is a function of their cell embedding alone."""
        return [s["name"] for s in self.section_info if not s.get("coordinates", True)]

    # -- training -------------------------------------------------------------------------------
    def train(self, checkpoint_dir: str | os.PathLike | None = None, resume: bool = True,
              callback: Callable[[dict], Any] | None = None) -> "FuseMap":
        """Train the model: pretraining, then balance weights, then the balanced phase.

        Phase 1 trains with adversarial (and, with ``mmd_phase='both'``, MMD) alignment; then each
        section's cells are clustered and clusters without a counterpart in another section are
        down-weighted, so that alignment does not force a section's unique cell types onto other
        sections' types; phase 2 trains with these weights. Finally each section's embeddings
        are moved by one vector onto the other sections (``shift_sections``, :meth:`section_shift`).
        With ``balance=False``,
        ``adversarial=False`` or a single section there is one phase. Each phase stops early when
        the validation loss stops improving (``patience``) and restores its best weights. The seed
        (``config.train.seed``) makes the result reproducible; the caller's random state is left
        as it was.

        Parameters
        ----------
        checkpoint_dir
            Write a checkpoint (weights, optimiser state, counters, random states) after every
            epoch, and resume from an existing one: a resumed run equals an uninterrupted one. A
            checkpoint written for other data or settings is discarded with a message.
        resume
            Resume from a checkpoint in ``checkpoint_dir``; ``False`` starts over.
        callback
            Called after every epoch with one dict (keys ``phase``, ``phase_name``, ``epoch``,
            ``max_epochs``, ``epochs_done``, ``epochs_total``, ``val_loss``, ``seconds``,
            ``done``); it replaces the built-in progress display unless ``progress=True``.

        Returns
        -------
        FuseMap
            The model itself (trained), so calls can be chained.

        Raises
        ------
        FuseMapModelError
            For a model that holds mapped query sections: its reference weights must not change.

        Examples
        --------
        >>> model = fusemap.FuseMap(sections, max_epochs=50)  # doctest: +SKIP
        >>> model.train(checkpoint_dir="ckpt")  # doctest: +SKIP
        """
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
            self.history = trainer.fit(resume=resume, callback=callback)
        self.train_state = trainer.state
        self._embeddings = None
        self._set_shifts([True] * len(self.data))
        self.check_mixing()
        return self

    def _set_shifts(self, movable: list[bool]) -> None:
        """Estimate the ``movable`` sections' shifts (:mod:`fusemap.shift`) against the others as
        they are, keep them in ``section_info`` (saved with the model) and apply them to the cached
        embeddings; without ``shift_sections`` the movable sections keep no shift."""
        from .shift import embedding_spread, mnn_shifts

        for i, info in enumerate(self.section_info):
            if movable[i]:
                info.pop("shift", None)  # cached embeddings of movable sections are unshifted
        if not self.config.train.shift_sections or len(self.section_info) < 2 or not any(movable):
            return
        embs = self.embeddings()
        names = self.section_names
        cells = [embs[n].cell for n in names]
        shifts = mnn_shifts(cells, movable, seed=self.config.train.seed)
        spread = embedding_spread(cells)
        moved = []
        for i, (name, info) in enumerate(zip(names, self.section_info)):
            if movable[i]:
                info["shift"] = [float(v) for v in shifts[i]]
                e = embs[name]
                self._embeddings[name] = SectionEmbedding(e.cell + shifts[i], e.spatial + shifts[i])
                moved.append(f"{name} {np.linalg.norm(shifts[i]) / max(spread, 1e-12):.1%}")
        log.info("section shifts (share of the embedding's spread): %s", ", ".join(moved))

    def section_shift(self, section: int) -> np.ndarray:
        """The translation added to section ``section``'s embeddings (zeros when none was set).

        Parameters
        ----------
        section
            Index of the section in ``section_info``.

        Returns
        -------
        numpy.ndarray
            ``n_latent`` float32 values.

        Examples
        --------
        >>> model.section_shift(0).shape  # doctest: +SKIP
        (64,)
        """
        shift = self.section_info[section].get("shift")
        k = self.config.model.n_latent
        return np.zeros(k, dtype=np.float32) if shift is None else np.asarray(shift, dtype=np.float32)

    def check_mixing(self) -> dict | None:
        """How many sections share each Leiden cluster of the embeddings (:func:`fusemap.mixing.
        integration_check`), kept in the run record; a :class:`FuseMapWarning` when most clusters
        belong to one section. Run after training and mapping.

        Returns
        -------
        dict or None
            Per embedding (``'cell'``, ``'spatial'``): clusters, share of cells in clusters holding
            every section, clusters confined to one section; plus ``'sentence'`` and ``'warning'``.
            None for one section or an untrained model.

        Examples
        --------
        >>> model.check_mixing()["sentence"]  # doctest: +SKIP
        """
        from .distributed import is_main_process
        from .mixing import integration_check

        if not is_main_process() or self.train_state is None or not self.data:
            return None
        embs = self.embeddings()
        free = set(self.no_coordinates)
        out = integration_check({n: (e.cell, None if n in free else e.spatial) for n, e in embs.items()},
                                seed=self.config.train.seed)
        self.train_state.mixing = out
        if out:
            log.info("%s", out["sentence"])
            if out["warning"]:
                warnings.warn(out["warning"], FuseMapWarning, stacklevel=3)
                self.warnings.append(out["warning"])
        return out

    def summary(self) -> dict:
        """The run at a glance, as plain values (what the R package shows): sections, cells, epochs,
        time, final validation loss, the balance-weights sentence and the section-mixing check.

        Returns
        -------
        dict
            Plain values (strings, numbers, lists, dicts), convertible to R as they are.

        Examples
        --------
        >>> model.summary()["mixing"]  # doctest: +SKIP
        """
        rec = self.run_record()
        st = self.train_state
        mixing = (st.mixing if st else None) or {}
        return {
            "sections": rec["sections"], "n_cells": rec["n_cells"], "n_genes": rec["n_genes"],
            "trained": self.is_trained, "epochs_per_phase": rec["epochs_per_phase"],
            "stopped_early": rec["stopped_early"], "train_seconds": rec["train_seconds"],
            "final_val_loss": rec["final_val_loss"], "balance": rec["balance_summary"],
            "mixing": rec["mixing_summary"], "novelty": rec["novelty_summary"],
            "mixing_cell": dict(mixing.get("cell") or {}), "mixing_spatial": dict(mixing.get("spatial") or {}),
            "warnings": list(self.warnings),
        }

    @property
    def is_trained(self) -> bool:
        """Whether the model has been trained (or was saved after training)."""
        return self.train_state is not None

    def history_frame(self) -> pd.DataFrame:
        """Per-epoch losses of the training, one row per epoch of both phases (or of the mapping).

        Returns
        -------
        pandas.DataFrame
            One row per epoch: ``phase``, ``epoch``, the training loss terms, ``steps`` and
            ``seeds`` (minibatches and seed cells trained: fewer than the section's cells where
            ``max_epoch_steps`` caps an epoch), ``val_loss``, ``val_mixing`` (held-out section
            mixing, balanced phase), ``lambda_dis`` (adversarial weight) and ``seconds``; plot it
            to see whether training converged.

        Examples
        --------
        >>> model.history_frame().tail()  # doctest: +SKIP
        """
        return pd.DataFrame(self.history)

    # -- read-out ------------------------------------------------------------------------------
    def embeddings(self) -> dict[str, SectionEmbedding]:
        """Cell and spatial embeddings of every section, computed over whole graphs.

        Computed once and cached until the model changes (training, attaching data). Embeddings
        are posterior means plus the section's shift (:meth:`section_shift`): the same cell always
        gets the same embedding.

        Returns
        -------
        dict
            Section name -> an object with ``.cell`` (cell embedding Z_c) and ``.spatial``
            (spatial embedding Z_T), each a cells x ``n_latent`` float32 array in the section's
            cell order.

        Raises
        ------
        FuseMapInputError
            For a model loaded without its sections' data (see :meth:`attach`).

        Examples
        --------
        >>> emb = model.embeddings()  # doctest: +SKIP
        >>> emb["sim_section_0"].cell.shape  # doctest: +SKIP
        (500, 64)
        """
        if self._embeddings is None:
            self._require_data("embeddings")
            self._embeddings = {}
            for i, d in enumerate(self.data):
                zc, zt = embed_section(self.module, i, d, self.device)
                shift = self.section_shift(i)
                self._embeddings[d.name] = SectionEmbedding(zc + shift, zt + shift)
        return self._embeddings

    def gene_embedding(self) -> pd.DataFrame:
        """The gene embedding over the union of all panels.

        Genes close in this embedding are co-expressed in similar cells and neighbourhoods
        (:func:`fusemap.tl.gene_modules` clusters it); it is what lets a gene measured in one
        section be imputed in the others.

        Returns
        -------
        pandas.DataFrame
            One row per gene of the vocabulary (index ``gene``), columns ``latent_0`` ...
            ``latent_{k-1}``.

        Examples
        --------
        >>> model.gene_embedding().loc[["Gene0001", "Gene0002"]]  # doctest: +SKIP
        """
        e = self.module.gene_matrix().detach().cpu().numpy().T
        return pd.DataFrame(e, index=pd.Index(self.vocabulary.names, name="gene"),
                            columns=[f"latent_{i}" for i in range(e.shape[1])])

    def run_record(self) -> dict:
        """What was run, in a form that AnnData can store in ``uns`` (JSON strings for nested parts).

        :meth:`write` stores it in ``uns['fusemap']`` of every section, so a result file says how
        it was made.

        Returns
        -------
        dict
            Package version, sections and cell counts, gene count, embedding keys, device, epochs
            per phase and whether each stopped early, training seconds, the adversarial weight,
            final validation loss, model directory, and the configuration, balance summary and
            sections without coordinates (``no_coordinates_json``, read by :mod:`fusemap.tl`) as
            JSON strings.

        Examples
        --------
        >>> import json
        >>> json.loads(model.run_record()["config_json"])["train"]["seed"]  # doctest: +SKIP
        0
        """
        st = self.train_state
        last = self.history[-1] if self.history else {}
        return {
            "fusemap_version": VERSION,
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
            "balance_summary": str(((st.balance_summary if st else None) or {}).get("sentence", "")),
            "mixing_json": json.dumps(st.mixing if st else None),
            "mixing_summary": str(((st.mixing if st else None) or {}).get("sentence", "")),
            "mixing_warning": str(((st.mixing if st else None) or {}).get("warning", "")),
            "novelty_json": json.dumps(st.novelty if st else None),
            "novelty_summary": str(((st.novelty if st else None) or {}).get("sentence", "")),
            "no_coordinates_json": json.dumps(self.no_coordinates),
        }

    def write(self) -> None:
        """Write the results into the input objects.

        Each section gets ``obsm['X_fusemap_cell']``, ``obsm['X_fusemap_spatial']``,
        ``varm['fusemap_gene_embedding']`` and ``uns['fusemap']`` (:meth:`run_record`); sections
        split out of one AnnData write into that AnnData, in its cell order. Sections read from a
        SpatialData object also get the results in their annotating tables, in memory
        (:func:`fusemap.io.spatialdata.save_spatialdata` saves the store). Files the sections were
        read from are not changed.

        Examples
        --------
        >>> model.train().write()  # doctest: +SKIP
        >>> sections[0].obsm["X_fusemap_spatial"]  # doctest: +SKIP
        """
        embs = self.embeddings()
        put_embeddings(self.sections, {n: (e.cell, e.spatial) for n, e in embs.items()},
                       self.gene_embedding().to_numpy(), self.vocabulary.index_of, self.run_record())

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Save the model to a directory: weights, JSON metadata and checksums.

        The directory holds the weights (``weights.pt``, loadable with
        ``torch.load(weights_only=True)``, so loading never runs pickled code), the configuration
        and setup, the gene vocabulary, the sections and their panels, the training history, and
        a checksum of each file that :meth:`load` checks, so a truncated or edited file is reported
        instead of silently changing results. It is written to a temporary directory beside
        ``path`` and renamed into place, so a failed save never leaves a half-written model. The
        sections' data is not saved.

        Parameters
        ----------
        path
            Target directory.
        overwrite
            Replace an existing saved model at ``path``. A folder that is not a saved model (other
            than an empty one) is never replaced.

        Returns
        -------
        pathlib.Path
            The directory written.

        Raises
        ------
        FileExistsError
            When ``path`` exists and ``overwrite`` is false.
        FuseMapInputError
            When ``path`` exists and is neither a saved model nor an empty folder.

        Examples
        --------
        >>> model.save("atlas_model", overwrite=True)  # doctest: +SKIP
        PosixPath('atlas_model')
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(
                f"path={str(path)!r} already exists; pass overwrite=True to replace it or choose "
                "another directory."
            )
        if path.exists() and not is_model_dir(path) and not (path.is_dir() and not any(path.iterdir())):
            raise FuseMapInputError(
                f"path={str(path)!r} exists and is not a saved fusemap model; overwrite=True only replaces "
                "a model. Choose another directory."
            )
        with atomic_dir(path) as tmp:
            self.model_dir = str(path)
            torch.save({k: v.detach().cpu() for k, v in self.module.state_dict().items()}, tmp / WEIGHTS_FILE)
            write_json(tmp / CONFIG_FILE, {
                "format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION,
                "fusemap_version": VERSION, "config": self.config.to_dict(), "setup": self.setup,
                "adversarial": self.adversarial, "n_disc_classes": self._n_disc_classes(),
                "train_state": None if self.train_state is None else self.train_state.__dict__,
            })
            write_json(tmp / GENES_FILE, {"gene_case": self.vocabulary.gene_case, "genes": self.vocabulary.names})
            write_json(tmp / SECTIONS_FILE, {"sections": self.section_info})
            write_json(tmp / HISTORY_FILE, self.history)
            write_json(tmp / CHECKSUMS_FILE, {f: _sha256(tmp / f) for f in MODEL_FILES})
        return path

    def _n_disc_classes(self) -> int:
        return int(self.module.disc_cell.net[-1].out_features)

    @classmethod
    def load(cls, path: str | os.PathLike, data: Any = None, section_key: str | None = None, *,
             device: str | None = None, spatial_key: str | None = None) -> "FuseMap":
        """Load a model saved by :meth:`save` (or ``fusemap integrate``'s ``DIR/model``).

        The model's setup (``spatial_key``, ``section_key``, preprocessing) is read from the
        directory, so loading never asks for it again. Without ``data`` the model can give its
        gene embedding, be used by :func:`fusemap.map_query` (with ``reference=``) and impute
        sections passed to :func:`fusemap.impute`; with ``data`` (its own sections) it can also
        recompute embeddings.

        Parameters
        ----------
        path
            The saved model directory.
        data
            The sections the model was trained on (any form :func:`fusemap.io.read_sections`
            accepts), attached with :meth:`attach`.
        section_key
            obs column splitting ``data``; default: the one the model was set up with.
        device
            Device to load onto (``'cpu'``, ``'cuda'``, ``'cuda:N'``, ``'auto'``); default: the
            saved setting.
        spatial_key
            obsm key of the coordinates; default: the one the model was set up with.

        Returns
        -------
        FuseMap
            The loaded model, trained when it was saved after training.

        Raises
        ------
        FuseMapModelError
            When the directory is missing, incomplete, changed after saving (checksum), or
            written by a newer format.
        FuseMapInputError
            When ``data`` does not match the model's sections and panels.

        Examples
        --------
        >>> model = fusemap.FuseMap.load("run/model", "run/sections", device="cpu")  # doctest: +SKIP
        >>> model.embeddings()  # doctest: +SKIP
        """
        meta = read_model_dir(path)
        cfg = make_config(meta["config"]["config"])
        if device is not None:
            cfg = cfg.with_overrides(device=device)
        setup = {"spatial_key": SPATIAL_KEY, "section_key": None, **(meta["config"].get("setup") or {})}
        if spatial_key is not None:
            setup["spatial_key"] = spatial_key
        vocabulary = GeneVocabulary(meta["genes"]["genes"], meta["genes"]["gene_case"])
        section_info = meta["sections"]["sections"]
        panels = [vocabulary.index_of(s["genes"]) for s in section_info]
        module = FuseMapModule(panels, len(vocabulary), meta["config"]["n_disc_classes"], cfg.model,
                               gene_blocks=_gene_blocks(meta["weights"], len(vocabulary), path))
        try:
            module.load_state_dict(meta["weights"])
        except RuntimeError as exc:
            raise FuseMapModelError(
                f"weights in {str(Path(path) / WEIGHTS_FILE)!r} do not fit the saved configuration and "
                f"gene/section lists ({exc}). The model directory is inconsistent; re-save the model."
            ) from exc
        device_ = resolve_device(cfg.train.device)
        ts = meta["config"].get("train_state")
        self = cls.__new__(cls)._set(
            config=cfg, setup=setup, vocabulary=vocabulary, section_info=section_info,
            module=module.to(device_), device=device_, adversarial=bool(meta["config"]["adversarial"]),
            history=meta["history"], train_state=TrainState(**ts) if ts else None, model_dir=str(path))
        if data is not None:
            self.attach(data, section_key)
        return self

    def attach(self, data: Any, section_key: str | None = None) -> "FuseMap":
        """Attach the data of the model's own sections (e.g. after loading) to embed or impute.

        The sections are validated and preprocessed as in training, each section's genes put in
        its saved panel order; cached embeddings are dropped.

        Parameters
        ----------
        data
            The sections the model was trained on, all of them, each with exactly the genes it was
            trained on (any form :func:`fusemap.io.read_sections` accepts).
        section_key
            obs column splitting ``data``; default: the one the model was set up with.

        Returns
        -------
        FuseMap
            The model itself, so calls can be chained.

        Raises
        ------
        FuseMapInputError
            When sections are missing or unknown to the model, or a section lacks genes of its
            panel or has extra ones.

        Examples
        --------
        >>> model = fusemap.FuseMap.load("atlas_model").attach(sections)  # doctest: +SKIP
        """
        sections = read_sections(data, self.setup.get("section_key") if section_key is None else section_key)
        self.warnings = validate(sections, self.config, spatial_key=self.spatial_key,
                                 no_coordinates=self.no_coordinates)
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
        sections = sections.subset(order)
        panels = [s["genes"] for s in self.section_info]
        case = self.vocabulary.gene_case
        for (name, adata), panel in zip(sections.items(), panels):
            have = GeneVocabulary(list(map(str, adata.var_names)), case)
            absent = [g for g in panel if g not in have]
            extra = len(adata.var_names) - (len(panel) - len(absent))
            if self.setup.get("panels"):  # given panels: the table may hold genes a section did not measure
                extra = 0
            if absent or extra:
                raise FuseMapInputError(
                    f"data: section {name!r} must have the {len(panel)} genes it was trained on; "
                    f"{len(absent)} are absent (e.g. {absent[:5]}) and {extra} are extra. Pass the "
                    "section as it was given to training."
                )
        self.sections = sections
        self.data, _ = prepare_sections(sections, self.vocabulary, self.config, self.spatial_key, panels,
                                        self.no_coordinates)
        self._embeddings = None
        return self

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


MODEL_FILES = (WEIGHTS_FILE, CONFIG_FILE, GENES_FILE, SECTIONS_FILE, HISTORY_FILE)
"""The files of a saved model that :data:`CHECKSUMS_FILE` covers."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_checksums(path: Path, skip: Sequence[str] = ()) -> None:
    """Compare each file (but ``skip``) with the checksum written at save (models saved before
    checksums were added have none and are read as they are)."""
    f = path / CHECKSUMS_FILE
    if not f.exists():
        return
    try:
        sums = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise FuseMapModelError(f"{str(f)!r} is not valid JSON ({exc}); the model directory is damaged.") from exc
    changed = [name for name, digest in sums.items()
               if name not in skip and (path / name).exists() and _sha256(path / name) != digest]
    if changed:
        raise FuseMapModelError(
            f"model={str(path)!r}: {changed} changed after the model was saved (checksum differs): "
            "truncated, or edited by hand. Edits such as reordering genes.json would silently relabel "
            "results; restore the directory from the run that wrote it, or train again."
        )


def read_model_dir(path: str | os.PathLike, weights: bool = True) -> dict:
    """Read and check a saved model directory; clear errors for anything missing or malformed.

    ``weights=False`` reads the metadata only (what a command checks before any work)."""
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
    _check_checksums(path, skip=() if weights else (WEIGHTS_FILE,))  # unread weights need no hashing
    out = {}
    for key, fname in (("config", CONFIG_FILE), ("genes", GENES_FILE), ("sections", SECTIONS_FILE)):
        try:
            out[key] = json.loads((path / fname).read_text())
        except json.JSONDecodeError as exc:
            raise FuseMapModelError(f"{str(path / fname)!r} is not valid JSON ({exc}).") from exc
    try:
        _check_fields(path, out)
    except (KeyError, TypeError, AttributeError) as exc:
        raise FuseMapModelError(
            f"model={str(path)!r}: a metadata file lacks the entry {exc} or has it in the wrong form; the "
            "model directory is damaged. Restore it from the run that wrote it, or train again."
        ) from exc
    try:
        out["weights"] = None if not weights else torch.load(path / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, EOFError, zip errors ...
        raise FuseMapModelError(
            f"{str(path / WEIGHTS_FILE)!r} cannot be read ({type(exc).__name__}: {exc}); the file is truncated "
            "or not a fusemap weights file. Restore the model directory, or train again."
        ) from exc
    hist = path / HISTORY_FILE
    out["history"] = json.loads(hist.read_text()) if hist.exists() else []
    return out


def _check_fields(path: Path, out: dict) -> None:
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
    lacking = [k for k in ("config", "n_disc_classes", "adversarial") if k not in out["config"]]
    if lacking:
        raise KeyError(lacking[0])  # reported by read_model_dir as a damaged directory
