"""Imputation: expression of any gene of the model's vocabulary in any of its sections.

Public API: :func:`impute` (its docstring lists the arguments).

Read-outs (DESIGN.md §2.5)
--------------------------
``method='decoder'``: ``ReLU(h E^T + b_v)`` with ``h = dec(Z_T)``, the read-out the model was
trained to reconstruct with: the spatial embedding passed through the graph decoder (Â Z_T with
the default ``spatial_mode='aggregate'``), times the gene embedding, plus the section's decoder
gene offset ``b_v`` for genes the section measured (a gene it did not measure has no offset in
that section). ``method='product'``: the plain product ``Z_c E^T`` of cell and gene embeddings
(the published imputation), without ReLU or offset. ``method='knn'``: the mean measured
(preprocessed) value of the gene over the cell's ``neighbors`` nearest cells, in the cell
embedding, of the sections that measured it (:class:`KnnReadout`; the default).
``method='blend'``: the mean of 'decoder' and 'knn'.

The kNN read-outs read the measured values of the sections that measured each gene: those given
in ``data`` and those attached to the model (``integrate`` and ``map_query`` keep them;
``FuseMap.load(path, sections)`` attaches them). A gene that none of them measured gets the
decoder read-out, with a warning.

``neighbors`` (1 turns it off): for 'decoder' and 'product' (default 50), the read-out input
(``h``, or ``Z_c``) of each cell is averaged over its ``neighbors`` nearest cells of the same
section in the cell embedding, itself included, before multiplying with ``E`` (a single cell's
embedding carries the noise of its own few counts); for 'knn' and 'blend' (default 25) it is the
number of measuring cells averaged (their decoder part, and genes 'knn' has no measuring cells for,
average 50 own-section cells unless ``neighbors`` is given).

Neighbours of 'knn' (development cases only, default settings, seed 0; mean Pearson R / SSIM over
masked (section, gene) pairs for k = 5, 10, 15, 25, 50, 100;
``benchmarks/results/imputation_neighbors.csv``, ``python -m benchmarks.imputation_neighbors``):
the STARmap mosaic at full size and cut to 300 and 150 cells per section, the thinned Xenium
copies at full size and cut to 600 and 300. Pearson R peaks at 50-100 on the full STARmap mosaic
and at 15-25 on the Xenium copies; averaged over the six cuts k = 25 leads (0.309; 15: 0.306,
50: 0.304, 100: 0.295) and its SSIM is above k = 50's on every cut (0.234 vs 0.208 on average):
beyond 25 cells the average blurs cell types into each other.

Why 'knn' (with 50 neighbours; benchmarks/results/ablation/ABLATION.md, rows mmd_20_phase2 = default
settings, mean Pearson R over masked (section, gene) pairs, seed 0): STARmap mosaic decoder 0.159,
knn 0.157, blend 0.161; thinned Xenium copies decoder 0.442, knn 0.540, blend 0.527 (15-NN in PCA +
Harmony: 0.103 and 0.534). Averaged over both cases 'knn' leads (0.349, blend 0.344, decoder 0.301;
with MMD in both phases 0.352 / 0.348 / 0.303); the decoder's gene embedding is fitted to the
sections that measured a gene, and cells of a section that did not carry that section's offsets into
the product, while the kNN read-out only needs the cell embedding to put like cells together. Before
the MMD alignment (mixed sections) the decoder led on the mosaic (0.141 vs 0.127 for a 15-NN
read-out on our embedding).

Memory: the work runs in blocks of ``chunk_size`` cells x ``gene_chunk_size`` genes; apart from the
result itself (or nothing, with ``out=``) no cells x genes matrix is formed. Neighbour search is
exact up to 100,000 cells per section and approximate (pynndescent) above.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ._constants import SECTION_COLUMN, SPATIAL_KEY
from .errors import FuseMapInputError
from .inference import cell_means, full_graph
from .model import FuseMap, prepare_sections
from .neighbors import nearest
from .sampler import SectionData
from .io.files import atomic_file, check_target
from .io.sections import match_model_sections, paths_of, read_sections
from .io.sectionset import SectionSet
from .vocabulary import GeneVocabulary

METHODS = ("decoder", "product", "knn", "blend")
DEFAULT_METHOD = "knn"
DEFAULT_NEIGHBORS = 25
"""Measuring cells averaged by the 'knn' and 'blend' read-outs (see "Neighbours" above)."""
MODEL_NEIGHBORS = 50
"""Own-section cells whose read-out input 'decoder' and 'product' average."""


def default_neighbors(method: str) -> int:
    """The ``neighbors`` a read-out uses when none is given."""
    return MODEL_NEIGHBORS if method in ("decoder", "product") else DEFAULT_NEIGHBORS
IMPUTATION_UNS = "fusemap_imputation"

IMPUTED_TABLE = "fusemap_imputed"
"""Name of the table that :func:`impute_to_store` (``fusemap impute --out X.zarr``) adds to a store."""


@dataclass
class Target:
    """One section to impute: its position in the model, its prepared data and its AnnData."""

    index: int
    name: str
    data: SectionData
    adata: ad.AnnData


# -- which cells --------------------------------------------------------------------------------------
def _attached(model: FuseMap) -> dict[str, tuple[SectionData, ad.AnnData]]:
    adatas = list(model.sections.adatas) if model.sections is not None else []
    return {d.name: (d, a) for d, a in zip(model.data or [], adatas)}


def _is_section_names(model: FuseMap, data: Any) -> bool:
    names = [data] if isinstance(data, str) else data
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
        return False
    known = set(model.section_names)
    if all(n in known for n in names):
        return True
    if all(os.path.exists(n) for n in names):
        return False
    raise FuseMapInputError(
        f"data: {[n for n in names if n not in known and not os.path.exists(n)]} are neither sections of "
        f"the model ({model.section_names}) nor existing files. Pass section names, AnnData "
        "objects, or paths of .h5ad files."
    )


def resolve_targets(model: FuseMap, data: Any = None, section_key: str | None = None) -> list[Target]:
    """Turn ``data`` into the sections to impute (see the module docstring)."""
    index = {n: i for i, n in enumerate(model.section_names)}
    attached = _attached(model)
    if data is None:
        if not attached:
            raise FuseMapInputError(
                "data: the model has no section data attached; pass the sections to impute "
                "(AnnData, files), or load the model with its data (FuseMap.load(path, sections))."
            )
        return [Target(index[n], n, d, a) for n, (d, a) in attached.items()]
    if _is_section_names(model, data):
        names = [data] if isinstance(data, str) else list(data)
        missing = [n for n in names if n not in attached]
        if missing:
            raise FuseMapInputError(
                f"data: sections {missing} have no data attached to this model; pass their AnnData "
                "(or .h5ad files) instead of their names."
            )
        return [Target(index[n], n, *attached[n]) for n in names]


    sections = match_model_sections(read_sections(data, section_key, argname="data"), model.section_names)
    unknown = [n for n in sections.names if n not in index]
    if unknown:
        raise FuseMapInputError(
            f"data: sections {unknown} are not sections of this model ({model.section_names}). "
            "Impute sections the model was trained on or has mapped; map new sections first with "
            "map_query (`fusemap map`). A single AnnData is named by its obs['section'] value; "
            "pass {name: adata} to name it yourself."
        )
    panels = []
    case = model.vocabulary.gene_case
    for name, adata in sections.items():
        panel = model.section_info[index[name]]["genes"]
        have = GeneVocabulary(list(map(str, adata.var_names)), case)
        absent = [g for g in panel if g not in have]
        if absent:
            raise FuseMapInputError(
                f"data: section {name!r} lacks {len(absent)} of the {len(panel)} genes the model "
                f"encodes it with (e.g. {absent[:5]}). Pass the section with the genes it was "
                "trained or mapped with."
            )
        panels.append(panel)
    prepared, _ = prepare_sections(sections, model.vocabulary, model.config, model.spatial_key, panels,
                                   model.no_coordinates)
    return [Target(index[n], n, d, a) for n, d, a in zip(sections.names, prepared, sections.adatas)]


def resolve_genes(model: FuseMap, genes: Any) -> tuple[list[str], np.ndarray]:
    """Vocabulary spelling and position of the requested genes (all of them for ``None``)."""
    vocab = model.vocabulary
    if genes is None:
        return list(vocab.names), np.arange(len(vocab))
    if isinstance(genes, str):
        genes = [genes]
    genes = [str(g) for g in genes]
    if not genes:
        raise FuseMapInputError("genes is empty; pass gene symbols, or genes=None for the whole vocabulary.")
    pos = vocab.index_of(genes)
    absent = [g for g, p in zip(genes, pos) if p < 0]
    if absent:
        raise FuseMapInputError(
            f"genes: {len(absent)} requested gene(s) are not in the model's vocabulary of "
            f"{len(vocab)} genes: {absent[:50]}{' ...' if len(absent) > 50 else ''}. Only genes "
            "measured in some section of the model (reference or mapped query) can be imputed."
        )
    if len(set(pos.tolist())) < len(pos):
        raise FuseMapInputError(f"genes: duplicates in the request ({genes}); list each gene once.")
    return [vocab.names[p] for p in pos], pos


# -- the read-out ---------------------------------------------------------------------------------------
def embedding_neighbors(z: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Indices of each cell's ``k`` nearest cells (itself included) in the embedding ``z``."""
    return nearest(z, z, min(k, len(z)), seed=seed)


