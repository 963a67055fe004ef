"""What every method worker shares: reading a case folder, the shared-gene matrix, writing outputs.

Workers run in different virtual environments (the authors' FuseMap pins numpy < 2 and an older
anndata), so this module depends only on numpy, pandas, scipy and anndata, and nothing here
imports the project's package.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from contextlib import contextmanager
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp


def parse_args(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--case", required=True, help="case folder written by benchmarks.cases")
    p.add_argument("--out", required=True, help="folder for outputs.npz and meta.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--params", default="{}", help="JSON object of method settings")
    a = p.parse_args()
    a.params = json.loads(a.params)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    return a


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import torch
        torch.manual_seed(seed)
    except ImportError:
        pass


def load_case(case_dir: str) -> tuple[dict, list[ad.AnnData]]:
    """case.json as a dict and the sections (raw counts, own panels) in the case's order."""
    info = json.loads((Path(case_dir) / "case.json").read_text())
    secs = [ad.read_h5ad(Path(case_dir) / f) for f in info["files"]]
    return info, secs


def shared_counts(info: dict, sections: list[ad.AnnData]) -> ad.AnnData:
    """All cells (case order) on the genes every section measured, raw counts, obs section/labels."""
    genes = info["shared_genes"]
    parts = []
    for a in sections:
        b = ad.AnnData(sp.csr_matrix(a[:, genes].X, dtype=np.float32), obs=a.obs[["section", "cell_type", "region"]].copy(),
                       var=pd.DataFrame(index=genes))
        # a section without coordinates (single-cell reference) gets NaN: no spatial method applies
        b.obsm["spatial"] = (np.asarray(a.obsm["spatial"], dtype=np.float64) if "spatial" in a.obsm
                             else np.full((a.n_obs, 2), np.nan))
        parts.append(b)
    out = ad.concat(parts, join="inner", merge="first")
    out.obs["section"] = pd.Categorical(out.obs["section"].astype(str), categories=info["sections"])
    return out


def log_normalise(x, target: float | None = None) -> np.ndarray:
    """log1p of counts scaled to the median library size (dense array)."""
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    lib = x.sum(1, keepdims=True)
    target = float(np.median(lib[lib > 0])) if target is None else target
    return np.log1p(x / np.maximum(lib, 1e-12) * target).astype(np.float32)


def offset_coordinates(adata: ad.AnnData, key: str = "section") -> np.ndarray:
    """Coordinates of all sections laid side by side (x shifted), so a graph built on the
    concatenation never links cells of different sections; each section first scaled to unit
    median nearest-neighbour distance so one k or radius suits every technology."""
    from scipy.spatial import cKDTree
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64).copy()
    out = np.zeros_like(xy)
    shift = 0.0
    for s in adata.obs[key].cat.categories:
        m = (adata.obs[key] == s).to_numpy()
        p = xy[m] - xy[m].min(0)
        d, _ = cKDTree(p).query(p, k=2)
        p = p / max(np.median(d[:, 1]), 1e-9)
        p[:, 0] += shift
        shift = p[:, 0].max() + 1000.0
        out[m] = p
    return out


class Clock:
    """Wall time of the method itself (the runner also times the whole process)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextmanager
    def __call__(self):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - t0


def save_outputs(out: str, obs_names, *, cell: np.ndarray, spatial: np.ndarray | None = None,
                 imputed: dict[str, tuple[list[str], np.ndarray]] | None = None,
                 predictions: dict[str, tuple[list[str], np.ndarray]] | None = None,
                 meta: dict | None = None, fit_seconds: float | None = None) -> None:
    """Write outputs.npz (embeddings, imputations, predictions) and meta.json atomically."""
    arrays = {"obs_names": np.asarray([str(o) for o in obs_names]), "cell": np.asarray(cell, dtype=np.float32)}
    if spatial is not None:
        arrays["spatial"] = np.asarray(spatial, dtype=np.float32)
    genes_of = {}
    for sec, (genes, mat) in (imputed or {}).items():
        arrays[f"imputed::{sec}"] = np.asarray(mat, dtype=np.float32)
        genes_of[sec] = [str(g) for g in genes]
    for key, (names, labels) in (predictions or {}).items():
        arrays[f"pred_names::{key}"] = np.asarray([str(n) for n in names])
        arrays[f"pred::{key}"] = np.asarray([str(v) for v in labels])
    for name, a in arrays.items():
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            raise ValueError(f"output {name!r} holds NaN or inf values")
    tmp = Path(out) / "outputs.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, Path(out) / "outputs.npz")
    m = dict(meta or {})
    m["imputed_genes"] = genes_of
    if fit_seconds is not None:
        m["fit_seconds"] = float(fit_seconds)
    (Path(out) / "meta.tmp.json").write_text(json.dumps(m, indent=1, default=str))
    os.replace(Path(out) / "meta.tmp.json", Path(out) / "meta.json")


def imputation_tasks(info: dict, sections: list[ad.AnnData]):
    """What an imputation method is given, the same for every method: for each section with masked
    genes, the groups of those genes measured by the same other sections (``sources``), and the
    genes each source shares with the target (``common``), which the method may use to match cells.
    Yields ``(target index, genes, source indices, common genes)``."""
    names = info["sections"]
    for i, s in enumerate(names):
        genes = info.get("masked_genes", {}).get(s, [])
        groups: dict[tuple[int, ...], list[str]] = {}
        for g in genes:
            src = tuple(j for j, a in enumerate(sections) if j != i and g in set(a.var_names))
            if src:
                groups.setdefault(src, []).append(g)
        for src, gs in groups.items():
            common = [g for g in sections[i].var_names if all(g in set(sections[j].var_names) for j in src)]
            yield i, gs, list(src), common
