"""Command-line sub-commands ``fusemap map``, ``fusemap impute`` and ``fusemap transfer``.

::

    fusemap map --model DIR/model QUERY.h5ad [...] --out DIR2 [--reference DIR/sections ...]
    fusemap impute --model DIR/model SECTION.h5ad (--genes G1,G2 | --all) --out OUT.h5ad
    fusemap transfer --model DIR/model --reference DIR/sections --labels cell_type QUERY.h5ad [...] --out DIR3

``map`` writes DIR2 in the layout of ``integrate`` (``model/``, ``sections/<query>.h5ad``,
``gene_embedding.csv``, ``history.csv``, ``figures/``); ``transfer`` writes
``DIR3/<section>.h5ad`` with ``obs['fusemap_<labels>']`` and ``obs['fusemap_<labels>_uncertainty']``
plus ``DIR3/transfer_summary.json``. Inputs are read once through :func:`fusemap.io.read_sections`;
outputs are built beside the target and renamed into place; the model directory is only read.

A SpatialData ``.zarr`` store works as the query / sections input of every command (options
``--table``, ``--coordinate-system``, ``--in-place``): ``map``
and ``transfer`` then write ``DIR2/<store>.zarr`` / ``DIR3/<store>.zarr``, a copy of the store with
the results in its tables (or, with ``--in-place``, those tables replaced in the input store);
``impute`` with ``--out OUT.zarr`` (or ``--in-place``) adds a table ``fusemap_imputed`` annotating
the same elements, and with ``--out OUT.h5ad`` streams the matrix as for ``.h5ad`` input. Without
``--reference``, ``map`` also looks for a single ``.zarr`` store beside the model (the output of
``fusemap integrate STORE.zarr``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Sequence

from .._constants import CELL_EMBEDDING, SPATIAL_EMBEDDING
from ..errors import FuseMapInputError
from ..io.files import OutputDir, check_target
from ._common import (add_coordinates_arg, add_output_args, add_panels_arg, add_query_mapping_args,
                      add_store_args, add_training_args,
                      overrides, paths, read_panels, split_list, store_options, summary_lines)


# -- map --------------------------------------------------------------------------------------------------
def run_map(model: str | os.PathLike, query: Any, out: str | os.PathLike, *, reference: Any = None,
            section_key: str | None = None, overwrite: bool = False, figures: bool = True,
            table: Any = None, coordinate_system: str | None = None, in_place: bool = False,
            resume: bool = True, panels: dict | None = None, no_coordinates: list[str] | None = None,
            **config: Any) -> Path:
    """The ``map`` job: map ``query`` onto the model in ``model`` and write DIR2."""
    from ..io.results import save_sections
    from ..io.sections import read_sections
    from ..mapping import map_query, write_query
    from ..model import read_model_dir

    read_model_dir(model, weights=False)  # a clear error before anything is read or created
    queries = read_sections(query, section_key, table=table, coordinate_system=coordinate_system, argname="QUERY")
    with OutputDir(out, overwrite, inputs=paths(model, queries.paths, reference), command="map") as outdir:
        mapped = map_query(model, queries, reference=reference, checkpoint_dir=outdir.path("checkpoint"),
                           resume=resume, write=False, panels=panels, no_coordinates=no_coordinates, **config)
        mapped.save(outdir.path("model"))
        mapped.model_dir = str(Path(out) / "model")
        write_query(mapped, queries)
        save_sections(queries, outdir.path("sections") if queries.source is None else outdir.partial,
                      in_place=in_place)
        mapped.gene_embedding().to_csv(outdir.path("gene_embedding.csv"))
        mapped.history_frame().to_csv(outdir.path("history.csv"), index=False)
        if figures:
            from ..pl.embedding import integration_figures

            mapped.write()  # embeddings of the reference sections too, in memory only, for the UMAPs
            integration_figures(mapped.sections.adatas, mapped.section_names, outdir.path("figures"),
                                seed=mapped.config.train.seed, no_coordinates=mapped.no_coordinates)
        done = outdir.commit(drop=["checkpoint"])
    for line in summary_lines(mapped):
        print(f"fusemap map: {line}")
    return done


def _map(args):
    panels = read_panels(args.panels)
    return run_map(args.model, args.query, args.out, reference=args.reference, section_key=args.section_key,
                   overwrite=args.overwrite, figures=not args.no_figures, in_place=args.in_place,
                   resume=args.resume, panels=panels, no_coordinates=args.no_coordinates,
                   **store_options(args, args.query), **overrides(args))


# -- impute -----------------------------------------------------------------------------------------------
def run_impute(model: str | os.PathLike, sections: Any, out: str | os.PathLike | None, *,
               genes: Sequence[str] | None, section_key: str | None = None, method: str | None = None,
               chunk_size: int = 4096, overwrite: bool = False, device: str | None = None, table: Any = None,
               coordinate_system: str | None = None, in_place: bool = False, neighbors: int | None = None) -> Path:
    """The ``impute`` job: imputed expression of ``genes`` (``None``: all) streamed into ``out``.

    From a SpatialData store, ``out`` ending in ``.zarr`` (or ``in_place``) gives the store with a
    table ``fusemap_imputed`` annotating the same elements instead of an ``.h5ad`` file.
    """
    from ..imputation import (DEFAULT_METHOD, impute, impute_to_store, is_imputed_h5ad,
                              is_imputed_store, resolve_genes)
    from ..io.sections import read_sections
    from ..model import FuseMap

    if out is None and not in_place:
        raise FuseMapInputError("--out is required (an .h5ad file, or a .zarr store for SpatialData input), "
                                "unless --in-place writes into the input store.")
    if out is not None and in_place:
        raise FuseMapInputError("--out and --in-place exclude each other: --in-place writes the imputed "
                                "table into the input store. Drop one of them.")
    out = None if out is None else Path(out)
    if out is not None:
        check_target(out, overwrite=overwrite, inputs=paths(model, sections),
                     is_ours=is_imputed_store if out.suffix == ".zarr" else is_imputed_h5ad)
    fm = FuseMap.load(model, device=device)
    resolve_genes(fm, genes)  # unknown genes are reported before any section is read
    data = read_sections(sections, section_key, table=table, coordinate_system=coordinate_system,
                         argname="SECTION")
    to_store = in_place or out.suffix == ".zarr"
    if to_store and data.source is None:
        raise FuseMapInputError(
            f"--out {str(out)!r} is a .zarr store, which needs a SpatialData store as input; the input was "
            ".h5ad. Write the imputed matrix to an .h5ad file instead."
        )
    method = method or DEFAULT_METHOD
    if to_store:
        return impute_to_store(fm, data, genes, out=out, method=method, neighbors=neighbors,
                               chunk_size=chunk_size, overwrite=True)
    result = impute(fm, data, genes, method=method, neighbors=neighbors, chunk_size=chunk_size,
                    out=out, overwrite=True)
    result.file.close()
    return out


def _impute(args):
    genes = None if args.all_genes else split_list(args.genes)
    if genes is not None and not genes:
        raise FuseMapInputError("--genes is empty; list genes as G1,G2 or use --all.")
    return run_impute(args.model, args.sections, args.out, genes=genes, section_key=args.section_key,
                      method=args.method, chunk_size=args.chunk_size, overwrite=args.overwrite,
                      device=args.device, neighbors=args.neighbors, in_place=args.in_place,
                      **store_options(args, args.sections))


# -- transfer ---------------------------------------------------------------------------------------------
def run_transfer(model: str | os.PathLike, reference: Any, query: Any, out: str | os.PathLike, *, labels: str,
                 hierarchy: Sequence[str] = (), embedding: str = "cell", method: str = "mlp",
                 min_cells: int = 10, rare: str = "exclude", remap: bool = False, section_key: str | None = None,
                 overwrite: bool = False, seed: int | None = None, table: Any = None,
                 coordinate_system: str | None = None, in_place: bool = False, resume: bool = True,
                 novelty_threshold: float | None = None, **config: Any) -> Path:
    """The ``transfer`` job: map raw query sections first (if needed), then transfer ``labels``."""
    from ..io.results import save_sections
    from ..io.sections import read_sections
    from ..mapping import map_query
    from ..model import read_model_dir
    from ..transfer import check_reference_labels, transfer_labels

    if novelty_threshold is not None and not 0 < novelty_threshold <= 1:
        raise FuseMapInputError(f"--novelty-threshold: {novelty_threshold} is not in (0, 1]; give e.g. 0.99 "
                                "(cells farther from the reference than 99 % of reference cells are "
                                "'unassigned') or 'none' to assign every cell.")
    meta = read_model_dir(model, weights=False)  # a clear error before anything is read
    k = int(meta["config"]["config"]["model"]["n_latent"])
    refs = read_sections(reference, argname="--reference")
    levels = [labels, *hierarchy]
    check_reference_labels(refs, levels)  # before any mapping
    queries = read_sections(query, section_key, table=table, coordinate_system=coordinate_system, argname="QUERY")

    def mapped_already(a) -> bool:
        return all(key in a.obsm and a.obsm[key].shape[1] == k for key in (CELL_EMBEDDING, SPATIAL_EMBEDDING))

    raw = [i for i, a in enumerate(queries.adatas) if remap or not mapped_already(a)]
    with OutputDir(out, overwrite, inputs=paths(model, refs.paths, queries.paths), command="transfer") as outdir:
        if raw:
            if seed is not None:
                config["seed"] = seed
            map_query(model, queries.subset(raw), reference=refs, checkpoint_dir=outdir.path("checkpoint"),
                      resume=resume, **config)
        result = transfer_labels(refs, queries, labels, embedding=embedding, method=method,
                                 hierarchy=list(hierarchy), min_cells=min_cells, rare=rare,
                                 novelty_threshold=novelty_threshold, seed=0 if seed is None else seed)
        save_sections(queries, outdir.partial, in_place=in_place)
        summary = {**result.summary(), "mapped_here": [queries.names[i] for i in raw],
                   "model": str(model), "query_sections": list(queries.names)}
        with open(outdir.path("transfer_summary.json"), "w") as fh:
            json.dump(summary, fh, indent=1)
        return outdir.commit(drop=["checkpoint"])


def _transfer(args):
    config = overrides(args)
    seed = config.pop("seed", None)
    return run_transfer(args.model, args.reference, args.query, args.out, labels=args.labels,
                        hierarchy=split_list(args.hierarchy), embedding=args.embedding, method=args.method,
                        min_cells=args.min_cells, rare=args.rare, remap=args.remap, section_key=args.section_key,
                        overwrite=args.overwrite, seed=seed, in_place=args.in_place, resume=args.resume,
                        novelty_threshold=args.novelty_threshold, **store_options(args, args.query), **config)


def _threshold(text: str) -> float | None:
    """``--novelty-threshold``: a number, or 'none' for no threshold (checked in run_transfer)."""
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1] or 'none', found {text!r}") from None


def add_commands(sub) -> None:
    p = sub.add_parser("map", help="map new sections onto a trained model (its weights stay unchanged)")
    p.add_argument("query", nargs="+", help="query .h5ad files (one section each, or several with --section-key)")
    p.add_argument("--model", required=True, help="model directory (DIR/model written by integrate)")
    p.add_argument("--reference", nargs="+",
                   help="data of the model's sections: .h5ad files or folders (default: the sections/ "
                        "folder, or the one .zarr store, beside --model)")
    add_output_args(p)
    p.add_argument("--section-key", dest="section_key", help="obs column naming each cell's section")
    add_panels_arg(p)
    add_coordinates_arg(p)
    add_training_args(p)
    add_query_mapping_args(p)
    add_store_args(p)
    p.set_defaults(handler=_map)

    p = sub.add_parser("impute", help="impute genes of the model's vocabulary in a section it knows")
    p.add_argument("sections", nargs="+", help="section .h5ad file(s) (reference or mapped query sections)")
    p.add_argument("--model", required=True, help="model directory")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--genes", help="comma-separated gene symbols")
    g.add_argument("--all", action="store_true", dest="all_genes", help="every gene of the vocabulary")
    p.add_argument("--out", help="output .h5ad (cells x genes), or .zarr: a copy of the input SpatialData store "
                                 "with a table fusemap_imputed (required unless --in-place)")
    p.add_argument("--method", choices=["knn", "blend", "decoder", "product"],
                   help="read-out (default knn: the mean measured value over the nearest cells, in the cell "
                        "embedding, of the given sections that measured the gene; give every section of the "
                        "model to impute genes from all of them)")
    p.add_argument("--neighbors", type=int,
                   help="cells averaged per read-out: measuring cells for knn and blend (default 25), nearest "
                        "cells of the section for decoder/product (default 50; 1 turns that off)")
    p.add_argument("--section-key", dest="section_key", help="obs column naming each cell's section")
    p.add_argument("--chunk-size", type=int, default=4096, dest="chunk_size", help="cells per block")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out when it is an earlier `fusemap impute` result (never other files)")
    add_store_args(p)
    p.set_defaults(handler=_impute)

    p = sub.add_parser("transfer", help="transfer labels from reference sections to query sections")
    p.add_argument("query", nargs="+", help="query .h5ad files: raw sections (mapped first) or sections "
                                            "written by `fusemap map`")
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--reference", nargs="+", required=True,
                   help="labelled reference sections with embeddings (.h5ad files or folders, e.g. DIR/sections)")
    p.add_argument("--labels", required=True, help="obs column of the reference to transfer")
    p.add_argument("--hierarchy", help="comma-separated finer label columns nested in --labels")
    p.add_argument("--embedding", choices=["cell", "spatial"], default="cell",
                   help="cell (cell types, default) or spatial (tissue regions)")
    p.add_argument("--method", choices=["mlp", "knn", "ensemble"], default="mlp")
    p.add_argument("--min-cells", type=int, default=10, dest="min_cells",
                   help="classes with fewer labelled reference cells are handled by --rare (default 10)")
    p.add_argument("--rare", choices=["exclude", "other"], default="exclude")
    p.add_argument("--novelty-threshold", type=_threshold, default=None, dest="novelty_threshold",
                   help="query cells whose novelty against the reference (0-1: the share of reference "
                        "cells closer to the reference) is above this are labelled 'unassigned'; "
                        "'none' (default) assigns every cell; 0.99 is the suggested value")
    p.add_argument("--remap", action="store_true", help="map the query even if it holds embeddings")
    p.add_argument("--section-key", dest="section_key", help="obs column naming each cell's section")
    add_output_args(p, figures=False)
    add_training_args(p)
    add_store_args(p)
    p.set_defaults(handler=_transfer)
