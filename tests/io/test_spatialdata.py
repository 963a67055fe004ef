"""SpatialData in and out on real STARmap sections: read from a store, integrate, write back, reopen.

The store is built from the shared data: each section's cells become circles at their centroids
(a shapes element per section, index = instance ids in a shuffled order), one table annotates
them, plus an image, labels and points that fusemap must leave untouched.
"""

from __future__ import annotations

import hashlib
import shutil
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

sd = pytest.importorskip("spatialdata")
from spatialdata.models import Image2DModel, Labels2DModel, PointsModel, ShapesModel, TableModel  # noqa: E402
from spatialdata.transformations import Identity, Scale, get_transformation  # noqa: E402

import fusemap  # noqa: E402
from fusemap import datasets  # noqa: E402
from fusemap.cli import main  # noqa: E402
from fusemap.errors import FuseMapInputError  # noqa: E402
from fusemap.io.spatialdata import (add_imputed_table, save_spatialdata, sections_from_spatialdata,  # noqa: E402
                                    write_results)

from conftest import require_data  # noqa: E402

pytestmark = pytest.mark.realdata
warnings.filterwarnings("ignore", message=".*no parent found.*")

SCALE = 0.5  # 'global' = 0.5 x the shapes' own ('pixels') coordinates
KEYS = ["BZ5", "BZ9", "BZ14"]
CLI_FAST = ["--epochs", "1", "--latent", "8", "--batch-size", "256", "--seed", "0", "--device", "cpu",
            "--no-figures"]
API_FAST = dict(max_epochs=2, batch_size=256, n_hidden=32, n_latent=8, progress=False, seed=0)


def _sections(n_cells: int | None = None) -> dict[str, ad.AnnData]:
    require_data(*datasets.STARMAP_MPFC)
    out = {}
    for key, name in zip(KEYS, datasets.STARMAP_MPFC):
        a = ad.read_h5ad(datasets.data_dir() / f"{name}.h5ad")
        if n_cells is not None:
            a = a[np.sort(np.random.default_rng(0).choice(a.n_obs, n_cells, replace=False))].copy()
        out[key] = a
    return out


def _circles(xy: np.ndarray, ids: np.ndarray, seed: int):
    from scipy.spatial import cKDTree

    radius = 0.5 * np.median(cKDTree(xy).query(xy, k=2)[0][:, 1])  # cells about touching their neighbours
    perm = np.random.default_rng(seed).permutation(len(ids))  # element order differs from table order
    return ShapesModel.parse(xy[perm], geometry=0, radius=np.full(len(ids), radius), index=ids[perm],
                             transformations={"global": Scale([SCALE, SCALE], axes=("x", "y")),
                                              "pixels": Identity()})


def _table(parts: dict[str, ad.AnnData], region_key: str = "cells", keep_xy: bool = False) -> ad.AnnData:
    tabs = []
    for element, a in parts.items():
        t = a.copy()
        t.obs[region_key] = element
        t.obs["cell_id"] = a.obs["cell_id"].to_numpy()
        if not keep_xy:
            del t.obsm["spatial"]
        tabs.append(t)
    table = ad.concat(tabs, merge="same")
    table.obs[region_key] = pd.Categorical(table.obs[region_key], categories=list(parts))
    return TableModel.parse(table, region=list(parts), region_key=region_key, instance_key="cell_id")


def _extras(rng) -> dict:
    img = Image2DModel.parse(rng.integers(0, 255, (3, 96, 128), dtype=np.uint8), dims=("c", "y", "x"),
                             transformations={"global": Scale([8.0, 8.0], axes=("y", "x"))})
    lab = Labels2DModel.parse(rng.integers(0, 6, (96, 128)).astype(np.int32), dims=("y", "x"))
    pts = PointsModel.parse(pd.DataFrame({"x": rng.uniform(0, 900, 300), "y": rng.uniform(0, 900, 300),
                                          "gene": pd.Categorical(rng.choice(["Gad1", "Slc17a7", "Mbp"], 300))}),
                            feature_key="gene")
    return {"images": {"tissue": img}, "labels": {"nuclei": lab}, "points": {"transcripts": pts}}


