"""Query mapping: frozen reference, new gene columns, gene names intact after save/load, errors."""

import json

import numpy as np
import pytest
import torch

import fusemap
from fusemap import FuseMap, FuseMapInputError, FuseMapModelError

from conftest import FAST


@pytest.fixture(scope="module")
def sim3():
    """Three simulated sections with mosaic panels: the third has 5 genes the first two lack."""
    return fusemap.datasets.simulate(n_sections=3, n_cells=300, n_genes=60, panel_size=40, n_shared=15, seed=3)


@pytest.fixture(scope="module")
def reference(sim3):
    ref = FuseMap([a.copy() for a in sim3[:2]], **FAST)
    ref.train()
    return ref


@pytest.fixture(scope="module")
def mapped(reference, sim3):
    snapshot = {k: v.detach().clone() for k, v in reference.module.state_dict().items()}
    query = sim3[2].copy()
    m = fusemap.map_query(reference, query, max_epochs=3)
    return m, snapshot, query


def test_every_reference_tensor_is_unchanged(reference, mapped):
    m, snapshot, _ = mapped
    after = m.module.state_dict()
    # encoders, gene columns, gene offsets and the reference's own discriminators
    assert any(k.startswith("disc_cell.") for k in snapshot)
    assert "gene_embedding.0" in snapshot and "gene_bias.1" in snapshot
    for key, before in snapshot.items():
        assert torch.equal(after[key], before), key
        assert torch.equal(reference.module.state_dict()[key], before), key  # the caller's model too
    # the query got its own, trained networks
    assert {"encoders.2.mean.weight", "gene_bias.2", "gene_embedding.1"} <= set(after)
    assert m.history and {"recon", "disc", "adv_cell"} <= set(m.history[0])
    ge_ref = reference.gene_embedding()
    assert m.gene_embedding().loc[ge_ref.index].equals(ge_ref)


def test_new_genes_get_new_columns_in_query_order(reference, mapped, sim3):
    m, _, query = mapped
    ref_genes = reference.vocabulary.names
    new = [g for g in map(str, query.var_names) if g not in set(ref_genes)]
    assert len(new) == 5
    assert m.vocabulary.names == ref_genes + new
    assert [tuple(b.shape) for b in m.module.gene_embedding] == [(16, len(ref_genes)), (16, len(new))]
    assert [s["role"] for s in m.section_info] == ["reference", "reference", "query"]
    assert m.section_names[-1] == query.obs["section"].iloc[0]


def test_query_gets_embeddings_written(mapped):
    m, _, query = mapped
    assert query.obsm["X_fusemap_cell"].shape == (query.n_obs, 16)
    assert np.array_equal(query.obsm["X_fusemap_spatial"], m.embeddings()[m.section_names[-1]].spatial)
    ge = m.gene_embedding()
    assert np.array_equal(query.varm["fusemap_gene_embedding"], ge.loc[list(query.var_names)].to_numpy())
    # the novelty of each query cell against the reference, its cluster, and the summary in the record
    assert np.array_equal(query.obs["fusemap_novelty"].to_numpy(), m.novelty.scores)
    assert query.obs["fusemap_novelty"].between(0, 1).all()
    assert query.obs["fusemap_novelty_cluster"].nunique() == len(m.novelty.summary)
    record = json.loads(query.uns["fusemap"]["novelty_json"])
    assert record["n_query_cells"] == query.n_obs and record["threshold"] == 0.99
    assert m.summary()["novelty"].startswith("Novelty: ")


def test_gene_names_stay_with_their_columns_after_save_and_load(mapped, sim3, tmp_path):
    """Regression test for the published code, which scrambled gene names after mapping new genes."""
    m, _, query = mapped
    path = m.save(tmp_path / "mapped")
    saved = json.loads((path / "genes.json").read_text())["genes"]
    assert saved == m.vocabulary.names
    loaded = FuseMap.load(path)
    assert loaded.gene_embedding().equals(m.gene_embedding())
    # the column the query's decoder uses for each of its genes is the row named after that gene
    q = len(loaded.section_names) - 1
    E = loaded.module.gene_matrix().detach().numpy()
    ge = loaded.gene_embedding()
    for j, gene in enumerate(map(str, query.var_names)):
        col = int(loaded.module.panels[q][j])
        assert np.array_equal(E[:, col], ge.loc[gene].to_numpy()), gene
    # and the reloaded model embeds and imputes the query exactly as before
    loaded.attach([a.copy() for a in sim3[:2]] + [query.copy()])
    name = m.section_names[-1]
    assert np.array_equal(loaded.embeddings()[name].cell, m.embeddings()[name].cell)
    genes = list(map(str, query.var_names[-10:]))
    a = fusemap.impute(m, name, genes)
    b = fusemap.impute(loaded, name, genes)
    assert np.array_equal(a.X, b.X) and list(b.var_names) == genes


def test_mapping_is_reproducible(reference, mapped, sim3):
    m, _, _ = mapped
    again = fusemap.map_query(reference, sim3[2].copy(), max_epochs=3)
    name = m.section_names[-1]
    assert np.array_equal(again.embeddings()[name].cell, m.embeddings()[name].cell)


@pytest.mark.parametrize("panel", ["subset", "superset"])
def test_query_panels_subset_and_superset(reference, sim3, panel):
    full = fusemap.datasets.simulate(n_sections=3, n_cells=300, n_genes=60, seed=3)[2]
    ref_genes = reference.vocabulary.names
    if panel == "subset":
        genes = ref_genes[5:30]
    else:
        genes = ref_genes + [g for g in map(str, full.var_names) if g not in set(ref_genes)]
    q = full[:, genes].copy()
    m = fusemap.map_query(reference, {"q": q}, max_epochs=1, balance=False)
    n_new = len(genes) - len([g for g in genes if g in set(ref_genes)])
    assert len(m.vocabulary) == len(ref_genes) + n_new
    assert len(m.module.gene_embedding) == (1 if n_new == 0 else 2)
    assert m.section_info[-1]["genes"] == genes
    assert q.obsm["X_fusemap_cell"].shape == (q.n_obs, 16)


