"""Real data (STARmap mPFC mosaic: three sections, 40 genes shared, 100 per section).

Imputation: the masked genes of each section were measured, so they are ground truth. FuseMap's
imputation must beat a kNN baseline: the mean over the 50 nearest cells of the OTHER sections that
measured the gene, found in a PCA + Harmony space of the shared genes.

Label transfer, leave one section out: a reference trained on BZ5 + BZ9, BZ14 mapped onto it,
``cell_type`` transferred; accuracy and macro-F1 on BZ14 must beat kNN on PCA + Harmony.
"""

import time

import numpy as np
import pytest

import fusemap
from fusemap.preprocess import preprocess

from conftest import harmony_on_shared_genes

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

K_BASELINE = 50


def harmony_space(sections, genes, seed=0):
    """The Harmony baseline (conftest.harmony_on_shared_genes), split back into sections."""
    z, _ = harmony_on_shared_genes(sections, genes, seed)
    bounds = np.cumsum([0] + [a.n_obs for a in sections])
    return [z[bounds[i]:bounds[i + 1]] for i in range(len(sections))]


def dense_preprocessed(adata):
    x, _ = preprocess(adata.X, normalized=False, target_sum=None, clip=10.0)
    return x.toarray()


def pearson_columns(a, b):
    """Pearson R of matching columns; NaN where either column is constant."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(0) / den, np.nan)


def knn_imputation(masked, coords, target, genes, k=K_BASELINE):
    """Baseline: mean of each gene over the k nearest cells of the other sections measuring it."""
    from sklearn.neighbors import NearestNeighbors

    donors = [dense_preprocessed(a) for a in masked]
    out = np.full((masked[target].n_obs, len(genes)), np.nan, dtype=np.float32)
    groups: dict[tuple, list[int]] = {}
    for j, g in enumerate(genes):
        srcs = tuple(u for u, a in enumerate(masked) if u != target and g in set(a.var_names))
        groups.setdefault(srcs, []).append(j)
    for srcs, cols in groups.items():
        pool = np.concatenate([coords[u] for u in srcs])
        nn = NearestNeighbors(n_neighbors=min(k, len(pool))).fit(pool)
        idx = nn.kneighbors(coords[target], return_distance=False)
        for j in cols:
            g = genes[j]
            vals = np.concatenate([donors[u][:, list(masked[u].var_names).index(g)] for u in srcs])
            out[:, j] = vals[idx].mean(1)
    return out


def imputation_scores(model, masked, full, **options):
    """Pearson R of every masked (section, gene) pair: FuseMap's imputation and the kNN baseline."""
    shared = masked[0].uns["shared_genes"]
    coords = harmony_space(masked, shared)
    ours, base = [], []
    for v, (name, a) in enumerate(zip(model.section_names, masked)):
        genes = list(a.uns["masked_genes"])
        truth = dense_preprocessed(full[v])[:, [list(full[v].var_names).index(g) for g in genes]]
        imp = fusemap.impute(model, name, genes, **options).X
        ours.append(scored(imp, truth))
        base.append(scored(knn_imputation(masked, coords, v, genes), truth))
    return np.concatenate(ours), np.concatenate(base)


def scored(imp, truth):
    """Pearson R per gene; a constant imputation of a varying gene (e.g. a decoder read-out whose
    ReLU is zero in every cell) scores 0, not NaN, so it counts against the method instead of
    leaving the mean. NaN only where the truth itself is constant."""
    r = pearson_columns(imp, truth)
    r[np.isnan(r) & (truth.std(0) > 0)] = 0.0
    return r


def test_imputation_beats_knn_on_masked_genes(starmap_mosaic, starmap_model, record_property):
    masked, full = starmap_mosaic
    t0 = time.perf_counter()
    ours, base = imputation_scores(starmap_model, masked, full)  # defaults
    t_default = time.perf_counter() - t0
    variants = {f"{m}_neighbors{k}": imputation_scores(starmap_model, masked, full, method=m, neighbors=k)[0]
                for m in ("decoder", "product") for k in (1, 50)}
    ok = ~np.isnan(ours) & ~np.isnan(base)
    summary = {
        "pairs": int(ok.sum()), "pairs_constant_truth": int((~ok).sum()),
        "fusemap_default_mean_r": round(float(ours[ok].mean()), 3),
        **{f"fusemap_{k}_mean_r": round(float(v[ok].mean()), 3) for k, v in variants.items()},
        "knn_harmony_mean_r": round(float(base[ok].mean()), 3),
        "default_wins_fraction": round(float((ours[ok] > base[ok]).mean()), 3),
        "seconds_default_and_baseline": round(t_default, 1),
    }
    print("\nSTARmap mosaic imputation:", summary)
    for k, v in summary.items():
        record_property(k, v)
    assert summary["pairs"] >= 190  # 3 sections x 66 masked genes, constant ones aside
    assert ours[ok].mean() > base[ok].mean()
    # neighbour averaging is what the default adds to the model's own read-out, and it pays
    assert ours[ok].mean() > variants["decoder_neighbors1"][ok].mean() + 0.01


