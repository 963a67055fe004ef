# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial 1: integrate tissue sections measured with different gene panels
#
# Imaging-based spatial transcriptomics (STARmap, MERFISH, Xenium, ...) measures a chosen panel of
# a few hundred genes. Sections from different labs or technologies rarely share the same panel,
# and they differ in how efficiently each gene is detected. FuseMap learns, from all sections
# together:
#
# - a **cell embedding** (`obsm["X_fusemap_cell"]`): what kind of cell this is;
# - a **spatial embedding** (`obsm["X_fusemap_spatial"]`): what tissue neighbourhood (layer,
#   niche) the cell sits in, computed from the cell and its spatial neighbours;
# - a **gene embedding**: one vector per gene of the *union* of all panels.
#
# **Data.** Three coronal sections of mouse medial prefrontal cortex (mPFC) from three animals,
# measured with STARmap (Wang et al., *Science* 2018): BZ5, BZ9 and BZ14, about 1,050 cells each,
# with the authors' cell types (15 types: excitatory `eL2/3`, `eL5-*`, `eL6-*`, inhibitory `SST`,
# `VIP`, `NPY`, `Lhx6`, `Reln`, glia and vascular cells) and cortical layers (`L1`, `L2/3`, `L5`,
# `L6`). All three were measured with the same 166-gene panel, so to create the situation FuseMap
# is built for, `fusemap.datasets.starmap_mosaic()` gives every section a **different 100-gene
# panel**: 40 genes kept in all three sections, plus 60 genes of its own (overlapping partly with
# the next section's). The 66 genes a section loses were really measured, which tutorial 2 uses to
# check imputation.
#
# The files are read from the folder in the environment variable `FUSEMAP_DATA_DIR`
# (default `../shared/data` relative to the working directory).

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import fusemap
from fusemap import datasets
from fusemap.pl import embedding as plotting

# FUSEMAP_VIGNETTE_FAST=1 trains for 3 epochs only: used by the test suite to check that every
# step still runs. Leave it unset for a real run.
from tutorial import FAST, TRAIN, Tutorial  # fast mode for the test suite, figure folders, show()

tutorial = Tutorial("01_integrate_panels")
FIGURES, OUTPUTS, show = tutorial.figures, tutorial.outputs, tutorial.show

print("fusemap", fusemap.__version__, "| data folder:", datasets.data_dir(), "| fast mode:", FAST)

# %% [markdown]
# ## 1. The sections and their panels
#
# `starmap_mosaic()` returns the sections with their reduced panels and the full sections (all 166
# genes). Each AnnData holds raw counts in `X`, cell coordinates in `obsm["spatial"]` and the
# authors' labels in `obs`.

# %%
sections, full = datasets.starmap_mosaic()
if FAST:  # test suite only: 300 cells per section
    keep = [np.sort(np.random.default_rng(0).choice(a.n_obs, 300, replace=False)) for a in sections]
    sections, full = [a[k].copy() for a, k in zip(sections, keep)], [a[k].copy() for a, k in zip(full, keep)]
names = [a.obs["section"].iloc[0] for a in sections]
panels = {n: set(a.var_names) for n, a in zip(names, sections)}
summary = pd.DataFrame({
    "cells": [a.n_obs for a in sections],
    "genes measured": [a.n_vars for a in sections],
    "genes hidden": [len(a.uns["masked_genes"]) for a in sections],
    "cell types": [a.obs["cell_type"].nunique() for a in sections],
}, index=names)
print(summary.to_string())
print("genes measured in all three sections:", len(set.intersection(*panels.values())))
print("genes in the union of the panels:", len(set.union(*panels.values())))
overlap = pd.DataFrame([[len(panels[a] & panels[b]) for b in names] for a in names], index=names, columns=names)
print("\ngenes shared by each pair of sections:\n" + overlap.to_string())

# %% [markdown]
# The tissue as the authors annotated it: cell types and cortical layers on the cell coordinates
# (pia on the left, white matter on the right).

