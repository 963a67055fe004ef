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

from .methods._common import log_normalise

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
    role: str = "development"  # or "report": never used to choose a default
    no_coordinates: list[str] = field(default_factory=list)  # sections without coordinates

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
    if "spatial" in a.obsm:  # a dissociated single-cell reference has none
        b.obsm["spatial"] = np.asarray(a.obsm["spatial"], dtype=np.float64)[:, :2]
    b.uns["technology"] = technology
    return b


def _spell_as(a: ad.AnnData, reference_names) -> ad.AnnData:
    """Spell the genes shared with a reference panel as the reference does (case-insensitive)."""
    ref = {g.lower(): g for g in reference_names}
    a.var_names = [ref.get(g.lower(), g) for g in a.var_names]
    return a


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
    osm = _spell_as(osm[keep].copy(), secs[0].var_names)
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
    return joint_niche_labels([(xy, cell_type)], n_niches, k, seed)[0]


def joint_niche_labels(tissues: list[tuple[np.ndarray, np.ndarray]], n_niches: int, k: int = 20,
                       seed: int = 0) -> list[np.ndarray]:
    """:func:`niche_labels` for several tissues at once: one k-means over the pooled composition
    vectors, so a niche means the same cell-type mixture in every tissue (the cell types must be
    harmonised first). Each tissue's neighbours are its own cells."""
    from scipy.spatial import cKDTree
    from sklearn.cluster import KMeans

    types = np.unique(np.concatenate([np.asarray(ct) for _, ct in tissues]))
    comps = []
    for xy, ct in tissues:
        codes = np.searchsorted(types, np.asarray(ct))
        _, idx = cKDTree(xy).query(xy, k=k)
        comp = np.zeros((len(xy), len(types)))
        np.add.at(comp, (np.repeat(np.arange(len(xy)), k), codes[idx].ravel()), 1.0 / k)
        comps.append(comp)
    lab = KMeans(n_niches, n_init=10, random_state=seed).fit_predict(np.concatenate(comps))
    # name niches by size so the labels do not depend on k-means' numbering
    order = np.argsort(-np.bincount(lab, minlength=n_niches), kind="stable")
    rank = np.empty(n_niches, dtype=int)
    rank[order] = np.arange(n_niches)
    named = np.asarray([f"N{r + 1}" for r in rank[lab]])
    return np.split(named, np.cumsum([len(c) for c in comps])[:-1])


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


# Coarse classes for sources that give only clusters (Xenium, Slide-seqV2 Louvain clusters): each
# class's canonical markers, as in the mouse brain atlases; a dataset uses the markers it measured.
CLASS_MARKERS = {
    "Excitatory": ["Slc17a7", "Slc17a6", "Neurod6", "Satb2", "Nrgn", "Neurod1", "Prox1", "Tbr1", "Cux2",
                   "Rorb", "Fezf2"],
    "Inhibitory": ["Gad1", "Gad2", "Slc32a1", "Sst", "Pvalb", "Vip", "Lamp5", "Npy", "Cnr1"],
    "Astrocyte": ["Gfap", "Aqp4", "Slc1a3", "Slc1a2", "Gja1", "Aldoc", "Ntsr2", "Slc39a12", "Acsbg1",
                  "Slc6a11", "Gpc5"],
    "Oligodendrocyte": ["Mbp", "Plp1", "Mog", "Mobp", "Opalin", "Cldn11", "Gjc3"],
    "OPC": ["Pdgfra", "Cspg4", "Olig1"],
    "Immune": ["Cx3cr1", "C1qa", "C1qb", "P2ry12", "Csf1r", "Tmem119", "Hexb", "Mrc1", "Trem2", "Siglech",
               "Laptm5", "Cd68", "Spi1"],
    "Endothelial": ["Cldn5", "Flt1", "Pecam1", "Ly6a", "Ly6c1", "Slco1a4", "Emcn", "Kdr", "Cd93"],
    "Mural": ["Acta2", "Pdgfrb", "Vtn", "Kcnj8", "Myh11", "Rgs5", "Carmn"],
    "Other": ["Ttr", "Foxj1", "Kl", "Folr1"],  # choroid plexus and ependyma, as "Other" in CELL_CLASS
}

