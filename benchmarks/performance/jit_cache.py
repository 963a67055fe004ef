"""What a fresh process pays for its first kNN graph, with and without numba's on-disk cache of
UMAP's fuzzy-weight kernels (``fusemap.neighbors._cache_umap_kernels``).

    .venv/bin/python benchmarks/performance/jit_cache.py

Every training run builds kNN graphs in the balance step between its two phases, in a new process
each time a user runs ``fusemap integrate``; umap compiles its two kernels there unless they are
cached. Runs ``--reps`` pairs of fresh processes, alternating ``FUSEMAP_NUMBA_CACHE=0`` (umap as
it ships) and ``=1`` (the default), one thread each; each process times its first
``fusemap.neighbors.knn_graph`` on 5,000 cells (the balance step's cluster subset) of a 16-d
embedding, after the package import. The first cached process of a machine compiles and writes
the cache, so it is reported apart. Writes ``results/jit_cache.csv``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import RESULTS, _machine  # noqa: E402

CHILD = """
import json, time
import numpy as np
import fusemap
from fusemap.neighbors import knn_graph
x = np.random.default_rng(0).normal(size=(5000, 16)).astype(np.float32)
t = time.perf_counter(); g = knn_graph(x, 15); first = time.perf_counter() - t
t = time.perf_counter(); knn_graph(x, 15); second = time.perf_counter() - t
print(json.dumps({"first_s": first, "second_s": second, "nnz": int(g.nnz), "weight_sum": float(g.sum())}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=4)
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args()
    import pandas as pd

    rows = []
    for rep in range(a.reps):
        for cache in ("0", "1"):
            env = dict(os.environ, FUSEMAP_NUMBA_CACHE=cache, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
            out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append({"rep": rep, "numba_cache": int(cache), **r, "load_avg": os.getloadavg()[0]})
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows).assign(machine=_machine())
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "jit_cache.csv", index=False)
    later = df[df.rep > 0]
    off, on = later[later.numba_cache == 0].first_s, later[later.numba_cache == 1].first_s
    print(f"first kNN graph of a process (reps after the first): without the cache {off.median():.2f} s, "
          f"with it {on.median():.2f} s ({off.median() / on.median():.1f}x); identical graphs: "
          f"{df.weight_sum.nunique() == 1 and df.nnz.nunique() == 1}")


if __name__ == "__main__":
    main()
