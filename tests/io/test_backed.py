"""Sections read from disk in row blocks (fusemap.io.backed) and the in-place float32 preprocessing."""

import tracemalloc

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

import fusemap
from fusemap import datasets
from fusemap.io import backed
from fusemap.errors import FuseMapInputError
from fusemap.preprocess import preprocess


def _memory_mapped(a: np.ndarray) -> bool:
    while a is not None:
        if isinstance(a, np.memmap):
            return True
        a = getattr(a, "base", None)
        if a is not None and not isinstance(a, np.ndarray):
            return type(a).__name__ == "mmap"
    return False


def _reference_preprocess(counts, target_sum=None, clip=10.0):
    """The method written out densely in float64 (normalise, log1p, per-gene sd ddof=1, clip)."""
    x = np.asarray(counts.toarray() if sp.issparse(counts) else counts, dtype=np.float64)
    tot = x.sum(1)
    ts = np.median(tot[tot > 0]) if target_sum is None else target_sum
    f = np.divide(ts, tot, out=np.zeros_like(tot), where=tot > 0)
    x = np.log1p(x * f[:, None])
    sd = x.std(0, ddof=1)
    sd[sd == 0] = 1
    return np.minimum(x / sd, clip)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("backed")
    secs = datasets.simulate(n_sections=3, n_cells=500, n_genes=60, panel_size=40, n_shared=15, seed=3)
    paths = []
    for i, a in enumerate(secs):
        a.uns.pop("simulation", None)
        paths.append(d / f"s{i}.h5ad")
        a.write_h5ad(paths[-1])
    secs[1].write_zarr(d / "s1.zarr")
    return secs, paths, d


def test_in_memory_preprocess_matches_the_dense_definition():
    counts = datasets.simulate(n_sections=1, n_cells=400, n_genes=30, seed=5)[0].X.toarray()
    counts[7] = 0  # an empty cell stays all-zero
    for inp in (sp.csr_matrix(counts), counts, counts.astype(np.int64)):
        x, stats = preprocess(inp)
        assert x.dtype == np.float32 and sp.isspmatrix_csr(x)
        np.testing.assert_allclose(x.toarray(), _reference_preprocess(counts), rtol=1e-5, atol=1e-5)
        assert stats.n_empty_cells == 1
    before = counts.copy()
    preprocess(counts)
    assert np.array_equal(before, counts)  # the input is never modified


def test_chunked_preprocess_equals_in_memory(files, tmp_path):
    secs, paths, d = files
    b = ad.read_h5ad(paths[0], backed="r")
    x_ref, s_ref = preprocess(secs[0].X)
    for chunk_rows in (37, 500):
        x, s = backed.preprocess_chunked(b.X, chunk_rows=chunk_rows, directory=tmp_path)
        assert _memory_mapped(x.data) and _memory_mapped(x.indices)
        np.testing.assert_allclose(x.toarray(), x_ref.toarray(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(s.gene_scale, s_ref.gene_scale, rtol=1e-6)
        assert s.target_sum == s_ref.target_sum
        rows = np.array([5, 400, 3])
        np.testing.assert_array_equal(x[rows].toarray(), x_ref[rows].toarray())
    del x
    import gc

    gc.collect()
    assert not any(tmp_path.iterdir())  # spill files go with the matrix


def test_chunked_preprocess_never_holds_the_whole_matrix(tmp_path):
    n, g = 20_000, 200
    rng = np.random.default_rng(0)
    counts = sp.random(n, g, density=0.3, format="csr", random_state=rng, dtype=np.float32)
    counts.data = np.ceil(counts.data * 20)
    a = ad.AnnData(counts)
    a.write_h5ad(tmp_path / "big.h5ad")
    full_bytes = counts.data.nbytes + counts.indices.nbytes  # ~9.6 MB stored entries
    del counts, a
    b = ad.read_h5ad(tmp_path / "big.h5ad", backed="r")
    tracemalloc.start()
    x, _ = backed.preprocess_chunked(b.X, chunk_rows=1000, chunk_nnz=50_000, directory=tmp_path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert x.nnz > 0.25 * n * g
    assert peak < 0.3 * full_bytes, f"peak {peak / 1e6:.1f} MB vs matrix {full_bytes / 1e6:.1f} MB"


def test_backed_sections_train_like_in_memory_ones(files):
    secs, paths, d = files
    opened = backed.open_sections([paths[0], d / "s1.zarr", paths[2]])
    assert all(a.isbacked or not isinstance(a.X, (np.ndarray, sp.spmatrix)) for a in opened)
    kw = dict(max_epochs=2, batch_size=64, n_hidden=32, n_latent=8, progress=False, seed=0)
    on_disk = fusemap.FuseMap(opened, **kw)
    in_mem = fusemap.FuseMap([a.copy() for a in secs], **kw)
    for a, b in zip(on_disk.data, in_mem.data):
        assert _memory_mapped(a.x.data)
        np.testing.assert_allclose(a.x.toarray(), b.x.toarray(), rtol=1e-6, atol=1e-6)
    on_disk.train()
    in_mem.train()
    ea, eb = on_disk.embeddings(), in_mem.embeddings()
    for name in on_disk.section_names:
        np.testing.assert_allclose(ea[name].cell, eb[name].cell, rtol=1e-4, atol=1e-4)
    on_disk.write()
    assert opened[0].obsm["X_fusemap_cell"].shape == (secs[0].n_obs, 8)


def test_bad_values_on_disk_are_reported_with_their_rows(files, tmp_path):
    secs, _, _ = files
    a = secs[0].copy()
    a.X = a.X.toarray()
    a.X[321, 4] = 2.5  # not a count
    a.write_h5ad(tmp_path / "bad.h5ad")
    opened = backed.open_sections([tmp_path / "bad.h5ad"])
    with pytest.raises(FuseMapInputError, match=r"rows \d+-\d+.*non-integer"):
        fusemap.FuseMap(opened, progress=False)


def test_open_sections_names_missing_files(tmp_path):
    with pytest.raises(FuseMapInputError, match="does not exist"):
        backed.open_sections([tmp_path / "nope.h5ad"])
