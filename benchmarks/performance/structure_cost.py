"""What the neighbourhood term (``structure_weight``) costs per training epoch.

    .venv/bin/python benchmarks/performance/structure_cost.py                 # 3 pairs, 1 thread
    .venv/bin/python benchmarks/performance/structure_cost.py --cases starmap_mosaic --pairs 2

The term acts in the balanced phase only. To time that phase alone, each run trains without
balance weights (one phase, in which the MMD and the term act from the first epoch) for a fixed
number of epochs; the runs with the term (``--weight``, 0.1) and without it (0, the default)
alternate in one process, so a change of load hits both. Seconds per epoch are the median over a run's epochs after
the first (which pays one-off costs). Writes ``results/structure_cost.csv`` (one row per run,
with the load) and prints the ratio per case.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default="starmap_mosaic,xenium_capture")
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--weight", type=float, default=0.1, help="structure_weight of the runs with the term")
    p.add_argument("--work", default=str(ROOT / "benchmarks" / ".work"))
    p.add_argument("--out", default=str(HERE / "results" / "structure_cost.csv"))
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    import fusemap
    from benchmarks import cases as case_builders
    from benchmarks.scoring import read_case

    rows = []
    for cname in a.cases.split(","):
        case_dir = Path(a.work) / "cases" / cname
        if not (case_dir / "case.json").exists():
            case_dir = case_builders.build_case(cname, Path(a.work) / "cases")
        case = read_case(case_dir)
        for pair in range(a.pairs):
            for w in (a.weight, 0.0):
                model = fusemap.FuseMap([s.copy() for s in case.sections], progress=False,
                                        balance=False, max_epochs=a.epochs, patience=a.epochs,
                                        plateau_mixing=0.0, structure_weight=w, seed=pair)
                model.train()
                h = model.history_frame()
                rows.append({"case": case.name, "pair": pair, "structure_weight": w,
                             "s_per_epoch": float(np.median(h["seconds"].to_numpy()[1:])),
                             "epochs": len(h), "threads": a.threads, "load": os.getloadavg()[0]})
                print(rows[-1], flush=True)
    t = pd.DataFrame(rows)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t.to_csv(out, index=False)
    s = t.pivot_table(index=["case", "pair"], columns="structure_weight", values="s_per_epoch")
    ratio = (s[a.weight] / s[0.0]).groupby("case").agg(["median", "min", "max"])
    print(f"seconds per balanced-phase epoch, with the term / without (weight {a.weight}):")
    print(ratio.round(3).to_string())


if __name__ == "__main__":
    main()
