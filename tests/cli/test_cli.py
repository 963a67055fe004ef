"""The command line writes the documented layout, atomically, and refuses to clobber output."""

import anndata as ad
import pandas as pd
import pytest

from fusemap.cli import main


@pytest.fixture
def section_files(sim_sections, tmp_path):
    paths = []
    for i, a in enumerate(sim_sections):
        p = tmp_path / f"slice{i}.h5ad"
        a.write_h5ad(p)
        paths.append(str(p))
    return paths


FAST_ARGS = ["--epochs", "2", "--batch-size", "64", "--seed", "1", "--device", "cpu"]


def test_integrate_writes_the_layout(section_files, tmp_path):
    out = tmp_path / "run"
    assert main(["integrate", *section_files, "--out", str(out), *FAST_ARGS]) == 0
    assert (out / "model" / "weights.pt").exists() and (out / "model" / "config.json").exists()
    for i in range(3):
        a = ad.read_h5ad(out / "sections" / f"slice{i}.h5ad")  # names come from the file names
        src = ad.read_h5ad(section_files[i])
        assert list(a.obs_names) == list(src.obs_names)
        assert a.obsm["X_fusemap_cell"].shape == (src.n_obs, 64)
        assert a.obsm["X_fusemap_spatial"].shape == (src.n_obs, 64)
        assert a.uns["fusemap"]["model_dir"].endswith("model")
    ge = pd.read_csv(out / "gene_embedding.csv", index_col=0)
    assert ge.shape[1] == 64 and ge.index.is_unique
    figs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figs == ["spatial_cell_clusters.png", "spatial_spatial_clusters.png", "umap_cell.png",
                    "umap_spatial.png"]
    assert not (out / "checkpoint").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_integrate_refuses_existing_output(section_files, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["integrate", *section_files, "--out", str(out), *FAST_ARGS]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"


def test_integrate_with_section_key(sim_sections, tmp_path):
    pooled = ad.concat(sim_sections, merge="same")
    pooled.obs["sample"] = pooled.obs["section"].astype("category")
    p = tmp_path / "pooled.h5ad"
    pooled.write_h5ad(p)
    out = tmp_path / "run"
    assert main(["integrate", str(p), "--section-key", "sample", "--out", str(out), "--no-figures",
                 *FAST_ARGS]) == 0
    names = sorted(f.stem for f in (out / "sections").glob("*.h5ad"))
    assert names == ["sim_section_0", "sim_section_1", "sim_section_2"]


def test_bad_input_exits_with_a_message(section_files, tmp_path, capsys):
    a = ad.read_h5ad(section_files[0])
    a.X = a.X * 0.3
    a.write_h5ad(section_files[0])
    assert main(["integrate", *section_files, "--out", str(tmp_path / "r"), *FAST_ARGS]) == 2
    err = capsys.readouterr().err
    assert "non-integer" in err and "slice0" in err
    assert not (tmp_path / "r").exists()


def test_integrate_with_panels_of_a_joined_table_and_the_closing_summary(sim_sections, tmp_path, capsys):
    import json
    import warnings

    import scipy.sparse as sp

    pooled = ad.concat(sim_sections, join="outer", fill_value=0)  # unmeasured genes filled with 0
    pooled.obs["section"] = pooled.obs["section"].astype("category")
    pooled.X = sp.csr_matrix(pooled.X)
    table = tmp_path / "pooled.h5ad"
    pooled.write_h5ad(table)
    panels = {str(a.obs["section"].iloc[0]): list(map(str, a.var_names)) for a in sim_sections}
    (tmp_path / "panels.json").write_text(json.dumps(panels))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        assert main(["integrate", str(table), "--section-key", "section", "--panels", str(tmp_path / "panels.json"),
                     "--out", str(tmp_path / "run"), "--no-figures", *FAST_ARGS]) == 0
    assert not [w for w in rec if "probably not measured" in str(w.message)]
    sections = json.loads((tmp_path / "run" / "model" / "sections.json").read_text())["sections"]
    assert [s["genes"] for s in sections] == list(panels.values())
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "fusemap integrate: trained 4 epochs (phase 1: 2 epochs, phase 2: 2 epochs) in " + \
        out[0].split(" in ")[1]
    assert out[1].startswith("fusemap integrate: Balance weights: ")
    assert out[2].startswith("fusemap integrate: Section mixing: cell embedding: ")
    assert out[-1] == f"fusemap integrate: wrote {tmp_path / 'run'}"
    saved = ad.read_h5ad(tmp_path / "run" / "sections" / "sim_section_0.h5ad")
    assert saved.n_vars == pooled.n_vars  # the table's columns stay; the panel says what was measured
    assert json.loads(saved.uns["fusemap"]["mixing_json"])["cell"]["n_clusters"] >= 1
    # the saved reference, with its zero-filled columns, is attached again for mapping
    import fusemap

    query = sim_sections[2].copy()
    query.obs["section"] = "query"
    mapped = fusemap.map_query(str(tmp_path / "run" / "model"), query, max_epochs=1, progress=False)
    assert [s["genes"] for s in mapped.section_info[:3]] == list(panels.values())
