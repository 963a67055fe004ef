"""scVI (scvi-tools) on the raw counts of the shared genes, batch = section, default settings."""

from __future__ import annotations

import numpy as np

from ._common import Clock, load_case, parse_args, save_outputs, shared_counts


def main() -> None:
    args = parse_args(__doc__)
    import scvi
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    scvi.settings.seed = args.seed
    scvi.settings.progress_bar_style = "tqdm"
    info, secs = load_case(args.case)
    a = shared_counts(info, secs)
    a.layers["counts"] = a.X.copy()
    p = dict(args.params)
    n_latent = int(p.pop("n_latent", 10))
    clock = Clock()
    with clock():
        scvi.model.SCVI.setup_anndata(a, layer="counts", batch_key="section")
        model = scvi.model.SCVI(a, n_latent=n_latent)
        model.train(accelerator="cpu", enable_progress_bar=False, **p)
        z = model.get_latent_representation()
    save_outputs(args.out, a.obs_names, cell=np.asarray(z),
                 meta={"n_latent": n_latent, "train": p, "epochs": int(model.history["elbo_train"].shape[0]),
                       "n_genes": a.n_vars}, fit_seconds=clock.seconds)


if __name__ == "__main__":
    main()
