"""Training beside other work: seconds per epoch on a quiet machine and beside busy processes.

    .venv/bin/python benchmarks/performance/contention.py              # STARmap mosaic, 0 / 1x / 2x load
    .venv/bin/python benchmarks/performance/contention.py --epochs 3 --loads 0 2

Each run is its own process training the STARmap mosaic (one phase, ``--epochs`` epochs, torch's
default thread count = all cores, as users run it) while the benchmark keeps ``load`` busy
processes running (pure Python loops, killed when the run ends and bounded by a deadline of their
own). Two variants of OpenMP's waiting:

- ``passive`` (fusemap's default): fusemap is imported first and sets ``OMP_WAIT_POLICY=PASSIVE``;
- ``spin``: torch is imported before fusemap, so libgomp keeps its default (spin, then sleep), as
  every version before this one did.

Figures: median seconds of the epochs after the first; ratio = beside the load / quiet, same
variant. Issue 17's target: at most 2x at a load of twice the core count (counting ours: the busy
processes plus our threads). Writes ``results/contention.csv``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
VARIANTS = ("passive", "spin")


def worker(variant: str, data: Path, epochs: int) -> dict:
    import importlib

    if variant == "spin":
        importlib.import_module("torch")  # before fusemap: libgomp keeps its spinning default
    import anndata as ad

    import fusemap
    import torch

    secs = [ad.read_h5ad(f) for f in sorted(data.glob("*.h5ad"))]
    model = fusemap.FuseMap(secs, max_epochs=epochs, balance=False, progress=False, seed=0)
    model.train()
    per_epoch = model.history_frame()["seconds"].tolist()
    return {"epoch_s": per_epoch, "threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}


def _busy(n: int, seconds: float) -> list[subprocess.Popen]:
    code = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--loads", type=int, nargs="+", default=None,
                   help="busy processes beside each run (default: 0, the core count, twice the core count)")
    p.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, Path(args.data), args.epochs)), flush=True)
        return

    sys.path.insert(0, str(HERE))
    from run import _machine, data_folder

    import numpy as np
    import pandas as pd

    cores = len(os.sched_getaffinity(0))
    loads = args.loads if args.loads is not None else [0, cores, 2 * cores]
    data = data_folder("starmap_mosaic")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    rows = []
    for load in loads:
        for variant in VARIANTS:
            hogs = _busy(load, 900)
            try:
                t0 = time.perf_counter()
                out = subprocess.run([sys.executable, __file__, "--worker", variant, "--data", str(data),
                                      "--epochs", str(args.epochs)], env=env, capture_output=True, text=True,
                                     check=True)
                wall = time.perf_counter() - t0
                load_avg = os.getloadavg()[0]
            finally:
                for h in hogs:
                    h.kill()
                    h.wait()
            res = json.loads(next(line[7:] for line in out.stdout.splitlines() if line.startswith("RESULT ")))
            med = float(np.median(res["epoch_s"][1:]))
            rows.append({"variant": variant, "busy_processes": load, "cores": cores, "threads": res["threads"],
                         "omp_wait_policy": res["omp_wait_policy"], "epochs": args.epochs,
                         "median_epoch_s": med, "epoch_s": json.dumps([round(x, 3) for x in res["epoch_s"]]),
                         "process_wall_s": wall, "load_avg_1min": load_avg, "machine": _machine()})
            print(f"[contention] {load} busy, {variant}: {med:.2f} s per epoch", flush=True)
    df = pd.DataFrame(rows)
    quiet = df[df["busy_processes"] == 0].set_index("variant")["median_epoch_s"]
    df["vs_quiet"] = [r.median_epoch_s / quiet.get(r.variant, np.nan) for r in df.itertuples()]
    RESULTS.mkdir(exist_ok=True)
    df.to_csv(RESULTS / "contention.csv", index=False)
    print(df[["variant", "busy_processes", "threads", "median_epoch_s", "vs_quiet"]].to_string(index=False))
    print(f"[contention] written {RESULTS / 'contention.csv'}")


if __name__ == "__main__":
    main()
