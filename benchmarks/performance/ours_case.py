"""One measured run of this project's FuseMap on a folder of .h5ad sections (one per section).

Run by ``benchmarks/performance/run.py`` inside ``measure.run_measured``; prints ``RESULT {json}``
with the phases' own timings (read, set-up = validation + preprocessing + graphs, training,
embedding read-out), epochs, and a quality check (kNN label transfer from the first section to
the others, when the sections carry ``cell_type`` / ``region`` labels).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import emit  # noqa: E402


def knn_predict(z_ref, labels_ref, z_query, k=15):
    """scikit-learn's KNeighborsClassifier(k) prediction (exact neighbours, majority vote, ties to the
    first label in sorted order), with fusemap's neighbour search."""
    import numpy as np

    from fusemap.neighbors import nearest

    classes, y = np.unique(labels_ref, return_inverse=True)
    k = min(k, len(z_ref))
    nn = nearest(z_ref, z_query, k)
    votes = np.zeros((len(nn), len(classes)), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(len(nn)), k), y[nn].ravel()), 1)
    return classes[votes.argmax(1)]


def knn_transfer(secs, emb, key_label, attr, max_cells=20_000, seed=0):
    import numpy as np

    if not all(key_label in a.obs for a in secs):
        return None
    rng = np.random.default_rng(seed)
    names = list(emb)

    def take(i):
        z = getattr(emb[names[i]], attr)
        lab = secs[i].obs[key_label].astype(str).to_numpy()
        keep = rng.choice(len(z), min(len(z), max_cells), replace=False)
        return z[keep], lab[keep]

    z0, l0 = take(0)
    rest = [take(i) for i in range(1, len(names))]
    zt = np.concatenate([r[0] for r in rest])
    lt = np.concatenate([r[1] for r in rest])
    return float((knn_predict(z0, l0, zt) == lt).mean())


def knn_mixing(emb, attr="cell", k=15, max_cells=20_000, seed=0):
    """Section mixing of an embedding (``fusemap.mixing.neighbour_mixing``, the statistic that ends
    training's balanced phase) on a random subset of all sections' cells: the share of each cell's
    ``k`` nearest neighbours that come from other sections, over the share a perfect mix of the
    subset would give (1 = as mixed as chance; 0 = every section apart)."""
    import numpy as np

    from fusemap.mixing import neighbour_mixing, pooled_rows

    rng = np.random.default_rng(seed)
    zs = [getattr(e, attr) for e in emb.values()]
    lab = np.concatenate([np.full(len(z), i) for i, z in enumerate(zs)])
    keep = rng.choice(len(lab), min(len(lab), max_cells), replace=False)
    return neighbour_mixing(pooled_rows(zs, keep), lab[keep], k)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("data", help="folder of .h5ad sections")
    p.add_argument("--params", default="{}", help="JSON of fusemap options (e.g. max_epochs, patience)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args()
    import warnings

    warnings.filterwarnings("ignore")
    import anndata as ad
    import torch

    import fusemap
    from fusemap.training import use_bf16

    if a.threads:
        torch.set_num_threads(a.threads)
    params = {"progress": False, **json.loads(a.params)}
    files = sorted(Path(a.data).glob("*.h5ad"))
    t = {"start": time.perf_counter()}
    secs = [ad.read_h5ad(f) for f in files]
    t["read"] = time.perf_counter()
    model = fusemap.FuseMap(secs, **params)
    t["setup"] = time.perf_counter()
    c0 = time.process_time()
    model.train()
    train_cpu = time.process_time() - c0
    t["train"] = time.perf_counter()
    emb = model.embeddings()
    t["embed"] = time.perf_counter()
    st = model.train_state
    hist = model.history
    epoch_s = [h["seconds"] for h in hist]
    n_cells = sum(s.n_obs for s in secs)
    emit({
        "method": "ours", "fusemap_version": fusemap.__version__, "n_sections": len(secs), "n_cells": n_cells,
        "panel_sizes": [int(s.n_vars) for s in secs], "params": params, "torch_threads": torch.get_num_threads(),
        "device": str(model.device),
        "encoder_arithmetic": "bfloat16" if use_bf16(model.config.train.precision, model.device) else "float32",
        "read_s": t["read"] - t["start"], "setup_s": t["setup"] - t["read"], "train_s": t["train"] - t["setup"],
        "embed_s": t["embed"] - t["train"], "pipeline_s": t["embed"] - t["read"], "train_cpu_s": train_cpu,
        "epochs_per_phase": list(st.epochs_per_phase), "epochs": int(sum(st.epochs_per_phase)),
        "stopped_early": list(st.stopped_early), "epoch_s_sum": float(sum(epoch_s)),
        "cells_per_s": n_cells * len(epoch_s) / max(sum(epoch_s), 1e-9),  # nominal: epochs x cells
        # what was trained: epochs capped by max_epoch_steps pass only part of the cells
        "seed_cells_per_s": sum(h.get("seeds", 0) for h in hist) / max(sum(epoch_s), 1e-9),
        "knn_cell_type": knn_transfer(secs, emb, "cell_type", "cell"),
        "knn_region": knn_transfer(secs, emb, "region", "spatial"),
        "knn_mixing": knn_mixing(emb) if len(secs) > 1 else None,
    })


if __name__ == "__main__":
    main()
