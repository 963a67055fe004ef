"""Benchmark cases, built deterministically from the shared real data (``FUSEMAP_DATA_DIR``).

A case is a folder that every method reads the same way, whatever its environment:

- ``sections/<NN>_<name>.h5ad``: one file per section, raw counts in ``X``, the section's own panel,
  ``obs['section']``, ``obs['cell_type']``, ``obs['region']`` (harmonised labels), ``obsm['spatial']``;
- ``truth/<name>.h5ad``: measured counts of the genes masked from that section (imputation truth);
- ``case.json``: section order, shared genes, masked genes, reference and held-out sections.

Two cases:

``starmap_mosaic``
    The three STARmap mPFC sections, each keeping a different 100-gene subset of the 166-gene panel
    with 40 genes in common (``fusemap.datasets.starmap_mosaic(40, 100, seed=0)``); 66 measured
    genes per section are masked and serve as imputation truth. Labels as published (15 cell
    types, 4 layers). Held-out section for annotation transfer: BZ14.

``starmap_osmfish``
    Cross-technology: the three STARmap mPFC sections (full 166-gene panel) and the cortical cells
    of the osmFISH somatosensory cortex section (33 genes). The two panels share 11 genes. Labels
    are harmonised in :data:`CELL_CLASS` and :data:`LAYER` (coarse classes, because the two
    annotations split excitatory neurons differently and 11 shared genes cannot separate more).
    osmFISH cells outside the cortical layers (white matter, hippocampus, ventricle, internal
    capsule) are left out, and 1,500 of the 3,410 cortical cells are drawn (seed 0). Held-out section: osmFISH (labels transferred from STARmap).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from fusemap import datasets

CASES = ("starmap_mosaic", "starmap_osmfish")
OSMFISH_CELLS = 1500

# STARmap (Wang et al. 2018) and osmFISH (Codeluppi et al. 2018) cell types -> shared coarse class.
CELL_CLASS = {
    # STARmap
    "eL2/3": "Excitatory", "eL5-2": "Excitatory", "eL5-3": "Excitatory", "L5-1": "Excitatory",
    "eL6-1": "Excitatory", "eL6-2": "Excitatory",
    "Lhx6": "Inhibitory", "SST": "Inhibitory", "NPY": "Inhibitory", "Reln": "Inhibitory",
    "VIP": "Inhibitory",
    "Astro": "Astrocyte", "Oligo": "Oligodendrocyte", "Endo": "Endothelial", "Smc": "Mural",
    # osmFISH
    "Pyramidal L2-3": "Excitatory", "Pyramidal L2-3 L5": "Excitatory", "Pyramidal L3-4": "Excitatory",
    "pyramidal L4": "Excitatory", "Pyramidal L5": "Excitatory", "Pyramidal L6": "Excitatory",
    "Pyramidal Cpne5": "Excitatory", "Pyramidal Kcnip2": "Excitatory",
    "Inhibitory CP": "Inhibitory", "Inhibitory Vip": "Inhibitory", "Inhibitory Crhbp": "Inhibitory",
    "Inhibitory Pthlh": "Inhibitory", "Inhibitory Kcnip2": "Inhibitory",
    "Inhibitory IC": "Inhibitory", "Inhibitory Cnr1": "Inhibitory",
    "Astrocyte Mfge8": "Astrocyte", "Astrocyte Gfap": "Astrocyte",
    "Oligodendrocyte Mature": "Oligodendrocyte", "Oligodendrocyte MF": "Oligodendrocyte",
    "Oligodendrocyte NF": "Oligodendrocyte", "Oligodendrocyte COP": "Oligodendrocyte",
    "Oligodendrocyte Precursor cells": "OPC",
    "Endothelial": "Endothelial", "Endothelial 1": "Endothelial",
    "Pericytes": "Mural", "Vascular Smooth Muscle": "Mural",
    "Microglia": "Immune", "Perivascular Macrophages": "Immune",
    "Ependymal": "Other", "C. Plexus": "Other", "Hippocampus": "Other",
}
# cortical layers; osmFISH regions not listed here are outside the cortex and left out
LAYER = {
    "L1": "L1", "L2/3": "L2/3", "L5": "L5", "L6": "L6",
    "Pia Layer 1": "L1", "Layer 2-3 lateral": "L2/3", "Layer 2-3 medial": "L2/3",
    "Layer 3-4": "L4", "Layer 4": "L4", "Layer 5": "L5", "Layer 6": "L6",
}


@dataclass
class CaseInfo:
    """What every method and the scorer need to know about a case (``case.json``)."""
    name: str
    sections: list[str]
    files: list[str]
    shared_genes: list[str]
    masked_genes: dict[str, list[str]] = field(default_factory=dict)
    reference: list[str] = field(default_factory=list)
    held_out: str = ""
    labels: dict[str, str] = field(default_factory=lambda: {"cell": "cell_type", "spatial": "region"})
    technology: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def read(cls, case_dir: str | os.PathLike) -> "CaseInfo":
        return cls(**json.loads((Path(case_dir) / "case.json").read_text()))


def _clean(a: ad.AnnData, name: str, technology: str) -> ad.AnnData:
    """Keep counts, the three label/section columns and coordinates; unique cell names."""
    b = ad.AnnData(sp.csr_matrix(a.X, dtype=np.float32),
                   obs=pd.DataFrame(index=[f"{name}:{c}" for c in a.obs_names]),
                   var=pd.DataFrame(index=[str(g) for g in a.var_names]))
    b.obs["section"] = pd.Categorical([name] * a.n_obs)
    for key in ("cell_type", "region"):
        b.obs[key] = pd.Categorical(a.obs[key].astype(str).to_numpy())
    b.obsm["spatial"] = np.asarray(a.obsm["spatial"], dtype=np.float64)[:, :2]
    b.uns["technology"] = technology
    return b


def _section_name(a: ad.AnnData, default: str) -> str:
    s = a.obs["section"].astype(str).unique()
    return str(s[0]) if len(s) == 1 else default


def build_starmap_mosaic() -> tuple[list[ad.AnnData], list[ad.AnnData], CaseInfo]:
    masked, full = datasets.starmap_mosaic(n_shared=40, n_per_section=100, seed=0)
    names = [n.replace("starmap_mpfc_", "") for n in datasets.STARMAP_MPFC]
    secs, truth, masked_genes = [], [], {}
    for n, m, f in zip(names, masked, full):
        secs.append(_clean(m, n, "STARmap"))
        genes = list(m.uns["masked_genes"])
        masked_genes[n] = genes
        truth.append(_clean(f[:, genes], n, "STARmap"))
    info = CaseInfo(
        name="starmap_mosaic", sections=names, files=[], shared_genes=list(masked[0].uns["shared_genes"]),
        masked_genes=masked_genes, reference=names[:-1], held_out=names[-1],
        technology={n: "STARmap" for n in names},
        description="STARmap mPFC BZ5/BZ9/BZ14, 100 of 166 genes per section (40 shared), "
                    "15 cell types, 4 layers; masked genes are imputation truth",
    )
    return secs, truth, info


def build_starmap_osmfish() -> tuple[list[ad.AnnData], list[ad.AnnData], CaseInfo]:
    names = [n.replace("starmap_mpfc_", "") for n in datasets.STARMAP_MPFC]
    secs = []
    for n, a in zip(names, datasets.starmap_mpfc()):
        b = _clean(a, n, "STARmap")
        secs.append(b)
    osm = datasets.load("osmfish_sscortex")
    osm = osm[osm.obs["region"].astype(str).isin(LAYER)].copy()
    # 1,500 of its 3,410 cortical cells (fixed seed): keeps the full run practical on 2 CPU cores
    keep = np.sort(np.random.default_rng(0).choice(osm.n_obs, min(OSMFISH_CELLS, osm.n_obs), replace=False))
    osm = osm[keep].copy()
    # spell shared genes as STARmap does (case-insensitive match)
    star_genes = {g.lower(): g for g in secs[0].var_names}
    osm.var_names = [star_genes.get(g.lower(), g) for g in osm.var_names]
    secs.append(_clean(osm, "osmFISH", "osmFISH"))
    for b in secs:
        ct = b.obs["cell_type"].astype(str)
        unknown = sorted(set(ct) - set(CELL_CLASS))
        if unknown:
            raise ValueError(f"cell types without a harmonised class: {unknown}; add them to CELL_CLASS")
        b.obs["cell_type_original"] = b.obs["cell_type"]
        b.obs["cell_type"] = pd.Categorical(ct.map(CELL_CLASS).to_numpy())
        b.obs["region_original"] = b.obs["region"]
        b.obs["region"] = pd.Categorical(b.obs["region"].astype(str).map(LAYER).to_numpy())
    shared = [g for g in secs[0].var_names if g in set(secs[-1].var_names)]
    info = CaseInfo(
        name="starmap_osmfish", sections=names + ["osmFISH"], files=[], shared_genes=shared,
        reference=names, held_out="osmFISH",
        technology={**{n: "STARmap" for n in names}, "osmFISH": "osmFISH"},
        description=f"STARmap mPFC BZ5/BZ9/BZ14 (166 genes) + osmFISH SScortex cortical layers "
                    f"(33 genes); {len(shared)} shared genes; harmonised coarse cell classes and layers",
    )
    return secs, [], info


XENIUM_CAPTURE = (0.9, 0.5, 0.3)
XENIUM_MASKED_PER_SECTION = 20
XENIUM_NICHES = 8


def niche_labels(xy: np.ndarray, cell_type: np.ndarray, n_niches: int, k: int = 20, seed: int = 0) -> np.ndarray:
    """Tissue-niche label of each cell: k-means (``n_niches``) of the cell-type composition of its
    ``k`` nearest cells in space (itself included). The rule that gives a region label to a tissue
    whose source has none; computed on the whole tissue before it is split."""
    from scipy.spatial import cKDTree
    from sklearn.cluster import KMeans

    types, codes = np.unique(cell_type, return_inverse=True)
    _, idx = cKDTree(xy).query(xy, k=k)
    comp = np.zeros((len(xy), len(types)))
    np.add.at(comp, (np.repeat(np.arange(len(xy)), k), codes[idx].ravel()), 1.0 / k)
    lab = KMeans(n_niches, n_init=10, random_state=seed).fit_predict(comp)
    # name niches by size so the labels do not depend on k-means' numbering
    order = np.argsort(-np.bincount(lab, minlength=n_niches), kind="stable")
    rank = np.empty(n_niches, dtype=int)
    rank[order] = np.arange(n_niches)
    return np.asarray([f"N{r + 1}" for r in rank[lab]])


def build_xenium_capture() -> tuple[list[ad.AnnData], list[ad.AnnData], CaseInfo]:
    """Three pseudo-sections of one Xenium tissue that differ only in detection depth.

    The 5,000 cells of ``xenium_mousebrain_ctxhp`` (cortex + hippocampus, 248 genes) are split at
    random into three interleaved pseudo-sections (seed 0), whose counts are binomially thinned to
    90 %, 50 % and 30 % of the molecules. Every cell type and niche exists in every section, so any
    cluster confined to one section is a technical artefact. Cell types: the source's Louvain
    clusters (24). Regions: :func:`niche_labels` (8 niches of cell-type composition, whole
    tissue). Each section masks a different 20 genes (never masked in two sections) as imputation
    truth; held-out section for annotation transfer: the 30 % one.
    """
    a = datasets.load("xenium_mousebrain_ctxhp")
    rng = np.random.default_rng(0)
    xy = np.asarray(a.obsm["spatial"], dtype=np.float64)[:, :2]
    ct = a.obs["louvain_cluster"].astype(str).to_numpy()
    region = niche_labels(xy, ct, XENIUM_NICHES)
    part = rng.permutation(a.n_obs) % len(XENIUM_CAPTURE)
    genes = np.asarray([str(g) for g in a.var_names])
    masked_all = rng.choice(len(genes), XENIUM_MASKED_PER_SECTION * len(XENIUM_CAPTURE), replace=False)
    names = [f"capture{int(round(c * 100))}" for c in XENIUM_CAPTURE]
    secs, truth, masked_genes = [], [], {}
    x = sp.csr_matrix(a.X).astype(np.int64)
    for i, (n, cap) in enumerate(zip(names, XENIUM_CAPTURE)):
        cells = np.flatnonzero(part == i)
        xi = x[cells].tocsr()
        xi.data = rng.binomial(xi.data, cap)
        xi.eliminate_zeros()
        b = ad.AnnData(xi.astype(np.float32), obs=pd.DataFrame(index=a.obs_names[cells]),
                       var=pd.DataFrame(index=genes))
        b.obs["cell_type"], b.obs["region"] = ct[cells], region[cells]
        b.obsm["spatial"] = xy[cells]
        b = b[np.asarray(b.X.sum(1)).ravel() > 0].copy()  # a thinned cell may lose every molecule
        mask = genes[np.sort(masked_all[i * XENIUM_MASKED_PER_SECTION:(i + 1) * XENIUM_MASKED_PER_SECTION])]
        masked_genes[n] = list(mask)
        truth.append(_clean(b[:, list(mask)], n, "Xenium"))
        secs.append(_clean(b[:, [g for g in genes if g not in set(mask)]], n, "Xenium"))
    shared = [g for g in genes if g not in set(genes[masked_all])]
    info = CaseInfo(
        name="xenium_capture", sections=names, files=[], shared_genes=shared, masked_genes=masked_genes,
        reference=names[:-1], held_out=names[-1], technology={n: "Xenium (thinned)" for n in names},
        description="Xenium mouse brain (cortex + hippocampus), 5,000 cells split at random into 3 "
                    "pseudo-sections thinned to 90/50/30 % of molecules; 248 genes, 20 masked per section; "
                    "24 Louvain cell types, 8 composition niches",
    )
    return secs, truth, info


BUILDERS = {"starmap_mosaic": build_starmap_mosaic, "starmap_osmfish": build_starmap_osmfish,
            "xenium_capture": build_xenium_capture}


def subsample(sections: list[ad.AnnData], max_cells: int, seed: int = 0) -> list[ad.AnnData]:
    """At most ``max_cells`` cells per section, drawn at random with a fixed seed (for quick runs)."""
    rng = np.random.default_rng(seed)
    out = []
    for a in sections:
        if a.n_obs > max_cells:
            keep = np.sort(rng.choice(a.n_obs, max_cells, replace=False))
            a = a[keep].copy()
        out.append(a)
    return out


def case_label(name: str, max_cells: int | None = None) -> str:
    """A cut case is a different case: ``starmap_mosaic_max300`` never mixes with the full one."""
    return f"{name}_max{max_cells}" if max_cells else name


def build_case(name: str, out_root: str | os.PathLike, max_cells: int | None = None) -> Path:
    """Write case ``name`` under ``out_root/<case_label>`` (rebuilt every time: it takes seconds)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown case {name!r}; choose from {list(BUILDERS)}")
    secs, truth, info = BUILDERS[name]()
    if max_cells:
        secs = subsample(secs, max_cells)
        truth = [t[s.obs_names].copy() for t, s in zip(truth, secs)] if truth else []
        info.name = case_label(name, max_cells)
        info.description += f" — CUT: at most {max_cells} cells per section (seed-0 sample)"
    case_dir = Path(out_root) / info.name
    tmp = case_dir.with_name(case_dir.name + ".tmp")
    if tmp.exists():
        import shutil
        shutil.rmtree(tmp)
    (tmp / "sections").mkdir(parents=True)
    for i, (n, a) in enumerate(zip(info.sections, secs)):
        fname = f"{i:02d}_{n}.h5ad"
        a.write_h5ad(tmp / "sections" / fname)
        info.files.append(f"sections/{fname}")
    if truth:
        (tmp / "truth").mkdir()
        for n, t in zip(info.sections, truth):
            t.write_h5ad(tmp / "truth" / f"{n}.h5ad")
    info.write(tmp / "case.json")
    if case_dir.exists():
        import shutil
        shutil.rmtree(case_dir)
    tmp.rename(case_dir)
    return case_dir
