"""Run the benchmark: build the cases, run every method (in its own process and environment, timed),
score all outputs the same way, and write tables and figures.

    python -m benchmarks.run                       # everything (see benchmarks/README.md)
    python -m benchmarks.run --methods ours,harmony --cases starmap_mosaic --seeds 1

Outputs go to ``benchmarks/results`` (committed) and the method outputs to ``benchmarks/.work``
(ignored). ``--reuse`` skips runs whose outputs already exist (same case, method, seed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path


from . import cases as case_builders
from .methods import METHODS
from .runner import ROOT, SOURCE_ENV, RunResult, method_by_name, run_method



def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default=",".join(case_builders.CASES))
    p.add_argument("--methods", default="all", help="comma-separated method modules or names, or 'all'")
    p.add_argument("--seeds", type=int, default=None, help="at most this many seeds per stochastic method "
                   "(default: each method's own number, see benchmarks/methods/__init__.py)")
    p.add_argument("--only-seed", type=int, default=None, help="run (or reuse) only this seed of each method, "
                   "so that seeds can run in parallel processes")
    p.add_argument("--runs-only", action="store_true", help="run the methods, do not score (score later "
                   "with --reuse)")
    p.add_argument("--max-cells", type=int, default=None, help="subsample every section to at most this")
    p.add_argument("--params", default="{}", help='JSON {module: {setting: value}} passed to workers')
    p.add_argument("--timeout", type=float, default=1800, help="seconds before a run is stopped")
    p.add_argument("--work", default=str(ROOT / "benchmarks" / ".work"))
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--reuse", action="store_true", help="keep existing method outputs")
    p.add_argument("--no-kbet", dest="kbet", action="store_false",
                   help="leave kBET per label out of the scIB batch score (faster; the default scores it, "
                   "as users' judgement of mixing needs it)")
    p.add_argument("--no-pin", dest="pin_source", action="store_false",
                   help="run ours from the working tree instead of the committed version")
    p.add_argument("--score-only", action="store_true", help="run nothing: score the stored outputs "
                   "(benchmarks/.work) of the selected methods; a run not stored is reported as not run")
    p.add_argument("--merge", nargs="+", default=None, metavar="DIR",
                   help="join result folders of separate runs into --results (no running, no scoring)")
    p.add_argument("--umap-only", action="store_true", help="only draw the UMAP figures (with --reuse)")
    p.add_argument("--no-umap", action="store_true", help="skip the UMAP figures")
    return p.parse_args(argv)


def selected_methods(spec: str):
    if spec == "all":
        return list(METHODS.values())
    return [method_by_name(s.strip() if s.strip() != "ours" else "fusemap_ours") for s in spec.split(",") if s.strip()]


def pin_source(work: Path) -> str:
    """Export the committed ``python/fusemap`` (git HEAD) to ``work/source/<commit>`` and make the
    workers import it first, so every run of "ours" uses one recorded version of the package even
    while the working tree changes. Returns the commit ('' when git is not available)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
    dest = work / "source" / commit
    if not (dest / "fusemap" / "__init__.py").exists():
        tmp = dest.with_name(f"{commit}.tmp{os.getpid()}")  # own folder: parallel runs may export at once
        tmp.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", commit, "python/fusemap"], cwd=ROOT, capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp), "--strip-components=1"], input=archive, check=True)
        try:
            os.replace(tmp, dest)
        except OSError:  # another run exported the same commit first
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    os.environ[SOURCE_ENV] = str(dest)
    return commit


def main(argv=None) -> int:
    args = parse(argv)
    os.environ.setdefault("FUSEMAP_DATA_DIR", str((ROOT / ".." / "shared" / "data").resolve()))
    work, results = Path(args.work), Path(args.results)
    params = json.loads(args.params)
    methods = selected_methods(args.methods)
    commit = pin_source(work) if args.pin_source else ""
    if commit:
        print(f"[bench] ours from commit {commit[:10]} (exported to {os.environ[SOURCE_ENV]})")
    t_start = time.perf_counter()
    if args.merge:
        from .report import merge
        merge([Path(d) for d in args.merge], results, list(METHODS.values()))
        print(f"[bench] merged {len(args.merge)} result folders into {results}")
        return 0
    runs: list[RunResult] = []
    case_dirs = {}
    for name in [c.strip() for c in args.cases.split(",") if c.strip()]:
        case_dir = work / "cases" / case_builders.case_label(name, args.max_cells)
        if not ((args.reuse or args.score_only or args.umap_only) and (case_dir / "case.json").exists()):
            case_dir = case_builders.build_case(name, work / "cases", max_cells=args.max_cells)
        name = case_dir.name
        case_dirs[name] = case_dir
        for m in methods:
            n_seeds = (m.seeds if args.seeds is None else min(args.seeds, m.seeds)) if m.stochastic else 1
            for seed in range(n_seeds):
                if args.only_seed is not None and seed != args.only_seed:
                    continue
                out = work / "runs" / name / m.module / f"seed{seed}"
                if (args.reuse or args.score_only or args.umap_only) and (out / "run.json").exists():
                    runs.append(RunResult(**json.loads((out / "run.json").read_text())))
                    continue
                if args.score_only or args.umap_only:
                    if seed == 0:
                        runs.append(RunResult(m.name, name, seed, "not run", 0.0, None, 0.0, str(out),
                                              "no stored output (not run in this benchmark run)"))
                    continue
                r = run_method(m, case_dir, out, seed, params.get(m.module), timeout=args.timeout)
                if r.status != "unavailable":
                    (out / "run.json").write_text(json.dumps(asdict(r)))
                runs.append(r)
                if r.status == "unavailable":
                    break
    if args.runs_only:
        return 0
    from .report import score_and_report, umaps_only

    if args.umap_only:
        umaps_only(case_dirs, runs, results)
        return 0

    score_and_report(case_dirs, runs, methods, results, umap=not args.no_umap, kbet=args.kbet)
    print(f"[bench] done in {time.perf_counter() - t_start:.0f} s; results in {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
