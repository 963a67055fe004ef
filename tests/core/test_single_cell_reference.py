"""Sections without coordinates (a dissociated single-cell reference beside spatial sections).

Simulated sections, one of them without ``obsm['spatial']``: it is used with the identity as graph
(so its spatial embedding is its cell embedding under the default ``spatial_mode='aggregate'``),
kept out of the spatial discriminator / MMD, saved with the model, and refused or skipped by
everything that needs space. The real-data case (Slide-seqV2 + Drop-seq) is in
test_realdata_single_cell.py.
"""

import warnings

import numpy as np
import pytest
import torch

import fusemap
from fusemap import FuseMap, FuseMapInputError, FuseMapWarning
from fusemap.imputation import gene_confidence, resolve_genes, resolve_targets
from fusemap.training import spatial_classes

from conftest import FAST


@pytest.fixture
def with_reference():
    """Two spatial sections and one 'single-cell' section without coordinates (fresh per test)."""
    s = fusemap.datasets.simulate(n_sections=3, n_cells=300, n_genes=60, panel_size=40, n_shared=15, seed=3)
    del s[2].obsm["spatial"]
    return s


@pytest.fixture(scope="module")
def trained():
    s = fusemap.datasets.simulate(n_sections=3, n_cells=300, n_genes=60, panel_size=40, n_shared=15, seed=3)
    del s[2].obsm["spatial"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FuseMapWarning)
        model = fusemap.integrate(s, **{**FAST, "max_epochs": 5})
    return model, s


def test_section_without_coordinates_is_used_with_the_identity_graph(trained):
    model, s = trained
    ref = model.section_names[2]
    assert model.no_coordinates == [ref]
    info = {i["name"]: i for i in model.section_info}
    assert info[ref]["coordinates"] is False and info[ref]["n_edges"] == 0 and info[ref]["mean_degree"] == 0.0
    assert all(info[n]["coordinates"] and info[n]["mean_degree"] > 3 for n in model.section_names[:2])
    a_hat = model.data[2].a_hat
    assert (a_hat != __import__("scipy.sparse").sparse.identity(a_hat.shape[0], format="csr")).nnz == 0
    e = model.embeddings()[ref]
    np.testing.assert_array_equal(e.spatial, e.cell)  # aggregate mode: Â = I, Z_T = Z_c
    assert s[2].obsm["X_fusemap_spatial"].shape == (300, FAST["n_latent"])
    assert json_list(s[0].uns["fusemap"]["no_coordinates_json"]) == [ref]
    # the spatial mixing check is over the sections with coordinates only
    assert "checked over the 2 with coordinates" in model.train_state.mixing["sentence"]


def json_list(text):
    import json

    return json.loads(text)


def test_saved_and_loaded_with_its_kind(trained, tmp_path):
    model, s = trained
    model.save(tmp_path / "m")
    back = FuseMap.load(tmp_path / "m", s)
    assert back.no_coordinates == model.no_coordinates
    for n in model.section_names:
        np.testing.assert_allclose(back.embeddings()[n].spatial, model.embeddings()[n].spatial, atol=1e-6)


def test_named_section_is_used_without_its_coordinates(with_reference):
    s = with_reference
    s[2].obsm["spatial"] = s[0].obsm["spatial"].copy()  # coordinates present, but marked
    model = FuseMap(s, no_coordinates=["sim_section_2"], **FAST)
    assert model.no_coordinates == ["sim_section_2"] and model.data[2].a_hat.nnz == 300
    with pytest.raises(FuseMapInputError, match=r"no_coordinates: section\(s\) \['nope'\] are not among"):
        FuseMap(s, no_coordinates=["nope"], **FAST)
    with pytest.raises(FuseMapInputError, match=r"no_coordinates: expected a list of section names"):
        FuseMap(s, no_coordinates=3, **FAST)


def test_spatial_discriminator_sees_only_sections_with_coordinates(trained):
    model, _ = trained
    has, label, cols = spatial_classes(model.data, None, torch.device("cpu"))
    assert has.tolist() == [True, True, False] and cols.tolist() == [0, 1] and label[:2].tolist() == [0, 1]
    from fusemap.training import FixedSections

    fixed = FixedSections([np.zeros((5, 2))] * 2, [np.zeros((5, 2))] * 2, first_label=3, coordinates=[False, True])
    has, label, cols = spatial_classes(model.data, fixed, torch.device("cpu"))
    assert has.tolist() == [True, True, False, False, True] and cols.tolist() == [0, 1, 4]
    assert label[4].item() == 2
    assert spatial_classes(model.data[:2], None, torch.device("cpu")) is None  # all with coordinates
    hist = model.history_frame()
    assert np.isfinite(hist["adv_spatial"]).all() and np.isfinite(hist["mmd"].dropna()).all()


def test_all_sections_without_coordinates_warn(with_reference):
    for a in with_reference:
        a.obsm.pop("spatial", None)
    with pytest.warns(FuseMapWarning, match="no section has coordinates"):
        model = FuseMap(with_reference, **FAST)
    assert model.no_coordinates == model.section_names


