"""The command-line chain integrate -> map -> impute -> transfer, and its error messages."""

import hashlib
import json

import anndata as ad
import pandas as pd
import pytest

import fusemap
from fusemap.cli import main


def _hash_dir(path):
    h = {}
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h[str(p.relative_to(path))] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return h


FAST_ARGS = ["--epochs", "2", "--batch-size", "64", "--seed", "1", "--device", "cpu"]
SMALL = ["--latent", "16"]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    secs = fusemap.datasets.simulate(n_sections=3, n_cells=250, n_genes=60, panel_size=40, n_shared=15, seed=3)
    files = []
    for i, a in enumerate(secs):
        p = tmp / f"slice{i}.h5ad"
        a.write_h5ad(p)
        files.append(str(p))
    run = tmp / "run"
    assert main(["integrate", *files[:2], "--out", str(run), "--no-figures", *FAST_ARGS, *SMALL]) == 0
    return tmp, files, run


def test_cli_map_impute_transfer(cli_run, capsys):
    tmp, files, run = cli_run
    before = _hash_dir(run / "model")
    out2 = tmp / "mapped"
    assert main(["map", "--model", str(run / "model"), files[2], "--out", str(out2), "--no-figures",
                 *FAST_ARGS]) == 0
    q = ad.read_h5ad(out2 / "sections" / "slice2.h5ad")
    assert q.obsm["X_fusemap_cell"].shape == (250, 16)
    mapped = fusemap.FuseMap.load(out2 / "model")
    assert mapped.section_names == ["slice0", "slice1", "slice2"]
    assert [s["role"] for s in mapped.section_info] == ["reference", "reference", "query"]
    ge = pd.read_csv(out2 / "gene_embedding.csv", index_col=0)
    assert list(ge.index) == mapped.vocabulary.names
    assert (out2 / "history.csv").exists() and not (out2 / "checkpoint").exists()

    # impute a mapped query section from the mapped model, and the whole vocabulary
    imp_path = tmp / "imp.h5ad"
    assert main(["impute", "--model", str(out2 / "model"), str(out2 / "sections" / "slice2.h5ad"),
                 "--genes", "Gene0001,Gene0007", "--out", str(imp_path)]) == 0
    imp = ad.read_h5ad(imp_path)
    assert imp.shape == (250, 2) and list(imp.obs_names) == list(q.obs_names)
    all_path = tmp / "all.h5ad"
    assert main(["impute", "--model", str(run / "model"), str(run / "sections" / "slice0.h5ad"), "--all",
                 "--out", str(all_path)]) == 0
    assert ad.read_h5ad(all_path).shape == (250, len(fusemap.FuseMap.load(run / "model").vocabulary))
    assert main(["impute", "--model", str(run / "model"), str(run / "sections" / "slice0.h5ad"),
                 "--genes", "Gene0001,Nope1,Nope2", "--out", str(tmp / "bad.h5ad")]) == 2
    assert "['Nope1', 'Nope2']" in capsys.readouterr().err
    assert not (tmp / "bad.h5ad").exists()

    # transfer onto an already mapped query and onto a raw one (mapped on the way)
    out3 = tmp / "labels"
    assert main(["transfer", "--model", str(run / "model"), "--reference", str(run / "sections"),
                 "--labels", "cell_type", "--hierarchy", "region", str(out2 / "sections" / "slice2.h5ad"),
                 "--out", str(out3)]) == 0
    t = ad.read_h5ad(out3 / "slice2.h5ad")
    assert {"fusemap_cell_type", "fusemap_cell_type_uncertainty", "fusemap_region"} <= set(t.obs)
    summary = json.loads((out3 / "transfer_summary.json").read_text())
    assert summary["mapped_here"] == [] and 0 <= summary["heldout_accuracy"]["cell_type"] <= 1
    out4 = tmp / "labels_raw"
    assert main(["transfer", "--model", str(run / "model"), "--reference", str(run / "sections"),
                 "--labels", "cell_type", files[2], "--out", str(out4), *FAST_ARGS]) == 0
    assert json.loads((out4 / "transfer_summary.json").read_text())["mapped_here"] == ["slice2"]
    assert "fusemap_cell_type" in ad.read_h5ad(out4 / "slice2.h5ad").obs

    assert _hash_dir(run / "model") == before  # the reference model directory was only read


def test_cli_errors(cli_run, capsys):
    tmp, files, run = cli_run
    assert main(["map", "--model", str(tmp), files[2], "--out", str(tmp / "x")]) == 2
    assert "not a fusemap model directory" in capsys.readouterr().err
    assert main(["transfer", "--model", str(run / "model"), "--reference", str(run / "sections"),
                 "--labels", "celltype", files[2], "--out", str(tmp / "y")]) == 2
    assert "no obs column(s) ['celltype']" in capsys.readouterr().err
    odd = ad.read_h5ad(files[2])
    odd.var_names = [f"X{i}" for i in range(odd.n_vars)]
    odd.write_h5ad(tmp / "odd.h5ad")
    assert main(["map", "--model", str(run / "model"), str(tmp / "odd.h5ad"), "--out", str(tmp / "z"),
                 *FAST_ARGS]) == 2
    assert "no gene in common with the reference" in capsys.readouterr().err
    assert not [p for p in tmp.iterdir() if p.name.startswith(".") or p.name in ("x", "y", "z")]


def test_query_mapping_flags_reach_the_configuration(capsys):
    """--query-balance / --query-pretrain set TrainConfig.query_balance / query_pretrain for the
    mapping; absent, the defaults stay; a wrong value is refused by the parser, naming the flag."""
    from fusemap.cli import parser
    from fusemap.cli._common import overrides

    base = ["map", "q.h5ad", "--model", "m", "--out", "o"]
    args = parser().parse_args(base + ["--query-balance", "all", "--query-pretrain", "reconstruction"])
    assert overrides(args) == {"query_balance": "all", "query_pretrain": "reconstruction"}
    assert overrides(parser().parse_args(base)) == {}
    with pytest.raises(SystemExit):
        parser().parse_args(base + ["--query-balance", "some"])
    assert "--query-balance" in capsys.readouterr().err
