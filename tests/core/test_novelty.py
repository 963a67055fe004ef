"""Novelty of query cells (fusemap.novelty) and 'unassigned' in label transfer, on constructed
embeddings: a query blob that no reference section holds must score high, the others low.
Real data (a whole cell type held out of the reference) is in test_realdata_novelty.py."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import fusemap
from fusemap import FuseMapInputError
from fusemap.novelty import novelty_scores

K = 16


def blobs(n, seed, classes, spread=None, shift=0.0):
    """Cells around fixed class centres (the same centres in every call), with a section shift."""
    rng = np.random.default_rng(seed)
    centres = {c: np.random.default_rng(100 + i).normal(0, 3, K) for i, c in enumerate("ABCDN")}
    spread = spread or {}
    lab = rng.choice(list(classes), n)
    x = np.stack([centres[c] + rng.normal(0, spread.get(c, 0.8), K) for c in lab]) + shift
    return x.astype(np.float32), lab


def as_section(x, lab, name):
    a = ad.AnnData(np.zeros((len(lab), 1), dtype=np.float32),
                   obs=pd.DataFrame({"cell_type": lab}, index=[f"{name}_{i}" for i in range(len(lab))]))
    a.obsm["X_fusemap_cell"] = x
    a.obsm["X_fusemap_spatial"] = x
    return a


def test_a_state_the_reference_lacks_scores_high_and_the_rest_is_calibrated():
    # a diffuse reference class (D) must not make its surroundings look novel, nor hide N
    spread = {"D": 2.0, "N": 0.5}
    r1, _ = blobs(800, 1, "ABCD", spread, shift=0.1)
    r2, _ = blobs(800, 2, "ABCD", spread, shift=-0.1)
    q, lab = blobs(900, 3, "ABCDN", spread, shift=0.05)
    nov = novelty_scores([r1, r2], q, seed=0)
    new = lab == "N"
    assert nov.scores.shape == (900,) and 0 <= np.nanmin(nov.scores) and np.nanmax(nov.scores) <= 1
    assert roc_auc_score(new, nov.scores) > 0.97
    assert nov.is_novel[new].mean() > 0.8
    assert nov.is_novel[~new].mean() < 0.03  # farther than 99 % of reference cells: about 1 % by chance
    # one cluster holds the new state and is flagged as new as a whole; no other cluster is
    flagged = nov.summary.index[nov.summary["novel"]]
    assert len(flagged) == 1
    assert new[nov.clusters == flagged[0]].mean() > 0.9
    w = nov.cluster_weights(0.05)
    assert w[new].mean() < 0.2 and np.median(w[~new]) == 1.0
    assert nov.calibration == "reference sections against each other" and nov.n_calibration_cells == 1600
    assert "new as a whole" in nov.sentence()


def test_one_reference_section_is_calibrated_on_its_halves_and_tiny_queries_get_nan():
    r, _ = blobs(1000, 1, "ABC")
    q, lab = blobs(500, 2, "ABCN")
    nov = novelty_scores([r], q)
    assert nov.calibration.startswith("random halves")
    assert roc_auc_score(lab == "N", nov.scores) > 0.97
    tiny = novelty_scores([r], q[:3])
    assert np.isnan(tiny.scores).all() and not tiny.is_novel.any()


def test_transfer_leaves_novel_cells_unassigned_at_every_level():
    r1, l1 = blobs(600, 1, "ABC")
    r2, l2 = blobs(600, 2, "ABC")
    q, lab = blobs(500, 3, "ABCN")
    ref = [as_section(r1, l1, "r1"), as_section(r2, l2, "r2")]
    for a in ref:
        a.obs["sub"] = a.obs["cell_type"] + "1"
    query = as_section(q, lab, "q")
    res = fusemap.transfer_labels(ref, query, "cell_type", hierarchy="sub", novelty_threshold=0.99)
    pred = query.obs["fusemap_cell_type"].astype(str).to_numpy()
    new = lab == "N"
    assert (pred[new] == "unassigned").mean() > 0.8
    assert (pred[~new] == "unassigned").mean() < 0.03
    assert (pred[~new & (pred != "unassigned")] == lab[~new & (pred != "unassigned")]).mean() > 0.97
    assert (query.obs["fusemap_sub"].astype(str).to_numpy()[pred == "unassigned"] == "unassigned").all()
    assert res.n_unassigned == int((pred == "unassigned").sum()) and res.novelty_threshold == 0.99
    assert query.obs["fusemap_cell_type_novelty"].between(0, 1).all()
    # None (the default) assigns every cell
    res_all = fusemap.transfer_labels(ref, query, "cell_type", write=False)
    assert res_all.n_unassigned == 0 and (res_all.predictions["fusemap_cell_type"] != "unassigned").all()
    with pytest.raises(FuseMapInputError, match="novelty_threshold=1.5"):
        fusemap.transfer_labels(ref, query, "cell_type", novelty_threshold=1.5)


def test_a_query_offset_as_a_whole_is_named_in_a_warning():
    r1, l1 = blobs(400, 1, "ABC")
    r2, l2 = blobs(400, 2, "ABC")
    q, lab = blobs(300, 3, "ABC", shift=6.0)  # not aligned: every cell far from the reference
    ref = [as_section(r1, l1, "r1"), as_section(r2, l2, "r2")]
    with pytest.warns(fusemap.FuseMapWarning, match=r"not aligned with the reference"):
        res = fusemap.transfer_labels(ref, as_section(q, lab, "q"), "cell_type", novelty_threshold=0.99,
                                      write=False)
    assert res.n_unassigned > 150
