"""fusemap.io.sectionset: genes NaN in every cell of a section (a table joined across panels) leave
its panel, and the message says unmeasured genes are never treated as zeros."""

import logging

import numpy as np

from fusemap.io.sectionset import drop_unmeasured_genes


def test_all_nan_genes_leave_the_panel_with_a_message(sim_sections, caplog):
    a = sim_sections[0].copy()
    x = a.X.toarray().astype(np.float32)
    x[:, :3] = np.nan
    x[0, 3] = np.nan  # one NaN in a measured gene: not a whole column, kept (validation reports it)
    a.X = x
    with caplog.at_level(logging.INFO, logger="fusemap"):
        out = drop_unmeasured_genes(a, "s0")
    assert out.n_vars == a.n_vars - 3 and list(out.var_names) == list(a.var_names[3:])
    assert caplog.messages == ["section 's0': 3 gene(s) are NaN in every cell (not measured there); left out of its "
                               "panel (fusemap never treats unmeasured genes as zeros)"]
