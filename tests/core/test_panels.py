"""Which genes each section measured, in tables joining sections with different panels: the
explicit ``panels`` argument (fusemap.validation.resolve_panels) and the warning about columns that
are all zero in one section while another section of the table detects them (warn_zero_genes)."""

import warnings

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

import fusemap
from fusemap import FuseMapInputError, FuseMapWarning

from conftest import FAST


def _zero_filled(sections):
    """The sections joined into one table whose unmeasured genes are filled with 0."""
    pooled = ad.concat(sections, join="outer", fill_value=0)
    pooled.obs["section"] = pooled.obs["section"].astype("category")
    pooled.X = sp.csr_matrix(pooled.X)
    return pooled


def _panels(sections):
    return {str(a.obs["section"].iloc[0]): list(map(str, a.var_names)) for a in sections}


def test_zero_filled_genes_are_reported_as_probably_unmeasured(sim_sections):
    pooled = _zero_filled(sim_sections)
    n_union = pooled.n_vars
    with pytest.warns(FuseMapWarning, match=r"probably not measured in section 'sim_section_0' \(all zero") as rec:
        model = fusemap.FuseMap(pooled, section_key="section", **FAST)
    msgs = [str(w.message) for w in rec if "probably not measured" in str(w.message)]
    assert len(msgs) == 3  # one per section
    x = pooled.X.toarray()
    sec = pooled.obs["section"].to_numpy()
    for a, msg in zip(sim_sections, msgs):
        name = str(a.obs["section"].iloc[0])
        others = [b for b in sim_sections if b is not a]
        # genes a lacks that another section detects in enough cells that >= 10 would be expected in a
        expected = [g for g in pooled.var_names if g not in a.var_names and max(
            (x[sec == str(b.obs["section"].iloc[0]), list(pooled.var_names).index(g)] > 0).mean() * a.n_obs
            for b in others) >= 10]
        assert n_union - a.n_vars - 2 <= len(expected) <= n_union - a.n_vars
        assert msg.startswith(f"{len(expected)} gene(s) are probably not measured in section {name!r} (all zero in "
                              f"its {a.n_obs} cells")
        assert "pass panels=" in msg and "--panels FILE.json" in msg
        assert "never treats unmeasured genes as zeros" in msg
    # not dropped silently: every section keeps all columns (as measured zeros) unless panels say otherwise
    assert [len(s["genes"]) for s in model.section_info] == [n_union] * 3


def test_panels_mark_genes_unmeasured_and_silence_the_warning(sim_sections):
    panels = _panels(sim_sections)
    pooled = _zero_filled(sim_sections)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        model = fusemap.integrate(pooled, section_key="section", panels=panels, **FAST)
    assert not [w for w in rec if "probably not measured" in str(w.message)]
    for info, a in zip(model.section_info, sim_sections):
        assert info["genes"] == list(map(str, a.var_names))
    assert model.setup["panels"] is True
    assert len(model.vocabulary) == pooled.n_vars
    assert pooled.obsm["X_fusemap_cell"].shape == (pooled.n_obs, 16)
    # the same run from the separate sections gives the same panels and vocabulary
    separate = fusemap.FuseMap([a.copy() for a in sim_sections], **FAST)
    assert [s["genes"] for s in separate.section_info] == [s["genes"] for s in model.section_info]


def test_panels_of_some_sections_only_and_gene_case(sim_sections):
    pooled = _zero_filled(sim_sections)
    first = list(map(str, sim_sections[0].var_names))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fusemap.FuseMap(pooled, section_key="section", panels={"sim_section_0": [g.lower() for g in first]},
                                **FAST)
    assert model.section_info[0]["genes"] == first  # spelled as in the table
    assert len(model.section_info[1]["genes"]) == pooled.n_vars  # not named: all columns


