"""Training leaves torch's thread count as the caller set it (the balance step between the phases
runs scanpy's numba neighbour search, which shares the OpenMP runtime and used to reset it)."""

import torch

import fusemap
from conftest import FAST


def test_train_keeps_the_callers_thread_count(sim_sections):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        model = fusemap.FuseMap(sim_sections, **{**FAST, "max_epochs": 1})
        model.train()
        assert model.train_state.epochs_per_phase == [1, 1]  # the balance step ran
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
