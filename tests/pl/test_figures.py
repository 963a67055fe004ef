"""Figures (fusemap.pl): each draws what its input holds, returns the Figure and writes ``save=``
atomically (a PNG, nothing else left in the folder)."""

import dataclasses

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from fusemap import FuseMapInputError, pl  # noqa: E402
from fusemap.tl import cell_proximity, harmonize_nomenclatures  # noqa: E402

from conftest import embedded_by  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _written(path):
    """The file is a PNG and is the only file in its folder (no temporary left behind)."""
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 2000
    assert [p.name for p in path.parent.iterdir()] == [path.name]


@pytest.fixture(scope="module")
def proximity():
    """Uniform cells of four types, 100 B cells put 5-15 µm from A cells (the A-B pair is enriched)."""
    import anndata as ad

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 1000, (2000, 2))
    types = rng.choice(list("ABCD"), 2000)
    a, b = np.flatnonzero(types == "A")[:100], np.flatnonzero(types == "B")[:100]
    ang, r = rng.uniform(0, 2 * np.pi, 100), rng.uniform(5, 15, 100)
    xy[b] = xy[a] + np.column_stack([r * np.cos(ang), r * np.sin(ang)])
    adata = ad.AnnData(np.zeros((2000, 1), np.float32), obs=pd.DataFrame({"cell_type": types},
                                                                         index=[f"c{i}" for i in range(2000)]))
    adata.obsm["spatial"] = xy
    return cell_proximity(adata, "cell_type", radius=30, n_shifts=200, seed=0)


def test_proximity_heatmap_shows_the_fold_changes_and_marks_the_enriched_pair(proximity, tmp_path):
    region = str(proximity.table["region"].iloc[0])
    fig = pl.proximity_heatmap(proximity, save=tmp_path / "heat.png")
    ax = fig.axes[0]
    fc = proximity.matrix(region, "log2_fold_change").to_numpy(dtype=float)
    shown = np.asarray(ax.images[0].get_array())
    lim = max(np.abs(fc[np.isfinite(fc)]).max(), 0.5)
    np.testing.assert_allclose(shown, np.clip(fc, -lim, lim))
    # the one enriched pair, A-B, is marked in both halves of the symmetric matrix
    assert len(proximity.significant()) == 1
    types = list(proximity.matrix(region, "log2_fold_change").index)
    dots = {(types[int(y)], types[int(x)]) for x, y in ax.collections[0].get_offsets()}
    assert dots == {("A", "B"), ("B", "A")}
    assert [t.get_text() for t in ax.get_yticklabels()] == types
    _written(tmp_path / "heat.png")


def test_proximity_summary_draws_one_bar_per_enriched_pair(proximity, tmp_path):
    fig = pl.proximity_summary(proximity, save=tmp_path / "summary.png")
    bars = fig.axes[0].patches
    assert len(bars) == len(proximity.significant()) == 1
    assert bars[0].get_width() == pytest.approx(float(proximity.significant()["log2_fold_change"].iloc[0]))
    _written(tmp_path / "summary.png")
    proximity_none = dataclasses.replace(proximity, alpha=1e-12)
    empty = pl.proximity_summary(proximity_none)
    assert not empty.axes[0].patches and "no pair enriched" in empty.axes[0].texts[0].get_text()


@pytest.fixture(scope="module")
def correspondence():
    secs = embedded_by("cell_type", "X_fusemap_cell", n_sections=2, n_cells=600, dim=16, seed=1)
    pairs = {f"T{i}": f"C{i // 2}" for i in range(8)}  # two fine types per coarse one
    secs[0].obs["fine"] = secs[0].obs["cell_type"].astype(str)
    secs[1].obs["fine"] = np.nan
    secs[1].obs["coarse"] = secs[1].obs["cell_type"].astype(str).map(pairs)
    return harmonize_nomenclatures(secs, "fine", "coarse", method="knn")


def test_correspondence_heatmap_orders_matches_along_the_diagonal(correspondence, tmp_path):
    fig = pl.correspondence_heatmap(correspondence, "row", save=tmp_path / "corr.png")
    ax = fig.axes[0]
    shown = np.asarray(ax.images[0].get_array())
    assert shown.shape == correspondence.row_normalized.shape == (8, 4)
    np.testing.assert_allclose(shown.sum(1), 1.0)
    cols = [t.get_text() for t in ax.get_xticklabels()]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    # each fine type's largest share is its own coarse type, and the columns follow the rows' order
    best = [cols[j] for j in shown.argmax(1)]
    assert best == [f"C{int(r[1:]) // 2}" for r in rows]
    assert all(np.diff([cols.index(c) for c in best]) >= 0)
    assert len(ax.texts) == shown.size  # shares written into the cells
    _written(tmp_path / "corr.png")
    counts = pl.correspondence_heatmap(correspondence, "counts", annotate=True)
    assert np.asarray(counts.axes[0].images[0].get_array()).sum() == correspondence.counts.to_numpy().sum()
    assert not counts.axes[0].texts
    with pytest.raises(FuseMapInputError, match="normalize='share'"):
        pl.correspondence_heatmap(correspondence, "share")


def test_imputation_check_boxplot_has_one_box_per_group_with_its_genes(tmp_path):
    check = pd.DataFrame({"group": ["shared_measured"] * 5 + ["shared_imputed"] * 4 + ["b_only_imputed"] * 3,
                          "r": np.r_[np.linspace(0.6, 0.9, 5), np.linspace(0.3, 0.6, 4), [0.1, np.nan, 0.2]],
                          "gene": [f"g{i}" for i in range(12)]})
    fig = pl.imputation_check_boxplot(check, save=tmp_path / "box.png")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert [lab.split("(n=")[1].rstrip(")") for lab in labels] == ["5", "4", "2"]  # NaN r left out
    points = [np.asarray(c.get_offsets()) for c in ax.collections]
    assert [len(p) for p in points] == [5, 4, 2]
    np.testing.assert_allclose(points[0][:, 1], np.linspace(0.6, 0.9, 5))  # each gene's r, at its box
    np.testing.assert_allclose(points[2][:, 1], [0.1, 0.2])
    assert all(np.abs(p[:, 0] - (i + 1)).max() <= 0.15 for i, p in enumerate(points))
    _written(tmp_path / "box.png")
