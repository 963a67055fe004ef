"""map_query and transfer_labels given sections of a SpatialData object write into its tables, as
integrate does (the Python API, without the CLI's store writing). Simulated data, seconds."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

sd = pytest.importorskip("spatialdata")
from spatialdata.models import ShapesModel, TableModel  # noqa: E402
from spatialdata.transformations import Identity  # noqa: E402

import fusemap  # noqa: E402
from fusemap.io.spatialdata import sections_from_spatialdata  # noqa: E402

from conftest import FAST  # noqa: E402

warnings.filterwarnings("ignore", message=".*no parent found.*")


def _sdata():
    sims = fusemap.datasets.simulate(n_sections=3, n_cells=150, n_genes=60, seed=3)
    shapes, tables = {}, {}
    for i, a in enumerate(sims):
        ids = np.arange(a.n_obs) + 1000 * (i + 1)
        el = f"cells_{i}"
        shapes[el] = ShapesModel.parse(np.asarray(a.obsm["spatial"], float), geometry=0,
                                       radius=np.full(a.n_obs, 5.0), index=ids,
                                       transformations={"global": Identity()})
        t = ad.AnnData(a.X.copy(), obs=a.obs[["cell_type"]].copy(), var=a.var.copy())
        t.obs["cell_id"], t.obs["element"] = ids, pd.Categorical([el] * a.n_obs)
        tables[f"table_{i}"] = TableModel.parse(t, region=el, region_key="element", instance_key="cell_id")
    return sd.SpatialData(shapes=shapes, tables=tables)


def test_map_query_and_transfer_write_into_query_table():
    sdata = _sdata()
    reference = sections_from_spatialdata(sdata, table=["table_0", "table_1"])
    model = fusemap.integrate(reference, seed=0, **FAST)
    query = sections_from_spatialdata(sdata, table="table_2")
    mapped = fusemap.map_query(model, query, seed=0, max_epochs=2, progress=False)
    q = sdata.tables["table_2"]
    emb = mapped.embeddings()["cells_2"]
    np.testing.assert_array_equal(q.obsm[fusemap.CELL_EMBEDDING], emb.cell)
    assert q.obsm[fusemap.SPATIAL_EMBEDDING].shape == (150, FAST["n_latent"])
    res = fusemap.transfer_labels(reference, query, "cell_type", method="knn", seed=0)
    assert list(q.obs["fusemap_cell_type"].astype(str)) == list(res.predictions["fusemap_cell_type"])
    assert q.obs["fusemap_cell_type_uncertainty"].between(0, 1).all()
    assert "fusemap_cell_type" not in sdata.tables["table_0"].obs  # the reference tables are left alone
