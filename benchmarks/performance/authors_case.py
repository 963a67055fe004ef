"""One measured run of the authors' FuseMap 1.1.3 (PyPI ``fusemap``), as a comparator only.

Runs in its own environment (``.venv-authors``, created by ``benchmarks/envs/authors.sh``) and
imports nothing from this project. It calls the package's public ``integrate`` on a folder of
.h5ad sections and reads the timings from outside: its two training phases are wrapped with a
timer and its per-epoch snapshot writer with a counter (one call per epoch).

``--epochs N`` sets a fixed budget of N epochs per phase (its ``n_epochs`` is N + 1, as it counts
from 1), validates from the first epoch (as this project does; the package's own default waits
10 epochs) and never stops early; without it the package's defaults apply (15 epochs per phase,
early stopping after epoch 11), which is what "epochs to convergence" reports.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import emit  # noqa: E402


def knn_transfer(path: Path, label: str, first_file: str, max_cells: int = 20_000, seed: int = 0):
    """The same check as ours_case.knn_transfer, on the package's written embedding: a kNN
    (k = 15) classifier fitted on the first section (file) predicts ``label`` in the others."""
    import anndata as ad
    import numpy as np
    from sklearn.neighbors import KNeighborsClassifier

    if not path.exists():
        return None
    emb = ad.read_h5ad(path)
    if label not in emb.obs or (emb.obs[label].astype(str) == "nan").all():
        return None
    rng = np.random.default_rng(seed)
    z = np.asarray(emb.X)
    lab = emb.obs[label].astype(str).to_numpy()
    fname = emb.obs["file_name"].astype(str).to_numpy()

    def take(mask):
        idx = np.flatnonzero(mask)
        keep = rng.choice(idx, min(idx.size, max_cells), replace=False)
        return z[keep], lab[keep]

    z0, l0 = take(fname == first_file)
    rest = [take(fname == f) for f in sorted(set(fname) - {first_file})]
    clf = KNeighborsClassifier(n_neighbors=15).fit(z0, l0)
    zt = np.concatenate([r[0] for r in rest])
    lt = np.concatenate([r[1] for r in rest])
    return float((clf.predict(zt) == lt).mean())


def save_embeddings(out: Path, target: str) -> None:
    """The package's cell and spatial embeddings with each cell's section (file) and labels, rows
    matched by cell name, for time_to_quality.py to score with the same code as ours."""
    import anndata as ad
    import numpy as np

    cell = ad.read_h5ad(out / "ad_celltype_embedding.h5ad")
    spatial = ad.read_h5ad(out / "ad_tissueregion_embedding.h5ad")
    spatial = spatial[cell.obs_names]
    obs = cell.obs
    cols = {k: np.asarray(obs[k].astype(str), dtype="U") for k in ("cell_type", "region") if k in obs}
    np.savez(target, cell=np.asarray(cell.X, dtype=np.float32), spatial=np.asarray(spatial.X, dtype=np.float32),
             section=np.asarray(obs["file_name"].astype(str), dtype="U"), **cols)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("data", help="folder of .h5ad sections")
    p.add_argument("--epochs", type=int, default=0, help="fixed epochs per phase (0: package defaults)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--save", default="", help="also write the embeddings (.npz) for scoring outside this process")
    a = p.parse_args()
    import warnings

    warnings.filterwarnings("ignore")
    import anndata as ad
    import torch

    import fusemap
    import fusemap.training.integrate as integ
    import fusemap.training.train_model as tm
    from fusemap.config import ModelType

    if a.threads:
        torch.set_num_threads(a.threads)
    if a.epochs:
        ModelType.n_epochs._value_ = a.epochs + 1
        ModelType.TRAIN_WITHOUT_EVAL._value_ = 0
        ModelType.patience_limit_pretrain._value_ = 10**9
        ModelType.patience_limit_final._value_ = 10**9
    times: dict = {}
    epochs = {"pretrain": 0, "final": 0}
    phase = ["pretrain"]

    def timed(name, f):
        def g(*args, **kw):
            phase[0] = name
            c = time.process_time()
            t = time.perf_counter()
            try:
                return f(*args, **kw)
            finally:
                times[name] = time.perf_counter() - t
                times[name + "_cpu"] = time.process_time() - c
        return g

    snap = tm.save_snapshot

    def counting_snapshot(*args, **kw):
        epochs[phase[0]] += 1
        return snap(*args, **kw)

    integ.pretrain_model = timed("pretrain", integ.pretrain_model)
    integ.train_model = timed("final", integ.train_model)
    integ.save_snapshot = counting_snapshot
    tm.save_snapshot = counting_snapshot
    files = sorted(Path(a.data).glob("*.h5ad"))
    n_cells = sum(ad.read_h5ad(f, backed="r").n_obs for f in files)
    out = Path(tempfile.mkdtemp(prefix="fusemap-authors-"))
    try:
        t0 = time.perf_counter()
        fusemap.integrate(str(a.data), str(out))
        total = time.perf_counter() - t0
        quality = {f"knn_{label}": knn_transfer(out / fname, label, files[0].name)
                   for fname, label in (("ad_celltype_embedding.h5ad", "cell_type"),
                                        ("ad_tissueregion_embedding.h5ad", "region"))}
        if a.save:
            save_embeddings(out, a.save)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    n_ep = epochs["pretrain"] + epochs["final"]
    train_s = times.get("pretrain", 0.0) + times.get("final", 0.0)
    emit({
        "method": "authors", "fusemap_version": getattr(fusemap, "__version__", "1.1.3"), "n_sections": len(files),
        "n_cells": n_cells, "torch_threads": torch.get_num_threads(),
        "epochs_per_phase": [epochs["pretrain"], epochs["final"]], "epochs": n_ep,
        "train_s": train_s, "train_cpu_s": times.get("pretrain_cpu", 0.0) + times.get("final_cpu", 0.0),
        "epoch_s_sum": train_s, "pipeline_s": total,
        "cells_per_s": n_cells * n_ep / max(train_s, 1e-9), "batch_size": ModelType.batch_size.value,
        **quality,
    })


if __name__ == "__main__":
    main()