@torch.no_grad()
def _readout_input(model: FuseMap, t: Target, method: str, neighbors: int, chunk: int) -> torch.Tensor:
    module, device = model.module, model.device
    zc = cell_means(module, t.index, t.data.x, device)
    h = zc if method == "product" else full_graph(module, t.index, t.data.a_hat, zc, device, decode=True)
    if neighbors <= 1 or h.shape[0] < 2:
        return h
    idx = torch.from_numpy(embedding_neighbors(zc.cpu().numpy(), neighbors).astype(np.int64)).to(device)
    return torch.cat([h[idx[s:s + chunk]].mean(1) for s in range(0, h.shape[0], chunk)])


def _offsets(model: FuseMap, t: Target, pos: np.ndarray) -> torch.Tensor | None:
    """The target section's decoder gene offsets at the genes ``pos`` (0 for genes it did not
    measure, which have no offset)."""
    values = model.module.section_bias(t.index)
    if values is None:
        return None
    where = np.full(len(model.vocabulary), -1, dtype=np.int64)
    where[np.asarray(model.module.panels[t.index])] = np.arange(len(model.module.panels[t.index]))
    at = where[pos]
    b = np.zeros(len(pos), dtype=np.float32)
    b[at >= 0] = values.detach().cpu().numpy()[at[at >= 0]]
    return torch.from_numpy(b).to(model.device)


