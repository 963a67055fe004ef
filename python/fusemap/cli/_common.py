"""What the commands share: options, their translation into library arguments, and output folders."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any, Sequence

from ..errors import FuseMapInputError

# library argument -> the command-line flag that sets it (messages name the flag to CLI users)
FLAGS = {
    "max_epochs": "--epochs", "seed": "--seed", "device": "--device", "n_latent": "--latent",
    "layer": "--layer", "method": "--graph", "max_edge_length": "--max-edge-length", "radius": "--radius",
    "n_neighbors": "--graph-neighbors", "batch_size": "--batch-size", "spatial_mode": "--spatial-mode",
    "gene_case": "--gene-case", "normalized": "--normalized", "resume": "--no-resume",
    "precision": "--precision", "section_key": "--section-key", "progress": "--progress",
}
_VALUE_FLAGS = [k for k in FLAGS if k not in ("normalized", "resume", "progress")]


def in_cli_words(message: str) -> str:
    """Rewrite a library message for command-line users: ``layer='counts'`` -> ``--layer counts``."""
    message = message.replace("normalized=True", "--normalized").replace("resume=False", "--no-resume")
    message = re.sub(r"(?<![\w.-])panels:", "--panels:", message)
    message = re.sub(r"(?<![\w.-])no_coordinates([:=])", r"--no-coordinates\1", message)
    for key in _VALUE_FLAGS:
        message = re.sub(rf"(?<![\w.-]){key}=(['\"]?)([^'\"\s,;)]*)\1", rf"{FLAGS[key]} \2", message)
    return message


def add_training_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=int, help="maximum epochs of each training phase (default 300)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (default auto)")
    p.add_argument("--batch-size", type=int, dest="batch_size", help="seed cells per section per step")
    p.add_argument("--precision", choices=["float32", "bfloat16", "auto"],
                   help="encoder arithmetic (default float32: the same result on every CPU)")
    p.add_argument("--no-resume", action="store_false", dest="resume",
                   help="start training afresh instead of resuming an interrupted run's checkpoint")
    p.add_argument("--progress", action="store_true", help="show a progress bar even when not on a terminal")


def add_query_mapping_args(p: argparse.ArgumentParser) -> None:
    """How a query is aligned to the reference (TrainConfig.query_balance / query_pretrain)."""
    p.add_argument("--query-balance", choices=["novelty", "all"], dest="query_balance",
                   help="balanced phase: weight each query cluster by its novelty against the reference "
                        "(default 'novelty': states the reference lacks keep their own place) or by the "
                        "integration rule ('all')")
    p.add_argument("--query-pretrain", choices=["aligned", "reconstruction"], dest="query_pretrain",
                   help="phase 1: align from the first epoch (default 'aligned') or train the query encoders "
                        "through the frozen decoder without alignment ('reconstruction')")


def add_data_args(p: argparse.ArgumentParser) -> None:
    """How sections are read and prepared (fixed for a model; saved with it)."""
    p.add_argument("--section-key", dest="section_key", help="obs column naming each cell's section")
    p.add_argument("--layer", help="layer holding raw counts (default X)")
    p.add_argument("--normalized", action="store_true", help="input is already log-normalised (not counts)")
    p.add_argument("--gene-case", choices=["ignore", "exact"], dest="gene_case",
                   help="match gene names ignoring case (default) or exactly")


def add_panels_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--panels", metavar="FILE.json",
                   help="JSON object: section name -> list of the genes it measured, for tables joining "
                        "sections with different panels (genes outside a section's list are unmeasured "
                        "there, never zeros; sections not named keep all their genes)")


def add_coordinates_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-coordinates", nargs="+", dest="no_coordinates", metavar="SECTION",
                   help="sections to use without coordinates, e.g. a single-cell reference (sections without "
                        "obsm['spatial'] are used so anyway): each cell is its own only neighbour, and the "
                        "section stays out of the spatial-embedding alignment")


def read_panels(path: str | None) -> dict | None:
    """The ``--panels`` file, checked before any data is read."""
    if path is None:
        return None
    from ..validation import check_panels_form

    p = Path(path)
    if not p.is_file():
        raise FuseMapInputError(f"--panels {path}: no such file. Pass a JSON file mapping each section name to "
                                'the genes it measured, e.g. {"slice1": ["Gad1", "Sst"], "slice2": ["Gad1", "Vip"]}.')
    try:
        panels = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FuseMapInputError(f"--panels {path}: not valid JSON ({exc}). Pass a JSON object mapping each "
                                "section name to a list of gene symbols.") from exc
    return check_panels_form(panels, argname=f"--panels {path}")


def summary_lines(model) -> list[str]:
    """The closing summary of a training command: epochs, time, balance weights, section mixing."""
    s = model.summary()
    phases = ", ".join(f"phase {i + 1}: {n} epochs{' (stopped early)' if e else ''}"
                       for i, (n, e) in enumerate(zip(s["epochs_per_phase"], s["stopped_early"])))
    lines = [f"trained {sum(s['epochs_per_phase'])} epochs ({phases}) in {s['train_seconds']:.1f} s; "
             f"final validation loss {s['final_val_loss']:.4g}"]
    lines += [x for x in (s["balance"], s.get("novelty"), s["mixing"]) if x]
    warning = model.train_state.mixing.get("warning") if model.train_state and model.train_state.mixing else ""
    if warning:
        lines.append("WARNING: " + in_cli_words(warning).replace("max_epochs", "--epochs")
                     .replace("section_key", "--section-key"))
    return lines


def add_graph_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--graph", choices=["delaunay", "knn", "radius"], help="spatial graph (default delaunay)")
    p.add_argument("--radius", type=float, help="neighbour radius for --graph radius (coordinate units)")
    p.add_argument("--graph-neighbors", type=int, dest="n_neighbors", help="neighbours for --graph knn (default 8)")
    p.add_argument("--max-edge-length", type=float, dest="max_edge_length",
                   help="drop graph edges longer than this (coordinate units)")


def add_store_args(p: argparse.ArgumentParser) -> None:
    """The options of a command that accepts a SpatialData store."""
    g = p.add_argument_group("SpatialData store input (a .zarr path in place of .h5ad files)")
    g.add_argument("--table", action="append", dest="table", metavar="NAME",
                   help="table to read sections from (repeatable; default every table annotating shapes, "
                        "points or labels)")
    g.add_argument("--coordinate-system", dest="coordinate_system", default=None, metavar="CS",
                   help="coordinate system of element centroids when a table has no obsm['spatial'] "
                        "(default global)")
    g.add_argument("--in-place", action="store_true", dest="in_place",
                   help="write results into the input store's tables instead of a copy under --out")


def add_output_args(p: argparse.ArgumentParser, figures: bool = True) -> None:
    p.add_argument("--out", required=True, help="output directory (a new folder, or an earlier fusemap result "
                                                "with --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out when it holds an earlier fusemap result (never other files)")
    if figures:
        p.add_argument("--no-figures", action="store_true", dest="no_figures")


def overrides(args) -> dict:
    """Configuration fields set on the command line (absent flags keep the defaults)."""
    out = {}
    for opt, key in (("epochs", "max_epochs"), ("seed", "seed"), ("device", "device"), ("latent", "n_latent"),
                     ("layer", "layer"), ("graph", "method"), ("max_edge_length", "max_edge_length"),
                     ("radius", "radius"), ("n_neighbors", "n_neighbors"), ("batch_size", "batch_size"),
                     ("spatial_mode", "spatial_mode"), ("gene_case", "gene_case"), ("precision", "precision"),
                     ("query_balance", "query_balance"), ("query_pretrain", "query_pretrain")):
        v = getattr(args, opt, None)
        if v is not None:
            out[key] = v
    if getattr(args, "normalized", False):
        out["normalized"] = True
    if getattr(args, "progress", False):
        out["progress"] = True
    return out


def store_options(args, paths: Sequence[str]) -> dict:
    """Store-only options, refused before any work when the inputs are not a SpatialData store."""
    from ..io.sections import store_among

    if store_among(paths) is None:
        given = [f for f, v in (("--table", getattr(args, "table", None)),
                                ("--coordinate-system", getattr(args, "coordinate_system", None)),
                                ("--in-place", getattr(args, "in_place", False))) if v]
        if given:
            raise FuseMapInputError(
                f"{', '.join(given)} only apply to a SpatialData .zarr input; the inputs are .h5ad files. "
                "Drop the option(s) or pass a .zarr store."
            )
    return {"table": getattr(args, "table", None), "coordinate_system": getattr(args, "coordinate_system", None)}


def split_list(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def paths(*groups: Any) -> list[str]:
    """Every path among the arguments (lists or single values), for the output checks."""
    from ..io.sections import paths_of

    return [p for g in groups for p in paths_of(g)]
