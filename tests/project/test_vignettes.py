"""The tutorials in vignettes/ run as notebooks, start to finish, with the test settings
(FUSEMAP_VIGNETTE_FAST=1: 3 epochs, 300 cells per section), and print and draw what they claim.

Each is executed by vignettes/render.py (jupytext + nbclient, a fresh kernel of this Python) in a
subprocess; the executed notebook's printed output and the figure files are then checked, and the
notebook is kept in build/vignettes-fast, where `make docs` finds it. The R
vignette is knitted by scripts/test_r.sh after the R package is installed.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, require_data

pytestmark = pytest.mark.realdata

VIGNETTES = ROOT / "vignettes"
DOCS_NOTEBOOKS = ROOT / "build" / "vignettes-fast"
"""Where each executed notebook is copied for the documentation (ignored by git)."""


def _execute(prefix: str, out: Path, data: tuple[str, ...] = ()) -> tuple[str, Path]:
    """Run one tutorial through render.py; return its printed output and its figure folder
    (``data``: the shared data files it reads, default the STARmap sections)."""
    for mod in ("jupytext", "nbclient", "ipykernel"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed (the test extra installs it)")
    require_data(*data)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(VIGNETTES / "render.py"), prefix, "--fast", "--no-html", "--no-r",
                           "--out", str(out), "--timeout", "600"], env=env, cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    (nb_path,) = out.glob(f"{prefix}*.ipynb")
    nb = json.loads(nb_path.read_text())
    text = "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code"
                   for o in c.get("outputs", []) if o.get("output_type") == "stream")
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    images = sum(1 for c in nb["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    print(f"{nb_path.stem}: {time.perf_counter() - t0:.0f} s, {images} inline images")
    # kept for `make docs`, which shows the newest rendering of each tutorial (docs/conf.py)
    DOCS_NOTEBOOKS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(nb_path, DOCS_NOTEBOOKS / nb_path.name)
    return text, out / "figures" / nb_path.stem


def _figures(folder: Path, names: list[str]) -> None:
    for n in names:
        f = folder / f"{n}.png"
        assert f.is_file() and f.stat().st_size > 5000, f  # a real drawing, not an empty canvas


def test_01_integrate_panels(tmp_path):
    text, figs = _execute("01", tmp_path)
    assert "genes measured in all three sections: 40" in text
    assert "genes in the union of the panels: 166" in text
    for shape in ("(300, 16)",):
        assert text.count(f"cell embedding {shape}") == 3 and text.count(f"spatial embedding {shape}") == 3
    assert "gene embedding: (166, 16)" in text
    assert "ARI spatial clusters vs layers:" in text and "FuseMap cell embedding" in text
    _figures(figs, ["tissue_labels", "umap_before_integration", "training_history", "umap_cell", "umap_spatial",
                    "tissue_spatial_clusters", "tissue_cell_clusters", "tissue_regions4"])
    assert (tmp_path / "outputs" / "01_integrate_panels" / "model").is_dir()


def test_02_impute_genes(tmp_path):
    text, figs = _execute("02", tmp_path)
    assert "AnnData object with n_obs × n_vars = 900 × 166" in text
    assert "over 198 (section, gene) pairs" in text  # 66 hidden genes x 3 sections
    assert "module sizes:" in text and "GM8:" in text
    _figures(figs, ["imputation_correlations", "pseudobulk_scatter", "tissue_measured_vs_imputed",
                    "gene_modules_umap", "gene_modules_by_cell_type"])


def test_03_map_and_transfer(tmp_path):
    text, figs = _execute("03", tmp_path)
    assert "query embeddings: (300, 16) (300, 16)" in text
    assert "vocabulary grew from 142 to 166 genes" in text
    assert "query cell type: accuracy" in text and "query layer:     accuracy" in text
    assert "uncertainty <= 0.5:" in text
    _figures(figs, ["umap_reference_query", "confusion", "tissue_transfer_uncertainty", "uncertainty_calibration"])


def test_04_spatialdata(tmp_path):
    pytest.importorskip("spatialdata")
    pytest.importorskip("spatialdata_plot")
    text, figs = _execute("04", tmp_path)
    assert "coordinates: {'table_BZ5': 'centroids', 'table_BZ9': 'centroids'}" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("table_BZ14:"))
    head, obs = line.split("; obs ")
    assert head == "table_BZ14: 300 rows x 100 genes; obsm ['X_fusemap_cell', 'X_fusemap_spatial']"
    assert set(ast.literal_eval(obs)) == {
        "fusemap_novelty", "fusemap_novelty_cluster",  # written by map_query
        "fusemap_cell_type", "fusemap_cell_type_uncertainty", "fusemap_cell_type_novelty",
        "fusemap_region", "fusemap_region_uncertainty", "fusemap_region_novelty"}
    assert "imputed 66 genes the query did not measure for 300 cells" in text
    _figures(figs, ["reference_spatial_clusters_on_shapes", "query_layers_on_shapes", "query_imputed_gene_on_shapes",
                    "all_sections_spatial_clusters_on_shapes"])
    assert (tmp_path / "outputs" / "04_spatialdata" / "starmap_fusemap.zarr").is_dir()


def test_05_single_cell_and_novelty(tmp_path):
    text, figs = _execute("05", tmp_path, ("slideseqv2_hippocampus", "ref_dropseq_hippocampus_rctd",
                                           "xenium_mousebrain_ctxhp"))
    assert "Drop-seq reference: (510, 307) | coordinates in the reference: False" in text
    assert "78 genes shared; 229 reference genes the beads did not measure" in text
    assert "sections without coordinates: ['dropseq']" in text
    assert "imputed 229 reference-only genes for 300 beads" in text
    assert "novelty AUROC, held-out types vs the other query cells:" in text
    assert "unassigned:" in text and "accuracy on the other query cells that were assigned:" in text
    _figures(figs, ["sc_umap", "sc_transfer_on_tissue", "sc_imputed_genes", "novelty_on_tissue", "novelty_umap"])
