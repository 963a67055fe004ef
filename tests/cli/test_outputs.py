"""The output contract: fusemap never deletes or overwrites a file it did not write.

Every command checks --out before any work: it may not be (or hold) an input, the current directory
or one above it, or a folder with files fusemap did not write; --overwrite replaces fusemap's own
earlier result only. A run stopped by bad input leaves nothing behind.
"""

import os

import anndata as ad
import pytest

import fusemap
from fusemap import FuseMap, FuseMapInputError
from fusemap.cli import main
from fusemap.io.files import MANIFEST, check_target

from conftest import FAST

FAST_ARGS = ["--epochs", "1", "--batch-size", "64", "--seed", "1", "--device", "cpu", "--no-figures"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Section files and one finished `fusemap integrate` result."""
    root = tmp_path_factory.mktemp("outputs")
    files = []
    for i, a in enumerate(fusemap.datasets.simulate(n_sections=3, n_cells=300, n_genes=60, panel_size=40,
                                                    n_shared=15, seed=3)):
        files.append(root / f"slice{i}.h5ad")
        a.write_h5ad(files[-1])
    out = root / "run"
    assert main(["integrate", *map(str, files), "--out", str(out), *FAST_ARGS]) == 0
    return root, [str(f) for f in files], out


def _snapshot(folder):
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_result_carries_a_manifest_of_what_fusemap_wrote(run):
    _, _, out = run
    import json

    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["written_by"] == "fusemap" and manifest["command"] == "integrate"
    assert sorted(manifest["entries"]) == sorted(p.name for p in out.iterdir() if p.name != MANIFEST)


def test_overwrite_replaces_only_fusemaps_own_result(run, capsys):
    root, files, out = run
    before = set(p.name for p in out.iterdir())
    assert main(["integrate", *files, "--out", str(out), "--overwrite", *FAST_ARGS]) == 0
    assert set(p.name for p in out.iterdir()) == before
    (out / "notes.txt").write_text("my notes")  # a user file now lives in the result folder
    assert main(["integrate", *files, "--out", str(out), "--overwrite", *FAST_ARGS]) == 2
    err = capsys.readouterr().err
    assert "notes.txt" in err and "fusemap did not write" in err
    assert (out / "notes.txt").read_text() == "my notes"
    (out / "notes.txt").unlink()


def test_out_holding_the_inputs_is_refused(run, capsys):
    root, files, _ = run
    before = _snapshot(root)
    assert main(["integrate", *files, "--out", str(root), "--overwrite", *FAST_ARGS]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "holds the input" in err
    assert _snapshot(root) == before


def test_out_at_or_above_the_working_directory_is_refused(run, monkeypatch, capsys):
    root, files, _ = run
    monkeypatch.chdir(root / "run")
    assert main(["integrate", *files, "--out", ".", "--overwrite", *FAST_ARGS]) == 2
    assert "current directory" in capsys.readouterr().err
    assert main(["integrate", *files, "--out", "..", "--overwrite", *FAST_ARGS]) == 2
    assert "holds the input" in capsys.readouterr().err  # checked first: '..' holds the sections
    assert (root / "run" / "model" / "weights.pt").exists()


def test_current_directory_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FuseMapInputError, match="current directory"):
        check_target(".", overwrite=True)
    with pytest.raises(FuseMapInputError, match="current directory"):
        check_target(os.path.dirname(os.getcwd()), overwrite=True)


def test_impute_never_replaces_its_input_or_a_foreign_file(run, capsys):
    root, _, out = run
    section = out / "sections" / "slice0.h5ad"
    stamp = section.stat().st_mtime_ns
    assert main(["impute", "--model", str(out / "model"), str(section), "--genes", "Gene0001",
                 "--out", str(section), "--overwrite"]) == 2
    assert "is the input" in capsys.readouterr().err
    assert section.stat().st_mtime_ns == stamp
    foreign = root / "foreign.h5ad"
    ad.AnnData(shape=(2, 2)).write_h5ad(foreign)
    assert main(["impute", "--model", str(out / "model"), str(section), "--genes", "Gene0001",
                 "--out", str(foreign), "--overwrite"]) == 2
    assert "fusemap did not write" in capsys.readouterr().err
    assert ad.read_h5ad(foreign).shape == (2, 2)
    mine = root / "imputed.h5ad"  # fusemap's own imputation may be replaced with --overwrite
    for _ in range(2):
        assert main(["impute", "--model", str(out / "model"), str(section), "--genes", "Gene0001",
                     "--out", str(mine), "--overwrite"]) == 0
    assert ad.read_h5ad(mine).shape[1] == 1


def test_bad_input_leaves_no_partial_folder(run, tmp_path, capsys):
    _, files, _ = run
    assert main(["integrate", *files, "--out", str(tmp_path / "r"), "--layer", "nope", *FAST_ARGS]) == 2
    err = capsys.readouterr().err
    assert "--layer" in err and "layer=" not in err  # the message names the flag, not the argument
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_model_save_refuses_a_foreign_folder(sim_sections, tmp_path):
    model = FuseMap(sim_sections, **FAST)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    with pytest.raises(fusemap.FuseMapInputError, match="is not a saved fusemap model"):
        model.save(tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "x"
    path = model.save(tmp_path / "m")
    model.save(path, overwrite=True)  # its own model directory may be replaced
    assert FuseMap.load(path).vocabulary == model.vocabulary


def test_graph_flags_reach_the_model(run, tmp_path):
    _, files, _ = run
    out = tmp_path / "radius"
    assert main(["integrate", *files, "--out", str(out), "--graph", "radius", "--radius", "150",
                 "--no-resume", *FAST_ARGS]) == 0
    cfg = FuseMap.load(out / "model").config
    assert cfg.graph.method == "radius" and cfg.graph.radius == 150
