"""Training mechanics: losses fall, early stopping, resume and fault injection, seeds (save/load: test_model_io)."""

import json

import numpy as np
import pytest

import fusemap
from fusemap import FuseMap
from fusemap.training import Trainer

from conftest import FAST


def test_reconstruction_loss_falls(sim_sections):
    # the MMD term (on by default) slows reconstruction in the first epochs; measured here alone
    model = FuseMap(sim_sections, **{**FAST, "max_epochs": 15, "patience": 100, "plateau_pretrain": 0.0, "balance": False,
                                     "mmd_weight": 0.0})
    model.train()
    h = model.history_frame()
    assert len(h) == 15
    assert h["recon"].iloc[-3:].mean() < 0.8 * h["recon"].iloc[:2].mean()
    assert h["val_loss"].iloc[-3:].mean() < h["val_loss"].iloc[0]
    assert {"recon", "kl", "disc", "adv_cell", "adv_spatial", "val_loss", "phase"} <= set(h.columns)


def test_mmd_term_falls_and_is_logged(sim_sections):
    model = FuseMap(sim_sections, **{**FAST, "max_epochs": 15, "patience": 100, "plateau_pretrain": 0.0, "balance": False})
    model.train()
    h = model.history_frame()
    assert h["mmd"].iloc[-3:].mean() < 0.7 * h["mmd"].iloc[:2].mean()
    assert h["recon"].iloc[-1] < h["recon"].iloc[0]
    off = FuseMap(sim_sections, **{**FAST, "max_epochs": 2, "balance": False, "mmd_weight": 0.0})
    off.train()
    assert "mmd" not in off.history_frame()


def test_two_phases_and_balance_weights(sim_sections):
    model = FuseMap(sim_sections, **{**FAST, "max_epochs": 4, "patience": 100})
    model.train()
    st = model.train_state
    assert st.epochs_per_phase == [4, 4]
    assert model.history_frame()["phase"].tolist() == [1] * 4 + [2] * 4
    assert len(st.balance_summary["n_clusters"]) == 3
    assert st.lambda_dis > 0


def test_balance_weights_downweight_a_section_specific_population():
    from fusemap.balance import balance_weights

    rng = np.random.default_rng(0)
    shared = [rng.normal(0, 0.3, (200, 8)) + c for c in (np.eye(8)[0] * 5, np.eye(8)[1] * 5)]
    a = np.concatenate(shared)
    b = np.concatenate([shared[0] + 0.1, shared[1] - 0.1, rng.normal(0, 0.3, (200, 8)) + np.eye(8)[2] * 5])
    w, summary = balance_weights([a, b], resolution=0.3, seed=0)
    unique = w[1][400:]
    assert unique.mean() < 0.3 * w[1][:400].mean()
    np.testing.assert_allclose([w[0].mean(), w[1].mean()], 1.0, rtol=1e-5)


def test_early_stopping_acts(sim_sections):
    model = FuseMap(sim_sections, **{**FAST, "max_epochs": 200, "patience": 2, "min_delta": 0.5,
                                     "balance": False})
    model.train()
    st = model.train_state
    # with min_delta=0.5 nothing after the first epoch counts as improvement: stop at epoch 1 + 2
    assert st.epochs_per_phase == [3]
    assert st.stopped_early == [True]


