"""Feedback during training (fusemap.progress): the callback contract the R package relies on,
log lines off a terminal, the bar in notebooks without ipywidgets, the default log handler."""

import copy
import io
import logging
import sys
import warnings

import pytest

import fusemap
from fusemap import FuseMap, progress

from conftest import FAST

KEYS = {"phase", "phase_name", "epoch", "max_epochs", "epochs_done", "epochs_total", "val_loss", "seconds", "done"}


def test_callback_gets_one_dict_per_epoch_with_the_agreed_keys(sim_sections):
    calls = []
    model = FuseMap(sim_sections, **{**FAST, "max_epochs": 3, "patience": 100, "progress": None})
    model.train(callback=calls.append)
    assert progress.CALLBACK_KEYS == tuple(sorted(KEYS, key=list(progress.CALLBACK_KEYS).index))
    assert len(calls) == 6 == len(model.history)
    for c in calls:
        assert set(c) == KEYS
        assert type(c["phase"]) is int and type(c["epoch"]) is int and type(c["val_loss"]) is float
        assert type(c["done"]) is bool and type(c["seconds"]) is float and type(c["phase_name"]) is str
    assert [c["phase"] for c in calls] == [1, 1, 1, 2, 2, 2]
    assert [c["phase_name"] for c in calls] == ["pretraining"] * 3 + ["balanced"] * 3
    assert [c["epoch"] for c in calls] == [1, 2, 3, 1, 2, 3]
    assert [c["epochs_done"] for c in calls] == [1, 2, 3, 4, 5, 6]
    assert {c["epochs_total"] for c in calls} == {6} and {c["max_epochs"] for c in calls} == {3}
    assert [c["done"] for c in calls] == [False] * 5 + [True]
    assert [c["val_loss"] for c in calls] == [h["val_loss"] for h in model.history]
    assert all(b["seconds"] >= a["seconds"] > 0 for a, b in zip(calls, calls[1:]))


def test_epochs_total_shrinks_when_a_phase_stops_early(sim_sections):
    calls = []
    model = FuseMap(sim_sections, **{**FAST, "max_epochs": 20, "patience": 1, "min_delta": 0.5})
    model.train(callback=calls.append)
    first = model.train_state.epochs_per_phase[0]
    assert model.train_state.stopped_early[0] and first < 20
    assert calls[0]["epochs_total"] == 40
    assert calls[first - 1]["epochs_total"] == first + 20  # bound tightened at the end of phase 1
    assert calls[-1]["done"] and calls[-1]["epochs_total"] == calls[-1]["epochs_done"] == len(model.history)


def test_single_phase_and_query_mapping_are_named(sim_sections):
    calls = []
    ref = FuseMap([a.copy() for a in sim_sections[:2]], **{**FAST, "max_epochs": 2, "balance": False})
    ref.train(callback=calls.append)
    assert [c["phase_name"] for c in calls] == ["training", "training"] and calls[-1]["epochs_total"] == 2
    calls.clear()
    fusemap.map_query(ref, sim_sections[2].copy(), max_epochs=2, progress=False, callback=calls.append)
    assert [c["phase_name"] for c in calls] == ["query mapping"] * 2  # balance=False came with the reference
    assert [c["done"] for c in calls] == [False, True]


def test_a_resumed_finished_run_still_reports_done(sim_sections, tmp_path):
    settings = {**FAST, "max_epochs": 2, "seed": 0}
    FuseMap(copy.deepcopy(sim_sections), **settings).train(checkpoint_dir=tmp_path)
    calls = []
    with pytest.warns(fusemap.FuseMapWarning, match="resuming"):
        FuseMap(copy.deepcopy(sim_sections), **settings).train(checkpoint_dir=tmp_path, callback=calls.append)
    assert len(calls) == 1 and calls[0]["done"] and calls[0]["epochs_done"] == calls[0]["epochs_total"] == 4


