"""Score every run of every case and write ``benchmarks/results``: a long CSV of every figure
(``scores.csv``), its mean / spread over seeds (``summary.csv``), run times and memory
(``runs.csv``), a Markdown table (``RESULTS.md``) and PNG plots (scIB bars, UMAPs)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from . import scoring
from .methods import Method
from .runner import RunResult

BASELINE = "PCA of shared genes (no integration)"
NATIVE, DERIVED = "native", "neighbour mean of cell embedding"
# methods without a spatial embedding that get the neighbour-mean one (scoring every method's
# would double the scIB time; these two are the simple baselines a spatial method must beat)
DERIVED_FOR = (BASELINE, "Harmony")
TOTALS = ["Total", "Batch correction", "Bio conservation"]
CASE_ORDER = ["starmap_mosaic", "starmap_osmfish", "starmap_mosaic_max300", "starmap_osmfish_max300"]


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def _write_text(text: str, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def collect(case: scoring.Case, runs: list[RunResult]) -> tuple[dict, dict]:
    """Method outputs of one case (plus the unintegrated baseline) and the embeddings to score."""
    cell_embs: dict[str, np.ndarray] = {}
    spatial_embs: dict[str, np.ndarray] = {}
    keyinfo: dict[str, tuple[str, int, str]] = {}
    outputs = {}
    for r in runs:
        if r.status != "ok":
            continue
        try:
            outputs[(r.method, r.seed)] = scoring.load_outputs(r.out_dir, case)
        except Exception as e:  # a broken output is reported, not fatal for the others
            r.status, r.error = "failed", f"unreadable output: {e}"
    # the unintegrated baseline is scored like a method
    outputs[(BASELINE, 0)] = {"cell": case.pca, "spatial": None, "imputed": {}, "pred": {}, "meta": {}}
    for (m, seed), o in outputs.items():
        k = f"{m}|{seed}"
        cell_embs[k] = o["cell"]
        keyinfo[k] = (m, seed, NATIVE)
        ks = f"{m}|{seed}|spatial"
        if o["spatial"] is not None:
            spatial_embs[ks] = o["spatial"]
            keyinfo[ks] = (m, seed, NATIVE)
        elif m in DERIVED_FOR:
            spatial_embs[ks] = np.asarray(case.adjacency @ o["cell"])
            keyinfo[ks] = (m, seed, DERIVED)
    return outputs, {"cell": cell_embs, "spatial": spatial_embs, "keyinfo": keyinfo}


def score_case(case: scoring.Case, runs: list[RunResult], methods: dict[str, Method],
               kbet: bool = True, scib_cache: Path | None = None) -> tuple[list[dict], dict]:
    """All figures of one case as long records, plus the embeddings kept for the UMAPs."""
    recs: list[dict] = []
    outputs, embs = collect(case, runs)
    cell_embs, spatial_embs, keyinfo = embs["cell"], embs["spatial"], embs["keyinfo"]

    def add(m, seed, task, target, emb, metric, value):
        recs.append(dict(case=case.name, method=m, seed=seed, task=task, target=target, embedding=emb,
                         metric=metric, value=float(value)))

    for kind, kind_embs, label in (("cell embedding", cell_embs, case.info["labels"]["cell"]),
                                   ("spatial embedding", spatial_embs, case.info["labels"]["spatial"])):
        print(f"[bench] scIB on {case.name}: {kind} x {label} ({len(kind_embs)} embeddings)")
        res = scoring.scib_scores(case, kind_embs, label, kbet=kbet, cache_dir=scib_cache)
        for k, row in res.iterrows():
            m, seed, how = keyinfo[k]
            for metric, v in row.items():
                add(m, seed, f"scIB {kind}", label, how, metric, v)
    truth = scoring.imputation_truth(case)
    if truth:
        for (m, seed), o in outputs.items():
            for metric, v in scoring.imputation_scores(truth, scoring.knn_impute(case, o["cell"])).items():
                add(m, seed, "imputation", "masked genes", "kNN on cell embedding", metric, v)
            if o["imputed"]:
                for metric, v in scoring.imputation_scores(truth, o["imputed"]).items():
                    add(m, seed, "imputation", "masked genes", NATIVE, metric, v)
    for (m, seed), o in outputs.items():
        pairs = [(case.info["labels"]["cell"], o["cell"], "kNN on cell embedding")]
        if f"{m}|{seed}|spatial" in spatial_embs:
            pairs.append((case.info["labels"]["spatial"], spatial_embs[f"{m}|{seed}|spatial"],
                          "kNN on spatial embedding" if o["spatial"] is not None else f"kNN on {DERIVED}"))
        for label, emb, how in pairs:
            for metric, v in scoring.transfer_scores(case, emb, label).items():
                add(m, seed, "transfer", label, how, metric, v)
        for label, pred in o["pred"].items():
            for metric, v in scoring.native_transfer_scores(case, pred, label).items():
                add(m, seed, "transfer", label, NATIVE, metric, v)
    return recs, embs


def summarise(scores: pd.DataFrame) -> pd.DataFrame:
    g = scores.groupby(["case", "method", "task", "target", "embedding", "metric"], sort=False)["value"]
    out = g.agg(mean="mean", std="std", n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def _fmt(mean: float, std: float, n: int, digits: int = 3) -> str:
    if not np.isfinite(mean):
        return ""
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def markdown(summary: pd.DataFrame, runs: pd.DataFrame, methods: dict[str, Method], case_infos: dict,
             kbet: bool = True) -> str:
    lines = ["# Benchmark results", "",
             "Generated by `python -m benchmarks.run` (see `benchmarks/README.md`). Mean ± standard deviation over "
             "seeds where a method is stochastic (n = seeds). scIB figures are scib-metrics `Benchmarker` "
             "scores without min-max scaling (0-1, higher is better), batch = section, "
             + ("all default metrics; " if kbet else "default metrics except kBET per label (too slow on this "
                "2-core machine; batch score = mean of BRAS, iLISI, graph connectivity, PCR comparison); ")
             + "the unintegrated "
             "embedding for every method is the PCA of the shared genes. Methods marked *shared genes "
             "only* were given only the genes every section measured. Methods without a spatial "
             "embedding are scored on the cell embedding only, except the two simple baselines (PCA, "
             "Harmony), which get a derived spatial embedding for the region scores: the mean of each "
             "cell's cell embedding over its Delaunay neighbours (marked †).", ""]
    for case, info in case_infos.items():
        s = summary[summary.case == case]
        lines += [f"## {case}", "", info.get("description", ""), "",
                  f"Sections: {', '.join(info['sections'])}; {len(info['shared_genes'])} shared genes; "
                  f"annotation transfer: {', '.join(info['reference'])} → {info['held_out']}.", ""]
        head = ["Method", "Genes", "scIB total, cell emb. (cell type)", "batch", "bio",
                "scIB total, spatial emb. (region)", "batch", "bio"]
        has_imp = (s.task == "imputation").any()
        if has_imp:
            head += ["Imputation R (native)", "Imputation R (kNN on embedding)"]
        head += ["Transfer acc. (cell type)", "macro-F1", "Transfer acc. (region)", "macro-F1",
                 "Wall time (s)", "Peak memory (MB)", "Seeds"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        names = [BASELINE] + [m.name for m in methods.values()]
        for name in names:
            r = runs[(runs.case == case) & (runs.method == name)] if len(runs) else runs
            if name != BASELINE and (len(r) == 0 or (r.status != "ok").all()):
                if len(r):
                    what = "not run" if (r.status == "not run").all() else "could not run here"
                    lines.append(f"| {name} | {methods[name].genes} | {what}: "
                                 f"{str(r.error.iloc[0]).replace('|', '/')} |" + " |" * (len(head) - 3))
                continue
            ms = s[s.method == name]

            def get(task, metric, emb=None, target=None):
                q = ms[(ms.task == task) & (ms.metric == metric)]
                if emb is not None:
                    q = q[q.embedding.isin([emb] if isinstance(emb, str) else emb)]
                if target is not None:
                    q = q[q.target == target]
                if len(q) == 0:
                    return "", ""
                row = q.iloc[0]
                return _fmt(row["mean"], row["std"], int(row["n"])), row["embedding"]

            cl, sl = info["labels"]["cell"], info["labels"]["spatial"]
            cells = [name + (" *(shared genes only)*" if name in methods and methods[name].genes != "all panels"
                             else ""),
                     methods[name].genes if name in methods else "shared genes only"]
            for metric in TOTALS:
                cells.append(get("scIB cell embedding", metric)[0])
            for metric in TOTALS:
                v, emb = get("scIB spatial embedding", metric)
                cells.append(v + (" †" if emb == DERIVED and v else ""))
            if has_imp:
                cells += [get("imputation", "pearson_mean", NATIVE)[0],
                          get("imputation", "pearson_mean", "kNN on cell embedding")[0]]
            for target in (cl, sl):
                nat = get("transfer", "accuracy", NATIVE, target)[0]
                knn_emb = [e for e in ms[(ms.task == "transfer") & (ms.target == target)].embedding.unique()
                           if e != NATIVE]
                acc = get("transfer", "accuracy", knn_emb, target)[0]
                f1 = get("transfer", "macro_f1", knn_emb, target)[0]
                if nat:
                    acc += f" (native {nat})"
                    f1 += f" (native {get('transfer', 'macro_f1', NATIVE, target)[0]})"
                cells += [acc, f1]
            ok = r[r.status == "ok"] if len(r) else r
            if name == BASELINE or len(ok) == 0:
                cells += ["", "", "1"]
            else:
                cells += [_fmt(ok.wall_seconds.mean(), ok.wall_seconds.std(ddof=1) if len(ok) > 1 else 0, len(ok), 0),
                          f"{ok.peak_rss_mb.max():.0f}", str(len(ok))]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["### Methods and settings", ""]
    for m in methods.values():
        settings = ", ".join(f"{k}={v}" for k, v in m.params.items())
        lines.append(f"- **{m.name}** ({m.genes}; {'stochastic, up to ' + str(m.seeds) + ' seed(s)' if m.stochastic else 'one run'}"
                     f"{'; ' + settings if settings else ''}): {m.note}" + _settings_used(runs, m))
    lines += ["", _machine_line(runs)]
    lines += ["", "Imputation: Pearson R between imputed and measured log-normalised values of each "
              "section's masked genes, per (section, gene), averaged. *kNN on embedding*: mean of the "
              f"{scoring.KNN_IMPUTE_K} nearest cells (in that method's cell embedding) among the sections that "
              "measured the gene — the kNN baseline applied to every embedding; the PCA row is kNN "
              "without integration. *native*: the method's own imputation.", "",
              f"Annotation transfer: {scoring.KNN_TRANSFER_K}-nearest-neighbour classifier trained on the "
              "reference sections' embedding (cell embedding for cell types, spatial embedding for "
              "regions), scored on the held-out section's cells whose label exists in the reference. "
              "*native*: the method's own query mapping and classifier.", "",
              "Wall time is the whole worker process (imports and I/O included) on this machine's CPU; "
              "peak memory is its maximum resident set size (children included).", ""]
    return "\n".join(lines)


def _settings_used(runs: pd.DataFrame, m: Method) -> str:
    """What the stored runs of ``m`` were actually given (so a cut passed with --params shows), and
    the commit of our package they imported."""
    if len(runs) == 0:
        return ""
    r = runs[(runs.method == m.name) & (runs.status == "ok")]
    if len(r) == 0:
        return ""
    out = []
    if "params" in r:
        given = sorted({p for p in r.params.fillna("").astype(str) if p})
        default = json.dumps(m.params, sort_keys=True)
        if any(p != default for p in given):
            out.append("runs were given " + "; ".join(f"`{p}`" for p in given))
        if r.params.fillna("").astype(str).eq("").any():
            out.append("settings of some runs not recorded")
    if "source" in r:
        src = sorted({str(c)[:10] for c in r.source.dropna() if str(c) and str(c) != "nan"})
        if src:
            out.append("fusemap source at commit " + ", ".join(src))
    return (" — " + "; ".join(out)) if out else ""


def _machine_line(runs: pd.DataFrame) -> str:
    loads = runs.load.dropna() if (len(runs) and "load" in runs) else pd.Series(dtype=float)
    cpus = os.cpu_count() or 1
    threads = sorted({str(t) for t in runs.threads.dropna() if str(t) not in ("", "nan")}) \
        if (len(runs) and "threads" in runs) else []
    text = (f"Machine: {cpus} CPU cores, no GPU"
            + (f"; workers ran with OMP_NUM_THREADS={'/'.join(threads)}" if threads else "")
            + ". Wall times include waiting for the CPU: ")
    if len(loads):
        text += (f"the machine was shared with other jobs, mean 1-minute load average during the runs "
                 f"{loads.mean():.1f} (range {loads.min():.1f}-{loads.max():.1f}, per run in `runs.csv`), so "
                 f"wall times are inflated by roughly the load divided by {cpus}; peak memory is unaffected.")
    else:
        text += "load during the runs was not recorded."
    return text


def _link_analysis(text: str, results: Path) -> str:
    """Point from the generated table to the hand-written reading of it, when there is one."""
    if not (results / "ANALYSIS.md").exists():
        return text
    head, sep, rest = text.partition("\n\n")
    return head + sep + ("**Where our FuseMap does not lead, by how much and why: [ANALYSIS.md](ANALYSIS.md)** "
                         "(written by hand from these figures).\n\n") + rest


def plot_scib(summary: pd.DataFrame, results: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for case in summary.case.unique():
        s = summary[(summary.case == case) & summary.task.str.startswith("scIB") & summary.metric.isin(TOTALS)]
        tasks = [t for t in ("scIB cell embedding", "scIB spatial embedding") if (s.task == t).any()]
        fig, axes = plt.subplots(1, len(tasks), figsize=(7 * len(tasks), 0.45 * s.method.nunique() + 2), squeeze=False)
        for ax, task in zip(axes[0], tasks):
            t = s[s.task == task]
            order = t[t.metric == "Total"].sort_values("mean").method.tolist()
            y = np.arange(len(order))
            for j, metric in enumerate(TOTALS):
                q = t[t.metric == metric].set_index("method").reindex(order)
                ax.barh(y + (j - 1) * 0.27, q["mean"], 0.27, xerr=q["std"], label=metric, capsize=2)
            labels = []
            for mname in order:
                emb = t[(t.method == mname)].embedding.iloc[0]
                labels.append(mname + (" †" if emb == DERIVED else ""))
            ax.set_yticks(y, labels)
            ax.set_xlim(0, 1)
            ax.set_xlabel("score (scib-metrics, not min-max scaled)")
            ax.set_title(f"{case}: {task.replace('scIB ', '')} ({t.target.iloc[0]})")
            ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        p = results / f"scib_{case}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    return paths


def plot_umaps(case: scoring.Case, embs: dict, results: Path) -> list[Path]:
    """One figure per embedding kind: a row per method (seed 0), coloured by section and by label."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import umap

    paths = []
    for kind, label in (("cell", case.info["labels"]["cell"]), ("spatial", case.info["labels"]["spatial"])):
        keys = [k for k, (m, seed, how) in embs["keyinfo"].items()
                if seed == 0 and (k.endswith("|spatial") == (kind == "spatial"))]
        if kind == "spatial":
            keys = [k for k in keys if embs["keyinfo"][k][2] == NATIVE]
        if not keys:
            continue
        fig, axes = plt.subplots(len(keys), 2, figsize=(9, 4 * len(keys)), squeeze=False)
        sec = case.obs["section"].astype(str).to_numpy()
        lab = case.obs[label].astype(str).to_numpy()
        for row, k in zip(axes, keys):
            z = embs[kind][k]
            xy = umap.UMAP(n_neighbors=15, min_dist=0.3, n_epochs=200, random_state=0, n_jobs=1).fit_transform(z)
            for ax, col, title in ((row[0], sec, "section"), (row[1], lab, label)):
                cats = sorted(set(col))
                cmap = plt.get_cmap("tab20" if len(cats) > 10 else "tab10")
                for i, c in enumerate(cats):
                    m = col == c
                    ax.scatter(xy[m, 0], xy[m, 1], s=2, color=cmap(i % cmap.N), label=c, rasterized=True)
                ax.set_title(f"{embs['keyinfo'][k][0]} — {title}", fontsize=9)
                ax.set_xticks([]); ax.set_yticks([])
                ax.legend(markerscale=4, fontsize=6, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
        fig.tight_layout()
        p = results / f"umap_{case.name}_{kind}.png"
        fig.savefig(p, dpi=80)
        plt.close(fig)
        paths.append(p)
    return paths


def umaps_only(case_dirs: dict[str, Path], runs: list[RunResult], results: Path) -> None:
    """Only the UMAP figures, from stored outputs (no scoring)."""
    for name, d in case_dirs.items():
        case = scoring.read_case(d)
        _, embs = collect(case, [r for r in runs if r.case == name])
        plot_umaps(case, embs, results)


def score_and_report(case_dirs: dict[str, Path], runs: list[RunResult], methods: list[Method], results: Path,
                     umap: bool = True, kbet: bool = True) -> pd.DataFrame:
    results.mkdir(parents=True, exist_ok=True)
    mdict = {m.name: m for m in methods}
    recs, infos, kept = [], {}, {}
    for name, d in case_dirs.items():
        case = scoring.read_case(d)
        infos[name] = case.info
        r, embs = score_case(case, [r for r in runs if r.case == name], mdict, kbet=kbet,
                             scib_cache=Path(d).parent.parent / "scib_cache" / name)  # beside the cases
        recs += r
        kept[name] = (case, embs)
    scores = pd.DataFrame(recs)
    run_df = pd.DataFrame([asdict(r) for r in runs]) if runs else pd.DataFrame(
        columns=["method", "case", "seed", "status", "wall_seconds", "fit_seconds", "peak_rss_mb", "out_dir", "error"])
    run_df = run_df.assign(out_dir=run_df.out_dir.map(lambda p: os.path.relpath(p, results.parent.parent)
                                                      if p else p))
    # keep the figures of cases not run this time, so cases can be run one command at a time
    if (results / "scores.csv").exists() and (results / "runs.csv").exists():
        old_scores, old_runs = pd.read_csv(results / "scores.csv"), pd.read_csv(results / "runs.csv")
        scores = pd.concat([old_scores[~old_scores.case.isin(case_dirs)], scores], ignore_index=True)
        run_df = pd.concat([old_runs[~old_runs.case.isin(case_dirs)], run_df], ignore_index=True)
        for name in old_scores.case.unique():
            if name not in infos:
                infos[name] = json.loads((Path(results) / f"case_{name}.json").read_text()) \
                    if (Path(results) / f"case_{name}.json").exists() else {"sections": [], "shared_genes": [],
                                                                         "reference": [], "held_out": "",
                                                                         "labels": {"cell": "cell_type", "spatial": "region"}}
    for name, info in infos.items():
        _write_text(json.dumps(info, indent=1), results / f"case_{name}.json")
    order = {c: i for i, c in enumerate(CASE_ORDER)}
    infos = dict(sorted(infos.items(), key=lambda kv: order.get(kv[0], 99)))
    summary = summarise(scores)
    _write_csv(scores, results / "scores.csv")
    _write_csv(summary, results / "summary.csv")
    _write_csv(run_df, results / "runs.csv")
    _write_text(_link_analysis(markdown(summary, run_df, mdict, infos, kbet), results), results / "RESULTS.md")
    plot_scib(summary, results)
    if umap:
        for name, (case, embs) in kept.items():
            plot_umaps(case, embs, results)
    return summary


def merge(parts: list[Path], results: Path, methods: list[Method]) -> pd.DataFrame:
    """Join result folders written by separate runs (e.g. one per case, scored in parallel) into
    ``results``: CSVs concatenated, summary, Markdown table and scIB plots redone (no re-scoring)."""
    results.mkdir(parents=True, exist_ok=True)
    scores = pd.concat([pd.read_csv(Path(p) / "scores.csv") for p in parts], ignore_index=True)
    runs = pd.concat([pd.read_csv(Path(p) / "runs.csv") for p in parts], ignore_index=True)
    scores = scores.drop_duplicates(subset=["case", "method", "seed", "task", "target", "embedding", "metric"],
                                    keep="last")
    runs = runs.drop_duplicates(subset=["case", "method", "seed"], keep="last")
    infos = {}
    for p in parts:
        for f in sorted(Path(p).glob("case_*.json")):
            infos[f.stem[len("case_"):]] = json.loads(f.read_text())
    order = {c: i for i, c in enumerate(CASE_ORDER)}
    infos = dict(sorted(infos.items(), key=lambda kv: order.get(kv[0], 99)))
    for name, info in infos.items():
        _write_text(json.dumps(info, indent=1), results / f"case_{name}.json")
    summary = summarise(scores)
    _write_csv(scores, results / "scores.csv")
    _write_csv(summary, results / "summary.csv")
    _write_csv(runs, results / "runs.csv")
    _write_text(_link_analysis(markdown(summary, runs, {m.name: m for m in methods}, infos), results),
                results / "RESULTS.md")
    plot_scib(summary, results)
    return summary