@pytest.mark.parametrize("panels, msg", [
    ({"nope": ["G1"]}, r"panels: section\(s\) \['nope'\] are not among the sections read"),
    ({"sim_section_0": ["NotAGene", "AlsoNot"]},
     r"panels: section 'sim_section_0': 2 gene\(s\) of its list are not in its table .*'NotAGene'.*never treats "
     r"unmeasured genes as zeros"),
    ({"sim_section_0": []}, r"panels: section\(s\) \['sim_section_0'\] have an empty gene list"),
    ({"sim_section_0": "Gad1"}, r"panels: the entries for section\(s\) \['sim_section_0'\] are not lists"),
    (["sim_section_0"], r"panels: expected a mapping of section name -> list of the genes"),
])
def test_bad_panels_are_refused_before_any_work(sim_sections, panels, msg, monkeypatch):
    import fusemap.model

    def no_work(*a, **k):
        raise AssertionError("work started before panels were checked")

    monkeypatch.setattr(fusemap.model, "prepare_sections", no_work)
    with pytest.raises(FuseMapInputError, match=msg):
        fusemap.FuseMap(_zero_filled(sim_sections), section_key="section", panels=panels, **FAST)


def test_panels_sharing_no_gene_are_refused(sim_sections):
    pooled = _zero_filled(sim_sections)
    shared = set(sim_sections[1].var_names) | set(sim_sections[2].var_names)
    only0 = [g for g in map(str, sim_sections[0].var_names) if g not in shared]
    with pytest.raises(FuseMapInputError, match=r"panels: section\(s\) \['sim_section_0'\] share no gene"):
        fusemap.FuseMap(pooled, section_key="section", panels={**_panels(sim_sections), "sim_section_0": only0},
                        **FAST)


def test_rare_genes_and_separate_files_are_not_reported(sim_sections):
    # separate sections (different columns): no joined table, no warning, even for an all-zero gene
    sections = [a.copy() for a in sim_sections]
    x = sections[0].X.toarray()
    x[:, 0] = 0
    sections[0].X = sp.csr_matrix(x)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fusemap.FuseMap(sections, **FAST)
    assert not [w for w in rec if "probably not measured" in str(w.message)]
    # joined, a gene detected in only 2 of ~300 cells elsewhere: zero here is no evidence (fewer than 10 expected)
    pooled = _zero_filled(sim_sections)
    panels = _panels(sim_sections)
    gene = panels["sim_section_1"][0]
    col = list(pooled.var_names).index(gene)
    x = pooled.X.toarray()
    rows0 = np.flatnonzero(pooled.obs["section"] == "sim_section_0")
    x[rows0, col] = 0
    rows_other = np.flatnonzero(pooled.obs["section"] != "sim_section_0")
    x[rows_other, col] = 0
    x[rows_other[:2], col] = 5
    pooled.X = sp.csr_matrix(x)
    panels["sim_section_0"] = sorted(set(panels["sim_section_0"]) | {gene})
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fusemap.FuseMap(pooled, section_key="section", panels=panels, **FAST)
    assert not [w for w in rec if "probably not measured" in str(w.message)]


def test_map_query_takes_panels_for_the_query(sim_sections):
    ref = fusemap.FuseMap([a.copy() for a in sim_sections[:2]], **{**FAST, "max_epochs": 1})
    ref.train()
    query = sim_sections[2].copy()
    extra = ad.AnnData(sp.csr_matrix((query.n_obs, 3)), obs=query.obs, var={"_": [0, 0, 0]})
    extra.var_names = ["Extra1", "Extra2", "Extra3"]
    joined = ad.concat([query, extra], axis=1, merge="same")
    joined.obsm["spatial"] = query.obsm["spatial"]
    measured = list(map(str, query.var_names))
    mapped = fusemap.map_query(ref, joined, max_epochs=1, progress=False, panels={"sim_section_2": measured})
    assert mapped.section_info[-1]["genes"] == measured
    assert "Extra1" not in mapped.vocabulary
    with pytest.raises(FuseMapInputError, match=r"panels: section\(s\) \['sim_section_0'\] are not among"):
        fusemap.map_query(ref, joined, max_epochs=1, progress=False, panels={"sim_section_0": measured})
