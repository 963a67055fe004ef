"""The bad-input table: every careless input, through the command line and the Python API.

One row per case: how the section files are spoiled, the extra CLI flags and Python keywords, and
what each interface must say. Every row asserts exit code 2 (CLI) or FuseMapInputError (Python),
a message naming the flag or argument of the interface used, inputs byte-identical afterwards and
no output (or hidden partial folder) left behind. Add a row for each new case found.
"""

import hashlib
import os
import re

import numpy as np
import pytest
import scipy.sparse as sp

import fusemap
from fusemap import FuseMapInputError
from fusemap.cli import main

CLI_FAST = ["--epochs", "1", "--batch-size", "64", "--device", "cpu", "--no-figures"]


def _log_normalised(s):
    x = s[0].X.toarray()
    s[0].X = np.log1p(x / np.maximum(x.sum(1, keepdims=True), 1) * 1e4)


def _negative(s):
    x = s[0].X.toarray()
    x[0, 0] = -3
    s[0].X = sp.csr_matrix(x)


def _nan(s):
    x = s[2].X.toarray()
    x[5, 3] = np.nan
    s[2].X = x


def _dup_genes(s):
    names = list(s[0].var_names)
    names[1] = names[0].upper()
    s[0].var_names = names


def _dup_cells(s):
    names = list(s[0].obs_names)
    names[1] = names[0]
    s[0].obs_names = names


def _nan_coords(s):
    s[0].obsm["spatial"][3, 1] = np.nan


def _tiny(s):
    s[2] = s[2][:3].copy()


def _no_shared_gene(s):
    s[2].var_names = [f"Other{i}" for i in range(s[2].n_vars)]


def _collinear(s):
    n = s[1].n_obs
    s[1].obsm["spatial"] = np.c_[np.arange(n, dtype=float), 2.0 * np.arange(n)]


def _nothing(s):
    pass


# id, spoil, CLI flags, Python keywords, CLI message (regex), Python message (regex)
CASES = [
    ("log-normalised as counts", _log_normalised, [], {}, r"non-integer.*--normalized", r"non-integer.*normalized=True"),
    ("negative values", _negative, [], {}, r"slice0.*negative value", r"slice0.*negative value"),
    ("NaN counts", _nan, [], {}, r"slice2.*NaN/inf", r"slice2.*NaN/inf"),
    ("duplicate genes", _dup_genes, [], {}, r"more than once.*--gene-case exact",
     r"more than once.*gene_case='exact'"),
    ("duplicate cells", _dup_cells, [], {}, r"duplicate cell name", r"duplicate cell name"),
    ("unknown section without coordinates", _nothing, ["--no-coordinates", "slice9"], {"no_coordinates": ["slice9"]},
     r"--no-coordinates: section\(s\) \['slice9'\] are not among", r"no_coordinates: section\(s\) \['slice9'\]"),
    ("NaN coordinates", _nan_coords, [], {}, r"NaN/inf coordinates", r"NaN/inf coordinates"),
    ("3-cell section", _tiny, [], {}, r"slice2' has 3 cell", r"slice2' has 3 cell"),
    ("no shared gene", _no_shared_gene, [], {}, r"slice2' shares no gene", r"slice2' shares no gene"),
    ("missing layer", _nothing, ["--layer", "counts"], {"layer": "counts"}, r"--layer counts is not in",
     r"layer='counts' is not in"),
    ("collinear coordinates", _collinear, [], {}, r"slice1.*degenerate.*--graph knn", r"slice1.*degenerate"),
    ("edges all dropped", _nothing, ["--max-edge-length", "0.001"], {"max_edge_length": 0.001},
     r"without a neighbour.*--max-edge-length 0.001", r"without a neighbour.*max_edge_length=0.001"),
    ("unknown device", _nothing, ["--device", "tpu"], {"device": "tpu"}, r"--device tpu is invalid",
     r"device='tpu' is invalid"),
    ("radius graph without radius", _nothing, ["--graph", "radius"], {"method": "radius"}, r"--radius",
     r"radius=None"),
]


def _digest(paths):
    return {p: hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths}


@pytest.fixture
def spoiled(tmp_path, request):
    sections = fusemap.datasets.simulate(n_sections=3, n_cells=120, n_genes=40, panel_size=30, n_shared=12, seed=3)
    request.param(sections)
    paths = []
    for i, a in enumerate(sections):
        a.obs["section"] = f"slice{i}"
        paths.append(str(tmp_path / "in" / f"slice{i}.h5ad"))
        os.makedirs(os.path.dirname(paths[-1]), exist_ok=True)
        a.write_h5ad(paths[-1])
    return tmp_path, paths


@pytest.mark.parametrize("spoiled, flags, kwargs, cli_msg, py_msg",
                         [pytest.param(c[1], *c[2:], id=c[0]) for c in CASES], indirect=["spoiled"])
