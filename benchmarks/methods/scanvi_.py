"""scANVI (scvi-tools), reference mapping as scArches does it: scVI then scANVI trained on the
reference sections (raw counts of the shared genes, batch = section, their labels), the held-out
section added with ``load_query_data`` and trained alone (weights of the reference frozen; scvi-tools'
defaults for the epochs), its cell types read with ``predict``.

A label-transfer comparator: writes predictions for the held-out section; ``cell`` is the
query-mapped latent space of all cells.
"""

from __future__ import annotations

import numpy as np

from ._common import Clock, load_case, parse_args, save_outputs, shared_counts

UNLABELLED = "Unknown"


def main() -> None:
    args = parse_args(__doc__)
    import scvi
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    scvi.settings.seed = args.seed
    info, secs = load_case(args.case)
    a = shared_counts(info, secs)
    a.layers["counts"] = a.X.copy()
    label = info["labels"]["cell"]
    sec = a.obs["section"].astype(str).to_numpy()
    ref = a[np.isin(sec, info["reference"])].copy()
    qry = a[sec == info["held_out"]].copy()
    p = dict(args.params)
    clock = Clock()
    with clock():
        ref.obs["_label"] = ref.obs[label].astype(str).to_numpy()
        scvi.model.SCVI.setup_anndata(ref, layer="counts", batch_key="section")
        vae = scvi.model.SCVI(ref, n_latent=int(p.get("n_latent", 10)))
        vae.train(accelerator="cpu", enable_progress_bar=False, max_epochs=p.get("scvi_epochs"))
        scvi.model.SCANVI.setup_anndata(ref, layer="counts", batch_key="section", labels_key="_label",
                                        unlabeled_category=UNLABELLED)
        lvae = scvi.model.SCANVI.from_scvi_model(vae, unlabeled_category=UNLABELLED, labels_key="_label")
        lvae.train(accelerator="cpu", enable_progress_bar=False, max_epochs=int(p.get("scanvi_epochs", 20)))
        qry.obs["_label"] = UNLABELLED
        scvi.model.SCANVI.prepare_query_anndata(qry, lvae)
        q = scvi.model.SCANVI.load_query_data(qry, lvae)
        q.train(accelerator="cpu", enable_progress_bar=False, max_epochs=int(p.get("query_epochs", 100)),
                plan_kwargs={"weight_decay": 0.0})
        pred = np.asarray(q.predict()).astype(str)
        z_ref, z_qry = lvae.get_latent_representation(ref), q.get_latent_representation(qry)
    cell = np.zeros((a.n_obs, z_ref.shape[1]), dtype=np.float32)
    cell[np.isin(sec, info["reference"])] = z_ref
    cell[sec == info["held_out"]] = z_qry
    save_outputs(args.out, a.obs_names, cell=cell, predictions={f"{label}": (qry.obs_names, pred)},
                 meta={"settings": p, "task": "label transfer"}, fit_seconds=clock.seconds)


if __name__ == "__main__":
    main()
