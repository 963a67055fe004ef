"""Command line: ``fusemap integrate``, ``fusemap demo`` (and the commands other modules add).

Every command writes its output directory atomically: results are assembled in a hidden
``.<name>.partial`` directory beside the target and renamed into place at the end, so an
interrupted run never leaves a half-written result; rerunning the same command resumes training
from the checkpoint kept in the partial directory.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Sequence

from ._atomic import replace_dir
from .errors import FuseMapInputError, FuseMapModelError

log = logging.getLogger("fusemap")


def safe_filename(name: str) -> str:
    """A section name usable as a file name (path separators and odd characters replaced)."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._") or "section"


class OutputDir:
    """Build ``target`` in ``.target.partial`` and rename it into place on :meth:`commit`."""

    def __init__(self, target: str | os.PathLike, overwrite: bool = False):
        self.target = Path(target)
        if self.target.exists() and any(self.target.iterdir()) and not overwrite:
            raise FuseMapInputError(
                f"--out {str(self.target)!r} already exists and is not empty; pass --overwrite to "
                "replace it or choose another directory."
            )
        self.overwrite = overwrite
        self.partial = self.target.parent / f".{self.target.name}.partial"
        self.partial.mkdir(parents=True, exist_ok=True)

    def path(self, *parts: str) -> Path:
        p = self.partial.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def commit(self, drop: Sequence[str] = ()) -> Path:
        for d in drop:
            shutil.rmtree(self.partial / d, ignore_errors=True)
        return replace_dir(self.partial, self.target)


