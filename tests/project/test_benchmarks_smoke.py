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
