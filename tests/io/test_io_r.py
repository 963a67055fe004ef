"""fusemap.io: AnnData <-> SpatialExperiment through rpy2, and .rds files that R reads.

Skips when R, rpy2 or the R package SpatialExperiment is absent (scripts/setup_r.sh installs them).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import require_data

os.environ.setdefault("RPY2_CFFI_MODE", "ABI")
pytest.importorskip("rpy2", reason="rpy2 not installed (scripts/setup_r.sh installs it)")

from fusemap import FuseMapInputError, datasets, io  # noqa: E402

try:
    from fusemap.io.r_exchange import _r
    _r()
except ImportError as exc:  # R or SpatialExperiment missing
    pytest.skip(str(exc), allow_module_level=True)

RSCRIPT = shutil.which("Rscript")


def _with_awkward_columns(a):
    """Every column kind, with missing values, plus a dense layer and an embedding."""
    a = a.copy()
    n = a.n_obs
    a.obs["flag"] = pd.array(([True, None, False] * n)[:n], dtype="boolean")
    a.obs["plain_bool"] = (np.arange(n) % 2 == 0)
    a.obs["count"] = pd.array(([1, None, 3] * n)[:n], dtype="Int32")
    a.obs["n"] = np.arange(n, dtype=np.int64)
    a.obs["score"] = np.where(np.arange(n) % 4 == 0, np.nan, np.arange(n) / 3.0)
    a.obs["note"] = np.array((["a", None, "c"] * n)[:n], dtype=object)
    a.obs["level"] = pd.Categorical((["lo", "hi"] * n)[:n], categories=["lo", "hi"], ordered=True)
    a.var["panel"] = "starmap"
    a.layers["scaled"] = a.X.toarray() / 7.0
    a.obsm["X_fusemap_cell"] = np.random.default_rng(0).normal(size=(n, 5))
    a.uns["params"] = {"k": 3, "name": "x", "values": [1.5, 2.5]}
    return a


def _assert_same(a, b):
    assert list(b.obs_names) == list(a.obs_names)
    assert list(b.var_names) == list(a.var_names)
    assert (sp.csr_matrix(a.X) != sp.csr_matrix(b.X)).nnz == 0
    np.testing.assert_array_equal(b.obsm["spatial"], a.obsm["spatial"])
    for col in a.obs.columns:
        left, right = a.obs[col], b.obs[col]
        assert left.isna().tolist() == right.isna().tolist(), col
        keep = ~left.isna().to_numpy()
        assert [str(v) for v in left[keep]] == [str(v) for v in right[keep]], col
    for col in ("cell_type", "region", "level"):
        if col in a.obs:
            assert isinstance(b.obs[col].dtype, pd.CategoricalDtype)
            assert list(b.obs[col].cat.categories) == list(a.obs[col].cat.categories)
            assert b.obs[col].cat.ordered == a.obs[col].cat.ordered


@pytest.mark.realdata
def test_anndata_spe_round_trip_in_memory():
    require_data("starmap_mpfc_BZ5")
    a = _with_awkward_columns(datasets.load("starmap_mpfc_BZ5"))
    spe = io.anndata_to_spe(a)
    import rpy2.robjects as ro

    assert list(ro.r["class"](spe)) == ["SpatialExperiment"]
    assert tuple(ro.r["dim"](spe)) == (a.n_vars, a.n_obs)
    b = io.spe_to_anndata(spe)
    _assert_same(a, b)
    np.testing.assert_array_equal(b.layers["scaled"], a.layers["scaled"])
    np.testing.assert_array_equal(b.obsm["X_fusemap_cell"], a.obsm["X_fusemap_cell"])
    assert b.obs["flag"].dtype == "boolean" and b.obs["count"].dtype == "Int32"
    assert list(b.var["panel"]) == ["starmap"] * a.n_vars
    assert b.uns["params"]["k"] == 3 and list(b.uns["params"]["values"]) == [1.5, 2.5]
    assert b.uns["X_name"] == "counts"


@pytest.mark.realdata
def test_rds_file_round_trip_and_refuses_overwrite(tmp_path):
    require_data("starmap_mpfc_BZ9")
    a = _with_awkward_columns(datasets.load("starmap_mpfc_BZ9"))
    path = tmp_path / "bz9.rds"
    io.write_rds(a, path)
    b = io.read_rds(path)
    _assert_same(a, b)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        io.write_rds(a[:10].copy(), path)
    assert path.read_bytes() == before  # the existing file is untouched
    io.write_rds(a[:10].copy(), path, overwrite=True)
    assert io.read_rds(path).n_obs == 10
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.realdata
@pytest.mark.skipif(RSCRIPT is None, reason="Rscript not on PATH")
def test_rds_written_in_python_reads_in_a_separate_r(tmp_path):
    """An R colleague's plain readRDS() sees the same counts, coordinates and labels."""
    require_data("starmap_mpfc_BZ14")
    a = datasets.load("starmap_mpfc_BZ14")
    path = tmp_path / "bz14.rds"
    io.write_rds(a, path)
    code = (
        "suppressPackageStartupMessages(library(SpatialExperiment)); x <- readRDS(commandArgs(TRUE)[1]);"
        "m <- assay(x, 'counts'); cat(class(x), ncol(x), nrow(x), sum(m), sum(m[, 7]),"
        "rownames(x)[3], colnames(x)[5], format(spatialCoords(x)[5, 'y'], digits = 15),"
        "as.character(x$cell_type[5]), nlevels(x$cell_type), sep = '|')"
    )
    out = subprocess.run([RSCRIPT, "-e", code, str(path)], capture_output=True, text=True, check=True).stdout
    got = out.strip().splitlines()[-1].split("|")
    x = a.X.toarray()
    assert got[0] == "SpatialExperiment"
    assert (int(got[1]), int(got[2])) == (a.n_obs, a.n_vars)
    assert float(got[3]) == float(x.sum()) and float(got[4]) == float(x[6].sum())
    assert got[5] == a.var_names[2] and got[6] == a.obs_names[4]
    assert float(got[7]) == pytest.approx(float(a.obsm["spatial"][4, 1]), rel=1e-12)
    assert got[8] == str(a.obs["cell_type"].iloc[4])
    assert int(got[9]) == len(a.obs["cell_type"].cat.categories)


