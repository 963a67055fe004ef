"""Nomenclature harmonisation: label transfer of two label sets and their correspondence matrix."""

import numpy as np
import pandas as pd
import pytest

from fusemap import FuseMapInputError
from fusemap.tl import harmonize_nomenclatures

from conftest import embedded_by

# a second, coarser STARmap nomenclature (what another atlas might call the same cells)
COARSE = {"eL2/3": "Ex-L2/3", "eL5-2": "Ex-L5", "eL5-3": "Ex-L5", "L5-1": "Ex-L5", "eL6-1": "Ex-L6",
          "eL6-2": "Ex-L6", "Lhx6": "Inh", "SST": "Inh", "NPY": "Inh", "Reln": "Inh", "VIP": "Inh",
          "Astro": "Astro", "Oligo": "Oligo", "Endo": "Vasc", "Smc": "Vasc"}


def with_embeddings(seed=1):
    """Simulated sections with a cell embedding that separates the 8 cell types."""
    return embedded_by("cell_type", "X_fusemap_cell", n_sections=3, n_cells=800, dim=16, seed=seed)


def test_correspondence_on_separable_simulated_types():
    secs = with_embeddings()
    pairs = {f"T{i}": f"C{i // 2}" for i in range(8)}
    for i, a in enumerate(secs):  # A labels only in section 0, B labels only in section 2
        a.obs["A"] = a.obs["cell_type"].astype(str) if i == 0 else np.nan
        if i == 2:
            a.obs["B"] = a.obs["cell_type"].astype(str).map(pairs)
    res = harmonize_nomenclatures(secs, "A", "B", method="knn")
    assert res.counts.to_numpy().sum() == sum(a.n_obs for a in secs)
    assert np.allclose(res.row_normalized.sum(1), 1) and np.allclose(res.col_normalized.sum(0), 1)
    bm = res.best_matches()
    assert (bm["B"].to_numpy() == bm["A"].map(pairs).to_numpy()).all()
    assert bm["share_of_row"].min() > 0.95
    assert res.accuracy["A"] > 0.95 and res.accuracy["B"] > 0.95
    # written into every section; measured labels kept
    assert list(secs[0].obs["A_harmonized"].astype(str)) == list(secs[0].obs["cell_type"].astype(str))
    assert secs[1].obs["B_harmonized"].notna().all()
    labels = res.labels
    assert (labels.loc[labels["A_source"] == "measured", "A_uncertainty"] == 0).all()


def test_bad_label_columns():
    secs = with_embeddings()
    secs[0].obs["one"] = "x"
    with pytest.raises(FuseMapInputError, match="'nope' is not an obs column"):
        harmonize_nomenclatures(secs, "nope", "cell_type")
    with pytest.raises(FuseMapInputError, match="at least two labels"):
        harmonize_nomenclatures(secs, "one", "cell_type")
    with pytest.raises(FuseMapInputError, match="both 'cell_type'"):
        harmonize_nomenclatures(secs, "cell_type", "cell_type")


@pytest.mark.realdata
@pytest.mark.slow
def test_starmap_fine_and_coarse_nomenclatures_correspond(starmap_model, record_property):
    """Fine STARmap cell types known only in BZ5, a coarse nomenclature only in BZ14: after transfer
    through the cell embedding, each fine type's largest row share falls in its own coarse class."""
    secs = [a.copy() for a in starmap_model.sections.adatas]  # leave the shared fixture untouched
    for i, a in enumerate(secs):
        a.obs["fine"] = a.obs["cell_type"].astype(str) if i == 0 else np.nan
        a.obs["coarse"] = a.obs["cell_type"].astype(str).map(COARSE) if i == 2 else np.nan
    res = harmonize_nomenclatures(secs, "fine", "coarse", seed=0, write=False)
    truth = np.concatenate([a.obs["cell_type"].astype(str) for a in secs])
    lab = res.labels
    moved = (lab["fine_source"] == "transferred").to_numpy()
    acc_fine = float((lab["fine"].to_numpy()[moved] == truth[moved]).mean())
    moved_c = (lab["coarse_source"] == "transferred").to_numpy()
    acc_coarse = float((lab["coarse"].to_numpy()[moved_c] == pd.Series(truth[moved_c]).map(COARSE).to_numpy()).mean())
    bm = res.best_matches()
    ok = bm["coarse"].to_numpy() == bm["fine"].map(COARSE).to_numpy()
    weighted = float(bm["n_cells"][ok].sum() / bm["n_cells"].sum())
    print(f"\nSTARmap: transferred fine accuracy {acc_fine:.3f}, coarse {acc_coarse:.3f}; best match right for "
          f"{ok.sum()}/{len(ok)} fine types ({weighted:.3f} of cells); held-out {res.accuracy}")
    record_property("nomenclature", {"acc_fine": round(acc_fine, 3), "acc_coarse": round(acc_coarse, 3),
                                     "best_match_ok": int(ok.sum()), "weighted": round(weighted, 3)})
    # chance: the largest fine type is 14 % of cells, the largest coarse class 46 %
    assert acc_fine > 0.40
    assert acc_coarse > 0.60
    assert ok.sum() >= 13 and weighted > 0.85
