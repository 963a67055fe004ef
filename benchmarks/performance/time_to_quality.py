"""Time to quality: how soon each implementation's embedding is as good as the authors' final one.

    .venv/bin/python benchmarks/performance/time_to_quality.py                  # STARmap mosaic
    .venv/bin/python benchmarks/performance/time_to_quality.py --data starmap_mosaic --every 5

Both implementations run at their default settings on the same sections, one process at a time:

- ours: one run of ``fusemap.FuseMap(...).train()`` per variant (``--variants``: name -> options;
  default one run at the package defaults); a training callback writes the embeddings of
  every cell whenever ``--every`` more seconds have passed (and once before the first epoch and
  once at the end, after the best weights are restored). The time of a snapshot is the wall time
  since the sections started being read (after ``import fusemap``), less the time spent writing
  snapshots.
- the authors' 1.1.3 (``.venv-authors``): its training loop gives no hook, so its curve is one run
  per budget (``--authors-epochs``, epochs per phase, as ``authors_case.py --epochs``) plus its
  default run; each point is the wall time of its whole ``integrate`` call (reading, preprocessing,
  training, writing its embeddings; after its package import).

Every snapshot is scored afterwards, in this process, with the same code (nothing is scored inside
a timed process): 15-NN label transfer from the first section to the others (cell types on the
cell embedding, regions on the spatial embedding) and the scIB iLISI of sections on the cell
embedding (90 neighbours, as scib-metrics' Benchmarker). The target is the authors' default run's
score; each method's time to quality is the first point at which a score reaches it. Writes
``results/time_to_quality_<data>.csv`` (every point), ``..._summary.csv`` (times and ratios) and
``....png`` (quality against wall time), and prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import RESULT_TAG, run_measured  # noqa: E402
from run import AUTHORS_PY, OURS_PY, RESULTS, WORK, _machine, data_folder  # noqa: E402

METRICS = ("knn_cell_type", "knn_region", "ilisi_cell")


# -- ours (runs in its own process: --worker) --------------------------------------------------------
def ours_worker(data: Path, out: Path, every: float, params: dict, name: str) -> None:
    """Train (defaults plus ``params``), writing snapshots; prints the snapshot list as a RESULT line."""
    import anndata as ad

    import fusemap
    from fusemap.inference import embed_section

    t_start = time.perf_counter()  # as the authors' run: the clock starts after the package import
    out.mkdir(parents=True, exist_ok=True)
    secs = [ad.read_h5ad(f) for f in sorted(data.glob("*.h5ad"))]
    model = fusemap.FuseMap(secs, progress=False, **params)
    obs = _obs_arrays(secs, model)
    paused = [0.0]
    points: list[dict] = []

    def elapsed() -> float:
        return time.perf_counter() - t_start - paused[0]

    def snapshot(label: str, epochs: int) -> None:
        t = elapsed()
        p0 = time.perf_counter()
        embs = [embed_section(model.module, i, d, model.device) for i, d in enumerate(model.data)]
        path = out / f"{name}_{len(points):03d}.npz"
        np.savez(path, cell=np.concatenate([e[0] for e in embs]), spatial=np.concatenate([e[1] for e in embs]),
                 **obs)
        points.append({"seconds": t, "epochs": epochs, "point": label, "file": str(path)})
        paused[0] += time.perf_counter() - p0

    next_t = [every]

    def callback(info: dict) -> None:
        if elapsed() >= next_t[0] and not info["done"]:
            snapshot(f"phase {info['phase']} epoch {info['epoch']}", int(info["epochs_done"]))
            next_t[0] = elapsed() + every

    snapshot("before training", 0)
    model.train(callback=callback)
    snapshot("final (best weights)", int(sum(model.train_state.epochs_per_phase)))
    model.history_frame().to_csv(out / f"{name}_history.csv", index=False)  # losses per epoch
    print(RESULT_TAG + json.dumps({"points": points, "epochs_per_phase": list(model.train_state.epochs_per_phase)}),
          flush=True)


def _obs_arrays(secs, model) -> dict:
    names = [d.name for d in model.data]
    out = {"section": np.concatenate([np.full(s.n_obs, n) for s, n in zip(secs, names)]).astype("U")}
    for key in ("cell_type", "region"):
        if all(key in s.obs for s in secs):
            out[key] = np.concatenate([s.obs[key].astype(str).to_numpy() for s in secs]).astype("U")
    return out


# -- runs ---------------------------------------------------------------------------------------------
def _result(cmd: list[str], log: Path) -> dict:
    """``measure.run_measured`` (the benchmark's one way to run a case); its RESULT json and wall time."""
    run = run_measured(cmd, log_path=log)
    if run["returncode"] != 0 or not run["result"]:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {run['returncode']}); see {log}")
    return {**run["result"], "process_wall_s": run["wall_s"]}


