"""Harmony (harmonypy) on the PCA of the shared genes, the same PCA the scorer uses as the
unintegrated embedding."""

from __future__ import annotations

import numpy as np

from ._common import Clock, load_case, parse_args, save_outputs, shared_counts
from .pca import shared_pca


def main() -> None:
    args = parse_args(__doc__)
    import harmonypy

    info, secs = load_case(args.case)
    a = shared_counts(info, secs)
    clock = Clock()
    with clock():
        pcs = shared_pca(a)
        ho = harmonypy.run_harmony(pcs, a.obs[["section"]], ["section"], random_state=args.seed, verbose=False)
        z = np.asarray(ho.Z_corr)
        if z.shape[0] != a.n_obs:
            z = z.T
    save_outputs(args.out, a.obs_names, cell=z, meta={"n_pcs": pcs.shape[1], "n_genes": a.n_vars},
                 fit_seconds=clock.seconds)


if __name__ == "__main__":
    main()
