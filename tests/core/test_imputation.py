"""Imputation: the two read-outs as documented, chunking, streaming to disk, inputs and errors."""

import anndata as ad
import numpy as np
import pytest

import fusemap
from fusemap import FuseMap, FuseMapInputError
from fusemap.imputation import iter_impute, resolve_genes, resolve_targets
from fusemap.preprocess import preprocess

from conftest import FAST


@pytest.fixture(scope="module")
def sections():
    return fusemap.datasets.simulate(n_sections=3, n_cells=300, n_genes=60, panel_size=40, n_shared=15, seed=3)


@pytest.fixture(scope="module")
def model(sections):
    # long enough to fit cell-level structure (~20 s); the tests below check read-outs, not speed or
    # alignment, so without the MMD term (with it, one phase of 150 epochs fits cells less closely:
    # product vs measured 0.30 instead of 0.62)
    m = FuseMap([a.copy() for a in sections], **{**FAST, "max_epochs": 150, "batch_size": 32, "n_hidden": 128,
                                                   "patience": 1000, "balance": False, "mmd_weight": 0.0})
    m.train()
    return m


def _pearson(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-12))


def test_measured_genes_correlate_with_the_measurement(model, sections):
    """Each read-out reproduces what it models: the plain product the cell's own expression, the
    decoder read-out the graph-smoothed expression (Â Â x: the decoder aggregates the spatial
    embedding, itself an aggregate). In this simulation cell types are mixed within regions, so
    smoothing removes most cell-level signal and the decoder is scored against the smoothed data."""
    name = model.section_names[0]
    genes = list(map(str, sections[0].var_names))
    x, _ = preprocess(sections[0].X, normalized=False, target_sum=None, clip=10.0)
    x = x.toarray()
    a = model.data[0].a_hat
    smooth = a @ (a @ x)

    def mean_r(imp, ref):
        return np.mean([_pearson(imp.X[:, j], ref[:, j]) for j in range(len(genes)) if ref[:, j].std() > 0])

    prod = fusemap.impute(model, name, genes, method="product", neighbors=1)
    dec = fusemap.impute(model, name, genes, neighbors=1, method="decoder")
    # measured (150 epochs): product vs x 0.62, decoder vs smoothed x 0.80; a shuffled gene order gives ~0
    assert mean_r(prod, x) > 0.5, mean_r(prod, x)
    assert mean_r(dec, smooth) > 0.65, mean_r(dec, smooth)
    assert mean_r(dec, smooth) > mean_r(dec, x)
    assert list(dec.obs_names) == list(sections[0].obs_names)
    assert list(dec.var_names) == genes
    assert dec.var["measured_in"].eq(name).all()


def _unshifted(model, i):
    """The networks' own embeddings of section ``i`` (what the decoder was trained on): the model's
    embeddings less the section's shift."""
    e = model.embeddings()[model.section_names[i]]
    return e.cell - model.section_shift(i), e.spatial - model.section_shift(i)


def test_product_is_cell_embedding_times_gene_embedding(model):
    name = model.section_names[1]
    imp = fusemap.impute(model, name, None, method="product", neighbors=1)
    assert np.abs(model.section_shift(1)).max() > 0  # the read-outs below must not see it
    expected = _unshifted(model, 1)[0] @ model.gene_embedding().to_numpy().T
    np.testing.assert_allclose(imp.X, expected, rtol=1e-4, atol=1e-4)
    assert imp.X.min() < 0  # no ReLU in the plain product
    assert imp.uns["fusemap_imputation"]["method"] == "product"


def test_decoder_readout_is_relu_of_smoothed_spatial_embedding(model):
    i = 2
    name = model.section_names[i]
    imp = fusemap.impute(model, name, None, neighbors=1, method="decoder")
    a = model.data[i].a_hat.toarray()
    zt = _unshifted(model, i)[1]
    h = a @ zt  # graph decoder of spatial_mode='aggregate'
    E = model.gene_embedding().to_numpy()
    bias = np.zeros(len(model.vocabulary), dtype=np.float32)
    panel = model.module.panels[i].numpy()
    bias[panel] = model.module.gene_bias[i].detach().numpy()  # only genes the section measured
    expected = np.maximum(h @ E.T + bias, 0)
    np.testing.assert_allclose(imp.X, expected, rtol=1e-4, atol=1e-4)
    assert imp.X.min() >= 0
    assert imp.uns["fusemap_imputation"]["method"] == "decoder"