def test_plateau_rule_ends_a_phase_when_the_windowed_improvement_is_small(sim_sections):
    """plateau_pretrain / plateau_balanced end a phase once its best validation loss improved by less
    than the fraction over the last plateau_window epochs."""
    settings = {**FAST, "max_epochs": 30, "patience": 100, "plateau_window": 3, "plateau_pretrain": 0.0,
                "plateau_balanced": 0.0}
    # a window of 3 epochs that must improve the best loss by 90 %: a phase ends at epoch 4
    on = FuseMap(sim_sections, **{**settings, "plateau_pretrain": 0.9})
    on.train()
    assert on.train_state.epochs_per_phase == [4, 30]
    assert on.train_state.stopped_early == [True, False]
    both = FuseMap(sim_sections, **{**settings, "plateau_pretrain": 0.9, "plateau_balanced": 0.9})
    both.train()
    assert both.train_state.epochs_per_phase == [4, 4]
    # the rule on the recorded losses of a run without it (same seed: same losses up to the stop):
    # the stop is the first epoch e > window whose best loss is above (1 - delta) x the best loss
    # of the epochs before e - window
    one = {**settings, "balance": False}
    off = FuseMap(sim_sections, **one)
    off.train()
    v = off.history_frame()["val_loss"].to_numpy()
    assert len(v) == 30
    stops = []
    for delta in (0.05, 0.005):
        stop = next((e for e in range(4, 31) if v[:e].min() > v[:e - 3].min() * (1 - delta)), 30)
        run = FuseMap(sim_sections, **{**one, "plateau_pretrain": delta})
        run.train()
        assert run.train_state.epochs_per_phase == [stop]
        stops.append(stop)
    assert stops[0] < stops[1]  # a smaller fraction trains longer
    with pytest.raises(fusemap.FuseMapInputError, match="plateau_pretrain"):
        FuseMap(sim_sections, **{**FAST, "plateau_pretrain": 1.5})


def test_restore_best_returns_best_validation_weights(sim_sections):
    model = FuseMap(sim_sections, **{**FAST, "max_epochs": 6, "patience": 100, "balance": False})
    model.train()
    trainer = Trainer(model.module, model.data, model.config, model.device, adversarial=True)
    best = model.history_frame()["val_loss"].min()
    assert trainer.validation_loss() == pytest.approx(best, rel=1e-4)


def test_same_seed_same_embeddings_other_seed_differs(sim_sections):
    import copy

    runs = []
    for seed in (5, 5, 6):
        m = FuseMap(copy.deepcopy(sim_sections), **{**FAST, "seed": seed})
        m.train()
        runs.append(m.embeddings())
    for name in runs[0]:
        assert np.array_equal(runs[0][name].cell, runs[1][name].cell)
        assert np.array_equal(runs[0][name].spatial, runs[1][name].spatial)
    assert not np.allclose(runs[0]["sim_section_0"].cell, runs[2]["sim_section_0"].cell)


class Interrupt(Exception):
    pass


def test_resume_continues_where_it_stopped(sim_sections, tmp_path, monkeypatch):
    import copy

    settings = {**FAST, "max_epochs": 4, "patience": 100}
    reference = FuseMap(copy.deepcopy(sim_sections), **settings)
    reference.train()

    # interrupt after the 5th epoch (first epoch of phase 2), then resume in a new model object
    original = Trainer.save_checkpoint
    calls = {"n": 0}

    def save_then_maybe_stop(self):
        original(self)
        calls["n"] += 1
        if calls["n"] == 5:
            raise Interrupt

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_maybe_stop)
    first = FuseMap(copy.deepcopy(sim_sections), **settings)
    with pytest.raises(Interrupt):
        first.train(checkpoint_dir=tmp_path / "ckpt")
    monkeypatch.setattr(Trainer, "save_checkpoint", original)

    resumed = FuseMap(copy.deepcopy(sim_sections), **settings)
    resumed.train(checkpoint_dir=tmp_path / "ckpt")
    h = resumed.history_frame()
    assert len(h) == 8 and h["phase"].tolist() == [1] * 4 + [2] * 4
    # the resumed run is the uninterrupted run: same epochs, same losses, same weights
    np.testing.assert_allclose(h["recon"], reference.history_frame()["recon"], rtol=1e-6)
    for name, e in reference.embeddings().items():
        np.testing.assert_array_equal(e.cell, resumed.embeddings()[name].cell)