# Cell types of the Drop-seq hippocampus reference (RCTD's) -> the same coarse classes.
HIPPOCAMPUS_REF_CLASS = {
    "CA1": "Excitatory", "CA3": "Excitatory", "Denate": "Excitatory", "Neuron.Slc17a6": "Excitatory",
    "Entorihinal": "Excitatory", "Cajal_Retzius": "Excitatory", "Interneuron": "Inhibitory",
    "Astrocyte": "Astrocyte", "Oligodendrocyte": "Oligodendrocyte", "Polydendrocyte": "OPC",
    "Microglia_Macrophages": "Immune", "Endothelial_Stalk": "Endothelial", "Endothelial_Tip": "Endothelial",
    "Mural": "Mural", "Choroid": "Other", "Ependymal": "Other", "Neurogenesis": "Other",
}


def classes_by_markers(a: ad.AnnData, cluster_key: str) -> dict[str, str]:
    """Coarse class of each source cluster, by one rule for every dataset: the cluster means of
    log-normalised expression are z-scored over clusters, gene by gene; a class scores the mean z of
    its markers the dataset measured (:data:`CLASS_MARKERS`); each cluster takes its best class.
    A class with no measured marker cannot be called in that dataset."""
    x = log_normalise(a.X)
    clusters = a.obs[cluster_key].astype(str).to_numpy()
    names = sorted(set(clusters))
    means = np.stack([x[clusters == c].mean(0) for c in names])
    z = (means - means.mean(0)) / np.maximum(means.std(0), 1e-9)
    col = {g.lower(): j for j, g in enumerate(a.var_names)}
    scores = {}
    for cls, markers in CLASS_MARKERS.items():
        js = [col[m.lower()] for m in markers if m.lower() in col]
        if js:
            scores[cls] = z[:, js].mean(1)
    classes = list(scores)
    best = np.argmax(np.stack([scores[c] for c in classes], 1), 1)
    return {c: classes[b] for c, b in zip(names, best)}


def _coarse_by_markers(a: ad.AnnData, cluster_key: str) -> ad.AnnData:
    a = a.copy()
    rule = classes_by_markers(a, cluster_key)
    a.obs["cell_type_original"] = a.obs[cluster_key].astype(str).to_numpy()
    a.obs["cell_type"] = a.obs["cell_type_original"].map(rule).to_numpy()
    return a


HIPPOCAMPUS_CELLS = 2500
HIPPOCAMPUS_MASKED = 20
HIPPOCAMPUS_NICHES = 6


