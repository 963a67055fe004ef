"""Performance benchmark: this project's FuseMap against the authors' FuseMap 1.1.3, and a scaling
curve from about ten thousand to one million cells.

    make bench-perf                                   # everything (hours on a 2-core CPU)
    .venv/bin/python benchmarks/performance/run.py --only compare
    .venv/bin/python benchmarks/performance/run.py --only scaling --sizes 10000 100000

Every case runs in its own process under ``measure.run_measured`` (wall time, CPU time, peak PSS
and RSS of the whole process tree) and is stored in ``results/cases/<case>.json``; a stored case is reused
unless ``--force`` (so an interrupted run continues). The report (``results/RESULTS.md``,
``results/*.csv``, ``results/*.png``) is rebuilt from the stored cases at the end of every run.

Cases (same data, same epoch budget for both implementations):
- compare/<data>/<method>: fixed budget of E epochs per phase, no early stopping; throughput is
  cells x epochs / seconds spent in training epochs (training + validation passes).
- converge/starmap_mosaic/<method>: each implementation's default stopping rule.
- scaling/<n>/ours (and authors for the small sizes): simulated, 8 sections, 500-gene panels
  (200 shared) out of 1,000 genes, ``fusemap.datasets.simulate``; fixed budget per phase.
- atlas/<n>/<variant>: ours at its defaults, trained to its stopping rule, on real Xenium tissue
  tiled into 8 sections with their own capture, detection and panels (``fusemap.datasets.tiled_atlas``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from measure import run_measured  # noqa: E402

WORK = HERE / ".work"
RESULTS = HERE / "results"
OURS_PY = ROOT / ".venv" / "bin" / "python"
AUTHORS_PY = ROOT / ".venv-authors" / "bin" / "python"

SIM = dict(n_sections=8, n_genes=1000, panel_size=500, n_shared=200, seed=0)
COMPARE_EPOCHS = {"starmap_mosaic": 15}
"""Fixed-budget comparison cases (the simulated 10k/30k comparison at 500-gene panels is in the
scaling curve, where the authors' code runs at the same budget)."""
SCALING_SIZES = [10_000, 30_000, 100_000, 300_000, 1_000_000]
SCALING_EPOCHS = 1
"""Epochs per phase in the scaling curve: the smallest budget that runs both phases (and the
balance weights between them); time per epoch and peak memory are what the curve compares."""
AUTHORS_SCALING_MAX = 100_000
"""Largest scaling size run with the authors' code (~6 min at 100k cells on one quiet core; its
memory grows ~15 KB per cell, so 1M would need ~16 GB and hours)."""
ATLAS = dict(n_sections=8, source="xenium", seed=0)
ATLAS_SIZES = [10_000, 100_000, 1_000_000]
"""Time to a trained atlas: ours at its defaults (stopping rule included) on ``tiled_atlas`` data:
real Xenium tissue tiled into 8 sections with their own capture rates, gene detection and panels."""
OURS_RANDOM_SCALING_MAX = 100_000
"""Largest size run with independent random seeds (patch_size=None): every seed brings its own
two-hop neighbourhood (~19 cells), so an epoch encodes ~19x the cells; ~hours at 1M on 1 core."""


# -- data ---------------------------------------------------------------------------------------
def _write_sections(secs, folder: Path) -> None:
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(secs):
        a = a.copy() if a.is_view else a
        a.uns = {}
        a.write_h5ad(tmp / f"section_{i:02d}.h5ad")
    os.replace(tmp, folder)


def data_folder(name: str) -> Path:
    """Folder of .h5ad sections for a data set, written once into .work/data."""
    folder = WORK / "data" / name
    if folder.exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    from fusemap import datasets

    if name == "starmap_mosaic":
        masked, _ = datasets.starmap_mosaic(n_shared=40, n_per_section=100, seed=0)
        _write_sections(masked, folder)
    elif name == "xenium_capture":  # one Xenium tissue in three pseudo-sections thinned to 90/50/30 %
        _write_sections(datasets.xenium_capture(), folder)
    elif name.startswith("atlas_"):  # real Xenium tissue tiled into 8 sections of different technologies
        n = int(name.split("_")[1])
        print(f"[bench-perf] tiling {n} cells of real Xenium tissue into {ATLAS['n_sections']} sections", flush=True)
        _write_sections(datasets.tiled_atlas(n_cells=n, **ATLAS), folder)
    elif name.startswith("sim_"):
        n = int(name.split("_")[1])
        print(f"[bench-perf] simulating {n} cells (8 sections, 500-gene panels)", flush=True)
        _write_sections(datasets.simulate(n_cells=n // SIM["n_sections"], **SIM), folder)
    else:
        raise ValueError(name)
    return folder


# -- cases ----------------------------------------------------------------------------------------
def case_path(case: str) -> Path:
    return RESULTS / "cases" / (case.replace("/", "__") + ".json")


def run_case(case: str, method: str, data: str, *, epochs: int | None, params: dict | None = None,
             force: bool = False, threads: int = 0, timeout: float | None = None) -> dict | None:
    path = case_path(case)
    if path.exists() and not force:
        return json.loads(path.read_text())
    folder = data_folder(data)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
                   NUMBA_NUM_THREADS=str(threads))
    if method == "authors":
        if not AUTHORS_PY.exists():
            print(f"[bench-perf] {case}: skipped, {AUTHORS_PY} missing (run benchmarks/envs/authors.sh)")
            return None
        cmd = [str(AUTHORS_PY), str(HERE / "authors_case.py"), str(folder)]
        if epochs:
            cmd += ["--epochs", str(epochs)]
        env.pop("PYTHONPATH", None)
    else:
        p = dict(params or {})
        if epochs:
            p.update(max_epochs=epochs, patience=epochs + 1)  # fixed budget: no early stopping
        cmd = [str(OURS_PY), str(HERE / "ours_case.py"), str(folder), "--params", json.dumps(p)]
    if threads:
        cmd += ["--threads", str(threads)]
    print(f"[bench-perf] running {case} ...", flush=True)
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    m = run_measured(cmd, env=env, timeout=timeout, log_path=WORK / "logs" / (case.replace("/", "__") + ".log"))
    rec = {"case": case, "method": method, "data": data, "epoch_budget": epochs, **m,
           "load_avg_after": os.getloadavg()[0], "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
           "machine": _machine()}
    if m["returncode"] != 0 or not m["result"]:
        print(f"[bench-perf] {case} FAILED (exit {m['returncode']}); see {WORK / 'logs'}", flush=True)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec, indent=1))
    r = m["result"]
    print(f"[bench-perf] {case}: {r['n_cells']} cells, {r['epochs']} epochs, train {r['train_s']:.1f} s, "
          f"{r['cells_per_s']:.0f} cells/s, peak {m['peak_rss_mb']:.0f} MB RSS, wall {m['wall_s']:.1f} s", flush=True)
    return rec