def write_h5ad(adata, path: Path) -> None:
    """Write an AnnData atomically (temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    adata.write_h5ad(tmp)
    os.replace(tmp, path)


def _overrides(args) -> dict:
    out = {}
    for opt, key in (("epochs", "max_epochs"), ("seed", "seed"), ("device", "device"), ("latent", "n_latent"),
                     ("layer", "layer"), ("graph", "method"), ("max_edge_length", "max_edge_length"),
                     ("batch_size", "batch_size"), ("spatial_mode", "spatial_mode")):
        v = getattr(args, opt, None)
        if v is not None:
            out[key] = v
    if getattr(args, "normalized", False):
        out["normalized"] = True
    if getattr(args, "progress", False):
        out["progress"] = True
    return out


def run_integrate(inputs, out: str | os.PathLike, *, section_key: str | None = None, overwrite: bool = False,
                  figures: bool = True, in_place: bool = False, **overrides) -> Path:
    """The ``integrate`` job on already-read inputs (paths, AnnData list or a SectionSet).

    Sections read from a SpatialData store get a copy of the store with the results in its tables
    under ``out`` (or, with ``in_place``, the results in the input store) instead of ``sections/``.
    """
    import pandas as pd  # noqa: F401  (imported early so a broken install fails before training)

    from .model import FuseMap
    from .plotting import integration_figures
    from .sections import as_sections

    sections = as_sections(inputs, section_key, argname="SECTION")
    outdir = OutputDir(out, overwrite=overwrite)
    t0 = time.perf_counter()
    model = FuseMap(sections, **overrides)
    model.train(checkpoint_dir=outdir.path("checkpoint"))
    log.info("trained in %.1f s", time.perf_counter() - t0)
    from .distributed import is_main_process

    if not is_main_process():  # data-parallel run under torchrun: rank 0 writes the results
        return None
    model.save(outdir.path("model"), overwrite=True)
    model.model_dir = str(Path(out) / "model")
    model.write()
    if model.sections.source is not None:
        from .cli_spatialdata import write_store_results

        write_store_results(model.sections, outdir, in_place=in_place)
    else:
        for name, adata in zip(model.section_names, model.sections.adatas):
            write_h5ad(adata, outdir.path("sections", f"{safe_filename(name)}.h5ad"))
    model.gene_embedding().to_csv(outdir.path("gene_embedding.csv"))
    model.history_frame().to_csv(outdir.path("history.csv"), index=False)
    if figures:
        integration_figures(model.sections.adatas, model.section_names, outdir.path("figures"),
                            seed=model.config.train.seed)
    return outdir.commit(drop=["checkpoint"])


# -- argument parsing ---------------------------------------------------------------------------
def _add_training_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=int, help="maximum epochs of each training phase (default 300)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (default auto)")
    p.add_argument("--batch-size", type=int, dest="batch_size", help="seed cells per section per step")
    p.add_argument("--progress", action="store_true", help="show a progress bar even when not on a terminal")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fusemap", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log what is being done")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("integrate", help="integrate sections into cell, spatial and gene embeddings")
    p.add_argument("sections", nargs="+", help=".h5ad files (one section each, or several with --section-key), "
                   "or one SpatialData .zarr store")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--section-key", dest="section_key", help="obs column naming each cell's section")
    p.add_argument("--layer", help="layer holding raw counts (default X)")
    p.add_argument("--normalized", action="store_true", help="input is already log-normalised (not counts)")
    p.add_argument("--latent", type=int, help="latent dimensions (default 64)")
    p.add_argument("--graph", choices=["delaunay", "knn", "radius"], help="spatial graph (default delaunay)")
    p.add_argument("--max-edge-length", type=float, dest="max_edge_length",
                   help="drop graph edges longer than this (coordinate units)")
    p.add_argument("--spatial-mode", choices=["aggregate", "gcn"], dest="spatial_mode")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--no-figures", action="store_true", dest="no_figures")
    p.add_argument("--backed", action="store_true",
                   help="leave each section's expression on disk and read it in row blocks (sections larger "
                        "than memory; one .h5ad file or AnnData .zarr store per section)")
    from .cli_spatialdata import add_store_args

    add_store_args(p)
    _add_training_args(p)

    p = sub.add_parser("demo", help="integrate the shared STARmap sections (or simulated data if absent)")
    p.add_argument("--out", default="results/demo", help="output directory (default results/demo)")
    p.add_argument("--overwrite", action="store_true")
    _add_training_args(p)

    for extend in _EXTENSIONS:
        extend(sub)
    return parser


_EXTENSIONS: list = []
_HANDLERS: dict = {}


def register(add_parser, handler, name: str) -> None:
    """Let another module add a sub-command (keeps this file free of their imports)."""
    _EXTENSIONS.append(add_parser)
    _HANDLERS[name] = handler


def _cmd_integrate(args) -> Path:
    from .cli_spatialdata import check_store_options, read_store_sections, store_among

    inputs = args.sections
    if getattr(args, "backed", False):  # .h5ad files / AnnData .zarr stores, expression left on disk
        from .backed import open_sections
        from .sections import SectionSet

        if args.section_key is not None:
            raise FuseMapInputError("--backed reads one section per file; drop --section-key or split the file.")
        inputs = SectionSet([Path(f).stem for f in inputs], open_sections(inputs))  # names: file stems
        store = None
    else:
        store = store_among(inputs)
    check_store_options(args, store)
    if store is not None:
        inputs = read_store_sections(store, args, args.section_key)
    return run_integrate(inputs, args.out, section_key=args.section_key, overwrite=args.overwrite,
                         figures=not args.no_figures, in_place=args.in_place, **_overrides(args))


def _cmd_demo(args) -> Path:
    from . import datasets

    if datasets.has_data():
        files = [datasets.data_dir() / f"{n}.h5ad" for n in datasets.STARMAP_MPFC]
        print(f"[fusemap demo] integrating the three STARmap mPFC sections from {datasets.data_dir()}")
        inputs = files
    else:
        print(f"[fusemap demo] shared data not found at {datasets.data_dir()} (set FUSEMAP_DATA_DIR); "
              "integrating SIMULATED sections instead")
        inputs = datasets.simulate(n_sections=3, n_cells=1500, n_genes=150, panel_size=100, n_shared=40)
    out = run_integrate(inputs, args.out, overwrite=args.overwrite, **_overrides(args))
    print(f"[fusemap demo] wrote {out}/ (model/, sections/, gene_embedding.csv, figures/)")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    _load_extensions()
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="[fusemap] %(message)s")
    if not args.verbose:  # dependencies' deprecation chatter is not for command-line users
        for cat in (FutureWarning, DeprecationWarning, SyntaxWarning):
            warnings.filterwarnings("ignore", category=cat)
    handlers = {"integrate": _cmd_integrate, "demo": _cmd_demo, **_HANDLERS}
    try:
        out = handlers[args.command](args)
    except (FuseMapInputError, FuseMapModelError, FileExistsError, FileNotFoundError) as exc:
        print(f"fusemap {args.command}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if "fusemap.distributed" in sys.modules:  # leave the torchrun process group, if any
            sys.modules["fusemap.distributed"].shutdown()
    if out is not None and args.command != "demo":
        print(f"fusemap {args.command}: wrote {out}")
    return 0


def _load_extensions() -> None:
    """Import modules that register sub-commands (map, impute, transfer, ...), if present."""
    import importlib

    for mod in ("fusemap.cli_query", "fusemap.cli_spatialdata", "fusemap.cli_analysis"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