def build_hippocampus_xenium_slideseq() -> tuple[list[ad.AnnData], list[ad.AnnData], CaseInfo]:
    """Imaging against bead sequencing: Xenium mouse brain (cortex + hippocampus, 248 genes, cells)
    and Slide-seqV2 hippocampus (2,000 genes, 10 µm beads); 119 genes in common.

    Labels: neither source has named cell types, only Louvain clusters; both are mapped to coarse
    classes by the same marker rule (:func:`classes_by_markers`). Regions: 6 niches of coarse-class
    composition, one k-means over both tissues (:func:`joint_niche_labels`), computed on the whole
    tissues. Then 2,500 cells of each are drawn (seed 0). Imputation truth: 20 of the shared genes
    are masked from Xenium and 20 others from Slide-seqV2 (seed 0). Annotation transfer: Xenium ->
    Slide-seqV2. A report case: no default was chosen on it.
    """
    xen = _coarse_by_markers(datasets.load("xenium_mousebrain_ctxhp"), "louvain_cluster")
    ssq = _coarse_by_markers(datasets.load("slideseqv2_hippocampus"), "louvain_cluster")
    ssq = _spell_as(ssq, xen.var_names)
    tissues = [(np.asarray(t.obsm["spatial"], dtype=np.float64)[:, :2], t.obs["cell_type"].to_numpy())
               for t in (xen, ssq)]
    for t, lab in zip((xen, ssq), joint_niche_labels(tissues, HIPPOCAMPUS_NICHES)):
        t.obs["region"] = lab
    common = [g for g in xen.var_names if g in set(ssq.var_names)]
    rng = np.random.default_rng(0)
    masked_idx = rng.choice(len(common), 2 * HIPPOCAMPUS_MASKED, replace=False)
    names, techs = ["Xenium", "SlideseqV2"], ["Xenium", "Slide-seqV2"]
    secs, truth, masked_genes = [], [], {}
    for i, (t, n, tech) in enumerate(zip((xen, ssq), names, techs)):
        t = subsample([t], HIPPOCAMPUS_CELLS)[0]
        t = t[np.asarray(t.X.sum(1)).ravel() > 0].copy()
        mask = [common[j] for j in sorted(masked_idx[i * HIPPOCAMPUS_MASKED:(i + 1) * HIPPOCAMPUS_MASKED])]
        masked_genes[n] = mask
        truth.append(_clean(t[:, mask], n, tech))
        b = _clean(t[:, [g for g in t.var_names if g not in set(mask)]], n, tech)
        b.obs["cell_type_original"] = t.obs["cell_type_original"].to_numpy()
        secs.append(b)
    all_masked = {g for m in masked_genes.values() for g in m}
    info = CaseInfo(
        name="hippocampus_xenium_slideseq", sections=names, files=[],
        shared_genes=[g for g in common if g not in all_masked], masked_genes=masked_genes,
        reference=["Xenium"], held_out="SlideseqV2", technology=dict(zip(names, techs)), role="report",
        description="Xenium mouse brain (248 genes) + Slide-seqV2 hippocampus (2,000 genes), 2,500 cells "
                    "each; 119 genes in common, 20 masked per section; coarse classes by marker rule, "
                    "6 joint composition niches",
    )
    return secs, truth, info


THREE_TECH_XENIUM_CELLS = 2500
THREE_TECH_MASKED = 20
THREE_TECH_NICHES = 6


def build_cortex_three_tech() -> tuple[list[ad.AnnData], list[ad.AnnData], CaseInfo]:
    """Three technologies with three panels: the three STARmap mPFC sections (166 genes), 1,500
    cortical osmFISH cells (33 genes, as in ``starmap_osmfish``) and 2,500 cells of the Xenium mouse
    brain section (248 genes, cortex and hippocampus: the hippocampus has no counterpart).

    Panels: STARmap-Xenium 47 genes, STARmap-osmFISH 11, osmFISH-Xenium 11; 7 in all three.
    Labels: STARmap and osmFISH by :data:`CELL_CLASS`, Xenium by the marker rule
    (:func:`classes_by_markers`). Regions: 6 niches of coarse-class composition, one k-means over
    the five tissues (the sources' layers exist for two technologies only). Imputation truth: 20 of
    the STARmap-Xenium genes that osmFISH lacks are masked from Xenium (imputed from STARmap).
    Annotation transfer: STARmap + osmFISH -> Xenium. A report case: no default was chosen on it.
    """
    star_secs, _, _ = build_starmap_osmfish()  # STARmap + osmFISH with harmonised classes
    xen = _coarse_by_markers(datasets.load("xenium_mousebrain_ctxhp"), "louvain_cluster")
    xen = _spell_as(xen, star_secs[0].var_names)
    tissues = [(np.asarray(t.obsm["spatial"], dtype=np.float64)[:, :2], t.obs["cell_type"].astype(str).to_numpy())
               for t in star_secs + [xen]]
    labs = joint_niche_labels(tissues, THREE_TECH_NICHES)
    for t, lab in zip(star_secs, labs):
        t.obs["region_original"] = t.obs["region"].astype(str).to_numpy()
        t.obs["region"] = pd.Categorical(lab)
    xen.obs["region"] = labs[-1]
    xen = subsample([xen], THREE_TECH_XENIUM_CELLS)[0]
    star, osm = set(star_secs[0].var_names), set(star_secs[-1].var_names)
    candidates = [g for g in xen.var_names if g in star and g not in osm]
    rng = np.random.default_rng(0)
    mask = [candidates[j] for j in sorted(rng.choice(len(candidates), THREE_TECH_MASKED, replace=False))]
    truth = _clean(xen[:, mask], "Xenium", "Xenium")
    x = _clean(xen[:, [g for g in xen.var_names if g not in set(mask)]], "Xenium", "Xenium")
    x.obs["cell_type_original"] = xen.obs["cell_type_original"].to_numpy()
    secs = star_secs + [x]
    names = [str(s.obs["section"].iloc[0]) for s in secs]
    shared = [g for g in secs[0].var_names if all(g in set(s.var_names) for s in secs[1:])]
    star_names = names[:3]
    info = CaseInfo(
        name="cortex_three_tech", sections=names, files=[], shared_genes=shared,
        masked_genes={"Xenium": mask}, reference=names[:-1], held_out="Xenium",
        technology={**{n: "STARmap" for n in star_names}, "osmFISH": "osmFISH", "Xenium": "Xenium"},
        role="report",
        description="STARmap mPFC x3 (166 genes) + osmFISH cortex (1,500 cells, 33 genes) + Xenium brain "
                    f"(2,500 cells, 248 genes); {len(shared)} genes in all three; 20 STARmap-Xenium genes "
                    "masked from Xenium; coarse classes, 6 joint composition niches",
    )
    return secs, [None, None, None, None, truth], info