def compare(force: bool, threads: int) -> None:
    kw = dict(force=force, threads=threads)
    for data, e in COMPARE_EPOCHS.items():
        run_case(f"compare/{data}/ours", "ours", data, epochs=e, **kw)
        run_case(f"compare/{data}/ours_fp32", "ours", data, epochs=e, params={"precision": "float32"}, **kw)
        run_case(f"compare/{data}/ours_batch64", "ours", data, epochs=e, params={"batch_size": 64}, **kw)
        run_case(f"compare/{data}/ours_patch64", "ours", data, epochs=e, params={"patch_size": 64}, **kw)
        run_case(f"compare/{data}/authors", "authors", data, epochs=e, **kw)
        if (os.cpu_count() or 1) > 1:  # both with every core (torch's default): how users run them
            every = dict(kw, threads=os.cpu_count())
            run_case(f"compare/{data}/ours_allcores", "ours", data, epochs=e, **every)
            run_case(f"compare/{data}/authors_allcores", "authors", data, epochs=e, **every)


def converge(force: bool, threads: int) -> None:
    kw = dict(force=force, threads=threads)
    run_case("converge/starmap_mosaic/ours", "ours", "starmap_mosaic", epochs=None, **kw)
    run_case("converge/starmap_mosaic/authors", "authors", "starmap_mosaic", epochs=None, **kw)