def test_mode_follows_progress_callback_and_terminal(monkeypatch):
    monkeypatch.setattr(progress, "in_notebook", lambda: False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    assert progress.choose_mode(None, None) == "lines"
    assert progress.choose_mode(None, print) == "off"  # the callback draws its own progress
    assert progress.choose_mode(True, print) == "bar"
    assert progress.choose_mode(False, None) == "off"
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    assert progress.choose_mode(None, None) == "notebook"


def test_phase_end_line_names_the_rule_that_ended_the_phase(sim_sections, monkeypatch, caplog):
    """Phase 1 ended by the loss plateau, phase 2 by the mixing plateau: each line says which."""
    monkeypatch.setattr("fusemap.training.choose_mode", lambda p, c: "lines")
    with caplog.at_level(logging.INFO, logger="fusemap"):
        model = FuseMap(sim_sections, **{**FAST, "max_epochs": 30, "patience": 100, "plateau_window": 3,
                                         "plateau_pretrain": 0.9, "mixing_window": 3, "plateau_mixing": 0.9})
        model.train()
    ended = [r.getMessage() for r in caplog.records if r.name == "fusemap" and " ended after " in r.getMessage()]
    first, second = model.train_state.epochs_per_phase
    assert first == 4 and 6 <= second < 30 and model.train_state.stopped_early == [True, True]
    assert len(ended) == 2
    assert f"ended after 4 epochs, {progress.PHASE_END_REASONS['loss_plateau']}" in ended[0]
    assert f"ended after {second} epochs, {progress.PHASE_END_REASONS['mixing_plateau']}" in ended[1]


def test_lines_off_a_terminal(sim_sections, monkeypatch, caplog):
    monkeypatch.setattr("fusemap.training.choose_mode", lambda p, c: "lines")
    monkeypatch.setattr(progress, "LOG_EVERY_SECONDS", 0.0)  # a line every epoch
    with caplog.at_level(logging.INFO, logger="fusemap"):
        FuseMap(sim_sections, **{**FAST, "max_epochs": 3, "patience": 100}).train()
    lines = [r.getMessage() for r in caplog.records if r.name == "fusemap"]
    started = [m for m in lines if "started" in m]
    ended = [m for m in lines if " ended after " in m]
    assert started == ["phase 1 of 2 (pretraining) started: at most 3 epochs",
                       "phase 2 of 2 (balanced) started: at most 3 epochs"]
    assert len(ended) == 2 and all("ended after 3 epochs, reached max_epochs" in m for m in ended)
    assert len([m for m in lines if "): epoch " in m]) == 4  # epochs 1 and 2 of each phase
    balance = [m for m in lines if m.startswith("Balance weights:")]
    assert len(balance) == 1 and lines.index(balance[0]) < lines.index(started[1])


def test_notebook_without_ipywidgets_draws_text_and_never_warns(monkeypatch):
    import importlib.util

    from tqdm import tqdm as std_tqdm

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "ipywidgets" else real(n, *a))
    assert progress._bar_class("notebook") is std_tqdm
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = progress.Progress(mode="notebook", callback=None, n_phases=1, max_epochs=2, names={1: "training"})
        p.open(0, 2)
        assert type(p.bar) is std_tqdm
        p.epoch_done(phase=1, epoch=1, epochs_done=1, epochs_total=2, val_loss=1.0, recon=1.0,
                     phase_ended=None, done=False)
        assert p.bar.n == 1
        p.close()


def test_default_handler_only_when_logging_is_unconfigured(monkeypatch, capsys):
    log = logging.getLogger("fusemap")
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    monkeypatch.setattr(log, "handlers", [])
    monkeypatch.setattr(log, "level", logging.NOTSET)
    progress.ensure_log_handler()
    progress.ensure_log_handler()
    assert len(log.handlers) == 1 and log.level == logging.INFO
    log.info("visible %d", 1)
    assert capsys.readouterr().err == "[fusemap] visible 1\n"
    logging.getLogger().handlers.append(logging.NullHandler())  # the user configures logging later
    log.info("once, through the user's handlers")
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(log, "handlers", [])
    progress.ensure_log_handler()
    assert log.handlers == []  # configured: fusemap adds nothing


def test_log_lines_are_written_above_a_running_bar(monkeypatch, capsys):
    import re

    log = logging.getLogger("fusemap")
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    monkeypatch.setattr(log, "handlers", [])
    monkeypatch.setattr(log, "level", logging.NOTSET)
    progress.ensure_log_handler()
    p = progress.Progress(mode="bar", callback=None, n_phases=1, max_epochs=3, names={1: "training"}).open(0, 3)
    p.epoch_done(phase=1, epoch=1, epochs_done=1, epochs_total=3, val_loss=1.0, recon=1.0, phase_ended=None,
                 done=False)
    log.info("Balance weights: a sentence")
    p.epoch_done(phase=1, epoch=2, epochs_done=2, epochs_total=3, val_loss=1.0, recon=1.0, phase_ended=None,
                 done=False)
    p.close()
    pieces = [s.strip() for s in re.split(r"[\r\n]", capsys.readouterr().err) if s.strip()]
    assert "[fusemap] Balance weights: a sentence" in pieces  # a line of its own, not inside the bar
    assert any("2/3" in s for s in pieces)


def test_the_clis_root_handler_also_writes_above_the_bar(monkeypatch, capsys):
    import re

    handler = logging.StreamHandler(sys.stderr)  # what `fusemap -v` sets up with logging.basicConfig
    handler.setFormatter(logging.Formatter("[fusemap] %(message)s"))
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    monkeypatch.setattr(logging.getLogger("fusemap"), "level", logging.INFO)
    p = progress.Progress(mode="bar", callback=None, n_phases=1, max_epochs=3, names={1: "training"}).open(0, 3)
    p.epoch_done(phase=1, epoch=1, epochs_done=1, epochs_total=3, val_loss=1.0, recon=1.0, phase_ended=None,
                 done=False)
    logging.getLogger("fusemap").info("Balance weights: a sentence")
    p.close()
    assert logging.getLogger().handlers == [handler]  # restored after the bar
    pieces = [s.strip() for s in re.split(r"[\r\n]", capsys.readouterr().err) if s.strip()]
    assert "[fusemap] Balance weights: a sentence" in pieces
