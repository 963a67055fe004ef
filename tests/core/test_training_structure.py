"""The neighbourhood-preservation term (TrainConfig.structure_weight) in a real training loop."""

import numpy as np
import torch

import fusemap
from fusemap.training import section_pcs


def test_section_pcs_are_orthonormal_axes_of_each_panel(sim_sections):
    model = fusemap.FuseMap(sim_sections, n_latent=8, n_hidden=32, progress=False)
    pcs = section_pcs(model.data, 5, 0, torch.device("cpu"))
    assert len(pcs) == len(model.data)
    for (mean, comps), d in zip(pcs, model.data):
        assert mean.shape == (d.x.shape[1],) and comps.shape == (d.x.shape[1], 5)
        assert torch.allclose(comps.T @ comps, torch.eye(5), atol=1e-4)


def test_structure_term_is_opt_in_and_acts_in_the_balanced_phase(sim_sections):
    plain = fusemap.FuseMap(sim_sections, n_latent=8, n_hidden=32, progress=False, max_epochs=2, seed=0)
    assert plain.config.train.structure_weight == 0.0
    assert "structure" not in plain.train().history_frame()
    model = fusemap.FuseMap(sim_sections, n_latent=8, n_hidden=32, progress=False, max_epochs=3, seed=0,
                            structure_weight=0.1)
    model.train()
    h = model.history_frame()
    first = h["phase"] == h["phase"].iloc[0]
    assert h.loc[first, "structure"].isna().all() and h.loc[~first, "structure"].notna().all()
    assert (~first).any()


def test_structure_term_is_logged_and_falls(sim_sections):
    model = fusemap.FuseMap(sim_sections, n_latent=8, n_hidden=32, progress=False, max_epochs=6,
                            structure_weight=1.0, structure_k=5, balance=False, seed=0)
    model.train()
    h = model.history_frame()
    s = h["structure"].to_numpy()
    assert np.isfinite(s).all() and (s > 0).all()
    assert s[-1] < s[0]