def build_starmap_sdata(n_cells: int | None = None, keep_xy: bool = False):
    """(SpatialData, {section: AnnData with obs['cell_id']}) for the three STARmap sections."""
    secs = _sections(n_cells)
    rng = np.random.default_rng(1)
    shapes, parts = {}, {}
    for i, (key, a) in enumerate(secs.items()):
        a.obs["cell_id"] = 10_000 * (i + 1) + rng.permutation(a.n_obs)  # ids unrelated to row order
        shapes[f"cells_{key}"] = _circles(np.asarray(a.obsm["spatial"]), a.obs["cell_id"].to_numpy(), i)
        parts[f"cells_{key}"] = a
    sdata = sd.SpatialData(shapes=shapes, tables={"table": _table(parts, keep_xy=keep_xy)}, **_extras(rng))
    return sdata, parts


def _digest(root: Path, skip_tables: bool = False) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not (skip_tables and rel.parts[0] == "tables") and rel.as_posix() != "zarr.json":
            out[rel.as_posix()] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def _assert_elements_equal(a, b) -> None:
    """Every image, labels, points and shapes element of ``b`` equals that of ``a`` (values, transforms)."""
    for kind in ("images", "labels", "points", "shapes"):
        assert sorted(getattr(a, kind)) == sorted(getattr(b, kind)), kind
        for name in getattr(a, kind):
            x, y = getattr(a, kind)[name], getattr(b, kind)[name]
            tx, ty = get_transformation(x, get_all=True), get_transformation(y, get_all=True)
            assert sorted(tx) == sorted(ty), name
            for cs in tx:  # as matrices: writing may spell a scale with the channel axis added
                np.testing.assert_array_equal(tx[cs].to_affine_matrix(("x", "y"), ("x", "y")),
                                              ty[cs].to_affine_matrix(("x", "y"), ("x", "y")))
            if kind in ("images", "labels"):
                np.testing.assert_array_equal(np.asarray(x.data), np.asarray(y.data))
            elif kind == "points":
                pd.testing.assert_frame_equal(x.compute(), y.compute())
            else:
                pd.testing.assert_frame_equal(pd.DataFrame(x.drop(columns="geometry")),
                                              pd.DataFrame(y.drop(columns="geometry")))
                assert x.geometry.geom_equals_exact(y.geometry, tolerance=0).all()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    sdata, parts = build_starmap_sdata(n_cells=600)  # 600 real cells per section keep training short
    path = tmp_path_factory.mktemp("sdata") / "starmap.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sdata.write(path)
    return path, parts


@pytest.fixture(scope="module")
def integrated(store, tmp_path_factory):
    path, _ = store
    before = _digest(path)
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["integrate", str(path), "--out", str(out), *CLI_FAST]) == 0
    return out, before


def test_sections_come_from_the_table_with_centroids_matched_by_instance_id(store):
    path, parts = store
    secs = sections_from_spatialdata(path)
    assert secs.names == ["cells_BZ5", "cells_BZ9", "cells_BZ14"]
    for name, a in secs.items():
        truth = parts[name]
        assert list(a.obs_names) == list(truth.obs_names)  # the table's row order
        np.testing.assert_allclose(a.obsm["spatial"], SCALE * np.asarray(truth.obsm["spatial"]), rtol=1e-9)
    pix = sections_from_spatialdata(path, coordinate_system="pixels")
    np.testing.assert_allclose(pix.adatas[1].obsm["spatial"], parts["cells_BZ9"].obsm["spatial"], rtol=1e-9)
    by_col = sections_from_spatialdata(path, section_key="section")
    assert by_col.names == [parts[n].obs["section"].iloc[0] for n in parts]  # section_key values


