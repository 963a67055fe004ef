"""Seurat v4 label transfer (Debian's r-cran-seurat): ``FindTransferAnchors`` from the reference
sections (merged, LogNormalize, all shared genes as features, PCA) onto the held-out section and
``TransferData`` of the cell types, at Seurat's defaults otherwise. Run through Rscript
(seurat_transfer.R beside this file). A label-transfer comparator; ``cell`` is the shared-gene PCA
(never scored as Seurat's integration, which the ``seurat`` worker covers)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from ._common import Clock, load_case, parse_args, save_outputs, shared_counts
from .pca import shared_pca
from .seurat import write_case_io


def main() -> None:
    args = parse_args(__doc__)
    info, secs = load_case(args.case)
    a = shared_counts(info, secs)
    label = info["labels"]["cell"]
    sec = a.obs["section"].astype(str).to_numpy()
    use = np.isin(sec, info["reference"]) | (sec == info["held_out"])
    b = a[use]
    role = np.where(np.isin(b.obs["section"].astype(str), info["reference"]), "reference", "query")
    work = write_case_io(Path(args.out) / "seurat_io", b, pd.DataFrame(
        {"cell": b.obs_names, "role": role, "label": b.obs[label].astype(str).to_numpy()}))
    clock = Clock()
    with clock():
        subprocess.run(["Rscript", str(Path(__file__).with_name("seurat_transfer.R")), str(work), str(args.seed)],
                       check=True)
    pred = pd.read_csv(work / "predictions.csv")
    version = (work / "version.txt").read_text().strip() if (work / "version.txt").exists() else ""
    save_outputs(args.out, a.obs_names, cell=shared_pca(a),
                 predictions={label: (pred["cell"].astype(str).to_numpy(), pred["predicted"].astype(str).to_numpy())},
                 meta={"seurat_version": version, "task": "label transfer"}, fit_seconds=clock.seconds)


if __name__ == "__main__":
    main()
