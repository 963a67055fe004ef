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
# # Tutorial 4: the same workflow on a SpatialData object
#
# [SpatialData](https://spatialdata.scverse.org) keeps everything of a spatial experiment in one
# zarr store: images, segmentation masks (labels), cell outlines (shapes), transcripts (points) and
# expression **tables**. A table *annotates* an element: each row is one cell of a shapes or labels
# element, matched by an instance id, so results written into the table can be drawn on the cells'
# own outlines.
#
# FuseMap reads sections straight from such tables and writes its results back into them:
#
# | step | function | where the result goes |
# |---|---|---|
# | sections from tables | `fusemap.io.spatialdata.sections_from_spatialdata` | - |
# | integrate | `fusemap.integrate` | `obsm["X_fusemap_cell"]`, `obsm["X_fusemap_spatial"]` of each table |
# | map a new section | `fusemap.map_query` | the query's table |
# | transfer labels | `fusemap.transfer_labels` | `obs["fusemap_<label>"]`, `obs["fusemap_<label>_uncertainty"]` |
# | impute | `fusemap.impute` + `add_imputed_table` | a new table annotating the same cells |
# | draw clusters | `fusemap.pl.tissue_clusters` | the cells' shapes |
# | save | `fusemap.io.spatialdata.save_spatialdata` | a copy of the store (only the tables rewritten) |
#
# We build a store from the three STARmap mPFC sections (tutorial 1): each section's cells become
# circles of a shapes element, and each section gets **its own table with its own gene panel** (the
# mosaic panels of tutorial 1), as data from different technologies would arrive. BZ5 and BZ9 form
# the reference; BZ14 is mapped onto it.

# %%
import time
import warnings

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import spatialdata as sd
from scipy.spatial import cKDTree
from spatialdata.models import ShapesModel, TableModel
from spatialdata.transformations import Identity

import fusemap
from fusemap import datasets
from fusemap.pl import embedding as plotting
from fusemap.io.spatialdata import add_imputed_table, save_spatialdata, sections_from_spatialdata

warnings.filterwarnings("ignore", category=UserWarning)  # spatialdata's notes about table annotations
from tutorial import FAST, MAP, TRAIN, Tutorial  # fast mode for the test suite, figure folders, show()

tutorial = Tutorial("04_spatialdata")
FIGURES, OUTPUTS, show = tutorial.figures, tutorial.outputs, tutorial.show

print("fusemap", fusemap.__version__, "| spatialdata", sd.__version__, "| fast mode:", FAST)

# %% [markdown]
# ## 1. Build a SpatialData store
#
# For each section: a shapes element `cells_<section>` with one circle per cell (radius half the
# typical distance to the nearest cell), indexed by a cell id; and a table `table_<section>` whose
# rows are those cells (column `cell_id`), holding the counts of that section's panel and the
# authors' labels. The tables carry no coordinates: FuseMap takes each cell's position from the
# centroid of its shape.

# %%
masked, full = datasets.starmap_mosaic()
if FAST:
    masked = [a[np.sort(np.random.default_rng(0).choice(a.n_obs, 300, replace=False))].copy() for a in masked]
short = [a.obs["section"].iloc[0].split("_")[1] for a in masked]  # BZ5, BZ9, BZ14
shapes, tables = {}, {}
for i, (key, a) in enumerate(zip(short, masked)):
    xy = np.asarray(a.obsm["spatial"], dtype=float)
    ids = np.arange(a.n_obs) + 100_000 * (i + 1)
    radius = 0.5 * np.median(cKDTree(xy).query(xy, k=2)[0][:, 1])
    element = f"cells_{key}"
    shapes[element] = ShapesModel.parse(xy, geometry=0, radius=np.full(a.n_obs, radius), index=ids,
                                        transformations={"global": Identity()})
    t = ad.AnnData(a.X.copy(), obs=a.obs[["cell_type", "region"]].copy(), var=a.var.copy())
    t.obs["cell_id"] = ids
    t.obs["element"] = pd.Categorical([element] * a.n_obs)
    tables[f"table_{key}"] = TableModel.parse(t, region=element, region_key="element", instance_key="cell_id")
store = OUTPUTS / "starmap.zarr"
if store.exists():
    import shutil

    shutil.rmtree(store)
sd.SpatialData(shapes=shapes, tables=tables).write(store)
sdata = sd.read_zarr(store)
print(sdata)

# %% [markdown]
# ## 2. Integrate the reference from the store
#
# `sections_from_spatialdata` turns tables into sections; `table=` picks which ones (here the two
# reference tables). The sections remember which table rows they came from, so `fusemap.integrate`
# writes its results back into those tables of the in-memory object.

# %%
reference = sections_from_spatialdata(sdata, table=["table_BZ5", "table_BZ9"])
print("reference sections:", reference.names, [a.shape for a in reference.adatas])
print("coordinates:", reference.source.describe()["coordinates"])
t0 = time.perf_counter()
model = fusemap.integrate(reference, seed=0, progress=False, **TRAIN)
print(f"trained in {time.perf_counter() - t0:.0f} s")
print(sdata.tables["table_BZ5"])

# %% [markdown]
# Clusters of the spatial embedding drawn on the cells' own shapes. `tissue_clusters` also stores
# the cluster of every row in the table (`obs["fusemap_spatial_cluster"]`).

