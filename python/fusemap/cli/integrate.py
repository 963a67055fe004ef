"""``fusemap integrate`` and ``fusemap demo``: train a model on sections and write its results.

Output folder: ``model/``, ``sections/<section>.h5ad`` (or a copy of the input SpatialData store
with the results in its tables), ``gene_embedding.csv``, ``history.csv``, ``figures/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io.files import OutputDir
from ._common import (add_coordinates_arg, add_data_args, add_graph_args, add_output_args, add_panels_arg, add_store_args,
                      add_training_args, overrides, paths, read_panels, store_options, summary_lines)


def run_integrate(inputs: Any, out, *, section_key: str | None = None, overwrite: bool = False,
                  figures: bool = True, in_place: bool = False, backed: bool = False, table=None,
                  coordinate_system: str | None = None, resume: bool = True, panels: dict | None = None,
                  no_coordinates: list[str] | None = None, **config: Any) -> Path | None:
    """Read ``inputs`` once, train, and write each result once into ``out`` (built atomically)."""
    from ..distributed import is_main_process
    from ..io.results import save_sections
    from ..io.sections import read_sections
    from ..model import FuseMap

    sections = read_sections(inputs, section_key, table=table, coordinate_system=coordinate_system,
                             backed=backed, argname="SECTION")
    with OutputDir(out, overwrite, inputs=paths(sections.paths), command="integrate") as outdir:
        model = FuseMap(sections, section_key, panels=panels, no_coordinates=no_coordinates, **config)
        model.train(checkpoint_dir=outdir.path("checkpoint"), resume=resume)
        if not is_main_process():  # data-parallel run under torchrun: rank 0 writes the results
            return None
        model.save(outdir.path("model"))
        model.model_dir = str(Path(out) / "model")
        model.write()
        save_sections(model.sections, outdir.path("sections") if sections.source is None else outdir.partial,
                      in_place=in_place)
        model.gene_embedding().to_csv(outdir.path("gene_embedding.csv"))
        model.history_frame().to_csv(outdir.path("history.csv"), index=False)
        if figures:
            from ..pl.embedding import integration_figures

            integration_figures(model.sections.adatas, model.section_names, outdir.path("figures"),
                                seed=model.config.train.seed, no_coordinates=model.no_coordinates)
        done = outdir.commit(drop=["checkpoint"])
    for line in summary_lines(model):
        print(f"fusemap integrate: {line}")
    return done


def _integrate(args) -> Path | None:
    panels = read_panels(args.panels)
    return run_integrate(args.sections, args.out, section_key=args.section_key, overwrite=args.overwrite,
                         figures=not args.no_figures, in_place=args.in_place, backed=args.backed,
                         resume=args.resume, panels=panels, no_coordinates=args.no_coordinates,
                         **store_options(args, args.sections), **overrides(args))


def _demo(args) -> Path:
    from .. import datasets

    if datasets.has_data():
        inputs = [datasets.data_dir() / f"{n}.h5ad" for n in datasets.STARMAP_MPFC]
        print(f"[fusemap demo] integrating the three STARmap mPFC sections from {datasets.data_dir()}")
    else:
        print(f"[fusemap demo] shared data not found at {datasets.data_dir()} (set FUSEMAP_DATA_DIR); "
              "integrating SIMULATED sections instead")
        inputs = datasets.simulate(n_sections=3, n_cells=1500, n_genes=150, panel_size=100, n_shared=40)
    out = run_integrate(inputs, args.out, overwrite=args.overwrite, resume=args.resume, **overrides(args))
    print(f"[fusemap demo] wrote {out}/ (model/, sections/, gene_embedding.csv, figures/)")
    return out


def add_commands(sub) -> None:
    p = sub.add_parser("integrate", help="integrate sections into cell, spatial and gene embeddings")
    p.add_argument("sections", nargs="+", help=".h5ad files (one section each, or several with --section-key), "
                   "or one SpatialData .zarr store")
    add_output_args(p)
    add_data_args(p)
    add_panels_arg(p)
    add_coordinates_arg(p)
    p.add_argument("--latent", type=int, help="latent dimensions (default 64)")
    add_graph_args(p)
    p.add_argument("--spatial-mode", choices=["aggregate", "gcn"], dest="spatial_mode")
    p.add_argument("--backed", action="store_true",
                   help="leave each section's expression on disk and read it in row blocks (sections larger "
                        "than memory; one .h5ad file or AnnData .zarr store per section)")
    add_store_args(p)
    add_training_args(p)
    p.set_defaults(handler=_integrate)

    p = sub.add_parser("demo", help="integrate the shared STARmap sections (or simulated data if absent)")
    p.add_argument("--out", default="results/demo", help="output directory (default results/demo)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo result in --out")
    add_training_args(p)
    p.set_defaults(handler=_demo)