def scaling(sizes, force: bool, threads: int, authors: bool = True, series: str = "all") -> None:
    """Scaling curve, cheapest informative runs first: ours with seed patches at every size (the
    only variant that reaches a million cells here in reasonable time), then ours with independent
    random seeds and the authors' code at the sizes where they finish."""
    kw = dict(epochs=SCALING_EPOCHS, force=force, threads=threads)
    if series in ("all", "patch"):
        for n in sizes:
            run_case(f"scaling/{n}/ours_patch64", "ours", f"sim_{n}", params={"patch_size": 64}, **kw)
    if series in ("all", "rest"):
        for n in sizes:
            if n <= OURS_RANDOM_SCALING_MAX:
                run_case(f"scaling/{n}/ours", "ours", f"sim_{n}", **kw)
            if authors and n <= AUTHORS_SCALING_MAX:
                run_case(f"scaling/{n}/authors", "authors", f"sim_{n}", **kw)


def atlas(sizes, force: bool, threads: int, variants: dict[str, dict]) -> None:
    """Ours trained to its stopping rule on tiled real atlases, smallest first (the cost of the
    whole run and its quality at each size, against the same at 10k cells)."""
    for n in sizes:
        for name, params in variants.items():
            run_case(f"atlas/{n}/{name}", "ours", f"atlas_{n}", epochs=None, params=params, force=force,
                     threads=threads)


# -- report ---------------------------------------------------------------------------------------
def load_cases() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((RESULTS / "cases").glob("*.json"))]


def _row(rec: dict) -> dict:
    r = rec["result"]
    return {
        "case": rec["case"], "method": rec["case"].split("/")[-1], "data": rec["data"], "n_cells": r["n_cells"],
        "epochs": r["epochs"], "epochs_per_phase": "+".join(map(str, r["epochs_per_phase"])),
        "train_s": round(r["train_s"], 1), "s_per_epoch": round(r["epoch_s_sum"] / max(r["epochs"], 1), 2),
        # training time outside the epochs: balance weights between the phases, section shifts and
        # embeddings at the end (what does not shrink with a smaller epoch budget)
        "between_epochs_s": round(r["train_s"] - r["epoch_s_sum"], 1),
        "cells_per_s": round(r["cells_per_s"], 1),
        # seed cells actually trained per epoch second (cases stored before it was recorded: blank);
        # below cells_per_s where max_epoch_steps caps an epoch (100k and 1M atlases)
        "seed_cells_per_s": round(r["seed_cells_per_s"], 1) if r.get("seed_cells_per_s") else None,
        # throughput per CPU second of training: robust to other work on a shared machine (one thread
        # per run); ours includes the balance-weight clustering between phases, theirs does not
        "cells_per_cpu_s": round(r["n_cells"] * r["epochs"] / max(r.get("train_cpu_s") or float("nan"), 1e-9), 1),
        # the integration itself (ours: reading to embeddings; theirs: their integrate() call), without
        # process start-up and the harness' quality check
        "pipeline_s": round(r.get("pipeline_s") or float("nan"), 1),
        "wall_s": round(rec["wall_s"], 1), "cpu_s": round(rec["cpu_s"], 1),
        # peak RSS of the process tree (cases stored before RSS was recorded have PSS only)
        "peak_mb": round(rec.get("peak_rss_mb", rec["peak_pss_mb"])), "peak_pss_mb": round(rec["peak_pss_mb"]),
        "knn_cell_type": r.get("knn_cell_type"), "knn_region": r.get("knn_region"),
        "knn_mixing": r.get("knn_mixing"),
        "encoder_arithmetic": r.get("encoder_arithmetic"), "threads": r.get("torch_threads"), "load_avg": round(rec.get("load_avg_after", float("nan")), 1),
        "machine": rec.get("machine", "?"),
    }


