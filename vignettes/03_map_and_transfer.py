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
# # Tutorial 3: map a new section onto a reference and transfer its labels
#
# An annotated atlas is only useful if new data can be placed in it. FuseMap does this in two
# steps:
#
# 1. **map** (`fusemap.map_query`): the trained reference is frozen; a new encoder is trained for
#    the query section (its own gene panel, its own technology) until its cells land in the
#    reference's embedding space. The reference embeddings do not move, so earlier results stay
#    valid.
# 2. **transfer** (`fusemap.transfer_labels`): a classifier trained on the reference cells'
#    annotations in that space labels the query cells, with an **uncertainty** per cell
#    (1 - the classifier's highest class probability).
#
# Here the reference is two STARmap mPFC sections (BZ5, BZ9) and the query the third (BZ14), each
# with its own 100-gene panel (the mosaic of tutorial 1). BZ14 has the authors' labels, which we
# hide from FuseMap and use only to score the transfer.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import fusemap
from fusemap import datasets
from fusemap.pl import embedding as plotting

from tutorial import FAST, MAP, TRAIN, Tutorial  # fast mode for the test suite, figure folders, show()

tutorial = Tutorial("03_map_and_transfer")
FIGURES, OUTPUTS, show = tutorial.figures, tutorial.outputs, tutorial.show

print("fusemap", fusemap.__version__, "| data folder:", datasets.data_dir(), "| fast mode:", FAST)

# %% [markdown]
# ## 1. Reference and query

# %%
masked, _ = datasets.starmap_mosaic()
if FAST:
    masked = [a[np.sort(np.random.default_rng(0).choice(a.n_obs, 300, replace=False))].copy() for a in masked]
reference, query = masked[:2], masked[2]
ref_names = [a.obs["section"].iloc[0] for a in reference]
query_name = query.obs["section"].iloc[0]
truth = query.obs[["cell_type", "region"]].astype(str).copy()  # kept aside for scoring
query.obs = query.obs.drop(columns=["cell_type", "region", "region_code"])  # the query arrives unlabelled
shared = set(query.var_names) & set.union(*(set(a.var_names) for a in reference))
print("reference:", {n: a.shape for n, a in zip(ref_names, reference)})
print("query:", query_name, query.shape, f"- {len(shared)} of its genes are in the reference panels, "
      f"{query.n_vars - len(shared)} are new")

# %% [markdown]
# ## 2. Train the reference
#
# An ordinary integration of the two reference sections (tutorial 1), saved to a directory as it
# would be when shared with others.

# %%
t0 = time.perf_counter()
model = fusemap.integrate(reference, seed=0, progress=False, **TRAIN)
model_dir = OUTPUTS / "reference_model"
model.save(model_dir, overwrite=True)
print(f"reference trained in {time.perf_counter() - t0:.0f} s, saved to {model_dir}")

# %% [markdown]
# ## 3. Map the query
#
# `map_query` accepts the model object or its saved directory (then `reference=` gives the
# reference sections). It trains only the new parts and writes both embeddings into the query
# AnnData. The query's genes that the reference never measured get new gene-embedding columns.

# %%
t0 = time.perf_counter()
mapped = fusemap.map_query(model_dir, query, reference=reference, seed=0, progress=False, **MAP)
print(f"mapped in {time.perf_counter() - t0:.0f} s: {mapped}")
print("query embeddings:", query.obsm[fusemap.CELL_EMBEDDING].shape, query.obsm[fusemap.SPATIAL_EMBEDDING].shape)
print("vocabulary grew from", model.gene_embedding().shape[0], "to", mapped.gene_embedding().shape[0], "genes")

# %% [markdown]
# The query should fall among the reference cells. The UMAP pools reference and query (the query's
# `cell_type` is shown only for checking; FuseMap did not see it).

# %%
query_view = query.copy()
query_view.obs["cell_type"], query_view.obs["region"] = truth["cell_type"].to_numpy(), truth["region"].to_numpy()
all_sections = reference + [query_view]
pooled = plotting.cluster_and_umap(
    plotting.pooled_embedding(all_sections, ref_names + [query_name], fusemap.CELL_EMBEDDING), seed=0)
pooled.obs["role"] = np.where(pooled.obs["section"] == query_name, "query", "reference")
show(plotting.umap_figure(pooled, "cell embedding", ["role", "section", "cell_type"]), "umap_reference_query")

# %% [markdown]
# ## 4. Transfer cell types and layers
#
# Cell types are transferred in the **cell embedding**, cortical layers in the **spatial
# embedding**. `transfer_labels` keeps 20% of the reference cells out of training and reports the
# accuracy on them (`heldout_accuracy`): an estimate of how well the classifier can do before we
# look at the query. Classes with fewer than `min_cells` reference cells cannot be learned and are
# reported, not silently dropped.

# %%
cell_types = fusemap.transfer_labels(reference, query, "cell_type", embedding="cell", seed=0)
layers = fusemap.transfer_labels(reference, query, "region", embedding="spatial", seed=0)
for label, res in (("cell type", cell_types), ("layer", layers)):
    lv = res.levels[0]
    print(f"{label}: {len(res.classes[lv])} classes; held-out reference accuracy "
          f"{res.heldout_accuracy[lv]:.3f}, macro-F1 {res.heldout_macro_f1[lv]:.3f}; rare classes: {res.rare_classes[lv]}")
print(query.obs[["fusemap_cell_type", "fusemap_cell_type_uncertainty", "fusemap_region",
                 "fusemap_region_uncertainty"]].head().to_string())

