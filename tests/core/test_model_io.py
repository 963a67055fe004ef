"""Saved model directories: round trip, no silent overwrite, checks and checksums on load."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

import fusemap
from fusemap import FuseMap, FuseMapModelError

from conftest import FAST


def test_save_load_round_trip(sim_sections, tmp_path):
    model = FuseMap(sim_sections, **FAST)
    model.train()
    path = model.save(tmp_path / "model")
    # weights are a plain state dict, safe to load without unpickling code
    state = torch.load(path / "weights.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    genes = json.loads((path / "genes.json").read_text())["genes"]
    assert genes == model.vocabulary.names
    loaded = FuseMap.load(path, sim_sections)
    for name, e in model.embeddings().items():
        assert np.array_equal(e.cell, loaded.embeddings()[name].cell)
        assert np.array_equal(e.spatial, loaded.embeddings()[name].spatial)
    pd.testing.assert_frame_equal(model.gene_embedding(), loaded.gene_embedding())
    assert loaded.history == model.history
    # sections given in another order and with shuffled genes are matched by name
    shuffled = [a[:, a.var_names[::-1]].copy() for a in sim_sections[::-1]]
    again = FuseMap.load(path, shuffled)
    assert np.allclose(again.embeddings()["sim_section_1"].cell, model.embeddings()["sim_section_1"].cell,
                       atol=1e-5)


def test_save_never_overwrites_silently(sim_sections, tmp_path):
    model = FuseMap(sim_sections, **FAST)
    target = tmp_path / "model"
    model.save(target)
    before = (target / "weights.pt").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save(target)
    assert (target / "weights.pt").read_bytes() == before
    model.train()
    model.save(target, overwrite=True)
    assert (target / "weights.pt").read_bytes() != before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_load_checks_the_directory(sim_sections, tmp_path):
    with pytest.raises(FuseMapModelError, match="is not a directory"):
        FuseMap.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FuseMapModelError, match=r"not a fusemap model directory.*weights.pt"):
        FuseMap.load(tmp_path / "empty")
    model = FuseMap(sim_sections, **FAST)
    path = model.save(tmp_path / "m")
    sections = json.loads((path / "sections.json").read_text())
    sections["sections"][0]["genes"][0] = "NotAGene"
    (path / "sections.json").write_text(json.dumps(sections))
    with pytest.raises(FuseMapModelError, match=r"\['sections.json'\] changed after the model was saved"):
        FuseMap.load(path)
    (path / "checksums.json").unlink()  # a directory without checksums still gets the field checks
    with pytest.raises(FuseMapModelError, match="absent from the vocabulary"):
        FuseMap.load(path)


def test_checksums_catch_reordered_genes_and_truncated_weights(sim_sections, tmp_path):
    path = FuseMap(sim_sections, **FAST).save(tmp_path / "m")
    original = (path / "genes.json").read_bytes()
    meta = json.loads(original)
    meta["genes"] = meta["genes"][::-1]  # the same genes, silently relabelled
    (path / "genes.json").write_text(json.dumps(meta))
    with pytest.raises(FuseMapModelError, match=r"\['genes.json'\] changed"):
        FuseMap.load(path)
    (path / "genes.json").write_bytes(original)
    FuseMap.load(path)  # restored: loads again
    weights = (path / "weights.pt").read_bytes()
    (path / "weights.pt").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(FuseMapModelError, match="weights.pt"):
        FuseMap.load(path)


def test_load_refuses_other_sections(sim_sections, tmp_path):
    model = FuseMap(sim_sections, **FAST)
    path = model.save(tmp_path / "m")
    with pytest.raises(fusemap.FuseMapInputError, match="missing"):
        FuseMap.load(path, sim_sections[:2])
    other = [a[:, a.var_names[:-1]].copy() for a in sim_sections]
    with pytest.raises(fusemap.FuseMapInputError, match="1 are absent"):
        FuseMap.load(path, other)