def test_checkpoint_of_other_data_or_settings_is_discarded(sim_sections, tmp_path):
    FuseMap(sim_sections, **FAST).train(checkpoint_dir=tmp_path)
    with pytest.warns(fusemap.FuseMapWarning, match="other data or settings.*starts afresh"):
        FuseMap(sim_sections, **{**FAST, "n_latent": 8}).train(checkpoint_dir=tmp_path)
    # other cells of the same size and panel: the content hash tells them apart
    shuffled = [a.copy() for a in sim_sections]
    shuffled[0].X = shuffled[0].X[np.random.default_rng(0).permutation(shuffled[0].n_obs)]
    FuseMap(sim_sections, **{**FAST, "n_latent": 8}).train(checkpoint_dir=tmp_path / "b")
    with pytest.warns(fusemap.FuseMapWarning, match="other data"):
        FuseMap(shuffled, **{**FAST, "n_latent": 8}).train(checkpoint_dir=tmp_path / "b")


def test_killed_at_random_steps_the_resumed_run_equals_the_uninterrupted_one(sim_sections, tmp_path, monkeypatch):
    """Fault injection: stop training at several random steps (mid-epoch), resume each time."""
    import copy
    import warnings

    settings = {**FAST, "max_epochs": 3, "patience": 100}
    reference = FuseMap(copy.deepcopy(sim_sections), **settings).train()
    original = Trainer._seed_weights
    kills = np.random.default_rng(7).integers(2, 8, size=3)  # steps after each (re)start; 24 in all
    for k in kills:
        calls = {"n": 0}

        def step_then_maybe_stop(self, blocks, k=k, calls=calls):
            calls["n"] += 1
            if calls["n"] == k:
                raise Interrupt
            return original(self, blocks)

        monkeypatch.setattr(Trainer, "_seed_weights", step_then_maybe_stop)
        with pytest.raises(Interrupt):
            FuseMap(copy.deepcopy(sim_sections), **settings).train(checkpoint_dir=tmp_path)
    monkeypatch.setattr(Trainer, "_seed_weights", original)
    ckpt = tmp_path / "checkpoint.pt"
    assert ckpt.exists()
    with pytest.warns(fusemap.FuseMapWarning, match="resuming the interrupted training"):
        resumed = FuseMap(copy.deepcopy(sim_sections), **settings).train(checkpoint_dir=tmp_path)
    for name, e in reference.embeddings().items():
        np.testing.assert_array_equal(e.cell, resumed.embeddings()[name].cell)
    # a checkpoint cut short (disk full, copied half) is discarded with a message, never trusted
    ckpt.write_bytes(b"PK\x03\x04 truncated")
    with pytest.warns(fusemap.FuseMapWarning, match="cannot be read"):
        again = FuseMap(copy.deepcopy(sim_sections), **settings).train(checkpoint_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name, e in reference.embeddings().items():
            np.testing.assert_array_equal(e.cell, again.embeddings()[name].cell)


def test_integrate_writes_results_into_the_inputs(sim_sections):
    model = fusemap.integrate(sim_sections, **FAST)
    for a in sim_sections:
        assert a.obsm["X_fusemap_cell"].shape == (a.n_obs, 16)
        assert a.obsm["X_fusemap_spatial"].shape == (a.n_obs, 16)
        assert a.varm["fusemap_gene_embedding"].shape == (a.n_vars, 16)
        rec = a.uns["fusemap"]
        assert rec["sections"] == model.section_names
        assert json.loads(rec["config_json"])["model"]["n_latent"] == 16
    ge = model.gene_embedding()
    assert ge.shape == (len(set().union(*[set(a.var_names) for a in sim_sections])), 16)
    # the varm rows are the gene embedding rows of those genes
    a = sim_sections[1]
    np.testing.assert_array_equal(a.varm["fusemap_gene_embedding"], ge.loc[list(a.var_names)].to_numpy())


def test_one_anndata_with_section_key_keeps_cell_order(sim_sections):
    import anndata as ad

    pooled = ad.concat(sim_sections, merge="same")
    pooled.obs["section"] = pooled.obs["section"].astype("category")
    perm = np.random.default_rng(0).permutation(pooled.n_obs)
    pooled = pooled[perm].copy()
    model = fusemap.integrate(pooled, section_key="section", **FAST)
    emb = model.embeddings()
    for name in model.section_names:
        rows = np.flatnonzero(pooled.obs["section"] == name)
        np.testing.assert_array_equal(pooled.obsm["X_fusemap_cell"][rows], emb[name].cell)
    # the per-section graphs were stored in the pooled object, with no edge across sections
    conn = pooled.obsp["spatial_connectivities"].tocoo()
    sec = pooled.obs["section"].to_numpy()
    assert conn.nnz > 0 and (sec[conn.row] == sec[conn.col]).all()


def test_gene_symbols_match_ignoring_case(sim_sections):
    sim_sections[1].var_names = [g.upper() for g in sim_sections[1].var_names]
    model = FuseMap(sim_sections, **FAST)
    union = {g.upper() for a in sim_sections for g in a.var_names}
    assert len(model.vocabulary) == len(union)
    # the first spelling met (section order) is the one reported
    first = sim_sections[0].var_names[0]
    assert first in model.gene_embedding().index and first.upper() not in model.gene_embedding().index
    with pytest.raises(fusemap.FuseMapInputError, match="sim_section_1' shares no gene"):
        FuseMap(sim_sections, **{**FAST, "gene_case": "exact"})


def test_gcn_variant_trains(sim_sections):
    model = FuseMap(sim_sections, **{**FAST, "spatial_mode": "gcn", "gcn_layers": 2, "max_epochs": 5,
                                     "balance": False, "patience": 100})
    model.train()
    h = model.history_frame()
    assert model.module.hops == 4
    assert h["recon"].iloc[-1] < h["recon"].iloc[0]


def test_overlap_rule_keeps_shifted_counterparts_and_floors_a_unique_population():
    """Three populations in two sections, the second section shifted by a fraction of the
    populations' spread (a technical offset), plus one population only the second has."""
    from fusemap.balance import balance_weights

    rng = np.random.default_rng(1)
    centres = [np.eye(16)[i] * 4 for i in range(3)]
    a = np.concatenate([rng.normal(0, 0.5, (300, 16)) + c for c in centres])
    shift = rng.normal(0, 0.12, 16)
    b = np.concatenate([rng.normal(0, 0.5, (300, 16)) + c + shift for c in centres]
                       + [rng.normal(0, 0.5, (300, 16)) + np.eye(16)[3] * 4])
    w, summary = balance_weights([a, b], rule="overlap", resolution=0.3, seed=0)
    assert summary["rule"] == "overlap"
    assert w[1][900:].mean() < 0.2 * w[1][:900].mean()  # the unique population
    assert np.ptp(w[0]) < 1e-6  # every population of the first section has a counterpart
    assert summary["n_downweighted_clusters"][0] == 0


def test_relative_overlap_ignores_a_section_offset_that_pretraining_left():
    """The same populations with the second section moved by 1.5 and 3 of their spreads: 'overlap'
    takes every cluster for unique (the weights carry no information), the default rule removes
    the common translation and floors only the population the first section lacks, with the
    weights it gives without any offset."""
    from fusemap.balance import balance_weights

    rng = np.random.default_rng(1)
    centres = [np.eye(16)[i] * 4 for i in range(3)]
    a = np.concatenate([rng.normal(0, 0.5, (300, 16)) + c for c in centres])
    b0 = np.concatenate([rng.normal(0, 0.5, (300, 16)) + c for c in centres]
                        + [rng.normal(0, 0.5, (300, 16)) + np.eye(16)[3] * 4])
    direction = rng.normal(0, 1, 16)
    direction /= np.linalg.norm(direction)
    spread = 0.5 * np.sqrt(16)  # root mean squared distance of a population's cells to its centre
    w_none, s_none = balance_weights([a, b0], resolution=0.3, seed=0)
    assert s_none["offset_removed"] == [False, False]
    for k in (1.5, 3.0):
        b = b0 + k * spread * direction
        w_abs, s_abs = balance_weights([a, b], rule="overlap", resolution=0.3, seed=0)
        assert min(s_abs["downweighted_cell_fraction"]) == 1.0
        w, s = balance_weights([a, b], resolution=0.3, seed=0)
        assert s["rule"] == "relative_overlap" and min(s["typical_overlap"]) > 1.0 and all(s["offset_removed"])
        assert s["judged_against"] == [1.0, 1.0]  # once the offset is removed, nothing else sets them apart
        assert s["downweighted_cell_fraction"] == [0.0, 0.25]
        assert w[1][900:].mean() < 0.1 * w[1][:900].mean()
        np.testing.assert_allclose(w[1], w_none[1], atol=1e-6)
    # sections that mix already: the same weights as 'overlap'
    w_abs, _ = balance_weights([a, b0], rule="overlap", resolution=0.3, seed=0)
    for x, y in zip(w_none, w_abs):
        np.testing.assert_array_equal(x, y)


def test_mixing_plateau_ends_the_balanced_phase_where_its_rule_reads_the_recorded_mixing(sim_sections):
    """plateau_mixing stops phase 2 at the first epoch where the held-out section mixing of the last
    2 x ``mixing_window`` epochs rises, at its upper bound, by less than delta per window; recording
    the mixing does not change training (a run with the rule follows the run without it up to its
    stop)."""
    from fusemap.training import mixing_rise_bound

    settings = {**FAST, "max_epochs": 30, "patience": 100, "mixing_window": 3, "plateau_mixing": 0.0}
    off = FuseMap([a.copy() for a in sim_sections], **settings)
    off.train()
    h = off.history_frame()
    assert h.loc[h["phase"] == 1, "val_mixing"].isna().all()  # phase 1 records no mixing
    v = h.loc[h["phase"] == 2, "val_mixing"].to_numpy()
    assert len(v) == 30 and np.isfinite(v).all() and (v > 0).all()
    stops = []
    for delta in (0.9, 0.05):
        stop = next((e for e in range(6, 31) if mixing_rise_bound(v[e - 6:e]) * 3 < delta), 30)
        run = FuseMap([a.copy() for a in sim_sections], **{**settings, "plateau_mixing": delta})
        run.train()
        assert run.train_state.epochs_per_phase == [30, stop]
        np.testing.assert_allclose(run.history_frame()["val_mixing"].to_numpy()[30:], v[:stop])
        stops.append(stop)
    assert stops[0] == 6 and stops[1] > 6  # the earliest stop the rule allows; a tighter bound waits
    with pytest.raises(fusemap.FuseMapInputError, match="plateau_mixing"):
        FuseMap([a.copy() for a in sim_sections], **{**settings, "plateau_mixing": 1.5})


def test_mixing_rise_bound_is_the_slope_plus_two_standard_errors():
    rng = np.random.default_rng(0)
    x = np.arange(40.0)
    assert mixing_rise_bound_(0.01 * x) == pytest.approx(0.01)  # an exact line: no error
    noisy = 0.5 + rng.normal(0, 0.05, 40)  # flat but noisy: the bound stays well above 0
    b = mixing_rise_bound_(noisy)
    fit = np.polyfit(x, noisy, 1, cov=True)
    assert b == pytest.approx(fit[0][0] + 2 * np.sqrt(fit[1][0, 0]), rel=1e-6)
    assert mixing_rise_bound_(np.r_[noisy[:-1], np.nan]) == np.inf


def mixing_rise_bound_(v):
    from fusemap.training import mixing_rise_bound
    return mixing_rise_bound(np.asarray(v, dtype=float))
