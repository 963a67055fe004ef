"""Label transfer, on constructed embeddings so the classifier is tested on its own
(the command-line chain is in tests/cli/test_query_commands.py)."""

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import fusemap
from fusemap import FuseMapInputError, FuseMapWarning

MAIN = {"A1": "A", "A2": "A", "B1": "B", "B2": "B", "C1": "C"}


def embedded(n, seed, k=8, shift=0.0, rare=None):
    """Cells in a k-dimensional embedding: one Gaussian blob per sub-class, nested in main classes."""
    rng = np.random.default_rng(seed)
    centres = {c: np.random.default_rng(100 + i).normal(0, 3, k) for i, c in enumerate([*MAIN, "R1"])}
    subs = rng.choice(list(MAIN), n)
    if rare:
        subs = np.concatenate([subs, [rare] * 3])
    x = np.stack([centres[s] for s in subs]) + rng.normal(0, 0.7, (len(subs), k)) + shift
    a = ad.AnnData(np.zeros((len(subs), 1), dtype=np.float32),
                   obs=pd.DataFrame({"sub": subs, "main": [MAIN.get(s, "R") for s in subs]},
                                    index=[f"s{seed}_c{i}" for i in range(len(subs))]))
    a.obsm["X_fusemap_cell"] = x.astype(np.float32)
    a.obsm["X_fusemap_spatial"] = -x.astype(np.float32)
    return a


@pytest.mark.parametrize("method", ["mlp", "knn"])
def test_transfer_recovers_labels_with_uncertainty(method):
    ref = [embedded(400, 1), embedded(400, 2)]
    query = embedded(300, 3, shift=0.1)
    res = fusemap.transfer_labels(ref, query, "main", method=method)
    truth = query.obs["main"].to_numpy()
    acc = (query.obs["fusemap_main"].astype(str).to_numpy() == truth).mean()
    assert acc > 0.95
    u = query.obs["fusemap_main_uncertainty"].to_numpy()
    assert 0 <= u.min() and u.max() <= 1
    # wrong predictions are less certain than right ones
    wrong = query.obs["fusemap_main"].astype(str).to_numpy() != truth
    if wrong.any():
        assert u[wrong].mean() > u[~wrong].mean()
    assert res.heldout_accuracy["main"] > 0.95 and abs(res.n_heldout["main"] - 160) <= 3
    assert res.classes["main"] == ["A", "B", "C"]
    assert list(res.predictions.index) == list(query.obs_names)


def test_hierarchical_transfer_keeps_sub_labels_inside_the_main_class():
    ref = [embedded(500, 1), embedded(500, 2)]
    query = embedded(300, 3)
    res = fusemap.transfer_labels(ref, query, "main", hierarchy="sub")
    main, sub = query.obs["fusemap_main"].astype(str), query.obs["fusemap_sub"].astype(str)
    assert all(MAIN[s] == m for s, m in zip(sub, main))
    assert (sub.to_numpy() == query.obs["sub"].to_numpy()).mean() > 0.9
    assert res.levels == ["main", "sub"]
    assert set(res.heldout_accuracy) == {"main", "sub"}
    assert res.heldout_accuracy["sub"] <= res.heldout_accuracy["main"] + 1e-9
    # C has one sub-class only: certain by construction
    assert (query.obs.loc[main == "C", "fusemap_sub_uncertainty"] == 0).all()


def test_rare_classes_are_named_and_handled():
    ref = [embedded(300, 1, rare="R1"), embedded(300, 2)]
    query = embedded(100, 3)
    with pytest.warns(FuseMapWarning, match=r"'main'.*left out.*\{'R': 3\}"):
        res = fusemap.transfer_labels(ref, query, "main")
    assert res.rare_classes["main"] == {"R": 3} and "R" not in res.classes["main"]
    assert "R" not in set(query.obs["fusemap_main"].astype(str))
    with pytest.warns(FuseMapWarning, match="merged into 'other'"):
        res = fusemap.transfer_labels(ref, query, "main", rare="other")
    assert "other" in res.classes["main"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fusemap.transfer_labels(ref, query, "main", min_cells=2)
    assert not [w for w in caught if issubclass(w.category, FuseMapWarning)]
    assert "R" in res.classes["main"]


def test_unlabelled_reference_cells_are_left_out_and_counted():
    ref = embedded(400, 1)
    ref.obs["main"] = ref.obs["main"].astype(object)
    ref.obs.iloc[:40, ref.obs.columns.get_loc("main")] = None
    res = fusemap.transfer_labels(ref, embedded(100, 3), "main")
    assert res.n_unlabelled_reference_cells["main"] == 40
    assert "None" not in res.classes["main"] and "nan" not in res.classes["main"]


def test_spatial_embedding_is_used_for_regions():
    ref, query = embedded(400, 1), embedded(100, 3)
    query.obsm["X_fusemap_cell"] = np.zeros_like(query.obsm["X_fusemap_cell"])  # useless on purpose
    fusemap.transfer_labels(ref, query, "main", embedding="spatial", method="knn")
    assert (query.obs["fusemap_main"].astype(str) == query.obs["main"]).mean() > 0.95
    # the novelty is measured on the cell embedding whatever the classifier uses: all cells at one
    # point far from the reference are new
    with pytest.warns(FuseMapWarning, match="not aligned"):
        res = fusemap.transfer_labels(ref, query, "main", embedding="spatial", method="knn", write=False,
                                      novelty_threshold=0.99)
    assert res.n_unassigned == query.n_obs


def test_transfer_errors():
    ref, query = embedded(200, 1), embedded(50, 3)
    with pytest.raises(FuseMapInputError, match=r"labels missing.*no obs column\(s\) \['cell_type'\]"):
        fusemap.transfer_labels(ref, query, "cell_type")
    raw = query.copy()
    del raw.obsm["X_fusemap_cell"]
    with pytest.raises(FuseMapInputError, match="map the query onto the reference first"):
        fusemap.transfer_labels(ref, raw, "main")
    narrow = query.copy()
    narrow.obsm["X_fusemap_cell"] = narrow.obsm["X_fusemap_cell"][:, :4]
    with pytest.raises(FuseMapInputError, match="4 dimensions"):
        fusemap.transfer_labels(ref, narrow, "main")
    with pytest.raises(FuseMapInputError, match="embedding="):
        fusemap.transfer_labels(ref, query, "main", embedding="gene")


# -- command line ------------------------------------------------------------------------------------------
