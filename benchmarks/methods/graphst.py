"""GraphST 1.1.1 on the shared genes of all sections together (its multi-section integration
mode: one graph over sections laid side by side). Preprocessing as GraphST's own (normalise,
log1p, scale without centring) but keeping every shared gene (its default keeps 3,000 HVGs).
One spatially informed embedding, scored as both cell and spatial embedding."""

from __future__ import annotations

import numpy as np

from ._common import Clock, load_case, parse_args, save_outputs, seed_everything, shared_counts, offset_coordinates


def main() -> None:
    args = parse_args(__doc__)
    import scanpy as sc
    import torch
    from GraphST import GraphST

    seed_everything(args.seed)
    info, secs = load_case(args.case)
    a = shared_counts(info, secs)
    a.obsm["spatial"] = offset_coordinates(a)
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    sc.pp.scale(a, zero_center=False, max_value=10)
    a.var["highly_variable"] = True
    p = dict(args.params)
    clock = Clock()
    with clock():
        model = GraphST.GraphST(a, device=torch.device("cpu"), random_seed=args.seed, **p)
        out = model.train()
    z = np.asarray(out.obsm["emb"])
    save_outputs(args.out, a.obs_names, cell=z, spatial=z, meta={"train": p, "n_genes": a.n_vars},
                 fit_seconds=clock.seconds)


if __name__ == "__main__":
    main()
