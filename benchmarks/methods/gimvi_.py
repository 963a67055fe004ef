"""gimVI (scvi-tools ``external.GIMVI``): imputation of each section's masked genes from the
sections that measured them, one model per (section, source group): the sources' raw counts on the
shared genes plus the masked genes as the "sequencing" data, the section's counts on the shared
genes as the spatial data; its default training (200 epochs) and ``get_imputed_values(normalized=True)``.

An imputation comparator only: the worker writes the PCA of the shared genes as ``cell``.
"""

from __future__ import annotations

import numpy as np

from ._common import Clock, imputation_tasks, load_case, parse_args, save_outputs, shared_counts
from .pca import shared_pca


def _counts(a, genes):
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    col = {g: j for j, g in enumerate(a.var_names)}
    x = sp.csr_matrix(a.X)[:, [col[g] for g in genes]].astype(np.float32)
    return ad.AnnData(x, obs=pd.DataFrame(index=a.obs_names.astype(str)), var=pd.DataFrame(index=genes))


def main() -> None:
    args = parse_args(__doc__)
    import anndata as ad
    import scvi
    import torch
    from scvi.external import GIMVI

    torch.set_num_threads(max(1, torch.get_num_threads()))
    scvi.settings.seed = args.seed
    info, secs = load_case(args.case)
    p = {"max_epochs": 200, **args.params}
    clock, parts = Clock(), {}
    with clock():
        for i, genes, src, common in imputation_tasks(info, secs):
            seq = ad.concat([_counts(secs[j], common + genes) for j in src])
            seq.obs_names_make_unique()
            spatial = _counts(secs[i], common)
            # gimVI cannot take a cell without a molecule on its genes: those get the mean imputation
            keep_seq = np.asarray(seq.X.sum(1)).ravel() > 0
            keep = np.asarray(spatial.X.sum(1)).ravel() > 0
            seq, sp_kept = seq[keep_seq].copy(), spatial[keep].copy()
            GIMVI.setup_anndata(seq)
            GIMVI.setup_anndata(sp_kept)
            model = GIMVI(seq, sp_kept)
            model.train(accelerator="cpu", enable_progress_bar=False, **p)
            _, imp = model.get_imputed_values(normalized=True)
            imp = np.asarray(imp)[:, [list(seq.var_names).index(g) for g in genes]]
            x = np.tile(imp.mean(0), (spatial.n_obs, 1)).astype(np.float32)
            x[keep] = imp
            parts.setdefault(info["sections"][i], []).append((genes, x))
    imputed = {s: ([g for gs, _ in ch for g in gs], np.concatenate([x for _, x in ch], 1)) for s, ch in parts.items()}
    shared = shared_counts(info, secs)
    save_outputs(args.out, shared.obs_names, cell=shared_pca(shared), imputed=imputed,
                 meta={"settings": p, "task": "imputation only"}, fit_seconds=clock.seconds)


if __name__ == "__main__":
    main()
