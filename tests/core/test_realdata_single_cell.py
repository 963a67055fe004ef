"""Real data: a single-cell reference without coordinates in the same model as a spatial section.

Slide-seqV2 hippocampus (2,000 of its 5,000 beads, seed 0) integrated with the Drop-seq hippocampus
reference of the RCTD vignette (510 cells x 307 genes, ``cell_type``, no ``obsm['spatial']``).
They share 78 genes. To keep the run affordable on 2 CPU cores (about 1.5 min, 80 s of it training) the Slide-seq
section keeps only the genes it shares with the reference; with its 480 most detected genes the
run takes 2 min and the imputation scores are lower (decoder 0.160, knn 0.159 against the same
baseline 0.169; seed 0, 20 epochs per phase).

Imputation: 20 shared genes are held out of the Slide-seq section (every third of the 60 shared
genes most often detected in Slide-seq, so that they can be scored on beads holding ~40 UMIs);
they are imputed from the reference, the only section that measured them, and compared with the
measured Slide-seq values (Pearson R per gene over beads, mean over genes). Baseline: the mean
over the 15 nearest reference cells in a PCA (30 components) of the remaining shared genes,
pooled, normalised to one target sum, log1p, scaled. Measured (seed 0, 20 epochs per phase):
decoder read-out 0.195, knn read-out (default) 0.175, baseline 0.169.

Labels: Slide-seq has only Louvain clusters. A cluster gets the reference type that two rules,
both independent of FuseMap and both on the 78 shared genes measured in both, agree on: (1) the
type whose top-5 Wilcoxon markers (scanpy, on the reference) score highest over the cluster's
beads (per-type mean log-normalised marker expression, z-scored over beads, averaged per
cluster); (2) the type whose mean profile correlates best with the cluster's mean profile
(log-normalised, centred per gene over clusters / types). Clusters where the rules disagree are
left out (C1 and C11 at seed 0: 540 of 2,000 beads). Measured: transfer accuracy on the labelled
beads 0.266 (mlp; 0.273 in another run) against a majority class of 0.271, and 0.414 for a 15-NN
vote in the PCA above (measured outside the test):
the transfer is no better than the majority class here (Slide-seq beads are mixtures of cells
with ~40 UMIs); the test keeps a floor below the measured value and reports the gap.
"""

import time
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import fusemap
from fusemap.imputation import pearson_columns
from fusemap.preprocess import preprocess

from conftest import require_data

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

SLIDE, REF = "slideseqv2_hippocampus", "ref_dropseq_hippocampus_rctd"
N_BEADS, EPOCHS, K_BASELINE = 2000, 20, 15


def log_normalised(adata, genes):
    import scanpy as sc

    a = adata[:, genes].copy()
    a.X = sp.csr_matrix(a.X, dtype=np.float32)
    sc.pp.normalize_total(a)
    sc.pp.log1p(a)
    return a


def dense_preprocessed(adata):
    """The scale fusemap imputes on (log1p of normalised counts / per-gene sd)."""
    x, _ = preprocess(adata.X, normalized=False, target_sum=None, clip=10.0)
    return x.toarray()


@pytest.fixture(scope="module")
def run():
    d = require_data(SLIDE, REF)
    slide, ref = ad.read_h5ad(d / f"{SLIDE}.h5ad"), ad.read_h5ad(d / f"{REF}.h5ad")
    assert "spatial" not in ref.obsm and "spatial" in slide.obsm
    slide = slide[np.sort(np.random.default_rng(0).choice(slide.n_obs, N_BEADS, replace=False))].copy()
    shared = sorted(set(slide.var_names) & set(ref.var_names))
    detected = np.asarray((slide[:, shared].X > 0).mean(0)).ravel()
    held = [shared[i] for i in np.argsort(-detected, kind="stable")][:60:3]
    masked = slide[:, [g for g in shared if g not in set(held)]].copy()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fusemap.FuseMapWarning)
        model = fusemap.integrate({"slideseq": masked, "dropseq": ref}, max_epochs=EPOCHS, seed=0, progress=False)
    return dict(model=model, slide=slide, masked=masked, ref=ref, shared=shared, held=held,
                seconds=time.perf_counter() - t0)


def test_reference_is_used_without_coordinates(run):
    model = run["model"]
    assert model.no_coordinates == ["dropseq"]
    info = {i["name"]: i for i in model.section_info}
    assert info["dropseq"]["coordinates"] is False and info["dropseq"]["n_edges"] == 0
    assert info["slideseq"]["mean_degree"] > 4
    e = model.embeddings()["dropseq"]
    np.testing.assert_array_equal(e.spatial, e.cell)
    assert "spatial" not in model.train_state.mixing  # one section with coordinates: no spatial check
    assert model.train_state.mixing["cell"]["shared_cell_fraction"] > 0.5  # measured 0.87
    assert run["seconds"] < 240  # measured ~75 s on 2 busy cores