@pytest.mark.skipif(RSCRIPT is None, reason="Rscript not on PATH")
def test_rds_written_in_r_reads_in_python(tmp_path):
    """An object an R user saved (sparse counts, a logcounts assay, NA in colData) reads back exactly."""
    path = tmp_path / "from_r.rds"
    code = (
        "suppressPackageStartupMessages(library(SpatialExperiment)); set.seed(1);"
        "m <- Matrix::rsparsematrix(30, 40, 0.3, rand.x = function(n) rpois(n, 5) + 1);"
        "dimnames(m) <- list(paste0('Gene', 1:30), paste0('cell', 1:40));"
        "spe <- SpatialExperiment(assays = list(counts = m, logcounts = log1p(m)),"
        "  colData = DataFrame(sample_id = rep(c('s1', 's2'), 20), ok = c(NA, rep(TRUE, 39)),"
        "    type = factor(rep(c('A', 'B', NA, 'A'), 10))),"
        "  spatialCoords = cbind(px = 1:40 / 2, py = 40:1 * 1.5), metadata = list(note = 'from R'));"
        "reducedDim(spe, 'PCA') <- matrix(1:80 / 10, 40, 2);"
        "saveRDS(spe, commandArgs(TRUE)[1]); cat(sum(m), sum(m[, 3]), '\\n')"
    )
    out = subprocess.run([RSCRIPT, "-e", code, str(path)], capture_output=True, text=True, check=True).stdout
    total, col3 = map(float, out.split())
    a = io.read_rds(path)
    assert a.shape == (40, 30)
    assert list(a.var_names[:2]) == ["Gene1", "Gene2"] and a.obs_names[0] == "cell1"
    assert float(a.X.sum()) == total and float(a.X[2].sum()) == col3
    np.testing.assert_allclose(a.layers["logcounts"].toarray(), np.log1p(a.X.toarray()), rtol=1e-14)  # R vs NumPy log1p
    np.testing.assert_array_equal(a.obsm["spatial"][:, 0], np.arange(1, 41) / 2)
    assert list(a.uns["spatialCoordsNames"]) == ["px", "py"]
    assert a.obs["ok"].isna().tolist() == [True] + [False] * 39
    assert a.obs["type"].isna().sum() == 10 and list(a.obs["type"].cat.categories) == ["A", "B"]
    np.testing.assert_allclose(a.obsm["PCA"][:, 1], np.arange(41, 81) / 10)
    assert a.uns["note"] == "from R"


def test_bad_input_is_refused_with_the_reason(tmp_path):
    with pytest.raises(FuseMapInputError, match="must be an AnnData"):
        io.anndata_to_spe("not an anndata")
    with pytest.raises(FuseMapInputError, match="does not exist"):
        io.read_rds(tmp_path / "missing.rds")
    import rpy2.robjects as ro

    with pytest.raises(FuseMapInputError, match="SpatialExperiment or SingleCellExperiment"):
        io.spe_to_anndata(ro.r("data.frame(a = 1)"))
