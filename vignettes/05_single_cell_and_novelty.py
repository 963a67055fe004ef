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
# # Tutorial 5: a single-cell reference in the atlas, and query states the reference lacks
#
# Two everyday situations:
#
# 1. **A dissociated single-cell reference** (thousands of genes, curated labels, no coordinates)
#    beside an imaging or bead section (a few hundred genes). FuseMap takes it as a section without
#    coordinates: each of its cells is its own only neighbour, so its spatial embedding follows
#    from its cell embedding, and it is kept out of the alignment of the spatial embedding (its
#    isolated cells would pull real tissue niches toward single cells). It is aligned through the
#    cell embedding, and its genes join the model: they can be imputed into the tissue, with a
#    per-gene confidence, and its labels transferred onto the tissue cells.
# 2. **A query that holds states the reference never saw.** Mapping pulls every query cell toward
#    the reference. FuseMap scores each query cell's **novelty** (is it as close to the reference as
#    reference cells are to each other?), weights the alignment of each query cluster by it, and
#    label transfer can leave novel cells **unassigned**.
#
# Data: Slide-seqV2 hippocampus beads with the Drop-seq hippocampus reference of the RCTD vignette
# (part 1), and a Xenium mouse-brain section split into three pseudo-sections, two cell types
# removed from the reference (part 2).

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import fusemap
from fusemap import datasets
from fusemap.pl import embedding as plotting

from tutorial import FAST, MAP, TRAIN, Tutorial  # fast mode for the test suite, figure folders, show()

tutorial = Tutorial("05_single_cell_and_novelty")
FIGURES, OUTPUTS, show = tutorial.figures, tutorial.outputs, tutorial.show
N_CELLS = 300 if FAST else 2000  # beads / cells per section

print("fusemap", fusemap.__version__, "| data folder:", datasets.data_dir(), "| fast mode:", FAST)

# %% [markdown]
# ## Part 1. A single-cell reference
#
# ### 1.1 The data
#
# The reference has no `obsm["spatial"]`: that alone makes it a section without coordinates (name
# sections explicitly with `no_coordinates=[...]` when a table has coordinates you do not want
# used). To keep this tutorial quick on a laptop the beads keep only the genes they share with the
# reference; the reference keeps all of its own.

# %%
slide = datasets.load("slideseqv2_hippocampus")
reference = datasets.load("ref_dropseq_hippocampus_rctd")
slide = slide[np.sort(np.random.default_rng(0).choice(slide.n_obs, N_CELLS, replace=False))].copy()
shared = sorted(set(slide.var_names) & set(reference.var_names))
beads = slide[:, shared].copy()
print("Slide-seqV2 beads:", beads.shape, "| Drop-seq reference:", reference.shape,
      "| coordinates in the reference:", "spatial" in reference.obsm)
print(f"{len(shared)} genes shared; {reference.n_vars - len(shared)} reference genes the beads did not measure")
print(reference.obs["cell_type"].value_counts().to_string())

# %% [markdown]
# ### 1.2 Integrate
#
# A dict names the sections. The log says which sections have no coordinates; the run check after
# training looks at the cell embedding (the spatial one needs two sections with coordinates).

# %%
t0 = time.perf_counter()
model = fusemap.integrate({"slideseq": beads, "dropseq": reference}, seed=0, progress=False, **TRAIN)
print(f"trained in {time.perf_counter() - t0:.0f} s; sections without coordinates: {model.no_coordinates}")
print(model.summary()["mixing"])

# %% [markdown]
# The beads and the reference cells should overlap in the cell embedding, the reference's cell
# types each finding their beads.

# %%
pooled = plotting.cluster_and_umap(plotting.pooled_embedding(
    [beads, reference], ["slideseq", "dropseq"], fusemap.CELL_EMBEDDING, no_coordinates=model.no_coordinates), seed=0)
pooled.obs["cell_type"] = pd.Categorical(np.concatenate([["(bead)"] * beads.n_obs,
                                                         reference.obs["cell_type"].astype(str).to_numpy()]))