def test_map_from_a_model_directory_uses_the_sections_beside_it(reference, sim3, tmp_path):
    run = tmp_path / "run"
    reference.save(run / "model")
    (run / "sections").mkdir()
    for name, a in zip(reference.section_names, sim3[:2]):
        a.write_h5ad(run / "sections" / f"{name}.h5ad")
    m = fusemap.map_query(run / "model", {"q": sim3[2].copy()}, max_epochs=1, balance=False)
    assert m.section_names == reference.section_names + ["q"]
    # the reference weights came from the directory, unchanged
    assert torch.equal(m.module.gene_embedding[0], reference.module.gene_embedding[0])
    # a directory without data beside it needs reference=
    lone = tmp_path / "lone"
    reference.save(lone)
    with pytest.raises(FuseMapInputError, match="reference="):
        fusemap.map_query(lone, {"q": sim3[2].copy()}, max_epochs=1)
    m2 = fusemap.map_query(lone, {"q": sim3[2].copy()}, reference=[a.copy() for a in sim3[:2]], max_epochs=1,
                           balance=False)
    assert m2.section_names[-1] == "q"


def test_mapped_model_cannot_be_trained_as_a_whole(mapped):
    m, _, _ = mapped
    with pytest.raises(FuseMapModelError, match="map_query"):
        m.train()


# -- clear errors --------------------------------------------------------------------------------------
def test_query_without_shared_genes_is_refused(reference, sim3):
    q = sim3[2].copy()
    q.var_names = [f"Other{i}" for i in range(q.n_vars)]
    with pytest.raises(FuseMapInputError, match="'odd' has no gene in common with the reference"):
        fusemap.map_query(reference, {"odd": q})


def test_not_a_model_directory(tmp_path, sim3):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FuseMapModelError, match="not a fusemap model directory"):
        fusemap.map_query(tmp_path / "empty", sim3[2])
    with pytest.raises(FuseMapModelError, match="not a directory"):
        fusemap.map_query(tmp_path / "nothing", sim3[2])


def test_query_name_clash_and_fixed_options(reference, sim3):
    with pytest.raises(FuseMapInputError, match="already sections of the reference"):
        fusemap.map_query(reference, sim3[0].copy())
    with pytest.raises(FuseMapInputError, match=r"\['n_latent'\] cannot be changed when mapping"):
        fusemap.map_query(reference, sim3[2].copy(), n_latent=8)


def test_bad_query_input_is_reported_before_training(reference, sim3):
    q = sim3[2].copy()
    q.X = q.X * 0.5
    q.obsm["spatial"] = np.asarray(q.obsm["spatial"], dtype=float)
    q.obsm["spatial"][0, 0] = np.nan
    with pytest.raises(FuseMapInputError) as err:
        fusemap.map_query(reference, {"q": q})
    assert "non-integer" in str(err.value) and "NaN/inf coordinates" in str(err.value)


def test_untrained_reference_is_refused(sim3):
    with pytest.raises(FuseMapModelError, match="untrained"):
        fusemap.map_query(FuseMap([a.copy() for a in sim3[:2]], **FAST), sim3[2].copy())


def test_fixed_sections_enter_the_discriminators(reference, sim3):
    """The reference's cells are real inputs of the mapping discriminators: without them the
    discriminator loss would only see the query and could not separate it from anything."""
    from fusemap.training import FixedSections

    emb = reference.embeddings()
    fixed = FixedSections([emb[n].cell for n in reference.section_names],
                          [emb[n].spatial for n in reference.section_names], first_label=1)
    zc, zt, lab, w = fixed.sample(np.random.default_rng(0), 50, torch.device("cpu"), weighted=False)
    assert zc.shape == (100, 16) and zt.shape == (100, 16) and w is None
    assert lab.tolist() == [1] * 50 + [2] * 50
    rows = {tuple(r) for r in np.round(emb[reference.section_names[0]].cell, 6).tolist()}
    assert all(tuple(r) in rows for r in np.round(zc[:50].numpy(), 6).tolist())


def test_novelty_aware_mapping_pretrains_without_alignment(reference, sim3):
    q = sim3[2].copy()
    m = fusemap.map_query(reference, q, max_epochs=3, query_pretrain="reconstruction", query_balance="novelty")
    # phase 1 trains the query encoders through the frozen decoder only; phase 2 aligns, weighted
    assert "disc" not in m.history[0] and m.history[0]["phase"] == 1
    assert any(h["phase"] == 2 and {"recon", "disc", "adv_cell"} <= set(h) for h in m.history)
    assert m.train_state.balance_summary["query_rule"] == "novelty"


def test_mapping_shifts_the_query_only(reference, mapped):
    m, _, _ = mapped
    for i, name in enumerate(reference.section_names):  # the reference keeps its shifts and embeddings
        assert np.array_equal(m.section_shift(i), reference.section_shift(i))
        assert np.array_equal(m.embeddings()[name].cell, reference.embeddings()[name].cell)
    q = m.section_names.index("sim_section_2")
    assert np.abs(m.section_shift(q)).max() > 0
    from fusemap.inference import embed_section

    zc, zt = embed_section(m.module, q, m.data[q], m.device)
    assert np.allclose(m.embeddings()["sim_section_2"].cell, zc + m.section_shift(q), atol=1e-6)
    assert np.allclose(m.embeddings()["sim_section_2"].spatial, zt + m.section_shift(q), atol=1e-6)