# %%
fig, axes = plt.subplots(2, 3, figsize=(15, 6.5))
for j, (name, a) in enumerate(zip(names, sections)):
    for i, col in enumerate(["cell_type", "region"]):
        plotting.scatter_categories(axes[i][j], np.asarray(a.obsm["spatial"]), a.obs[col].astype(str),
                                    f"{name}: {col}", s=8, legend=(j == 2))
        axes[i][j].set_aspect("equal")
fig.tight_layout()
show(fig, "tissue_labels")

# %% [markdown]
# ## 2. Before integration
#
# The simplest joint view uses only the 40 genes every section measured: normalise, log-transform,
# PCA, UMAP. Cells group partly by section instead of by cell type, because the sections differ in
# sequencing depth and detection efficiency, and 40 genes separate the types only coarsely.

# %%
import anndata as ad
import scanpy as sc

shared = sorted(set.intersection(*panels.values()))
naive = ad.concat([a[:, shared].copy() for a in sections], index_unique=":")
sc.pp.normalize_total(naive)
sc.pp.log1p(naive)
sc.pp.pca(naive, n_comps=20, random_state=0)
sc.pp.neighbors(naive, n_neighbors=15, random_state=0)
sc.tl.umap(naive, random_state=0)
fig = plotting.umap_figure(naive, "shared genes, no integration", ["section", "cell_type"])
show(fig, "umap_before_integration")

# %% [markdown]
# ## 3. Integrate with FuseMap
#
# `fusemap.integrate` takes the list of sections (raw counts; genes matched by symbol, ignoring
# case), builds a spatial neighbour graph per section, trains the model and writes the embeddings
# back into each AnnData. With default settings it trains until the validation loss stops
# improving (early stopping), about one to two minutes on a laptop CPU for these 3,200 cells.

# %%
t0 = time.perf_counter()
model = fusemap.integrate(sections, seed=0, progress=False, **TRAIN)
train_seconds = time.perf_counter() - t0
history = model.history_frame()
print(f"trained {len(history)} epochs in {train_seconds:.0f} s")
for name, a in zip(names, sections):
    print(f"{name}: cell embedding {a.obsm[fusemap.CELL_EMBEDDING].shape}, "
          f"spatial embedding {a.obsm[fusemap.SPATIAL_EMBEDDING].shape}")
genes = model.gene_embedding()
print("gene embedding:", genes.shape, "(genes of the union of panels x latent dimensions)")

# %% [markdown]
# The training history: the reconstruction losses should fall, while the two discriminators (which
# try to tell the sections apart from the embeddings) should stay near chance.

# %%
print("history columns:", list(history.columns))
loss_cols = [c for c in history.columns if c not in ("epoch", "phase", "seconds")]
fig, ax = plt.subplots(figsize=(7, 3.5))
for c in loss_cols[:8]:
    values = pd.to_numeric(history[c], errors="coerce")
    if values.notna().any():
        ax.plot(np.arange(1, len(values) + 1), values, label=c)
ax.set_xlabel("epoch")
ax.set_ylabel("loss")
ax.legend(fontsize=7, frameon=False, bbox_to_anchor=(1, 1), loc="upper left")
show(fig, "training_history")

# %% [markdown]
# ## 4. UMAPs of both embeddings
#
# `fusemap.pl.integration_figures` pools the sections, clusters the embedding (Leiden) and computes a UMAP. In
# the **cell embedding** the sections should overlap and cells should group by cell type; in the
# **spatial embedding** cells group by cortical layer.

# %%
pooled = {}
for key, label in ((fusemap.CELL_EMBEDDING, "cell"), (fusemap.SPATIAL_EMBEDDING, "spatial")):
    p = plotting.cluster_and_umap(plotting.pooled_embedding(sections, names, key), seed=0)
    pooled[label] = p
    print(f"{label} embedding: {p.obs['cluster'].nunique()} Leiden clusters over {p.n_obs} cells")
    show(plotting.umap_figure(p, f"{label} embedding", ["section", "cell_type", "region"]), f"umap_{label}")