def test_a_table_annotating_labels_takes_the_label_centroids():
    """Cells painted as 3x3-pixel squares into a labels raster (0.1 px per unit); label value = id."""
    a = _sections(n_cells=120)["BZ5"]
    xy = np.asarray(a.obsm["spatial"])
    px = np.round(xy / 10).astype(int) + 2
    raster = np.zeros((px[:, 1].max() + 4, px[:, 0].max() + 4), dtype=np.int32)
    for i, (x, y) in enumerate(px):
        raster[y - 1:y + 2, x - 1:x + 2] = i + 1
    alive = np.flatnonzero(np.isin(np.arange(1, len(px) + 1), raster))  # squares not painted over
    assert len(alive) > 80
    t = a[alive].copy()
    t.obs["cells"] = pd.Categorical(["nuclei"] * len(alive))
    t.obs["label"] = alive + 1
    del t.obsm["spatial"]
    lab = Labels2DModel.parse(raster, dims=("y", "x"), transformations={"global": Scale([10.0, 10.0], axes=("y", "x"))})
    sdata = sd.SpatialData(labels={"nuclei": lab},
                           tables={"t": TableModel.parse(t, region="nuclei", region_key="cells", instance_key="label")})
    secs = sections_from_spatialdata(sdata)
    assert secs.names == ["nuclei"]
    # centre of each square's pixels (pixel i spans [i, i+1)) in 'global' units; a square partly painted
    # over by a neighbour moves by at most one pixel (10 units)
    got = secs.adatas[0].obsm["spatial"]
    err = np.abs(got - (px[alive] + 0.5) * 10.0)
    assert err.max() <= 10.0 and np.median(err) == 0.0
    assert np.abs(got - 25.0 - xy[alive]).max() <= 15.0  # the cells' own coordinates, up to rounding


def test_integrate_store_writes_results_into_a_copy_and_keeps_every_element(store, integrated):
    path, parts = store
    out, before = integrated
    assert _digest(path) == before  # the input store is untouched
    result = out / "starmap.zarr"
    assert (out / "model" / "weights.pt").exists() and not (out / "sections").exists()
    assert _digest(result, skip_tables=True) == _digest(path, skip_tables=True)  # byte for byte
    orig, new = sd.read_zarr(path), sd.read_zarr(result)
    _assert_elements_equal(orig, new)
    t0, t1 = orig.tables["table"], new.tables["table"]
    assert list(t1.obs_names) == list(t0.obs_names)
    pd.testing.assert_frame_equal(t1.obs[t0.obs.columns], t0.obs)
    assert (t1.X != t0.X).nnz == 0 and list(t1.var_names) == list(t0.var_names)
    n = sum(a.n_obs for a in parts.values())
    for key in ("X_fusemap_cell", "X_fusemap_spatial"):
        assert t1.obsm[key].shape == (n, 8) and np.isfinite(t1.obsm[key]).all()
    assert t1.varm["fusemap_gene_embedding"].shape == (t0.n_vars, 8)
    assert "spatial" not in t1.obsm  # centroids used for training are not written into the table
    assert '"coordinate_system": "global"' in t1.uns["fusemap"]["spatialdata_json"]
    # rows hold their own cells' embeddings: recompute from the saved model and the output store
    model = fusemap.FuseMap.load(out / "model", result)
    for name, rows in ((n_, r) for n_, (_, r) in model.sections.source.rows.items()):
        np.testing.assert_allclose(t1.obsm["X_fusemap_cell"][rows], model.embeddings()[name].cell, atol=1e-5)
    # squidpy graph in squidpy's keys, one block per section: no edge joins two elements
    conn = sp.coo_matrix(t1.obsp["spatial_connectivities"])
    region = t1.obs["cells"].to_numpy()
    assert conn.nnz > 2 * n and (region[conn.row] == region[conn.col]).all()
    assert t1.uns["spatial_neighbors"]["params"]["library_key"] == "cells"


def test_in_place_replaces_only_the_tables(store, integrated, tmp_path):
    path, _ = store
    out, _ = integrated
    copy = tmp_path / "mine.zarr"
    shutil.copytree(path, copy)
    kept = _digest(copy, skip_tables=True)
    model = fusemap.FuseMap.load(out / "model", copy)
    sdata = model.sections.source.sdata
    with pytest.raises(FuseMapInputError, match="in_place=True"):
        save_spatialdata(sdata, copy, tables=["table"])
    model.write()  # into the in-memory tables
    save_spatialdata(sdata, copy, tables=["table"], in_place=True)
    assert _digest(copy, skip_tables=True) == kept
    assert [p.name for p in tmp_path.iterdir()] == ["mine.zarr"]  # no temporary stores left
    t = sd.read_zarr(copy).tables["table"]
    ref = sd.read_zarr(out / "starmap.zarr").tables["table"]
    np.testing.assert_allclose(t.obsm["X_fusemap_spatial"], ref.obsm["X_fusemap_spatial"], atol=1e-5)
    with pytest.raises(FileExistsError):
        save_spatialdata(sdata, out / "starmap.zarr", tables=["table"])


