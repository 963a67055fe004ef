"""This project's FuseMap as a user annotating a new section would run it: integrate the reference
sections, map the held-out section onto that frozen reference (``fusemap.map_query``), transfer
cell-type and region labels (``fusemap.transfer_labels``: cell types from the cell embedding,
regions from the spatial embedding). Embeddings of all cells are returned too."""

from __future__ import annotations

import numpy as np

from ._common import Clock, load_case, parse_args, save_outputs


def main() -> None:
    args = parse_args(__doc__)
    import fusemap

    info, secs = load_case(args.case)
    by_name = dict(zip(info["sections"], secs))
    ref = [by_name[s].copy() for s in info["reference"]]
    qry = [by_name[info["held_out"]].copy()]
    kw = {"progress": False, "seed": args.seed, **args.params}
    clock = Clock()
    preds = {}
    with clock():
        model = fusemap.integrate(ref, **kw)
        mapped = fusemap.map_query(model, qry, progress=False, seed=args.seed)
        for label, emb in ((info["labels"]["cell"], "cell"), (info["labels"]["spatial"], "spatial")):
            res = fusemap.transfer_labels(ref, qry, label, embedding=emb, seed=args.seed)
            p = res.predictions
            preds[label] = (list(p.index), p[fusemap.transfer.prediction_key(label)].astype(str).to_numpy())
    emb = mapped.embeddings()
    order = info["sections"]
    names = np.concatenate([by_name[s].obs_names.to_numpy() for s in order])
    cell = np.concatenate([np.asarray(emb[s].cell) for s in order])
    spatial = np.concatenate([np.asarray(emb[s].spatial) for s in order])
    save_outputs(args.out, names, cell=cell, spatial=spatial, predictions=preds,
                 meta={"settings": kw, "reference": info["reference"], "query": info["held_out"]},
                 fit_seconds=clock.seconds)


if __name__ == "__main__":
    main()
