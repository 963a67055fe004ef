"""Seurat v4 (Debian's r-cran-seurat) anchor integration on the shared genes: per-section
LogNormalize, CCA anchors (FindIntegrationAnchors), IntegrateData, then PCA of the integrated
assay. Run through Rscript (seurat.R beside this file); the matrix travels as MatrixMarket."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from ._common import Clock, load_case, parse_args, save_outputs, shared_counts


def write_case_io(work: Path, a, obs: pd.DataFrame) -> Path:
    """The counts (genes x cells MatrixMarket), gene names and ``obs`` (with a ``cell`` column) in
    ``work``, as ``seurat_io.R``'s ``read_case_io`` reads them."""
    work.mkdir(parents=True, exist_ok=True)
    scipy.io.mmwrite(str(work / "counts.mtx"), sp.csr_matrix(a.X).T.tocoo())
    (work / "genes.txt").write_text("\n".join(a.var_names) + "\n")
    obs.to_csv(work / "obs.csv", index=False)
    return work


def main() -> None:
    args = parse_args(__doc__)
    info, secs = load_case(args.case)
    a = shared_counts(info, secs)
    work = write_case_io(Path(args.out) / "seurat_io", a,
                         pd.DataFrame({"cell": a.obs_names, "section": a.obs["section"].astype(str).to_numpy()}))
    clock = Clock()
    with clock():
        subprocess.run(["Rscript", str(Path(__file__).with_name("seurat.R")), str(work), str(args.seed)], check=True)
    emb = pd.read_csv(work / "embedding.csv", index_col=0)
    emb.index = emb.index.astype(str)
    z = emb.loc[a.obs_names.astype(str)].to_numpy(dtype=np.float32)
    version = (work / "version.txt").read_text().strip() if (work / "version.txt").exists() else ""
    save_outputs(args.out, a.obs_names, cell=z, meta={"seurat_version": version, "n_genes": a.n_vars},
                 fit_seconds=clock.seconds)


if __name__ == "__main__":
    main()
