"""Tangram (tangram-sc 1.0.4): imputation of each section's masked genes by mapping the cells of
the sections that measured them onto the section's cells (``mode='cells'``, its defaults), trained
on the genes source and target share; log-normalised values in, projected values out.

An imputation comparator only: Tangram makes no joint embedding, so the worker writes the PCA of
the shared genes as ``cell`` (never scored as Tangram's integration).
"""

from __future__ import annotations

import numpy as np

from ._common import Clock, imputation_tasks, load_case, log_normalise, parse_args, save_outputs, shared_counts
from .pca import shared_pca


def _lognorm(a, genes):
    import anndata as ad
    import pandas as pd

    x = log_normalise(a.X)  # normalised on the section's whole panel, as the scorer's truth is
    col = {g: j for j, g in enumerate(a.var_names)}
    return ad.AnnData(x[:, [col[g] for g in genes]], var=pd.DataFrame(index=genes))


def main() -> None:
    args = parse_args(__doc__)
    import anndata as ad
    import tangram as tg

    info, secs = load_case(args.case)
    p = {"num_epochs": 1000, **args.params}
    clock, imputed, parts = Clock(), {}, {}
    with clock():
        for i, genes, src, common in imputation_tasks(info, secs):
            target = _lognorm(secs[i], common)
            source = ad.concat([_lognorm(secs[j], common + genes) for j in src])
            source.obs_names_make_unique()
            tg.pp_adatas(source, target, genes=common)
            amap = tg.map_cells_to_space(source, target, mode="cells", density_prior="rna_count_based",
                                         device="cpu", random_state=args.seed, verbose=False, **p)
            proj = tg.project_genes(amap, source)
            col = {g.lower(): j for j, g in enumerate(proj.var_names)}
            x = np.asarray(proj.X[:, [col[g.lower()] for g in genes]], dtype=np.float32)
            parts.setdefault(info["sections"][i], []).append((genes, x))
    for s, chunks in parts.items():
        imputed[s] = ([g for gs, _ in chunks for g in gs], np.concatenate([x for _, x in chunks], 1))
    shared = shared_counts(info, secs)
    save_outputs(args.out, shared.obs_names, cell=shared_pca(shared), imputed=imputed,
                 meta={"settings": p, "task": "imputation only"}, fit_seconds=clock.seconds)


if __name__ == "__main__":
    main()
