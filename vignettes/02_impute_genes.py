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
# # Tutorial 2: impute genes a section did not measure, and explore the gene embedding
#
# After integration every gene of the union of panels has a vector in the **gene embedding**, and
# every cell has a position in the shared space. Their product predicts expression, so each
# section gets values for genes that only *other* sections measured.
#
# Imputed values are predictions, not measurements: they are best at the level of cell types and
# tissue regions, and noisy per cell. This tutorial measures how good they are on data where the
# answer is known: the STARmap mPFC mosaic of tutorial 1, in which every section keeps 100 of the
# 166 genes that were actually measured. The 66 hidden genes of each section are the truth we
# compare with.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scanpy as sc

import fusemap
from fusemap import datasets

from tutorial import FAST, TRAIN, Tutorial  # fast mode for the test suite, figure folders, show()

tutorial = Tutorial("02_impute_genes")
FIGURES, OUTPUTS, show = tutorial.figures, tutorial.outputs, tutorial.show

print("fusemap", fusemap.__version__, "| data folder:", datasets.data_dir(), "| fast mode:", FAST)

# %% [markdown]
# ## 1. Integrate the mosaic
#
# The same sections and training as tutorial 1 (`masked` holds the 100-gene panels the model sees;
# `full` the complete measurements, used only for checking).

# %%
masked, full = datasets.starmap_mosaic()
if FAST:
    keep = [np.sort(np.random.default_rng(0).choice(a.n_obs, 300, replace=False)) for a in masked]
    masked, full = [a[k].copy() for a, k in zip(masked, keep)], [a[k].copy() for a, k in zip(full, keep)]
names = [a.obs["section"].iloc[0] for a in masked]
t0 = time.perf_counter()
model = fusemap.integrate(masked, seed=0, progress=False, **TRAIN)
print(f"trained in {time.perf_counter() - t0:.0f} s; gene vocabulary: {model.gene_embedding().shape[0]} genes")
for name, a in zip(names, masked):
    print(f"{name}: measured {a.n_vars} genes, hidden {len(a.uns['masked_genes'])}")

# %% [markdown]
# ## 2. Impute
#
# `fusemap.impute(model)` returns one AnnData with every cell of every section and every gene of
# the vocabulary (`genes=` picks a subset, a section name picks cells). Values are on the model's
# scale: log-normalised expression divided by the gene's standard deviation in that section.
# `var["measured_in"]` says which sections measured each gene.

# %%
imputed = fusemap.impute(model)
print(imputed)
print(imputed.var["measured_in"].head().to_string())

# %% [markdown]
# ## 3. Compare with the measured expression of the hidden genes
#
# For each section and each gene it did not measure, the Pearson correlation across cells between
# the imputed values and the true (log-normalised) measurement. A correlation is blind to the
# gene's scale, so the two need not be in the same units. For reference, the same is computed for
# the genes the section did measure (the model saw those).

# %%
def lognorm(a):
    b = a.copy()
    sc.pp.normalize_total(b)
    sc.pp.log1p(b)
    return pd.DataFrame(np.asarray(b.X.todense()), index=b.obs_names, columns=b.var_names)


def pearson(x, y):
    x, y = x - x.mean(), y - y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else np.nan


rows = []
measured_expr, imputed_expr = {}, {}
for name, m, f in zip(names, masked, full):
    truth = lognorm(f)
    pred = imputed[imputed.obs["section"] == name].to_df()
    pred.index = truth.index
    measured_expr[name], imputed_expr[name] = truth, pred
    hidden = set(m.uns["masked_genes"])
    for g in truth.columns:
        rows.append({"section": name, "gene": g, "hidden": g in hidden,
                     "r": pearson(pred[g].to_numpy(), truth[g].to_numpy()),
                     "detected in % cells": 100 * float((truth[g] > 0).mean())})
scores = pd.DataFrame(rows)
print(scores.groupby("hidden")["r"].describe().round(3).to_string())
print(f"\nhidden genes: mean r = {scores[scores.hidden].r.mean():.3f} over "
      f"{scores.hidden.sum()} (section, gene) pairs")

# %% [markdown]
# Per-cell correlations of imputed genes are modest: single-cell counts of a 1-molecule gene are
# mostly zeros. Well-detected genes are imputed better, as the scatter on the right shows.

# %%
hid = scores[scores.hidden].dropna(subset=["r"])
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
axes[0].hist(scores[~scores.hidden].r.dropna(), bins=30, alpha=0.6, label="measured genes (seen)")
axes[0].hist(hid.r, bins=30, alpha=0.6, label="hidden genes (imputed)")
axes[0].set_xlabel("Pearson r, imputed vs measured (per cell)")
axes[0].set_ylabel("(section, gene) pairs")
axes[0].legend(frameon=False)
axes[1].scatter(hid["detected in % cells"], hid.r, s=10)
axes[1].set_xscale("log")
axes[1].set_xlabel("cells with the gene detected (%)")
axes[1].set_ylabel("Pearson r (hidden genes)")
fig.tight_layout()
show(fig, "imputation_correlations")
print("best imputed hidden genes:\n" + hid.sort_values("r", ascending=False).head(8).round(3).to_string(index=False))

# %% [markdown]
# ### By cell type
#
# Biologists mostly read imputed genes as averages over a cell population. Averaging the imputed
# and the measured values over each annotated cell type (pseudo-bulk) shows whether the imputation
# puts each hidden gene in the right cell types.

# %%
pb_rows = []
for name, m in zip(names, masked):
    types = m.obs["cell_type"].astype(str).to_numpy()
    t_mean = measured_expr[name].groupby(types).mean()
    p_mean = imputed_expr[name].groupby(types).mean()
    for g in m.uns["masked_genes"]:
        pb_rows.append({"section": name, "gene": g, "r": pearson(p_mean[g].to_numpy(), t_mean[g].to_numpy())})