def _source_sections(model: FuseMap) -> dict[int, SectionData]:
    """Sections whose preprocessed expression is attached to the model, by model position."""
    index = {n: i for i, n in enumerate(model.section_names)}
    return {index[d.name]: d for d in (model.data or []) if d.name in index}


class KnnReadout:
    """The kNN read-out: a gene's value in a cell is the mean of its measured (preprocessed) values
    in the cell's ``k`` nearest cells, in the cell embedding, among the attached sections that
    measured it (the target section included when it measured the gene).

    Genes are grouped by the set of sections that measured them; per group and target section the
    neighbours are searched once, and the average is a sparse product (targets x sources) @
    (sources x genes), row block by row block.
    """

    def __init__(self, model: FuseMap, k: int, chunk: int, targets: Sequence[Target] = ()):
        self.model, self.k, self.chunk = model, k, chunk
        # the sections being imputed serve as sources too (a loaded model has no data attached)
        self.sources = {**_source_sections(model), **{t.index: t.data for t in targets}}
        self._z: dict[int, np.ndarray] = {}

    def embedding(self, section: int) -> np.ndarray:
        if section not in self._z:
            d = self.sources[section]
            z = cell_means(self.model.module, section, d.x, self.model.device).cpu().numpy()
            self._z[section] = z + self.model.section_shift(section)  # the embedding users see
        return self._z[section]

    def groups(self, pos: np.ndarray) -> dict[tuple[int, ...], np.ndarray]:
        """Columns of ``pos`` grouped by the attached sections that measured them (() = none)."""
        measured = {j: np.isin(pos, np.asarray(self.model.module.panels[j])) for j in sorted(self.sources)}
        out: dict[tuple[int, ...], list[int]] = {}
        for c in range(len(pos)):
            out.setdefault(tuple(j for j in measured if measured[j][c]), []).append(c)
        return {g: np.asarray(c) for g, c in out.items()}

    def weights(self, z_target: np.ndarray, group: tuple[int, ...]):
        """Sparse (targets x cells of ``group``) averaging matrix over each target's k neighbours."""
        src_z = np.concatenate([self.embedding(j) for j in group])
        k = min(self.k, len(src_z))
        idx = nearest(src_z, z_target, k)
        n = len(z_target)
        return sp.csr_matrix((np.full(n * k, 1.0 / k, dtype=np.float32), idx.ravel(), np.arange(0, n * k + 1, k)),
                             shape=(n, len(src_z)))

    def values(self, pos: np.ndarray, group: tuple[int, ...]):
        """Measured values of the genes ``pos`` in the cells of ``group`` (sparse, cells x genes)."""
        parts = []
        for j in group:
            where = {int(g): i for i, g in enumerate(np.asarray(self.model.module.panels[j]))}
            parts.append(sp.csr_matrix(self.sources[j].x)[:, [where[int(g)] for g in pos]])
        return sp.vstack(parts, format="csr")


