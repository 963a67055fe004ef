"""The authors' FuseMap 1.1.3 (PyPI ``fusemap``), run as a comparator in its own environment
(.venv-authors: torch 2.0.1, dgl 1.1.1). Every section with its own panel, default settings,
through its public pieces (``read_input_folder`` + ``spatial_integrate``, as its ``integrate``
does) so that the seed can be set; its ``integrate`` always seeds 0.

``--params '{"n_epochs": N}'`` caps each of its two training phases at N - 1 epochs (its default N
is 16) for machines where a full run does not fit the time budget; when N - 1 is not above its
TRAIN_WITHOUT_EVAL (10: no validation, and so no saved model, before epoch 11) that is set to 0.
The cut is recorded in ``meta.json``."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import anndata as ad
import numpy as np

from ._common import Clock, load_case, parse_args, save_outputs


def main() -> None:
    args = parse_args(__doc__)
    import fusemap  # the authors' package in .venv-authors
    from fusemap.training.integrate import spatial_integrate
    from fusemap.config import ModelType
    from fusemap.utils import seed_all

    info, secs = load_case(args.case)
    work = Path(args.out) / "authors_run"
    if work.exists():
        shutil.rmtree(work)
    (work / "input").mkdir(parents=True)
    for f in info["files"]:
        shutil.copy(Path(args.case) / f, work / "input" / Path(f).name)
    run_args = SimpleNamespace(output_save_dir=str(work / "output"), keep_celltype="cell_type",
                               keep_tissueregion="region", use_llm_gene_embedding="false",
                               pretrain_model_path="")
    Path(run_args.output_save_dir).mkdir(parents=True)
    defaults = {"n_epochs": ModelType.n_epochs.value, "train_without_eval": ModelType.TRAIN_WITHOUT_EVAL.value}
    if "n_epochs" in args.params:  # its settings are Enum members read at run time: set the value
        n = int(args.params["n_epochs"])
        ModelType.n_epochs._value_ = n
        # it saves (and later reads) a model only from epoch TRAIN_WITHOUT_EVAL + 1 on: evaluate earlier
        # when the cut leaves fewer epochs than that
        if ModelType.TRAIN_WITHOUT_EVAL.value >= n - 1:
            ModelType.TRAIN_WITHOUT_EVAL._value_ = 0
    clock = Clock()
    with clock():
        seed_all(args.seed)
        x_input = fusemap.read_input_folder(str(work / "input"))
        spatial_integrate(x_input, run_args, ["delaunay"] * len(x_input), ["ST"] * len(x_input))
    out = Path(run_args.output_save_dir)
    names = np.concatenate([a.obs_names.to_numpy() for a in secs]).astype(str)
    embs = {}
    for kind, fname in (("cell", "ad_celltype_embedding.h5ad"), ("spatial", "ad_tissueregion_embedding.h5ad")):
        e = ad.read_h5ad(out / fname)
        e.obs_names = e.obs_names.astype(str)
        embs[kind] = np.asarray(e[names].X.toarray() if hasattr(e.X, "toarray") else e[names].X)
    save_outputs(args.out, names, cell=embs["cell"], spatial=embs["spatial"],
                 meta={"fusemap_version": fusemap.__version__, "n_epochs": ModelType.n_epochs.value,
                       "train_without_eval": ModelType.TRAIN_WITHOUT_EVAL.value,
                       "defaults": defaults}, fit_seconds=clock.seconds)
    shutil.rmtree(work / "input")


if __name__ == "__main__":
    main()