def test_map_a_single_cell_query_onto_a_spatial_model(with_reference):
    spatial, sc = with_reference[:2], with_reference[2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FuseMapWarning)
        ref = fusemap.integrate(spatial, **FAST)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FuseMapWarning)
        mapped = fusemap.map_query(ref, {"sc": sc}, max_epochs=3, batch_size=64, progress=False)
    # the reference has coordinates: no warning that no section has them
    assert not [w for w in caught if "no section has coordinates" in str(w.message)]
    assert mapped.no_coordinates == ["sc"]
    assert sc.obsm["X_fusemap_cell"].shape == (300, FAST["n_latent"])
    # no trained row enters the spatial discriminator; its loss is 0, not the NaN mean of no rows
    # (which made every query weight NaN)
    assert np.isfinite(sc.obsm["X_fusemap_cell"]).all()
    last = [h for h in mapped.history if h.get("stage") == "map_query"][-1]
    assert np.isfinite(last["recon"]) and last["adv_spatial"] == 0.0
    assert np.isfinite(sc.obs["fusemap_novelty"]).mean() > 0.9
    np.testing.assert_array_equal(sc.obsm["X_fusemap_spatial"], sc.obsm["X_fusemap_cell"])


def test_labels_transfer_from_a_reference_without_coordinates(trained):
    model, s = trained
    result = fusemap.transfer_labels(s[2], s[:2], "cell_type", method="knn", write=False)
    pred = result.predictions["fusemap_cell_type"].astype(str).to_numpy()
    assert len(pred) == 600 and set(pred) <= set(s[2].obs["cell_type"].astype(str))
    # accuracy on these small simulated sections is not the point here (the real-data test,
    # test_realdata_single_cell.py, asserts it); the reference's own held-out cells, classified
    # from its cell embedding, must beat its majority class
    ref_types = s[2].obs["cell_type"].astype(str)
    assert result.heldout_accuracy["cell_type"] > ref_types.value_counts(normalize=True).iloc[0] + 0.1


def test_imputation_confidence_is_chunk_invariant_and_bounded(trained):
    model, _ = trained
    names, pos = resolve_genes(model, None)
    targets = resolve_targets(model)
    whole = gene_confidence(model, targets, pos, "knn", 15, 4096, 2048)
    chunked = gene_confidence(model, targets, pos, "knn", 15, 4096, 7)
    np.testing.assert_allclose(whole["confidence_r"], chunked["confidence_r"], atol=1e-6)
    r = whole["confidence_r"].to_numpy()
    assert len(r) == 60 and np.nanmin(r) >= -1 and np.nanmax(r) <= 1 and np.isfinite(r).mean() > 0.9
    # held cells of each measuring section: about val_fraction of its 300 cells, summed over sections
    n_val = len(model.data[0].val_idx)
    assert set(whole["confidence_cells"]) <= {0, n_val, 2 * n_val, 3 * n_val}
    imp = fusemap.impute(model, "sim_section_0", method="knn", neighbors=15, gene_chunk_size=7)
    np.testing.assert_allclose(imp.var["confidence_r"], r, atol=1e-6)
    assert "spatial" in imp.obsm
    ref_only = fusemap.impute(model, "sim_section_2", genes=names[:3], confidence=False)
    assert "confidence_r" not in ref_only.var and "spatial" not in ref_only.obsm


def test_analyses_that_need_space_skip_the_reference(trained):
    model, s = trained
    with pytest.warns(FuseMapWarning, match=r"sim_section_2.*no coordinates.*find_regions"):
        regions = fusemap.tl.find_regions(s, resolution=0.3, key_added=None)
    assert regions.iloc[600:].isna().all() and regions.iloc[:600].notna().all()
    cells = fusemap.tl.find_regions(s, resolution=0.3, key="X_fusemap_cell", key_added=None)
    assert cells.notna().all()
    with pytest.warns(FuseMapWarning, match=r"sim_section_2.*cell_proximity"):
        res = fusemap.tl.cell_proximity(s, "cell_type", radius=2.0, n_shifts=20)
    assert len(res.table) > 0
    with pytest.raises(FuseMapInputError, match=r"cell_proximity needs cell coordinates.*sim_section_2"):
        fusemap.tl.cell_proximity([s[2]], "cell_type", n_shifts=5)


def test_command_line_integrate_and_map_with_a_reference_without_coordinates(with_reference, tmp_path):
    import anndata as ad

    from fusemap.cli import main

    paths = []
    for i, a in enumerate(with_reference):
        if i == 1:
            a.obsm["spatial"] = with_reference[0].obsm["spatial"][:a.n_obs].copy()
        paths.append(str(tmp_path / f"s{i}.h5ad"))
        a.write_h5ad(paths[-1])
    fast = ["--epochs", "1", "--batch-size", "64", "--device", "cpu"]
    # s2 has no coordinates; s1 has some but is named: two reference sections, one with coordinates
    assert main(["integrate", paths[0], paths[1], paths[2], "--out", str(tmp_path / "run"), *fast, "--latent", "8",
                 "--no-coordinates", "s1"]) == 0
    model = FuseMap.load(tmp_path / "run" / "model")
    assert model.no_coordinates == ["s1", "s2"]
    figures = sorted(p.name for p in (tmp_path / "run" / "figures").iterdir())
    assert figures == ["spatial_cell_clusters.png", "spatial_spatial_clusters.png", "umap_cell.png",
                       "umap_spatial.png"]
    q = ad.read_h5ad(paths[2])
    q.obs_names = [f"q{c}" for c in q.obs_names]
    q.write_h5ad(tmp_path / "q.h5ad")
    assert main(["map", str(tmp_path / "q.h5ad"), "--model", str(tmp_path / "run" / "model"), "--out",
                 str(tmp_path / "mapped"), *fast, "--no-figures"]) == 0
    assert FuseMap.load(tmp_path / "mapped" / "model").no_coordinates == ["s1", "s2", "q"]