def run_ours(data: Path, work: Path, every: float, params: dict, name: str) -> list[dict]:
    res = _result([str(OURS_PY), __file__, "--worker", str(data), "--out", str(work), "--every", str(every),
                   "--params", json.dumps(params), "--name", name], work / f"{name}.log")
    return [{"method": name, "params": json.dumps(params), **p} for p in res["points"]]


def run_authors(data: Path, work: Path, budgets: list[int]) -> list[dict]:
    """The authors' curve; stored in ``work`` and reused by later calls with the same budgets."""
    stored = work / "authors_points.json"
    if stored.exists() and json.loads(stored.read_text())["budgets"] == budgets:
        return json.loads(stored.read_text())["points"]
    if not AUTHORS_PY.exists():
        raise SystemExit(f"{AUTHORS_PY} is missing: run benchmarks/envs/authors.sh first")
    points = []
    for e in budgets + [0]:  # 0: the package's defaults (its own stopping rule)
        path = work / f"authors_{e:03d}.npz"
        res = _result([str(AUTHORS_PY), str(HERE / "authors_case.py"), str(data), "--epochs", str(e),
                       "--save", str(path)], work / f"authors_{e:03d}.log")
        print(f"[ttq] authors, {'default' if e == 0 else f'{e} epochs per phase'}: "
              f"{res['pipeline_s']:.1f} s ({res['process_wall_s']:.1f} s with start-up)", flush=True)
        points.append({"method": "authors", "seconds": res["pipeline_s"], "epochs": res["epochs"],
                       "point": "default" if e == 0 else f"{e} epochs per phase", "file": str(path),
                       "load_avg": os.getloadavg()[0]})
    stored.write_text(json.dumps({"budgets": budgets, "points": points}))
    return points


# -- scores -------------------------------------------------------------------------------------------
def score(file: str) -> dict:
    from scib_metrics import ilisi_knn
    from scib_metrics.nearest_neighbors import NeighborsResults
    from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

    z = np.load(file)
    sec = z["section"]
    first = sec[0]
    ref, query = sec == first, sec != first
    out = {}
    for key, emb in (("cell_type", "cell"), ("region", "spatial")):
        if key in z.files:
            clf = KNeighborsClassifier(n_neighbors=15).fit(z[emb][ref], z[key][ref])
            out[f"knn_{key}"] = float((clf.predict(z[emb][query]) == z[key][query]).mean())
    x = z["cell"]
    dist, idx = NearestNeighbors(n_neighbors=min(90, len(x) - 1)).fit(x).kneighbors(x)
    out["ilisi_cell"] = float(ilisi_knn(NeighborsResults(indices=idx, distances=dist), np.unique(sec, return_inverse=True)[1]))
    return out


def time_to_reach(points, metric: str, target: float) -> float:
    """Wall seconds of the first point (in time order) whose score reaches ``target``; NaN if none."""
    for p in sorted(points, key=lambda p: p["seconds"]):
        if p[metric] >= target - 1e-12:
            return p["seconds"]
    return float("nan")


