"""What the hand-written neighbour, Leiden and Delaunay stand-ins saved, at 100 k cells.

    .venv/bin/python benchmarks/performance/standins.py            # 100 k cells, 1 thread, 3 pairs
    .venv/bin/python benchmarks/performance/standins.py --cells 10000 --pairs 2

fusemap used to compute the balance weights' clusters (exact kNN, UMAP's fuzzy weights, Leiden) and
the Delaunay graphs with its own code (``standin_neighbors.py``) so that training did not import
scanpy, umap and squidpy. The rule we keep (issue 14): a stand-in stays only if it saves at least
10 % of the whole run at >= 100 k cells. Each variant runs in a fresh process, the two alternating
(pairs), and does what a training run does with them: import, build each section's Delaunay graph,
cluster each section's embedding as the balance weights do. The whole run it is compared with is
the default training of the same simulated atlas: its measured seconds per epoch
(``results/cases.csv``, row ``scaling/<n>/ours``, same machine and thread count) times the fewest
epochs the default stopping rule can run (``patience + 1`` per phase, two phases), a lower bound,
so the share printed is an upper bound of what the stand-ins save.

Writes ``results/standins.csv`` (one row per process) and prints the summary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
VARIANTS = ("standin", "library")


def _embeddings(folder: Path, out: Path) -> None:
    """A 64-dimensional embedding per section (random projection of log counts: clusters of the
    simulated cell types, like a phase-1 embedding) and the coordinates, stored for the workers."""
    import anndata as ad

    rng = np.random.default_rng(0)
    arrays = {}
    for i, f in enumerate(sorted(folder.glob("*.h5ad"))):
        a = ad.read_h5ad(f)
        x = a.X.tocsr() if hasattr(a.X, "tocsr") else np.asarray(a.X)
        proj = rng.normal(size=(a.n_vars, 64)).astype(np.float32) / np.sqrt(a.n_vars)
        arrays[f"emb{i}"] = np.asarray(x.log1p() @ proj if hasattr(x, "log1p") else np.log1p(x) @ proj,
                                       dtype=np.float32)
        arrays[f"xy{i}"] = np.asarray(a.obsm["spatial"], dtype=np.float64)
    np.savez(out, **arrays)


def worker(variant: str, arrays: Path) -> dict:
    """One training run's use of the stand-ins (or the libraries), timed from a fresh interpreter."""
    t0 = time.perf_counter()
    import anndata as ad  # noqa: F401  (both variants read sections)
    import fusemap

    if variant == "standin":
        sys.path.insert(0, str(HERE))
        import standin_neighbors as impl

        def graph(xy):
            return impl.delaunay_graph(xy)[0]

        def cluster(emb):
            return impl.leiden_labels(emb, 1.0, 0)
    else:
        from fusemap.graph import build_graph
        from fusemap.config import GraphConfig
        from fusemap.neighbors import leiden_labels

        def graph(xy):
            a = ad.AnnData(np.zeros((len(xy), 0), dtype=np.float32))
            a.obsm["spatial"] = xy
            build_graph(a, GraphConfig())
            return a.obsp["spatial_connectivities"]

        def cluster(emb):
            return leiden_labels(emb, 1.0, 0)
    t_import = time.perf_counter()
    data = np.load(arrays)
    n_sec = len([k for k in data.files if k.startswith("emb")])
    edges = sum(graph(data[f"xy{i}"]).nnz for i in range(n_sec))
    t_graph = time.perf_counter()
    clusters = [int(cluster(data[f"emb{i}"]).max() + 1) for i in range(n_sec)]
    t_end = time.perf_counter()
    return {"import_s": t_import - t0, "graph_s": t_graph - t_import, "cluster_s": t_end - t_graph,
            "in_process_s": t_end - t0, "edges": int(edges), "clusters": json.dumps(clusters),
            "cells": int(sum(len(data[f"xy{i}"]) for i in range(n_sec))), "fusemap": fusemap.__version__}


def whole_run_floor(n: int, threads: int) -> tuple[float, str]:
    """Seconds of the default training of the same atlas, from below (see the module docstring)."""
    import pandas as pd

    from fusemap.config import TrainConfig

    cases = pd.read_csv(RESULTS / "cases.csv")
    row = cases[(cases["case"] == f"scaling/{n}/ours") & (cases["threads"] == threads)]
    if row.empty:
        raise SystemExit(f"results/cases.csv has no row scaling/{n}/ours at {threads} thread(s); run "
                         f"run.py --only scaling --sizes {n} first")
    per_epoch = float(row["s_per_epoch"].iloc[0])
    epochs = 2 * (TrainConfig().patience + 1)
    return per_epoch * epochs, f"{epochs} epochs x {per_epoch:.2f} s (cases.csv scaling/{n}/ours)"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=100_000)
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--arrays", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, Path(args.arrays))), flush=True)
        return

    sys.path.insert(0, str(HERE))
    from run import WORK, _machine, data_folder

    folder = data_folder(f"sim_{args.cells}")
    arrays = WORK / f"standins_{args.cells}.npz"
    if not arrays.exists():
        _embeddings(folder, arrays)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               NUMBA_NUM_THREADS=str(args.threads))
    rows = []
    for pair in range(args.pairs):
        for variant in (VARIANTS if pair % 2 == 0 else VARIANTS[::-1]):
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, __file__, "--worker", variant, "--arrays", str(arrays)],
                                 env=env, capture_output=True, text=True, check=True)
            wall = time.perf_counter() - t0
            res = json.loads(next(line[7:] for line in out.stdout.splitlines() if line.startswith("RESULT ")))
            rows.append({"variant": variant, "pair": pair, "cells": res["cells"], "process_wall_s": wall, **res,
                         "threads": args.threads, "load_avg": os.getloadavg()[0], "machine": _machine()})
            print(f"[standins] pair {pair} {variant}: {wall:.1f} s (import {res['import_s']:.1f}, graphs "
                  f"{res['graph_s']:.1f}, clusters {res['cluster_s']:.1f})", flush=True)

    import pandas as pd

    df = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    out_csv = RESULTS / "standins.csv"
    old = pd.read_csv(out_csv) if out_csv.exists() else None
    if old is not None:
        old = old[old["cells"] != df["cells"].iloc[0]]
        df = pd.concat([old, df], ignore_index=True)
    df.to_csv(out_csv, index=False)
    these = df[df["cells"] == rows[0]["cells"]]
    mean = these.groupby("variant")["process_wall_s"].mean()
    saved = float(mean["library"] - mean["standin"])
    floor, how = whole_run_floor(args.cells, args.threads)
    print(f"[standins] {args.cells} cells, {args.threads} thread(s), mean of {args.pairs}: stand-ins "
          f"{mean['standin']:.1f} s, libraries {mean['library']:.1f} s; saved {saved:.1f} s = "
          f"{100 * saved / floor:.2f} % of the whole default run (>= {floor:.0f} s: {how}). Written {out_csv}")


if __name__ == "__main__":
    main()
