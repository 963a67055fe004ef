"""One worker per method. Each is run as ``python -m benchmarks.methods.<module> --case DIR --out DIR
--seed S [--params JSON]`` in the method's own environment, reads the case folder and writes
``outputs.npz`` + ``meta.json`` (see ``_common.save_outputs``). Nothing here imports a method
library at module level, so the registry can be read from any environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Method:
    name: str                # row label in the tables
    module: str              # benchmarks.methods.<module>
    env: str                 # 'main' (.venv-bench or .venv), 'authors' (.venv-authors), 'r' (Rscript + main)
    genes: str               # 'all panels' or 'shared genes only'
    spatial: bool            # has its own spatial (niche) embedding
    stochastic: bool         # several seeds are run
    params: dict = field(default_factory=dict)
    note: str = ""
    seeds: int = 3           # seeds run by default (stochastic methods); --seeds caps it


METHODS = {
    "FuseMap (ours)": Method("FuseMap (ours)", "fusemap_ours", "main", "all panels", True, True,
                             note="fusemap.integrate, default settings", seeds=3),
    "FuseMap (ours), seed patches": Method(
        "FuseMap (ours), seed patches", "fusemap_ours_patches", "main", "all panels", True, True, {"patch_size": 64},
        note="fusemap.integrate with patch_size=64: the seeds of a minibatch come as spatially compact graph "
        "patches (fewer cells encoded per step)", seeds=3),
    "FuseMap (ours), query mapping": Method(
        "FuseMap (ours), query mapping", "fusemap_ours_query", "main", "all panels", True, True,
        note="integrate the reference sections, map_query the held-out one, transfer_labels", seeds=1),
    "FuseMap 1.1.3 (authors)": Method("FuseMap 1.1.3 (authors)", "fusemap_authors", "authors", "all panels",
                                      True, True, note="PyPI fusemap 1.1.3, default settings, own venv; cells its preprocessing "
                                      "drops get their section's mean embedding (count in the run's meta.json); on a slow machine "
                                      "pass a cut with --params '{\"fusemap_authors\": {\"n_epochs\": N}}' "
                                      "(and --max-cells), which the table then states", seeds=1),
    "Harmony": Method("Harmony", "harmony", "main", "shared genes only", False, True,
                      note="harmonypy on the PCA of the shared genes"),
    "Scanorama": Method("Scanorama", "scanorama_", "bench", "shared genes only", False, True,
                        note="its randomness is only in approximate neighbour search: one run", seeds=1),
    "scVI": Method("scVI", "scvi_", "bench", "shared genes only", False, True, {"max_epochs": 400},
                   note="scvi-tools defaults (max_epochs 400 for data of this size), raw counts", seeds=2),
    "Seurat v4": Method("Seurat v4", "seurat", "r", "shared genes only", False, False,
                        note="CCA anchors + IntegrateData (deterministic: one run)"),
    "STAGATE": Method("STAGATE", "stagate", "bench", "shared genes only", True, True,
                      {"n_epochs": 1000}, note="stagate-modern (STAGATE_pyG), its default 1000 epochs; one "
                      "embedding, scored as both", seeds=1),
    "GraphST": Method("GraphST", "graphst", "bench", "shared genes only", True, True,
                      {"epochs": 600}, note="GraphST 1.1.1, its default 600 epochs; one embedding, scored "
                      "as both", seeds=1),
}

# Imputation and label-transfer comparators, scored on that task only (by the report-case harness,
# ``benchmarks.ablation``). Imputation methods are given what every method is given
# (``_common.imputation_tasks``); transfer methods the shared genes and the reference's labels.
TASK_METHODS = {
    "gimVI": Method("gimVI", "gimvi_", "bench", "shared + masked genes", False, True, {"max_epochs": 200},
                    note="scvi-tools external.GIMVI, default 200 epochs, raw counts"),
    "Tangram": Method("Tangram", "tangram_", "bench", "shared + masked genes", False, True, {"num_epochs": 1000},
                      note="tangram-sc 1.0.4, mode 'cells', rna_count_based density prior, log-normalised input"),
    "scANVI (scArches)": Method("scANVI (scArches)", "scanvi_", "bench", "shared genes only", False, True,
                                note="scvi-tools SCVI + SCANVI on the reference, load_query_data + 100 query "
                                "epochs, predict"),
    "Seurat v4 TransferData": Method("Seurat v4 TransferData", "seurat_transfer", "r", "shared genes only", False,
                                     False, note="FindTransferAnchors (pcaproject) + TransferData, defaults"),
}