show(plotting.umap_figure(pooled, "cell embedding", ["section", "cell_type"]), "sc_umap")

# %% [markdown]
# ### 1.3 Reference labels on the beads
#
# `transfer_labels` trains a classifier on the reference cells' embeddings and labels the beads,
# with an uncertainty per bead. Slide-seq beads hold about 40 molecules and often parts of several
# cells, so expect more uncertainty than between two imaging sections.

# %%
res = fusemap.transfer_labels(reference, beads, "cell_type", seed=0)
lv = res.levels[0]
print(f"held-out reference accuracy {res.heldout_accuracy[lv]:.3f}; beads per transferred type:")
print(beads.obs["fusemap_cell_type"].value_counts().head(8).to_string())

# %%
xy = np.asarray(beads.obsm["spatial"])
fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
plotting.scatter_categories(axes[0], xy, beads.obs["fusemap_cell_type"], "transferred cell type", s=6)
sca = axes[1].scatter(xy[:, 0], xy[:, 1], c=beads.obs["fusemap_cell_type_uncertainty"], s=6, cmap="magma_r",
                      vmin=0, vmax=1)
axes[1].set_title("uncertainty")
fig.colorbar(sca, ax=axes[1], shrink=0.7)
for ax in axes:
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
show(fig, "sc_transfer_on_tissue")

# %% [markdown]
# ### 1.4 The reference's genes in the tissue, and which to trust
#
# Every gene the reference measured can be read out in the beads. `impute` adds a per-gene
# confidence to `var`: `confidence_r` is the correlation between the read-out and the measured
# values on the held-out cells of the sections that measured the gene (here the reference), so a
# gene the model cannot reconstruct where it is measured is not to be trusted where it is not.

# %%
new_genes = [g for g in reference.var_names if g not in set(shared)]
imp = fusemap.impute(model, "slideseq", genes=new_genes)
conf = imp.var[["measured_in", "confidence_r", "confidence_cells"]].sort_values("confidence_r", ascending=False)
print(f"imputed {imp.n_vars} reference-only genes for {imp.n_obs} beads")
print(conf.head(8).to_string())
print(f"median confidence_r {conf['confidence_r'].median():.2f}; "
      f"{(conf['confidence_r'] > 0.5).sum()} genes above 0.5")

# %%
top = list(conf.index[:3])
fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
axes[0].hist(conf["confidence_r"].dropna(), bins=30, color="slategrey")
axes[0].set_xlabel("confidence_r (held-out reference cells)")
axes[0].set_ylabel("genes")
axes[0].set_title("per-gene confidence")
for ax, g in zip(axes[1:], top):
    v = np.asarray(imp[:, g].X).ravel()
    sca = ax.scatter(xy[:, 0], xy[:, 1], c=v, s=5, cmap="viridis")
    ax.set_title(f"{g} (imputed; confidence {conf.loc[g, 'confidence_r']:.2f})")
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(sca, ax=ax, shrink=0.7)
fig.tight_layout()
show(fig, "sc_imputed_genes")

# %% [markdown]
# ## Part 2. Query states the reference lacks
#
# ### 2.1 A reference without two cell types
#
# A Xenium section (cortex + hippocampus) split at random into three pseudo-sections, thinned to
# 90 %, 50 % and 30 % of their molecules, as if captured by three protocols. The dentate gyrus
# granule cells (cluster C9) and the interneurons (C8) are removed from the two reference
# sections; the third pseudo-section, mapped as the query, keeps them.

# %%
HELD_OUT = ("C9", "C8")
pseudo = datasets.xenium_capture((0.9, 0.5, 0.3), n_cells=N_CELLS, seed=0)
ref_sections = [a[~a.obs["cell_type"].isin(HELD_OUT)].copy() for a in pseudo[:2]]
query = pseudo[2]
truth = query.obs["cell_type"].to_numpy()
new = np.isin(truth, HELD_OUT)
query.obs = query.obs.drop(columns=["cell_type"])  # the query arrives unlabelled
print("reference:", [a.shape for a in ref_sections], "| query:", query.shape,
      f"| {new.sum()} query cells of the held-out types")