pseudobulk = pd.DataFrame(pb_rows)
print(f"hidden genes, cell-type averages: median r = {pseudobulk.r.median():.3f}, "
      f"share with r > 0.5: {(pseudobulk.r > 0.5).mean():.2f}")

section, m = names[-1], masked[-1]
best = (pseudobulk[pseudobulk.section == section].sort_values("r", ascending=False).gene.head(4).tolist())
types = m.obs["cell_type"].astype(str).to_numpy()
fig, axes = plt.subplots(1, len(best), figsize=(4 * len(best), 3.6), squeeze=False)
for ax, g in zip(axes[0], best):
    t_mean = measured_expr[section][g].groupby(types).mean()
    p_mean = imputed_expr[section][g].groupby(types).mean()
    ax.scatter(t_mean, p_mean, s=18)
    for ct in t_mean.sort_values().index[-3:]:
        ax.annotate(ct, (t_mean[ct], p_mean[ct]), fontsize=7)
    ax.set_title(f"{g} (hidden in {section.split('_')[1]})")
    ax.set_xlabel("measured, cell-type mean")
    ax.set_ylabel("imputed, cell-type mean")
fig.tight_layout()
show(fig, "pseudobulk_scatter")

# %% [markdown]
# ### On the tissue
#
# The measured and imputed expression of two hidden genes drawn on the section. The imputation is
# smoother than the measurement (it is a prediction from the cell's neighbourhood in the
# embedding), but it should put the gene in the same layer.

# %%
show_genes = best[:2]
xy = np.asarray(m.obsm["spatial"])
fig, axes = plt.subplots(len(show_genes), 2, figsize=(11, 3.2 * len(show_genes)), squeeze=False)
for i, g in enumerate(show_genes):
    for j, (label, values) in enumerate((("measured", measured_expr[section][g]), ("imputed", imputed_expr[section][g]))):
        ax = axes[i][j]
        sca = ax.scatter(xy[:, 0], xy[:, 1], c=values.to_numpy(), s=6, cmap="viridis",
                         vmax=np.quantile(values, 0.99))
        ax.set_title(f"{g}, {label} ({section})")
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(sca, ax=ax, shrink=0.7)
fig.tight_layout()
show(fig, "tissue_measured_vs_imputed")

# %% [markdown]
# ## 4. The gene embedding
#
# `model.gene_embedding()` is a genes x latent-dimensions table. Genes with similar vectors are
# expressed in the same cells, whichever section measured them, so the embedding connects panels
# that share few genes.
#
# ### Nearest genes
#
# Cosine similarity between gene vectors; the nearest genes of classic markers of excitatory
# neurons (`Slc17a7`), inhibitory neurons (`Gad1`), astrocytes (`Aqp4`) and oligodendrocytes
# (`Mog`).

# %%
genes = model.gene_embedding()
unit = genes.div(np.linalg.norm(genes.to_numpy(), axis=1), axis=0)
similarity = unit @ unit.T
for g in ["Slc17a7", "Gad1", "Aqp4", "Mog"]:
    near = similarity[g].drop(g).sort_values(ascending=False).head(6)
    print(f"{g:8s} -> " + ", ".join(f"{k} ({v:.2f})" for k, v in near.items()))

# %% [markdown]
# ### Gene modules
#
# `fusemap.tl.gene_modules` clusters the gene embedding into modules (k-means on unit vectors);
# `fusemap.pl.gene_modules_umap` draws a UMAP of the genes coloured by module. To see what each
# module means, the heatmap averages the measured expression of each module's genes in each cell
# type (z-scored per module across types).

# %%
n_modules = 8
modules = fusemap.tl.gene_modules(model, n_modules=n_modules, seed=0)
print("module sizes:", modules.value_counts().to_dict())
show(fusemap.pl.gene_modules_umap(model, modules, highlight=["Slc17a7", "Gad1", "Aqp4", "Mog", "Sst", "Vip", "Pvalb",
                                                             "Cux2", "Rorb", "Syt6"], seed=0), "gene_modules_umap")

all_cells = pd.concat([measured_expr[n] for n in names])
all_types = pd.concat([m.obs["cell_type"].astype(str) for m in masked]).to_numpy()
z = (all_cells - all_cells.mean()) / all_cells.std().replace(0, 1)
module_by_type = pd.DataFrame({mod: z[modules.index[modules == mod]].mean(axis=1) for mod in sorted(
    set(modules), key=lambda s: int(s[2:]))}).groupby(all_types).mean()
module_by_type = (module_by_type - module_by_type.mean()) / module_by_type.std().replace(0, 1)
fig, ax = plt.subplots(figsize=(7, 5))
im = ax.imshow(module_by_type.to_numpy(), cmap="RdBu_r", vmin=-2.5, vmax=2.5, aspect="auto")
ax.set_xticks(range(module_by_type.shape[1]), module_by_type.columns)
ax.set_yticks(range(module_by_type.shape[0]), module_by_type.index)
ax.set_title("measured expression of each gene module, by cell type (z-score)")
fig.colorbar(im, ax=ax, shrink=0.7)
fig.tight_layout()
show(fig, "gene_modules_by_cell_type")
for mod in module_by_type.columns:
    top = module_by_type[mod].sort_values(ascending=False).index[:2].tolist()
    members = modules.index[modules == mod].tolist()
    print(f"{mod}: highest in {', '.join(top)}; genes: {', '.join(members[:8])}{' ...' if len(members) > 8 else ''}")