def test_cli_in_place_and_option_errors(tmp_path, capsys):
    copy = tmp_path / "mine.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_starmap_sdata(n_cells=150)[0].write(copy)
    kept = _digest(copy, skip_tables=True)
    assert main(["integrate", str(copy), "--out", str(tmp_path / "run"), "--in-place", "--epochs", "1",
                 *CLI_FAST[2:]]) == 0
    assert _digest(copy, skip_tables=True) == kept
    assert not list((tmp_path / "run").glob("*.zarr"))
    assert sd.read_zarr(copy).tables["table"].obsm["X_fusemap_cell"].shape[1] == 8
    h5 = tmp_path / "a.h5ad"
    ad.AnnData(np.ones((20, 3), dtype=np.float32)).write_h5ad(h5)
    assert main(["integrate", str(h5), "--out", str(tmp_path / "r2"), "--in-place"]) == 2
    assert "--in-place only apply to a SpatialData" in capsys.readouterr().err
    assert main(["integrate", str(copy), str(h5), "--out", str(tmp_path / "r3")]) == 2
    assert "pass one .zarr store alone" in capsys.readouterr().err
    assert main(["integrate", str(copy), "--out", str(tmp_path / "r4"), "--coordinate-system", "microns"]) == 2
    assert "'microns' is not a coordinate system" in capsys.readouterr().err
    assert not any((tmp_path / r).exists() for r in ("r2", "r3", "r4"))


def test_several_tables_in_memory_with_a_reused_graph(tmp_path):
    """Two tables (one with obsm['spatial'] and a squidpy kNN graph, one without); results in both."""
    import squidpy as sq

    sdata, parts = build_starmap_sdata(n_cells=250)
    ab = {k: parts[k] for k in ("cells_BZ5", "cells_BZ9")}
    tab_a = _table(ab, region_key="element", keep_xy=True)
    sq.gr.spatial_neighbors(tab_a, coord_type="generic", n_neighs=12, library_key="element")
    graph = tab_a.obsp["spatial_connectivities"].copy()
    del sdata.tables["table"]
    sdata.tables["ab"] = tab_a
    sdata.tables["c"] = _table({"cells_BZ14": parts["cells_BZ14"]})
    model = fusemap.integrate(sdata, **API_FAST)
    assert model.section_names == ["cells_BZ5", "cells_BZ9", "cells_BZ14"]
    degree = [s["mean_degree"] for s in model.section_info]
    assert min(degree[:2]) >= 12 > degree[2]  # the kNN graph (k=12), not a Delaunay one (~6)
    np.testing.assert_allclose(model.sections.adatas[0].obsm["spatial"], ab["cells_BZ5"].obsm["spatial"])
    a, c = sdata.tables["ab"], sdata.tables["c"]
    assert (a.obsp["spatial_connectivities"] != graph).nnz == 0  # the user's graph is never replaced
    assert a.obsm["X_fusemap_cell"].shape == (500, 8) and c.obsm["X_fusemap_spatial"].shape == (250, 8)
    assert "spatial_connectivities" in c.obsp and "spatial" not in c.obsm
    rows = model.sections.source.rows["cells_BZ9"][1]
    np.testing.assert_allclose(a.obsm["X_fusemap_cell"][rows], model.embeddings()["cells_BZ9"].cell)
    # imputed values as their own table, joined to the same shapes by instance id
    cent = {n: pd.DataFrame(adata.obsm["spatial"], columns=["x", "y"]) for n, adata in model.sections.items()}
    imp = add_imputed_table(sdata, "imputed", model.sections, cent)
    assert imp.n_obs == 750 and imp.uns["spatialdata_attrs"]["instance_key"] == "cell_id"
    _, joined = sd.join_spatialelement_table(sdata, spatial_element_names="cells_BZ14", table_name="imputed",
                                             how="left", match_rows="left")
    shapes14 = sd.transform(sdata.shapes["cells_BZ14"], to_coordinate_system="global")
    np.testing.assert_allclose(joined[:, "x"].X.ravel(), shapes14.geometry.x.to_numpy())
    # save the in-memory object (no store behind it): whole write, atomically
    target = tmp_path / "out.zarr"
    save_spatialdata(sdata, target)
    back = sd.read_zarr(target)
    _assert_elements_equal(sdata, back)
    np.testing.assert_allclose(back.tables["ab"].obsm["X_fusemap_cell"], a.obsm["X_fusemap_cell"])
    assert sorted(back.tables) == ["ab", "c", "imputed"]
    assert [p.name for p in tmp_path.iterdir()] == ["out.zarr"]
    assert len(write_results(model.sections)) == 2  # idempotent: writing again changes nothing new
    np.testing.assert_array_equal(a.obsm["X_fusemap_cell"], back.tables["ab"].obsm["X_fusemap_cell"])