SCREF_MASKED = 20


def build_hippocampus_scref() -> tuple[list[ad.AnnData], list[ad.AnnData], CaseInfo]:
    """A dissociated single-cell reference and a spatial section: the Drop-seq hippocampus
    reference of RCTD (510 cells, 307 genes, 17 named types; no coordinates) and 2,500 beads of the
    Slide-seqV2 hippocampus (2,000 genes); 78 genes in common.

    Labels: the reference's types by :data:`HIPPOCAMPUS_REF_CLASS`, the Slide-seqV2 Louvain
    clusters by the marker rule (:func:`classes_by_markers`), both coarse classes. Regions: 6 niches
    of coarse-class composition on the whole puck (:func:`niche_labels`); the reference has none
    ("none"), and no spatial score is computed (one section with coordinates). Imputation truth:
    20 of the shared genes masked from Slide-seqV2, imputed from the reference (the use RCTD and
    Tangram are put to). Annotation transfer: reference -> Slide-seqV2. A report case.
    """
    ref = datasets.load("ref_dropseq_hippocampus_rctd")
    ref.obs["cell_type_original"] = ref.obs["cell_type"].astype(str).to_numpy()
    unknown = sorted(set(ref.obs["cell_type_original"]) - set(HIPPOCAMPUS_REF_CLASS))
    if unknown:
        raise ValueError(f"reference types without a coarse class: {unknown}; add them to HIPPOCAMPUS_REF_CLASS")
    ref.obs["cell_type"] = ref.obs["cell_type_original"].map(HIPPOCAMPUS_REF_CLASS).to_numpy()
    ref.obs["region"] = "none"
    ssq = _coarse_by_markers(datasets.load("slideseqv2_hippocampus"), "louvain_cluster")
    ssq = _spell_as(ssq, ref.var_names)
    ssq.obs["region"] = niche_labels(np.asarray(ssq.obsm["spatial"], dtype=np.float64)[:, :2],
                                     ssq.obs["cell_type"].to_numpy(), HIPPOCAMPUS_NICHES)
    ssq = subsample([ssq], HIPPOCAMPUS_CELLS)[0]
    ssq = ssq[np.asarray(ssq.X.sum(1)).ravel() > 0].copy()
    if "spatial" in ref.obsm:
        del ref.obsm["spatial"]
    common = [g for g in ref.var_names if g in set(ssq.var_names)]
    rng = np.random.default_rng(0)
    mask = [common[j] for j in sorted(rng.choice(len(common), SCREF_MASKED, replace=False))]
    r = _clean(ref, "DropseqRef", "Drop-seq (dissociated)")
    r.obs["cell_type_original"] = ref.obs["cell_type_original"].to_numpy()
    b = _clean(ssq[:, [g for g in ssq.var_names if g not in set(mask)]], "SlideseqV2", "Slide-seqV2")
    b.obs["cell_type_original"] = ssq.obs["cell_type_original"].to_numpy()
    truth = _clean(ssq[:, mask], "SlideseqV2", "Slide-seqV2")
    info = CaseInfo(
        name="hippocampus_scref", sections=["DropseqRef", "SlideseqV2"], files=[],
        shared_genes=[g for g in common if g not in set(mask)], masked_genes={"SlideseqV2": mask},
        reference=["DropseqRef"], held_out="SlideseqV2",
        technology={"DropseqRef": "Drop-seq (dissociated)", "SlideseqV2": "Slide-seqV2"}, role="report",
        no_coordinates=["DropseqRef"],
        description="Drop-seq hippocampus reference (510 cells, 307 genes, no coordinates) + Slide-seqV2 "
                    "hippocampus (2,500 beads, 2,000 genes); 78 genes in common, 20 masked from Slide-seqV2; "
                    "coarse classes",
    )
    return [r, b], [None, truth], info


