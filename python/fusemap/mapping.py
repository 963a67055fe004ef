"""Query mapping: bring new sections into a trained reference's space without changing the reference.

Public API: :func:`map_query` (its docstring lists the arguments).

How (DESIGN.md §2.9): the reference module is copied; new encoders (and graph autoencoders and
decoder gene offsets) are appended for the query sections and a new block of gene-embedding
columns for genes only the query measures. Only these are trained (``Trainer(frozen=...)`` keeps
the reference gene columns out of the optimiser; the reference networks are not even part of the
trained view). Fresh discriminators over reference + query sections are trained on the query's
embeddings together with fixed, precomputed reference embeddings, and the query encoders learn to
fool them, which pulls the query into the reference space. Every reference tensor - encoders,
gene columns, gene offsets, the reference's own discriminators - stays bit-for-bit unchanged.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .config import TrainConfig
from .errors import FuseMapInputError, FuseMapModelError, FuseMapWarning
from .inference import embed_section
from .io.results import put_embeddings, put_obs
from .io.sections import match_model_sections, read_sections
from .io.sectionset import SectionSet
from .novelty import NOVELTY_CLUSTER_COLUMN, NOVELTY_COLUMN, novelty_scores
from .model import FuseMap, SectionEmbedding, prepare_sections, resolve_device, seeded
from .progress import ensure_log_handler
from .training import FixedSections, Trainer
from .validation import check_panels_form, coordinate_free, resolve_panels, validate, warn_zero_genes

log = logging.getLogger("fusemap")

MAPPING_OPTIONS = frozenset(f.name for f in fields(TrainConfig))
"""Options a mapping may change: the training ones. Architecture, preprocessing and graph
settings belong to the reference and are stored once for the whole mapped model."""

FEW_SHARED_GENES = 10
"""Below this many genes shared with the reference, a query is mapped but a warning is given."""


# -- the reference ------------------------------------------------------------------------------------
def _reference_model(model_or_dir: Any, reference: Any, spatial_key: str, device: str | None) -> FuseMap:
    """A trained reference model with the data of all its sections attached."""
    if isinstance(model_or_dir, FuseMap):
        ref = model_or_dir
        if not ref.is_trained:
            raise FuseMapModelError(
                "model_or_dir is an untrained FuseMap; train it (model.train()) before mapping "
                "queries onto it."
            )
        if reference is None and ref.data:
            return ref
        where = "the model has no section data attached"
    elif isinstance(model_or_dir, (str, os.PathLike)):
        path = Path(model_or_dir)
        ref = FuseMap.load(path, device=device, spatial_key=spatial_key)
        where = f"model {str(path)!r} was given as a directory"
        if reference is None:  # the layout `fusemap integrate` writes: DIR/model beside DIR/sections
            sibling = path.parent / "sections"
            stores = sorted(p for p in path.parent.glob("*.zarr") if p.is_dir())
            if sibling.is_dir():
                reference = sibling
            elif len(stores) == 1:  # integrated from a SpatialData store: its copy with the results
                reference = stores[0]
    else:
        raise FuseMapInputError(
            f"model_or_dir: expected a trained FuseMap or the directory of a saved model; found "
            f"{type(model_or_dir).__name__}."
        )
    if reference is None:
        raise FuseMapInputError(
            f"reference: {where}, and the reference sections' data is needed to place the query "
            "among them (their embeddings enter the discriminators). Pass reference= the sections "
            "the model was trained on (AnnData list, files, or the DIR/sections folder written by "
            "`fusemap integrate`)."
        )
    sections = match_model_sections(read_sections(reference, argname="reference"), ref.section_names)
    missing = [n for n in ref.section_names if n not in set(sections.names)]
    unknown = [n for n in sections.names if n not in set(ref.section_names)]
    if missing or unknown:
        raise FuseMapInputError(
            f"reference: the model has sections {ref.section_names}; the reference data holds "
            f"{sections.names} (missing: {missing}, not in the model: {unknown}). Pass the data of "
            "every section the model was trained on (for a model that already holds mapped "
            "queries, the query sections too: reference=[DIR/sections, DIR2/sections])."
        )
    ref = copy.copy(ref)  # attach() rebinds data fields only; the caller's object keeps its own
    return ref.attach(sections)


def _check_overrides(overrides: dict) -> None:
    bad = sorted(set(overrides) - MAPPING_OPTIONS)
    if bad:
        raise FuseMapInputError(
            f"map_query: option(s) {bad} cannot be changed when mapping; architecture, "
            "preprocessing and graph settings are fixed by the reference model. Options a mapping "
            f"accepts: {sorted(MAPPING_OPTIONS)}."
        )


def _check_query(ref: FuseMap, query: SectionSet, cfg, spatial_key: str,
                 panels: Sequence[Sequence[str]] | None = None, no_coordinates: Sequence[str] = ()) -> list[str]:
    """Validate query sections one by one (each only needs genes in common with the reference)."""
    problems, issued = [], []
    clash = [n for n in query.names if n in set(ref.section_names)]
    if clash:
        problems.append(
            f"query section name(s) {clash} are already sections of the reference model; give the "
            "query sections other names (dict keys, file names or obs['section'])."
        )
    single = cfg.with_overrides(adversarial=False)  # one section at a time: no 'nothing to align' warning
    # a query without coordinates onto a reference with them is the common single-cell case
    elsewhere = bool(set(ref.section_names) - set(ref.no_coordinates)) or bool(set(query.names) - set(no_coordinates))
    for i, (name, adata) in enumerate(query.items()):
        try:
            issued += validate(SectionSet([name], [adata]), single, spatial_key=spatial_key,
                               no_coordinates=no_coordinates, coordinates_elsewhere=elsewhere)
        except FuseMapInputError as exc:
            problems.append(str(exc).split(":\n  - ", 1)[-1])
            continue
        symbols = [str(g) for g in adata.var_names] if panels is None else list(panels[i])
        shared = [g for g in symbols if g in ref.vocabulary]
        if not shared:
            problems.append(
                f"query section {name!r} has no gene in common with the reference ({len(symbols)} "
                f"query genes, e.g. {symbols[:5]}; reference genes e.g. {ref.vocabulary.names[:5]}). "
                "Check that both use the same gene naming (symbols, not Ensembl IDs); "
                f"matching is {'case-insensitive' if ref.vocabulary.gene_case == 'ignore' else 'exact'}."
            )
        elif len(shared) < FEW_SHARED_GENES:
            msg = (f"query section {name!r} shares only {len(shared)} gene(s) with the reference "
                   f"({shared}); the mapping rests on these genes alone and may be poor.")
            warnings.warn(msg, FuseMapWarning, stacklevel=3)
            issued.append(msg)
    if problems:
        raise FuseMapInputError(
            "invalid query (" + str(len(problems)) + " problem(s)):\n  - " + "\n  - ".join(problems))
    return issued


# -- mapping --------------------------------------------------------------------------------------------
def map_query(model_or_dir: Any, query: Any, section_key: str | None = None, *, reference: Any = None,
              spatial_key: str | None = None, checkpoint_dir: str | os.PathLike | None = None,
              resume: bool = True, write: bool = True, panels: Mapping[str, Sequence[str]] | None = None,
              callback: Callable[[dict], Any] | None = None, no_coordinates: Sequence[str] | None = None,
              **overrides: Any) -> FuseMap:
    """Map new sections onto a trained reference without changing the reference.

    New encoders are trained for the query sections (and new gene-embedding columns for genes
    only the query measures) against discriminators that see the query together with the fixed
    reference embeddings, which pulls the query into the reference's space. Every reference
    weight stays bit-for-bit unchanged, so reference embeddings, earlier mappings and labels
    transferred before remain valid (the module docstring of :mod:`fusemap.mapping` says how).

    Parameters
    ----------
    model_or_dir
        A trained :class:`~fusemap.FuseMap`, or the directory of a saved one (``model.save()``,
        or ``DIR/model`` written by ``fusemap integrate``).
    query
        The new sections, in any form :func:`fusemap.io.read_sections` accepts (AnnData, list or
        dict of AnnData, ``.h5ad`` path(s) or folder, SpatialData). Their names must differ from
        the reference's section names; each needs genes in common with the reference (a warning
        is given below 10 shared genes: the mapping then rests on very few genes).
    section_key
        obs column splitting one query AnnData into several sections.
    reference
        The reference sections' data, needed because their embeddings enter the discriminators.
        Not needed for a model that still has its sections attached (the one
        :func:`fusemap.integrate` returned). For a model directory ``DIR/model`` it defaults to
        ``DIR/sections`` (or the single ``DIR/*.zarr`` store), the layout ``fusemap integrate``
        writes. For a model that already holds mapped queries, pass their data too.
    spatial_key
        obsm key of the query coordinates; default: the key the reference was set up with.
    checkpoint_dir
        Write a checkpoint after every epoch of the mapping and resume from an existing one.
    resume
        Resume from a checkpoint in ``checkpoint_dir``; ``False`` starts over.
    write
        Write the results into the query sections (see Returns). ``False`` leaves them untouched;
        read the embeddings from ``mapped.embeddings()``.
    panels
        Query section name -> the genes it measured (as for :class:`~fusemap.FuseMap`).
    callback
        Called after every epoch with one dict (as for :meth:`FuseMap.train`).
    no_coordinates
        Query sections to map without coordinates, such as a single-cell reference (sections
        without ``obsm[spatial_key]`` are mapped so anyway); as for :class:`~fusemap.FuseMap`,
        they stay out of the spatial-embedding alignment.
    **overrides
        Training options only (fields of :class:`~fusemap.TrainConfig`: ``max_epochs``,
        ``seed``, ``batch_size``, ``lr``, ``device`` ...). Architecture, preprocessing and graph
        settings belong to the reference and cannot change.

    Returns
    -------
    FuseMap
        The mapped model: reference plus query sections (role ``'query'`` in
        ``section_info``) and the gene vocabulary extended by the query's new genes. It can be
        saved, used by :func:`fusemap.impute` for the query cells, and used to map further
        queries, but not trained again as a whole. With ``write``, each query section holds
        ``obsm['X_fusemap_cell']``, ``obsm['X_fusemap_spatial']``,
        ``varm['fusemap_gene_embedding']`` and ``uns['fusemap']``.

    Raises
    ------
    FuseMapInputError
        For an option that a mapping cannot change, missing reference data, query sections
        named like reference sections, or query sections sharing no gene with the reference.
    FuseMapModelError
        When ``model_or_dir`` is an untrained model or a damaged model directory.

    Examples
    --------
    >>> import fusemap
    >>> sections = fusemap.datasets.simulate(n_sections=3, n_cells=500, panel_size=100, n_shared=40)
    >>> reference, query = sections[:2], sections[2]
    >>> model = fusemap.integrate(reference, max_epochs=20)
    >>> mapped = fusemap.map_query(model, query, max_epochs=20)
    >>> query.obsm["X_fusemap_cell"].shape
    (500, 64)
    >>> result = fusemap.transfer_labels(reference, query, "cell_type")

    From the folders ``fusemap integrate`` writes (``run/model`` beside ``run/sections``):

    >>> mapped = fusemap.map_query("run/model", "new_section.h5ad", seed=1)
    """
    _check_overrides(overrides)
    check_panels_form(panels)
    ensure_log_handler()
    ref = _reference_model(model_or_dir, reference, spatial_key, overrides.get("device"))
    spatial_key = ref.spatial_key if spatial_key is None else spatial_key
    cfg = ref.config.with_overrides(**overrides)
    qsec = read_sections(query, section_key, argname="query")
    case = ref.vocabulary.gene_case
    qpanels = resolve_panels(panels, qsec, case)
    free = coordinate_free(qsec, spatial_key, no_coordinates)
    issued = _check_query(ref, qsec, cfg, spatial_key, qpanels, free)
    issued += warn_zero_genes(qsec, qpanels, cfg.preprocess.layer, case)
    device = resolve_device(cfg.train.device)

    symbols = qpanels or [list(map(str, a.var_names)) for a in qsec.adatas]
    vocab = ref.vocabulary.extended([str(g) for p in symbols for g in p])
    qdata, qinfo = prepare_sections(qsec, vocab, cfg, spatial_key, qpanels, free)
    for info in qinfo:
        info["role"] = "query"
    ref_emb = ref.embeddings()
    fixed = FixedSections([ref_emb[n].cell for n in ref.section_names],
                          [ref_emb[n].spatial for n in ref.section_names], first_label=len(qdata),
                          names=list(ref.section_names),
                          coordinates=[n not in set(ref.no_coordinates) for n in ref.section_names])

    with seeded(cfg.train.seed, device):
        core = copy.deepcopy(ref.module).to(device)
        n_ref_blocks = len(core.gene_embedding)
        new_ids = core.add_sections([d.genes for d in qdata], len(vocab) - len(ref.vocabulary))
        view = core.section_view(new_ids, n_disc_classes=len(qdata) + len(ref.section_names))
        frozen = list(core.gene_embedding)[:n_ref_blocks]
        for p in frozen:  # no gradient is even computed for the reference gene columns
            p.requires_grad_(False)
        try:
            trainer = Trainer(view, qdata, cfg, device, adversarial=cfg.train.adversarial,
                              checkpoint_dir=checkpoint_dir, frozen=frozen, fixed=fixed)
            history = trainer.fit(resume=resume, callback=callback)
        finally:
            for p in frozen:
                p.requires_grad_(True)

    # reference embeddings are unchanged by construction; only the query's are computed
    embs = {n: ref_emb[n] for n in ref.section_names}
    for idx, d in zip(new_ids, qdata):
        embs[d.name] = SectionEmbedding(*embed_section(core, idx, d, device))
    mapped = FuseMap.__new__(FuseMap)._set(
        config=cfg, setup={**ref.setup, "spatial_key": spatial_key,
                           "panels": bool(ref.setup.get("panels")) or panels is not None}, vocabulary=vocab,
        section_info=[{**i, "role": i.get("role", "reference")} for i in ref.section_info] + qinfo,
        module=core, device=device, adversarial=ref.adversarial,
        sections=SectionSet(list(ref.section_names) + list(qsec.names), list(ref.sections.adatas) + list(qsec.adatas)),
        data=list(ref.data) + qdata, warnings=issued, history=[{"stage": "map_query", **h} for h in history],
        train_state=trainer.state, embeddings=embs)
    mapped._set_shifts([i.get("role") == "query" for i in mapped.section_info])  # the reference stays
    embs = mapped.embeddings()
    mapped.novelty = novelty_scores([ref_emb[n].cell for n in ref.section_names],
                                    np.concatenate([embs[d.name].cell for d in qdata]), seed=cfg.train.seed)
    mapped.train_state.novelty = {**mapped.novelty.record(), "sentence": mapped.novelty.sentence()}
    log.info("mapped %d query section(s) onto %d reference section(s); %d new gene(s)",
             len(qdata), len(ref.section_names), len(vocab) - len(ref.vocabulary))
    log.info("%s", mapped.novelty.sentence())
    mapped.check_mixing()
    if write:
        write_query(mapped, qsec)
    return mapped


def write_query(mapped: FuseMap, query: SectionSet) -> None:
    """Write embeddings, gene embedding and run record into the query sections only, and each query
    cell's novelty (``obs['fusemap_novelty']``, ``obs['fusemap_novelty_cluster']``) when the
    mapping just computed it."""
    embs = mapped.embeddings()
    put_embeddings(query, {n: (embs[n].cell, embs[n].spatial) for n in query.names},
                   mapped.gene_embedding().to_numpy(), mapped.vocabulary.index_of, mapped.run_record())
    if mapped.novelty is not None:
        put_obs(query, {NOVELTY_COLUMN: mapped.novelty.scores,
                        NOVELTY_CLUSTER_COLUMN: mapped.novelty.clusters.astype(str).astype(object)})


def query_section_names(model: FuseMap) -> list[str]:
    """Names of the sections that entered ``model`` by mapping (role 'query')."""
    return [s["name"] for s in model.section_info if s.get("role") == "query"]
