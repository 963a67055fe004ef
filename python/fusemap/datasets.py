"""Data for tests, demos and tutorials: a simulator of multi-section data with different panels,
mosaic panels cut from full panels (masked genes become imputation truth), and loaders for the
shared real data folder (``FUSEMAP_DATA_DIR``, default ``../shared/data``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._constants import DATA_DIR_ENV, DEFAULT_DATA_DIR, SECTION_COLUMN, SPATIAL_KEY

STARMAP_MPFC = ("starmap_mpfc_BZ5", "starmap_mpfc_BZ9", "starmap_mpfc_BZ14")


# -- simulation -------------------------------------------------------------------------------------
def simulate(n_sections: int = 3, n_cells: int | Sequence[int] = 1000, n_genes: int = 150,
             n_cell_types: int = 8, n_regions: int = 4, panel_size: int | None = None,
             n_shared: int | None = None, section_effect: float = 0.5, library_size: float = 200.0,
             dispersion: float = 5.0, missing_types: dict[int, Sequence[int]] | None = None,
             seed: int = 0) -> list[ad.AnnData]:
    """Simulate tissue sections with layered regions, region-dependent cell types and section effects.

    Each section is a 1000 x 1000 µm square of cells; regions are wavy horizontal layers
    (``obs['region']``), each favouring a few cell types (``obs['cell_type']``). Counts are negative
    binomial around type profiles (each type has its own marker genes) times a per-section,
    per-gene capture efficiency (log-normal with sd ``section_effect``) and a per-section library
    size. With ``panel_size``, each section keeps a different panel: ``n_shared`` genes measured
    everywhere plus section-specific genes (see :func:`mosaic_panels`); the full matrices are in
    ``simulate(..., panel_size=None)`` with the same seed. ``missing_types`` maps a section index to
    cell types absent from it (their cells are given another type), to test unbalanced composition.

    Parameters
    ----------
    n_sections
        Number of sections.
    n_cells
        Cells per section: one number for all, or one per section.
    n_genes
        Genes of the common panel (``Gene0000`` ...).
    n_cell_types, n_regions
        Cell types (``T0`` ...) and layered regions (``R0`` ...).
    panel_size
        Genes each section keeps (different panels); ``None`` keeps all genes everywhere.
    n_shared
        With ``panel_size``: genes kept in every section (default ``panel_size // 3``).
    section_effect
        Standard deviation of the log capture efficiency per section and gene: the batch effect.
    library_size
        Mean counts per cell (before per-section and per-cell variation).
    dispersion
        Negative binomial dispersion (larger: closer to Poisson).
    missing_types
        Section index -> cell type indices absent from that section.
    seed
        Seed of everything drawn.

    Returns
    -------
    list of anndata.AnnData
        One per section (``sim_section_0`` ...): sparse float32 counts in ``X``,
        ``obsm['spatial']``, ``obs['cell_type']``, ``obs['region']``, ``obs['section']``.

    Examples
    --------
    >>> from fusemap import datasets
    >>> sections = datasets.simulate(n_sections=3, n_cells=500, panel_size=100, n_shared=40)
    >>> [a.shape for a in sections]
    [(500, 100), (500, 100), (500, 100)]
    """
    rng = np.random.default_rng(seed)
    sizes = [n_cells] * n_sections if np.isscalar(n_cells) else list(n_cells)
    if len(sizes) != n_sections:
        raise ValueError(f"n_cells has {len(sizes)} entries for n_sections={n_sections}")
    genes = [f"Gene{i:04d}" for i in range(n_genes)]
    types = [f"T{i}" for i in range(n_cell_types)]
    regions = [f"R{i}" for i in range(n_regions)]
    # type profiles: shared baseline plus markers
    base = rng.lognormal(mean=-0.5, sigma=1.0, size=n_genes)
    profiles = np.tile(base, (n_cell_types, 1))
    n_markers = max(3, n_genes // (2 * n_cell_types))
    for t in range(n_cell_types):
        markers = rng.choice(n_genes, n_markers, replace=False)
        profiles[t, markers] *= rng.uniform(4, 10, n_markers)
    profiles /= profiles.sum(1, keepdims=True)
    # region composition: each region prefers ~2 types
    comp = np.full((n_regions, n_cell_types), 0.2)
    for r in range(n_regions):
        comp[r, rng.choice(n_cell_types, min(2, n_cell_types), replace=False)] += 3.0
        comp[r, r % n_cell_types] += 2.0
    comp /= comp.sum(1, keepdims=True)
    # a small niche effect: genes that rise in each region whatever the cell type
    niche = np.ones((n_regions, n_genes))
    for r in range(n_regions):
        niche[r, rng.choice(n_genes, max(2, n_genes // 30), replace=False)] = 2.0

    out = []
    for v, n in enumerate(sizes):
        xy = rng.uniform(0, 1000, size=(n, 2))
        phase = rng.uniform(0, 2 * np.pi)
        depth = xy[:, 1] + 40 * np.sin(xy[:, 0] / 150 + phase)
        reg = np.clip((depth / (1000 / n_regions)).astype(int), 0, n_regions - 1)
        ct = np.array([rng.choice(n_cell_types, p=comp[r]) for r in reg])
        if missing_types and v in missing_types:
            absent = np.asarray(missing_types[v])
            present = np.setdiff1d(np.arange(n_cell_types), absent)
            hit = np.isin(ct, absent)
            ct[hit] = rng.choice(present, int(hit.sum()))
        efficiency = rng.lognormal(0.0, section_effect, size=n_genes)
        lib = library_size * rng.uniform(0.5, 2.0) * rng.lognormal(0, 0.3, size=n)
        counts = _nb_counts(rng, profiles, niche, efficiency, ct, reg, lib, dispersion)
        name = f"sim_section_{v}"
        a = ad.AnnData(
            counts,
            obs=pd.DataFrame({
                "cell_type": pd.Categorical([types[i] for i in ct], categories=types),
                "region": pd.Categorical([regions[i] for i in reg], categories=regions),
                SECTION_COLUMN: name,
            }, index=[f"{name}_cell{i}" for i in range(n)]),
            var=pd.DataFrame(index=genes),
        )
        a.obsm[SPATIAL_KEY] = xy.astype(np.float32)
        a.uns["simulation"] = {"seed": seed, "section_effect": section_effect, "section": v}
        out.append(a)
    if panel_size is not None:
        out = mosaic_panels(out, n_shared=n_shared if n_shared is not None else panel_size // 3,
                            n_per_section=panel_size, seed=seed)
    return out


def _nb_counts(rng, profiles, niche, efficiency, ct, reg, lib, dispersion, rows: int = 20_000) -> sp.csr_matrix:
    """Negative binomial counts as CSR float32, drawn a block of cells at a time.

    Blocks draw in the same order as one whole-matrix call, so the result does not depend on
    ``rows``; only one block's dense means exist at a time (a million cells fit in memory).
    """
    blocks = []
    for s in range(0, len(ct), rows):
        e = min(s + rows, len(ct))
        mu = profiles[ct[s:e]] * niche[reg[s:e]] * efficiency[None, :]
        mu = mu / mu.sum(1, keepdims=True) * lib[s:e, None]
        blocks.append(sp.csr_matrix(rng.negative_binomial(dispersion, dispersion / (dispersion + mu))
                                    .astype(np.float32)))
    if not blocks:
        return sp.csr_matrix((0, profiles.shape[1]), dtype=np.float32)
    return sp.vstack(blocks, format="csr").astype(np.float32)


def mosaic_panels(sections: Sequence[ad.AnnData], n_shared: int, n_per_section: int,
                  seed: int = 0) -> list[ad.AnnData]:
    """Give each section a different gene subset of a common panel.

    ``n_shared`` genes (random, fixed by ``seed``) are kept in every section; the remaining genes are
    laid on a circle and section ``i`` keeps ``n_per_section - n_shared`` consecutive ones starting
    at ``i/V`` of the way round, so consecutive sections overlap and every gene is measured
    somewhere when ``V * (n_per_section - n_shared) >= n_genes - n_shared``. The genes each section
    lost are listed in ``uns['masked_genes']``; they were measured, so they are ground truth.

    Parameters
    ----------
    sections
        Sections measured with one panel (only genes common to all are used).
    n_shared
        Genes kept in every section.
    n_per_section
        Genes each section keeps (shared ones included).
    seed
        Seed of the choice of shared genes and of the circle's order.

    Returns
    -------
    list of anndata.AnnData
        Copies of the sections restricted to their panels, with ``uns['masked_genes']`` and
        ``uns['shared_genes']``.

    Raises
    ------
    ValueError
        Unless 0 <= ``n_shared`` <= ``n_per_section`` <= the genes common to all sections.

    Examples
    --------
    >>> full = datasets.simulate(n_sections=3, n_cells=200)
    >>> masked = datasets.mosaic_panels(full, n_shared=40, n_per_section=100)
    >>> len(masked[0].uns["masked_genes"])
    50
    """
    common = list(sections[0].var_names)
    for a in sections[1:]:
        common = [g for g in common if g in set(a.var_names)]
    if not (0 <= n_shared <= n_per_section <= len(common)):
        raise ValueError(
            f"need 0 <= n_shared ({n_shared}) <= n_per_section ({n_per_section}) <= genes common to "
            f"all sections ({len(common)})"
        )
    rng = np.random.default_rng(seed)
    perm = [common[i] for i in rng.permutation(len(common))]
    shared, rest = perm[:n_shared], perm[n_shared:]
    extra = n_per_section - n_shared
    out = []
    V = len(sections)
    for i, a in enumerate(sections):
        start = int(round(i * len(rest) / V))
        own = [rest[(start + j) % len(rest)] for j in range(extra)] if rest else []
        keep = set(shared) | set(own)
        cols = [g for g in a.var_names if g in keep]
        b = a[:, cols].copy()
        b.uns["masked_genes"] = [g for g in common if g not in keep]
        b.uns["shared_genes"] = list(shared)
        out.append(b)
    return out


# -- shared real data -------------------------------------------------------------------------------
def data_dir() -> Path:
    """The shared data folder: ``$FUSEMAP_DATA_DIR``, else ``../shared/data`` (relative to the
    working directory).

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> datasets.data_dir()  # doctest: +SKIP
    PosixPath('../shared/data')
    """
    return Path(os.environ.get(DATA_DIR_ENV, DEFAULT_DATA_DIR))


def has_data(names: Sequence[str] = STARMAP_MPFC) -> bool:
    """Whether the shared data folder holds ``<name>.h5ad`` for every name (tests and demos check it).

    Parameters
    ----------
    names
        File stems; default: the three STARmap mPFC sections.

    Returns
    -------
    bool

    Examples
    --------
    >>> sections = datasets.starmap_mpfc() if datasets.has_data() else datasets.simulate()  # doctest: +SKIP
    """
    d = data_dir()
    return all((d / f"{n}.h5ad").exists() for n in names)


def load(name: str) -> ad.AnnData:
    """Read ``<name>.h5ad`` from the shared data folder.

    Parameters
    ----------
    name
        File stem, e.g. ``'starmap_mpfc_BZ5'``.

    Returns
    -------
    anndata.AnnData

    Raises
    ------
    FileNotFoundError
        When the file is not there (the message says how to point to the data folder).

    Examples
    --------
    >>> bz5 = datasets.load("starmap_mpfc_BZ5")  # doctest: +SKIP
    """
    path = data_dir() / f"{name}.h5ad"
    if not path.exists():
        raise FileNotFoundError(
            f"{str(path)!r} not found. Set {DATA_DIR_ENV} to the folder holding the shared data "
            f"(default {DEFAULT_DATA_DIR!r} relative to the working directory)."
        )
    return ad.read_h5ad(path)


def starmap_mpfc() -> list[ad.AnnData]:
    """The three STARmap mPFC sections of the shared data folder (Wang et al., Science 2018).

    BZ5, BZ9 and BZ14, about 1,050 cells each, measured with the same 166-gene panel, with the
    authors' cell types and cortical layers in ``obs``.

    Returns
    -------
    list of anndata.AnnData

    Raises
    ------
    FileNotFoundError
        When the data folder does not hold them.

    Examples
    --------
    >>> bz5, bz9, bz14 = datasets.starmap_mpfc()  # doctest: +SKIP
    """
    return [load(n) for n in STARMAP_MPFC]


def starmap_mosaic(n_shared: int = 40, n_per_section: int = 100, seed: int = 0
                   ) -> tuple[list[ad.AnnData], list[ad.AnnData]]:
    """STARmap mPFC with a different gene panel per section, as if measured by different technologies.

    The genes a section loses were really measured, so they are ground truth for imputation (the
    tutorials use this).

    Parameters
    ----------
    n_shared
        Genes kept in every section.
    n_per_section
        Genes each section keeps.
    seed
        Seed of the panels (see :func:`mosaic_panels`).

    Returns
    -------
    masked : list of anndata.AnnData
        The sections with their own panels (``uns['masked_genes']`` lists what each lost).
    full : list of anndata.AnnData
        The sections with all 166 genes.

    Examples
    --------
    >>> masked, full = datasets.starmap_mosaic()  # doctest: +SKIP
    >>> model = fusemap.integrate(masked)  # doctest: +SKIP
    """
    full = starmap_mpfc()
    return mosaic_panels(full, n_shared, n_per_section, seed), full


def xenium_capture(capture: Sequence[float] = (0.9, 0.5, 0.3), n_cells: int | None = None, seed: int = 0
                   ) -> list[ad.AnnData]:
    """One Xenium section (``xenium_mousebrain_ctxhp``) split at random into pseudo-sections, each
    thinned to a share of its molecules, as if captured by protocols of different sensitivity.

    Every cell type is in every pseudo-section in about the same proportion, so what differs is
    detection depth alone (the novelty test and tutorial 5 hold cell types out of some of them).

    Parameters
    ----------
    capture
        Share of the molecules each pseudo-section keeps (binomial thinning of the counts).
    n_cells
        Cells per pseudo-section (a random subset; default all of its share).
    seed
        Seed of the split, the subsets and the thinning.

    Returns
    -------
    list of anndata.AnnData
        Counts, ``obs['cell_type']`` (the source's Louvain clusters), ``obs['section']``
        (``capture90`` ...) and 2-D ``obsm['spatial']``.

    Examples
    --------
    >>> sections = datasets.xenium_capture(n_cells=1200)  # doctest: +SKIP
    """
    a = load("xenium_mousebrain_ctxhp")
    rng = np.random.default_rng(seed)
    part = rng.permutation(a.n_obs) % len(capture)
    x = sp.csr_matrix(a.X).astype(np.int64)
    out = []
    for i, cap in enumerate(capture):
        cells = np.sort(rng.permutation(np.flatnonzero(part == i))[:n_cells])
        xi = x[cells].tocsr()
        xi.data = rng.binomial(xi.data, cap)
        xi.eliminate_zeros()
        b = ad.AnnData(xi.astype(np.float32), obs=pd.DataFrame(index=a.obs_names[cells]),
                       var=pd.DataFrame(index=a.var_names.astype(str)))
        b.obs["cell_type"] = a.obs["louvain_cluster"].astype(str).to_numpy()[cells]
        b.obs[SECTION_COLUMN] = f"capture{int(round(cap * 100))}"
        b.obsm[SPATIAL_KEY] = np.asarray(a.obsm["spatial"], dtype=np.float64)[cells, :2]
        out.append(b)
    return out


def tiled_atlas(n_cells: int = 100_000, n_sections: int = 8, source: str = "xenium",
                capture: tuple[float, float] = (1.0, 0.3), gene_sd: float = 0.5,
                shared_fraction: float = 0.4, panel_fraction: float = 0.7, seed: int = 0) -> list[ad.AnnData]:
    """An atlas of any size built from real sections: tiled copies, each section its own technology.

    Real tissue repeated side by side, so the biology (cell types, their expression and layout) is
    real at every size, while each section differs as sections of different technologies do:

    - a capture rate (evenly spaced over ``capture``, in a random order over the sections) and a
      gene-specific detection factor (log-normal, s.d. ``gene_sd``): every count is thinned
      binomially with probability ``min(1, rate * factor)``, so expression shifts per gene and section;
    - a gene panel: ``shared_fraction`` of the source genes measured everywhere, plus consecutive
      runs of the others up to ``panel_fraction`` per section (:func:`mosaic_panels`; what a section
      did not measure is listed in ``uns['masked_genes']``);
    - every tile is its own binomial draw and its own random rotation, so no two copies are equal.

    Tiles lie on a grid whose spacing exceeds a tile's diagonal, so rotated tiles never overlap and
    the spatial graph joins them only at their borders.

    Parameters
    ----------
    n_cells
        Cells of the whole atlas (split evenly over the sections).
    n_sections
        Sections of the atlas.
    source
        ``'xenium'`` (``xenium_mousebrain_ctxhp``: 5,000 cells, 248 genes, cortex and hippocampus,
        ``obs['cell_type']`` from the source's Louvain clusters) or ``'starmap'`` (the three STARmap
        mPFC sections in turn: 166 genes, ``cell_type`` and cortical layer ``region``).
    capture
        Highest and lowest capture rate over the sections.
    gene_sd
        Standard deviation of the log of the per-gene detection factors.
    shared_fraction, panel_fraction
        Share of the source genes measured by every section, and by each section.
    seed
        Seed of everything random.

    Returns
    -------
    list of anndata.AnnData
        Counts (CSR float32), ``obs['section']`` (``atlas00`` ...), ``obs['tile']``, the labels of the
        source and 2-D ``obsm['spatial']``.

    Examples
    --------
    >>> sections = datasets.tiled_atlas(n_cells=20_000, n_sections=4)  # doctest: +SKIP
    """
    if source == "xenium":
        a = load("xenium_mousebrain_ctxhp")
        srcs = [(a, {"cell_type": a.obs["louvain_cluster"].astype(str).to_numpy()})]
    elif source == "starmap":
        srcs = [(a, {k: a.obs[k].astype(str).to_numpy() for k in ("cell_type", "region")}) for a in starmap_mpfc()]
    else:
        raise ValueError(f"source={source!r} is not known; use 'xenium' or 'starmap'.")
    if n_sections < 1 or n_cells < n_sections:
        raise ValueError(f"need n_sections >= 1 and n_cells >= n_sections (got {n_cells}, {n_sections}).")
    genes = list(srcs[0][0].var_names)
    for s, _ in srcs[1:]:
        genes = [g for g in genes if g in set(s.var_names)]
    rng = np.random.default_rng(seed)
    rates = np.linspace(capture[0], capture[1], n_sections)[rng.permutation(n_sections)]
    sizes = np.full(n_sections, n_cells // n_sections)
    sizes[: n_cells % n_sections] += 1
    counts = [(sp.csr_matrix(s[:, genes].X).astype(np.int64), np.asarray(s.obsm[SPATIAL_KEY], float)[:, :2], lab)
              for s, lab in srcs]
    out, tile_no = [], 0
    for i, (rate, size) in enumerate(zip(rates, sizes)):
        p_gene = np.minimum(1.0, rate * np.exp(rng.normal(0.0, gene_sd, len(genes))))
        xs, xy, labels, tiles = [], [], {}, []
        n_tiles = int(np.ceil(size / min(len(c[1]) for c in counts)))
        cols = int(np.ceil(np.sqrt(n_tiles)))
        left, t = int(size), 0
        while left > 0:
            x, pos, lab = counts[tile_no % len(counts)]
            tile_no += 1
            take = np.sort(rng.choice(len(pos), min(left, len(pos)), replace=False))
            xt = x[take].tocsr()
            xt.data = rng.binomial(xt.data, p_gene[xt.indices])
            xt.eliminate_zeros()
            centre = (pos.min(0) + pos.max(0)) / 2
            extent = float(np.linalg.norm(pos.max(0) - pos.min(0))) * 1.05  # any rotation fits
            angle = rng.uniform(0, 2 * np.pi)
            rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            xy.append((pos[take] - centre) @ rot.T + extent * np.array([t % cols, t // cols]))
            xs.append(xt.astype(np.float32))
            for k, v in lab.items():
                labels.setdefault(k, []).append(v[take])
            tiles.append(np.full(len(take), t))
            left -= len(take)
            t += 1
        name = f"atlas{i:02d}"
        b = ad.AnnData(sp.vstack(xs, format="csr"), var=pd.DataFrame(index=pd.Index(genes, dtype=str)))
        b.obs_names = [f"{name}_{j}" for j in range(b.n_obs)]
        for k, v in labels.items():
            b.obs[k] = np.concatenate(v)
        b.obs["tile"] = np.concatenate(tiles)
        b.obs[SECTION_COLUMN] = name
        b.obsm[SPATIAL_KEY] = np.concatenate(xy)
        b.uns["capture_rate"] = float(rate)
        out.append(b)
    n_shared = int(round(shared_fraction * len(genes)))
    per = max(n_shared, int(round(panel_fraction * len(genes))))
    return mosaic_panels(out, n_shared, per, seed)