def test_neighbour_averaging_of_the_readout_input(model):
    from sklearn.neighbors import NearestNeighbors

    i = 1
    name = model.section_names[i]
    imp = fusemap.impute(model, name, None, neighbors=20, method="decoder")
    zc, zt = _unshifted(model, i)
    idx = NearestNeighbors(n_neighbors=20).fit(zc).kneighbors(zc, return_distance=False)
    h = (model.data[i].a_hat @ zt)[idx].mean(1)
    bias = np.zeros(len(model.vocabulary), dtype=np.float32)
    bias[model.module.panels[i].numpy()] = model.module.gene_bias[i].detach().numpy()
    expected = np.maximum(h @ model.gene_embedding().to_numpy().T + bias, 0)
    np.testing.assert_allclose(imp.X, expected, rtol=1e-4, atol=1e-4)
    prod = fusemap.impute(model, name, None, method="product", neighbors=20)
    np.testing.assert_allclose(prod.X, zc[idx].mean(1) @ model.gene_embedding().to_numpy().T, rtol=1e-4, atol=1e-4)
    assert imp.uns["fusemap_imputation"]["neighbors"] == 20


def test_chunks_give_the_same_result_and_stay_small(model):
    targets = resolve_targets(model, None)
    _, pos = resolve_genes(model, None)
    big = fusemap.impute(model, genes=None)
    small = fusemap.impute(model, genes=None, chunk_size=37, gene_chunk_size=11)
    np.testing.assert_allclose(small.X, big.X, rtol=1e-5, atol=1e-6)
    shapes = {blk.shape for *_, blk in iter_impute(model, targets, pos, chunk_size=37, gene_chunk_size=11)}
    assert max(s[0] for s in shapes) == 37 and max(s[1] for s in shapes) == 11
    assert big.n_obs == sum(d.n_obs for d in model.data) and big.n_vars == len(model.vocabulary)
    assert big.obs["section"].tolist() == sum(([n] * d.n_obs for n, d in zip(model.section_names, model.data)), [])