# %% [markdown]
# ### 2.2 Map, and read the novelty
#
# `map_query` writes `fusemap_novelty` (0-1: the share of reference cells whose own ratio of
# distances, to the other reference sections against their own kind, is lower than this cell's;
# 0.99 = farther out than 99 % of reference cells) and `fusemap_novelty_cluster` into the query's
# `obs`, and a per-cluster table into `uns["fusemap_novelty"]`. During mapping each query cluster's
# alignment is weighted by its median novelty, so a new state keeps its own place.

# %%
t0 = time.perf_counter()
ref_model = fusemap.integrate(ref_sections, seed=0, progress=False, **TRAIN)
mapped = fusemap.map_query(ref_model, query, seed=0, progress=False, **MAP)
print(f"reference and mapping in {time.perf_counter() - t0:.0f} s")
print(mapped.summary()["novelty"])
nov = query.obs["fusemap_novelty"].to_numpy()

from sklearn.metrics import roc_auc_score

print(f"novelty AUROC, held-out types vs the other query cells: {roc_auc_score(new, nov):.3f}")
print(f"above 0.99: {(nov[new] > 0.99).mean():.0%} of the held-out cells, {(nov[~new] > 0.99).mean():.1%} of the others")

# %%
qxy = np.asarray(query.obsm["spatial"])
fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
axes[0].scatter(qxy[~new, 0], qxy[~new, 1], s=5, color="lightgrey", label="types in the reference")
axes[0].scatter(qxy[new, 0], qxy[new, 1], s=7, color="crimson", label="held-out types (C9, C8)")
axes[0].legend(frameon=False, fontsize=8, loc="upper right")
axes[0].set_title("where the new cells are")
sca = axes[1].scatter(qxy[:, 0], qxy[:, 1], c=nov, s=5, cmap="magma_r", vmin=0, vmax=1)
axes[1].set_title("novelty against the reference")
fig.colorbar(sca, ax=axes[1], shrink=0.7)
for ax in axes[:2]:
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
bins = np.linspace(0, 1, 26)
axes[2].hist(nov[~new], bins=bins, alpha=0.7, color="grey", label="types in the reference", density=True)
axes[2].hist(nov[new], bins=bins, alpha=0.7, color="crimson", label="held-out types", density=True)
axes[2].set_xlabel("novelty")
axes[2].set_ylabel("density")
axes[2].legend(frameon=False, fontsize=8)
fig.tight_layout()
show(fig, "novelty_on_tissue")

# %% [markdown]
# ### 2.3 Transfer with "unassigned"
#
# By default every query cell gets a reference class. With `novelty_threshold=0.99` the cells
# farther out than 99 % of reference cells are labelled `unassigned` instead of being forced into
# the nearest reference type.

# %%
res = fusemap.transfer_labels(ref_sections, query, "cell_type", novelty_threshold=0.99, seed=0)
pred = query.obs["fusemap_cell_type"].astype(str).to_numpy()
assigned = pred != "unassigned"
print(f"unassigned: {(~assigned[new]).mean():.0%} of the held-out cells, {(~assigned[~new]).mean():.1%} of the others")
print(f"accuracy on the other query cells that were assigned: {(pred[~new & assigned] == truth[~new & assigned]).mean():.3f}")
print("what the held-out cells were called:")
print(pd.Series(pred[new]).value_counts().head(5).to_string())

# %%
pooled = plotting.cluster_and_umap(plotting.pooled_embedding(
    ref_sections + [query], [a.obs["section"].iloc[0] for a in ref_sections] + ["query"], fusemap.CELL_EMBEDDING),
    seed=0)
role = np.where(pooled.obs["section"] == "query", "query", "reference").astype(object)
role[np.flatnonzero(role == "query")[new]] = "query: held-out type"
pooled.obs["role"] = pd.Categorical(role)
show(plotting.umap_figure(pooled, "cell embedding", ["role", "section"]), "novelty_umap")