def test_imputing_measured_genes_matches_the_measurement(starmap_mosaic, starmap_model):
    masked, _ = starmap_mosaic
    r = []
    for name, a in zip(starmap_model.section_names, masked):
        genes = list(map(str, a.var_names))
        r.append(pearson_columns(fusemap.impute(starmap_model, name, genes).X, dense_preprocessed(a)))
    r = np.concatenate(r)
    print(f"\nmeasured genes: mean R {np.nanmean(r):.3f}")
    assert np.nanmean(r) > 0.5


def test_leave_one_section_out_label_transfer_beats_knn_on_harmony(starmap_mosaic, record_property):
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.neighbors import KNeighborsClassifier

    masked, _ = starmap_mosaic
    ref_sections = [a.copy() for a in masked[:2]]
    query = masked[2].copy()
    t0 = time.perf_counter()
    ref = fusemap.integrate(ref_sections, progress=False, seed=0, max_epochs=150)
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    snapshot = {k: v.clone() for k, v in ref.module.state_dict().items()}
    mapped = fusemap.map_query(ref, query, progress=False, max_epochs=150)
    t_map = time.perf_counter() - t0
    assert all(np.array_equal(mapped.module.state_dict()[k].numpy(), v.numpy()) for k, v in snapshot.items())
    new_genes = len(mapped.vocabulary) - len(ref.vocabulary)
    assert new_genes > 0  # BZ14 measures genes neither reference section has

    truth = query.obs["cell_type"].astype(str).to_numpy()
    res = fusemap.transfer_labels(ref_sections, query, "cell_type")
    pred = query.obs["fusemap_cell_type"].astype(str).to_numpy()
    acc, f1 = accuracy_score(truth, pred), f1_score(truth, pred, average="macro")
    res_knn = fusemap.transfer_labels(ref_sections, query, "cell_type", method="knn", write=False)
    pred_knn = res_knn.predictions["fusemap_cell_type"].to_numpy()

    coords = harmony_space(masked, masked[0].uns["shared_genes"])
    x_ref = np.concatenate(coords[:2])
    y_ref = np.concatenate([a.obs["cell_type"].astype(str).to_numpy() for a in masked[:2]])
    base = {}
    for k in (5, 15, 50):
        p = KNeighborsClassifier(n_neighbors=k).fit(x_ref, y_ref).predict(coords[2])
        base[k] = (accuracy_score(truth, p), f1_score(truth, p, average="macro"))
    best_acc = max(v[0] for v in base.values())
    best_f1 = max(v[1] for v in base.values())
    # region labels from the spatial embedding, for the record
    reg = fusemap.transfer_labels(ref_sections, query, "region", embedding="spatial", write=False)
    reg_acc = accuracy_score(query.obs["region"].astype(str), reg.predictions["fusemap_region"])
    summary = {
        "fusemap_mlp_accuracy": round(acc, 3), "fusemap_mlp_macro_f1": round(f1, 3),
        "fusemap_knn_accuracy": round(accuracy_score(truth, pred_knn), 3),
        "fusemap_knn_macro_f1": round(f1_score(truth, pred_knn, average="macro"), 3),
        "harmony_knn": {k: (round(a, 3), round(b, 3)) for k, (a, b) in base.items()},
        "reference_heldout_accuracy": round(res.heldout_accuracy["cell_type"], 3),
        "reference_heldout_macro_f1": round(res.heldout_macro_f1["cell_type"], 3),
        "region_accuracy_spatial_embedding": round(float(reg_acc), 3),
        "mean_uncertainty_right_wrong": (round(float(query.obs["fusemap_cell_type_uncertainty"][pred == truth].mean()), 3),
                                         round(float(query.obs["fusemap_cell_type_uncertainty"][pred != truth].mean()), 3)),
        "new_query_genes": new_genes,
        "reference_epochs": ref.train_state.epochs_per_phase, "mapping_epochs": mapped.train_state.epochs_per_phase,
        "reference_seconds": round(t_ref, 1), "mapping_seconds": round(t_map, 1),
    }
    print("\nSTARmap leave-BZ14-out label transfer:", summary)
    for k, v in summary.items():
        record_property(k, v)
    assert acc > best_acc
    assert f1 > best_f1
