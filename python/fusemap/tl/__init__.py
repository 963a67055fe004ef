"""Analyses of an integration (the paper's atlas analyses), computed on its outputs.

- :func:`find_regions`, :func:`region_markers`, :func:`region_composition`: molecular tissue
  regions from the spatial embedding, sub-levels within coarse regions, marker genes.
- :func:`harmonize_nomenclatures`: two label sets on every cell and their correspondence matrix.
- :func:`gene_modules`, :func:`select_panel`, :func:`evaluate_panel`, :func:`compare_panels`:
  gene modules of the gene embedding and targeted gene-panel design.
- :func:`cell_proximity`: cell-type pairs closer than chance within regions.
- :func:`check_imputation`: measured vs imputed expression of two aligned sections on a grid.

Submodules are imported on first use, so ``import fusemap`` stays as fast as it was.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "find_regions": "regions", "region_markers": "regions", "region_composition": "regions",
    "leiden": "regions", "leiden_n_clusters": "regions", "REGION_KEY": "regions",
    "harmonize_nomenclatures": "nomenclature", "Correspondence": "nomenclature",
    "gene_modules": "panels", "select_panel": "panels", "hvg_panel": "panels", "random_panel": "panels",
    "evaluate_panel": "panels", "compare_panels": "panels", "variability": "panels",
    "cell_proximity": "proximity", "ProximityResult": "proximity", "benjamini_hochberg": "proximity",
    "check_imputation": "imputation_check", "summarize_imputation_check": "imputation_check",
    "gene_embedding": "_inputs",
}
_RENAMED = {"summarize_imputation_check": "summarize"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'fusemap.tl' has no attribute {name!r}")
    module = importlib.import_module(f".{_WHERE[name]}", __name__)
    value = getattr(module, _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
