"""A SpatialData table joining sections with different panels (unmeasured genes filled with 0):
fusemap reports the zero-filled genes, and panels= marks them unmeasured. Simulated data."""

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

sd = pytest.importorskip("spatialdata")
from spatialdata.models import ShapesModel, TableModel  # noqa: E402

import fusemap  # noqa: E402

from conftest import FAST  # noqa: E402


def _store(sections):
    shapes, tabs = {}, []
    for i, a in enumerate(sections):
        name = f"cells_{i}"
        ids = np.arange(a.n_obs) + 1000 * (i + 1)
        shapes[name] = ShapesModel.parse(np.asarray(a.obsm["spatial"]), geometry=0, radius=np.full(a.n_obs, 0.5),
                                         index=ids)
        t = a.copy()
        t.obs["region"], t.obs["cell_id"] = name, ids
        del t.obsm["spatial"]
        tabs.append(t)
    table = ad.concat(tabs, join="outer", fill_value=0)  # genes a section did not measure: 0
    table.X = sp.csr_matrix(table.X)
    table.obs["region"] = pd.Categorical(table.obs["region"], categories=list(shapes))
    table = TableModel.parse(table, region=list(shapes), region_key="region", instance_key="cell_id")
    return sd.SpatialData(shapes=shapes, tables={"table": table})


def test_zero_filled_table_warns_and_panels_mark_genes_unmeasured(sim_sections):
    sdata = _store(sim_sections)
    n_union = sdata.tables["table"].n_vars
    with pytest.warns(fusemap.FuseMapWarning, match=r"probably not measured in section 'cells_0' \(all zero") as rec:
        model = fusemap.FuseMap(sdata, **FAST)
    assert len([w for w in rec if "probably not measured" in str(w.message)]) == 3
    assert [len(s["genes"]) for s in model.section_info] == [n_union] * 3
    panels = {f"cells_{i}": list(map(str, a.var_names)) for i, a in enumerate(sim_sections)}
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        model = fusemap.FuseMap(sdata, panels=panels, **FAST)
    assert not [w for w in rec if "probably not measured" in str(w.message)]
    assert [s["genes"] for s in model.section_info] == list(panels.values())
