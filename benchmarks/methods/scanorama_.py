"""Scanorama (panoramic stitching of mutual nearest neighbours) on the shared genes."""

from __future__ import annotations

import numpy as np

from ._common import Clock, load_case, log_normalise, parse_args, save_outputs, seed_everything, shared_counts


def main() -> None:
    args = parse_args(__doc__)
    import scanorama

    seed_everything(args.seed)
    info, secs = load_case(args.case)
    a = shared_counts(info, secs)
    x = log_normalise(a.X)
    sec = a.obs["section"].astype(str).to_numpy()
    order = info["sections"]
    genes = list(a.var_names)
    dimred = int(min(args.params.get("dimred", 100), len(genes) - 1))
    clock = Clock()
    with clock():
        parts = [x[sec == s] for s in order]
        integrated, _ = scanorama.integrate(parts, [genes] * len(parts), dimred=dimred, seed=args.seed,
                                            verbose=0)
    z = np.zeros((a.n_obs, integrated[0].shape[1]), dtype=np.float32)
    for s, part in zip(order, integrated):
        z[sec == s] = part
    save_outputs(args.out, a.obs_names, cell=z, meta={"dimred": dimred, "n_genes": len(genes)},
                 fit_seconds=clock.seconds)


if __name__ == "__main__":
    main()
