"""Cost and effect of the sample caps of the section shifts (``fusemap.shift``) on a large atlas.

    .venv/bin/python benchmarks/performance/shift_caps.py                      # 100,000 cells
    .venv/bin/python benchmarks/performance/shift_caps.py --cells 20000 --cache benchmarks/performance/.work/cells_20000.npz

The shifts are estimated from mutual nearest neighbours between a sample of each section
(``max_cells``) and a pooled sample of the others (``max_pool``); the two exact neighbour
searches per section and round are what the step costs. One process, one thread: tiles real
Xenium tissue into ``--cells`` cells of 8 sections (``fusemap.datasets.tiled_atlas``), trains 2+2
epochs without shifts (or reads the cell embeddings from ``--cache`` when that file exists; it is
written otherwise), then estimates the shifts at each pair of caps and two sampling seeds. For
each: seconds, the shifts' size and their difference from the first row's (both over the
embedding's spread), and the section mixing and 15-NN cell-type transfer of the shifted cell
embedding (``ours_case``). Writes ``results/shift_caps.csv``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from ours_case import knn_mixing, knn_transfer  # noqa: E402
from run import RESULTS, _machine  # noqa: E402

CAPS = ((10_000, 30_000), (5_000, 15_000))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", type=int, default=100_000)
    p.add_argument("--cache", default=None, help=".npz of the unshifted cell embeddings (read if present, else written)")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args()

    import numpy as np
    import pandas as pd
    import torch

    import fusemap
    from fusemap import datasets
    from fusemap.shift import mnn_shifts

    torch.set_num_threads(1)
    secs = datasets.tiled_atlas(n_cells=a.cells, n_sections=8, seed=0)
    names = [f"s{i}" for i in range(len(secs))]
    if a.cache and Path(a.cache).exists():
        with np.load(a.cache) as z:
            cells = [z[k] for k in sorted(z.files, key=lambda k: int(k.split("_")[1]))]
    else:
        model = fusemap.FuseMap(secs, max_epochs=2, patience=3, plateau_pretrain=0.0, progress=False,
                                shift_sections=False)
        model.train()
        emb = model.embeddings()
        cells = [emb[n].cell for n in model.section_names]
        if a.cache:
            np.savez(a.cache, *cells)
    spread = float(np.sqrt(np.concatenate(cells).var(0).sum()))

    def scores(shifts):
        emb = {n: type("Emb", (), {"cell": c + s})() for n, c, s in zip(names, cells, shifts)}
        return knn_mixing(emb), knn_transfer(secs, emb, "cell_type", "cell")

    rows, reference = [], None
    mix0, knn0 = scores(np.zeros((len(cells), cells[0].shape[1])))
    rows.append({"max_cells": 0, "max_pool": 0, "seed": 0, "seconds": 0.0, "shift_over_spread": 0.0,
                 "difference_over_spread": np.nan, "knn_mixing": mix0, "knn_cell_type": knn0})
    for max_cells, max_pool in CAPS:
        for seed in (0, 1):
            t0 = time.perf_counter()
            sh = mnn_shifts(cells, [True] * len(cells), max_cells=max_cells, max_pool=max_pool, seed=seed)
            seconds = time.perf_counter() - t0
            reference = sh if reference is None else reference
            mix, knn = scores(sh)
            rows.append({"max_cells": max_cells, "max_pool": max_pool, "seed": seed, "seconds": seconds,
                         "shift_over_spread": float(np.linalg.norm(sh, axis=1).mean() / spread),
                         "difference_over_spread": float(np.linalg.norm(sh - reference, axis=1).mean() / spread),
                         "knn_mixing": mix, "knn_cell_type": knn})
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows).assign(cells=a.cells, threads=1, load_avg=os.getloadavg()[0], machine=_machine())
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "shift_caps.csv", index=False)
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
