"""Execute the tutorials and render them to notebooks and HTML with their figures (`make vignettes`).

Python tutorials are percent-format scripts (``NN_name.py``): each is read with jupytext, executed
top to bottom in a fresh kernel of this Python (nbclient), and written as ``_build/NN_name.ipynb``
and ``_build/NN_name.html`` (nbconvert; figures embedded). The R vignette
(``rpkg/vignettes/FuseMap.Rmd``) is rendered with ``rmarkdown::render`` to ``_build/FuseMap.html``.
Every run writes ``_build/render_times.json`` (seconds per tutorial).

    python vignettes/render.py                 # everything, default (full) settings
    python vignettes/render.py 01 03 --fast    # some tutorials, test-suite settings
    python vignettes/render.py --no-html       # notebooks only (no nbconvert needed)

The working directory of every tutorial is the project root; ``FUSEMAP_DATA_DIR`` defaults to
``../shared/data`` there. ``--fast`` sets ``FUSEMAP_VIGNETTE_FAST=1`` (few epochs, few cells).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
R_VIGNETTE = ROOT / "rpkg" / "vignettes" / "FuseMap.Rmd"


def python_tutorials() -> list[Path]:
    return sorted(p for p in HERE.glob("[0-9][0-9]_*.py"))


def select(names: list[str]) -> tuple[list[Path], bool]:
    """Tutorials whose file name starts with one of ``names`` (all when empty); whether R is wanted."""
    found = python_tutorials()
    if not names:
        return found, True
    picked = [p for p in found if any(p.stem.startswith(n) for n in names)]
    want_r = any(n.lower() in ("r", "fusemap", "rmd") for n in names)
    unknown = [n for n in names if n.lower() not in ("r", "fusemap", "rmd")
               and not any(p.stem.startswith(n) for p in found)]
    if unknown:
        raise SystemExit(f"no tutorial matches {unknown}; tutorials: {[p.stem for p in found]} and 'R'")
    return picked, want_r


def environment(out: Path, fast: bool) -> dict:
    env = dict(os.environ)
    env.setdefault("FUSEMAP_DATA_DIR", str((ROOT / ".." / "shared" / "data").resolve()))
    env["FUSEMAP_VIGNETTE_FIGURES"] = str(out / "figures")
    env["MPLBACKEND"] = "Agg"
    # the tutorials import their shared set-up (vignettes/tutorial.py)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "vignettes"), env.get("PYTHONPATH")]))
    if fast:
        env["FUSEMAP_VIGNETTE_FAST"] = "1"
    else:
        env.pop("FUSEMAP_VIGNETTE_FAST", None)
    return env


def run_python(script: Path, out: Path, env: dict, html: bool, timeout: int) -> float:
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    nb = jupytext.read(script)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # the kernel inherits this process's environment
    t0 = time.perf_counter()
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(ROOT)}})
        try:
            client.execute()
        finally:
            nbformat.write(nb, out / f"{script.stem}.ipynb")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    seconds = time.perf_counter() - t0
    if html:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_notebook_node(nb)
        (out / f"{script.stem}.html").write_text(body, encoding="utf-8")
    return seconds


def run_r(out: Path, env: dict) -> float:
    """rmarkdown::render of the R vignette against the FuseMap R package (build/r/lib or installed)."""
    if shutil.which("Rscript") is None:
        raise RuntimeError("Rscript not found: install R (make setup-r) to render the R vignette.")
    lib = ROOT / "build" / "r" / "lib"
    env = dict(env)
    if lib.is_dir():
        env["R_LIBS"] = f"{lib}{os.pathsep}{env['R_LIBS']}" if env.get("R_LIBS") else str(lib)
    env.setdefault("FUSEMAP_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
    env.setdefault("RPY2_CFFI_MODE", "ABI")
    work = out / "r"
    work.mkdir(parents=True, exist_ok=True)
    code = (f"rmarkdown::render({str(R_VIGNETTE)!r}, output_dir = {str(out)!r}, "
            f"intermediates_dir = {str(work)!r}, knit_root_dir = {str(ROOT)!r}, quiet = TRUE, "
            f"envir = new.env())")
    t0 = time.perf_counter()
    subprocess.run(["Rscript", "-e", code], check=True, env=env, cwd=ROOT)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="tutorial name prefixes (01, 02_impute ...) or 'R'; default all")
    p.add_argument("--fast", action="store_true", help="test-suite settings (FUSEMAP_VIGNETTE_FAST=1)")
    p.add_argument("--no-html", action="store_true", help="write executed notebooks only")
    p.add_argument("--no-r", action="store_true", help="skip the R vignette")
    p.add_argument("--out", default=str(HERE / "_build"), help="output folder (default vignettes/_build)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds allowed per notebook cell")
    args = p.parse_args(argv)

    scripts, want_r = select(args.names)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = environment(out, args.fast)
    times_file = out / "render_times.json"
    times = json.loads(times_file.read_text()) if times_file.exists() else {}
    for script in scripts:
        print(f"[vignettes] {script.name} ...", flush=True)
        seconds = run_python(script, out, env, html=not args.no_html, timeout=args.timeout)
        times[script.stem] = {"seconds": round(seconds, 1), "fast": args.fast}
        times_file.write_text(json.dumps(times, indent=1) + "\n")  # kept if a later one is interrupted
        print(f"[vignettes] {script.stem}: {seconds:.0f} s -> {out / script.stem}.ipynb"
              + ("" if args.no_html else " and .html"), flush=True)
    if want_r and not args.no_r:
        print(f"[vignettes] {R_VIGNETTE.relative_to(ROOT)} ...", flush=True)
        seconds = run_r(out, env)
        times["FuseMap.Rmd"] = {"seconds": round(seconds, 1), "fast": args.fast}
        print(f"[vignettes] FuseMap.Rmd: {seconds:.0f} s -> {out / 'FuseMap.html'}", flush=True)
    times_file.write_text(json.dumps(times, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