def test_streaming_to_h5ad(model, tmp_path):
    out = tmp_path / "imputed.h5ad"
    backed = fusemap.impute(model, genes=None, out=out, chunk_size=50, gene_chunk_size=16)
    backed.file.close()
    disk = ad.read_h5ad(out)
    mem = fusemap.impute(model, genes=None)
    np.testing.assert_array_equal(disk.X, mem.X)
    assert list(disk.obs_names) == list(mem.obs_names) and list(disk.var_names) == list(mem.var_names)
    assert disk.obsm["spatial"].shape == (mem.n_obs, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["imputed.h5ad"]  # no temporary leftovers
    with pytest.raises(FuseMapInputError, match=r"out=.*already exists.*overwrite=True"):
        fusemap.impute(model, genes=None, out=out)
    fusemap.impute(model, genes=["Gene0001"], out=out, overwrite=True).file.close()  # its own file
    assert ad.read_h5ad(out).n_vars == 1
    foreign = tmp_path / "mine.h5ad"
    ad.AnnData(np.zeros((2, 2), dtype=np.float32)).write_h5ad(foreign)
    with pytest.raises(FuseMapInputError, match="fusemap did not write"):
        fusemap.impute(model, genes=None, out=foreign, overwrite=True)
    assert ad.read_h5ad(foreign).shape == (2, 2)


def test_sections_given_as_anndata_or_file(model, sections, tmp_path):
    name = model.section_names[1]
    genes = ["Gene0001", "gene0002"]  # matching ignores case, results use the vocabulary's spelling
    # the decoder: the kNN read-outs need the measuring sections, which a loaded model lacks
    by_name = fusemap.impute(model, name, genes, method="decoder")
    assert list(by_name.var_names) == ["Gene0001", "Gene0002"]
    by_adata = fusemap.impute(model, sections[1][:, ::-1].copy(), genes, method="decoder")  # gene order does not matter
    np.testing.assert_allclose(by_adata.X, by_name.X, rtol=1e-5, atol=1e-6)
    path = tmp_path / f"{name}.h5ad"
    sections[1].write_h5ad(path)
    loaded = FuseMap.load(model.save(tmp_path / "m"))  # no data attached
    by_file = fusemap.impute(loaded, str(path), genes, method="decoder")
    np.testing.assert_allclose(by_file.X, by_name.X, rtol=1e-5, atol=1e-6)


def test_unknown_genes_are_listed(model):
    with pytest.raises(FuseMapInputError, match=r"2 requested gene\(s\).*\['NotAGene', 'Xist'\]"):
        fusemap.impute(model, model.section_names[0], ["Gene0001", "NotAGene", "Xist"])


def test_unknown_sections_and_missing_data(model, sections, tmp_path):
    with pytest.raises(FuseMapInputError, match="neither sections of the model"):
        fusemap.impute(model, "no_such_section", ["Gene0001"])
    stranger = sections[0].copy()
    stranger.obs["section"] = "stranger"
    with pytest.raises(FuseMapInputError, match="map_query"):
        fusemap.impute(model, stranger, ["Gene0001"])
    loaded = FuseMap.load(model.save(tmp_path / "m"))
    with pytest.raises(FuseMapInputError, match="no section data attached"):
        fusemap.impute(loaded)
    short = sections[0][:, 5:].copy()
    with pytest.raises(FuseMapInputError, match="lacks 5 of the 40 genes"):
        fusemap.impute(model, short, ["Gene0001"])
    with pytest.raises(FuseMapInputError, match="method="):
        fusemap.impute(model, model.section_names[0], ["Gene0001"], method="magic")
    with pytest.raises(FuseMapInputError, match="neighbors=0"):
        fusemap.impute(model, model.section_names[0], ["Gene0001"], neighbors=0)


def test_mapped_query_sections_can_be_imputed(model, sections):
    full = fusemap.datasets.simulate(n_sections=4, n_cells=300, n_genes=60, seed=3)[3]
    q = full[:, [f"Gene{i:04d}" for i in range(0, 60, 2)]].copy()
    mapped = fusemap.map_query(model, {"q": q}, max_epochs=2, balance=False)
    imp = fusemap.impute(mapped, "q", ["Gene0001", "Gene0002"])  # one unmeasured, one measured gene
    assert imp.shape == (q.n_obs, 2)
    assert imp.var["measured_in"].tolist() == ["", "q"]
    assert np.isfinite(imp.X).all()


def test_knn_readout_is_the_mean_over_measuring_neighbours(model, sections):
    """'knn': the mean measured (preprocessed) value over the k nearest cells, in the cell
    embedding, of the sections that measured the gene; 'blend': the mean of that and 'decoder'."""
    from sklearn.neighbors import NearestNeighbors

    emb = model.embeddings()
    name = model.section_names[0]
    measured = [set(map(str, a.var_names)) for a in sections]
    gene = next(g for g in model.vocabulary.names if g not in measured[0] and sum(g in m for m in measured) >= 1)
    src = [i for i, m in enumerate(measured) if gene in m]
    z_src = np.concatenate([emb[model.section_names[i]].cell for i in src])
    vals = np.concatenate([model.data[i].x[:, list(map(str, sections[i].var_names)).index(gene)].toarray().ravel()
                           for i in src])
    idx = NearestNeighbors(n_neighbors=7).fit(z_src).kneighbors(emb[name].cell, return_distance=False)
    knn = fusemap.impute(model, name, [gene], method="knn", neighbors=7)
    np.testing.assert_allclose(knn.X[:, 0], vals[idx].mean(1), rtol=1e-4, atol=1e-5)
    dec = fusemap.impute(model, name, [gene], method="decoder", neighbors=7)
    blend = fusemap.impute(model, name, [gene], method="blend", neighbors=7)
    np.testing.assert_allclose(blend.X, 0.5 * (knn.X + dec.X), rtol=1e-4, atol=1e-5)
    assert blend.uns["fusemap_imputation"]["method"] == "blend"


def test_knn_readout_of_a_loaded_model_uses_the_sections_given(model, sections, tmp_path):
    loaded = FuseMap.load(model.save(tmp_path / "m"))  # no data attached
    name = model.section_names[1]
    other = next(g for g in model.vocabulary.names if g not in set(map(str, sections[1].var_names)))
    # one section given: a gene it did not measure falls back to the decoder, with a warning
    with pytest.warns(fusemap.FuseMapWarning, match="decoder read-out"):
        got = fusemap.impute(loaded, sections[1].copy(), [other], method="knn")
    np.testing.assert_allclose(got.X, fusemap.impute(model, name, [other], method="decoder").X,
                               rtol=1e-5, atol=1e-6)
    # all sections given: the same kNN read-out as the model with its data attached
    every = {n: a.copy() for n, a in zip(model.section_names, sections)}
    got = fusemap.impute(loaded, every, [other], method="knn")
    want = fusemap.impute(model, None, [other], method="knn")
    np.testing.assert_allclose(got.X, want.X, rtol=1e-5, atol=1e-6)
