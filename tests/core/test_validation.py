"""Each kind of bad input is refused before any work, with a message naming it and the fix."""

import numpy as np
import pytest
import scipy.sparse as sp

import fusemap
from fusemap import FuseMapInputError, FuseMapWarning
from fusemap.config import make_config
from fusemap.io.sections import read_sections as as_sections
from fusemap.validation import validate


def check(sections, **kw):
    return validate(as_sections(sections), make_config(**kw))


def test_valid_input_passes(sim_sections):
    assert check(sim_sections) == []


def test_non_integer_counts(sim_sections):
    sim_sections[1].X = sim_sections[1].X * 0.5
    with pytest.raises(FuseMapInputError, match=r"sim_section_1.*non-integer.*normalized=True"):
        check(sim_sections)
    # the same values are accepted when the user says they are normalised
    check(sim_sections, normalized=True)


def test_negative_values(sim_sections):
    x = sim_sections[0].X.toarray()
    x[0, 0] = -3
    sim_sections[0].X = sp.csr_matrix(x)
    with pytest.raises(FuseMapInputError, match=r"sim_section_0.*1 negative value"):
        check(sim_sections)


def test_nan_in_counts(sim_sections):
    x = sim_sections[2].X.toarray()
    x[5, 3] = np.nan
    sim_sections[2].X = x
    with pytest.raises(FuseMapInputError, match=r"sim_section_2.*NaN/inf"):
        check(sim_sections)


def test_nan_in_coordinates(sim_sections):
    sim_sections[0].obsm["spatial"][3, 1] = np.inf
    with pytest.raises(FuseMapInputError, match=r"NaN/inf coordinates for 1 cell"):
        check(sim_sections)


def test_missing_coordinates(sim_sections):
    del sim_sections[1].obsm["spatial"]
    with pytest.raises(FuseMapInputError, match=r"sim_section_1.*obsm\['spatial'\] is missing"):
        check(sim_sections)


def test_three_d_coordinates(sim_sections):
    sim_sections[1].obsm["spatial"] = np.zeros((sim_sections[1].n_obs, 3))
    with pytest.raises(FuseMapInputError, match=r"2-D coordinates"):
        check(sim_sections)


def test_duplicate_genes_ignoring_case(sim_sections):
    names = list(sim_sections[0].var_names)
    names[1] = names[0].upper()
    sim_sections[0].var_names = names
    with pytest.raises(FuseMapInputError, match=r"more than once \(compared ignoring case"):
        check(sim_sections)
    check(sim_sections, gene_case="exact")  # exact matching sees two different genes


def test_duplicate_cell_names(sim_sections):
    names = list(sim_sections[0].obs_names)
    names[1] = names[0]
    sim_sections[0].obs_names = names
    with pytest.raises(FuseMapInputError, match=r"duplicate cell name"):
        check(sim_sections)


def test_duplicate_section_names(sim_sections):
    sim_sections[1].obs["section"] = "sim_section_0"
    with pytest.raises(FuseMapInputError, match=r"share the name\(s\) \['sim_section_0'\]"):
        check(sim_sections)


def test_section_too_small(sim_sections):
    sim_sections[2] = sim_sections[2][:5].copy()
    with pytest.raises(FuseMapInputError, match=r"sim_section_2' has 5 cell\(s\); at least 10"):
        check(sim_sections)


def test_section_sharing_no_gene(sim_sections):
    sim_sections[2].var_names = [f"Other{i}" for i in range(sim_sections[2].n_vars)]
    with pytest.raises(FuseMapInputError, match=r"sim_section_2' shares no gene"):
        check(sim_sections)


def test_missing_layer(sim_sections):
    with pytest.raises(FuseMapInputError, match=r"layer='counts' is not in"):
        check(sim_sections, layer="counts")


def test_several_problems_reported_together(sim_sections):
    del sim_sections[0].obsm["spatial"]
    sim_sections[1].X = sim_sections[1].X * 0.5
    with pytest.raises(FuseMapInputError, match=r"2 problem\(s\)"):
        check(sim_sections)


def test_single_section_warns_and_turns_adversarial_off(sim_sections):
    with pytest.warns(FuseMapWarning, match="only one section"):
        model = fusemap.FuseMap(sim_sections[:1], progress=False)
    assert model.adversarial is False


def test_bad_input_raises_before_any_work(sim_sections):
    """A failing validation leaves the inputs untouched (no graph was built)."""
    sim_sections[2].X = sim_sections[2].X * 0.5
    with pytest.raises(FuseMapInputError):
        fusemap.FuseMap(sim_sections)
    assert all("spatial_connectivities" not in a.obsp for a in sim_sections)


def test_section_key_errors(sim_sections):
    import anndata as ad

    pooled = ad.concat(sim_sections, merge="same")
    with pytest.raises(FuseMapInputError, match=r"section_key='batch' is not a column"):
        as_sections(pooled, "batch")
    sets = as_sections(pooled, "section")
    assert sets.names == ["sim_section_0", "sim_section_1", "sim_section_2"]


def test_wrong_type():
    with pytest.raises(FuseMapInputError, match="cannot read sections from a int"):
        as_sections(3)
    with pytest.raises(FuseMapInputError, match=r"data\[1\] is a str"):
        as_sections([fusemap.datasets.simulate(1, 20)[0], "x"])


def test_a_table_joined_across_panels_keeps_each_sections_own_panel(sim_sections):
    """anndata.concat(join="outer") fills the genes a section did not measure with NaN: they are
    left out of that section's panel (not refused, and never read as silent genes)."""
    import anndata as ad

    for a in sim_sections:
        a.X = a.X.toarray().astype(np.float32)
    pooled = ad.concat(sim_sections, join="outer", fill_value=np.nan)
    pooled.obs["section"] = pooled.obs["section"].astype("category")
    assert np.isnan(pooled.X).any()
    for matrix in (pooled.X, sp.csr_matrix(pooled.X)):
        pooled.X = matrix
        sets = as_sections(pooled, "section")
        assert [sorted(a.var_names) for a in sets.adatas] == [sorted(a.var_names) for a in sim_sections]
    x = pooled.X.toarray()
    x[0, list(pooled.var_names).index(sim_sections[0].var_names[0])] = np.nan  # cell 0 is section 0's
    pooled.X = x
    with pytest.raises(FuseMapInputError, match="NaN/inf"):  # a stray NaN in a measured gene: an error
        fusemap.FuseMap(pooled, section_key="section", progress=False)