@torch.no_grad()
def _model_rows(model: FuseMap, h: torch.Tensor, bias: torch.Tensor | None, pos: np.ndarray, method: str
                ) -> np.ndarray:
    """Decoder (or product) read-out of the rows ``h`` for the genes ``pos``."""
    E = model.module.gene_matrix().detach()
    blk = h @ E[:, torch.as_tensor(pos, dtype=torch.long, device=E.device)]
    if method == "decoder":
        if bias is not None:
            blk += bias
        blk.clamp_(min=0)
    return blk.cpu().numpy().astype(np.float32, copy=False)


@torch.no_grad()
def iter_impute(model: FuseMap, targets: Sequence[Target], pos: np.ndarray, method: str = DEFAULT_METHOD,
                chunk_size: int = 4096, gene_chunk_size: int = 2048, neighbors: int = DEFAULT_NEIGHBORS,
                model_neighbors: int | None = None) -> Iterator[tuple[int, int, int, int, np.ndarray]]:
    """Blocks ``(row0, row1, gene0, gene1, values)`` of the result, rows counted over all targets.

    'knn' and 'blend' need the data of the sections that measured each gene (attached to the
    model); a gene that no attached section measured gets the decoder read-out.
    ``model_neighbors``: the decoder and product read-outs' averaging, if not ``neighbors``.
    """
    _check_options(method, chunk_size, gene_chunk_size, neighbors)
    knn = KnnReadout(model, neighbors, chunk_size, targets) if method in ("knn", "blend") else None
    model_method = "product" if method == "product" else "decoder"
    if knn is not None:
        alone = len(knn.groups(pos).get((), []))
        if alone:
            import warnings

            from .errors import FuseMapWarning
            warnings.warn(
                f"method={method!r}: {alone} of {len(pos)} gene(s) were measured in no section given or "
                "attached to the model; they get the decoder read-out. Pass the sections that measured "
                "them too (or load the model with its sections, FuseMap.load(path, sections)) to read "
                "them out from the measuring cells.",
                FuseMapWarning, stacklevel=3)
    offset = 0
    for t in targets:
        n = t.data.n_obs
        h = _readout_input(model, t, model_method, model_neighbors or neighbors, chunk_size)
        bias = _offsets(model, t, pos) if model_method == "decoder" else None
        z_t = knn.embedding(t.index) if knn else None
        weights: dict[tuple[int, ...], Any] = {}
        for g0 in range(0, len(pos), gene_chunk_size):
            gpos = pos[g0:g0 + gene_chunk_size]
            groups = knn.groups(gpos) if knn else {(): np.arange(len(gpos))}
            values = {g: knn.values(gpos[c], g) for g, c in groups.items() if g}
            for g in values:
                if g not in weights:
                    weights[g] = knn.weights(z_t, g)
            need_model = knn is None or method == "blend" or () in groups
            b = None if bias is None else bias[g0:g0 + gene_chunk_size]
            for r0 in range(0, n, chunk_size):
                r1 = min(r0 + chunk_size, n)
                blk = (_model_rows(model, h[r0:r1], b, gpos, model_method) if need_model
                       else np.empty((r1 - r0, len(gpos)), dtype=np.float32))
                for g, cols in groups.items():
                    if not g:
                        continue  # measured in no attached section: the decoder's values stay
                    kb = np.asarray((weights[g][r0:r1] @ values[g]).todense(), dtype=np.float32)
                    blk[:, cols] = 0.5 * (blk[:, cols] + kb) if method == "blend" else kb
                yield offset + r0, offset + r1, g0, g0 + blk.shape[1], blk
        offset += n


def pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson R of matching columns of two cells x genes arrays; NaN where either is constant."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(0) / np.where(den > 0, den, 1.0), np.nan)


@torch.no_grad()
def gene_confidence(model: FuseMap, targets: Sequence[Target], pos: np.ndarray, method: str = DEFAULT_METHOD,
                    neighbors: int = DEFAULT_NEIGHBORS, chunk_size: int = 4096, gene_chunk_size: int = 2048,
                    model_neighbors: int | None = None) -> pd.DataFrame:
    """How far to trust each imputed gene: the read-out checked where the gene was measured.

    For every section that measured a gene (attached to the model or among ``targets``), its
    held-out cells (the validation cells training never fitted) are read out with ``method`` and
    compared with their measured values: 'knn' averages the gene over the nearest *training*
    cells of the measuring sections (the held cells' own values are never used), 'decoder' and
    'product' are the model's read-out (the held cell's own expression enters its encoder, so
    they are optimistic), 'blend' their mean. Per gene, ``confidence_r`` is the Pearson R over
    each measuring section's held cells, averaged over the sections weighted by their held cells
    (NaN when no measuring section is at hand or the gene is constant there), and
    ``confidence_cells`` the held cells compared. A gene reads out well in other sections only
    when it also reads out well here; a low R flags a gene the embedding does not predict."""
    knn = KnnReadout(model, neighbors, chunk_size, targets)
    data = knn.sources
    model_method = "product" if method == "product" else "decoder"
    names = dict(zip(range(len(model.section_names)), model.section_names))
    r_sum, n_sum = np.zeros(len(pos)), np.zeros(len(pos))
    weights: dict = {}
    model_in: dict = {}
    for g0 in range(0, len(pos), gene_chunk_size):
        gpos = pos[g0:g0 + gene_chunk_size]
        for group, cols in knn.groups(gpos).items():
            if not group:
                continue
            vals = knn.values(gpos[cols], group)  # all cells of the group's sections, stacked
            starts = np.concatenate([[0], np.cumsum([data[j].n_obs for j in group])])
            train = np.concatenate([starts[i] + data[j].train_idx for i, j in enumerate(group)])
            for i, j in enumerate(group):
                held = data[j].val_idx
                if len(held) < 3:
                    continue
                truth = vals[starts[i] + held].toarray()
                preds = []
                if method in ("knn", "blend"):
                    if (group, j) not in weights:
                        src_z = np.concatenate([knn.embedding(u) for u in group])[train]
                        k = min(knn.k, len(train))
                        idx = nearest(src_z, knn.embedding(j)[held], k)
                        weights[(group, j)] = sp.csr_matrix(
                            (np.full(idx.size, 1.0 / k, dtype=np.float32), idx.ravel(),
                             np.arange(0, idx.size + 1, k)), shape=(len(held), len(train)))
                    preds.append(np.asarray((weights[(group, j)] @ vals[train]).todense(), dtype=np.float32))
                if method != "knn":
                    t = Target(j, names[j], data[j], None)
                    if j not in model_in:
                        model_in[j] = _readout_input(model, t, model_method, model_neighbors or neighbors,
                                                     chunk_size)
                    bias = _offsets(model, t, gpos[cols]) if model_method == "decoder" else None
                    h = model_in[j][torch.as_tensor(held, dtype=torch.long, device=model_in[j].device)]
                    preds.append(_model_rows(model, h, bias, gpos[cols], model_method))
                r = pearson_columns(truth.astype(np.float64), np.mean(preds, axis=0).astype(np.float64))
                ok = np.isfinite(r)
                at = g0 + cols[ok]
                r_sum[at] += r[ok] * len(held)
                n_sum[at] += len(held)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.where(n_sum > 0, r_sum / np.where(n_sum > 0, n_sum, 1.0), np.nan)
    return pd.DataFrame({"confidence_r": conf.astype(np.float32), "confidence_cells": n_sum.astype(np.int64)})


