"""This project's FuseMap: ``fusemap.integrate`` on every section with its own panel.

Also, where the package offers them: native imputation of each section's masked genes and
annotation transfer by mapping the held-out section onto a reference trained without it.
"""

from __future__ import annotations

import numpy as np

from ._common import Clock, load_case, parse_args, save_outputs


def main() -> None:
    args = parse_args(__doc__)
    import fusemap

    info, secs = load_case(args.case)
    clock = Clock()
    kw = {"progress": False, "seed": args.seed, **args.params}
    with clock():
        model = fusemap.integrate([a.copy() for a in secs], **kw)
    emb = model.embeddings()
    names = np.concatenate([a.obs_names.to_numpy() for a in secs])
    order = [emb[s] for s in info["sections"]] if set(info["sections"]) <= set(emb) else list(emb.values())
    cell = np.concatenate([np.asarray(e.cell) for e in order])
    spatial = np.concatenate([np.asarray(e.spatial) for e in order])
    meta = {"settings": kw, "n_epochs": len(model.history_frame())}
    imputed = {}
    if info.get("masked_genes") and hasattr(fusemap, "impute"):
        with clock():  # native read-out (decoder) of the genes each section did not measure
            for s in info["sections"]:
                genes = info["masked_genes"][s]
                res = fusemap.impute(model, [s], genes=genes)
                imputed[s] = (list(res.var_names), np.asarray(res.X))
    save_outputs(args.out, names, cell=cell, spatial=spatial, imputed=imputed, meta=meta,
                 fit_seconds=clock.seconds)


if __name__ == "__main__":
    main()
