"""How many measuring cells the kNN imputation read-out should average, on development cases only.

    python -m benchmarks.imputation_neighbors                      # the six cuts of fusemap.imputation's docstring
    python -m benchmarks.imputation_neighbors starmap_mosaic:300:0 # case:max cells per section:seed

For each (case, cut, seed) one model is trained at default settings, then every section's masked
genes are read out with ``fusemap.impute(method='knn', neighbors=k)`` for each k (and the decoder
read-out at its default) and scored against the measured values (mean over (section, gene) of
Pearson R, SSIM, RMSE, JS; :func:`benchmarks.scoring.imputation_scores`). Cutting a case to fewer
cells per section asks whether the best k depends on how many measuring cells there are. Rows go
to ``benchmarks/results/imputation_neighbors.csv``; the choice of ``fusemap.imputation``'s default
is stated in its docstring.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import cases as case_builders
from .runner import ROOT
from .scoring import imputation_scores, imputation_truth, read_case

CUTS = ("starmap_mosaic:300:0", "xenium_capture:300:0", "starmap_mosaic:0:0", "xenium_capture:0:0",
        "starmap_mosaic:150:0", "xenium_capture:600:0")
NEIGHBORS = (5, 10, 15, 25, 50, 100)
OUT = ROOT / "benchmarks" / "results" / "imputation_neighbors.csv"


def run(spec: str, work: Path) -> list[dict]:
    import fusemap

    name, cut, seed = spec.split(":")
    if name not in case_builders.DEVELOPMENT_CASES:
        raise SystemExit(f"{name!r} is not a development case; defaults are chosen on {case_builders.DEVELOPMENT_CASES}")
    case = read_case(case_builders.build_case(name, work / "cases", max_cells=int(cut) or None))
    t0 = time.perf_counter()
    model = fusemap.integrate([a.copy() for a in case.sections], progress=False, seed=int(seed))
    fit_s = time.perf_counter() - t0
    truth = imputation_truth(case)
    rows = []
    for method, ks in (("knn", NEIGHBORS), ("decoder", (None,))):
        for k in ks:
            res = {}
            for s, genes in case.info["masked_genes"].items():
                if genes:
                    r = fusemap.impute(model, [s], genes=genes, method=method, neighbors=k)
                    res[s] = (list(r.var_names), np.asarray(r.X))
            sc = imputation_scores(truth, res)
            rows.append({"case": case.info["name"], "seed": int(seed), "cells": int(case.obs.shape[0]),
                         "method": method, "k": k if k is not None else fusemap.imputation.default_neighbors(method),
                         **{m: sc[f"{m}_mean"] for m in ("pearson", "ssim", "rmse", "js")},
                         "fit_s": round(fit_s, 1), "load": os.getloadavg()[0]})
            print(rows[-1], flush=True)
    return rows


def main(argv=None) -> None:
    specs = (argv if argv is not None else sys.argv[1:]) or list(CUTS)
    rows = [r for spec in specs for r in run(spec, ROOT / "benchmarks" / ".work")]
    new = pd.DataFrame(rows)
    if OUT.exists():  # replace the rows of the cuts run now, keep the others
        old = pd.read_csv(OUT)
        new = pd.concat([old[~old["case"].isin(set(new["case"]))], new], ignore_index=True)
    new.to_csv(OUT, index=False)
    summary = new[new["method"] == "knn"].pivot_table(index="k", columns="case", values=["pearson", "ssim"])
    print(summary.round(3).to_string())
    print("mean Pearson R over the cuts by k:", new[new["method"] == "knn"].groupby("k")["pearson"].mean().round(4).to_dict())


if __name__ == "__main__":
    main()