def _frames(model: FuseMap, targets: Sequence[Target], names: list[str], pos: np.ndarray, method: str,
            neighbors: int):
    obs = []
    for t in targets:
        o = t.adata.obs.copy()
        o[SECTION_COLUMN] = t.name
        obs.append(o)
    obs = pd.concat(obs) if len(obs) > 1 else obs[0]
    panels = [(t.name, set(model.module.panels[t.index].tolist())) for t in targets]
    measured = [",".join(n for n, panel in panels if int(g) in panel) for g in pos]
    var = pd.DataFrame({"measured_in": measured}, index=pd.Index(names, name=None))
    uns = {IMPUTATION_UNS: {"method": method, "neighbors": int(neighbors), "sections": [t.name for t in targets],
                            "scale": "preprocessed: log1p(normalised counts) / per-gene section sd, clipped"}}
    spatial = None
    if all(SPATIAL_KEY in t.adata.obsm for t in targets):
        spatial = np.concatenate([np.asarray(t.adata.obsm[SPATIAL_KEY]) for t in targets])
    return obs, var, uns, spatial


def _check_options(method: str, chunk_size: int, gene_chunk_size: int, neighbors: int) -> None:
    if method not in METHODS:
        raise FuseMapInputError(f"method={method!r} is not one of {list(METHODS)}.")
    for name, value in (("chunk_size", chunk_size), ("gene_chunk_size", gene_chunk_size), ("neighbors", neighbors)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise FuseMapInputError(f"{name}={value!r} must be a positive integer.")


def is_imputed_h5ad(path: Path) -> bool:
    """An .h5ad that :func:`impute` wrote (its uns holds the imputation record): what
    ``overwrite`` may replace."""
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return f"uns/{IMPUTATION_UNS}" in f
    except (OSError, ValueError):
        return False


def is_imputed_store(path: Path) -> bool:
    """A SpatialData store holding fusemap's imputed table."""
    return (Path(path) / "tables" / IMPUTED_TABLE).is_dir()


def impute(model: FuseMap, data: Any = None, genes: Any = None, *, method: str = DEFAULT_METHOD,
           neighbors: int | None = None, chunk_size: int = 4096, gene_chunk_size: int = 2048,
           section_key: str | None = None, out: str | os.PathLike | None = None,
           overwrite: bool = False, confidence: bool = True) -> ad.AnnData:
    """Impute the expression of any gene of the model's vocabulary in sections the model knows.

    Every gene measured in some section of the model (reference or mapped query) can be read out
    in every section, including the sections that did not measure it. The read-outs are described
    in :mod:`fusemap.imputation`; the default ``'knn'`` scored best on average in the project's
    benchmarks.

    Parameters
    ----------
    model
        A trained :class:`~fusemap.FuseMap`, as returned by :func:`fusemap.integrate` or
        :func:`fusemap.map_query` (mapped query sections are imputed like any other), or loaded
        with :meth:`FuseMap.load` (pass its sections as ``data`` or load it with them).
    data
        Which cells to impute: ``None`` for every section whose data is attached to the model; a
        section name or list of names (their data attached); or the sections themselves (AnnData,
        list or dict of AnnData, ``.h5ad`` path(s) or folder), each a section the model knows,
        with the genes it was trained or mapped with.
    genes
        Gene symbols to impute (matched with the model's case rule), or ``None`` for the whole
        vocabulary (the union of all panels).
    method
        ``'knn'`` (default): mean measured value over the ``neighbors`` nearest cells, in the
        cell embedding, of the sections that measured the gene. ``'decoder'``: the model's own
        reconstruction. ``'blend'``: the mean of both. ``'product'``: the published read-out
        (cell embedding times gene embedding). The kNN read-outs need the data of the sections
        that measured each gene (attached to the model, or given in ``data``); a gene no such
        section measured gets the decoder read-out, with a warning.
    neighbors
        For ``'knn'`` and ``'blend'``: measuring cells averaged (default 25). For ``'decoder'`` and
        ``'product'``: the read-out input of each cell is averaged over this many nearest cells of
        its own section (default 50), which removes the noise of a single cell's few counts. ``1``
        turns the averaging off.
    chunk_size, gene_chunk_size
        Cells and genes per block of work. Only the result is held as a cells x genes matrix
        (nothing, with ``out``); lower them to reduce peak memory.
    section_key
        obs column splitting one AnnData given as ``data`` into sections.
    out
        Path of an ``.h5ad`` file: the matrix is streamed into it block by block (written beside
        it and renamed into place), never held in memory, and the file is returned opened in
        backed mode. Use it when cells x genes would not fit in memory.
    overwrite
        Replace an existing file at ``out``; only a file :func:`impute` wrote is ever replaced,
        and never an input.
    confidence
        Score each gene where it was measured (:func:`gene_confidence`): ``var['confidence_r']``
        is the Pearson R between the read-out and the measured values on the held-out cells of
        the sections that measured it, ``var['confidence_cells']`` the cells compared. Genes with
        a low R (e.g. below 0.2) are not predicted by the embedding; do not trust them elsewhere.

    Returns
    -------
    anndata.AnnData
        Cells x genes (float32), on the model's preprocessed scale: log1p of library-size
        normalised counts divided by the section's per-gene standard deviation, the scale the
        model reconstructs, not counts. The sections'
        cells in the model's section order, with their ``obs`` (plus ``obs['section']``),
        ``obsm['spatial']`` (when every imputed section has coordinates), ``var['measured_in']``
        (which of the imputed sections measured each gene), ``var['confidence_r']`` and
        ``var['confidence_cells']`` (with ``confidence``) and ``uns['fusemap_imputation']``
        (method and settings).

    Raises
    ------
    FuseMapInputError
        For an untrained model, genes outside the vocabulary, sections the model does not know
        or that lack genes they were trained with, a model with no data attached and no ``data``,
        or an invalid option.
    FileExistsError
        When ``out`` exists and ``overwrite`` is false.

    Examples
    --------
    >>> import fusemap
    >>> sections = fusemap.datasets.simulate(n_sections=3, n_cells=500, panel_size=100, n_shared=40)
    >>> model = fusemap.integrate(sections, max_epochs=20)
    >>> imputed = fusemap.impute(model, genes=["Gene0001", "Gene0002"])
    >>> imputed.shape  # all cells of the three sections x 2 genes
    (1500, 2)
    >>> imputed.var["measured_in"]  # doctest: +SKIP
    >>> trusted = imputed.var_names[imputed.var["confidence_r"] > 0.3]  # doctest: +SKIP

    One section, every gene, streamed to a file:

    >>> fusemap.impute(model, "sim_section_0", out="section0_imputed.h5ad")  # doctest: +SKIP
    """
    # unset: each read-out averages its own default (the decoder part of 'knn' and 'blend' too)
    model_neighbors = MODEL_NEIGHBORS if neighbors is None else neighbors
    neighbors = default_neighbors(method) if neighbors is None else neighbors
    _check_options(method, chunk_size, gene_chunk_size, neighbors)
    if not model.is_trained:
        raise FuseMapInputError("model is untrained; train it (model.train()) before imputing.")
    names, pos = resolve_genes(model, genes)
    if out is not None:
        out = check_target(out, overwrite=overwrite, inputs=paths_of(data), flag="out", is_ours=is_imputed_h5ad)
    targets = resolve_targets(model, data, section_key)
    obs, var, uns, spatial = _frames(model, targets, names, pos, method, neighbors)
    if confidence:
        conf = gene_confidence(model, targets, pos, method, neighbors, chunk_size, gene_chunk_size,
                               model_neighbors)
        for col in conf:
            var[col] = conf[col].to_numpy()
    blocks = iter_impute(model, targets, pos, method, chunk_size, gene_chunk_size, neighbors, model_neighbors)
    if out is not None:
        write_streamed(out, obs, var, uns, spatial, blocks)
        return ad.read_h5ad(out, backed="r")
    x = np.empty((len(obs), len(names)), dtype=np.float32)
    for r0, r1, g0, g1, blk in blocks:
        x[r0:r1, g0:g1] = blk
    result = ad.AnnData(x, obs=obs, var=var, uns=uns)
    if spatial is not None:
        result.obsm[SPATIAL_KEY] = spatial
    return result


def write_streamed(path: Path, obs: pd.DataFrame, var: pd.DataFrame, uns: dict, spatial, blocks) -> Path:
    """Write an ``.h5ad`` whose dense ``X`` is filled block by block (temporary file, then rename)."""
    import h5py

    path = Path(path)
    skeleton = ad.AnnData(obs=obs, var=var, uns=uns)
    if spatial is not None:
        skeleton.obsm[SPATIAL_KEY] = spatial
    with atomic_file(path) as tmp:
        skeleton.write_h5ad(tmp)
        n, g = len(obs), len(var)
        with h5py.File(tmp, "a") as f:
            if "X" in f:
                del f["X"]
            dset = f.create_dataset("X", shape=(n, g), dtype="float32",
                                    chunks=(max(1, min(n, 1024)), max(1, min(g, 512))) if n and g else None)
            dset.attrs["encoding-type"] = "array"
            dset.attrs["encoding-version"] = "0.2.0"
            for r0, r1, g0, g1, blk in blocks:
                dset[r0:r1, g0:g1] = blk
    return path


def impute_to_store(model: FuseMap, sections: SectionSet, genes: Any = None, *, out: str | os.PathLike | None,
                    method: str = DEFAULT_METHOD, neighbors: int | None = None, chunk_size: int = 4096,
                    overwrite: bool = False, table_name: str = IMPUTED_TABLE) -> Path:
    """Impute into a new table annotating the sections' SpatialData elements, then save the store:
    a copy at ``out``, or (``out=None``) the store the sections were read from, where only that
    table is written.

    The imputed matrix is held in memory (cells x genes); stream it into an ``.h5ad`` instead
    (:func:`impute` with ``out=``) when it would not fit.
    """
    from .io.spatialdata import add_imputed_table, save_spatialdata

    src = sections.source
    if src is None:
        raise FuseMapInputError("sections: imputing into a store needs sections read from a SpatialData store.")
    if out is not None and Path(out).exists() and not overwrite:
        raise FileExistsError(f"out={str(out)!r} already exists; pass overwrite=True or choose another path.")
    result = impute(model, sections, genes, method=method, neighbors=neighbors, chunk_size=chunk_size)
    x = np.asarray(result.X)
    blocks, start = {}, 0
    for name, adata in sections.items():  # the result's rows follow the sections' order
        blocks[name] = x[start:start + adata.n_obs]
        start += adata.n_obs
    table = add_imputed_table(src.sdata, table_name, sections, blocks, genes=list(result.var_names), overwrite=True)
    table.var["measured_in"] = result.var["measured_in"].to_numpy()
    table.uns[IMPUTATION_UNS] = dict(result.uns[IMPUTATION_UNS])
    if out is None:
        return save_spatialdata(src.sdata, src.path, tables=[table_name], in_place=True)
    return save_spatialdata(src.sdata, out, tables=[table_name], overwrite=overwrite)
