"""Run one method worker in its own process and environment; time it and read its peak memory.

Wall time covers the whole process (imports and reading the case included); the worker also
reports the time of the method call itself (``fit_seconds``). Peak memory is the largest resident
set size of the worker and of any process it waited for (``os.wait4`` rusage), so an R child of the
Seurat worker is counted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .methods import METHODS, Method

ROOT = Path(__file__).resolve().parents[1]
ENV_PYTHON = {
    # the main environment: the benchmark venv when it exists, else the project's .venv
    "main": [".venv-bench", ".venv"],
    "bench": [".venv-bench"],
    "r": [".venv-bench", ".venv"],
    "authors": [".venv-authors"],
}
SOURCE_ENV = "BENCH_FUSEMAP_SOURCE"  # a folder holding fusemap/ that workers import first (see run.py)
ENV_SETUP = {"bench": "benchmarks/envs/bench.sh", "authors": "benchmarks/envs/authors.sh",
             "r": "benchmarks/envs/seurat.sh"}


@dataclass
class RunResult:
    method: str
    case: str
    seed: int
    status: str          # 'ok' or 'failed' or 'unavailable'
    wall_seconds: float
    fit_seconds: float | None
    peak_rss_mb: float
    out_dir: str
    error: str = ""
    source: str = ""     # commit of the fusemap source the worker imported first ('' = working tree)
    params: str = ""     # JSON of the settings the worker was given (method defaults + --params)
    load: float | None = None  # mean 1-minute load average during the run (other jobs inflate wall times)
    threads: str = ""    # OMP_NUM_THREADS the worker was given


def _library_path_without_r(value: str | None) -> str | None:
    """LD_LIBRARY_PATH without the folders R prepends when rpy2 starts it (R's lib, the system
    library folders, the JVM): a worker's Python built with its own libpython would otherwise load
    the system's libpython from them and fail. Folders the loader searches anyway lose nothing."""
    if not value:
        return value
    r_home = os.environ.get("R_HOME", "/usr/lib/R").rstrip("/")
    system = {"/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
              "/lib/aarch64-linux-gnu", "/usr/lib", "/lib", "/usr/lib64", "/lib64", "/usr/local/lib"}
    keep = [p for p in value.split(os.pathsep)
            if p and p.rstrip("/") not in system and not p.startswith(r_home + "/") and "/jvm/" not in p]
    return os.pathsep.join(keep) or None


def python_for(method: Method) -> Path | None:
    for venv in ENV_PYTHON[method.env]:
        py = ROOT / venv / "bin" / "python"
        if py.exists():
            return py
    return None


def unavailable_reason(method: Method) -> str:
    if python_for(method) is None:
        return (f"environment {ENV_PYTHON[method.env][0]} not found: run {ENV_SETUP.get(method.env, 'make setup')}")
    if method.env == "r":
        from shutil import which
        if which("Rscript") is None:
            return f"Rscript not found: run {ENV_SETUP['r']}"
    return ""


def run_method(method: Method, case_dir: Path, out_dir: Path, seed: int, params: dict | None = None,
               timeout: float | None = None, log=print) -> RunResult:
    """Run ``method`` on the case in a subprocess; outputs land in ``out_dir``."""
    case = case_dir.name
    reason = unavailable_reason(method)
    if reason:
        return RunResult(method.name, case, seed, "unavailable", 0.0, None, 0.0, str(out_dir), reason)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("outputs.npz", "meta.json"):
        (out_dir / stale).unlink(missing_ok=True)
    given = json.dumps({**method.params, **(params or {})}, sort_keys=True)
    cmd = [str(python_for(method)), "-m", f"benchmarks.methods.{method.module}", "--case", str(case_dir),
           "--out", str(out_dir), "--seed", str(seed), "--params", given]
    env = dict(os.environ)
    # our pinned fusemap source; never for the authors' environment, whose package is also `fusemap`
    source = os.environ.get(SOURCE_ENV, "") if method.env != "authors" else ""
    env.update({"DGLBACKEND": "pytorch", "PYTHONHASHSEED": str(seed), "MPLBACKEND": "Agg",
                "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", str(os.cpu_count() or 1)),
                "PYTHONPATH": os.pathsep.join(p for p in (source, str(ROOT)) if p)})
    env.pop("PYTHONSTARTUP", None)
    ld = _library_path_without_r(env.get("LD_LIBRARY_PATH"))
    if ld is None:
        env.pop("LD_LIBRARY_PATH", None)
    else:
        env["LD_LIBRARY_PATH"] = ld
    log(f"[bench] {case} | {method.name} | seed {seed} ...")
    t0 = time.perf_counter()
    with open(out_dir / "log.txt", "w") as logf:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT)
        deadline = None if timeout is None else t0 + timeout
        status_code, rusage, loads = None, None, []
        while status_code is None:
            loads.append(os.getloadavg()[0])
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status_code, rusage = os.waitstatus_to_exitcode(status), ru
                break
            if deadline and time.perf_counter() > deadline:
                proc.kill()
                pid, status, ru = os.wait4(proc.pid, 0)
                status_code, rusage = -9, ru
                break
            time.sleep(0.2)
        proc.returncode = status_code
    wall = time.perf_counter() - t0
    load = round(sum(loads) / len(loads), 1) if loads else None
    peak = rusage.ru_maxrss / 1024.0  # kB -> MB on Linux
    meta_path = out_dir / "meta.json"
    if status_code == 0 and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        log(f"[bench]   ok in {wall:.0f} s, peak {peak:.0f} MB")
        return RunResult(method.name, case, seed, "ok", wall, meta.get("fit_seconds"), peak, str(out_dir),
                         source=Path(source).name if source else "", params=given, load=load,
                         threads=env["OMP_NUM_THREADS"])
    tail = (out_dir / "log.txt").read_text(errors="replace").strip().splitlines()
    err = next((ln for ln in reversed(tail) if ln.strip() and not ln.startswith(" ")), "") if tail else ""
    if status_code == -9:
        err = f"killed after the {timeout:.0f} s time limit"
    log(f"[bench]   FAILED ({err})")
    return RunResult(method.name, case, seed, "failed", wall, None, peak, str(out_dir), err[:400], params=given,
                     load=load, threads=env["OMP_NUM_THREADS"], source=Path(source).name if source else "")


def method_by_name(name: str) -> Method:
    for m in METHODS.values():
        if name in (m.name, m.module):
            return m
    raise ValueError(f"unknown method {name!r}; choose from {[m.module for m in METHODS.values()]}")


if __name__ == "__main__":  # pragma: no cover - manual use: python -m benchmarks.runner METHOD CASE_DIR OUT
    r = run_method(method_by_name(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), 0)
    print(r)
