"""Real data: query states the reference lacks (issue: novel query states).

Xenium mouse brain (cortex + hippocampus, 248 genes), 5,000 cells split at random into three
pseudo-sections thinned to 90 / 50 / 30 % of the molecules (as benchmarks/cases.py's
xenium_capture), 1,200 cells each. Two whole cell types - C9 (Prox1+: dentate gyrus granule cells)
and C8 (Gad1/Gad2+: interneurons), the most separable Louvain clusters of the source in a PCA - are
removed from the two reference sections; the 30 % section is mapped as a query holding them. The
held-out cells must get high novelty (AUROC against the other query cells), stay together, not be
absorbed into one reference type, and be left 'unassigned' by label transfer far more often than
the others, while the other query cells are labelled as well as before (default mapping: the
balanced phase weights each query cluster by its novelty, TrainConfig.query_balance).
"""

import json
import time

import pandas as pd
import pytest

import fusemap
from fusemap import datasets

from conftest import require_data

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

HELD_OUT = ("C9", "C8")
CAPTURE = (0.9, 0.5, 0.3)
CELLS = 1200


def xenium_pseudo_sections():
    require_data("xenium_mousebrain_ctxhp")
    return datasets.xenium_capture(CAPTURE, n_cells=CELLS, seed=0)


def test_a_cell_type_missing_from_the_reference_is_flagged_not_absorbed(record_property):
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.neighbors import NearestNeighbors

    secs = xenium_pseudo_sections()
    ref = [a[~a.obs["cell_type"].isin(HELD_OUT)].copy() for a in secs[:2]]
    query = secs[2]
    t0 = time.perf_counter()
    model = fusemap.integrate(ref, progress=False, seed=0)
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    mapped = fusemap.map_query(model, query, progress=False)
    t_map = time.perf_counter() - t0
    new = query.obs["cell_type"].isin(HELD_OUT).to_numpy()
    nov = query.obs["fusemap_novelty"].to_numpy()
    res = fusemap.transfer_labels(ref, query, "cell_type", novelty_threshold=0.99)
    pred = query.obs["fusemap_cell_type"].astype(str).to_numpy()
    truth = query.obs["cell_type"].astype(str).to_numpy()
    assigned = pred != "unassigned"
    top_share = pd.Series(pred[new & assigned]).value_counts(normalize=True).max()
    z = query.obsm["X_fusemap_cell"]
    nn = NearestNeighbors(n_neighbors=16).fit(z).kneighbors(z[new], return_distance=False)[:, 1:]
    summary = {
        "auroc": round(float(roc_auc_score(new, nov)), 3),
        "novel_share_held_out": round(float((nov[new] > 0.99).mean()), 3),
        "novel_share_others": round(float((nov[~new] > 0.99).mean()), 3),
        "unassigned_held_out": round(float((~assigned[new]).mean()), 3),
        "unassigned_others": round(float((~assigned[~new]).mean()), 3),
        "held_out_top_reference_class_share": round(float(top_share), 3),
        "held_out_neighbour_purity": round(float(new[nn].mean()), 3),
        "accuracy_others": round(float(accuracy_score(truth[~new & assigned], pred[~new & assigned])), 3),
        "balance": mapped.train_state.balance_summary["sentence"],
        "novelty": mapped.summary()["novelty"],
        "reference_seconds": round(t_ref, 1), "mapping_seconds": round(t_map, 1),
        "n_held_out_query_cells": int(new.sum()),
    }
    print("\nXenium, C9 + C8 held out of the reference:", json.dumps(summary))
    for k, v in summary.items():
        record_property(k, v)
    assert summary["auroc"] > 0.85
    assert summary["novel_share_held_out"] > 10 * max(summary["novel_share_others"], 0.005)
    assert summary["unassigned_others"] < 0.03
    assert summary["held_out_top_reference_class_share"] < 0.5  # not absorbed into one reference type
    assert summary["held_out_neighbour_purity"] > 0.6  # they stay together
    assert summary["accuracy_others"] > 0.8
    assert res.n_unassigned == int((~assigned).sum())
