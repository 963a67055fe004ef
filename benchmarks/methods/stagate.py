"""STAGATE (stagate-modern, ``STAGATE_pyG``) on the shared genes of all sections together, each
section's own spatial kNN graph (sections laid side by side so no edge joins two sections).
STAGATE gives one spatially informed embedding; it is scored as both cell and spatial embedding."""

from __future__ import annotations

import numpy as np

from ._common import Clock, load_case, parse_args, save_outputs, seed_everything, shared_counts, offset_coordinates


def main() -> None:
    args = parse_args(__doc__)
    import scanpy as sc
    import STAGATE_pyG
    import torch

    seed_everything(args.seed)
    info, secs = load_case(args.case)
    a = shared_counts(info, secs)
    a.obsm["spatial"] = offset_coordinates(a)
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    a.var["highly_variable"] = True
    p = dict(args.params)
    k = int(p.pop("k_cutoff", 6))
    clock = Clock()
    with clock():
        STAGATE_pyG.Cal_Spatial_Net(a, k_cutoff=k, model="KNN", verbose=False)
        STAGATE_pyG.train_STAGATE(a, random_seed=args.seed, verbose=False, device=torch.device("cpu"), **p)
    z = np.asarray(a.obsm["STAGATE"])
    save_outputs(args.out, a.obs_names, cell=z, spatial=z, meta={"k_cutoff": k, "train": p, "n_genes": a.n_vars},
                 fit_seconds=clock.seconds)


if __name__ == "__main__":
    main()