# %% [markdown]
# ## 5. How good is the transfer on the query?
#
# Now we bring back the authors' labels of BZ14.

# %%
from sklearn.metrics import accuracy_score, f1_score

pred_type = query.obs["fusemap_cell_type"].astype(str).to_numpy()
pred_layer = query.obs["fusemap_region"].astype(str).to_numpy()
unc_type = query.obs["fusemap_cell_type_uncertainty"].to_numpy()
acc_type = accuracy_score(truth["cell_type"], pred_type)
acc_layer = accuracy_score(truth["region"], pred_layer)
print(f"query cell type: accuracy {acc_type:.3f}, macro-F1 "
      f"{f1_score(truth['cell_type'], pred_type, average='macro', zero_division=0):.3f}")
print(f"query layer:     accuracy {acc_layer:.3f}, macro-F1 "
      f"{f1_score(truth['region'], pred_layer, average='macro', zero_division=0):.3f}")

# %% [markdown]
# The confusion matrix (rows: authors' label, columns: transferred label; each row sums to 1)
# shows which types are confused. Mistakes between closely related types (the subtypes of layer-5
# and layer-6 excitatory neurons) are expected; mistakes across classes are not.

# %%
def confusion(true, pred, ax, title):
    cats = sorted(set(true) | set(pred))
    m = pd.crosstab(pd.Categorical(true, categories=cats), pd.Categorical(pred, categories=cats), dropna=False)
    frac = m.div(m.sum(axis=1).replace(0, 1), axis=0)
    im = ax.imshow(frac.to_numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(cats)), cats, rotation=90, fontsize=7)
    ax.set_yticks(range(len(cats)), cats, fontsize=7)
    ax.set_xlabel("transferred")
    ax.set_ylabel("authors' annotation")
    ax.set_title(title)
    return im


fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), gridspec_kw={"width_ratios": [3, 1.4]})
confusion(truth["cell_type"].to_numpy(), pred_type, axes[0], f"cell type (accuracy {acc_type:.2f})")
im = confusion(truth["region"].to_numpy(), pred_layer, axes[1], f"layer (accuracy {acc_layer:.2f})")
fig.colorbar(im, ax=axes, shrink=0.6, label="fraction of the row")
show(fig, "confusion")

# %% [markdown]
# ## 6. Where is the transfer unsure?
#
# On the tissue: the transferred cell types, the uncertainty of each cell, and the cells where the
# transfer disagrees with the authors. Uncertain cells tend to be the misassigned ones, so the
# uncertainty map tells you, without any ground truth, which annotations to treat with caution.

# %%
xy = np.asarray(query.obsm["spatial"])
fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
type_cats = sorted(set(truth["cell_type"]) | set(pred_type))  # same colour for a type in both panels
plotting.scatter_categories(axes[0][0], xy, pd.Series(pd.Categorical(truth["cell_type"], categories=type_cats)),
                            "authors' cell types", s=8)
plotting.scatter_categories(axes[0][1], xy, pd.Series(pd.Categorical(pred_type, categories=type_cats)),
                            "transferred cell types", s=8)
sca = axes[1][0].scatter(xy[:, 0], xy[:, 1], c=unc_type, s=8, cmap="magma_r", vmin=0, vmax=1)
axes[1][0].set_title("cell type uncertainty")
fig.colorbar(sca, ax=axes[1][0], shrink=0.7)
wrong = pred_type != truth["cell_type"].to_numpy()
axes[1][1].scatter(xy[~wrong, 0], xy[~wrong, 1], s=6, color="lightgrey", label="agrees")
axes[1][1].scatter(xy[wrong, 0], xy[wrong, 1], s=8, color="crimson", label="differs from the authors")
axes[1][1].legend(frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5))
axes[1][1].set_title("transfer vs authors")
for ax in axes.ravel():
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
show(fig, "tissue_transfer_uncertainty")

# %% [markdown]
# Is the uncertainty trustworthy? Sort the query cells into uncertainty bins and compute the
# accuracy within each bin: accuracy should fall as uncertainty rises. Discarding the most
# uncertain cells trades coverage for accuracy.

# %%
bins = pd.cut(unc_type, [0, 0.2, 0.4, 0.6, 1.0], include_lowest=True)
calib = pd.DataFrame({"bin": bins, "correct": ~wrong}).groupby("bin", observed=False)["correct"].agg(["size", "mean"])
calib.columns = ["cells", "accuracy"]
print(calib.round(3).to_string())
for cut in (1.0, 0.5, 0.3):
    keep = unc_type <= cut
    print(f"uncertainty <= {cut}: {keep.mean():5.1%} of cells kept, accuracy {(~wrong[keep]).mean():.3f}")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
axes[0].bar([str(b) for b in calib.index], calib["accuracy"].fillna(0))
axes[0].set_xlabel("cell type uncertainty")
axes[0].set_ylabel("accuracy vs authors")
unc_layer = query.obs["fusemap_region_uncertainty"].to_numpy()
sca = axes[1].scatter(xy[:, 0], xy[:, 1], c=unc_layer, s=8, cmap="magma_r", vmin=0, vmax=1)
axes[1].set_title("layer uncertainty on the tissue")
axes[1].set_aspect("equal")
fig.colorbar(sca, ax=axes[1], shrink=0.7)
fig.tight_layout()
show(fig, "uncertainty_calibration")

# %% [markdown]
# Layer uncertainty is highest at layer boundaries, where a cell's neighbourhood mixes two layers:
# exactly where a human annotator would hesitate too.