def test_a_named_table_without_coordinates_or_elements_is_a_single_cell_reference():
    """A table that annotates nothing and has no obsm['spatial'] (a dissociated reference kept in the
    store), named in table=, gives a section without coordinates; the tissue tables keep theirs."""
    sdata, parts = build_starmap_sdata(n_cells=200)
    ref = parts["cells_BZ14"].copy()
    del ref.obsm["spatial"]
    sdata.tables["scref"] = TableModel.parse(ad.AnnData(ref.X, obs=ref.obs[["cell_type"]].copy(),
                                                        var=ref.var.copy()))
    secs = sections_from_spatialdata(sdata, table=["table", "scref"])
    assert secs.names[-1] == "scref" and "spatial" not in secs.adatas[-1].obsm
    assert all("spatial" in a.obsm for a in secs.adatas[:-1])
    model = fusemap.integrate(secs, **API_FAST)
    assert model.no_coordinates == ["scref"]
    assert sdata.tables["scref"].obsm["X_fusemap_cell"].shape == (200, 8)
    # not named, such a table is not a section (every annotating table is used, and only those)
    assert "scref" not in sections_from_spatialdata(sdata).names


def test_bad_spatialdata_input_is_named(store):
    path, _ = store
    sdata = sd.read_zarr(path)
    with pytest.raises(FuseMapInputError, match=r"table='nope'.*tables: \['table'\]"):
        sections_from_spatialdata(sdata, table="nope")
    with pytest.raises(FuseMapInputError, match="section_key='batch'"):
        sections_from_spatialdata(sdata, section_key="batch")
    t = sdata.tables["table"]
    ids = t.obs["cell_id"].to_numpy().copy()
    t.obs["cell_id"] = ids + 7  # now many rows name instances the shapes do not have
    with pytest.raises(FuseMapInputError, match="absent from 'cells_BZ5'"):
        sections_from_spatialdata(sdata)
    ids[1] = ids[0]
    t.obs["cell_id"] = ids
    with pytest.raises(FuseMapInputError, match="repeat an instance id"):
        sections_from_spatialdata(sdata)
    with pytest.raises(FuseMapInputError, match="does not exist"):
        sections_from_spatialdata(path.parent / "missing.zarr")


def test_clusters_on_the_tissue(integrated, tmp_path):
    out, _ = integrated
    from fusemap.pl import tissue_clusters

    sdata = sd.read_zarr(out / "starmap.zarr")
    fig = tissue_clusters(sdata, out=tmp_path / "tissue.png")
    assert len([ax for ax in fig.axes if ax.collections]) == 3  # one panel per section
    cl = sdata.tables["table"].obs["fusemap_spatial_cluster"]
    assert cl.notna().all() and cl.nunique() >= 2
    assert (tmp_path / "tissue.png").stat().st_size > 10_000
    pytest.importorskip("spatialdata_plot")
    fig = tissue_clusters(sdata, "X_fusemap_cell", backend="spatialdata-plot")
    assert len([ax for ax in fig.axes if ax.collections]) == 3
    assert sdata.tables["table"].obs["fusemap_cell_cluster"].nunique() >= 2


def _query_store(path: Path) -> tuple[Path, ad.AnnData]:
    """The BZ14 cells the reference store left out, as a store of their own (element 'query_BZ14')."""
    require_data(*datasets.STARMAP_MPFC)
    a = ad.read_h5ad(datasets.data_dir() / f"{datasets.STARMAP_MPFC[2]}.h5ad")
    used = np.random.default_rng(0).choice(a.n_obs, 600, replace=False)  # as _sections(600) chose them
    q = a[np.setdiff1d(np.arange(a.n_obs), used)].copy()
    q.obs["cell_id"] = np.arange(q.n_obs) + 5
    shapes = {"query_BZ14": _circles(np.asarray(q.obsm["spatial"]), q.obs["cell_id"].to_numpy(), 7)}
    sdata = sd.SpatialData(shapes=shapes, tables={"table": _table({"query_BZ14": q})})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sdata.write(path)
    return path, q


