"""GPU check at a million cells: cells per second, peak GPU memory and time to quality.

    .venv/bin/python benchmarks/performance/gpu.py                       # 1M cells, CUDA, < 8 min
    .venv/bin/python benchmarks/performance/gpu.py --cells 20000 --device cpu --budget-s 60   # mechanics

One process: tiles real Xenium tissue into a ``--cells`` atlas of 8 sections
(``fusemap.datasets.tiled_atlas``: own capture rates, gene detection and panels), sets up the model
at its defaults and trains it until its stopping rule ends both phases or ``--budget-s`` seconds of
training have passed. Every ``--every`` seconds of training the embeddings of all cells are read out
and scored (the clock is paused meanwhile): 15-NN cell-type transfer from the first section to the
others and section mixing of the cell embedding (``ours_case.knn_mixing``), both on a 20,000-cell
subsample. Time to quality is the first snapshot within 0.01 of the last snapshot's scores.
Writes ``results/gpu_<device>.csv`` (one row per snapshot) and ``results/gpu_<device>_summary.json``,
and prints both. Never run in CI.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from ours_case import knn_mixing, knn_transfer  # noqa: E402
from run import RESULTS, _machine  # noqa: E402


class _Budget(Exception):
    """Raised from the training callback when the time budget is spent."""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", type=int, default=1_000_000)
    p.add_argument("--sections", type=int, default=8)
    p.add_argument("--device", default="cuda")
    p.add_argument("--budget-s", type=float, default=300.0, help="seconds of training at most")
    p.add_argument("--every", type=float, default=30.0, help="seconds of training between snapshots")
    p.add_argument("--params", default="{}", help="JSON of fusemap options on top of the defaults")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args()

    import torch

    import fusemap
    from fusemap import datasets
    from fusemap.inference import embed_section

    t0 = time.perf_counter()
    secs = datasets.tiled_atlas(n_cells=a.cells, n_sections=a.sections, seed=0)
    t_data = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = fusemap.FuseMap(secs, device=a.device, progress=False, **json.loads(a.params))
    t_setup = time.perf_counter() - t0
    dev = model.device
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    names = [d.name for d in model.data]
    t = model.config.train
    per_epoch = max(int(np.ceil(len(d.train_idx) / t.batch_size)) for d in model.data)
    per_epoch = min(per_epoch, t.max_epoch_steps or per_epoch)  # steps of every epoch (sampler.EpochPlan)
    paused, points, epochs = [0.0], [], [0]
    t_train = [time.perf_counter()]

    def clock() -> float:
        return time.perf_counter() - t_train[0] - paused[0]

    def snapshot(label: str) -> None:
        if cuda:
            torch.cuda.synchronize(dev)
        t, p0 = clock(), time.perf_counter()
        embs = [embed_section(model.module, i, d, dev) for i, d in enumerate(model.data)]
        emb = {n: type("Emb", (), {"cell": e[0], "spatial": e[1]}) for n, e in zip(names, embs)}
        points.append({"seconds": t, "point": label, "epochs": epochs[0], "steps": epochs[0] * per_epoch,
                       "knn_cell_type": knn_transfer(secs, emb, "cell_type", "cell"),
                       "knn_mixing": knn_mixing(emb)})
        print(json.dumps(points[-1]), flush=True)
        paused[0] += time.perf_counter() - p0

    next_t = [a.every]

    def callback(info: dict) -> None:
        epochs[0] = int(info["epochs_done"])
        if clock() >= next_t[0] and not info["done"]:
            snapshot(f"phase {info['phase']} epoch {info['epoch']}")
            next_t[0] = clock() + a.every
        if clock() >= a.budget_s and not info["done"]:
            raise _Budget

    t_train[0] = time.perf_counter()
    snapshot("before training")
    finished = True
    try:
        model.train(callback=callback)
    except _Budget:
        finished = False
    train_s = clock()
    snapshot("end" if finished else f"budget of {a.budget_s:.0f} s")
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if cuda else None
    steps = epochs[0] * per_epoch
    last = points[-1]
    reached = next(pt for pt in points if pt["knn_cell_type"] >= last["knn_cell_type"] - 0.01
                   and pt["knn_mixing"] >= last["knn_mixing"] - 0.01)
    n_seeds = steps * model.config.train.batch_size * len(secs)
    summary = {"machine": _machine(), "device": torch.cuda.get_device_name(dev) if cuda else "cpu",
               "cells": int(sum(s.n_obs for s in secs)), "sections": len(secs), "data_s": t_data,
               "setup_s": t_setup, "train_s": train_s, "finished_stopping_rule": finished, "epochs": epochs[0],
               "steps": steps, "seed_cells_per_s": n_seeds / max(train_s, 1e-9), "peak_gpu_mb": peak,
               "time_to_quality_s": reached["seconds"], "final_knn_cell_type": last["knn_cell_type"],
               "final_knn_mixing": last["knn_mixing"], "params": json.loads(a.params)}
    tag = "cpu" if not cuda else torch.cuda.get_device_name(dev).replace(" ", "_")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    import pandas as pd

    pd.DataFrame(points).assign(machine=summary["machine"]).to_csv(out / f"gpu_{tag}.csv", index=False)
    (out / f"gpu_{tag}_summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