def report(df, data_name: str) -> list[dict]:
    """Per variant of ours and per metric: seconds each needs to reach the authors' final score."""
    import pandas as pd

    auth = df[df.method == "authors"].to_dict("records")
    target = df[(df.method == "authors") & (df.point == "default")].iloc[0]
    metrics = tuple(m for m in METRICS if m in df and pd.notna(target[m]))  # a case without regions has two
    rows = []
    for name in [m for m in dict.fromkeys(df.method) if m != "authors"]:
        d = df[df.method == name]
        ours = d.to_dict("records")
        final = d.sort_values("seconds").iloc[-1]
        for m in metrics + ("all",):
            ms = metrics if m == "all" else (m,)
            to = max(time_to_reach(ours, k, target[k]) for k in ms)
            ta = max(time_to_reach(auth, k, target[k]) for k in ms)
            rows.append({"data": data_name, "ours": name, "params": final.get("params", "{}"), "metric": m,
                         "authors_final": target[m] if m in target else float("nan"),
                         "ours_final": final[m] if m in final else float("nan"),
                         "ours_final_s": final.seconds, "ours_s": to, "authors_s": ta,
                         "ratio": ta / to if to > 0 else float("nan")})
    return rows


def plot(df, path: Path, data_name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = df[(df.method == "authors") & (df.point == "default")].iloc[0]
    metrics = [m for m in METRICS if m in df and df[m].notna().any()]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    axes = axes[0]
    for ax, m in zip(axes, metrics):
        for meth in dict.fromkeys(df.method):
            d = df[df.method == meth].sort_values("seconds")
            label = "FuseMap 1.1.3 (authors)" if meth == "authors" else f"FuseMap (ours): {meth}"
            ax.plot(d.seconds, d[m], "--s" if meth == "authors" else "-o", ms=3, label=label)
        ax.axhline(target[m], color="grey", lw=0.8, ls=":")
        ax.set_xlabel("wall seconds")
        ax.set_title(m.replace("_", " "))
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{data_name}: quality against wall time (dotted: the authors' final score)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="starmap_mosaic", help="a data set known to run.py's data_folder")
    p.add_argument("--every", type=float, default=5.0, help="seconds between snapshots of our training")
    p.add_argument("--authors-epochs", default="1,2,4,8", help="budgets (epochs per phase) of the authors' curve")
    p.add_argument("--variants", default='{"ours": {}}',
                   help="JSON: name -> fusemap options of each run of ours (default: one run at defaults)")
    p.add_argument("--worker", default="", help=argparse.SUPPRESS)
    p.add_argument("--out", default="", help=argparse.SUPPRESS)
    p.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    p.add_argument("--name", default="ours", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        ours_worker(Path(a.worker), Path(a.out), a.every, json.loads(a.params), a.name)
        return
    import pandas as pd

    variants = json.loads(a.variants)
    if "authors" in variants:
        raise SystemExit("--variants: 'authors' names the comparator; give our runs other names")
    data = data_folder(a.data)
    work = WORK / "time_to_quality" / a.data
    work.mkdir(parents=True, exist_ok=True)
    points = run_authors(data, work, [int(e) for e in a.authors_epochs.split(",") if e])
    for name, params in variants.items():
        ours = run_ours(data, work, a.every, params, name)
        load = os.getloadavg()[0]
        points += [{**pt, "load_avg": load} for pt in ours]
    df = pd.DataFrame([{**pt, **score(pt["file"])} for pt in points]).drop(columns="file")
    df.insert(0, "data", a.data)
    df["machine"] = _machine()
    RESULTS.mkdir(parents=True, exist_ok=True)
    df.to_csv(RESULTS / f"time_to_quality_{a.data}.csv", index=False)
    summary = pd.DataFrame(report(df, a.data))
    summary["machine"] = _machine()
    summary.to_csv(RESULTS / f"time_to_quality_{a.data}_summary.csv", index=False)
    plot(df, RESULTS / f"time_to_quality_{a.data}.png", a.data)
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_colwidth", 40):
        print(df.drop(columns=["machine", "params"]).round(3).to_string(index=False))
        print(summary.drop(columns=["machine"]).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