def report() -> None:
    import numpy as np
    import pandas as pd

    cases = load_cases()
    if not cases:
        print("[bench-perf] no stored cases yet")
        return
    df = pd.DataFrame([_row(c) for c in cases])
    df.to_csv(RESULTS / "cases.csv", index=False)
    machines = list(dict.fromkeys(df.machine))
    tags = {m: chr(ord("A") + i) for i, m in enumerate(machines)}
    df["machine"] = df.machine.map(tags)
    lines = ["# Performance benchmark", "",
             "Written by `benchmarks/performance/run.py` (`make bench-perf`) from the stored cases in `cases/`. "
             "Machines (column `machine`): " + "; ".join(f"**{t}** = {m}" for m, t in tags.items()) + ". "
             "Ratios are only formed between cases of one machine. "
             f"Load average at the end of the runs: {df.load_avg.min():.1f} to {df.load_avg.max():.1f}: where it "
             "exceeds the number of cores, wall times are stretched by other work; the CPU-time columns (`cpu_s`, "
             "`cells_per_cpu_s`, one thread per run) are then the comparable figures.",
             ""]
    comp = df[df.case.str.startswith("compare/") | df.case.str.startswith("converge/")]
    if len(comp):
        lines += ["## This project vs the authors' FuseMap 1.1.3 (same data, same epoch budget)", ""]
        cols = ["case", "n_cells", "epochs_per_phase", "s_per_epoch", "cells_per_s", "cells_per_cpu_s", "train_s",
                "pipeline_s", "wall_s", "cpu_s", "peak_mb", "peak_pss_mb", "knn_cell_type", "knn_region", "load_avg", "machine"]
        lines += [_md(comp[cols]), ""]
        for data in sorted(set(comp[comp.case.str.startswith("compare/")].data)):
            d = comp[comp.case.str.startswith(f"compare/{data}/")].set_index("method", drop=False)
            ours = d[d.case.str.endswith("/ours")]
            auth = d[d.case.str.endswith("/authors")]
            if len(ours) and len(auth) and ours.iloc[0].machine != auth.iloc[0].machine:
                lines.append(f"- **{data}**: ours and the authors' cases were run on different machines; rerun with "
                             "`--only compare --force` for ratios")
            elif len(ours) and len(auth):
                o, a = ours.iloc[0], auth.iloc[0]
                arith = o.get("encoder_arithmetic") or "?"
                lines.append(f"- **{data}** (ours' encoders in {arith}): throughput ratio ours/authors = "
                             f"**{o.cells_per_s / a.cells_per_s:.1f}x** "
                             f"per wall second, **{o.cells_per_cpu_s / a.cells_per_cpu_s:.1f}x** per CPU second "
                             f"(target >= 5); peak memory ratio = **{o.peak_pss_mb / a.peak_pss_mb:.2f}** by PSS (pages shared "
                             f"by the authors' forked data-loader workers counted once; target <= 0.5), "
                             f"{o.peak_mb / a.peak_mb:.2f} by RSS summed over processes; "
                             f"whole run {a.wall_s / o.wall_s:.1f}x less wall time, {a.cpu_s / o.cpu_s:.1f}x less CPU time.")
                f32 = d[d.case.str.endswith("/ours_fp32")]
                if len(f32):
                    lines.append(f"  - with float32 encoders (`precision='float32'`; the default 'auto' uses bfloat16 "
                                 f"on CPUs with native bfloat16): {f32.iloc[0].cells_per_s / a.cells_per_s:.1f}x "
                                 f"(CPU: {f32.iloc[0].cells_per_cpu_s / a.cells_per_cpu_s:.1f}x)")
                b64 = d[d.case.str.endswith("/ours_batch64")]
                if len(b64):
                    lines.append(f"  - at the authors' batch size (64): {b64.iloc[0].cells_per_s / a.cells_per_s:.1f}x "
                                 f"(CPU: {b64.iloc[0].cells_per_cpu_s / a.cells_per_cpu_s:.1f}x)")
                oa, aa = d[d.case.str.endswith("/ours_allcores")], d[d.case.str.endswith("/authors_allcores")]
                if len(oa) and len(aa):
                    lines.append(f"  - both with all {int(oa.iloc[0].threads or 0)} cores: "
                                 f"{oa.iloc[0].cells_per_s / aa.iloc[0].cells_per_s:.1f}x per wall second; peak memory "
                                 f"ratio {oa.iloc[0].peak_pss_mb / aa.iloc[0].peak_pss_mb:.2f} (PSS)")
                p64 = d[d.case.str.endswith("/ours_patch64")]
                if len(p64):
                    lines.append(f"  - with seeds in spatial patches of 64 (`patch_size=64`): "
                                 f"{p64.iloc[0].cells_per_s / a.cells_per_s:.1f}x (CPU: "
                                 f"{p64.iloc[0].cells_per_cpu_s / a.cells_per_cpu_s:.1f}x)")
        lines.append("")
    sc = df[df.case.str.startswith("scaling/")].sort_values("n_cells")
    if len(sc):
        lines += ["## Scaling (simulated: 8 sections, 500-gene panels)", ""]
        cols = ["case", "n_cells", "epochs_per_phase", "s_per_epoch", "cells_per_s", "cells_per_cpu_s", "train_s",
                "pipeline_s", "wall_s", "cpu_s", "peak_mb", "peak_pss_mb", "knn_cell_type", "knn_region", "load_avg", "machine"]
        lines += [_md(sc[cols]), ""]
        for series in sorted(set(sc.method)):
            o = sc[sc.method == series]
            if len(o) < 2:
                continue
            x = np.log(o.n_cells.to_numpy(float))
            slopes = []
            o = o.assign(cpu_s_per_epoch=o.n_cells / o.cells_per_cpu_s)  # load-independent
            for col, what in (("s_per_epoch", "time per epoch"), ("cpu_s_per_epoch", "CPU time per epoch"),
                              ("peak_mb", "peak memory"), ("pipeline_s", "integration"), ("wall_s", "whole run"),
                              ("cpu_s", "CPU time of the whole run")):
                slopes.append(f"{what} {np.polyfit(x, np.log(o[col].to_numpy(float)), 1)[0]:.2f}")
            big = o.iloc[-1]
            mixed = " (cases from several machines: slopes are indicative only)" if o.machine.nunique() > 1 else ""
            lines.append(f"- **{series}**{mixed}: log-log slopes vs cells (1 = linear): " + ", ".join(slopes)
                         + f"; largest run {int(big.n_cells):,} cells: integration {big.pipeline_s / 60:.1f} min, "
                         f"whole run wall {big.wall_s / 60:.1f} min, CPU "
                         f"{big.cpu_s / 60:.1f} min, peak {big.peak_mb / 1024:.2f} GB")
        lines.append("")
        _plots(sc)
    at = df[df.case.str.startswith("atlas/")].sort_values(["method", "n_cells"])
    if len(at):
        lines += ["## Time to a trained atlas (real Xenium tissue tiled into 8 sections; stopping rule)", "",
                  "Ours at its defaults on `fusemap.datasets.tiled_atlas` (8 sections, capture 1.0 to 0.3, "
                  "per-gene detection, 174-gene panels of 248): trained until its stopping rule ends both "
                  "phases, or for the epochs a variant names (`budget_2x2`: 2 epochs per phase). An epoch "
                  "is at most 16 steps (`max_epoch_steps`). Quality: 15-NN cell-type transfer from the "
                  "first section to the others, and "
                  "section mixing (share of each cell's 15 nearest neighbours from other sections, over "
                  "the share a perfect mix gives).", ""]
        cols = ["case", "n_cells", "epochs_per_phase", "s_per_epoch", "between_epochs_s", "train_s", "pipeline_s",
                "wall_s", "cpu_s", "peak_mb", "knn_cell_type", "knn_mixing", "threads", "load_avg", "machine"]
        lines += [_md(at[cols]), ""]
        for series in sorted(set(at.method)):
            o = at[at.method == series]
            if len(o) >= 2:
                x = np.log(o.n_cells.to_numpy(float))
                lines.append(f"- **{series}**: log-log slope of the whole run's wall time vs cells "
                             f"{np.polyfit(x, np.log(o.wall_s.to_numpy(float)), 1)[0]:.2f}, of its CPU time "
                             f"{np.polyfit(x, np.log(o.cpu_s.to_numpy(float)), 1)[0]:.2f}")
        lines.append("")
    (RESULTS / "RESULTS.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _md(df) -> str:
    cols = list(df.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        out.append("| " + " | ".join("" if v is None or (isinstance(v, float) and v != v) else
                                     (f"{v:.3f}" if isinstance(v, float) and v < 1 else str(v)) for v in r) + " |")
    return "\n".join(out)


def _plots(sc) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for method, g in sc.groupby("method"):
        g = g.sort_values("n_cells")
        axes[0].loglog(g.n_cells, g.s_per_epoch, "o-", label=method)
        axes[1].loglog(g.n_cells, g.peak_mb / 1024, "o-", label=method)
        axes[2].semilogx(g.n_cells, g.cells_per_s, "o-", label=method)
    o = sc[sc.method == ("ours_patch64" if (sc.method == "ours_patch64").any() else "ours")].sort_values("n_cells")
    if len(o):
        n0, t0, m0 = o.n_cells.iloc[0], o.s_per_epoch.iloc[0], o.peak_mb.iloc[0] / 1024
        xs = [n0, sc.n_cells.max()]
        axes[0].loglog(xs, [t0, t0 * xs[1] / n0], "k:", label="linear")
        axes[1].loglog(xs, [m0, m0 * xs[1] / n0], "k:", label="linear")
    axes[0].set(xlabel="cells", ylabel="seconds per epoch", title="training time per epoch")
    axes[1].set(xlabel="cells", ylabel="peak memory (GB, RSS)", title="peak memory of the whole run")
    axes[2].set(xlabel="cells", ylabel="cells / s", title="training throughput")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "scaling.png", dpi=120)
    plt.close(fig)


def _machine() -> str:
    try:
        import torch

        dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except Exception:  # noqa: BLE001
        dev = "?"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu, flags = "CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "CPU":
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    bf16 = "with" if flags & {"avx512_bf16", "amx_bf16"} else "without"
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return (f"{os.cpu_count()} cores of {cpu} ({simd}, {bf16} native bfloat16), {mem:.0f} GB RAM, {dev}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=["compare", "converge", "scaling", "atlas", "report"])
    p.add_argument("--atlas-sizes", type=int, nargs="+", default=ATLAS_SIZES)
    p.add_argument("--atlas-params", default='{"default": {}}',
                   help='JSON {name: fusemap options} of the atlas runs (default: {"default": {}})')
    p.add_argument("--sizes", type=int, nargs="+", default=SCALING_SIZES)
    p.add_argument("--no-authors-scaling", action="store_true")
    p.add_argument("--series", choices=["all", "patch", "rest"], default="all",
                   help="scaling series to run: patch (ours_patch64), rest (ours random seeds, authors)")
    p.add_argument("--force", action="store_true", help="re-run stored cases")
    p.add_argument("--threads", type=int, default=1,
                   help="threads per run (default 1: on a shared machine, multi-threaded kernels spin-wait "
                        "for descheduled threads, which distorts both wall and CPU time; 0 = torch's default)")
    a = p.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if a.only in (None, "compare"):
        compare(a.force, a.threads)
    if a.only in (None, "converge"):
        converge(a.force, a.threads)
    if a.only in (None, "scaling"):
        scaling(a.sizes, a.force, a.threads, authors=not a.no_authors_scaling, series=a.series)
    if a.only in (None, "atlas"):
        atlas(a.atlas_sizes, a.force, a.threads, json.loads(a.atlas_params))
    report()


if __name__ == "__main__":
    main()
