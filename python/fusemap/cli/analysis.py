"""Command-line access to the atlas analyses: ``fusemap regions``, ``fusemap nomenclature``,
``fusemap proximity`` and ``fusemap panel``.

Each reads the output of ``fusemap integrate`` (its folder, or ``.h5ad`` sections holding the
embeddings) and writes tables (CSV) and figures (PNG) into ``--out``, built atomically like every
fusemap command.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import FuseMapInputError
from ..io.files import OutputDir
from ._common import add_output_args, paths


def _sections_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("sections", nargs="+",
                   help="output folder of `fusemap integrate`, or .h5ad sections holding the embeddings")
    p.add_argument("--section-key", dest="section_key", help="obs column naming each cell's section")
    add_output_args(p, figures=False)


def _read_sections(args):
    from ..tl._inputs import pooled

    src = args.sections[0] if len(args.sections) == 1 else list(args.sections)
    return pooled(src, args.section_key, argname="SECTIONS")


def _embedding_key(name: str) -> str:
    from .._constants import CELL_EMBEDDING, SPATIAL_EMBEDDING

    return {"cell": CELL_EMBEDDING, "spatial": SPATIAL_EMBEDDING}.get(name, name)


# -- regions ------------------------------------------------------------------------------------
def _add_regions(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("regions", help="molecular tissue regions: Leiden on the spatial embedding, markers, maps")
    _sections_arg(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resolution", type=float, default=0.5, help="Leiden resolution (default 0.5)")
    g.add_argument("--n-regions", type=int, dest="n_regions", help="bisect the resolution to get this many")
    p.add_argument("--within", help="obs column of coarse regions: find sub-regions inside each")
    p.add_argument("--embedding", default="spatial", help="spatial (default), cell, or an obsm key")
    p.add_argument("--markers", type=int, default=10, help="marker genes per region (0: none)")
    p.add_argument("--expression", help=".h5ad of expression for markers (e.g. imputed, same cells as the "
                                        "pooled sections); default: measured genes common to all sections")
    p.add_argument("--normalized", action="store_true", help="--expression is already log-normalised/imputed")
    p.add_argument("--seed", type=int, default=0)

    return p

def _cmd_regions(args) -> Path:
    import anndata as ad

    from ..pl.regions import regions_spatial
    from ..tl.regions import REGION_KEY, find_regions, region_composition, region_markers

    pool = _read_sections(args)
    with OutputDir(args.out, args.overwrite, inputs=paths(args.sections, args.expression), command="regions") as out:
        regions = find_regions(pool, args.resolution, n_regions=args.n_regions, key=_embedding_key(args.embedding),
                               within=args.within, seed=args.seed)
        frame = regions.rename("region").to_frame()
        frame.insert(0, "section", pool.section)
        frame.to_csv(out.path("regions.csv"))
        region_composition(pool, REGION_KEY).to_csv(out.path("composition.csv"))
        if args.markers > 0:
            if args.expression:
                expr = ad.read_h5ad(args.expression)
                if expr.n_obs != pool.n_obs:
                    raise FuseMapInputError(
                        f"--expression {args.expression!r} has {expr.n_obs} cells; the sections have {pool.n_obs}. "
                        "Pass expression of the same cells, in section order."
                    )
                markers = region_markers(expr, regions.to_numpy(), n_genes=args.markers, normalized=args.normalized)
            else:
                markers = region_markers(pool.sections.adatas, regions.to_numpy(), n_genes=args.markers)
            markers.to_csv(out.path("markers.csv"), index=False)
        regions_spatial(pool, REGION_KEY, save=out.path("figures", "regions_spatial.png"))
        print(f"fusemap regions: {regions.nunique()} regions over {pool.n_obs} cells")
        return out.commit()


# -- nomenclature -------------------------------------------------------------------------------
def _add_nomenclature(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("nomenclature", help="transfer two label sets onto all cells; correspondence matrix")
    _sections_arg(p)
    p.add_argument("--label-a", required=True, dest="label_a", help="obs column of the first nomenclature")
    p.add_argument("--label-b", required=True, dest="label_b", help="obs column of the second nomenclature")
    p.add_argument("--embedding", default="cell", help="cell (cell types, default), spatial (regions) or an obsm key")
    p.add_argument("--method", choices=["mlp", "knn"], default="mlp")
    p.add_argument("--seed", type=int, default=0)

    return p

def _cmd_nomenclature(args) -> Path:
    from ..pl.nomenclature import correspondence_heatmap
    from ..tl.nomenclature import harmonize_nomenclatures

    pool = _read_sections(args)
    with OutputDir(args.out, args.overwrite, inputs=paths(args.sections), command="nomenclature") as out:
        res = harmonize_nomenclatures(pool, args.label_a, args.label_b, key=_embedding_key(args.embedding),
                                      method=args.method, seed=args.seed, write=False)
        res.labels.to_csv(out.path("labels.csv"))
        res.counts.to_csv(out.path("correspondence_counts.csv"))
        res.row_normalized.to_csv(out.path("correspondence_row_normalized.csv"))
        res.col_normalized.to_csv(out.path("correspondence_column_normalized.csv"))
        res.best_matches().to_csv(out.path("best_matches.csv"), index=False)
        for norm in ("row", "column"):
            correspondence_heatmap(res, norm, save=out.path("figures", f"correspondence_{norm}.png"))
        print("fusemap nomenclature: held-out transfer accuracy "
              + ", ".join(f"{k} {v:.3f}" for k, v in res.accuracy.items()))
        return out.commit()


# -- proximity ----------------------------------------------------------------------------------
def _add_proximity(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("proximity", help="cell-type pairs closer than chance within regions")
    _sections_arg(p)
    p.add_argument("--cell-type-key", required=True, dest="cell_type_key", help="obs column of cell types")
    p.add_argument("--region-key", dest="region_key", help="obs column of regions (default: whole sections)")
    p.add_argument("--radius", type=float, default=30.0, help="distance threshold, coordinate units (default 30)")
    p.add_argument("--shift-radius", type=float, default=100.0, dest="shift_radius",
                   help="scale of the null's displacements (default 100)")
    p.add_argument("--n-shifts", type=int, default=1000, dest="n_shifts", help="null draws (default 1000)")
    p.add_argument("--null", choices=["swap", "shift"], default="swap")
    p.add_argument("--min-cells", type=int, default=10, dest="min_cells")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)

    return p

def _cmd_proximity(args) -> Path:
    from ..pl.proximity import proximity_heatmap, proximity_summary
    from ..io.files import safe_filename
    from ..tl.proximity import cell_proximity

    pool = _read_sections(args)
    with OutputDir(args.out, args.overwrite, inputs=paths(args.sections), command="proximity") as out:
        res = cell_proximity(pool, args.cell_type_key, args.region_key, radius=args.radius,
                             shift_radius=args.shift_radius, n_shifts=args.n_shifts, null=args.null,
                             min_cells=args.min_cells, alpha=args.alpha, seed=args.seed)
        res.table.to_csv(out.path("proximity.csv"), index=False)
        sig = res.significant()
        sig.to_csv(out.path("significant.csv"), index=False)
        proximity_summary(res, save=out.path("figures", "enriched_pairs.png"))
        for region in sorted(res.table["region"].unique()):
            proximity_heatmap(res, region, save=out.path("figures", f"proximity_{safe_filename(region)}.png"))
        print(f"fusemap proximity: {len(sig)} of {len(res.table)} pairs enriched (BH-adjusted p < {args.alpha})")
        return out.commit()


# -- panel --------------------------------------------------------------------------------------
def _add_panel(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("panel", help="gene modules and an embedding-guided targeted gene panel, evaluated")
    p.add_argument("--gene-embedding", required=True, dest="gene_embedding",
                   help="saved model directory, `fusemap integrate` output folder or gene_embedding.csv")
    p.add_argument("--expression", required=True,
                   help=".h5ad (counts) of a labelled dataset: ranks genes by variability and tests panels")
    p.add_argument("--label-key", dest="label_key", help="obs column of cell types (evaluation; optional)")
    p.add_argument("--sizes", default="10,20,40", help="panel sizes, comma-separated (default 10,20,40)")
    p.add_argument("--n-modules", type=int, default=13, dest="n_modules")
    p.add_argument("--n-random", type=int, default=5, dest="n_random", help="random panels per size")
    p.add_argument("--classifier", choices=["logistic", "mlp"], default="logistic")
    p.add_argument("--normalized", action="store_true", help="--expression is already log-normalised")
    p.add_argument("--seed", type=int, default=0)
    add_output_args(p, figures=False)

    return p

def _cmd_panel(args) -> Path:
    import anndata as ad

    from ..pl.panels import panel_accuracy
    from ..tl._inputs import gene_embedding
    from ..tl.panels import compare_panels, gene_modules, select_panel

    try:
        sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    except ValueError:
        raise FuseMapInputError(f"--sizes {args.sizes!r}: give comma-separated integers, e.g. 10,20,40.") from None
    emb = gene_embedding(args.gene_embedding, "--gene-embedding")
    expr = ad.read_h5ad(args.expression)
    with OutputDir(args.out, args.overwrite, inputs=paths(args.gene_embedding, args.expression), command="panel") as out:
        genes = [g for g in map(str, expr.var_names) if g in set(emb.index)]
        if not genes:
            raise FuseMapInputError("--expression shares no gene with --gene-embedding; check the gene names.")
        modules = gene_modules(emb, min(args.n_modules, len(genes)), genes=genes, seed=args.seed)
        modules.to_csv(out.path("modules.csv"))
        for n in sizes:
            select_panel(emb, expr[:, genes], n, modules=modules, normalized=args.normalized,
                         seed=args.seed).to_csv(out.path(f"panel_{n}.csv"), index=False)
        if args.label_key:
            comp = compare_panels(emb, expr, args.label_key, sizes, n_random=args.n_random, n_modules=args.n_modules,
                                  classifier=args.classifier, normalized=args.normalized, seed=args.seed)
            comp.to_csv(out.path("comparison.csv"), index=False)
            panel_accuracy(comp, save=out.path("figures", "panel_accuracy.png"))
            summary = comp.groupby(["size", "kind"])["accuracy"].mean().unstack()
            print("fusemap panel: mean cross-validated accuracy\n" + summary.round(3).to_string())
        return out.commit()


def add_commands(sub) -> None:
    for add, handler in ((_add_regions, _cmd_regions), (_add_nomenclature, _cmd_nomenclature),
                         (_add_proximity, _cmd_proximity), (_add_panel, _cmd_panel)):
        add(sub).set_defaults(handler=handler)
