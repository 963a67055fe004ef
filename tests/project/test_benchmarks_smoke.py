"""Smoke test of benchmarks/: our FuseMap and Harmony on a small cut of the STARmap mosaic, through the
same command, workers, scoring and writers as the full run, so the scripts cannot rot."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import require_data

pytestmark = pytest.mark.realdata


def test_cases_are_deterministic_and_labels_harmonised(tmp_path):
    require_data("starmap_mpfc_BZ5", "starmap_mpfc_BZ9", "starmap_mpfc_BZ14", "osmfish_sscortex")
    from benchmarks import cases

    a = cases.build_case("starmap_mosaic", tmp_path / "a")
    b = cases.build_case("starmap_mosaic", tmp_path / "b")
    ia, ib = cases.CaseInfo.read(a), cases.CaseInfo.read(b)
    assert ia.shared_genes == ib.shared_genes and len(ia.shared_genes) == 40
    assert ia.masked_genes == ib.masked_genes
    assert all(len(g) == 66 for g in ia.masked_genes.values())
    assert ia.held_out == "BZ14" and ia.reference == ["BZ5", "BZ9"]

    x = cases.build_case("starmap_osmfish", tmp_path / "x")
    ix = cases.CaseInfo.read(x)
    assert ix.held_out == "osmFISH" and len(ix.shared_genes) == 11
    import anndata as ad
    osm = ad.read_h5ad(x / ix.files[-1])
    star = ad.read_h5ad(x / ix.files[0])
    assert osm.n_obs == cases.OSMFISH_CELLS
    assert set(osm.obs["region"]) <= {"L1", "L2/3", "L4", "L5", "L6"}
    # the classes both technologies share are the ones transfer is scored on
    shared = set(star.obs["cell_type"]) & set(osm.obs["cell_type"])
    assert {"Excitatory", "Inhibitory", "Astrocyte", "Oligodendrocyte", "Endothelial"} <= shared


def test_xenium_capture_case_differs_only_in_depth(tmp_path):
    require_data("xenium_mousebrain_ctxhp")
    import anndata as ad
    from benchmarks import cases

    d = cases.build_case("xenium_capture", tmp_path)
    info = cases.CaseInfo.read(d)
    secs = [ad.read_h5ad(d / f) for f in info.files]
    assert info.sections == ["capture90", "capture50", "capture30"] and info.held_out == "capture30"
    masked = [set(info.masked_genes[s]) for s in info.sections]
    assert all(len(m) == cases.XENIUM_MASKED_PER_SECTION for m in masked)
    assert not (masked[0] & masked[1]) and not (masked[1] & masked[2]) and not (masked[0] & masked[2])
    assert len(info.shared_genes) == 248 - 3 * cases.XENIUM_MASKED_PER_SECTION
    # molecules per cell on the shared genes follow the capture rates (cells were split at random)
    depth = [float(a[:, info.shared_genes].X.sum(1).mean()) for a in secs]
    np.testing.assert_allclose(np.array(depth) / depth[0], [1.0, 5 / 9, 3 / 9], rtol=0.05)
    # every cell type and niche is in every section, in about the same proportion
    for key in ("cell_type", "region"):
        props = [a.obs[key].value_counts(normalize=True) for a in secs]
        assert set(props[0].index) == set(props[1].index) == set(props[2].index)
        assert max((props[0] - p).abs().max() for p in props[1:]) < 0.03
    assert sum(a.n_obs for a in secs) >= 4980  # thinning empties a few cells (11 of 5,000)
    again = cases.build_case("xenium_capture", tmp_path / "again")
    assert cases.CaseInfo.read(again).masked_genes == info.masked_genes


def test_marker_rule_calls_clusters_by_their_markers():
    """The rule that labels cluster-only sources: a cluster high in one class's markers takes that
    class; classes without a measured marker are never called."""
    import anndata as ad
    import scipy.sparse as sp
    from benchmarks import cases

    rng = np.random.default_rng(0)
    genes = ["Gad1", "Gad2", "Slc17a7", "Gfap", "Aqp4", "Mbp", "Filler"]
    x = rng.poisson(1.0, size=(300, len(genes))).astype(float)
    clusters = np.repeat(["a", "b", "c", "d"], 75)
    x[clusters == "a", 0:2] += 20  # interneurons
    x[clusters == "b", 2] += 20    # excitatory
    x[clusters == "c", 3:5] += 20  # astrocytes
    x[clusters == "d", 5] += 20    # oligodendrocytes
    a = ad.AnnData(sp.csr_matrix(x), obs=pd.DataFrame({"cl": clusters}, index=[str(i) for i in range(300)]),
                   var=pd.DataFrame(index=genes))
    rule = cases.classes_by_markers(a, "cl")
    assert rule == {"a": "Inhibitory", "b": "Excitatory", "c": "Astrocyte", "d": "Oligodendrocyte"}
    assert not set(rule.values()) & {"Immune", "Endothelial"}  # no marker measured


def test_report_cases_are_built_with_their_rules(tmp_path):
    require_data("xenium_mousebrain_ctxhp", "slideseqv2_hippocampus", "ref_dropseq_hippocampus_rctd",
                 "starmap_mpfc_BZ5", "osmfish_sscortex")
    import anndata as ad
    from benchmarks import cases

    assert not set(cases.REPORT_CASES) & set(cases.DEVELOPMENT_CASES)
    assert set(cases.REPORT_CASES) | set(cases.DEVELOPMENT_CASES) == set(cases.BUILDERS)
    for name in cases.REPORT_CASES:
        d = cases.build_case(name, tmp_path)
        info = cases.CaseInfo.read(d)
        secs = {s: ad.read_h5ad(d / f) for s, f in zip(info.sections, info.files)}
        assert info.role == "report"
        # masked genes were measured (truth exists) and are in no section's panel
        for s, genes in info.masked_genes.items():
            truth = ad.read_h5ad(d / "truth" / f"{s}.h5ad")
            assert list(truth.var_names) == genes and truth.n_obs == secs[s].n_obs
            assert not set(genes) & set(secs[s].var_names)
            assert not set(genes) & set(info.shared_genes)
            # each masked gene is measured by another section, so it can be imputed
            assert all(any(g in set(secs[o].var_names) for o in info.sections if o != s) for g in genes)
        for s, a in secs.items():
            assert set(info.shared_genes) <= set(a.var_names)
            assert ("spatial" in a.obsm) == (s not in info.no_coordinates)
            assert set(a.obs["cell_type"]) <= set(cases.CLASS_MARKERS)  # one coarse vocabulary
        # the held-out section shares most of its cells' classes with the reference
        ref = set().union(*(set(secs[s].obs["cell_type"]) for s in info.reference))
        held = secs[info.held_out].obs["cell_type"]
        assert held.isin(ref).mean() > 0.9
    # the majority-class floor of the transfer table: the reference's most frequent class everywhere
    from benchmarks.ablation import majority_row, scored_kinds
    from benchmarks.scoring import read_case
    case = read_case(tmp_path / "hippocampus_scref")
    assert [k for k, _ in scored_kinds(case)] == ["cell"]  # one section has coordinates: no spatial score
    held = ad.read_h5ad(tmp_path / "hippocampus_scref" / case.info["files"][1]).obs["cell_type"]
    assert majority_row(case) == pytest.approx(
        {"cell_transfer_acc": (held == "Excitatory").mean(), "cell_transfer_f1": majority_row(case)["cell_transfer_f1"]})
    assert majority_row(case)["cell_transfer_f1"] < 0.15
    sizes = {"hippocampus_xenium_slideseq": (2, 79), "cortex_three_tech": (5, 7), "hippocampus_scref": (2, 58)}
    for name, (n_sec, n_shared) in sizes.items():
        info = cases.CaseInfo.read(tmp_path / name)
        assert (len(info.sections), len(info.shared_genes)) == (n_sec, n_shared)


def test_development_case_with_a_reference_without_coordinates(tmp_path):
    require_data("starmap_mpfc_BZ5", "starmap_mpfc_BZ9", "starmap_mpfc_BZ14", "osmfish_sscortex")
    import anndata as ad
    from benchmarks import cases
    from benchmarks.ablation import scored_kinds
    from benchmarks.scoring import read_case

    d = cases.build_case("starmap_scref", tmp_path)
    info = cases.CaseInfo.read(d)
    assert info.role == "development" and info.no_coordinates == ["STARmapRef"]
    ref, osm = (ad.read_h5ad(d / f) for f in info.files)
    assert (ref.n_obs, ref.n_vars, osm.n_obs, osm.n_vars) == (3190, 166, 1500, 33)
    assert "spatial" not in ref.obsm and "spatial" in osm.obsm
    assert len(info.shared_genes) == 11 and set(info.shared_genes) <= set(ref.var_names) & set(osm.var_names)
    assert set(ref.obs["region"]) == {"none"}
    assert osm.obs["cell_type"].isin(set(ref.obs["cell_type"])).mean() > 0.9
    assert [k for k, _ in scored_kinds(read_case(d))] == ["cell"]


@pytest.mark.slow
def test_ours_and_harmony_end_to_end(tmp_path):
    require_data()
    from benchmarks import run

    rc = run.main(["--cases", "starmap_mosaic", "--methods", "ours,harmony", "--seeds", "1",
                   "--max-cells", "350", "--no-umap", "--no-kbet", "--work", str(tmp_path / "work"),
                   "--results", str(tmp_path / "results"),
                   "--params", json.dumps({"fusemap_ours": {"max_epochs": 15}})])
    assert rc == 0
    res = tmp_path / "results"
    runs = pd.read_csv(res / "runs.csv")
    assert set(runs.method) == {"FuseMap (ours)", "Harmony"}
    assert (runs.status == "ok").all(), runs.error.tolist()
    assert (runs.wall_seconds > 0).all() and (runs.peak_rss_mb > 50).all()

    s = pd.read_csv(res / "summary.csv")

    def value(method, task, metric, embedding=None):
        q = s[(s.method == method) & (s.task == task) & (s.metric == metric)]
        if embedding:
            q = q[q.embedding == embedding]
        assert len(q) == 1, (method, task, metric, embedding)
        return float(q["mean"].iloc[0])

    base = "PCA of shared genes (no integration)"
    for m in ("FuseMap (ours)", "Harmony", base):
        for task in ("scIB cell embedding", "scIB spatial embedding"):
            for metric in ("Total", "Batch correction", "Bio conservation"):
                assert 0.0 < value(m, task, metric) < 1.0
    # integration does something: Harmony mixes sections better than the unintegrated PCA (ours is
    # trained for only 15 epochs here, too few to judge its mixing; the full run does that)
    assert value("Harmony", "scIB cell embedding", "Batch correction") > \
        value(base, "scIB cell embedding", "Batch correction") + 0.05
    assert value("FuseMap (ours)", "scIB cell embedding", "Bio conservation") > 0.2
    # imputation of masked genes: kNN on any embedding carries signal
    for m in ("FuseMap (ours)", "Harmony", base):
        r = value(m, "imputation", "pearson_mean", "kNN on cell embedding")
        assert 0.02 < r < 1.0
    # annotation transfer to the held-out section beats chance (15 cell types, 4 layers)
    for m in ("FuseMap (ours)", "Harmony"):
        acc = s[(s.method == m) & (s.task == "transfer") & (s.metric == "accuracy")]
        assert (acc["mean"] > 0.2).all() and len(acc) >= 2
    md = (res / "RESULTS.md").read_text()
    assert "| FuseMap (ours) | all panels |" in md and "Harmony *(shared genes only)*" in md
    assert (res / "scib_starmap_mosaic_max350.png").stat().st_size > 10_000
    sc = pd.read_csv(res / "scores.csv")
    assert np.isfinite(sc.value).all()


@pytest.mark.filterwarnings("ignore")
def test_imputation_scores_follow_li_et_al():
    """The four imputation scores of Li et al. 2022 on cases with known answers."""
    from benchmarks import scoring

    rng = np.random.default_rng(0)
    y = rng.poisson(2.0, size=(500, 4)).astype(float)
    same = scoring.imputation_scores({"s": (["a", "b", "c", "d"], y)}, {"s": (["a", "b", "c", "d"], y.copy())})
    assert same["pearson_mean"] == pytest.approx(1.0) and same["ssim_mean"] == pytest.approx(1.0)
    assert same["rmse_mean"] == pytest.approx(0.0, abs=1e-12) and same["js_mean"] == pytest.approx(0.0, abs=1e-12)
    # an anti-correlated read-out: R = -1 and RMSE of z-scores = 2
    flipped = scoring.imputation_scores({"s": (["a"], y[:, :1])}, {"s": (["a"], -y[:, :1])})
    assert flipped["pearson_mean"] == pytest.approx(-1.0) and flipped["rmse_mean"] == pytest.approx(2.0)
    # disjoint supports: JS divergence (base 2) is 1
    a = np.zeros((10, 1)); a[:5] = 1
    disjoint = scoring.imputation_scores({"s": (["a"], a)}, {"s": (["a"], 1 - a)})
    assert disjoint["js_mean"] == pytest.approx(1.0)
    # noise lowers every score in the right direction, and the scores are invariant to the gene order
    noisy = y + rng.normal(0, 2.0, size=y.shape)
    n = scoring.imputation_scores({"s": (["a", "b", "c", "d"], y)}, {"s": (["d", "c", "b", "a"], noisy[:, ::-1])})
    assert 0.3 < n["pearson_mean"] < 0.95 and n["ssim_mean"] < 0.95
    assert n["rmse_mean"] > 0.2 and n["js_mean"] > 0.01