def test_held_out_genes_imputed_from_the_reference_beat_knn_in_pca(run):
    import scanpy as sc
    from sklearn.neighbors import NearestNeighbors

    model, slide, ref, held = run["model"], run["slide"], run["ref"], run["held"]
    truth = dense_preprocessed(slide)[:, [list(slide.var_names).index(g) for g in held]].astype(np.float64)
    scores = {}
    for method in ("decoder", "knn"):
        imp = fusemap.impute(model, "slideseq", genes=held, method=method)
        assert imp.shape == (N_BEADS, len(held)) and list(imp.var["measured_in"]) == [""] * len(held)
        ref_held = len(model.data[model.section_names.index("dropseq")].val_idx)
        assert imp.var["confidence_cells"].eq(ref_held).all()  # the reference's held-out cells
        scores[method] = float(np.nanmean(pearson_columns(np.asarray(imp.X, dtype=np.float64), truth)))
    conf = imp.var["confidence_r"].to_numpy()
    assert np.isfinite(conf).all() and conf.mean() > 0.4  # within the reference, measured 0.64

    base_genes = [g for g in run["shared"] if g not in set(held)]
    # pooled before normalising: one target sum for beads and cells (each normalised to its own
    # median total, the baseline scored 0.102)
    both = log_normalised(ad.concat({"s": slide[:, base_genes], "r": ref[:, base_genes]}, label="src"), base_genes)
    sc.pp.scale(both, max_value=10)
    sc.tl.pca(both, n_comps=30, random_state=0)
    z = both.obsm["X_pca"]
    is_s = both.obs["src"].to_numpy() == "s"
    idx = NearestNeighbors(n_neighbors=K_BASELINE).fit(z[~is_s]).kneighbors(z[is_s], return_distance=False)
    ref_values = dense_preprocessed(ref)[:, [list(ref.var_names).index(g) for g in held]]
    baseline = float(np.nanmean(pearson_columns(ref_values[idx].mean(1).astype(np.float64), truth)))
    print(f"imputation mean R: decoder {scores['decoder']:.3f}, knn {scores['knn']:.3f}, "
          f"baseline {baseline:.3f}")
    assert scores["decoder"] > baseline + 0.01  # measured 0.195 vs 0.169
    assert scores["knn"] > baseline - 0.02  # measured 0.175: on par with the baseline


def cluster_labels(slide, ref, shared):
    """Reference type of each Louvain cluster where the marker rule and the profile rule agree."""
    import scanpy as sc

    r, s = log_normalised(ref, shared), log_normalised(slide, shared)
    sc.tl.rank_genes_groups(r, "cell_type", method="wilcoxon", n_genes=5)
    types = list(r.obs["cell_type"].cat.categories)
    markers = {t: list(r.uns["rank_genes_groups"]["names"][t]) for t in types}
    score = pd.DataFrame({t: np.asarray(s[:, m].X.mean(1)).ravel() for t, m in markers.items()})
    score = (score - score.mean()) / score.std()
    clusters = slide.obs["louvain_cluster"].astype(str).to_numpy()
    by_markers = score.groupby(clusters).mean().idxmax(1)
    prof_s = pd.DataFrame(s.X.toarray(), columns=shared).groupby(clusters).mean()
    prof_r = pd.DataFrame(r.X.toarray(), columns=shared).groupby(r.obs["cell_type"].astype(str).to_numpy()).mean()
    cs, cr = prof_s - prof_s.mean(), prof_r - prof_r.mean()
    corr = pd.DataFrame(np.corrcoef(cs.to_numpy(), cr.to_numpy())[:len(cs), len(cs):], index=cs.index,
                        columns=cr.index)
    by_profile = corr.idxmax(1)
    agreed = by_markers[by_markers == by_profile]
    return pd.Series(clusters).map(agreed).to_numpy(dtype=object)


def test_reference_labels_transfer_to_beads(run):
    slide, ref, masked = run["slide"], run["ref"], run["masked"]
    labels = cluster_labels(slide, ref, run["shared"])
    known = np.array([v is not None and v == v for v in labels])
    assert known.sum() > 1000  # measured 1,460 beads in 10 of 12 clusters
    result = fusemap.transfer_labels(ref, masked, "cell_type", write=False)
    pred = result.predictions["fusemap_cell_type"].astype(str).to_numpy()
    assert len(pred) == N_BEADS and set(pred) <= set(ref.obs["cell_type"].astype(str))
    assert result.heldout_accuracy["cell_type"] > 0.6  # reference held-out cells, measured 0.80
    acc = float((pred[known] == labels[known]).mean())
    majority = float(pd.Series(labels[known]).value_counts(normalize=True).iloc[0])
    print(f"transfer accuracy {acc:.3f}, majority class {majority:.3f}")
    assert acc > 0.2  # measured 0.266 against a majority class of 0.271 (see the module docstring)