# %%
fig = plotting.tissue_clusters(sdata, fusemap.SPATIAL_EMBEDDING, table=["table_BZ5", "table_BZ9"], seed=0)
show(fig, "reference_spatial_clusters_on_shapes")
t = sdata.tables["table_BZ5"]
print(pd.crosstab(t.obs["fusemap_spatial_cluster"], t.obs["region"]).to_string())

# %% [markdown]
# ## 3. Map the new section and transfer labels
#
# The query is the third table. `map_query` and `transfer_labels` write into it like `integrate`
# wrote into the reference tables. Its `cell_type` and `region` columns are the authors' labels:
# FuseMap reads labels from the reference only, so they serve here to score the transfer.

# %%
query = sections_from_spatialdata(sdata, table="table_BZ14")
t0 = time.perf_counter()
mapped = fusemap.map_query(model, query, seed=0, progress=False, **MAP)
print(f"mapped in {time.perf_counter() - t0:.0f} s")
cell_types = fusemap.transfer_labels(reference, query, "cell_type", embedding="cell", seed=0)
layers = fusemap.transfer_labels(reference, query, "region", embedding="spatial", seed=0)
q = sdata.tables["table_BZ14"]
print(q)
acc_type = float((q.obs["fusemap_cell_type"].astype(str) == q.obs["cell_type"].astype(str)).mean())
acc_layer = float((q.obs["fusemap_region"].astype(str) == q.obs["region"].astype(str)).mean())
print(f"held-out reference accuracy: cell type {cell_types.heldout_accuracy['cell_type']:.3f}, "
      f"layer {layers.heldout_accuracy['region']:.3f}")
print(f"query accuracy vs the authors: cell type {acc_type:.3f}, layer {acc_layer:.3f}")

# %% [markdown]
# Transferred layers and their uncertainty on the query's shapes, drawn with
# [spatialdata-plot](https://spatialdata.scverse.org/projects/plot) from the table columns.

# %%
import spatialdata_plot  # noqa: F401  (adds the .pl accessor)

fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
for ax, color, title in ((axes[0], "region", "authors' layers"), (axes[1], "fusemap_region", "transferred layers"),
                         (axes[2], "fusemap_region_uncertainty", "layer uncertainty")):
    sdata.pl.render_shapes("cells_BZ14", color=color, table_name="table_BZ14").pl.show(ax=ax, title=title)
fig.tight_layout()
show(fig, "query_layers_on_shapes")

# %% [markdown]
# ## 4. Impute the genes the query did not measure
#
# `fusemap.impute` works on the mapped model; `add_imputed_table` stores the result as a new table
# `fusemap_imputed` that annotates the same shapes (same region and instance ids), so it can be
# joined with them and drawn like any table.

# %%
hidden = [g for g in mapped.gene_embedding().index if g not in set(q.var_names)]
imputed = fusemap.impute(mapped, query.names, genes=hidden)
frames = {name: imputed[imputed.obs["section"] == name].to_df() for name in query.names}
add_imputed_table(sdata, "fusemap_imputed", query, frames)
imp = sdata.tables["fusemap_imputed"]
print(f"imputed {imp.n_vars} genes the query did not measure for {imp.n_obs} cells:", imp)

# check against the true measurements of BZ14 (kept aside in `full`)
measured = full[2]
common = [g for g in hidden if g in set(measured.var_names)]
cells = [c for c in imp.obs_names if c in set(measured.obs_names)]
x_true = np.log1p(measured[cells, common].X.toarray() / measured[cells].X.sum(1).A * 1e4)
x_imp = np.asarray(imp[cells, common].X)
r = pd.Series({g: np.corrcoef(x_imp[:, j], x_true[:, j])[0, 1] for j, g in enumerate(common)
               if x_true[:, j].std() > 0 and x_imp[:, j].std() > 0})
print(f"Pearson r imputed vs measured over {len(r)} hidden genes of BZ14: mean {r.mean():.3f}")

gene = r.idxmax() if len(r) else common[0]
fig, axes = plt.subplots(1, 1, figsize=(6, 4.8))
sdata.pl.render_shapes("cells_BZ14", color=gene, table_name="fusemap_imputed").pl.show(
    ax=axes, title=f"imputed {gene} on BZ14")
show(fig, "query_imputed_gene_on_shapes")

# %% [markdown]
# ## 5. Save the store with the results
#
# `save_spatialdata(..., tables=[...])` copies the original store and rewrites only the named
# tables, atomically (a temporary store renamed into place); shapes, images and other elements stay
# byte-identical. Reopening shows the results in the tables.

# %%
result_store = OUTPUTS / "starmap_fusemap.zarr"
save_spatialdata(sdata, result_store, tables=["table_BZ5", "table_BZ9", "table_BZ14", "fusemap_imputed"],
                 overwrite=True)
back = sd.read_zarr(result_store)
for name, tab in back.tables.items():
    keys = sorted(k for k in tab.obsm if k.startswith("X_fusemap"))
    cols = [c for c in tab.obs if c.startswith("fusemap")]
    print(f"{name}: {tab.n_obs} rows x {tab.n_vars} genes; obsm {keys}; obs {cols}")

# %% [markdown]
# All three sections' spatial-embedding clusters, computed jointly so a colour means the same region
# in every section, on the reopened store.

# %%
show(plotting.tissue_clusters(back, fusemap.SPATIAL_EMBEDDING, table=["table_BZ5", "table_BZ9", "table_BZ14"],
                              seed=0), "all_sections_spatial_clusters_on_shapes")