def build_starmap_scref() -> tuple[list[ad.AnnData], list[ad.AnnData], CaseInfo]:
    """A reference without coordinates and a spatial section of another technology, from the
    development data: the three STARmap mPFC sections pooled into one reference with their
    coordinates dropped (3,190 cells, 166 genes, the part a dissociated single-cell reference plays)
    and the 1,500 osmFISH cortical cells of ``starmap_osmfish`` (33 genes); 11 genes in common.

    The development counterpart of ``hippocampus_scref``: it is where the balance step and the
    annotation transfer from a reference without coordinates may be tuned. Labels and layers as in
    ``starmap_osmfish``; the reference has no region ("none"), so only the cell embedding is scored.
    No gene is masked (11 shared genes leave none to spare). Transfer: reference -> osmFISH.
    """
    secs, _, base = build_starmap_osmfish()
    ref = ad.concat(secs[:-1], join="inner", merge="same")
    ref.obs["section"] = pd.Categorical(["STARmapRef"] * ref.n_obs)
    ref.obs["region"] = pd.Categorical(["none"] * ref.n_obs)
    del ref.obsm["spatial"]
    ref.uns["technology"] = "STARmap (coordinates dropped)"
    osm = secs[-1]
    info = CaseInfo(
        name="starmap_scref", sections=["STARmapRef", "osmFISH"], files=[], shared_genes=base.shared_genes,
        reference=["STARmapRef"], held_out="osmFISH",
        technology={"STARmapRef": "STARmap (coordinates dropped)", "osmFISH": "osmFISH"},
        no_coordinates=["STARmapRef"],
        description="STARmap mPFC BZ5/BZ9/BZ14 pooled, coordinates dropped (3,190 cells, 166 genes) as a "
                    f"reference + osmFISH SScortex cortical layers (1,500 cells, 33 genes); "
                    f"{len(base.shared_genes)} shared genes; harmonised coarse cell classes",
    )
    return [ref, osm], [], info


BUILDERS = {"starmap_mosaic": build_starmap_mosaic, "starmap_osmfish": build_starmap_osmfish,
            "xenium_capture": build_xenium_capture,
            "hippocampus_xenium_slideseq": build_hippocampus_xenium_slideseq,
            "cortex_three_tech": build_cortex_three_tech,
            "hippocampus_scref": build_hippocampus_scref, "starmap_scref": build_starmap_scref}
# Development cases: defaults may be chosen on them. Report cases: never used to choose a default;
# the headline figures come from them only.
DEVELOPMENT_CASES = ("starmap_mosaic", "starmap_osmfish", "xenium_capture", "starmap_scref")
REPORT_CASES = ("hippocampus_xenium_slideseq", "cortex_three_tech", "hippocampus_scref")


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
        truth = [t[s.obs_names].copy() if t is not None else None for t, s in zip(truth, secs)] if truth else []
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
            if t is not None:  # a section with no masked genes has no truth file
                t.write_h5ad(tmp / "truth" / f"{n}.h5ad")
    info.write(tmp / "case.json")
    if case_dir.exists():
        import shutil
        shutil.rmtree(case_dir)
    tmp.rename(case_dir)
    return case_dir
