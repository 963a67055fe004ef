"""The restructure (fusemap.io, fusemap.cli, one FuseMap state setter, torch.optim.Adam) changed
no behaviour: checked against files the code before it wrote (commit 3e5e9e6, in
tests/data/pre_restructure/: a small model trained on the first 600 cells of each STARmap mosaic
section, float32, seed 0, and a digest of its embeddings: the first 5 cells, and each column's
mean and standard deviation over all 600).

On the machine that wrote them the new code reproduces the embeddings bit for bit; the tolerances
below leave room only for another CPU's float32 rounding.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import fusemap

from conftest import require_data

pytestmark = pytest.mark.realdata

HERE = Path(__file__).resolve().parents[1] / "data" / "pre_restructure"
SETTINGS = dict(max_epochs=4, n_hidden=64, n_latent=16, batch_size=128, progress=False, seed=0, precision="float32",
                shift_sections=False)
"""The section shifts came later, on purpose (tests/core/test_shift.py); the trained networks must
still be those of before the restructure."""


@pytest.fixture(scope="module")
def sections():
    require_data()
    masked, _ = fusemap.datasets.starmap_mosaic(n_shared=40, n_per_section=100, seed=0)
    return [a[:600].copy() for a in masked]


def _assert_matches(name: str, kind: str, got: np.ndarray, atol: float) -> None:
    want = json.loads((HERE / "embeddings_digest.json").read_text())[f"{name}/{kind}"]
    assert list(got.shape) == want["shape"]
    np.testing.assert_allclose(got[:5], want["first_rows"], atol=atol)
    np.testing.assert_allclose(got.mean(0), want["column_mean"], atol=atol)
    np.testing.assert_allclose(got.std(0), want["column_sd"], atol=atol)


def test_a_model_saved_before_loads_and_reads_out_the_same(sections):
    model = fusemap.FuseMap.load(HERE / "model", [a.copy() for a in sections])  # no checksums, no setup
    assert model.spatial_key == "spatial"
    for name, e in model.embeddings().items():
        _assert_matches(name, "cell", e.cell, atol=1e-4)
        _assert_matches(name, "spatial", e.spatial, atol=1e-4)


def test_training_with_the_same_seed_gives_the_same_embeddings(sections):
    model = fusemap.FuseMap([a.copy() for a in sections], **SETTINGS).train()
    for name, e in model.embeddings().items():
        # measured here, largest digest difference: seed 1 instead of 0 moves it by 2.99, bfloat16
        # arithmetic by 0.013 (embedding scale ~3); another CPU's float32 rounding (2^16 times
        # finer than bfloat16's) stays far below 0.005
        _assert_matches(name, "cell", e.cell, atol=0.005)
        _assert_matches(name, "spatial", e.spatial, atol=0.005)