def test_bad_input_is_refused_cleanly(spoiled, flags, kwargs, cli_msg, py_msg, capsys):
    tmp, paths = spoiled
    before = _digest(paths)
    out = tmp / "out"
    assert main(["integrate", *paths, "--out", str(out), *CLI_FAST, *flags]) == 2  # the last --device wins
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(cli_msg, err, re.S), err
    assert _digest(paths) == before
    assert sorted(p.name for p in tmp.iterdir()) == ["in"]  # no output, no hidden partial folder

    with pytest.raises(FuseMapInputError, match=py_msg):
        fusemap.FuseMap(paths, max_epochs=1, progress=False, **kwargs)
    assert _digest(paths) == before


def test_the_same_file_twice_and_files_that_are_not_sections(tmp_path, capsys):
    a = fusemap.datasets.simulate(n_sections=2, n_cells=60, n_genes=30, panel_size=25, n_shared=10, seed=1)
    paths = [str(tmp_path / f"s{i}.h5ad") for i in range(2)]
    for p, x in zip(paths, a):
        x.write_h5ad(p)
    (tmp_path / "empty.h5ad").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a section")
    before = _digest(paths)
    for bad, msg in (([paths[0], paths[0]], r"more than once|share the name"),
                     ([paths[0], str(tmp_path / "empty.h5ad")], r"empty\.h5ad"),
                     ([paths[0], str(tmp_path / "notes.txt")], r"notes\.txt")):
        assert main(["integrate", *bad, "--out", str(tmp_path / "o"), *CLI_FAST]) == 2
        assert re.search(msg, capsys.readouterr().err)
        with pytest.raises(FuseMapInputError, match=msg):
            fusemap.FuseMap(bad, max_epochs=1, progress=False)
    assert _digest(paths) == before and not (tmp_path / "o").exists()


@pytest.mark.parametrize("kw, msg", [({"n_latent": "x"}, r"n_latent='x' \(str\) is invalid; use an integer"),
                                     ({"max_epochs": 2.5}, r"max_epochs=2.5 .* use an integer"),
                                     ({"normalized": "yes"}, r"normalized='yes' .* True or False"),
                                     ({"radius": "3", "method": "radius"}, r"radius='3' .* a number or None")])
def test_python_argument_types_are_named(kw, msg):
    sections = fusemap.datasets.simulate(n_sections=2, n_cells=40, n_genes=20, panel_size=15, n_shared=8, seed=0)
    with pytest.raises(FuseMapInputError, match=msg):
        fusemap.FuseMap(sections, **kw)


def test_counts_passed_as_normalised_get_a_warning():
    sections = fusemap.datasets.simulate(n_sections=2, n_cells=80, n_genes=20, panel_size=15, n_shared=8, seed=0)
    for a in sections:
        a.X = sp.csr_matrix(a.X.toarray() * 0 + np.arange(1, a.n_vars + 1) * 10)  # whole numbers up to 150
    with pytest.warns(fusemap.FuseMapWarning, match=r"normalized=True, but .*raw counts\?"):
        fusemap.FuseMap(sections, normalized=True, max_epochs=1, progress=False)



@pytest.mark.parametrize("content, cli_msg, py_msg", [
    (None, r"--panels \S*panels.json: no such file", None),
    ("{not json", r"--panels \S*panels.json: not valid JSON", None),
    ('["slice0"]', r"--panels \S*panels.json: expected a mapping of section name", r"panels: expected a mapping"),
    ('{"slice0": "Gene0001"}', r"--panels \S*panels.json: the entries for section\(s\) \['slice0'\] are not lists",
     r"panels: the entries for section\(s\) \['slice0'\] are not lists"),
    ('{"slice9": ["Gene0001"]}', r"--panels: section\(s\) \['slice9'\] are not among the sections read",
     r"panels: section\(s\) \['slice9'\] are not among the sections read"),
    ('{"slice0": ["Nope1", "Nope2"]}',
     r"--panels: section 'slice0': 2 gene\(s\) of its list are not in its table.*never treats unmeasured genes as zeros",
     r"panels: section 'slice0': 2 gene\(s\) of its list are not in its table"),
], ids=["missing file", "not JSON", "not a mapping", "not lists", "unknown section", "genes not in the table"])
def test_bad_panels_are_refused_cleanly(tmp_path, capsys, content, cli_msg, py_msg):
    import json

    sections = fusemap.datasets.simulate(n_sections=3, n_cells=120, n_genes=40, panel_size=30, n_shared=12, seed=3)
    (tmp_path / "in").mkdir()
    paths = []
    for i, a in enumerate(sections):
        paths.append(str(tmp_path / "in" / f"slice{i}.h5ad"))
        a.write_h5ad(paths[-1])
    panels_file = tmp_path / "in" / "panels.json"
    if content is not None:
        panels_file.write_text(content)
    before = _digest(paths)
    out = tmp_path / "out"
    assert main(["integrate", *paths, "--out", str(out), *CLI_FAST, "--panels", str(panels_file)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(cli_msg, err, re.S), err
    assert _digest(paths) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    if py_msg is not None:
        with pytest.raises(FuseMapInputError, match=py_msg):
            fusemap.FuseMap(paths, max_epochs=1, progress=False, panels=json.loads(content))
