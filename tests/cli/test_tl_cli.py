"""Command-line access to the analyses: fusemap regions / nomenclature / proximity / panel."""

import numpy as np
import pandas as pd
import pytest

from fusemap import cli, datasets


@pytest.fixture
def integrated_dir(tmp_path):
    """A folder shaped like the output of `fusemap integrate` (sections/*.h5ad with embeddings)."""
    secs = datasets.simulate(n_sections=2, n_cells=300, n_genes=40, seed=4)
    rng = np.random.default_rng(4)
    c_cell, c_reg = rng.normal(size=(8, 12)) * 3, rng.normal(size=(4, 12)) * 3
    (tmp_path / "run" / "sections").mkdir(parents=True)
    for i, a in enumerate(secs):
        a.obsm["X_fusemap_cell"] = c_cell[a.obs["cell_type"].cat.codes.to_numpy()] + rng.normal(size=(a.n_obs, 12))
        a.obsm["X_fusemap_spatial"] = c_reg[a.obs["region"].cat.codes.to_numpy()] + rng.normal(size=(a.n_obs, 12))
        a.obs["atlas1"] = a.obs["cell_type"].astype(str) if i == 0 else ""
        a.obs["atlas2"] = a.obs["cell_type"].astype(str).str.replace("T", "type") if i == 1 else ""
        a.write_h5ad(tmp_path / "run" / "sections" / f"sim_section_{i}.h5ad")
    emb = pd.DataFrame(rng.normal(size=(40, 8)), index=list(secs[0].var_names))
    emb.to_csv(tmp_path / "run" / "gene_embedding.csv")
    return tmp_path / "run"


def test_regions_and_nomenclature_commands(integrated_dir, tmp_path, capsys):
    out = tmp_path / "regions"
    assert cli.main(["regions", str(integrated_dir), "--out", str(out), "--n-regions", "4", "--markers", "3"]) == 0
    reg = pd.read_csv(out / "regions.csv", index_col=0)
    assert len(reg) == 600 and reg["region"].nunique() == 4
    assert len(pd.read_csv(out / "markers.csv")) == 12
    assert (out / "figures" / "regions_spatial.png").stat().st_size > 5000
    # refuses to overwrite, then replaces with --overwrite
    assert cli.main(["regions", str(integrated_dir), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err

    out = tmp_path / "nomen"
    assert cli.main(["nomenclature", str(integrated_dir), "--label-a", "atlas1", "--label-b", "atlas2",
                     "--out", str(out), "--method", "knn"]) == 0
    best = pd.read_csv(out / "best_matches.csv")
    ok = best["atlas2"] == best["atlas1"].str.replace("T", "type")
    assert best.loc[ok, "n_cells"].sum() > 0.95 * best["n_cells"].sum()  # rare types may miss
    assert (out / "figures" / "correspondence_row.png").exists()


def test_proximity_and_panel_commands(integrated_dir, tmp_path):
    out = tmp_path / "prox"
    assert cli.main(["proximity", str(integrated_dir), "--cell-type-key", "cell_type", "--region-key", "region",
                     "--radius", "40", "--n-shifts", "50", "--out", str(out)]) == 0
    table = pd.read_csv(out / "proximity.csv")
    assert set(table["region"]) == {"R0", "R1", "R2", "R3"} and (table["pval"] > 0).all()
    assert len(list((out / "figures").glob("proximity_*.png"))) == 4

    out = tmp_path / "panel"
    expr = integrated_dir / "sections" / "sim_section_0.h5ad"
    assert cli.main(["panel", "--gene-embedding", str(integrated_dir), "--expression", str(expr), "--label-key",
                     "cell_type", "--sizes", "8,16", "--n-modules", "4", "--n-random", "2", "--out", str(out)]) == 0
    assert len(pd.read_csv(out / "panel_8.csv")) == 8
    comp = pd.read_csv(out / "comparison.csv")
    assert set(comp["kind"]) == {"embedding", "hvg", "random"} and len(comp) == 8
    assert cli.main(["panel", "--gene-embedding", str(integrated_dir), "--expression", str(expr), "--sizes",
                     "x", "--out", str(tmp_path / "bad")]) == 2
