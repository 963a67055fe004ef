"""Training leaves torch's thread count as the caller set it (the balance step between the phases
runs scanpy's numba neighbour search, which shares the OpenMP runtime and used to reset it)."""

import pytest
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


_RUN = """
import sys, json, os
if sys.argv[1] == "torch-first":
    import torch  # noqa: F401
import numpy as np
import fusemap
from fusemap import datasets
secs = datasets.simulate(n_sections=3, n_cells=300, n_genes=60, panel_size=40, n_shared=15, seed=3)
m = fusemap.FuseMap(secs, max_epochs=3, batch_size=64, n_hidden=64, n_latent=16, progress=False, seed=0)
m.train()
z = np.concatenate([np.asarray(e.cell) for e in m.embeddings().values()])
print("RESULT " + json.dumps({"policy": os.environ.get("OMP_WAIT_POLICY", ""), "sum": float(np.abs(z).sum()),
                              "first": z[:3].ravel().tolist()}))
"""


def _train_in_child(mode: str, busy: int = 0) -> dict:
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    hogs = [subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 120\nwhile time.time() < end: pass"])
            for _ in range(busy)]
    try:
        out = subprocess.run([sys.executable, "-c", _RUN, mode], env=env, capture_output=True, text=True, check=True)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    return json.loads(next(line[7:] for line in out.stdout.splitlines() if line.startswith("RESULT ")))


@pytest.mark.slow
def test_openmp_waits_passively_and_neither_load_nor_policy_changes_results():
    """fusemap imported first sets OMP_WAIT_POLICY=PASSIVE (torch imported first keeps libgomp's
    default); the same seed gives the same embedding quiet, beside two busy processes, and under
    either policy."""
    quiet = _train_in_child("fusemap-first")
    loaded = _train_in_child("fusemap-first", busy=2)
    spin = _train_in_child("torch-first")
    assert quiet["policy"] == loaded["policy"] == "PASSIVE" and spin["policy"] == ""
    assert quiet["sum"] > 0
    for other in (loaded, spin):
        assert other["first"] == quiet["first"] and other["sum"] == quiet["sum"]