def test_map_transfer_and_impute_read_and_write_stores(store, integrated, tmp_path):
    out, _ = integrated
    qpath, q = _query_store(tmp_path / "query.zarr")
    before = _digest(qpath)
    # map: the reference data is found beside the model (out/starmap.zarr, no out/sections)
    assert main(["map", "--model", str(out / "model"), str(qpath), "--out", str(tmp_path / "m"), "--epochs", "1",
                 "--batch-size", "256", "--seed", "0", "--device", "cpu", "--no-figures"]) == 0
    assert _digest(qpath) == before
    mapped = tmp_path / "m" / "query.zarr"
    t = sd.read_zarr(mapped).tables["table"]
    assert t.obsm["X_fusemap_cell"].shape == (q.n_obs, 8) and np.isfinite(t.obsm["X_fusemap_spatial"]).all()
    assert list(t.obs_names) == list(q.obs_names)
    # transfer from the labelled reference store onto the mapped query store (already embedded)
    assert main(["transfer", "--model", str(tmp_path / "m" / "model"), "--reference", str(out / "starmap.zarr"),
                 "--labels", "cell_type", str(mapped), "--method", "knn", "--out", str(tmp_path / "t")]) == 0
    lab = sd.read_zarr(tmp_path / "t" / "query.zarr").tables["table"].obs
    assert lab["fusemap_cell_type"].notna().all() and lab["fusemap_cell_type_uncertainty"].between(0, 1).all()
    # each row holds its own cell's label: the same transfer through the API, in section order
    from fusemap.transfer import transfer_labels

    api = transfer_labels(sections_from_spatialdata(out / "starmap.zarr"), sections_from_spatialdata(mapped),
                          "cell_type", method="knn", write=False).predictions
    assert list(api.index) == list(lab.index)
    assert (api["fusemap_cell_type"].to_numpy() == lab["fusemap_cell_type"].astype(str).to_numpy()).all()
    # impute into a table of its own that joins the same shapes, as a copy and in place
    genes = "Gad1,Slc17a7"
    assert main(["impute", "--model", str(tmp_path / "m" / "model"), str(mapped), "--genes", genes,
                 "--out", str(tmp_path / "imp.zarr")]) == 0
    imp = sd.read_zarr(tmp_path / "imp.zarr").tables["fusemap_imputed"]
    assert imp.shape == (q.n_obs, 2) and list(imp.var_names) == ["Gad1", "Slc17a7"]
    assert imp.uns["spatialdata_attrs"]["region"] == ["query_BZ14"]
    np.testing.assert_array_equal(imp.obs["cell_id"].to_numpy(), q.obs["cell_id"].to_numpy())
    assert main(["impute", "--model", str(tmp_path / "m" / "model"), str(mapped), "--genes", genes,
                 "--out", str(tmp_path / "imp.h5ad")]) == 0
    np.testing.assert_allclose(ad.read_h5ad(tmp_path / "imp.h5ad").X, imp.X, atol=1e-6)
    kept = _digest(mapped, skip_tables=True)
    assert main(["impute", "--model", str(tmp_path / "m" / "model"), str(mapped), "--genes", genes,
                 "--in-place"]) == 0
    assert _digest(mapped, skip_tables=True) == kept
    assert sorted(sd.read_zarr(mapped).tables) == ["fusemap_imputed", "table"]


def test_store_options_of_the_query_commands_are_checked(tmp_path, capsys):
    h5 = tmp_path / "a.h5ad"
    ad.AnnData(np.ones((20, 3), dtype=np.float32)).write_h5ad(h5)
    model = str(tmp_path / "model")
    assert main(["impute", "--model", model, str(h5), "--genes", "Gad1"]) == 2
    assert "--out is required" in capsys.readouterr().err
    assert main(["impute", "--model", model, str(h5), "--genes", "Gad1", "--in-place"]) == 2
    assert "only apply to a SpatialData .zarr input" in capsys.readouterr().err
    assert main(["map", "--model", model, str(h5), "--out", str(tmp_path / "m"), "--table", "t"]) == 2
    assert "--table only apply to a SpatialData" in capsys.readouterr().err