# %% [markdown]
# ### How well are the sections mixed, and are cell types kept apart?
#
# Two numbers a reviewer asks for:
#
# - **mixing**: the share of each cell's 30 nearest neighbours that come from the *other* two
#   sections (2/3 when sections are perfectly mixed, 0 when each section stays on its own);
# - **cross-section agreement**: train a nearest-neighbour classifier on the labels of two sections
#   and predict the third; high accuracy means a cell type lands in the same place whatever section
#   it came from.
#
# Both are computed for the naive PCA of shared genes and for the FuseMap embeddings.

# %%
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors


def mixing(x, section):
    idx = NearestNeighbors(n_neighbors=31).fit(x).kneighbors(x, return_distance=False)[:, 1:]
    return float((section[idx] != section[:, None]).mean())


def cross_section_accuracy(x, section, labels):
    accs = []
    for s in np.unique(section):
        test = section == s
        knn = KNeighborsClassifier(n_neighbors=15).fit(x[~test], labels[~test])
        accs.append((knn.predict(x[test]) == labels[test]).mean())
    return float(np.mean(accs))


section = naive.obs["section"].to_numpy()
spaces = {"PCA of shared genes": naive.obsm["X_pca"],
          "FuseMap cell embedding": pooled["cell"].obsm["emb"],
          "FuseMap spatial embedding": pooled["spatial"].obsm["emb"]}
rows = []
for space, x in spaces.items():
    rows.append({"space": space, "mixing (ideal 0.67)": mixing(x, section),
                 "cell type accuracy": cross_section_accuracy(x, section, naive.obs["cell_type"].to_numpy()),
                 "layer accuracy": cross_section_accuracy(x, section, naive.obs["region"].to_numpy())})
scores = pd.DataFrame(rows).set_index("space").round(3)
print(scores.to_string())

# %% [markdown]
# ## 5. Clusters mapped back onto the tissue
#
# Clusters of the **spatial embedding** are FuseMap's tissue regions. Drawn on each section they
# should form bands parallel to the cortical layers, with the same colour meaning the same region
# in every section. Clusters of the **cell embedding** are cell populations and look salt-and-pepper
# where cell types intermix.

# %%
show(plotting.spatial_figure(pooled["spatial"], "cluster", "spatial embedding clusters on the tissue"),
     "tissue_spatial_clusters")
show(plotting.spatial_figure(pooled["cell"], "cluster", "cell embedding clusters on the tissue"),
     "tissue_cell_clusters")

# %% [markdown]
# How well do the clusters agree with the authors' annotations? The adjusted Rand index (ARI) is 1
# for identical partitions and 0 for chance. The cross-tabulation shows which layers each spatial
# cluster covers.

# %%
from sklearn.metrics import adjusted_rand_score

ari_layer = adjusted_rand_score(pooled["spatial"].obs["region"], pooled["spatial"].obs["cluster"])
ari_type = adjusted_rand_score(pooled["cell"].obs["cell_type"], pooled["cell"].obs["cluster"])
print(f"ARI spatial clusters vs layers: {ari_layer:.3f}")
print(f"ARI cell clusters vs cell types: {ari_type:.3f}")
print(pd.crosstab(pooled["spatial"].obs["cluster"], pooled["spatial"].obs["region"]).to_string())

# %% [markdown]
# `fusemap.tl.find_regions` gives a fixed number of regions instead of a resolution. Asking for four
# (the number of annotated layers) and drawing them with `fusemap.pl.regions_spatial`:

# %%
regions = fusemap.tl.find_regions(sections, n_regions=4, seed=0)
print("region sizes:", regions.value_counts().sort_index().to_dict())
print(f"ARI of the 4 regions vs layers: {adjusted_rand_score(pooled['spatial'].obs['region'], regions):.3f}")
show(fusemap.pl.regions_spatial(sections, title="FuseMap regions (4) on the tissue"), "tissue_regions4")

# %% [markdown]
# ## 6. Keep the results
#
# The model is saved as a directory (weights and JSON); each section, now holding both embeddings,
# can be written as `.h5ad`. `fusemap.FuseMap.load(directory, sections)` restores the model.

# %%
out = OUTPUTS
model.save(out / "model", overwrite=True)
for name, a in zip(names, sections):
    a.write_h5ad(out / f"{name}.h5ad")
print("saved:", sorted(p.name for p in out.iterdir()))
