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
    section_of = np.repeat(np.arange(len(secs)), [a.n_obs for a in secs])
    embs, missing = {}, None
    for kind, fname in (("cell", "ad_celltype_embedding.h5ad"), ("spatial", "ad_tissueregion_embedding.h5ad")):
        e = ad.read_h5ad(out / fname)
        embs[kind], missing = _rows_for(e, names, section_of)
    save_outputs(args.out, names, cell=embs["cell"], spatial=embs["spatial"],
                 meta={"fusemap_version": fusemap.__version__, "n_epochs": ModelType.n_epochs.value,
                       "train_without_eval": ModelType.TRAIN_WITHOUT_EVAL.value,
                       "defaults": defaults, "cells_without_output": int(missing.sum()),
                       "cells_without_output_examples": names[missing][:20].tolist()},
                 fit_seconds=clock.seconds)
    shutil.rmtree(work / "input")


def _rows_for(e, names: np.ndarray, section_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The embedding rows of ``names``. Cells its preprocessing dropped (it filters cells on its
    own) get their section's mean embedding, so every method is scored on the same cells; the
    count is recorded in meta.json."""
    x = e.X.toarray() if hasattr(e.X, "toarray") else np.asarray(e.X)
    first = {n: i for i, n in reversed(list(enumerate(e.obs_names.astype(str))))}
    pos = np.array([first.get(n, -1) for n in names], dtype=np.int64)
    missing = pos < 0
    rows = np.empty((len(names), x.shape[1]), dtype=np.float32)
    rows[~missing] = x[pos[~missing]]
    for s in np.unique(section_of[missing]):
        have = ~missing & (section_of == s)
        rows[missing & (section_of == s)] = x[pos[have]].mean(0) if have.any() else 0.0
    return rows, missing


if __name__ == "__main__":
    main()
