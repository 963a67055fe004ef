"""Shared fixtures. Real data comes from $FUSEMAP_DATA_DIR (default ../shared/data); tests that
need it skip with the reason when it is absent."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("FUSEMAP_DATA_DIR", str((ROOT / ".." / "shared" / "data").resolve()))
warnings.filterwarnings("ignore", category=SyntaxWarning)

import fusemap  # noqa: E402
from fusemap import datasets  # noqa: E402


def require_data(*names: str) -> Path:
    names = names or datasets.STARMAP_MPFC
    if not datasets.has_data(names):
        pytest.skip(f"shared data {list(names)} not found in {datasets.data_dir()} "
                    "(set FUSEMAP_DATA_DIR to the folder holding the .h5ad files)")
    return datasets.data_dir()


@pytest.fixture
def sim_sections():
    """Three small simulated sections with different panels (fresh copy per test)."""
    return datasets.simulate(n_sections=3, n_cells=300, n_genes=60, panel_size=40, n_shared=15, seed=3)


FAST = dict(max_epochs=3, batch_size=64, n_hidden=64, n_latent=16, progress=False)
"""Settings that make a training run take about a second, for tests of mechanics."""


@pytest.fixture(scope="session")
def starmap_mosaic():
    """STARmap mPFC with a different gene subset per section: (masked, full)."""
    require_data()
    return datasets.starmap_mosaic(n_shared=40, n_per_section=100, seed=0)


def _precisions() -> list[str]:
    """float32 (the default) always; bfloat16 too where the CPU has it natively, so every real-data
    floor is checked under both arithmetics that precision='auto' can choose."""
    import torch

    from fusemap.training import native_bf16

    return ["float32"] + (["bfloat16"] if native_bf16(torch.device("cpu")) else [])


@pytest.fixture(scope="session", params=_precisions())
def starmap_model(starmap_mosaic, request):
    """FuseMap trained with default settings on the STARmap mosaic (shared by real-data tests),
    once per precision."""
    import time

    masked, _ = starmap_mosaic
    sections = [a.copy() for a in masked]
    t0 = time.perf_counter()
    model = fusemap.integrate(sections, progress=False, seed=0, precision=request.param)
    model.train_seconds_wall = time.perf_counter() - t0
    return model


def assert_close(a, b, tol=0.0):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= tol


def harmony_on_shared_genes(full_sections, genes, seed=0):
    """The Harmony baseline: PCA (30 components) of the pooled, log-normalised, scaled ``genes``,
    corrected over sections. Returns (Harmony embedding, PCA), cells in the sections' order."""
    import anndata as ad
    import harmonypy
    import scanpy as sc

    parts = [a[:, genes].copy() for a in full_sections]
    pooled = ad.concat(parts, label="_section", index_unique="-")
    sc.pp.normalize_total(pooled)
    sc.pp.log1p(pooled)
    sc.pp.scale(pooled, max_value=10)
    sc.tl.pca(pooled, n_comps=30, random_state=seed)
    ho = harmonypy.run_harmony(pooled.obsm["X_pca"], pooled.obs, "_section", random_state=seed, verbose=False)
    z = np.asarray(ho.Z_corr)
    return (z if z.shape[0] == pooled.n_obs else z.T), pooled.obsm["X_pca"]


def embedded_by(label: str, key: str, *, n_sections: int, n_cells: int, dim: int, seed: int):
    """Simulated sections with ``obsm[key]`` separating the categories of ``obs[label]``: one
    centre per category (scale 3) plus unit noise, for testing analyses on a known embedding."""
    secs = datasets.simulate(n_sections=n_sections, n_cells=n_cells, n_genes=40, seed=seed)
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(secs[0].obs[label].cat.categories), dim)) * 3
    for a in secs:
        a.obsm[key] = centres[a.obs[label].cat.codes.to_numpy()] + rng.normal(size=(a.n_obs, dim))
    return secs
